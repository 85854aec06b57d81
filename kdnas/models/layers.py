"""Static building blocks shared by every kdnas network.

These are plain ``nn.Module`` layers: an extracted NAS subnet and a hand-designed network
(EEEA-Net-C2) are built from the same pieces, so they train, export to ONNX and run alone.
The elastic (weight-slicing) counterparts live in :mod:`kdnas.nas.elastic`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "relu6", "swish", "hswish", "hsigmoid", "sigmoid", "none")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` without dropping more than 10% (MobileNet rule)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth ("drop-connect"): zero whole samples with probability ``rate``."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def create_activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "hsigmoid":
        return HardSigmoid()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


class HardSigmoid(nn.Module):
    """ReLU6(x + 3) / 6, the MobileNetV3 / OFA gate (not PyTorch's Hardsigmoid slope variant)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


class ConvBnAct(nn.Module):
    """Conv2d (no bias by default) -> optional BatchNorm -> activation, "same" padding k // 2."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
                 act: str = "relu", bn: bool = True, bias: bool = False, bn_eps: float = 1e-5,
                 bn_momentum: float | None = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum) if bn else None
        self.act = create_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce (bias) -> inner act -> 1x1 expand (bias) -> gate -> channel multiply."""

    def __init__(self, channels: int, hidden: int, inner_act: str = "relu", gate: str = "hsigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.inner_act = create_activation(inner_act)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = create_activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.expand(self.inner_act(self.reduce(s))))
        return x * s


def pool_shortcut(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Average-pool with kernel = stride; odd sizes are padded by 1 so the output matches the
    strided depthwise conv's ``ceil(size / stride)``."""
    if stride == 1:
        return x
    pad_h, pad_w = int(x.shape[2]) % 2, int(x.shape[3]) % 2  # int(): a constant in exported graphs
    return F.avg_pool2d(x, stride, stride, padding=(pad_h, pad_w)) if (pad_h or pad_w) else F.avg_pool2d(x, stride)


class Shortcut(nn.Module):
    """AttentiveNAS-style residual branch: identity, or avg-pool plus a 1x1 projection (no BN, no bias).

    ``keep_unused_weight`` registers a ``C_in x C_out`` 1x1 weight even for an identity branch. It is
    never used; it exists only so that the parameter count matches the SalNAS reference, which
    allocates it (salnas.md §3, defect D16). It is reported as a registered, not effective, parameter.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, keep_unused_weight: bool = False):
        super().__init__()
        self.stride = stride
        self.is_identity = stride == 1 and in_ch == out_ch
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else None
        if self.is_identity and keep_unused_weight:
            self.unused_weight = nn.Parameter(torch.zeros(out_ch, in_ch, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pool_shortcut(x, self.stride)
        return self.conv(x) if self.conv is not None else x


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project (+ residual).

    ``residual``:
      * ``"identity_only"`` (MobileNetV3 / OFA / EEEA): identity when stride 1 and in == out, else none;
      * ``"attentive"`` (AttentiveNAS / SalNAS): every block has a residual, identity or
        avg-pool + 1x1 projection (:class:`Shortcut`).
    Drop-connect (per-sample stochastic depth) applies to identity residuals only.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int, mid_ch: int,
                 se_hidden: int | None = None, act: str = "swish", residual: str = "identity_only",
                 has_expand: bool | None = None, se_inner_act: str = "relu", se_gate: str = "hsigmoid",
                 keep_unused_shortcut_weight: bool = False, bn_eps: float = 1e-5,
                 bn_momentum: float | None = 0.1, drop_connect: float = 0.0):
        super().__init__()
        has_expand = mid_ch != in_ch if has_expand is None else has_expand
        bn_kw = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.expand = ConvBnAct(in_ch, mid_ch, 1, act=act, **bn_kw) if has_expand else None
        self.depthwise = ConvBnAct(mid_ch, mid_ch, kernel_size, stride, groups=mid_ch, act=act, **bn_kw)
        self.se = SqueezeExcite(mid_ch, se_hidden, se_inner_act, se_gate) if se_hidden else None
        self.project = ConvBnAct(mid_ch, out_ch, 1, act="none", **bn_kw)
        self.drop_connect = drop_connect
        if residual == "attentive":
            self.shortcut: nn.Module | None = Shortcut(in_ch, out_ch, stride, keep_unused_shortcut_weight)
            self.identity = self.shortcut.is_identity
        elif residual == "identity_only":
            self.identity = stride == 1 and in_ch == out_ch
            self.shortcut = None
        else:
            raise ValueError(f"unknown residual {residual!r}; valid: 'identity_only', 'attentive'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.identity:
            return drop_path(out, self.drop_connect, self.training) + x
        if self.shortcut is not None:
            return out + self.shortcut(x)
        return out


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Registered parameters, and effective ones (without weights no forward path uses)."""
    registered = sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for n, p in model.named_parameters() if n.endswith("unused_weight"))
    return {"params": registered, "params_effective": registered - unused}
