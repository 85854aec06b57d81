"""The built-in synthetic chest X-ray set, written exactly like NIH ChestX-ray14.

Each image is a procedural PA radiograph: body soft tissue, two lung fields with branching
vessel markings, ribs, clavicles, spine, heart shadow and quantum noise. Up to six findings
are planted with NIH label spellings, and every planted instance gets a box:

* ``Nodule``: small bright round opacity (1-2 per image);
* ``Mass``: larger lobulated opacity with internal texture;
* ``Effusion``: basal homogeneous opacity with a meniscus rising laterally (blunted angle);
* ``Cardiomegaly``: heart shadow widened to a cardiothoracic ratio of 0.55-0.65 (normal 0.40-0.47);
* ``Pneumothorax``: apical-lateral lucent rim without lung markings behind a visible pleural line;
* ``Atelectasis``: plate-like band opacity in a lower zone with volume loss (elevated hemidiaphragm,
  mediastinal shift toward that side).

Findings co-occur: cardiomegaly is a per-patient trait that persists across follow-ups and
raises the chance of effusion; effusion and mass raise the chance of atelectasis. About 40% of
images are ``No Finding``. The output (``images/<8-digit patient>_<3-digit follow-up>.png``,
``Data_Entry_2017.csv``, ``BBox_List_2017.csv`` in the 1024-px frame, patient-disjoint
``train_val_list.txt`` / ``test_list.txt``, ``dataset.json`` last) reads back through
:class:`kdnas.data.cxr.nih.NIHDataset`, whose box rescaling and official-split paths it exercises.
Same parameters give byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter, zoom

from kdnas.data.cxr.labels import NIH_BOX_FRAME
from kdnas.data.synthetic.cache import cached_dataset
from kdnas.utils.errors import ConfigError
from kdnas.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

GENERATOR_VERSION = 1
SYNTHETIC_FINDINGS: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Effusion", "Mass", "Nodule", "Pneumothorax")
NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
TEST_PATIENT_FRACTION = 0.2
_EDGE = 0.006  # soft-edge width (fraction of the image) of anatomical boundaries


def _sig(x: np.ndarray, e: float = _EDGE) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(x / (2.0 * e)))


# -- labels ------------------------------------------------------------------------------------
def _draw_labels(rng: np.random.Generator, cardiac_trait: bool, enabled: Sequence[str]) -> set[str]:
    """Findings of one image; the co-occurrence structure lives here."""
    found: set[str] = set()
    if rng.random() < (0.9 if cardiac_trait else 0.03):
        found.add("Cardiomegaly")
    if rng.random() < 0.14:
        found.add("Nodule")
    if rng.random() < 0.10:
        found.add("Mass")
    if rng.random() < (0.45 if "Cardiomegaly" in found else 0.25 if "Mass" in found else 0.10):
        found.add("Effusion")
    if rng.random() < 0.10:
        found.add("Pneumothorax")
    if rng.random() < (0.30 if found & {"Effusion", "Mass"} else 0.10):
        found.add("Atelectasis")
    return found & set(enabled)


# -- anatomy -----------------------------------------------------------------------------------
def _patient_anatomy(rng: np.random.Generator) -> dict[str, float]:
    return {
        "cx": 0.5 + rng.normal(0, 0.01), "tw": rng.uniform(0.33, 0.38), "apex": rng.uniform(0.12, 0.16),
        "dia": rng.uniform(0.71, 0.76), "dome": rng.uniform(0.05, 0.08), "ctr": rng.uniform(0.40, 0.47),
        "rib_sp": rng.uniform(0.052, 0.06), "rib_phase": rng.uniform(-0.01, 0.01), "tissue": rng.uniform(0.46, 0.54),
        "lung_dark": rng.uniform(0.27, 0.33), "body_hw": rng.uniform(0.40, 0.47),
        "rib_gain": rng.uniform(0.7, 1.2),
    }


def _follow_up_anatomy(base: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    a = dict(base)
    a["cx"] += rng.normal(0, 0.006)  # positioning differs a little between visits
    a["dia"] += rng.normal(0, 0.01)  # inspiration depth
    a["gain"] = rng.uniform(0.9, 1.1)
    a["offset"] = rng.uniform(-0.04, 0.04)
    a["dia_r"] = a["dia"] - 0.015  # right hemidiaphragm sits higher (liver)
    a["dia_l"] = a["dia"]
    a["shift"] = 0.0
    return a


class _Canvas:
    """Normalised coordinate grids of one image (u: left->right, v: top->bottom, both in [0, 1])."""

    def __init__(self, size: int):
        g = (np.arange(size, dtype=np.float64) + 0.5) / size
        self.size = size
        self.U, self.V = np.meshgrid(g, g)


def _lung(c: _Canvas, a: dict[str, float], side: int) -> np.ndarray:
    """Soft mask of one lung; side -1 = image left (patient right), +1 = image right."""
    U, V = c.U, c.V
    cx = a["cx"] + a["shift"]
    tw = a["tw"]
    x_med = cx + side * 0.06
    widen = np.clip((V - a["apex"]) / 0.32, 0.0, 1.0)
    x_lat = a["cx"] + side * tw * (0.62 + 0.38 * np.sqrt(widen))
    apex_x = a["cx"] + side * 0.45 * tw
    v_top = a["apex"] + 0.12 * ((U - apex_x) / (0.5 * tw)) ** 2
    dia = a["dia_r"] if side < 0 else a["dia_l"]
    dome_x = a["cx"] + side * 0.5 * tw
    v_bot = dia - a["dome"] * (1.0 - ((U - dome_x) / (0.55 * tw)) ** 2)
    return (_sig(side * (x_lat - U)) * _sig(side * (U - x_med)) * _sig(V - v_top) * _sig(v_bot - V))


def _heart(c: _Canvas, a: dict[str, float], ctr: float) -> np.ndarray:
    width = ctr * 2.0 * a["tw"]
    a_r, a_l = 0.32 * width, 0.68 * width  # most of the heart lies left of the midline
    cx = a["cx"] + a["shift"]
    hx, half = cx + (a_l - a_r) / 2.0, width / 2.0
    hy, hh = a["dia_l"] - 0.05, 0.17
    r2 = ((c.U - hx) / half) ** 2 + ((c.V - hy) / hh) ** 2
    return _sig(1.0 - r2, 0.04)


def _vessels(c: _Canvas, a: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Branching vessel markings radiating from the hila (drawn, then softened)."""
    s = c.size
    img = Image.new("L", (s, s), 0)
    draw = ImageDraw.Draw(img)
    for side in (-1, 1):
        hx, hy = a["cx"] + side * 0.09, 0.44
        for _ in range(16):
            ang = rng.uniform(-1.1, 1.1) + (np.pi if side < 0 else 0.0)
            x, y, val = hx, hy + rng.normal(0, 0.04), 200.0
            for _seg in range(4):
                step = rng.uniform(0.04, 0.07)
                ang += rng.normal(0, 0.25)
                nx, ny = x + np.cos(ang) * step, y + np.sin(ang) * step * 0.9
                draw.line([(x * s, y * s), (nx * s, ny * s)], fill=int(val), width=1)
                x, y, val = nx, ny, val * 0.72
    arr = np.asarray(img, dtype=np.float64) / 255.0
    return gaussian_filter(arr, 0.6)


