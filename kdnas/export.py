"""Deployment: ONNX export, INT8 post-training quantisation, and measured latency (onnxruntime).

``kdnas export RUN`` writes ``model.onnx`` (float32) and optionally ``model.int8.onnx`` (static QDQ
quantisation, per-channel weights, calibrated on the run's training images), checks that onnxruntime
reproduces PyTorch, re-scores both files on the validation split with the task's own metrics, and
times PyTorch eager, ORT float32 and ORT INT8 on the same input (batch 1, median of N runs).

Graph inputs: saliency models take the normalised RGB image at the run's input size and return the
map at its training output size (resize to the stimulus outside the graph); CXR models take the grey
[0, 1] image at the run's input size (normalisation is inside the graph) and return logits.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from kdnas.utils.errors import KdnasError
from kdnas.utils.io import atomic_path, atomic_write_json


class _FixedOutput(nn.Module):
    """A saliency model with its output size baked in (ONNX graphs take one tensor)."""

    def __init__(self, model: nn.Module, output_size: tuple[int, int]):
        super().__init__()
        self.model, self.output_size = model, tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, output_size=self.output_size)


class OrtModel(nn.Module):
    """An onnxruntime session behind the ``model(x[, output_size])`` call the tasks use (for re-scoring)."""

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0])


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = 18) -> str:
    """Export with a dynamic batch dimension; returns the exporter used.

    The torch.export-based exporter (needs ``onnxscript``, in the ``deploy`` extra) is preferred; the legacy
    TorchScript exporter is the fallback for installs without it.
    """
    import importlib.util
    import warnings

    model = model.eval()
    dynamo = importlib.util.find_spec("onnxscript") is not None
    with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter; parity is checked after export
        if dynamo:
            torch.onnx.export(model, (example,), str(tmp), dynamo=True, opset_version=opset, input_names=["input"],
                              output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                              verbose=False, report=False, external_data=False)  # one self-contained file
        else:
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=17, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return "torch.export (dynamo)" if dynamo else "TorchScript (legacy)"


def quantize_int8(fp32: Path, int8: Path, calibration: list[np.ndarray]) -> None:
    """Static INT8 (QDQ, per-channel weights, MinMax calibration) with onnxruntime.quantization."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"input": item}

    with atomic_path(int8, suffix=".onnx") as tmp:
        prep = tmp.with_name(tmp.stem + ".prep.onnx")
        try:
            quant_pre_process(str(fp32), str(prep), skip_symbolic_shape=True)
            quantize_static(str(prep), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            prep.unlink(missing_ok=True)


def _time(fn, runs: int, warmup: int) -> dict[str, float]:
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        fn()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": 1000 * times[len(times) // 2], "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))]}


def export_run(run_dir: Path, out: Path, subnet: str | None = None, int8: bool = True, calib_images: int = 64,
               runs: int = 50, warmup: int = 10, threads: int | None = None) -> dict[str, Any]:
    from kdnas import api

    model, task = api.load_model(run_dir, subnet)
    sets = task.datasets(calib_images=calib_images)
    calib = DataLoader(sets["calib"] if "calib" in sets else sets["train"], batch_size=1, collate_fn=task.collate)
    val = DataLoader(sets["val"], batch_size=16, collate_fn=task.collate)
    net = _FixedOutput(model, task.target_size) if task.name == "saliency" else model
    example = next(iter(calib))["image"]
    out.mkdir(parents=True, exist_ok=True)
    fp32, q8 = out / "model.onnx", out / "model.int8.onnx"
    exporter = export_onnx(net, example, fp32)
    ort32 = OrtModel(fp32, threads)
    with torch.no_grad():
        parity = float((ort32(example) - net(example)).abs().max())
    if parity > 1e-3:
        raise KdnasError(f"onnxruntime output differs from PyTorch by {parity:.3g} (> 1e-3); export is not faithful")
    files = {"float32": fp32}
    if int8:
        quantize_int8(fp32, q8, [b["image"].numpy() for _, b in zip(range(calib_images), calib, strict=False)])
        files["int8"] = q8
    threads_used = threads or torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    with torch.no_grad():
        reference = _outputs(net, val)
        report: dict[str, Any] = {"pytorch": {"latency": _time(lambda: net(example), runs, warmup),
                                              "metrics": _metrics(task, model, val)}}
        for name, path in files.items():
            sess = OrtModel(path, threads)
            diff = (_outputs(sess, val) - reference).abs()
            report[f"onnxruntime_{name}"] = {"file": str(path), "size_mb": round(path.stat().st_size / 1e6, 3),
                                             "latency": _time(lambda s=sess: s(example), runs, warmup),
                                             "metrics": _metrics(task, sess, val),
                                             "output_diff_vs_pytorch": {"max_abs": float(diff.max()),
                                                                        "mean_abs": float(diff.mean())}}
    summary = {"run": str(run_dir), "subnet": subnet, "task": task.name, "input_shape": list(example.shape),
               "exporter": exporter, "torch": torch.__version__,
               "parity_max_abs_diff_float32": parity, "results": report,
               "protocol": {"latency": f"batch 1, median of {runs} runs after {warmup} warm-up, CPU, "
                                       f"{threads_used} threads", "metrics": "the task's validation metrics "
                                       "(training protocol) on the validation split",
                            "int8": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, "
                                    f"MinMax calibration on {calib_images} training images" if int8 else None}}
    atomic_write_json(out / "export.json", summary)
    return summary


def _outputs(model, loader) -> torch.Tensor:
    return torch.cat([model(b["image"]).float() for b in loader])


def _metrics(task, model, loader) -> dict[str, Any]:
    summary, _ = task.evaluate(model, loader, torch.device("cpu"))
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}
