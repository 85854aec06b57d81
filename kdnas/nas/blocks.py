"""Elastic MBConv block: the unit of the supernet's encoder stages."""

from __future__ import annotations

import torch
from torch import nn

from kdnas.models.layers import MBConv, Shortcut, drop_path, make_divisible
from kdnas.nas.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticConvBnAct, ElasticSE, ElasticShortcut


def hidden_width(in_ch: int, expand: float) -> int:
    """MBConv hidden width from the *actual* incoming width (salnas.md §3)."""
    return make_divisible(round(in_ch * expand))


class ElasticMBConv(nn.Module):
    """[1x1 expand] -> kxk depthwise -> [SE] -> 1x1 project, with elastic kernel, expansion and
    output width; the residual is AttentiveNAS-style (``residual="attentive"``) or OFA-style
    identity-only."""

    def __init__(self, max_in: int, max_out: int, kernels: list[int], expands: list[float], stride: int,
                 se: bool, act: str, residual: str, allocate_shortcut: bool, se_inner_act: str = "relu",
                 se_gate: str = "hsigmoid", bn_eps: float = 1e-5, bn_momentum: float | None = 0.1):
        super().__init__()
        self.max_kernel, self.max_expand = max(kernels), max(expands)
        self.has_expand = self.max_expand != 1
        self.stride, self.act_name, self.residual = stride, act, residual
        self.se_inner_act, self.se_gate = se_inner_act, se_gate
        max_mid = hidden_width(max_in, self.max_expand)
        bn_kw = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        self.expand = ElasticConvBnAct(max_in, max_mid, 1, act=act, **bn_kw) if self.has_expand else None
        self.depthwise = ElasticConvBnAct(max_mid, max_mid, self.max_kernel, stride, act=act, depthwise=True, **bn_kw)
        self.se = ElasticSE(max_mid, se_inner_act, se_gate) if se else None
        self.project_conv = ElasticConv2d(max_mid, max_out, 1)
        self.project_bn = ElasticBatchNorm2d(max_out, eps=bn_eps, momentum=bn_momentum)
        self.shortcut = ElasticShortcut(max_in, max_out, stride, allocate_shortcut) if residual == "attentive" else None
        self.active_kernel, self.active_expand, self.active_out = self.max_kernel, self.max_expand, max_out
        self.drop_connect = 0.0

    def _configure(self, in_ch: int) -> int:
        mid = hidden_width(in_ch, self.active_expand) if self.has_expand else in_ch
        if self.expand is not None:
            self.expand.active_out = mid
        self.depthwise.conv.active_kernel = self.active_kernel
        self.project_conv.active_out = self.active_out
        return mid

    def is_identity(self, in_ch: int) -> bool:
        return self.stride == 1 and in_ch == self.active_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_ch = x.shape[1]
        self._configure(in_ch)
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out))
        if self.is_identity(in_ch):
            return drop_path(out, self.drop_connect, self.training) + x
        if self.shortcut is not None:
            return out + self.shortcut(x, self.active_out)
        return out

    def to_static(self, in_ch: int, keep_unused_shortcut_weight: bool = False) -> MBConv:
        mid = self._configure(in_ch)
        se_hidden = make_divisible(mid // 4) if self.se is not None else None
        block = MBConv(in_ch, self.active_out, self.active_kernel, self.stride, mid, se_hidden, self.act_name,
                       self.residual, has_expand=self.has_expand, se_inner_act=self.se_inner_act,
                       se_gate=self.se_gate, keep_unused_shortcut_weight=keep_unused_shortcut_weight,
                       bn_eps=self.project_bn.eps, bn_momentum=self.project_bn.momentum,
                       drop_connect=self.drop_connect)
        if self.expand is not None:
            block.expand = self.expand.to_static(in_ch)
        block.depthwise = self.depthwise.to_static(mid)
        if self.se is not None:
            block.se = self.se.to_static(mid)
        block.project.conv = self.project_conv.to_static(mid)
        block.project.bn = self.project_bn.to_static(self.active_out)
        if isinstance(block.shortcut, Shortcut) and self.shortcut is not None:
            w = self.shortcut.weight
            if block.shortcut.conv is not None:
                block.shortcut.conv.weight.data.copy_(w[:self.active_out, :in_ch].detach())
            elif hasattr(block.shortcut, "unused_weight") and w is not None:
                block.shortcut.unused_weight.data.copy_(w[:self.active_out, :in_ch].detach())
        return block
