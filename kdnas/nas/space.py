"""Search spaces and architecture genomes.

A :class:`SearchSpace` declares the elastic choices of a MobileNetV3-style encoder (per stage:
widths, depths, kernels, expansion ratios) plus input resolutions and the decoder wiring. An
:class:`ArchConfig` is one point of the space (one subnet). Both are pydantic models, so spaces
and subnets are plain YAML/JSON files and typos are rejected with the list of valid keys.

Kernel size and expansion ratio are chosen per stage (one value for all blocks of the stage), as
in the SalNAS reference (salnas.md §2).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kdnas.utils.errors import ConfigError

SPACES_DIR = Path(__file__).resolve().parents[1] / "configs" / "spaces"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StemSpace(_Strict):
    widths: list[int]
    kernel: int = 3
    stride: int = 2


class StageSpace(_Strict):
    widths: list[int]
    depths: list[int]
    kernels: list[int]
    expands: list[float]
    stride: int = 1
    se: bool = False
    act: str | None = None  # None: the space's activation


class DecoderSpace(_Strict):
    """U-Net decoder wiring. ``taps`` run shallow -> deep (the last one feeds the decoder);
    ``widths_from[i]`` names the encoder feature whose active width is decoder layer i's output
    width, so the decoder shrinks with the sampled encoder (salnas.md §5)."""

    taps: list[str] = ["stem", "stage2", "stage3", "stage5", "final_expand"]
    widths_from: list[str] = ["stage5", "stage3", "stage2", "stage1", "stem"]
    kernel: int = 3
    readout: bool = True

    @model_validator(mode="after")
    def _check(self) -> DecoderSpace:
        if len(self.widths_from) != len(self.taps):
            raise ValueError("decoder.widths_from must have one entry per tap")
        return self


class SearchSpace(_Strict):
    name: str = "custom"
    stem: StemSpace
    stages: list[StageSpace]
    final_expand_ratio: float = 6.0
    resolutions: list[tuple[int, int]] = Field(description="(height, width) choices of the input")
    act: str = "swish"
    se_inner_act: str = "relu"
    se_gate: str = "hsigmoid"
    residual: Literal["attentive", "identity_only"] = "attentive"
    # "always": every block owns a C_in x C_out 1x1 shortcut weight, even when it is an identity
    # (the SalNAS reference does this; it inflates the parameter count, D16). "needed": only where
    # a projection can occur.
    shortcut_weights: Literal["always", "needed"] = "needed"
    bn_eps: float = 1e-5
    bn_momentum: float | None = 0.1
    decoder: DecoderSpace = DecoderSpace()
    dropout: float = 0.2  # before the last decoder conv, max subnet only (SalNAS)
    drop_connect: float = 0.2  # rate * slot / num_slots on identity blocks of drop_connect_stages
    drop_connect_stages: list[int] = [6, 7]  # 1-based stage numbers

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        names = {"stem", "final_expand"} | {f"stage{i + 1}" for i in range(len(self.stages))}
        for ref in list(self.decoder.taps) + list(self.decoder.widths_from):
            if ref not in names:
                raise ValueError(f"decoder refers to {ref!r}; valid names: {sorted(names)}")
        if not self.resolutions:
            raise ValueError("resolutions must not be empty")
        return self

    # ------------------------------------------------------------------ genomes
    @property
    def num_slots(self) -> int:
        return sum(max(s.depths) for s in self.stages)

    def max_arch(self) -> ArchConfig:
        return ArchConfig(resolution=max(self.resolutions, key=lambda r: (r[0] * r[1], r)),
                          widths=[max(self.stem.widths)] + [max(s.widths) for s in self.stages],
                          depths=[max(s.depths) for s in self.stages],
                          kernels=[max(s.kernels) for s in self.stages],
                          expands=[max(s.expands) for s in self.stages])

    def min_arch(self) -> ArchConfig:
        return ArchConfig(resolution=min(self.resolutions, key=lambda r: (r[0] * r[1], r)),
                          widths=[min(self.stem.widths)] + [min(s.widths) for s in self.stages],
                          depths=[min(s.depths) for s in self.stages],
                          kernels=[min(s.kernels) for s in self.stages],
                          expands=[min(s.expands) for s in self.stages])

    def choices(self) -> list[tuple[str, int | None, list]]:
        """Every gene as (field, stage index or None, choices)."""
        genes: list[tuple[str, int | None, list]] = [("resolution", None, [tuple(r) for r in self.resolutions]),
                                                      ("widths", 0, list(self.stem.widths))]
        for i, s in enumerate(self.stages):
            genes.append(("widths", i + 1, list(s.widths)))
        for field, attr in (("depths", "depths"), ("kernels", "kernels"), ("expands", "expands")):
            for i, s in enumerate(self.stages):
                genes.append((field, i, list(getattr(s, attr))))
        return genes

    def random_arch(self, rng: random.Random) -> ArchConfig:
        values = self.max_arch().to_dict()
        for field, idx, options in self.choices():
            _set_gene(values, field, idx, rng.choice(options))
        return ArchConfig(**values)

    def mutate(self, arch: ArchConfig, prob: float, rng: random.Random) -> ArchConfig:
        """Resample each gene with probability ``prob`` to a *different* value (when one exists)."""
        values = arch.to_dict()
        for field, idx, options in self.choices():
            if len(options) > 1 and rng.random() < prob:
                current = _get_gene(values, field, idx)
                _set_gene(values, field, idx, rng.choice([o for o in options if o != current]))
        return ArchConfig(**values)

    def crossover(self, a: ArchConfig, b: ArchConfig, rng: random.Random) -> ArchConfig:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 0.5."""
        values, other = a.to_dict(), b.to_dict()
        for field, idx, _ in self.choices():
            if rng.random() < 0.5:
                _set_gene(values, field, idx, _get_gene(other, field, idx))
        return ArchConfig(**values)

    def validate_arch(self, arch: ArchConfig) -> ArchConfig:
        """Raise ConfigError naming the gene when ``arch`` is not a point of this space."""
        n = len(self.stages)
        for field, length in (("widths", n + 1), ("depths", n), ("kernels", n), ("expands", n)):
            if len(getattr(arch, field)) != length:
                raise ConfigError(f"subnet field {field!r} has {len(getattr(arch, field))} entries; "
                                  f"space {self.name!r} expects {length}")
        for field, idx, options in self.choices():
            value = _get_gene(arch.to_dict(), field, idx)
            if field == "resolution":
                value = tuple(value)
            if value not in options:
                where = field if idx is None else f"{field}[{idx}]"
                raise ConfigError(f"subnet {where} = {value!r} is not in space {self.name!r}; choices: {options}")
        return arch


