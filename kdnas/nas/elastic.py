"""Elastic (weight-slicing) operators, kept apart from the static layers (once-for-all style).

Every elastic op stores one weight tensor at the largest size of the space and runs a slice of it:
output channels ``[:c_out]``, input channels ``[:c_in]`` (read from the incoming tensor), and the
centre crop of the kernel (no kernel-transformation matrices, as in SalNAS). Each op can export its
active slice as a plain static module with copied weights (``to_static``).

Unlike the SalNAS reference (defect D8), elastic batch norm works in eval mode: it normalises with
the sliced running statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdnas.models.layers import ConvBnAct, SqueezeExcite, create_activation, make_divisible, pool_shortcut


def _centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    full = weight.shape[-1]
    if kernel == full:
        return weight
    start = (full - kernel) // 2
    return weight[..., start:start + kernel, start:start + kernel]


class ElasticConv2d(nn.Module):
    """A convolution with elastic output width, input width and (centre-cropped) kernel size."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int = 1, stride: int = 1,
                 depthwise: bool = False, bias: bool = False):
        super().__init__()
        self.max_in, self.max_out, self.max_kernel = max_in, max_out, max_kernel
        self.stride, self.depthwise = stride, depthwise
        if depthwise and max_in != max_out:
            raise ValueError("a depthwise conv has as many outputs as inputs")
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, max_kernel, max_kernel))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's default initialisation
        self.active_out = max_out
        self.active_kernel = max_kernel

    def active_weight(self, in_ch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        out_ch = in_ch if self.depthwise else self.active_out
        w = self.weight[:out_ch] if self.depthwise else self.weight[:out_ch, :in_ch]
        w = _centre_crop(w, self.active_kernel)
        return w, (self.bias[:out_ch] if self.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_ch = x.shape[1]
        w, b = self.active_weight(in_ch)
        return F.conv2d(x, w, b, self.stride, self.active_kernel // 2, 1, in_ch if self.depthwise else 1)

    def to_static(self, in_ch: int) -> nn.Conv2d:
        w, b = self.active_weight(in_ch)
        conv = nn.Conv2d(in_ch, w.shape[0], self.active_kernel, self.stride, self.active_kernel // 2,
                         groups=in_ch if self.depthwise else 1, bias=b is not None)
        conv.weight.data.copy_(w.detach())
        if b is not None:
            conv.bias.data.copy_(b.detach())
        return conv


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels of its parameters and running statistics.

    Training mode updates the sliced running stats in place (with the usual momentum, or the
    cumulative average when ``momentum is None``); eval mode uses them.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean[:c] if self.track_running_stats else None,
                            self.running_var[:c] if self.track_running_stats else None,
                            self.weight[:c], self.bias[:c], use_batch_stats, factor, self.eps)

    def to_static(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            bn.weight.copy_(self.weight[:c])
            bn.bias.copy_(self.bias[:c])
            bn.running_mean.copy_(self.running_mean[:c])
            bn.running_var.copy_(self.running_var[:c])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class ElasticSE(nn.Module):
    """Squeeze-excitation whose hidden width follows the active channel count:
    ``make_divisible(C // 4, 8)``."""

    def __init__(self, max_channels: int, inner_act: str = "relu", gate: str = "hsigmoid"):
        super().__init__()
        self.max_hidden = make_divisible(max_channels // 4)
        self.reduce = ElasticConv2d(max_channels, self.max_hidden, 1, bias=True)
        self.expand = ElasticConv2d(self.max_hidden, max_channels, 1, bias=True)
        self.inner_act_name, self.gate_name = inner_act, gate
        self.inner_act = create_activation(inner_act)
        self.gate = create_activation(gate)

    def _set_widths(self, c: int) -> int:
        hidden = make_divisible(c // 4)
        self.reduce.active_out = hidden
        self.expand.active_out = c
        return hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._set_widths(x.shape[1])
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.inner_act(self.reduce(s))))

    def to_static(self, c: int) -> SqueezeExcite:
        hidden = self._set_widths(c)
        se = SqueezeExcite(c, hidden, self.inner_act_name, self.gate_name)
        se.reduce = self.reduce.to_static(c)
        se.expand = self.expand.to_static(hidden)
        return se


class ElasticLinear(nn.Module):
    """A linear layer with elastic input (from the tensor) and output width."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True):
        super().__init__()
        self.linear = nn.Linear(max_in, max_out, bias=bias)
        self.active_out = max_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight[:self.active_out, :x.shape[-1]]
        b = self.linear.bias[:self.active_out] if self.linear.bias is not None else None
        return F.linear(x, w, b)

    def to_static(self, in_features: int) -> nn.Linear:
        lin = nn.Linear(in_features, self.active_out, bias=self.linear.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(self.linear.weight[:self.active_out, :in_features])
            if lin.bias is not None:
                lin.bias.copy_(self.linear.bias[:self.active_out])
        return lin


class ElasticConvBnAct(nn.Module):
    """Elastic conv -> elastic BN -> activation; exports to :class:`ConvBnAct`."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int = 1, stride: int = 1, act: str = "relu",
                 depthwise: bool = False, bn: bool = True, bn_eps: float = 1e-5, bn_momentum: float | None = 0.1):
        super().__init__()
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride, depthwise)
        self.bn = ElasticBatchNorm2d(max_out, eps=bn_eps, momentum=bn_momentum) if bn else None
        self.act_name = act
        self.act = create_activation(act)

    @property
    def active_out(self) -> int:
        return self.conv.active_out

    @active_out.setter
    def active_out(self, value: int) -> None:
        self.conv.active_out = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    def to_static(self, in_ch: int) -> ConvBnAct:
        conv = self.conv.to_static(in_ch)
        out_ch = conv.out_channels
        layer = ConvBnAct(in_ch, out_ch, self.conv.active_kernel, self.conv.stride,
                          groups=in_ch if self.conv.depthwise else 1, act=self.act_name, bn=self.bn is not None,
                          bn_eps=self.bn.eps if self.bn is not None else 1e-5,
                          bn_momentum=self.bn.momentum if self.bn is not None else 0.1)
        layer.conv = conv
        if self.bn is not None:
            layer.bn = self.bn.to_static(out_ch)
        return layer


class ElasticShortcut(nn.Module):
    """Residual branch of an elastic block: identity when stride 1 and widths match, else avg-pool
    (kernel = stride) plus a sliced 1x1 projection."""

    def __init__(self, max_in: int, max_out: int, stride: int, allocate: bool):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1)) if allocate else None
        if self.weight is not None:
            nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def is_identity(self, in_ch: int, out_ch: int) -> bool:
        return self.stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, out_ch: int) -> torch.Tensor:
        in_ch = x.shape[1]
        if self.is_identity(in_ch, out_ch):
            return x
        x = pool_shortcut(x, self.stride)
        if in_ch == out_ch:
            return x
        if self.weight is None:
            raise RuntimeError(f"shortcut needs a {in_ch}->{out_ch} projection but owns no weight")
        return F.conv2d(x, self.weight[:out_ch, :in_ch])
