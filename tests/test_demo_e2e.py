"""End to end: a tiny ``kdnas demo`` through the CLI writes the summary, plots and report."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kdnas.cli.app import app

SALIENCY_KEYS = {"CC", "KLD", "NSS", "SIM", "AUC_Judd"}


@pytest.mark.slow
def test_tiny_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--tiny", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    for which in ("max", "min"):
        entry = summary["saliency"][which]
        assert SALIENCY_KEYS <= set(entry)
        assert all(isinstance(entry[k], float) and entry[k] == entry[k] for k in SALIENCY_KEYS)  # finite, not NaN
        assert 0 < entry["AUC_Judd"] <= 1 and -1 <= entry["CC"] <= 1
    assert summary["saliency"]["max"]["params"] > summary["saliency"]["min"]["params"]
    cxr = summary["cxr"]
    for key in ("teacher_auc", "student_kd_auc", "student_nokd_auc"):
        assert 0 <= cxr[key] <= 1
    assert cxr["student"]["params"] < cxr["teacher"]["params"]
    for plot in ("saliency_training.png", "saliency_overlays.png", "cxr_training.png", "cxr_roc.png"):
        assert (out / "plots" / plot).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "plots/cxr_roc.png" in report and "plots/saliency_overlays.png" in report
    assert json.loads(result.stdout)["cxr"]["teacher_auc"] == cxr["teacher_auc"]