def _get_gene(values: dict, field: str, idx: int | None):
    return values[field] if idx is None else values[field][idx]


def _set_gene(values: dict, field: str, idx: int | None, value) -> None:
    if idx is None:
        values[field] = list(value) if field == "resolution" else value
    else:
        values[field][idx] = value


class ArchConfig(_Strict):
    """One subnet: input resolution (H, W), widths (stem first, then one per stage), and per-stage
    depth, kernel size and expansion ratio."""

    resolution: tuple[int, int]
    widths: list[int]
    depths: list[int]
    kernels: list[int]
    expands: list[float]

    def to_dict(self) -> dict:
        d = self.model_dump()
        d["resolution"] = list(d["resolution"])
        return {k: list(v) for k, v in d.items()}

    def key(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def load_space(spec: str | Path | dict | SearchSpace) -> SearchSpace:
    """A space by built-in name (``salnas``, ``salnas_tiny``, ...), YAML path, or dict."""
    if isinstance(spec, SearchSpace):
        return spec
    if isinstance(spec, dict):
        return _validate_space(spec, "<dict>")
    path = Path(spec)
    if not path.suffix:
        path = SPACES_DIR / f"{spec}.yaml"
        if not path.is_file():
            valid = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
            raise ConfigError(f"unknown search space {spec!r}; built-in spaces: {valid}, or give a YAML path")
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    return _validate_space(yaml.safe_load(path.read_text()), str(path))


def _validate_space(data: dict, source: str) -> SearchSpace:
    from kdnas.config.errors import format_validation_error

    try:
        return SearchSpace(**data)
    except Exception as exc:  # pydantic.ValidationError
        raise ConfigError(format_validation_error(exc, source, SearchSpace)) from None


def load_arch(spec: str | Path | dict | ArchConfig, space: SearchSpace) -> ArchConfig:
    """A subnet by name (``max``/``min``), JSON/YAML file, or dict; validated against ``space``."""
    if isinstance(spec, ArchConfig):
        return space.validate_arch(spec)
    if isinstance(spec, str) and spec in ("max", "min"):
        return space.max_arch() if spec == "max" else space.min_arch()
    if isinstance(spec, dict):
        data = spec
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"subnet must be 'max', 'min' or a JSON/YAML file; {str(spec)!r} is none of these")
        data = yaml.safe_load(path.read_text())
        data = data.get("arch", data) if isinstance(data, dict) else data
    try:
        return space.validate_arch(ArchConfig(**data))
    except ConfigError:
        raise
    except Exception as exc:
        from kdnas.config.errors import format_validation_error

        raise ConfigError(format_validation_error(exc, str(spec), ArchConfig)) from None
