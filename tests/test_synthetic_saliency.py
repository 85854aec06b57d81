"""The built-in synthetic saliency set: determinism, layout, density, learnability, cache."""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from kdnas.data.saliency.folder import FolderSaliencyDataset
from kdnas.data.synthetic.saliency import (
    builtin_saliency_root,
    generate_saliency_dataset,
    render_scene,
    sample_fixations,
)
from kdnas.utils.errors import ConfigError, DataError

SMALL = {"n_images": 8, "size": (64, 80), "observers": 5}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    return float((a * b).mean())


@pytest.fixture(scope="module")
def default_set(tmp_path_factory) -> Path:
    """48 images at the default size and observers (enough for the statistics below)."""
    return generate_saliency_dataset(tmp_path_factory.mktemp("syn") / "set", n_images=48, seed=3)


def test_same_params_give_byte_identical_files(tmp_path):
    a = _files(generate_saliency_dataset(tmp_path / "a", seed=7, **SMALL))
    b = _files(generate_saliency_dataset(tmp_path / "b", seed=7, **SMALL))
    c = _files(generate_saliency_dataset(tmp_path / "c", seed=8, **SMALL))
    assert a == b
    assert a.keys() == c.keys()
    assert a["stimuli/syn0000.png"] != c["stimuli/syn0000.png"]
    # image i does not depend on how many images are generated
    d = _files(generate_saliency_dataset(tmp_path / "d", seed=7, **{**SMALL, "n_images": 3}))
    assert d["stimuli/syn0002.png"] == a["stimuli/syn0002.png"]
    assert d["fixations/syn0002.csv"] == a["fixations/syn0002.csv"]


def test_layout_reads_back_through_folder_reader(default_set):
    info = json.loads((default_set / "dataset.json").read_text())
    assert info["params"]["n_images"] == 48 and info["params"]["size"] == [144, 192]
    assert info["blur_sigma"] == 6.0  # max(H, W) / 32
    ds = FolderSaliencyDataset(default_set)
    assert len(ds) == 48 and ds.names[0] == "syn0000"
    splits = {s: FolderSaliencyDataset(default_set, split=s).names for s in ("train", "val", "test")}
    assert {k: len(v) for k, v in splits.items()} == info["split_sizes"] == {"train": 34, "val": 7, "test": 7}
    assert sorted(sum(splits.values(), [])) == ds.names  # a partition
    for sample in ds[:6]:
        h, w = sample.size
        assert (h, w) == (144, 192) and sample.image.shape == (144, 192, 3)
        fx, fy = sample.fixations[:, 0], sample.fixations[:, 1]
        assert np.all((fx >= 0) & (fx < w) & (fy >= 0) & (fy < h))
        per_observer = np.bincount(sample.subjects, minlength=15)
        assert len(per_observer) == 15 and per_observer.min() >= 6 and per_observer.max() <= 10
        # the stored map is the documented recipe: blur(count map, sigma) / max, 16-bit
        counts = np.zeros((h, w))
        np.add.at(counts, (np.floor(fy).astype(int), np.floor(fx).astype(int)), 1)
        ref = gaussian_filter(counts, info["blur_sigma"], mode="constant")
        np.testing.assert_allclose(sample.density, ref / ref.max(), atol=0.5 / 65535 + 1e-12)


def test_fixations_follow_the_known_density():
    rng = np.random.default_rng(11)
    _, objects, density = render_scene(rng, (96, 128))
    assert len(objects) >= 3 and abs(density.sum() - 1) < 1e-12
    fix, subj = sample_fixations(rng, density, observers=4000, per_observer=(5, 5))
    assert fix.shape == (20000, 2) and np.array_equal(np.bincount(subj), np.full(4000, 5))
    hist, _, _ = np.histogram2d(fix[:, 1], fix[:, 0], bins=(8, 8), range=((0, 96), (0, 128)))
    mass = density.reshape(8, 12, 8, 16).sum(axis=(1, 3))
    # multinomial standard error per cell is at most sqrt(0.25 / 20000) = 0.0035
    assert np.abs(hist / hist.sum() - mass).max() < 0.015


def test_salience_follows_visible_properties():
    objs = []
    for seed in range(40):
        objs += render_scene(np.random.default_rng(seed), (144, 192))[1]
    sal = {k: np.mean([o["salience"] for o in objs if o["type"] == k or o.get("style") == k])
           for k in ("face", "text", "colour", "camouflage")}
    assert sal["face"] > sal["colour"] > sal["camouflage"]
    assert sal["text"] > sal["camouflage"]


