"""Multi-label CAMs: every method on a small CNN and EEEA-Net-C2, equality with direct
pytorch-grad-cam calls, model state restored, and no growth of hooks or tensors in a loop."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, HiResCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from kdnas.explain import METHODS, explain_batch, explain_pairs, method_name
from kdnas.models.adapter import InputAdapter
from kdnas.models.eeea import EEEANetC2
from kdnas.utils.errors import ConfigError


class TinyCNN(nn.Module):
    """A stride-8 CNN with a ``features`` stack (torchvision layout) and a logit head."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def eeea() -> nn.Module:
    torch.manual_seed(0)
    return InputAdapter(EEEANetC2(num_classes=3), input_size=(64, 64)).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 64, 64, generator=g)


def _check_maps(exp, n_images: int, n_classes: int, size: int = 64) -> None:
    assert exp.maps.shape == (n_images, n_classes, size, size) and exp.maps.dtype == np.float32
    assert np.isfinite(exp.maps).all() and exp.maps.min() >= 0 and exp.maps.max() <= 1
    assert exp.logits.shape == (n_images, 3) and np.isfinite(exp.logits).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_a_small_cnn_gives_every_label_in_one_call(tiny, images, method):
    exp = explain_batch(tiny, images, method=method)
    _check_maps(exp, 2, 3)
    assert exp.classes == [0, 1, 2] and exp.target_layer == "features.5" and exp.protocol["cam_grid"] == [8, 8]
    # pytorch-grad-cam min-max scales each map: its maximum is 1, or 0 when nothing survived the ReLU
    peaks = exp.maps.reshape(6, -1).max(1)
    assert np.all((np.abs(peaks - 1) < 1e-4) | (peaks == 0)) and (peaks > 0.5).any()
    with torch.no_grad():
        np.testing.assert_allclose(exp.logits, tiny(images).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_eeea_c2(eeea, images, method):
    # ScoreCAM runs one forward pass per target-layer channel: the 40-channel stride-8 tap keeps it fast
    layer = "blocks.6" if method == "scorecam" else "auto"
    exp = explain_batch(eeea, images, method=method, target_layer=layer)
    _check_maps(exp, 2, 3)
    # automatic layer at 64 px: the deepest tap with >= 6 x 6 cells is the stride-8 one (final_expand is 2 x 2)
    assert exp.target_layer == "blocks.6" and exp.protocol["cam_grid"] == [8, 8]


def test_maps_equal_direct_pytorch_grad_cam_per_image_and_class(tiny, eeea, images):
    # The vectorised B x C call must give exactly what one-image, one-target library calls give.
    for model, layer in ((tiny, tiny.features[5]), (eeea, eeea.model.blocks[6])):  # auto layer at 64 px
        exp = explain_batch(model, images, method="gradcam")
        for b in range(2):
            for k in range(3):
                with GradCAM(model=model, target_layers=[layer]) as cam:
                    ref = cam(input_tensor=images[b:b + 1], targets=[ClassifierOutputTarget(k)])[0]
                np.testing.assert_allclose(exp.maps[b, k], ref, atol=1e-5)
    with HiResCAM(model=tiny, target_layers=[tiny.features[5]]) as cam:
        ref = cam(input_tensor=images[1:2], targets=[ClassifierOutputTarget(2)])[0]
    maps, _, _ = explain_pairs(tiny, images, [(1, 2)], method="hirescam")
    np.testing.assert_allclose(maps[0], ref, atol=1e-5)


def test_classes_differ_and_eigencam_is_class_agnostic(tiny, images):
    grad = explain_batch(tiny, images, method="gradcam").maps
    assert not np.allclose(grad[0, 0], grad[0, 1], atol=1e-3)  # class-specific maps differ
    eig = explain_batch(tiny, images, method="eigencam")
    assert eig.protocol["class_specific"] is False
    np.testing.assert_array_equal(eig.maps[:, 0], eig.maps[:, 2])
    with EigenCAM(model=tiny, target_layers=[tiny.features[5]]) as cam:
        ref = cam(input_tensor=images, targets=None)
    np.testing.assert_allclose(eig.maps[:, 1], ref, atol=1e-5)


def test_labels_by_name_subset_and_batched_rows(tiny, images):
    names = ["Atelectasis", "Effusion", "Mass"]
    exp = explain_batch(tiny, images, labels=["Mass", "Atelectasis"], label_names=names)
    assert exp.classes == [2, 0] and exp.class_names == ["Mass", "Atelectasis"]
    full = explain_batch(tiny, images, max_rows=1)  # one row per CAM pass: same maps as one pass
    np.testing.assert_allclose(exp.maps[:, 0], full.maps[:, 2], atol=1e-6)
    np.testing.assert_allclose(exp.maps[:, 1], full.maps[:, 0], atol=1e-6)
    one = explain_batch(tiny, images[0, 0])  # a single H x W grey image
    assert one.maps.shape == (1, 3, 64, 64)


def test_errors_name_the_valid_choices(tiny, images):
    with pytest.raises(ConfigError, match="valid: gradcam, gradcam\\+\\+, xgradcam"):
        explain_batch(tiny, images, method="gradcamz")
    with pytest.raises(ConfigError, match="not one of the model's labels \\(A, B, C\\)"):
        explain_batch(tiny, images, labels=["D"], label_names=["A", "B", "C"])
    with pytest.raises(ConfigError, match="out of range"):
        explain_batch(tiny, images, labels=[3])
    with pytest.raises(ConfigError, match="target layer 'nope' not found"):
        explain_batch(tiny, images, target_layer="nope")
    assert method_name("Grad-CAM++") == "gradcam++" and method_name("score_cam") == "scorecam"


def test_model_state_is_restored(images):
    torch.manual_seed(0)
    model = TinyCNN().train()
    model.head.weight.requires_grad_(False)  # a user's partly frozen model stays as it was
    explain_batch(model, images, method="gradcam++")
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [True] * 6 + [False, True]
    assert all(p.grad is None for p in model.parameters())  # no gradients left on the weights


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def _live_tensors() -> tuple[int, int]:
    gc.collect()
    tensors = [o for o in gc.get_objects() if issubclass(type(o), torch.Tensor)]
    return len(tensors), sum(t.untyped_storage().nbytes() for t in tensors if t.device.type == "cpu")


@pytest.mark.parametrize(("net", "method"), [("eeea", "gradcam"), ("tiny", "gradcam++"), ("tiny", "scorecam"),
                                           ("tiny", "eigencam")])
def test_no_growth_of_hooks_or_tensors_in_a_loop(request, images, net, method):
    model = request.getfixturevalue(net)
    explain_batch(model, images, method=method)  # warm-up: lazily created state
    hooks, (count, nbytes) = _hooks(model), _live_tensors()
    for _ in range(6):
        exp = explain_batch(model, images, method=method)
        del exp
    assert _hooks(model) == hooks == 0
    count_after, nbytes_after = _live_tensors()
    assert count_after <= count and nbytes_after <= nbytes
