"""The trainer: a killed run resumes to the same final metrics; DDP through torchrun on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TINY_SALIENCY = {
    "task": "saliency", "name": "tiny-resume", "seed": 11,
    "data": {"format": "builtin", "builtin": {"n_images": 24, "size": [48, 64], "seed": 3},
             "input_size": [48, 64], "target_size": [48, 64], "density_sigma": 3.0},
    "model": {"name": "salnas_supernet", "space": "salnas_tiny"},
    "train": {"epochs": 3, "batch_size": 8, "optimizer": {"name": "sgd", "lr": 0.05},
              "scheduler": {"name": "cosine_restarts", "t0": 3}, "bn_calibration": {"num_images": 8},
              "progress": False, "tensorboard": False},
    "distill": {"kind": "self_kd"},
}


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KDNAS_CACHE"] = str(tmp_path / "cache")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _write_cfg(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _final_metrics(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {w: {k: v for k, v in e["metrics"].items() if isinstance(v, float)} for w, e in summary["models"].items()}


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tmp_path):
    cfg = _write_cfg(tmp_path, TINY_SALIENCY)
    env = _env(tmp_path)
    cmd = [sys.executable, "-m", "kdnas", "train", str(cfg), "--quiet", "--out"]
    full = tmp_path / "full"
    subprocess.run(cmd + [str(full)], env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd + [str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = killed / "checkpoints" / "epoch-0000.json"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the run never wrote its first checkpoint"
    assert not (killed / "summary.json").exists(), "the run finished before it could be killed"
    assert not (killed / "checkpoints" / "epoch-0002.json").exists()

    again = subprocess.run(cmd + [str(killed)], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently overwrite a run
    subprocess.run(cmd + [str(killed), "--resume"], env=env, check=True, capture_output=True)
    assert _final_metrics(killed) == _final_metrics(full)
    history = json.loads((killed / "summary.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert "max" in _final_metrics(full) and "min" in _final_metrics(full)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tmp_path):
    data = json.loads(json.dumps(TINY_SALIENCY))
    data["train"]["epochs"] = 1
    cfg = _write_cfg(tmp_path, data)
    out = tmp_path / "ddp"
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "kdnas", "train", str(cfg), "--quiet", "--out", str(out)],
                            env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_in_sync"] is True
    assert set(summary["models"]) == {"max", "min"}
