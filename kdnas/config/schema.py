"""Experiment configuration: YAML files validated by pydantic (unknown keys are errors, D17).

One experiment = task + data + model + train + distill (+ eval for saliency). ``load_config`` reads
the ``task`` key first and validates the rest against that task's schema, so an error names the
offending key and the valid ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from kdnas.config.errors import format_validation_error
from kdnas.utils.errors import ConfigError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# ----------------------------------------------------------------------------- data
class SaliencyAugment(Strict):
    hflip: float = 0.5  # probability; image, map and fixations flip together (x -> W-1-x, fixes D2)
    color_jitter: tuple[float, float, float, float] | None = (0.4, 0.4, 0.4, 0.2)  # SALICON recipe


class SaliencyData(Strict):
    format: str = "builtin"  # builtin | folder | salicon | mit1003 | cat2000 | pascal_s | osie | dut_omron | toronto | fiwi
    root: Path | None = None  # not needed for builtin
    builtin: dict[str, Any] = {}  # generator parameters of the built-in synthetic set
    options: dict[str, Any] = {}  # extra loader options
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    input_size: tuple[int, int] = (288, 384)  # (H, W) fed to the model
    target_size: tuple[int, int] | None = None  # (H, W) of GT and model output in training; None = input_size
    density_sigma: float = 19.0  # px at native size, for datasets without density maps
    normalize: Literal["imagenet", "half"] = "imagenet"  # "half": mean = std = 0.5 (reference non-SALICON, D10)
    augment: SaliencyAugment = SaliencyAugment()
    limit: int | None = None  # use only the first N stimuli of each split (smoke tests)


class CXRAugment(Strict):
    hflip: float = 0.0  # off by default: flips change laterality (heart side)
    scale: tuple[float, float] = (0.85, 1.0)  # random-resized-crop area range (1, 1 = off)
    rotate_deg: float = 5.0


class CXRData(Strict):
    format: str = "builtin"  # builtin | nih | chexpert | padchest | csv
    root: Path | None = None
    builtin: dict[str, Any] = {}
    options: dict[str, Any] = {}  # loader options (views, uncertainty policy, seed, ...)
    labels: list[str] | None = None  # None = the dataset's native label list
    train_split: str = "train"
    val_split: str = "val"
    test_split: str | None = "test"
    input_size: tuple[int, int] = (224, 224)
    augment: CXRAugment = CXRAugment()
    limit: int | None = None


# ----------------------------------------------------------------------------- model
class ModelConfig(Strict):
    name: str  # eeea_c2 | salnas | salnas_supernet | any timm model name
    space: str | None = None  # search space (salnas*): built-in name or YAML path
    subnet: str | None = None  # static salnas: max | min | genome file
    in_chans: int = 3
    input_size: tuple[int, int] | None = None  # multilabel: the model's own resolution (None = data.input_size)
    pretrained: str | None = None  # local weight file ("hub" downloads timm weights; needs a network)
    dropout: float | None = None
    kwargs: dict[str, Any] = {}


# ----------------------------------------------------------------------------- training
class OptimizerConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-5
    no_decay_bn_bias: bool = True  # no weight decay on BN parameters and biases (SalNAS)


class SchedulerConfig(Strict):
    name: Literal["cosine_restarts", "cosine", "constant"] = "cosine_restarts"
    t0: int = 10  # cosine_restarts period in epochs (stepped once per epoch, eta_min 0)
    eta_min: float = 0.0
    warmup_epochs: int = 0


class GradClip(Strict):
    mode: Literal["value", "norm", "none"] = "value"  # SalNAS: element-wise value clipping at 1.0
    max: float = 1.0


class SandwichConfig(Strict):
    num_random: int = 2  # subnets per step = max + num_random + min
    max_dropout: float | None = None  # None: the space's value (0.2)
    max_drop_connect: float | None = None


class BNCalibration(Strict):
    split: Literal["train", "val"] = "train"  # "val" reproduces the reference (D9)
    num_images: int | None = 2000  # None = the whole split
    batch_size: int | None = None


class TrainConfig(Strict):
    epochs: int = 20
    batch_size: int = 64
    eval_batch_size: int | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    grad_clip: GradClip = GradClip()
    amp: bool = False
    channels_last: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    num_workers: int = 0
    sandwich: SandwichConfig = SandwichConfig()
    bn_calibration: BNCalibration = BNCalibration()
    validate_subnets: list[str] = ["max", "min"]  # supernets: subnets scored after each epoch
    deterministic: bool = True
    progress: bool = True
    tensorboard: bool = True
    keep_checkpoints: int = 2


class TeacherConfig(Strict):
    name: str  # any create_model name (timm or kdnas)
    pretrained: str | None = None  # local weights of the teacher
    checkpoint: Path | None = None  # a kdnas run directory (uses its best weights)
    in_chans: int = 3
    input_size: tuple[int, int] | None = None  # None: the student's input size
    kwargs: dict[str, Any] = {}


class FeatureKDConfig(Strict):
    """Attention-transfer feature KD through forward hooks (student layer <- first teacher's layer)."""

    weight: float = 1.0
    p: float = 2.0
    student_layer: str | None = None  # None: the deepest spatial feature (e.g. EEEA-Net-C2 final_expand)
    teacher_layer: str | None = None


class DistillConfig(Strict):
    kind: Literal["none", "self_kd", "teacher"] = "none"
    # Self-KD (salnas.md §9): target = mix_weight * GT + (1 - mix_weight) * teacher, from start_epoch on.
    mix_weight: float = 0.5
    start_epoch: int = 1  # 0-based epoch index; the reference starts at the second epoch
    teacher_update: Literal["swa_of_best", "ema", "last_best"] = "swa_of_best"
    ema_decay: float = 0.999
    teacher_bn: Literal["batch", "running"] = "batch"  # reference: batch statistics
    # Teacher -> student (multi-label): L = (1 - alpha) * L_hard + alpha * L_KD.
    alpha: float = 0.5
    temperature: float = 4.0
    loss: Literal["bernoulli", "logit_mse"] = "bernoulli"
    teachers: list[TeacherConfig] = []
    # Teacher-output cache: "auto" caches when the training views are deterministic (no augmentation)
    # and falls back to the live teacher otherwise, saying so; "on" refuses to run with augmentation.
    cache: Literal["auto", "on", "off"] = "auto"
    # Teacher as soft labeller: "uncertain" replaces -1 (CheXpert uncertain) hard labels with the teacher
    # probability; "unknown" also fills NaN (not mentioned / missing) labels.
    soft_labels: Literal["none", "uncertain", "unknown"] = "none"
    feature_kd: FeatureKDConfig | None = None

    @field_validator("cache", mode="before")
    @classmethod
    def _yaml_on_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare on/off as a boolean
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class SaliencyEval(Strict):
    blur_sigma: float | None = None  # Gaussian blur of predictions at evaluation, in output px (reference: 10.5)
    blur_kernel: int | None = None  # kernel size (reference: 11); None = 2 * ceil(3 sigma) + 1
    preset: str = "mit"
    metrics: list[str] = ["CC", "KLD", "NSS", "SIM", "AUC_Judd"]


class _Experiment(Strict):
    name: str = "experiment"
    seed: int = 3407
    output_dir: Path = Path("runs/experiment")
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()


class SaliencyExperiment(_Experiment):
    task: Literal["saliency"] = "saliency"
    data: SaliencyData = SaliencyData()
    eval: SaliencyEval = SaliencyEval()

    @model_validator(mode="after")
    def _check(self) -> SaliencyExperiment:
        if self.distill.kind == "teacher":
            raise ValueError("distill.kind 'teacher' is for the multilabel task; saliency uses 'self_kd' or 'none'")
        return self


class MultiLabelExperiment(_Experiment):
    task: Literal["multilabel"] = "multilabel"
    data: CXRData = CXRData()

    @model_validator(mode="after")
    def _check(self) -> MultiLabelExperiment:
        if self.distill.kind == "teacher" and not self.distill.teachers:
            raise ValueError("distill.kind 'teacher' needs at least one entry in distill.teachers")
        return self


Experiment = SaliencyExperiment | MultiLabelExperiment
TASK_SCHEMAS: dict[str, type[_Experiment]] = {"saliency": SaliencyExperiment, "multilabel": MultiLabelExperiment}


def parse_config(data: dict[str, Any], source: str = "<config>") -> Experiment:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    task = data.get("task")
    if task not in TASK_SCHEMAS:
        raise ConfigError(f"{source}: 'task' must be one of {sorted(TASK_SCHEMAS)}, got {task!r}")
    schema = TASK_SCHEMAS[task]
    try:
        return schema(**data)
    except Exception as exc:
        raise ConfigError(format_validation_error(exc, source, schema)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment YAML. ``overrides`` use dotted keys (``train.epochs``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return parse_config(data, str(path))


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
    node[parts[-1]] = value


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


