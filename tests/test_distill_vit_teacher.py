"""KD from a timm ViT teacher into EEEA-Net-C2, with attention transfer across CNN/Transformer features."""

from __future__ import annotations

import timm
import torch

from kdnas.config.schema import parse_config
from kdnas.train.trainer import Trainer


def test_vit_teacher_with_feature_kd_trains(tmp_path, kdnas_cache):
    weights = tmp_path / "vit.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=64, num_classes=6).state_dict(), weights)
    cfg = parse_config({
        "task": "multilabel", "seed": 0, "output_dir": str(tmp_path / "run"),
        "data": {"format": "builtin", "builtin": {"n_images": 120, "size": 64, "seed": 0}, "input_size": [64, 64]},
        "model": {"name": "eeea_c2"},
        "train": {"epochs": 1, "batch_size": 16, "progress": False, "tensorboard": False},
        "distill": {"kind": "teacher", "alpha": 0.5, "temperature": 2.0, "feature_kd": {"weight": 1.0},
                    "teachers": [{"name": "vit_tiny_patch16_224", "pretrained": str(weights),
                                  "kwargs": {"img_size": 64}}]},
    })
    trainer = Trainer(cfg, progress=False)
    kd = trainer.distiller
    assert kd.teacher_tap.model is kd.teachers[0]
    stats = trainer.train_epoch(0)
    assert {"bce", "kd", "at"} <= set(stats) and all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert kd.teacher_tap.spatial().shape[-2:] == (4, 4)  # 64 px / 16 px patches, class token dropped
    assert kd.describe()["feature_kd"]["weight"] == 1.0
