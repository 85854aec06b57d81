"""Explaining the user's own radiographs: overlay PNGs and raw ``.npy`` maps on disk.

Per image ``<stem>``:

* ``<stem>_cams.npy``: float32 ``C x h x w`` maps in [0, 1] at the model's input size (the CAM's own
  resolution; classes in the order of ``explanations.json``);
* ``<stem>_<label>.png``: the heatmap of one label over the radiograph at the image's native size
  (pytorch-grad-cam ``show_cam_on_image``, jet colour map, half image / half heatmap);
* ``explanations.json``: per image, the label order, logits, sigmoid probabilities and file names,
  plus the CAM protocol.

Every file is written atomically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pytorch_grad_cam.utils.image import show_cam_on_image
from torch import nn

from kdnas.explain.cams import explain_batch
from kdnas.utils.io import atomic_save, atomic_write_bytes, atomic_write_json


def safe_stem(text: str) -> str:
    """A file-name-safe version of a label or image stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def overlay_png(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> bytes:
    """PNG bytes of ``cam`` (any size, [0, 1]) over the grey ``image`` ([0, 1], native size)."""
    h, w = image.shape[:2]
    if cam.shape != (h, w):
        cam = cv2.resize(np.asarray(cam, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    rgb = np.repeat(np.clip(image, 0, 1).astype(np.float32)[..., None], 3, axis=2)
    blended = show_cam_on_image(rgb, np.clip(cam, 0, 1), use_rgb=True, image_weight=image_weight)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(blended, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 RGB image
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _save_npy(path: Path, array: np.ndarray) -> None:
    # through a file handle: np.save(<path>) appends ".npy" to a temporary name that lacks it
    with open(path, "wb") as fh:
        np.save(fh, array)


def explain_images(model: nn.Module, label_names: Sequence[str], input_size: tuple[int, int],
                   images: Sequence[Path], out_dir: str | Path, method: str = "gradcam",
                   labels: Sequence[str] | None = None, target_layer: str | nn.Module = "auto",
                   batch_size: int = 8, overlays: bool = True) -> dict[str, Any]:
    """Explain every requested label of each image file; writes the files described in the module
    docstring and returns the manifest (also written to ``explanations.json``)."""
    from kdnas.data.cxr.image_io import read_xray
    from kdnas.explain.evaluate import to_frame

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    protocol: dict[str, Any] = {}
    used: set[str] = set()
    for start in range(0, len(images), max(1, batch_size)):
        paths = list(images[start:start + max(1, batch_size)])
        decoded = [read_xray(p) for p in paths]
        frames = torch.stack([to_frame(img, input_size) for img in decoded])
        exp = explain_batch(model, frames, labels=labels, method=method, target_layer=target_layer,
                            label_names=label_names)
        protocol = exp.protocol
        names = exp.class_names or [str(k) for k in exp.classes]
        for b, (path, image) in enumerate(zip(paths, decoded, strict=True)):
            stem = safe_stem(path.stem)
            while stem in used:  # two inputs with the same name from different folders
                stem += "_"
            used.add(stem)
            maps = exp.maps[b]
            atomic_save(out / f"{stem}_cams.npy", lambda p, a=maps: _save_npy(p, a))
            files = {}
            if overlays:
                for j, lab in enumerate(names):
                    fname = f"{stem}_{safe_stem(lab)}.png"
                    atomic_write_bytes(out / fname, overlay_png(image, maps[j]))
                    files[lab] = fname
            logits = exp.logits[b]
            entries.append({"image": str(path), "size": list(image.shape[:2]), "maps": f"{stem}_cams.npy",
                            "labels": names, "overlays": files,
                            "logits": {lab: float(logits[k]) for lab, k in zip(names, exp.classes, strict=True)},
                            "probabilities": {lab: float(1 / (1 + np.exp(-logits[k])))
                                              for lab, k in zip(names, exp.classes, strict=True)}})
    manifest = {"protocol": {**protocol, "input_size": list(input_size),
                             "npy": "float32 C x h x w at the input size, [0, 1], classes in 'labels' order",
                             "overlay": "pytorch-grad-cam show_cam_on_image (jet, image_weight 0.5) at native size"},
                "images": entries}
    atomic_write_json(out / "explanations.json", manifest)
    return manifest
