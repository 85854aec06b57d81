"""Label spaces, harmonisation tables, uncertainty policies and the teacher-soft-label contract."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import torch

from kdnas.data.cxr import (
    CANONICAL_LABELS,
    CHEXPERT_LABELS,
    NIH_LABELS,
    ConcatCXRDataset,
    NIHDataset,
    apply_uncertainty,
    check_resolved,
    fill_uncertain,
    harmonise,
    harmonise_labels,
    label_mapping,
    open_cxr_dataset,
)
from kdnas.data.cxr.labels import PADCHEST_LABELS
from kdnas.utils.errors import ConfigError, DataError


def test_canonical_space_is_the_18_label_list():
    assert len(CANONICAL_LABELS) == 18 and set(NIH_LABELS) <= set(CANONICAL_LABELS)
    assert set(CANONICAL_LABELS) - set(NIH_LABELS) == {"Lung Lesion", "Fracture", "Lung Opacity",
                                                       "Enlarged Cardiomediastinum"}
    assert CANONICAL_LABELS[:3] == ("Atelectasis", "Consolidation", "Infiltration")


def test_per_dataset_tables():
    nih = label_mapping(NIH_LABELS, "nih")
    assert nih == {n: n for n in NIH_LABELS}
    chex = label_mapping(CHEXPERT_LABELS, "chexpert")
    assert chex["Pleural Effusion"] == "Effusion"
    assert "No Finding" not in chex and "Support Devices" not in chex and "Pleural Other" not in chex
    assert len(chex) == 11
    pc = label_mapping(PADCHEST_LABELS, "padchest")
    assert pc["Pleural_Thickening"] == "Pleural_Thickening" and "Scoliosis" not in pc and "Tube" not in pc
    # outside the canonical target, names map to themselves or through common synonyms
    assert label_mapping(["Pleural Effusion", "Infiltrate", "Foo"], None, ["Effusion", "Infiltration"]) == {
        "Pleural Effusion": "Effusion", "Infiltrate": "Infiltration"}
    with pytest.raises(ConfigError, match="not in the target"):
        label_mapping(["A"], mapping={"A": "Nope"})


def test_harmonise_labels_masks_missing_labels_with_nan():
    chex = np.full((2, 14), np.nan, dtype=np.float32)
    names = list(CHEXPERT_LABELS)
    chex[0, names.index("Pleural Effusion")] = 1
    chex[0, names.index("Fracture")] = 0
    chex[1, names.index("Cardiomegaly")] = -1
    out = harmonise_labels(chex, names, format_name="chexpert")
    canon = list(CANONICAL_LABELS)
    assert out.shape == (2, 18)
    assert out[0, canon.index("Effusion")] == 1 and out[0, canon.index("Fracture")] == 0
    assert out[1, canon.index("Cardiomegaly")] == -1
    for missing in ("Infiltration", "Emphysema", "Fibrosis", "Hernia", "Nodule", "Mass", "Pleural_Thickening"):
        assert np.isnan(out[:, canon.index(missing)]).all()


def test_several_sources_to_one_target():
    names = ["Nodule", "Mass", "Lesion"]
    y = np.array([[0, 1, np.nan], [0, 0, np.nan], [np.nan, np.nan, np.nan], [-1, 0, np.nan], [-1, 1, 0],
                  [0.2, np.nan, 0.6]], dtype=np.float32)
    out = harmonise_labels(y, names, ["Nodule/Mass"], mapping={"Nodule": "Nodule/Mass", "Mass": "Nodule/Mass",
                                                               "Lesion": "Nodule/Mass"})
    np.testing.assert_allclose(out[:, 0], [1, 0, np.nan, -1, 1, 0.6])


def test_harmonised_nih_dataset_keeps_images_and_renames_boxes(shared_data, tmp_path):
    nih = shared_data / "cxr/nih"
    wanted = {p.name for p in (nih / "images-64").iterdir()}
    with gzip.open(nih / "Data_Entry_2017_v2020.csv.gz", "rt") as fh:
        lines = fh.read().splitlines()
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in wanted]) + "\n")
    shutil.copy(nih / "BBox_List_2017.csv.gz", tmp_path)
    ds = NIHDataset(tmp_path, split=None, images_dir=nih / "images-64")
    h = harmonise(ds)
    assert h.label_names == list(CANONICAL_LABELS) and len(h) == len(ds)
    canon = list(CANONICAL_LABELS)
    for i in range(len(ds)):
        a, b = ds[i], h[i]
        np.testing.assert_array_equal(a.image, b.image)
        for name in NIH_LABELS:
            assert b.labels[canon.index(name)] == a.labels[list(NIH_LABELS).index(name)]
        assert np.isnan(b.labels[canon.index("Lung Opacity")])
        assert [(x.label, x.x) for x in a.boxes] == [(x.label, x.x) for x in b.boxes]
    assert h.split_info["unmapped_targets"] == ["Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]
    via_registry = open_cxr_dataset(tmp_path, "nih", split=None, harmonised=True, images_dir=nih / "images-64")
    assert via_registry.label_names == list(CANONICAL_LABELS)
    both = ConcatCXRDataset([h, via_registry])
    assert len(both) == 2 * len(h)
    with pytest.raises(ConfigError, match="harmonise"):
        ConcatCXRDataset([ds, h])


def test_uncertainty_policies_by_hand():
    y = np.array([[1, 0, -1, np.nan], [-1, -1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(apply_uncertainty(y, "ignore"), [[1, 0, np.nan, np.nan], [np.nan, np.nan, 0, 1]])
    np.testing.assert_array_equal(apply_uncertainty(y, "U-Zeros"), [[1, 0, 0, np.nan], [0, 0, 0, 1]])
    np.testing.assert_array_equal(apply_uncertainty(y, "ones"), [[1, 0, 1, np.nan], [1, 1, 0, 1]])
    np.testing.assert_array_equal(apply_uncertainty(y, "teacher"), y)
    smooth = apply_uncertainty(y, "smooth", seed=3)
    unc = y == -1
    assert np.all((smooth[unc] >= 0.55) & (smooth[unc] <= 0.85))
    np.testing.assert_array_equal(smooth[~unc & ~np.isnan(y)], y[~unc & ~np.isnan(y)])
    expected = np.random.default_rng(3).uniform(0.55, 0.85, size=y.shape).astype(np.float32)[unc]
    np.testing.assert_array_equal(smooth[unc], expected)
    with pytest.raises(ConfigError, match="valid"):
        apply_uncertainty(y, "coinflip")


def test_teacher_fill_contract_numpy_and_torch():
    y = np.array([[1, -1, np.nan], [-1, 0, 1]], dtype=np.float32)
    p = np.array([[0.9, 0.3, 0.5], [0.8, 0.1, 0.2]], dtype=np.float32)
    out = fill_uncertain(y, p)
    np.testing.assert_allclose(out, [[1, 0.3, np.nan], [0.8, 0, 1]])
    check_resolved(out)
    with pytest.raises(DataError, match="unresolved"):
        check_resolved(y)
    with pytest.raises(DataError, match="logits"):
        fill_uncertain(y, p * 10)
    t = fill_uncertain(torch.tensor(y), torch.tensor(p))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), out)