def test_learnable_local_contrast_beats_centre_bias(default_set):
    """A hand-made centre-surround colour contrast feature predicts the maps far better
    than the centre bias alone, so a small CNN has signal to learn."""
    ds = FolderSaliencyDataset(default_set)
    h, w = 144, 192
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    centre = np.exp(-0.5 * (((xx - w / 2) / (0.22 * w)) ** 2 + ((yy - h / 2) / (0.22 * h)) ** 2))
    cc_centre, cc_contrast = [], []
    for s in ds:
        img = s.image.astype(np.float64) / 255
        feat = sum(np.abs(gaussian_filter(img[..., c], 1) - gaussian_filter(img[..., c], 8)) for c in range(3))
        feat = gaussian_filter(feat, 4)
        cc_centre.append(_cc(centre, s.density))
        cc_contrast.append(_cc(feat, s.density))
    assert np.mean(cc_contrast) > np.mean(cc_centre) + 0.2
    assert np.mean(np.array(cc_contrast) > np.array(cc_centre)) > 0.8


def test_generation_time_budget(tmp_path):
    t0 = time.process_time()
    generate_saliency_dataset(tmp_path / "t", n_images=24)
    per_image = (time.process_time() - t0) / 24
    assert per_image * 240 < 10.0, f"{per_image * 1000:.1f} ms CPU per image"


def test_refuses_non_empty_folder_and_bad_params(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty"):
        generate_saliency_dataset(tmp_path, **SMALL)
    with pytest.raises(ConfigError, match="splits"):
        generate_saliency_dataset(tmp_path / "s", splits=(0.5, 0.5, 0.5), **SMALL)
    with pytest.raises(ConfigError, match="unknown synthetic saliency parameter"):
        builtin_saliency_root(tmp_path, n_imgs=3)


def test_builtin_root_caches_by_params(tmp_path, monkeypatch):
    monkeypatch.setenv("KDNAS_CACHE", str(tmp_path / "env-cache"))
    root = builtin_saliency_root(**SMALL)
    assert root.parent == tmp_path / "env-cache" / "builtin"
    assert (root / "dataset.json").is_file()
    stamp = (root / "dataset.json").stat().st_mtime_ns
    assert builtin_saliency_root(**SMALL) == root
    assert (root / "dataset.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    # tuple vs list spelling is the same key; other params give another folder
    assert builtin_saliency_root(**{**SMALL, "size": [64, 80]}) == root
    other = builtin_saliency_root(tmp_path / "explicit", **{**SMALL, "seed": 1})
    assert other.parent == tmp_path / "explicit" / "builtin" and other.name != root.name
    assert _files(root) == _files(generate_saliency_dataset(tmp_path / "direct", **SMALL))
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary folders left


def _race(args):
    cache, params = args
    return str(builtin_saliency_root(cache, **params))


def test_builtin_root_is_safe_under_a_race(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        roots = pool.map(_race, [(str(tmp_path), SMALL)] * 4)
    assert len(set(roots)) == 1
    root = Path(roots[0])
    assert len(FolderSaliencyDataset(root)) == SMALL["n_images"]
    assert [p.name for p in (tmp_path / "builtin").iterdir()] == [root.name]


def test_builtin_root_loser_of_a_race_uses_the_winner(tmp_path, monkeypatch):
    """Another process finishes first: our rename fails, we return its set and clean up."""
    import kdnas.data.synthetic.saliency as syn

    real = syn.generate_saliency_dataset
    winner: list[Path] = []

    def generate_while_another_process_wins(root, **params):
        out = real(root, **params)
        final = next(p for p in (tmp_path / "builtin").iterdir() if p.name.startswith(".tmp-"))
        final = final.parent / final.name[len(".tmp-"):].rsplit("-", 1)[0]
        winner.append(real(final, **params))  # the "other process" renames its copy into place first
        (out / "stimuli" / "syn0000.png").write_bytes(b"loser copy")  # must not be what we return
        return out

    monkeypatch.setattr(syn, "generate_saliency_dataset", generate_while_another_process_wins)
    root = syn.builtin_saliency_root(tmp_path, **SMALL)
    assert winner == [root]
    assert (root / "stimuli" / "syn0000.png").read_bytes() != b"loser copy"
    assert [p.name for p in (tmp_path / "builtin").iterdir()] == [root.name]
