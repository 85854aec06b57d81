"""Teacher-output caching: one training epoch of (a) the student alone, (b) KD with a live teacher,
(c) KD with the memory-mapped teacher cache, measured in one run with the real trainer.

    python benchmarks/kd_cache.py [--images 600] [--teacher densenet121] [--epochs 1]

Prints one JSON object. Goal: (c) <= 1.15 x (a). The cache build (one teacher pass over the training
set, done once per teacher/dataset) is reported separately. Setup: the built-in synthetic CXR set
without augmentation (cacheable), EEEA-Net-C2 student at 64 px, a timm teacher at 128 px with random
weights (timing does not depend on them), batch 32, CPU threads as given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from kdnas.config.schema import parse_config
from kdnas.train.trainer import Trainer


def _config(out: Path, images: int, teacher: dict | None, cache: str, size: int) -> dict:
    cfg = {"task": "multilabel", "name": "kd-cache-bench", "seed": 0, "output_dir": str(out),
           "data": {"format": "builtin", "builtin": {"n_images": images, "size": size, "seed": 0},
                    "input_size": [size, size], "augment": {"hflip": 0.0, "scale": [1.0, 1.0], "rotate_deg": 0.0}},
           "model": {"name": "eeea_c2", "input_size": [64, 64]},
           "train": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "adamw", "lr": 1e-3},
                     "scheduler": {"name": "constant"}, "progress": False, "tensorboard": False}}
    if teacher:
        cfg["distill"] = {"kind": "teacher", "cache": cache, "teachers": [teacher]}
    return cfg


def _epoch_seconds(cfg: dict, epochs: int) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    trainer = Trainer(parse_config(cfg), progress=False)
    setup = time.perf_counter() - t0
    trainer.train_epoch(0)  # warm-up epoch (allocator, first-call overheads)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        trainer.train_epoch(epoch)
    return (time.perf_counter() - t0) / epochs, setup, trainer.distiller.describe()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--teacher", default="densenet121")
    ap.add_argument("--teacher-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from kdnas.models.registry import create_model

        weights = tmp / "teacher.pth"
        torch.save(create_model(args.teacher, num_classes=6).state_dict(), weights)
        teacher = {"name": args.teacher, "pretrained": str(weights), "input_size": [args.teacher_size] * 2}
        size = args.teacher_size
        a, _, _ = _epoch_seconds(_config(tmp / "a", args.images, None, "off", size), args.epochs)
        b, _, _ = _epoch_seconds(_config(tmp / "b", args.images, teacher, "off", size), args.epochs)
        c, build, desc = _epoch_seconds(_config(tmp / "c", args.images, teacher, "on", size), args.epochs)
    result = {"student_only_epoch_s": round(a, 3), "kd_live_teacher_epoch_s": round(b, 3),
              "kd_cached_teacher_epoch_s": round(c, 3), "ratio_live_vs_student": round(b / a, 3),
              "ratio_cached_vs_student": round(c / a, 3), "goal_ratio_cached": 1.15, "goal_met": c / a <= 1.15,
              "cache_build_and_setup_s": round(build, 3), "cache": desc["cache"],
              "setup": {"images": args.images, "student": "eeea_c2 @ 64 px", "teacher": f"{args.teacher} @ {size} px",
                        "batch_size": 32, "threads": torch.get_num_threads(), "epochs_timed": args.epochs,
                        "device": "cpu", "torch": torch.__version__}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
