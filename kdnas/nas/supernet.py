"""The elastic SalNAS supernet: every subnet of a :class:`SearchSpace` shares its weights.

API (once-for-all / AttentiveNAS concepts, own implementation):
``sample_max_subnet()``, ``sample_min_subnet()``, ``sample_random_subnet(rng)``,
``set_active_subnet(arch)``, ``active_arch``, ``get_active_subnet()`` -> static
:class:`~kdnas.models.salnas.SalNASSubnet` with copied weights whose output equals the supernet's
active path, and ``set_regularization`` for the max-subnet dropout / drop-connect of the sandwich rule.

Works in train and eval mode (the reference's elastic BN raised in eval mode, D8).
"""

from __future__ import annotations

import random

from torch import nn

from kdnas.models.salnas import EncoderDecoderForward, SalNASSubnet, decoder_widths, feature_widths
from kdnas.nas.blocks import ElasticMBConv
from kdnas.nas.elastic import ElasticConvBnAct
from kdnas.nas.space import ArchConfig, SearchSpace, load_arch, load_space


def _max_widths(space: SearchSpace) -> dict[str, int]:
    return feature_widths(space, space.max_arch())


class SalNASSupernet(EncoderDecoderForward):
    def __init__(self, space: SearchSpace | str = "salnas"):
        super().__init__()
        space = load_space(space)
        self.space = space
        self.taps = list(space.decoder.taps)
        bn_kw = dict(bn_eps=space.bn_eps, bn_momentum=space.bn_momentum)
        self.stem = ElasticConvBnAct(3, max(space.stem.widths), space.stem.kernel, space.stem.stride,
                                     act=space.act, **bn_kw)
        stages, in_choices = [], set(space.stem.widths)
        for st in space.stages:
            slots = nn.ModuleList()
            for b in range(max(st.depths)):
                # a projection is only ever needed where the incoming and outgoing widths can differ
                needs_proj = b == 0 and any(i != o for i in in_choices for o in st.widths)
                allocate = space.shortcut_weights == "always" or needs_proj
                slots.append(ElasticMBConv(max(in_choices) if b == 0 else max(st.widths), max(st.widths),
                                           st.kernels, st.expands, st.stride if b == 0 else 1, st.se,
                                           st.act or space.act, space.residual, allocate,
                                           space.se_inner_act, space.se_gate, **bn_kw))
            stages.append(slots)
            in_choices = set(st.widths)
        self.stages = nn.ModuleList(stages)
        widths = _max_widths(space)
        self.final_expand = ElasticConvBnAct(max(space.stages[-1].widths), widths["final_expand"], 1,
                                             act=space.act, **bn_kw)
        k = space.decoder.kernel
        self.decoder = nn.ModuleList(ElasticConvBnAct(i, o, k, act=space.act, **bn_kw)
                                     for i, o in decoder_widths(space, widths))
        last = decoder_widths(space, widths)[-1][1]
        self.readout = ElasticConvBnAct(last, last, k, act=space.act, **bn_kw) if space.decoder.readout else None
        self.head = ElasticConvBnAct(last, 1, k, act="sigmoid", **bn_kw)
        self.dropout = nn.Dropout(0.0)
        self.set_active_subnet(space.max_arch())

    # ---------------------------------------------------------------- sampling
    def sample_max_subnet(self) -> ArchConfig:
        return self.set_active_subnet(self.space.max_arch())

    def sample_min_subnet(self) -> ArchConfig:
        return self.set_active_subnet(self.space.min_arch())

    def sample_random_subnet(self, rng: random.Random) -> ArchConfig:
        return self.set_active_subnet(self.space.random_arch(rng))

    def set_active_subnet(self, arch: ArchConfig | str | dict) -> ArchConfig:
        arch = load_arch(arch, self.space)
        self.active_arch = arch
        self.resolution = tuple(arch.resolution)
        self.stem.active_out = arch.widths[0]
        for i, slots in enumerate(self.stages):
            for block in slots:
                block.active_kernel, block.active_expand = arch.kernels[i], arch.expands[i]
                block.active_out = arch.widths[i + 1]
        widths = feature_widths(self.space, arch)
        self.final_expand.active_out = widths["final_expand"]
        layers = decoder_widths(self.space, widths)
        for layer, (_, out_ch) in zip(self.decoder, layers, strict=True):
            layer.active_out = out_ch
        if self.readout is not None:
            self.readout.active_out = layers[-1][1]
        return arch

    def _stage_blocks(self, i: int):
        return self.stages[i][: self.active_arch.depths[i]]

    # ---------------------------------------------------------------- regularisation
    def set_regularization(self, dropout: float, drop_connect: float) -> None:
        """Dropout before the last decoder conv and drop-connect ``rate * slot / num_slots`` on the
        identity blocks of ``space.drop_connect_stages`` (SalNAS applies both to the max subnet only)."""
        self.dropout.p = dropout
        total, slot = self.space.num_slots, 0
        for i, slots in enumerate(self.stages):
            for block in slots:
                in_stage = (i + 1) in self.space.drop_connect_stages
                block.drop_connect = drop_connect * slot / total if in_stage else 0.0
                slot += 1

    # ---------------------------------------------------------------- extraction
    def get_active_subnet(self) -> SalNASSubnet:
        """A static subnet with the active weights copied (BN running stats included)."""
        arch, keep = self.active_arch, self.space.shortcut_weights == "always"
        stem = self.stem.to_static(3)
        stages, in_ch = nn.ModuleList(), arch.widths[0]
        for i, slots in enumerate(self.stages):
            blocks = []
            for block in slots[: arch.depths[i]]:
                blocks.append(block.to_static(in_ch, keep))
                in_ch = block.active_out
            stages.append(nn.Sequential(*blocks))
        final_expand = self.final_expand.to_static(in_ch)
        decoder = nn.ModuleList(layer.to_static(i) for layer, (i, _) in
                                zip(self.decoder, decoder_widths(self.space, feature_widths(self.space, arch)),
                                    strict=True))
        last = decoder[-1].conv.out_channels
        modules = dict(stem=stem, stages=stages, final_expand=final_expand, decoder=decoder,
                       readout=self.readout.to_static(last) if self.readout is not None else None,
                       head=self.head.to_static(last))
        subnet = SalNASSubnet(self.space, arch, modules=modules)
        subnet.train(self.training)
        return subnet
