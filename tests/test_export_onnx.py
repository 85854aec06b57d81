"""ONNX export, INT8 quantisation and latency measurement of trained runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kdnas.cli.app import app


@pytest.mark.slow
@pytest.mark.parametrize("run_fixture, subnet", [("tiny_cxr_run", None), ("tiny_saliency_run", "min")])
def test_export_float32_and_int8(request, tmp_path, run_fixture, subnet):
    run = request.getfixturevalue(run_fixture)
    args = ["export", str(run), "--out", str(tmp_path), "--runs", "5", "--calib-images", "8"]
    result = CliRunner().invoke(app, args + (["--subnet", subnet] if subnet else []))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "export.json").read_text())
    assert summary["parity_max_abs_diff_float32"] < 1e-4
    res = summary["results"]
    assert set(res) == {"pytorch", "onnxruntime_float32", "onnxruntime_int8"}
    for r in res.values():
        assert r["latency"]["median_ms"] > 0
    assert res["onnxruntime_float32"]["output_diff_vs_pytorch"]["max_abs"] < 1e-4  # same outputs on the val split
    assert res["onnxruntime_int8"]["output_diff_vs_pytorch"]["mean_abs"] < 0.1  # quantised, but close
    assert set(res["onnxruntime_int8"]["metrics"]) == set(res["pytorch"]["metrics"])
    assert res["onnxruntime_int8"]["size_mb"] < 0.5 * res["onnxruntime_float32"]["size_mb"]
