"""EEEA-Net-C2: a static OFA-MobileNetV3 subnet (cxr-kd.md §1), with darmo weight compatibility.

The layer table below is the exact architecture of darmo's ``eeea_c2`` config. Parameter counts:
5,995,904 with 1000 classes and 4,732,838 with 14 classes (tests check both).

Fixes over darmo: pooling is followed by ``flatten`` (darmo's ``squeeze`` breaks batch size 1 and
single-image Grad-CAM), ``dropout`` before the classifier is honoured, and a 1-channel (grey) stem is
available; pretrained RGB stem weights are summed over channels for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from kdnas.models.layers import ConvBnAct, MBConv, make_divisible
from kdnas.models.registry import register_model
from kdnas.utils.errors import DataError

# (in, out, kernel, stride, mid, se, act) for blocks b0..b18; residual = identity when stride 1 and in == out.
EEEA_C2_BLOCKS: tuple[tuple[int, int, int, int, int, bool, str], ...] = (
    (16, 16, 3, 1, 16, False, "relu"),
    (16, 24, 3, 2, 48, False, "relu"),
    (24, 24, 5, 1, 96, False, "relu"),
    (24, 24, 3, 1, 72, False, "relu"),
    (24, 40, 7, 2, 96, True, "relu"),
    (40, 40, 3, 1, 120, True, "relu"),
    (40, 40, 7, 1, 120, True, "relu"),
    (40, 80, 5, 2, 240, False, "hswish"),
    (80, 80, 7, 1, 480, False, "hswish"),
    (80, 80, 5, 1, 240, False, "hswish"),
    (80, 80, 3, 1, 240, False, "hswish"),
    (80, 112, 7, 1, 480, True, "hswish"),
    (112, 112, 5, 1, 448, True, "hswish"),
    (112, 112, 3, 1, 336, True, "hswish"),
    (112, 112, 3, 1, 336, True, "hswish"),
    (112, 160, 5, 2, 672, True, "hswish"),
    (160, 160, 3, 1, 960, True, "hswish"),
    (160, 160, 5, 1, 960, True, "hswish"),
    (160, 160, 7, 1, 480, True, "hswish"),
)
# Feature taps by name -> (module path, stride): used by feature KD and CAM target layers.
EEEA_C2_TAPS = {"stem": ("stem", 2), "stride4": ("blocks.3", 4), "stride8": ("blocks.6", 8),
                "stride16": ("blocks.14", 16), "final_expand": ("final_expand", 32)}


class EEEANetC2(nn.Module):
    """EEEA-Net-C2 classifier. ``forward`` returns raw logits (multi-label: one logit per class)."""

    default_input_size = (224, 224)

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0,
                 drop_connect: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.stem = ConvBnAct(in_chans, 16, 3, 2, act="hswish")
        blocks = []
        for i, (cin, cout, k, s, mid, se, act) in enumerate(EEEA_C2_BLOCKS):
            blocks.append(MBConv(cin, cout, k, s, mid, se_hidden=make_divisible(mid // 4) if se else None,
                                 act=act, residual="identity_only", has_expand=mid != cin,
                                 drop_connect=drop_connect * i / len(EEEA_C2_BLOCKS)))
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = ConvBnAct(160, 960, 1, act="hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix = ConvBnAct(960, 1280, 1, act="hswish", bn=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_expand(self.blocks(self.stem(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix(self.pool(x)).flatten(1)  # flatten, never squeeze: batch size 1 works
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, dropout: float | None = None) -> None:
        self.num_classes = num_classes
        self.classifier = nn.Linear(1280, num_classes)
        if dropout is not None:
            self.dropout = nn.Dropout(dropout)


# kdnas name pattern -> darmo name pattern (darmo builds the net with OFA 0.0.4 layer classes).
_DARMO_KEY_MAP = (
    (r"^stem\.", "first_conv."),
    (r"^blocks\.(\d+)\.expand\.", r"blocks.\1.mobile_inverted_conv.inverted_bottleneck."),
    (r"^blocks\.(\d+)\.depthwise\.", r"blocks.\1.mobile_inverted_conv.depth_conv."),
    (r"^blocks\.(\d+)\.se\.(reduce|expand)\.", r"blocks.\1.mobile_inverted_conv.depth_conv.se.fc.\2."),
    (r"^blocks\.(\d+)\.project\.", r"blocks.\1.mobile_inverted_conv.point_linear."),
    (r"^final_expand\.", "final_expand_layer."),
    (r"^feature_mix\.", "feature_mix_layer."),
    (r"^classifier\.", "classifier.linear."),
)


def to_darmo_key(key: str) -> str:
    for pattern, repl in _DARMO_KEY_MAP:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise KeyError(f"no darmo name for kdnas key {key!r}")


def from_darmo_key(key: str) -> str:
    """Map a darmo ``eeea-c2.pt`` key to kdnas (also accepts darmo's reset ``classifier.weight``)."""
    rules = (
        (r"^first_conv\.", "stem."),
        (r"^blocks\.(\d+)\.mobile_inverted_conv\.inverted_bottleneck\.", r"blocks.\1.expand."),
        (r"^blocks\.(\d+)\.mobile_inverted_conv\.depth_conv\.se\.fc\.(reduce|expand)\.", r"blocks.\1.se.\2."),
        (r"^blocks\.(\d+)\.mobile_inverted_conv\.depth_conv\.", r"blocks.\1.depthwise."),
        (r"^blocks\.(\d+)\.mobile_inverted_conv\.point_linear\.", r"blocks.\1.project."),
        (r"^final_expand_layer\.", "final_expand."),
        (r"^feature_mix_layer\.", "feature_mix."),
        (r"^classifier\.linear\.", "classifier."),
        (r"^classifier\.", "classifier."),
    )
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    raise KeyError(f"unexpected key {key!r} in a darmo eeea_c2 state dict")


def to_darmo_state_dict(model: EEEANetC2) -> dict[str, torch.Tensor]:
    """Export in darmo's layout (as released: OFA ``LinearLayer`` classifier)."""
    return {to_darmo_key(k): v for k, v in model.state_dict().items()}


def load_darmo_weights(model: EEEANetC2, source: str | Path | dict, strict: bool = True) -> list[str]:
    """Load darmo ``eeea-c2.pt`` weights (a local file or a state dict) into ``model``.

    The classifier is skipped (kept freshly initialised) when its class count differs; a grey
    (1-channel) stem gets the sum of the RGB stem weights. Returns the list of skipped keys.
    """
    path = None
    if not isinstance(source, dict):
        from kdnas.utils.io import safe_torch_load

        path = Path(source)
        source = safe_torch_load(path)
        if isinstance(source, dict) and "state_dict" in source and isinstance(source["state_dict"], dict):
            source = source["state_dict"]
    kdnas_layout = any(k.startswith("stem.") for k in source)  # a kdnas checkpoint, not darmo's
    mapped: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key.endswith("num_batches_tracked"):
            continue  # darmo files may or may not carry it
        try:
            mapped[key if kdnas_layout else from_darmo_key(key)] = value
        except KeyError as exc:
            raise DataError(path, str(exc), expected="darmo eeea_c2 keys") from None
    skipped = []
    own = model.state_dict()
    stem_w = mapped.get("stem.conv.weight")
    if stem_w is not None and stem_w.shape[1] != own["stem.conv.weight"].shape[1]:
        if own["stem.conv.weight"].shape[1] != 1:
            raise DataError(path, f"stem has {stem_w.shape[1]} input channels, model expects "
                            f"{own['stem.conv.weight'].shape[1]}")
        mapped["stem.conv.weight"] = stem_w.sum(1, keepdim=True)
    for key in ("classifier.weight", "classifier.bias"):
        if key in mapped and mapped[key].shape != own[key].shape:
            skipped.append(key)
            del mapped[key]
    for key, value in mapped.items():
        if key in own and own[key].shape != value.shape:
            raise DataError(path, f"{key}: shape {tuple(value.shape)} does not match the model's {tuple(own[key].shape)}")
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked") and k not in skipped]
    if strict and (missing or unexpected):
        raise DataError(path, f"state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return skipped


DARMO_EEEA_C2_URL = "https://github.com/jitdee-ai/darmo/releases/download/0.0.1/eeea-c2.pt"


def download_darmo_weights() -> Path:
    """Fetch darmo's ImageNet ``eeea-c2.pt`` into the torch hub cache (only on explicit request)."""
    import torch.hub

    target = Path(torch.hub.get_dir()) / "checkpoints" / "eeea-c2.pt"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(DARMO_EEEA_C2_URL, str(target), progress=True)
    return target


@register_model("eeea_c2")
def eeea_c2(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.0, drop_connect: float = 0.0,
            pretrained: str | Path | bool | None = None, **kwargs) -> EEEANetC2:
    """EEEA-Net-C2. ``pretrained``: a local darmo ``eeea-c2.pt`` or kdnas checkpoint file, or ``True`` to
    download darmo's ImageNet weights (needs a network; never done implicitly)."""
    if kwargs:
        raise TypeError(f"eeea_c2 got unexpected options {sorted(kwargs)}; valid: num_classes, in_chans, "
                        "dropout, drop_connect, pretrained")
    model = EEEANetC2(num_classes, in_chans, dropout, drop_connect)
    if pretrained is True:
        pretrained = download_darmo_weights()
    if pretrained:
        load_darmo_weights(model, pretrained)
    return model
