"""Multi-label CAM heatmaps: every requested label of every image in one call (cxr-kd.md §8.1-8.2).

The CAM methods are pytorch-grad-cam's. What kdnas adds is the multi-label wiring:

* one target per input row is all pytorch-grad-cam takes, so the batch is expanded to ``B x C``
  rows (each image repeated once per class, row ``(b, k)`` with target ``ClassifierOutputTarget(k)``
  on the **logit** of class k, never the binary target that sign-flips one output); rows are
  processed in chunks of ``max_rows`` to bound memory;
* the target layer and the ViT/Swin token reshape are found automatically (:mod:`.layers`);
* memory safety in loops: the context-manager form releases the hooks, activations are detached,
  the retained output graph is dropped after each chunk, and parameters do not require gradients
  during the call (gradients flow from the input only, so no ``.grad`` tensors accumulate on the
  weights). The model's train/eval mode and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from kdnas.explain.layers import reshape_transform_for, resolve_layer
from kdnas.utils.errors import ConfigError, KdnasError

#: name -> (pytorch-grad-cam class, uses gradients, class-specific)
METHODS: dict[str, tuple[type, bool, bool]] = {
    "gradcam": (GradCAM, True, True),
    "gradcam++": (GradCAMPlusPlus, True, True),
    "xgradcam": (XGradCAM, True, True),
    "layercam": (LayerCAM, True, True),
    "hirescam": (HiResCAM, True, True),
    "scorecam": (ScoreCAM, False, True),
    "eigencam": (EigenCAM, False, False),  # first principal component: the same map for every class
}
_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "grad-cam": "gradcam",
            "grad-cam++": "gradcam++", "xgrad-cam": "xgradcam", "score-cam": "scorecam",
            "eigen-cam": "eigencam", "layer-cam": "layercam", "hires-cam": "hirescam"}


def method_name(method: str) -> str:
    """Canonical method name; unknown names raise a ConfigError listing the valid ones."""
    key = str(method).strip().lower().replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ConfigError(f"unknown CAM method {method!r}; valid: {', '.join(METHODS)}")
    return key


@dataclass
class Explanation:
    """CAMs of a batch: ``maps[b, j]`` is the heatmap of class ``classes[j]`` for image ``b``.

    ``maps`` is float32 ``B x C x H x W`` in [0, 1] (pytorch-grad-cam's per-map min-max scaling, at
    the input tensor's size); ``logits`` is ``B x n_outputs`` (all model outputs, not only ``classes``).
    """

    maps: np.ndarray
    logits: np.ndarray
    classes: list[int]
    method: str
    target_layer: str
    class_names: list[str] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)


def resolve_classes(labels: Sequence[int | str] | None, n_outputs: int,
                    label_names: Sequence[str] | None = None) -> list[int]:
    """Class indices from indices or names (``None`` = every output)."""
    if labels is None:
        return list(range(n_outputs))
    out: list[int] = []
    for lab in labels:
        if isinstance(lab, (int, np.integer)) and not isinstance(lab, bool):
            if not 0 <= int(lab) < n_outputs:
                raise ConfigError(f"label index {lab} out of range for a model with {n_outputs} outputs")
            out.append(int(lab))
        elif label_names is not None and str(lab) in label_names:
            out.append(list(label_names).index(str(lab)))
        else:
            valid = ", ".join(label_names) if label_names is not None else f"indices 0..{n_outputs - 1}"
            raise ConfigError(f"label {lab!r} is not one of the model's labels ({valid})")
    if not out:
        raise ConfigError("labels is empty: pass None for every label")
    return out


@contextlib.contextmanager
def _explaining(model: nn.Module, gradients: bool):
    """Eval mode, frozen parameters, grad enabled only for gradient methods; all restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.set_grad_enabled(gradients):
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _as_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(images)
    if x.dim() == 2:  # one grey H x W image
        x = x[None, None]
    elif x.dim() == 3:  # B x H x W grey images
        x = x[:, None]
    if x.dim() != 4:
        raise KdnasError(f"images must be B x C x H x W (or B x H x W grey), got shape {tuple(x.shape)}")
    return x.float()


def explain_batch(model: nn.Module, images: torch.Tensor | np.ndarray, labels: Sequence[int | str] | None = None,
                  method: str = "gradcam", target_layer: str | nn.Module = "auto",
                  label_names: Sequence[str] | None = None, max_rows: int = 64,
                  score_batch_size: int = 64, aug_smooth: bool = False, eigen_smooth: bool = False,
                  quiet: bool = True) -> Explanation:
    """Heatmaps of every requested label for a batch of images, in one call.

    Args:
        model: a classifier returning logits (e.g. an ``InputAdapter`` around a timm model or
            EEEA-Net-C2, which takes grey ``B x 1 x H x W`` images in [0, 1]).
        images: the model's input batch (``B x C x H x W``; ``B x H x W`` is read as grey).
        labels: class indices or names (names need ``label_names``); ``None`` = every output.
        method: one of :data:`METHODS` (``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam``,
            ``hirescam``, ``scorecam``, ``eigencam``).
        target_layer: ``"auto"``, a dotted module path in the backbone, or a module.
        max_rows: image-class rows per CAM pass (bounds memory).
        score_batch_size: forward batch of ScoreCAM's masked inputs (one per target-layer channel).
        aug_smooth, eigen_smooth: pytorch-grad-cam smoothing options.
        quiet: silence ScoreCAM's per-target progress bars.

    Returns:
        :class:`Explanation` with ``maps`` ``B x len(labels) x H x W`` in [0, 1] and ``logits``.
    """
    x = _as_batch(images)
    classes = resolve_classes(labels, _n_outputs(model, x[:1]), label_names)
    pairs = [(i, k) for i in range(x.shape[0]) for k in classes]
    maps, logits, protocol = explain_pairs(model, x, pairs, method, target_layer, max_rows, score_batch_size,
                                           aug_smooth, eigen_smooth, quiet)
    maps = maps.reshape(x.shape[0], len(classes), *maps.shape[-2:])
    names = [label_names[k] for k in classes] if label_names is not None else None
    return Explanation(maps=maps, logits=logits, classes=classes, method=protocol["method"],
                       target_layer=protocol["target_layer"], class_names=names, protocol=protocol)


def explain_pairs(model: nn.Module, images: torch.Tensor | np.ndarray, pairs: Sequence[tuple[int, int]],
                  method: str = "gradcam", target_layer: str | nn.Module = "auto", max_rows: int = 64,
                  score_batch_size: int = 64, aug_smooth: bool = False, eigen_smooth: bool = False,
                  quiet: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Heatmaps for arbitrary ``(image index, class index)`` pairs, vectorised over pairs.

    The building block of :func:`explain_batch` (all classes of all images) and of evaluation (only
    the GT-positive boxed classes of each image). Returns ``maps`` (``len(pairs) x H x W`` in [0, 1]),
    ``logits`` (``B x n_outputs``) and the protocol dict.
    """
    name = method_name(method)
    cam_cls, gradients, class_specific = METHODS[name]
    x = _as_batch(images)
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    if b == 0:
        raise KdnasError("images is an empty batch")
    n_out = _n_outputs(model, x[:1])
    pairs = [(int(i), int(k)) for i, k in pairs]
    for i, k in pairs:
        if not (0 <= i < b and 0 <= k < n_out):
            raise ConfigError(f"pair (image {i}, class {k}) out of range for {b} images and {n_out} classes")
    device = next(model.parameters()).device
    x = x.to(device)
    layer, layer_path = resolve_layer(model, target_layer)
    reshape = reshape_transform_for(model)
    # class-agnostic methods (EigenCAM) compute one map per image, shared by its pairs; every image
    # gets a row so that its logits are returned too
    rows = pairs if class_specific else [(i, 0) for i in range(b)]
    rows = rows + [(i, 0) for i in sorted(set(range(b)) - {i for i, _ in rows})]
    step = max(1, int(max_rows))
    row_maps = np.empty((len(rows), h, w), dtype=np.float32)
    logits: list[torch.Tensor | None] = [None] * b
    quiet_ctx = contextlib.redirect_stderr(io.StringIO()) if quiet and name == "scorecam" else contextlib.nullcontext()
    finished, grid = False, None
    with _explaining(model, gradients):
        with cam_cls(model=model, target_layers=[layer], reshape_transform=reshape) as cam, quiet_ctx:
            if name == "scorecam":
                cam.batch_size = int(score_batch_size)
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                inp = x[[i for i, _ in chunk]]
                if gradients:
                    inp = inp.detach().requires_grad_(True)  # gradients flow from the input, weights frozen
                targets = [ClassifierOutputTarget(k) for _, k in chunk]
                row_maps[start:start + len(chunk)] = cam(input_tensor=inp, targets=targets,
                                                         aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
                acts = cam.activations_and_grads.activations
                if grid is None and acts:
                    grid = [int(v) for v in acts[0].shape[-2:]]  # the CAM's own resolution
                out = cam.outputs.detach().float().cpu()
                for r, (i, _) in enumerate(chunk):
                    if logits[i] is None:
                        logits[i] = out[r]
                cam.outputs = None  # drop the retained graph now, not at the next call
                cam.activations_and_grads.clear()
                del inp, out, acts
            finished = True
    if not finished:  # BaseCAM.__exit__ swallows IndexError (it prints it): never return garbage maps
        raise KdnasError(f"{name} failed on {type(model).__name__} (an IndexError inside pytorch-grad-cam; "
                         "check the labels and the target layer)")
    maps = row_maps[:len(pairs)].copy() if class_specific else row_maps[[i for i, _ in pairs]]
    np.clip(maps, 0.0, 1.0, out=maps)
    protocol = {"method": name, "target_layer": layer_path, "class_specific": class_specific,
                "target": "ClassifierOutputTarget(k): the logit of class k",
                "map_size": [int(h), int(w)], "cam_grid": grid,
                "scaling": "per-map min-max to [0, 1], bilinear upsampling to the input size "
                           "(pytorch-grad-cam scale_cam_image)",
                "reshape": repr(reshape) if reshape is not None else None,
                "aug_smooth": aug_smooth, "eigen_smooth": eigen_smooth}
    return maps, torch.stack(logits).numpy(), protocol


def _n_outputs(model: nn.Module, x1: torch.Tensor) -> int:
    """Number of logits (from the head when it says so, otherwise one probe forward pass)."""
    from kdnas.explain.layers import unwrap_model

    net = unwrap_model(model)
    n = getattr(net, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    with torch.no_grad():
        out = model(x1.detach())
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise KdnasError(f"{type(net).__name__} must return B x n_classes logits to be explained, got "
                         f"{type(out).__name__}")
    return int(out.shape[1])
