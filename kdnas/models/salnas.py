"""SalNAS static subnets: a MobileNetV3-style encoder with an elastic-width U-Net decoder.

A :class:`SalNASSubnet` is a plain ``nn.Module`` built from a search space and one
:class:`~kdnas.nas.space.ArchConfig`. It is what the supernet's ``get_active_subnet()`` returns
(with copied weights), and it can also be created directly to train a chosen architecture from
scratch. The forward pass is shared with the supernet (:class:`EncoderDecoderForward`), so train
and eval resize the input the same way (fixes D6).

Output: a ``B x H x W`` saliency map in (0, 1) at ``output_size`` (default: the input's size).
No blur is applied here; evaluation blur is a separate, configured post-process (D7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdnas.models.layers import ConvBnAct, MBConv, make_divisible
from kdnas.models.registry import register_model
from kdnas.nas.space import ArchConfig, SearchSpace, load_arch, load_space


def resize_input(x: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize (align_corners=False) to the subnet's working resolution, in train and eval."""
    if tuple(x.shape[-2:]) == tuple(resolution):
        return x
    return F.interpolate(x, size=tuple(resolution), mode="bicubic", align_corners=False)


def feature_widths(space: SearchSpace, arch: ArchConfig) -> dict[str, int]:
    widths = {"stem": arch.widths[0], "final_expand": make_divisible(arch.widths[-1] * space.final_expand_ratio)}
    widths.update({f"stage{i + 1}": w for i, w in enumerate(arch.widths[1:])})
    return widths


def decoder_widths(space: SearchSpace, widths: dict[str, int]) -> list[tuple[int, int]]:
    """(in, out) channels of every decoder conv, following the U-Net wiring of ``space.decoder``."""
    taps, sources = space.decoder.taps, space.decoder.widths_from
    in_ch, layers = widths[taps[-1]], []
    for i, src in enumerate(sources):
        out_ch = widths[src]
        layers.append((in_ch, out_ch))
        in_ch = out_ch + (widths[taps[-(i + 2)]] if i < len(taps) - 1 else 0)
    return layers


class EncoderDecoderForward(nn.Module):
    """Forward pass shared by the static subnet and the elastic supernet.

    Subclasses provide ``stem``, ``stages``, ``final_expand``, ``decoder``, ``readout``, ``dropout``,
    ``head``, ``taps``, ``resolution`` and ``_stage_blocks(i)``.
    """

    taps: list[str]

    def _stage_blocks(self, i: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {}
        x = self.stem(x)
        feats["stem"] = x
        for i in range(len(self.stages)):
            for block in self._stage_blocks(i):
                x = block(x)
            feats[f"stage{i + 1}"] = x
        feats["final_expand"] = self.final_expand(x)
        return feats

    def decode(self, feats: dict[str, torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        skips = [feats[t] for t in self.taps[:-1]][::-1]  # deep -> shallow
        x = feats[self.taps[-1]]
        for i, layer in enumerate(self.decoder):
            x = layer(x)
            if i < len(skips):
                # resize to the skip's size (the reference assumes exact x2 matches)
                x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=True)
                x = torch.cat([x, skips[i]], 1)
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        if self.readout is not None:
            x = self.readout(x)
        x = self.head(self.dropout(x))
        x = F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)
        return x[:, 0]

    def forward(self, x: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        output_size = tuple(x.shape[-2:]) if output_size is None else tuple(output_size)
        return self.decode(self.encode(resize_input(x, self.resolution)), output_size)


class SalNASSubnet(EncoderDecoderForward):
    """A static SalNAS subnet. ``modules`` (internal) lets the supernet hand over exported layers."""

    def __init__(self, space: SearchSpace | str, arch: ArchConfig | str | dict = "max", modules: dict | None = None):
        super().__init__()
        space = load_space(space)
        arch = load_arch(arch, space)
        self.space, self.arch = space, arch
        self.resolution = tuple(arch.resolution)
        self.taps = list(space.decoder.taps)
        self.dropout = nn.Dropout(0.0)
        if modules is not None:
            for name, module in modules.items():
                setattr(self, name, module)
            return
        bn_kw = dict(bn_eps=space.bn_eps, bn_momentum=space.bn_momentum)
        keep = space.shortcut_weights == "always"
        self.stem = ConvBnAct(3, arch.widths[0], space.stem.kernel, space.stem.stride, act=space.act, **bn_kw)
        stages, in_ch = [], arch.widths[0]
        for i, st in enumerate(space.stages):
            out_ch, has_expand = arch.widths[i + 1], max(st.expands) != 1
            blocks = []
            for b in range(arch.depths[i]):
                mid = make_divisible(round(in_ch * arch.expands[i])) if has_expand else in_ch
                blocks.append(MBConv(in_ch, out_ch, arch.kernels[i], st.stride if b == 0 else 1, mid,
                                     make_divisible(mid // 4) if st.se else None, st.act or space.act,
                                     space.residual, has_expand, space.se_inner_act, space.se_gate, keep, **bn_kw))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        widths = feature_widths(space, arch)
        self.final_expand = ConvBnAct(in_ch, widths["final_expand"], 1, act=space.act, **bn_kw)
        k = space.decoder.kernel
        self.decoder = nn.ModuleList(ConvBnAct(i, o, k, act=space.act, **bn_kw) for i, o in decoder_widths(space, widths))
        last = decoder_widths(space, widths)[-1][1]
        self.readout = ConvBnAct(last, last, k, act=space.act, **bn_kw) if space.decoder.readout else None
        self.head = ConvBnAct(last, 1, k, act="sigmoid", **bn_kw)

    def _stage_blocks(self, i: int):
        return self.stages[i]

    def set_dropout(self, p: float) -> None:
        self.dropout.p = p


@register_model("salnas")
def salnas(space: str | SearchSpace = "salnas", subnet: str | dict | ArchConfig = "max",
           pretrained: str | None = None) -> SalNASSubnet:
    """A static SalNAS subnet (``subnet``: ``max``, ``min``, or a JSON/YAML genome file)."""
    model = SalNASSubnet(space, subnet)
    if pretrained:
        from kdnas.utils.io import safe_torch_load

        model.load_state_dict(safe_torch_load(pretrained))
    return model


@register_model("salnas_supernet")
def salnas_supernet(space: str | SearchSpace = "salnas", pretrained: str | None = None):
    """The elastic SalNAS supernet (weight sharing over every subnet of ``space``)."""
    from kdnas.nas.supernet import SalNASSupernet

    model = SalNASSupernet(space)
    if pretrained:
        from kdnas.utils.io import safe_torch_load

        model.load_state_dict(safe_torch_load(pretrained))
    return model
