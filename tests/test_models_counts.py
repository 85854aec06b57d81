"""Reference parameter counts and MACs (salnas.md §6, cxr-kd.md §1.3-1.4)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kdnas.cli.app import app
from kdnas.models.layers import count_parameters, make_divisible
from kdnas.models.registry import create_model
from kdnas.nas.costs import count_macs


def _profile_cli(*args: str) -> dict:
    result = CliRunner().invoke(app, ["profile", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("subnet, params, effective", [("max", 20_976_834, 20_446_210), ("min", 6_348_322, 6_237_858)])
def test_salnas_static_subnet_params(subnet, params, effective):
    stats = count_parameters(create_model("salnas", subnet=subnet))
    assert stats["params"] == params  # registered, incl. the reference's unused shortcut weights
    assert stats["params_effective"] == effective


@pytest.mark.parametrize("num_classes, params", [(14, 4_732_838), (1000, 5_995_904)])
def test_eeea_c2_params(num_classes, params):
    assert count_parameters(create_model("eeea_c2", num_classes=num_classes))["params"] == params


def test_profile_cli_reports_reference_counts():
    assert _profile_cli("--model", "eeea_c2", "--num-classes", "14")["params"] == 4_732_838
    assert _profile_cli("--model", "eeea_c2", "--num-classes", "1000")["params"] == 5_995_904
    mx = _profile_cli("--model", "salnas", "--subnet", "max")
    mn = _profile_cli("--model", "salnas", "--subnet", "min")
    assert (mx["params"], mn["params"]) == (20_976_834, 6_348_322)
    assert mx["input_size"] == [3, 288, 384] and mn["input_size"] == [3, 192, 256]
    assert mx["macs"] > 10 * mn["macs"] / 2 and "FlopCounterMode" in mx["mac_counter"]


def test_eeea_c2_macs_match_the_derived_table():
    # cxr-kd.md §1.4: conv + linear MACs incl. SE: 289.9 M (14-way, 224^2), 291.2 M / 215.0 M (1000-way)
    assert round(count_macs(create_model("eeea_c2", num_classes=14), (3, 224, 224)) / 1e5) == 2899
    m = create_model("eeea_c2", num_classes=1000)
    assert round(count_macs(m, (3, 224, 224)) / 1e5) == 2912
    assert round(count_macs(m, (3, 192, 192)) / 1e5) == 2150


def test_salnas_macs_at_working_resolution():
    # salnas.md §6: 3.80 GMAC (max at 288x384), 0.549 GMAC (min at 192x256)
    assert round(count_macs(create_model("salnas", subnet="max"), (3, 288, 384)) / 1e7) == 380
    assert round(count_macs(create_model("salnas", subnet="min"), (3, 192, 256)) / 1e6) == 549


def test_make_divisible_rule():
    assert make_divisible(30) == 32 and make_divisible(24) == 24 and make_divisible(4) == 8
    assert make_divisible(100) == 104  # rounding down below 90% adds a step


def test_eeea_batch_size_one_and_grey_stem():
    model = create_model("eeea_c2", num_classes=14).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 14)  # darmo's squeeze broke this
    grey = create_model("eeea_c2", num_classes=14, in_chans=1).eval()
    assert grey(torch.randn(1, 1, 64, 64)).shape == (1, 14)
