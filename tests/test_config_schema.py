"""Experiment configs: typos name the valid keys, every shipped config validates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kdnas.api import CONFIGS_DIR, resolve_config_path
from kdnas.config.schema import load_config, parse_config
from kdnas.nas.space import load_space
from kdnas.utils.errors import ConfigError

SHIPPED = sorted(CONFIGS_DIR.glob("*.yaml")) + sorted((CONFIGS_DIR / "demo").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.task in ("saliency", "multilabel")
    if cfg.model.space:
        load_space(cfg.model.space)


def test_typo_names_the_valid_keys(tmp_path):
    data = yaml.safe_load((CONFIGS_DIR / "demo" / "saliency.yaml").read_text())
    data["train"]["epochz"] = 3
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "typo.yaml" in msg and "unknown key 'epochz' in train" in msg
    assert "epochs" in msg and "batch_size" in msg and "sandwich" in msg


def test_nested_typo_and_bad_values():
    with pytest.raises(ConfigError, match=r"unknown key 'lrr' in train.optimizer; valid keys: .*lr.*momentum"):
        parse_config({"task": "saliency", "model": {"name": "salnas_supernet"}, "train": {"optimizer": {"lrr": 1}}})
    with pytest.raises(ConfigError, match=r"'task' must be one of \['multilabel', 'saliency'\]"):
        parse_config({"task": "detection"})
    with pytest.raises(ConfigError, match="train.epochs"):
        parse_config({"task": "multilabel", "model": {"name": "eeea_c2"}, "train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        parse_config({"task": "multilabel"})
    with pytest.raises(ConfigError, match="needs at least one entry in distill.teachers"):
        parse_config({"task": "multilabel", "model": {"name": "eeea_c2"}, "distill": {"kind": "teacher"}})


def test_space_typo_and_unknown_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown search space 'salnaz'; built-in spaces"):
        load_space("salnaz")
    bad = yaml.safe_load((CONFIGS_DIR / "spaces" / "salnas.yaml").read_text())
    bad["stages"][0]["kernel"] = [3]
    with pytest.raises(ConfigError, match=r"unknown key 'kernel' in stages.0; valid keys: .*kernels"):
        load_space(bad)


def test_config_lookup_by_name():
    assert resolve_config_path("salnas_tiny") == CONFIGS_DIR / "salnas_tiny.yaml"
    with pytest.raises(ConfigError, match="shipped example configs"):
        resolve_config_path(Path("no_such_config"))
