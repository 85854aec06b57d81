"""Automatic CAM target layers and token reshapes: timm CNNs, ViT, Swin, EEEA-Net-C2, wrappers."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from torch import nn

from kdnas.explain import explain_batch, find_target_layer, reshape_transform_for, unwrap_model
from kdnas.explain.layers import TokenReshape, model_family, resolve_layer, target_layer_path
from kdnas.models.adapter import InputAdapter
from kdnas.models.eeea import EEEANetC2
from kdnas.utils.errors import ConfigError


@pytest.fixture(scope="module")
def vit() -> nn.Module:
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, num_classes=4, pretrained=False)
    return InputAdapter(net, input_size=(64, 64)).eval()


@pytest.fixture(scope="module")
def swin() -> nn.Module:
    torch.manual_seed(0)
    net = timm.create_model("swin_tiny_patch4_window7_224", img_size=64, window_size=4, embed_dim=24,
                            depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), num_classes=4, pretrained=False)
    return InputAdapter(net, input_size=(64, 64)).eval()


def test_cnn_layers_follow_timm_feature_info_and_torchvision_features():
    resnet = timm.create_model("resnet10t", num_classes=2, pretrained=False)
    assert target_layer_path(resnet) == "layer4" and find_target_layer(InputAdapter(resnet)) is resnet.layer4
    convnext = timm.create_model("convnext_atto", num_classes=2, pretrained=False)
    assert target_layer_path(convnext) == "stages.3"
    tv = nn.Sequential()
    tv.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert target_layer_path(tv) == "features.2"
    eeea = InputAdapter(EEEANetC2(num_classes=2))
    assert model_family(eeea) == "eeea" and find_target_layer(eeea) is eeea.model.final_expand
    assert reshape_transform_for(eeea) is None and reshape_transform_for(resnet) is None


def test_unknown_cnn_falls_back_to_the_last_spatial_module():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, 2, 1)
            self.body = nn.Sequential(nn.Conv2d(4, 8, 3, 2, 1), nn.ReLU())
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.body(self.stem(x)).mean((2, 3)))

    assert target_layer_path(Plain()) == "body"


def test_user_paths_resolve_in_the_backbone_or_the_wrapper():
    adapted = InputAdapter(timm.create_model("resnet10t", num_classes=2, pretrained=False))
    assert unwrap_model(adapted) is adapted.model
    assert resolve_layer(adapted, "layer3")[0] is adapted.model.layer3
    assert resolve_layer(adapted, "model.layer3")[0] is adapted.model.layer3
    assert resolve_layer(adapted, adapted.model.layer2) == (adapted.model.layer2, "layer2")
    with pytest.raises(ConfigError, match="top-level modules: .*layer4"):
        resolve_layer(adapted, "layer9")


def test_vit_reshape_drops_prefix_tokens_and_goes_channels_first():
    grid, prefix, chans = (3, 4), 2, 5
    tokens = torch.arange(2 * (prefix + 12) * chans, dtype=torch.float32).reshape(2, prefix + 12, chans)
    out = TokenReshape("vit", grid, prefix)(tokens)
    assert out.shape == (2, chans, 3, 4)
    for i in range(3):
        for j in range(4):  # patch (i, j) is token prefix + i * w + j, row-major as in timm's patch_embed
            torch.testing.assert_close(out[:, :, i, j], tokens[:, prefix + i * 4 + j, :])
    with pytest.raises(ConfigError, match="cannot arrange 11 tokens"):
        TokenReshape("vit", grid, prefix)(tokens[:, 1:])


def test_swin_reshape_permutes_channels_last_grids():
    x = torch.randn(2, 3, 4, 6)
    torch.testing.assert_close(TokenReshape("swin")(x), x.permute(0, 3, 1, 2))
    flat = torch.randn(2, 16, 6)  # older timm: B x L x C on a square grid
    torch.testing.assert_close(TokenReshape("swin")(flat), flat.reshape(2, 4, 4, 6).permute(0, 3, 1, 2))


def test_vit_automatic_layer_and_reshape_give_input_sized_maps(vit):
    net = vit.model
    assert model_family(vit) == "vit" and target_layer_path(vit) == "blocks.1.norm1"
    reshape = reshape_transform_for(vit)
    assert (reshape.kind, reshape.grid, reshape.prefix) == ("vit", (4, 4), 1)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    exp = explain_batch(vit, x, method="gradcam")
    assert exp.maps.shape == (2, 4, 64, 64) and np.isfinite(exp.maps).all()
    assert exp.maps.reshape(8, -1).std(1).min() > 0  # spatial structure, not a constant map
    # the library's own ViT recipe (CLS token, 4 x 4 grid) gives the same maps
    with GradCAM(model=vit, target_layers=[net.blocks[-1].norm1],
                 reshape_transform=lambda t: vit_reshape_transform(t, 4, 4)) as cam:
        ref = cam(input_tensor=x[1:], targets=[ClassifierOutputTarget(3)])[0]
    np.testing.assert_allclose(exp.maps[1, 3], ref, atol=1e-5)


def test_swin_automatic_layer_and_reshape_give_input_sized_maps(swin):
    assert model_family(swin) == "swin" and target_layer_path(swin) == "layers.3.blocks.0.norm1"
    x = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for method in ("gradcam", "eigencam"):
        exp = explain_batch(swin, x, method=method)
        assert exp.maps.shape == (1, 4, 64, 64) and np.isfinite(exp.maps).all()
        assert exp.maps.max() == pytest.approx(1.0, abs=1e-4)


def test_automatic_cnn_layer_follows_the_input_size():
    from kdnas.explain.layers import target_layer_path
    from kdnas.models.adapter import InputAdapter
    from kdnas.models.eeea import EEEANetC2

    net = EEEANetC2(num_classes=2)
    # >= 6 x 6 cells: 7 x 7 at 224 px (stride 32); at 96 px the stride-16 tap (6 x 6); at 64 px stride 8 (8 x 8)
    assert target_layer_path(InputAdapter(net, input_size=(224, 224))) == "final_expand"
    assert target_layer_path(InputAdapter(net, input_size=(96, 96))) == "blocks.14"
    assert target_layer_path(InputAdapter(net, input_size=(64, 64))) == "blocks.6"
    assert target_layer_path(net) == "final_expand"  # no input size known: the last stage
