"""Teacher-output cache: equal to the live teacher, reused, and refused when augmentation makes it stale."""

from __future__ import annotations

import pytest
import torch

from kdnas.config.schema import parse_config
from kdnas.train.trainer import Trainer
from kdnas.utils.errors import ConfigError

NO_AUG = {"hflip": 0.0, "scale": [1.0, 1.0], "rotate_deg": 0.0}


def _cfg(tmp_path, teacher_run, cache: str, augment: dict | None = None):
    return parse_config({
        "task": "multilabel", "seed": 0, "output_dir": str(tmp_path),
        "data": {"format": "builtin", "builtin": {"n_images": 120, "size": 64, "seed": 0}, "input_size": [64, 64],
                 "augment": augment or NO_AUG},
        "model": {"name": "eeea_c2"},
        "train": {"epochs": 1, "batch_size": 16, "progress": False, "tensorboard": False},
        "distill": {"kind": "teacher", "cache": cache, "teachers": [{"name": "eeea_c2", "checkpoint": str(teacher_run)}]},
    })


def test_cached_logits_equal_the_live_teacher(tiny_cxr_run, tmp_path):
    trainer = Trainer(_cfg(tmp_path / "a", tiny_cxr_run, "on"), progress=False)
    kd = trainer.distiller
    assert kd.cache is not None and kd.cache_note.startswith("on:")
    batch = next(iter(trainer.loader("train", 0, train=True)))
    cached = kd.teacher_output(batch, 0)
    live = kd.live_teacher_logits(batch["image"])
    assert torch.allclose(cached, live, atol=1e-5)
    assert kd.cache.meta["n_filled"] == len(trainer.sets["train"])
    again = Trainer(_cfg(tmp_path / "b", tiny_cxr_run, "on"), progress=False)  # new run, same teacher + data
    assert again.distiller.cache.meta["key"] == kd.cache.meta["key"]


def test_augmentation_disables_the_cache_and_says_so(tiny_cxr_run, tmp_path):
    aug = {"hflip": 0.0, "scale": [0.8, 1.0], "rotate_deg": 5.0}
    with pytest.raises(ConfigError, match="caching is invalid here: training augmentation changes the pixels"):
        Trainer(_cfg(tmp_path / "c", tiny_cxr_run, "on", aug), progress=False)
    trainer = Trainer(_cfg(tmp_path / "d", tiny_cxr_run, "auto", aug), progress=False)
    assert trainer.distiller.cache is None and "live teacher" in trainer.distiller.cache_note
