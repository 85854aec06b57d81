"""EEEA-Net-C2 <-> darmo ``eeea_c2`` weight layout (cxr-kd.md §1.5)."""

from __future__ import annotations

import pytest
import torch

from kdnas.models.eeea import from_darmo_key, load_darmo_weights, to_darmo_key, to_darmo_state_dict
from kdnas.models.registry import create_model
from kdnas.utils.errors import DataError


def test_darmo_key_names_follow_the_ofa_layout():
    sd = to_darmo_state_dict(create_model("eeea_c2"))
    assert "first_conv.conv.weight" in sd and "first_conv.bn.running_var" in sd
    assert "blocks.1.mobile_inverted_conv.inverted_bottleneck.conv.weight" in sd
    assert "blocks.0.mobile_inverted_conv.inverted_bottleneck.conv.weight" not in sd  # b0 has t = 1
    assert sd["blocks.4.mobile_inverted_conv.depth_conv.se.fc.reduce.weight"].shape == (24, 96, 1, 1)
    assert sd["blocks.18.mobile_inverted_conv.depth_conv.conv.weight"].shape == (480, 1, 7, 7)
    assert sd["final_expand_layer.conv.weight"].shape == (960, 160, 1, 1)
    assert sd["feature_mix_layer.conv.weight"].shape == (1280, 960, 1, 1)
    assert sd["classifier.linear.weight"].shape == (1000, 1280)
    assert not any(k.startswith("blocks.4.shortcut") for k in sd)  # no shortcut parameters
    for key in create_model("eeea_c2").state_dict():
        assert from_darmo_key(to_darmo_key(key)) == key


def test_load_darmo_file_strictly_and_reset_the_head(tmp_path):
    src = create_model("eeea_c2", num_classes=1000).eval()
    darmo = to_darmo_state_dict(src)
    darmo = {k: v for k, v in darmo.items() if not k.endswith("num_batches_tracked")}  # darmo may omit it
    path = tmp_path / "eeea-c2.pt"
    torch.save(darmo, path)
    same = create_model("eeea_c2", num_classes=1000, pretrained=str(path)).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(same(x), src(x))
    cxr = create_model("eeea_c2", num_classes=14, in_chans=1)
    skipped = load_darmo_weights(cxr, path)
    assert skipped == ["classifier.weight", "classifier.bias"]
    assert torch.allclose(cxr.stem.conv.weight, src.stem.conv.weight.sum(1, keepdim=True))
    assert torch.equal(cxr.blocks[7].depthwise.conv.weight, src.blocks[7].depthwise.conv.weight)


def test_reset_classifier_key_and_bad_files(tmp_path):
    src = create_model("eeea_c2", num_classes=14)
    darmo = to_darmo_state_dict(src)
    darmo["classifier.weight"] = darmo.pop("classifier.linear.weight")  # darmo after reset_classifier
    darmo["classifier.bias"] = darmo.pop("classifier.linear.bias")
    path = tmp_path / "reset.pt"
    torch.save(darmo, path)
    model = create_model("eeea_c2", num_classes=14)
    load_darmo_weights(model, path)
    assert torch.equal(model.classifier.weight, src.classifier.weight)
    darmo["blocks.3.mobile_inverted_conv.depth_conv.conv.weight"] = torch.zeros(72, 1, 5, 5)
    torch.save(darmo, path)
    with pytest.raises(DataError, match="reset.pt.*blocks.3.depthwise.conv.weight"):
        load_darmo_weights(create_model("eeea_c2", num_classes=14), path)
    with pytest.raises(DataError, match="not found"):
        load_darmo_weights(model, tmp_path / "missing.pt")