def _box_of(mask: np.ndarray, size: int) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) in the 1024 frame of the pixels where ``mask > 0.5``."""
    rows = np.flatnonzero(mask.max(axis=1) > 0.5)
    cols = np.flatnonzero(mask.max(axis=0) > 0.5)
    if rows.size == 0:
        return None
    f = NIH_BOX_FRAME[0] / size
    return (cols[0] * f, rows[0] * f, (cols[-1] - cols[0] + 1) * f, (rows[-1] - rows[0] + 1) * f)


def _pick_in(mask: np.ndarray, c: _Canvas, rng: np.random.Generator, margin: float) -> tuple[float, float] | None:
    """A random point well inside ``mask`` (its 4 neighbours at ``margin`` are inside too)."""
    ys, xs = np.nonzero(mask > 0.9)
    if ys.size == 0:
        return None
    s = c.size
    for _ in range(30):
        i = int(rng.integers(ys.size))
        u, v = (xs[i] + 0.5) / s, (ys[i] + 0.5) / s
        probe = [(u + margin, v), (u - margin, v), (u, v + margin), (u, v - margin)]
        if all(0 <= px < 1 and 0 <= py < 1 and mask[int(py * s), int(px * s)] > 0.9 for px, py in probe):
            return u, v
    return None


# -- rendering ---------------------------------------------------------------------------------
def _render(a: dict[str, float], found: set[str], rng: np.random.Generator, size: int
            ) -> tuple[np.ndarray, list[tuple[str, tuple[float, float, float, float]]]]:
    c = _Canvas(size)
    U, V = c.U, c.V
    boxes: list[tuple[str, tuple[float, float, float, float]]] = []
    atel_side = int(rng.choice([-1, 1]))
    if "Atelectasis" in found:  # volume loss: raised hemidiaphragm, mediastinum pulled over
        a["dia_r" if atel_side < 0 else "dia_l"] -= rng.uniform(0.03, 0.05)
        a["shift"] = atel_side * rng.uniform(0.01, 0.02)
    ctr = rng.uniform(0.55, 0.65) if "Cardiomegaly" in found else a["ctr"]

    body_hw = 0.12 + (a["body_hw"] - 0.12) * np.clip((V - 0.02) / 0.16, 0, 1) ** 0.7
    body = _sig(body_hw - np.abs(U - a["cx"]), 0.012)
    lungs = {side: _lung(c, a, side) for side in (-1, 1)}
    heart = _heart(c, a, ctr)
    lung_eff = np.clip((lungs[-1] + lungs[1]) * (1.0 - heart), 0.0, 1.0)

    img = 0.08 + a["tissue"] * body
    markings = _vessels(c, a, rng) + 0.5 * np.clip(gaussian_filter(rng.normal(0, 1, (size, size)), 1.0), 0, None)
    hidden = np.zeros_like(img)  # where lung markings are not visible (fluid, pleural air)
    extra = np.zeros_like(img)   # opacities (+) and lucencies (-) of the findings

    if "Cardiomegaly" in found:
        box = _box_of(heart, size)
        if box:
            boxes.append(("Cardiomegaly", box))
    if "Effusion" in found:
        sides = [-1, 1] if rng.random() < 0.3 else [int(rng.choice([-1, 1]))]
        for side in sides:
            x_in, x_out = a["cx"] + side * 0.06, a["cx"] + side * a["tw"]
            t = np.clip((U - x_in) / (x_out - x_in), 0, 1)
            level = (a["dia_r"] if side < 0 else a["dia_l"]) - rng.uniform(0.10, 0.17)
            surface = level - rng.uniform(0.05, 0.09) * t ** 2  # meniscus climbs the lateral wall
            fluid = _sig(V - surface, 0.012) * lungs[side] * (1.0 - heart)
            hidden = np.maximum(hidden, fluid)
            extra += a["lung_dark"] * 0.95 * fluid
            box = _box_of(fluid, size)
            if box:
                boxes.append(("Effusion", box))
    if "Pneumothorax" in found:
        side = int(rng.choice([-1, 1]))
        lung = lungs[side]
        gap0 = rng.uniform(0.035, 0.06)
        v_end = a["apex"] + rng.uniform(0.28, 0.4)
        gap = gap0 * np.sqrt(np.clip((v_end - V) / (v_end - a["apex"]), 0, 1))
        x_lat = a["cx"] + side * a["tw"] * (0.62 + 0.38 * np.sqrt(np.clip((V - a["apex"]) / 0.32, 0, 1)))
        d_wall = np.minimum(side * (x_lat - U), 1.3 * (V - a["apex"] - 0.12 * ((U - (a["cx"] + side * 0.45 * a["tw"]))
                                                                                / (0.5 * a["tw"])) ** 2))
        air = _sig(gap - d_wall, 0.004) * lung * (gap > 0.004)
        pleural_line = np.exp(-(((d_wall - gap) / 0.005) ** 2)) * lung * (gap > 0.008)
        hidden = np.maximum(hidden, air)
        extra += -0.07 * air + 0.14 * pleural_line
        box = _box_of(air, size)
        if box:
            boxes.append(("Pneumothorax", box))
    if "Atelectasis" in found:
        lung = lungs[atel_side] * (1.0 - heart)
        centre = _pick_in(lung * (V > 0.45) * (V < 0.66), c, rng, 0.04)
        if centre is not None:
            ang = rng.uniform(-0.45, 0.45)
            length, thick = rng.uniform(0.14, 0.2), rng.uniform(0.022, 0.032)
            du, dv = U - centre[0], V - centre[1]
            along, perp = du * np.cos(ang) + dv * np.sin(ang), -du * np.sin(ang) + dv * np.cos(ang)
            band = _sig(thick / 2 - np.abs(perp), 0.004) * _sig(length / 2 - np.abs(along), 0.01) * lung
            extra += rng.uniform(0.2, 0.26) * band
            box = _box_of(band, size)
            if box:
                boxes.append(("Atelectasis", box))
    if "Mass" in found:
        radius = rng.uniform(0.06, 0.085)
        centre = _pick_in(lung_eff, c, rng, radius * 0.8)
        if centre is not None:
            du, dv = U - centre[0], V - centre[1]
            theta, dist = np.arctan2(dv, du), np.hypot(du, dv)
            edge = radius * (1.0 + sum(rng.uniform(0.0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
                                       for k in range(2, 6)))
            mass = _sig(edge - dist, 0.006)
            grain = 0.85 + 0.15 * gaussian_filter(rng.random((size, size)), 1.5) / 0.5
            extra += rng.uniform(0.22, 0.3) * mass * np.clip(grain, 0.7, 1.15)
            box = _box_of(mass, size)
            if box:
                boxes.append(("Mass", box))
    if "Nodule" in found:
        for _ in range(1 if rng.random() < 0.7 else 2):
            radius = rng.uniform(0.022, 0.034)
            centre = _pick_in(lung_eff, c, rng, radius * 1.5)
            if centre is None:
                continue
            dist = np.hypot(U - centre[0], V - centre[1])
            nodule = _sig(radius - dist, 0.004)
            extra += rng.uniform(0.2, 0.28) * nodule * np.sqrt(np.clip(1 - (dist / radius) ** 2, 0.15, 1))
            box = _box_of(nodule, size)
            if box:
                boxes.append(("Nodule", box))

    img = img - a["lung_dark"] * lung_eff
    img += 0.09 * markings * lung_eff * (1.0 - hidden)
    img += 0.09 * np.exp(-((np.abs(U - a["cx"] - a["shift"]) - 0.085) ** 2 + (V - 0.45) ** 2) / 0.0012) * body
    spine = np.exp(-(((U - a["cx"]) / 0.035) ** 2)) * (V > 0.06)
    img += spine * (0.10 + 0.025 * np.cos(2 * np.pi * (V - 0.05) / 0.055)) * body
    for side in (-1, 1):
        x_rel = side * (U - a["cx"]) / a["tw"]
        inside = _sig(x_rel - 0.1, 0.03) * _sig(1.02 - x_rel, 0.02)
        over = inside * (0.35 + 0.65 * lung_eff) * a["rib_gain"]
        # posterior ribs rise from the spine, then curve down along the lateral wall; anterior ribs
        # (fainter) run down towards the midline. Rib k is the k-th period of a banded pattern.
        t = (V - (a["apex"] - 0.03 + a["rib_phase"] - 0.05 * x_rel + 0.16 * x_rel ** 2)) / a["rib_sp"]
        k = np.rint(t)
        d = (t - k) * a["rib_sp"]
        img += 0.045 * np.exp(-((d / (0.009 + 0.0004 * k)) ** 2)) * ((k >= 0) & (k < 10)) * over
        t = (V - (a["apex"] + 0.10 * (1.0 - x_rel) ** 2)) / 0.05
        k = np.rint(t)
        d = (t - k) * 0.05
        img += 0.02 * np.exp(-((d / 0.012) ** 2)) * ((k >= 0) & (k < 7)) * over
        # clavicle: oblique bar from the manubrium outwards and up
        p0 = np.array([a["cx"] + side * 0.05, 0.165])
        p1 = np.array([a["cx"] + side * 0.33, 0.10])
        d = p1 - p0
        t = np.clip(((U - p0[0]) * d[0] + (V - p0[1]) * d[1]) / (d @ d), 0, 1)
        dist = np.hypot(U - p0[0] - t * d[0], V - p0[1] - t * d[1])
        img += 0.11 * np.exp(-((dist / 0.012) ** 2))
    img += extra
    img += 0.03 * zoom(rng.normal(0, 1, (4, 4)), size / 4, order=3, mode="nearest")  # uneven exposure
    img = gaussian_filter(img * a["gain"] + a["offset"], 0.5)
    img += rng.normal(0, 0.012, img.shape)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), boxes


# -- writing -----------------------------------------------------------------------------------
def _normalise_params(n_images: int, size: int, seed: int, findings: Sequence[str]) -> dict[str, Any]:
    findings = tuple(findings)
    unknown = [f for f in findings if f not in SYNTHETIC_FINDINGS]
    if unknown or not findings or len(set(findings)) != len(findings):
        raise ConfigError(f"findings must be distinct names from {', '.join(SYNTHETIC_FINDINGS)}; got {list(findings)}")
    if int(n_images) < 10:
        raise ConfigError(f"n_images must be >= 10, got {n_images}")
    if not 32 <= int(size) <= 1024:
        raise ConfigError(f"size must be in 32..1024 pixels, got {size}")
    return {"n_images": int(n_images), "size": int(size), "seed": int(seed),
            "findings": sorted(findings)}


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _fmt(x: float) -> str:
    return repr(float(x))


def generate_cxr_dataset(root: str | Path, n_images: int = 600, size: int = 128, seed: int = 0,
                         findings: Sequence[str] = SYNTHETIC_FINDINGS) -> Path:
    """Write the synthetic set into ``root`` (created if needed) and return it.

    ``size`` is the PNG side in pixels; boxes are in the 1024 x 1024 frame, as NIH states
    them, so the PNGs behave like downsized copies of 1024-px originals.
    """
    p = _normalise_params(n_images, size, seed, findings)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    master = np.random.default_rng([p["seed"], 7919])
    entries: list[str] = []
    bbox_rows: list[str] = []
    patients: list[tuple[int, list[str]]] = []
    label_counts = dict.fromkeys(p["findings"], 0)
    n_done, pid = 0, 0
    while n_done < p["n_images"]:
        pid += 1
        n_follow = min(int(master.integers(1, 6)), p["n_images"] - n_done)
        prng = np.random.default_rng([p["seed"], pid, 0])
        base = _patient_anatomy(prng)
        cardiac = bool(prng.random() < 0.22)
        sex = "M" if prng.random() < 0.55 else "F"
        age0 = int(prng.integers(18, 85))
        names: list[str] = []
        for fu in range(n_follow):
            rng = np.random.default_rng([p["seed"], pid, fu + 1])
            found = _draw_labels(rng, cardiac, p["findings"])
            anat = _follow_up_anatomy(base, rng)
            pixels, boxes = _render(anat, found, rng, p["size"])
            found = {lab for lab, _ in boxes}  # a finding that could not be placed is not labelled
            name = f"{pid:08d}_{fu:03d}.png"
            atomic_write_bytes(root / "images" / name, _png_bytes(pixels))
            view = "PA" if rng.random() < 0.65 else "AP"
            labels = "|".join(sorted(found)) if found else "No Finding"
            entries.append(f"{name},{labels},{fu},{pid},{age0 + fu},{sex},{view},1024,1024,0.143,0.143")
            bbox_rows.extend(f"{name},{lab},{','.join(_fmt(v) for v in box)}" for lab, box in boxes)
            for lab in found:
                label_counts[lab] += 1
            names.append(name)
        patients.append((pid, names))
        n_done += n_follow
    # patient-disjoint official-style lists: rank patients by a seeded hash
    order = sorted(patients, key=lambda t: hashlib.blake2b(f"{p['seed']}:{t[0]}".encode(), digest_size=8).digest())
    n_test = max(1, round(TEST_PATIENT_FRACTION * len(order)))
    test = sorted(n for _, names in order[:n_test] for n in names)
    train_val = sorted(n for _, names in order[n_test:] for n in names)
    atomic_write_text(root / "Data_Entry_2017.csv", "\n".join([NIH_HEADER] + entries) + "\n")
    atomic_write_text(root / "BBox_List_2017.csv", "\n".join([BBOX_HEADER] + bbox_rows) + "\n")
    atomic_write_text(root / "train_val_list.txt", "\n".join(train_val) + "\n")
    atomic_write_text(root / "test_list.txt", "\n".join(test) + "\n")
    n_normal = sum(1 for e in entries if ",No Finding," in e)
    info = {
        "format": "nih",
        "generator": "kdnas.data.synthetic.cxr",
        "generator_version": GENERATOR_VERSION,
        "params": p,
        "box_frame": list(NIH_BOX_FRAME),
        "n_images": len(entries),
        "n_patients": len(patients),
        "n_boxes": len(bbox_rows),
        "positives": label_counts,
        "no_finding": n_normal,
        "split_sizes": {"train_val": len(train_val), "test": len(test)},
    }
    atomic_write_json(root / "dataset.json", info)  # last: marks the set complete
    return root


def builtin_cxr_root(cache_dir: str | Path | None = None, **params: Any) -> Path:
    """A complete synthetic CXR set for ``params`` in the cache, generated on first use.

    The folder is ``<cache>/builtin/cxr-<hash of params + generator version>`` (cache:
    ``cache_dir``, else ``$KDNAS_CACHE``, else ``~/.cache/kdnas``). Generation goes to a private
    temporary folder that is renamed into place; a process that loses a race uses the winner's
    identical copy.
    """
    allowed = {"n_images", "size", "seed", "findings"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"unknown builtin CXR parameter(s) {unknown}; valid: {sorted(allowed)}")
    defaults: dict[str, Any] = {"n_images": 600, "size": 128, "seed": 0, "findings": SYNTHETIC_FINDINGS}
    p = _normalise_params(**{**defaults, **params})
    return cached_dataset("cxr", p, GENERATOR_VERSION, lambda folder: generate_cxr_dataset(folder, **p), cache_dir)
