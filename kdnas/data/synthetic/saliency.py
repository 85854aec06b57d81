"""The built-in synthetic saliency set: procedural scenes with a known fixation density.

Each image is a textured background (outdoor horizon, indoor wall + floor, or foliage
field) with 3-7 objects: plain blobs whose colour either pops out of or blends into the
local background, face-like blobs (skin-tone ellipse, eyes, mouth) and text-like stroke
clusters. An object's salience follows from what is visible: colour/luminance contrast to
its surround for blobs, plus a fixed bonus for faces and text (observers look at those
even when they are low-contrast). The fixation density is

    p  ∝  Σ_k s_k · N(μ_k, Σ_k)  +  0.8 · N(centre, (0.22 W, 0.22 H))  +  0.15 · uniform

(each Gaussian normalised to mass 1, so an object's share is its salience ``s_k``).
Every observer contributes 6-10 fixations drawn from ``p`` (pixel + uniform sub-pixel
offset, 0-based). The stored map is the Gaussian blur (σ = ``blur_sigma``, default
``max(H, W) / 32``) of the fixation count map, divided by its max: the same empirical
recipe as the real benchmarks, so models learn from noisy maps as they would there.

The set is written in the kdnas folder format (``kdnas.data.saliency.folder``), with
``dataset.json`` written last as the completeness marker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter

from kdnas.data.saliency.common import encode_png
from kdnas.data.saliency.folder import fixations_csv_text, write_split
from kdnas.data.synthetic.cache import cached_dataset
from kdnas.utils.errors import ConfigError, DataError
from kdnas.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

GENERATOR_VERSION = 1
DEFAULTS: dict[str, Any] = {
    "n_images": 240,
    "size": (144, 192),
    "seed": 0,
    "observers": 15,
    "fixations_per_observer": (6, 10),
    "blur_sigma": None,
    "splits": (0.7, 0.15, 0.15),
}
CENTRE_BIAS_MASS = 0.8
UNIFORM_MASS = 0.15
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.89, 0.68, 0.55], [0.78, 0.57, 0.44],
                       [0.62, 0.43, 0.31], [0.45, 0.30, 0.21]])


# ----------------------------------------------------------------------------- textures
def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random lattice, smoothstep-interpolated (separably)."""
    gy, gx = cells + 1, int(np.ceil(cells * w / h)) + 1
    grid = rng.random((gy, gx))
    ys = np.linspace(0, gy - 1.001, h)
    xs = np.linspace(0, gx - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    ty, tx = ys - y0, xs - x0
    ty, tx = (ty * ty * (3 - 2 * ty))[:, None], tx * tx * (3 - 2 * tx)
    rows = grid[:, x0] * (1 - tx) + grid[:, x0 + 1] * tx  # gy x w
    return rows[y0] * (1 - ty) + rows[y0 + 1] * ty


def _fractal(rng: np.random.Generator, h: int, w: int, base: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise, zero mean, roughly unit range."""
    out = np.zeros((h, w))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * _value_noise(rng, h, w, base * 2**o)
        total += amp
        amp *= 0.55
    return out / total - 0.5


def _muted(rng: np.random.Generator, lo: float = 0.3, hi: float = 0.75, sat: float = 0.25) -> np.ndarray:
    grey = rng.uniform(lo, hi)
    return np.clip(grey + rng.normal(0, sat / 2, 3), 0.05, 0.95)


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
    yy = np.linspace(0, 1, h)[:, None, None]
    kind = ("outdoor", "indoor", "field")[int(rng.integers(3))]
    tex = _fractal(rng, h, w, base=int(rng.integers(3, 7)))[:, :, None]
    fine = _fractal(rng, h, w, base=int(rng.integers(12, 24)), octaves=2)[:, :, None]
    if kind == "outdoor":
        sky_top = np.clip(np.array([0.55, 0.68, 0.85]) + rng.normal(0, 0.08, 3), 0, 1)
        sky_low = np.clip(sky_top + rng.normal(0.08, 0.05, 3), 0, 1)
        ground = _muted(rng, 0.25, 0.55, sat=0.3) * np.array([0.9, 1.05, 0.8])
        horizon = rng.uniform(0.3, 0.6) + 0.06 * (_value_noise(rng, 1, w, 3)[0] - 0.5)
        sky = sky_top * (1 - yy) + sky_low * yy + 0.10 * tex
        land = ground + 0.22 * tex + 0.10 * fine + 0.15 * (yy - 0.5)
        blend = np.clip((yy[:, :, 0] - horizon[None, :]) * h / 2.0 + 0.5, 0, 1)[:, :, None]
        img = sky * (1 - blend) + land * blend
    elif kind == "indoor":
        wall = _muted(rng, 0.45, 0.8, sat=0.15)
        floor = _muted(rng, 0.2, 0.5, sat=0.2)
        floor_y = rng.uniform(0.65, 0.85)
        img = wall + 0.06 * tex + 0.03 * fine - 0.08 * yy
        # a large, soft, non-salient panel (door / window / picture frame region)
        x0, x1 = sorted(rng.uniform(0.05, 0.95, 2))
        y0, y1 = rng.uniform(0.05, 0.3), rng.uniform(0.5, floor_y)
        xx = np.linspace(0, 1, w)[None, :, None]
        panel = ((xx > x0) & (xx < x1) & (yy > y0) & (yy < y1)).astype(float)
        img = img + panel * rng.normal(0, 0.05, 3)
        img = np.where(yy > floor_y, floor + 0.12 * tex + 0.08 * fine, img)
    else:
        base = _muted(rng, 0.25, 0.6, sat=0.3) * np.array([0.85, 1.1, 0.8])
        img = base + 0.30 * tex + 0.15 * fine + 0.1 * _fractal(rng, h, w, 2, 2)[:, :, None] * rng.normal(0, 1, 3)
    return np.clip(img, 0, 1), kind


# ----------------------------------------------------------------------------- objects
Mask = tuple[slice, slice, np.ndarray]  # rows, columns, alpha of that crop


def _ellipse(h: int, w: int, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0,
             power: float = 2.0) -> Mask:
    """Anti-aliased (super-)ellipse mask, computed on its bounding box only.

    ``power`` > 2 gives rounded rectangles.
    """
    ext = 1.2 * max(rx, ry) + 2
    y0, y1 = max(int(cy - ext), 0), min(int(cy + ext) + 1, h)
    x0, x1 = max(int(cx - ext), 0), min(int(cx + ext) + 1, w)
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - cy
    dx = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - cx
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = (dx * ca + dy * sa) / rx, (-dx * sa + dy * ca) / ry
    d = (np.abs(u) ** power + np.abs(v) ** power) ** (1 / power)
    return slice(y0, y1), slice(x0, x1), np.clip((1 - d) * min(rx, ry) + 0.5, 0, 1)


def _paint(img: np.ndarray, mask: Mask, colour: np.ndarray) -> None:
    rows, cols, alpha = mask
    a = alpha[:, :, None]
    region = img[rows, cols]  # a view: painting is in place
    region *= 1 - a
    region += a * colour


def _surround(img: np.ndarray, mask: Mask) -> np.ndarray:
    """Mean colour under a mask (alpha-weighted): what an object is seen against."""
    rows, cols, alpha = mask
    total = max(float(alpha.sum()), 1e-9)
    return (img[rows, cols] * alpha[:, :, None]).sum(axis=(0, 1)) / total


def _contrast(colour: np.ndarray, surround: np.ndarray) -> float:
    """RGB distance between a colour and its surround, scaled to [0, 1]."""
    return float(np.linalg.norm(colour - surround) / np.sqrt(3))


def _blob(rng, img, cx, cy, r) -> dict[str, Any]:
    h, w = img.shape[:2]
    rx, ry = r * rng.uniform(0.7, 1.3), r * rng.uniform(0.7, 1.3)
    power = float(rng.choice([2.0, 2.0, 4.0]))
    mask = _ellipse(h, w, cx, cy, rx, ry, rng.uniform(0, np.pi), power)
    style = ("colour", "luminance", "camouflage")[int(rng.choice(3, p=[0.4, 0.2, 0.4]))]
    surround = _surround(img, mask)
    if style == "colour":
        hue = rng.uniform(0, 1)
        colour = np.clip(0.5 + 0.5 * np.cos(2 * np.pi * (hue + np.array([0, 1 / 3, 2 / 3]))), 0, 1)
        colour = colour * rng.uniform(0.75, 1.0) + 0.05
    elif style == "luminance":
        colour = np.full(3, 0.05 if surround.mean() > 0.5 else 0.95) + rng.normal(0, 0.03, 3)
    else:
        colour = surround + rng.normal(0, 0.05, 3)
    colour = np.clip(colour, 0, 1)
    contrast = _contrast(colour, surround)
    shade = 1 + 0.12 * np.linspace(-1, 1, mask[2].shape[0])[:, None, None] * rng.choice([-1, 1])
    _paint(img, mask, np.clip(colour * shade, 0, 1))
    return {"type": "blob", "style": style, "cx": cx, "cy": cy, "rx": rx, "ry": ry,
            "contrast": contrast, "salience": 0.15 + 2.0 * contrast}


def _face(rng, img, cx, cy, r) -> dict[str, Any]:
    h, w = img.shape[:2]
    rx, ry = 0.78 * r, r
    skin = np.clip(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] + rng.normal(0, 0.03, 3), 0, 1)
    head = _ellipse(h, w, cx, cy, rx, ry)
    contrast = _contrast(skin, _surround(img, head))
    if rng.random() < 0.7:  # hair cap
        hair = np.clip(rng.choice([0.08, 0.25, 0.45, 0.7]) * np.array([1.0, 0.8, 0.6]), 0, 1)
        _paint(img, _ellipse(h, w, cx, cy - 0.25 * ry, 1.05 * rx, 0.85 * ry), hair)
    _paint(img, head, skin)
    eye_r = max(0.13 * rx, 0.9)
    for side in (-1, 1):
        ex, ey = cx + side * 0.38 * rx, cy - 0.18 * ry
        _paint(img, _ellipse(h, w, ex, ey, 1.6 * eye_r, eye_r), np.array([0.95, 0.95, 0.95]))
        _paint(img, _ellipse(h, w, ex, ey, 0.8 * eye_r, 0.8 * eye_r), np.array([0.08, 0.06, 0.05]))
    _paint(img, _ellipse(h, w, cx, cy + 0.45 * ry, 0.35 * rx, max(0.07 * ry, 0.6)), skin * 0.45)
    # observers look at the eyes: the density centre sits between them
    return {"type": "face", "cx": cx, "cy": cy - 0.12 * ry, "rx": rx, "ry": ry,
            "contrast": contrast, "salience": 1.6 + 0.5 * contrast}


def _text(rng, img, cx, cy, r) -> dict[str, Any]:
    h, w = img.shape[:2]
    n_lines = int(rng.integers(1, 4))
    glyph_h = max(int(round(r * rng.uniform(0.35, 0.55))), 4)
    glyph_w = max(int(round(glyph_h * 0.6)), 3)
    n_chars = int(rng.integers(4, 11))
    box_w, box_h = n_chars * (glyph_w + 2) + 4, n_lines * (glyph_h + 3) + 3
    x0, y0 = int(round(cx - box_w / 2)), int(round(cy - box_h / 2))
    rows = slice(min(max(y0, 0), h), min(max(y0 + box_h, 0), h))
    cols = slice(min(max(x0, 0), w), min(max(x0 + box_w, 0), w))
    box: Mask = (rows, cols, np.ones((rows.stop - rows.start, cols.stop - cols.start)))
    if rng.random() < 0.6:  # a sign / label behind the text
        _paint(img, box, np.clip(_muted(rng, 0.75, 0.95, 0.1), 0, 1))
    ground = _surround(img, box)
    ink = np.full(3, 0.08) if ground.mean() > 0.45 else np.full(3, 0.95)
    ink = np.clip(ink + rng.normal(0, 0.04, 3), 0, 1)
    strokes = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(strokes)
    for line in range(n_lines):
        gy = y0 + 2 + line * (glyph_h + 3)
        for ch in range(n_chars - int(rng.integers(0, 3)) * (line > 0)):
            gx = x0 + 2 + ch * (glyph_w + 2)
            for _ in range(int(rng.integers(2, 4))):  # 2-3 strokes per glyph
                pts = rng.integers(0, 3, size=(2, 2)) / 2.0
                draw.line([(gx + pts[0, 0] * glyph_w, gy + pts[0, 1] * glyph_h),
                           (gx + pts[1, 0] * glyph_w, gy + pts[1, 1] * glyph_h)], fill=255, width=1)
    alpha = np.asarray(strokes, dtype=np.float64)[rows, cols] / 255.0
    _paint(img, (rows, cols, alpha), ink)
    return {"type": "text", "cx": cx, "cy": cy, "rx": box_w / 2, "ry": box_h / 2,
            "contrast": _contrast(ink, ground), "salience": 1.3 + 0.6 * _contrast(ink, ground)}


def _place(rng, h, w, placed, r) -> tuple[float, float]:
    for _ in range(30):
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        if all(np.hypot(cx - px, cy - py) > 0.8 * (r + pr) for px, py, pr in placed):
            break
    return float(cx), float(cy)


def render_scene(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """One scene: ``(uint8 RGB image, object list, fixation density summing to 1)``."""
    h, w = size
    img, kind = _background(rng, h, w)
    objects: list[dict[str, Any]] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(3, 8))):
        kind_obj = ("blob", "face", "text")[int(rng.choice(3, p=[0.55, 0.2, 0.25]))]
        r = float(rng.uniform(0.06, 0.16) * min(h, w))
        cx, cy = _place(rng, h, w, placed, r)
        placed.append((cx, cy, r))
        painter = {"blob": _blob, "face": _face, "text": _text}[kind_obj]
        objects.append(painter(rng, img, cx, cy, r))
    img = np.clip(img + rng.normal(0, 0.012, img.shape), 0, 1)  # sensor grain
    image = np.rint(img * 255).astype(np.uint8)
    return image, objects, fixation_density(objects, size)


def _gaussian(h: int, w: int, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    gx = np.exp(-0.5 * ((np.arange(w) + 0.5 - cx) / sx) ** 2)
    gy = np.exp(-0.5 * ((np.arange(h) + 0.5 - cy) / sy) ** 2)
    g = gy[:, None] * gx[None, :]
    return g / g.sum()


def fixation_density(objects: list[dict[str, Any]], size: tuple[int, int]) -> np.ndarray:
    """The known density: object Gaussians weighted by salience + centre bias + uniform floor."""
    h, w = size
    p = CENTRE_BIAS_MASS * _gaussian(h, w, w / 2, h / 2, 0.22 * w, 0.22 * h)
    p += UNIFORM_MASS / (h * w)
    for obj in objects:
        p += obj["salience"] * _gaussian(h, w, obj["cx"], obj["cy"], max(0.45 * obj["rx"], 1.0),
                                         max(0.45 * obj["ry"], 1.0))
    return p / p.sum()


def sample_fixations(rng: np.random.Generator, density: np.ndarray, observers: int,
                     per_observer: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """0-based (x, y) fixations (pixel + uniform offset) and observer ids, observer by observer."""
    h, w = density.shape
    cdf = np.cumsum(density.ravel())
    counts = rng.integers(per_observer[0], per_observer[1] + 1, size=observers)
    idx = np.minimum(np.searchsorted(cdf, rng.random(int(counts.sum())) * cdf[-1], side="right"), h * w - 1)
    offsets = rng.random((len(idx), 2))
    fix = np.stack([idx % w + offsets[:, 0], idx // w + offsets[:, 1]], axis=1)
    # an offset can round up to the pixel's far edge; keep it strictly inside the image
    fix = np.minimum(fix, np.nextafter(np.array([w, h], dtype=np.float64), 0))
    return fix, np.repeat(np.arange(observers), counts)


def default_blur_sigma(size: tuple[int, int]) -> float:
    return max(size) / 32.0


# ----------------------------------------------------------------------------- writers
def _normalise_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown synthetic saliency parameter(s) {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    p["size"] = [int(v) for v in p["size"]]
    p["fixations_per_observer"] = [int(v) for v in p["fixations_per_observer"]]
    p["splits"] = [float(v) for v in p["splits"]]
    p["n_images"], p["seed"], p["observers"] = int(p["n_images"]), int(p["seed"]), int(p["observers"])
    p["blur_sigma"] = None if p["blur_sigma"] is None else float(p["blur_sigma"])
    if len(p["size"]) != 2 or min(p["size"]) < 32:
        raise ConfigError(f"size must be (height, width) with both >= 32, got {p['size']}")
    lo, hi = p["fixations_per_observer"]
    if not 1 <= lo <= hi or p["observers"] < 1 or p["n_images"] < 1:
        raise ConfigError("need n_images >= 1, observers >= 1 and 1 <= fixations_per_observer[0] <= [1]")
    if len(p["splits"]) != 3 or min(p["splits"]) < 0 or abs(sum(p["splits"]) - 1) > 1e-6:
        raise ConfigError(f"splits must be three fractions (train, val, test) summing to 1, got {p['splits']}")
    return p


def _split_names(names: list[str], fractions: list[float], seed: int) -> dict[str, list[str]]:
    n = len(names)
    n_train, n_val = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    n_val = min(n_val, n - n_train)
    order = np.random.default_rng([seed, 0x5B1]).permutation(n)
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {k: [names[i] for i in sorted(v)] for k, v in parts.items()}


def generate_saliency_dataset(root: str | Path, n_images: int = 240, size: tuple[int, int] = (144, 192),
                              seed: int = 0, observers: int = 15,
                              fixations_per_observer: tuple[int, int] = (6, 10),
                              blur_sigma: float | None = None,
                              splits: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Path:
    """Generate the synthetic set into ``root`` (created; must be empty) and return it.

    Writes ``stimuli/synNNNN.png``, ``maps/synNNNN.png`` (16-bit), ``fixations/synNNNN.csv``
    (``x,y,subject``), ``splits/{train,val,test}.txt``, ``objects.json`` (the objects and
    saliences behind each image) and finally ``dataset.json`` (every parameter, the blur
    sigma, split sizes). Same parameters give byte-identical files.
    """
    p = _normalise_params({"n_images": n_images, "size": size, "seed": seed, "observers": observers,
                           "fixations_per_observer": fixations_per_observer, "blur_sigma": blur_sigma,
                           "splits": splits})
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise DataError(root, "output folder is not empty", expected="a new or empty folder")
    h, w = p["size"]
    sigma = p["blur_sigma"] if p["blur_sigma"] is not None else default_blur_sigma((h, w))
    names = [f"syn{i:04d}" for i in range(p["n_images"])]
    all_objects: dict[str, list[dict[str, Any]]] = {}
    for i, name in enumerate(names):
        rng = np.random.default_rng([p["seed"], i])  # per-image stream: image i never depends on n_images
        image, objects, density = render_scene(rng, (h, w))
        fix, subjects = sample_fixations(rng, density, p["observers"], tuple(p["fixations_per_observer"]))
        counts = np.zeros((h, w))
        np.add.at(counts, (fix[:, 1].astype(int), fix[:, 0].astype(int)), 1.0)
        blurred = gaussian_filter(counts, sigma, mode="constant")
        emp = blurred / blurred.max()
        atomic_write_bytes(root / "stimuli" / f"{name}.png", encode_png(image, compress_level=1))
        atomic_write_bytes(root / "maps" / f"{name}.png", encode_png(np.rint(emp * 65535).astype(np.uint16),
                                                                           compress_level=1))
        atomic_write_text(root / "fixations" / f"{name}.csv", fixations_csv_text(fix, subjects))
        all_objects[name] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in o.items()}
                             for o in objects]
    split_names = _split_names(names, p["splits"], p["seed"])
    for split, members in split_names.items():
        write_split(root, split, members)
    atomic_write_json(root / "objects.json", all_objects)
    info = {
        "format": "kdnas-folder",
        "generator": "kdnas.data.synthetic.saliency",
        "generator_version": GENERATOR_VERSION,
        "params": p,
        "blur_sigma": sigma,
        "map_encoding": "16-bit PNG, blurred fixation counts divided by their max",
        "fixations": "0-based x,y (pixel + uniform sub-pixel offset), subject = observer index",
        "density": {"centre_bias_mass": CENTRE_BIAS_MASS, "uniform_mass": UNIFORM_MASS,
                    "centre_bias_sigma_fraction": 0.22},
        "split_sizes": {k: len(v) for k, v in split_names.items()},
        "n_images": p["n_images"],
    }
    atomic_write_json(root / "dataset.json", info)  # last: marks the set complete
    return root


def builtin_saliency_root(cache_dir: str | Path | None = None, **params: Any) -> Path:
    """A complete synthetic set for ``params`` in the cache, generated on first use.

    The folder is ``<cache>/builtin/saliency-<hash of params + generator version>``. A
    process generates into a private temporary folder and renames it into place; when two
    processes race, the loser discards its copy and uses the winner's (identical) one.
    """
    p = _normalise_params(params)
    return cached_dataset("saliency", p, GENERATOR_VERSION, lambda folder: generate_saliency_dataset(
        folder, **{k: tuple(v) if isinstance(v, list) else v for k, v in p.items()}), cache_dir)
