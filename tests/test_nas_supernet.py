"""Elastic supernet: sampling, setting, extraction (static subnet == active path), BN in eval mode."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from kdnas.models.layers import count_parameters
from kdnas.models.salnas import SalNASSubnet
from kdnas.nas.bn_calibration import recalibrate_bn
from kdnas.nas.elastic import ElasticBatchNorm2d, ElasticConv2d, ElasticLinear, ElasticSE
from kdnas.nas.space import ArchConfig, load_space
from kdnas.nas.supernet import SalNASSupernet
from kdnas.utils.errors import ConfigError


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def tiny_supernet():
    torch.manual_seed(0)
    net = SalNASSupernet("salnas_tiny")
    _randomise_bn(net)
    return net


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extracted_subnet_equals_active_path(tiny_supernet, seed, mode):
    net = tiny_supernet
    arch = net.sample_random_subnet(random.Random(seed))
    x = torch.randn(2, 3, 70, 100)  # odd sizes exercise skip resizing and the pooled shortcut
    getattr(net, mode)()
    with torch.no_grad():
        expected = net(x, output_size=(35, 50))
        sub = net.get_active_subnet()
        getattr(sub, mode)()
        got = sub(x, output_size=(35, 50))
    assert isinstance(sub, SalNASSubnet) and sub.arch == arch
    assert not any(isinstance(m, (ElasticConv2d, ElasticBatchNorm2d, ElasticSE)) for m in sub.modules())
    assert torch.allclose(got, expected, atol=1e-6), (got - expected).abs().max()
    assert got.shape == (2, 35, 50) and 0 < got.min() and got.max() < 1


def test_extracted_subnet_trains_and_runs_alone(tiny_supernet):
    tiny_supernet.sample_min_subnet()
    sub = tiny_supernet.get_active_subnet().train()
    before = {k: v.clone() for k, v in tiny_supernet.state_dict().items()}
    opt = torch.optim.SGD(sub.parameters(), lr=0.1)
    sub(torch.randn(2, 3, 48, 64)).mean().backward()
    opt.step()
    after = tiny_supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # copied, not shared, weights
    fresh = SalNASSubnet("salnas_tiny", "min")
    fresh.load_state_dict(sub.state_dict())  # same keys/shapes as a directly built subnet


def test_sampling_min_max_and_set(tiny_supernet):
    space = tiny_supernet.space
    assert tiny_supernet.sample_max_subnet() == space.max_arch()
    assert tiny_supernet.sample_min_subnet() == space.min_arch()
    arch = space.random_arch(random.Random(7))
    assert tiny_supernet.set_active_subnet(arch.to_dict()) == arch
    assert space.validate_arch(arch) is arch
    bad = arch.to_dict()
    bad["kernels"][2] = 7
    with pytest.raises(ConfigError, match=r"kernels\[2\] = 7 is not in space"):
        tiny_supernet.set_active_subnet(bad)


def test_mutation_changes_genes_and_crossover_mixes():
    space = load_space("salnas")
    rng = random.Random(0)
    a, b = space.max_arch(), space.min_arch()
    m = space.mutate(a, 1.0, rng)  # every gene with >1 choice moves to a different value
    for field, idx, options in space.choices():
        if len(options) > 1:
            va = a.to_dict()[field] if idx is None else a.to_dict()[field][idx]
            vm = m.to_dict()[field] if idx is None else m.to_dict()[field][idx]
            assert va != vm
    child = space.crossover(a, b, random.Random(1)).to_dict()
    assert all(child["widths"][i] in (a.widths[i], b.widths[i]) for i in range(len(a.widths)))
    assert child != a.to_dict() and child != b.to_dict()


def test_space_counts_and_shortcut_policy():
    space = load_space("salnas")
    assert space.num_slots == 37 and len(space.stages) == 7
    full = SalNASSupernet(space)
    assert count_parameters(full)["params"] == 20_976_834  # no over-allocated decoder (D16)
    lean = SalNASSupernet(space.model_copy(update={"shortcut_weights": "needed"}))
    # only the mb1 slot-0 projection (24 x 24, possible when stem and mb1 widths differ) is kept beyond the
    # max subnet's effective weights
    assert count_parameters(lean)["params"] == 20_446_210 + 24 * 24


def test_elastic_ops_slice_and_export():
    conv = ElasticConv2d(8, 16, 5, stride=2)
    conv.active_out, conv.active_kernel = 12, 3
    x = torch.randn(1, 6, 9, 9)
    static = conv.to_static(6)
    assert static.weight.shape == (12, 6, 3, 3)
    assert torch.allclose(conv(x), static(x))
    assert torch.equal(static.weight, conv.weight[:12, :6, 1:4, 1:4])  # centre crop
    bn = ElasticBatchNorm2d(16).eval()
    bn.running_mean.normal_()
    y = torch.randn(2, 10, 3, 3)
    assert torch.allclose(bn(y), bn.to_static(10).eval()(y))
    lin = ElasticLinear(32, 10)
    lin.active_out = 4
    z = torch.randn(3, 20)
    assert torch.allclose(lin(z), lin.to_static(20)(z))


def test_bn_recalibration_uses_the_calibration_batches():
    sub = SalNASSubnet("salnas_tiny", "min")
    batches = [{"image": torch.randn(4, 3, 48, 64) * 3 + 2} for _ in range(3)]
    seen = recalibrate_bn(sub, batches, lambda m, b: m(b["image"]))
    assert seen == 12 and not sub.training
    bn = sub.stem.bn
    assert bn.num_batches_tracked.item() == 3 and bn.momentum == 0.0  # momentum restored (space value)
    assert bn.running_var.mean() > 1.5  # statistics of the scaled inputs, not the initial ones


def test_arch_config_round_trip(tmp_path):
    space = load_space("salnas")
    arch = space.random_arch(random.Random(3))
    path = tmp_path / "arch.json"
    path.write_text(arch.model_dump_json())
    assert SalNASSubnet(space, str(path)).arch == arch
    assert ArchConfig(**arch.to_dict()) == arch
