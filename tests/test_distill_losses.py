"""Multi-label KD losses, the teacher KD strategy and Self-KD's teacher (cxr-kd.md §3, salnas.md §9)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from kdnas.config.schema import DistillConfig, FeatureKDConfig
from kdnas.distill.feature_kd import attention_transfer_loss, to_spatial
from kdnas.distill.multilabel_kd import TeacherKD, bernoulli_kd_loss, logit_mse_loss
from kdnas.distill.self_kd import SelfKD
from kdnas.nas.supernet import SalNASSupernet
from kdnas.tasks.multilabel import masked_bce


def test_bernoulli_kd_matches_its_definition_and_gradient():
    torch.manual_seed(0)
    zs, zt, T = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5), 3.0
    loss = bernoulli_kd_loss(zs, zt, T)
    p, q = torch.sigmoid(zs / T), torch.sigmoid(zt / T)
    manual = -(q * torch.log(p) + (1 - q) * torch.log(1 - p)).mean() * T * T
    assert torch.allclose(loss, manual, atol=1e-6)
    loss.backward()
    # d/dz_s = T (sigma(z_s/T) - sigma(z_t/T)) / N: independent per class (no softmax across classes)
    assert torch.allclose(zs.grad, T * (p - q).detach() / zs.numel(), atol=1e-7)


def test_no_coupling_between_classes_and_masks():
    zs = torch.zeros(2, 3, requires_grad=True)
    zt = torch.tensor([[5.0, -5.0, 0.0], [0.0, 0.0, 0.0]])
    bernoulli_kd_loss(zs, zt, 2.0).backward()
    g1 = zs.grad.clone()
    zs.grad = None
    zt2 = zt.clone()
    zt2[0, 0] = -5.0  # change one class of one image only
    bernoulli_kd_loss(zs, zt2, 2.0).backward()
    changed = (zs.grad - g1).abs() > 0
    assert changed.sum() == 1 and changed[0, 0]
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    full = bernoulli_kd_loss(zs, zt, 2.0, mask)
    assert torch.allclose(full, bernoulli_kd_loss(zs[0, [0, 2]], zt[0, [0, 2]], 2.0))
    assert torch.allclose(logit_mse_loss(zs, zt, mask), ((zs - zt)[0, [0, 2]] ** 2).mean())


def test_masked_bce_ignores_unknown_and_uncertain():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    labels = torch.tensor([[1.0, float("nan"), -1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(2.0), torch.tensor(1.0))
    assert torch.allclose(masked_bce(logits, labels), expected)


def _teacher_kd(**kw) -> TeacherKD:
    cfg = DistillConfig(kind="teacher", teachers=[{"name": "resnet10t"}], **kw)
    return TeacherKD(cfg, task=None)


def test_teacher_kd_combines_hard_and_soft_terms():
    kd = _teacher_kd(alpha=0.25, temperature=2.0)
    pred, teacher = torch.randn(3, 4), torch.randn(3, 4)
    labels = torch.tensor([[1, 0, float("nan"), 1], [0, 0, 1, 1], [1, -1, 0, 0]], dtype=torch.float32)
    loss, parts = kd.loss(None, pred, {"labels": labels}, teacher)
    expected = 0.75 * masked_bce(pred, labels) + 0.25 * bernoulli_kd_loss(pred, teacher, 2.0)
    assert torch.allclose(loss, expected) and set(parts) == {"bce", "kd"}
    nan_teacher = teacher.clone()
    nan_teacher[0] = float("nan")  # e.g. outputs a teacher never trained: excluded from KD
    _, parts = kd.loss(None, pred, {"labels": labels}, nan_teacher)
    assert torch.allclose(parts["kd"], bernoulli_kd_loss(pred[1:], teacher[1:], 2.0))


def test_teacher_as_soft_labeller():
    labels = torch.tensor([[1.0, -1.0, float("nan")]])
    teacher = torch.tensor([[0.0, 2.0, -2.0]])
    filled = _teacher_kd(soft_labels="uncertain")._hard_targets(labels, teacher)
    assert filled[0, 0] == 1 and torch.isclose(filled[0, 1], torch.sigmoid(torch.tensor(2.0))) and filled[0, 2].isnan()
    filled = _teacher_kd(soft_labels="unknown")._hard_targets(labels, teacher)
    assert torch.isclose(filled[0, 2], torch.sigmoid(torch.tensor(-2.0)))


def test_attention_transfer_bridges_cnn_and_vit_shapes():
    feat = torch.randn(2, 8, 6, 6)
    assert attention_transfer_loss(feat, feat) < 1e-10
    assert attention_transfer_loss(feat, torch.randn(2, 32, 12, 12)) > 0  # different channels and size
    vit = SimpleNamespace(num_prefix_tokens=1, patch_embed=SimpleNamespace(grid_size=(4, 4)))
    tokens = torch.randn(2, 17, 5)
    grid = to_spatial(tokens, vit)
    assert grid.shape == (2, 5, 4, 4) and torch.equal(grid[:, :, 1, 2], tokens[:, 1 + 6])
    assert FeatureKDConfig().weight == 1.0


class _Trainer(SimpleNamespace):
    pass


def test_self_kd_teacher_is_the_swa_of_improving_checkpoints():
    torch.manual_seed(0)
    student = SalNASSupernet("salnas_tiny")
    student.sample_random_subnet(random.Random(1))
    task = SimpleNamespace(forward=lambda m, b: m(b["image"], output_size=(8, 12)))
    skd = SelfKD(DistillConfig(kind="self_kd"), task)
    skd.setup(_Trainer(raw_model=student))
    teacher = skd.teacher
    assert teacher.active_arch == student.space.max_arch() and not any(p.requires_grad for p in teacher.parameters())
    batch = {"image": torch.randn(2, 3, 48, 64), "density": torch.rand(2, 8, 12)}
    assert skd.teacher_output(batch, epoch=1) is None  # no checkpoint averaged yet
    snapshots = []
    for improved in (True, False, True):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p) * 0.01)
            student.stem.bn.running_mean.add_(1.0)
        snapshots.append((improved, {k: v.clone() for k, v in student.state_dict().items()}))
        skd.on_validation_end(_Trainer(raw_model=student), epoch=len(snapshots) - 1, improved=improved)
    kept = [s for ok, s in snapshots if ok]
    for key in ("stem.conv.weight", "stem.bn.running_mean", "decoder.0.conv.weight"):
        assert torch.allclose(teacher.state_dict()[key], (kept[0][key] + kept[1][key]) / 2, atol=1e-6)
    assert skd.n_averaged == 2
    assert skd.teacher_output(batch, epoch=0) is None  # before start_epoch: pure GT
    t = skd.teacher_output(batch, epoch=1)
    seen = {}

    def task_loss(pred, b, target=None):
        seen["target"] = target
        return target.sum(), {}

    skd.loss(SimpleNamespace(loss=task_loss), torch.zeros(2, 8, 12), batch, t)
    assert torch.allclose(seen["target"], 0.5 * batch["density"] + 0.5 * t)  # mixed target, from the 2nd epoch


@pytest.mark.parametrize("mode", ["last_best", "ema"])
def test_self_kd_update_options(mode):
    torch.manual_seed(0)
    student = SalNASSupernet("salnas_tiny")
    skd = SelfKD(DistillConfig(kind="self_kd", teacher_update=mode, ema_decay=0.5), SimpleNamespace())
    skd.setup(_Trainer(raw_model=student))
    skd.on_validation_end(_Trainer(raw_model=student), 0, True)
    first = student.stem.conv.weight.clone()
    with torch.no_grad():
        student.stem.conv.weight.add_(1.0)
    skd.on_validation_end(_Trainer(raw_model=student), 1, mode == "last_best")
    expected = first + 1.0 if mode == "last_best" else first + 0.5  # EMA with decay 0.5, every epoch
    assert torch.allclose(skd.teacher.stem.conv.weight, expected, atol=1e-6)
