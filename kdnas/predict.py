"""Inference on the user's own images: saliency maps + overlays, or CXR label probabilities."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kdnas.utils.errors import DataError
from kdnas.utils.io import atomic_save, atomic_write_bytes, atomic_write_csv, atomic_write_json

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm")


def collect_images(inputs: list[str | Path]) -> list[Path]:
    """Image files from paths and folders (folders: their images, sorted; not recursive)."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise DataError(p, "input not found", expected="an image file or a folder of images")
    if not found:
        raise DataError(None, f"no images found in {', '.join(map(str, inputs))}",
                        expected=f"files ending in {', '.join(IMAGE_SUFFIXES)}")
    return found


def read_rgb_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise DataError(path, f"cannot read image ({exc})", expected="a readable RGB or grey image") from None


def overlay(image: np.ndarray, smap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Jet-coloured saliency map blended over the image (uint8 RGB)."""
    import matplotlib

    colours = matplotlib.colormaps["jet"](np.clip(smap, 0, 1))[..., :3]
    blend = (1 - alpha) * image.astype(np.float32) / 255 + alpha * colours
    return (np.clip(blend, 0, 1) * 255).astype(np.uint8)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a handle: np.save would append ".npy" to the temporary name
        np.save(fh, array)


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@torch.no_grad()
def saliency_model_map(model: torch.nn.Module, task: Any, image: np.ndarray) -> torch.Tensor:
    """A run's saliency map for one RGB uint8 image, with the run's own preprocessing (resize to the input
    size, normalisation) and post-blur, at the model's output size (``H x W`` float tensor)."""
    from kdnas.tasks.saliency import gaussian_blur_maps
    from kdnas.tasks.saliency_data import NORMALIZATION

    meta = task.metadata()
    device = next(model.parameters()).device
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in NORMALIZATION[meta["normalize"]])
    x = torch.tensor(image, dtype=torch.uint8, device=device).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=tuple(meta["input_size"]), mode="bilinear", align_corners=False, antialias=True)
    pred = model((x - mean) / std, output_size=tuple(meta["target_size"]))
    return gaussian_blur_maps(pred, meta.get("blur_sigma") or 0, meta.get("blur_kernel"))[0]


@torch.no_grad()
def predict_saliency(model: torch.nn.Module, task: Any, images: list[Path], out_dir: Path) -> list[dict[str, Any]]:
    """Writes ``<name>_saliency.png`` (8-bit map at the image's native size), ``<name>_saliency.npy``
    (float map) and ``<name>_overlay.png`` per image."""
    results = []
    for path in images:
        image = read_rgb_image(path)
        pred = saliency_model_map(model, task, image).cpu()
        pred = F.interpolate(pred[None, None], size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
        smap = pred.clamp(0, 1).numpy().astype(np.float32)
        stem = path.stem
        atomic_write_bytes(out_dir / f"{stem}_saliency.png", _png_bytes((smap * 255).round().astype(np.uint8)))
        atomic_save(out_dir / f"{stem}_saliency.npy", lambda p, a=smap: _save_npy(p, a))
        atomic_write_bytes(out_dir / f"{stem}_overlay.png", _png_bytes(overlay(image, smap / max(smap.max(), 1e-8))))
        results.append({"image": str(path), "map": str(out_dir / f"{stem}_saliency.png"),
                        "overlay": str(out_dir / f"{stem}_overlay.png"), "size": list(image.shape[:2])})
    atomic_write_json(out_dir / "predictions.json", results)
    return results


@torch.no_grad()
def predict_cxr(model: torch.nn.Module, task: Any, images: list[Path], out_dir: Path) -> list[dict[str, Any]]:
    """Per-label probabilities (sigmoid of the logits) for each radiograph -> CSV + JSON."""
    from kdnas.data.cxr.image_io import read_xray

    meta = task.metadata()
    labels = meta["labels"]
    results = []
    for path in images:
        grey = torch.from_numpy(read_xray(path))[None, None]
        grey = F.interpolate(grey, size=tuple(meta["input_size"]), mode="bilinear", align_corners=False, antialias=True)
        probs = torch.sigmoid(model(grey))[0].tolist()
        results.append({"image": str(path), **{lab: round(p, 6) for lab, p in zip(labels, probs, strict=True)}})
    atomic_write_csv(out_dir / "predictions.csv", results, ["image", *labels])
    atomic_write_json(out_dir / "predictions.json", {"labels": labels, "predictions": results,
                                                     "note": "independent per-label probabilities (sigmoid)"})
    return results
