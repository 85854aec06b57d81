"""open_cxr_dataset / dataset_summary / `kdnas data summary` on the real NIH files."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from kdnas.cli.data_cmd import data_app
from kdnas.data.cxr import CXR_FORMATS, dataset_summary, loader_options, open_cxr_dataset
from kdnas.data.synthetic.cxr import generate_cxr_dataset
from kdnas.utils.errors import ConfigError


@pytest.fixture(scope="module")
def nih_summary(shared_data) -> dict:
    return dataset_summary(shared_data / "cxr/nih", "nih")


def test_nih_summary_counts_match_an_independent_count(nih_summary, shared_data):
    with gzip.open(shared_data / "cxr/nih/Data_Entry_2017_v2020.csv.gz", "rt", newline="") as fh:
        cells = [row[1] for row in list(csv.reader(fh))[1:]]
    counts = Counter(f for cell in cells for f in cell.split("|"))
    assert nih_summary["images"] == 112_120 and nih_summary["patients"] == 30_805
    assert nih_summary["positives"] == {name: counts[name] for name in nih_summary["labels"]}
    assert nih_summary["no_finding"] == counts["No Finding"] == 60_361
    assert nih_summary["boxes"] == {"Atelectasis": 180, "Cardiomegaly": 146, "Effusion": 153, "Infiltration": 123,
                                    "Mass": 85, "Nodule": 79, "Pneumonia": 120, "Pneumothorax": 98}
    assert nih_summary["images_with_boxes"] == 880
    assert sum(nih_summary["splits"].values()) == 112_120
    assert nih_summary["split_method"] == "seeded patient-disjoint"
    assert nih_summary["views"] == {"PA": 67_310, "AP": 44_810}


def test_cli_prints_the_summary_json(tmp_path):
    root = generate_cxr_dataset(tmp_path / "cli", n_images=20, size=40)
    result = CliRunner().invoke(data_app, ["summary", "--task", "cxr", "--format", "nih", "--root", str(root),
                                           "--option", "labels=[Nodule, Mass, Effusion]"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == json.loads(json.dumps(dataset_summary(root, "nih", labels=["Nodule", "Mass", "Effusion"])))
    assert printed["labels"] == ["Nodule", "Mass", "Effusion"] and printed["images"] == 20
    bad = CliRunner().invoke(data_app, ["summary", "--format", "nih", "--root", str(root), "--option", "viewz=[PA]"])
    assert bad.exit_code == 2 and "viewz" in bad.output and "views" in bad.output


def test_summary_of_the_synthetic_set_uses_the_official_split(tmp_path):
    root = generate_cxr_dataset(tmp_path / "s", n_images=40, size=48)
    info = json.loads((root / "dataset.json").read_text())
    s = dataset_summary(root, "nih", labels=sorted(info["positives"]))
    assert s["split_method"] == "official" and s["images"] == 40
    assert s["positives"] == info["positives"] and sum(s["boxes"].values()) == info["n_boxes"]
    assert s["splits"]["test"] == info["split_sizes"]["test"]


def test_padchest_and_registry_errors(shared_data):
    s = dataset_summary(shared_data / "cxr/padchest", "padchest", csv_file=shared_data / "cxr/padchest/pc_excerpt.csv")
    assert s["images"] == 10 and s["positives"]["Scoliosis"] == 2 and s["views"] == {"PA": 10}
    assert set(CXR_FORMATS) == {"nih", "chexpert", "padchest", "csv"}
    assert "uncertainty" in loader_options("chexpert")
    with pytest.raises(ConfigError, match="valid: nih, chexpert, padchest, csv"):
        open_cxr_dataset(shared_data, "mimic")
    with pytest.raises(ConfigError, match="uncertanty"):
        open_cxr_dataset(shared_data / "cxr/chexpert", "chexpert", uncertanty="ones")
