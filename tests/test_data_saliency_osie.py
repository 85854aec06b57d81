"""OSIE: the real fixations.mat (all 700 images) and 7 real stimuli."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.io as sio
from scipy.ndimage import gaussian_filter

from kdnas.data.saliency import OSIEDataset, open_saliency_dataset
from kdnas.utils.errors import DataError

# README of ../shared/data: fixations per included stimulus, all 15 subjects
COUNTS = {"1001": 141, "1101": 145, "1201": 127, "1301": 157, "1401": 149, "1501": 153, "1601": 132}


@pytest.fixture(scope="module")
def osie(shared_data) -> OSIEDataset:
    return OSIEDataset(shared_data / "saliency" / "osie", only_present=True)


def test_annotation_file_statistics(osie, shared_data):
    digest = hashlib.md5((shared_data / "saliency/osie/data/eye/fixations.mat").read_bytes()).hexdigest()
    assert digest == "8efdf6fe66f38b6e70f854c7ff45aa70"
    assert osie.all_names == [str(i) for i in range(1001, 1701)]
    fix = np.concatenate([osie.fixations_for(n)[0] for n in osie.all_names])
    # pysaliency's loader statistics (metrics.md §13.4) are on the unshifted MATLAB values
    assert len(fix) == 98321
    np.testing.assert_allclose(fix.mean(axis=0) + 1, [401.466, 283.583], atol=5e-4)
    assert fix.min() >= 0.2 - 1e-9 and fix[:, 0].max() <= 798.2 + 1e-9 and fix[:, 1].max() <= 598.2 + 1e-9


def test_real_samples(osie):
    assert osie.names == sorted(COUNTS)
    for s in osie:
        assert s.size == (600, 800) and s.image.dtype == np.uint8
        assert len(s.fixations) == COUNTS[s.name] and s.meta["dropped_outside"] == 0
        assert sorted(set(s.subjects.tolist())) == list(range(15))
        assert len(s.meta["durations_ms"]) == len(s.fixations)
        assert s.density is None


def test_first_entry_matches_raw_matlab_values(osie, shared_data):
    m = sio.loadmat(shared_data / "saliency/osie/data/eye/fixations.mat")
    rec = m["fixations"][0, 0][0, 0]["subjects"][3, 0][0, 0]
    fix, subj, dur = osie.fixations_for("1001")
    sel = subj == 3
    np.testing.assert_array_equal(fix[sel, 0], rec["fix_x"].ravel() - 1)
    np.testing.assert_array_equal(fix[sel, 1], rec["fix_y"].ravel() - 1)
    np.testing.assert_array_equal(dur[sel], rec["fix_duration"].ravel())


def test_standard_split_and_density_option(shared_data, osie):
    val = open_saliency_dataset(shared_data / "saliency" / "osie", "osie", split="val")
    train = open_saliency_dataset(shared_data / "saliency" / "osie", "osie", split="train")
    assert len(train) == 500 and len(val) == 200 and not set(train.names) & set(val.names)
    expected = np.random.RandomState(42).permutation(700)[500:]
    assert val.names == [str(1001 + i) for i in expected]
    dens = OSIEDataset(shared_data / "saliency" / "osie", only_present=True, density_sigma=16)
    s = dens.load("1001")
    counts = np.zeros(s.size)
    np.add.at(counts, (s.fixations[:, 1].astype(int), s.fixations[:, 0].astype(int)), 1)
    ref = gaussian_filter(counts, 16, mode="constant")
    np.testing.assert_allclose(s.density, ref / ref.max(), atol=1e-12)
    assert s.density.max() == 1.0 and s.meta["density_from_fixations_sigma"] == 16


def test_missing_stimulus_and_bad_annotation(shared_data, tmp_path):
    ds = OSIEDataset(shared_data / "saliency" / "osie")
    with pytest.raises(DataError, match=r"stimuli/1002\.jpg: stimulus file not found"):
        ds.load("1002")
    (tmp_path / "eye").mkdir()
    sio.savemat(tmp_path / "eye" / "fixations.mat", {"fix": np.zeros(3)})
    with pytest.raises(DataError, match=r"fixations\.mat: missing variable 'fixations' \(variables present: \['fix'\]\)"):
        OSIEDataset(tmp_path)
