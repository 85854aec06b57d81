"""Scoring explanations: localisation, agreement and faithfulness against hand-derived values,
and the evaluation driver on an oracle model whose Grad-CAM is its input image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from kdnas.data.types import Box, CXRSample
from kdnas.explain import (
    ExplainedModel,
    box_mask,
    energy_pointing_game,
    evaluate_explanations,
    faithfulness_scores,
    format_table,
    localization_scores,
    map_agreement,
    pointing_game,
    write_scores,
)
from kdnas.explain.evaluate import summarise
from kdnas.explain.localization import binarize, centre_baseline, iou, threshold_spec
from kdnas.utils.errors import ConfigError, KdnasError

BOX = Box("A", 2, 3, 4, 2)  # pixel centres x in [2, 6] -> columns 2..5; y in [3, 5] -> rows 3..4


def test_box_mask_pixel_centre_rule_tolerance_and_subpixel_boxes():
    mask = box_mask([BOX], (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[3:5, 2:6] = True
    np.testing.assert_array_equal(mask, expected)
    # tolerance 1 px: one more ring; the corner centres are sqrt(0.5) px from the box corners
    wide = np.zeros((10, 10), bool)
    wide[2:6, 1:7] = True
    np.testing.assert_array_equal(box_mask([BOX], (10, 10), tolerance=1.0), wide)
    tiny = box_mask([Box("A", 7.1, 7.1, 0.3, 0.3)], (10, 10))  # covers no pixel centre
    assert tiny.sum() == 1 and tiny[7, 7]
    union = box_mask([BOX, Box("A", 0, 0, 1, 1)], (10, 10))
    assert union.sum() == 9 and union[0, 0]


def test_pointing_game_hits_misses_ties_and_constant_maps():
    mask = box_mask([BOX], (10, 10))
    cam = np.zeros((10, 10))
    cam[3, 2] = 1
    assert pointing_game(cam, mask) == 1.0
    cam[3, 2], cam[0, 0] = 0, 1
    assert pointing_game(cam, mask) == 0.0
    cam[4, 5] = 1  # two maxima, one inside: the expected hit of a random pick
    assert pointing_game(cam, mask) == 0.5
    assert pointing_game(np.full((10, 10), 0.3), mask) == pytest.approx(8 / 100)  # chance level
    tol = box_mask([BOX], (10, 10), tolerance=1.0)
    peak = np.zeros((10, 10))
    peak[2, 1] = 1  # diagonal neighbour of the box corner pixel
    assert pointing_game(peak, mask) == 0.0 and pointing_game(peak, tol) == 1.0


def test_energy_pointing_game():
    mask = box_mask([BOX], (10, 10))
    cam = np.zeros((10, 10))
    cam[3, 2], cam[0, 0] = 3.0, 1.0
    assert energy_pointing_game(cam, mask) == pytest.approx(0.75)
    assert energy_pointing_game(np.zeros((10, 10)), mask) == pytest.approx(0.08)  # no mass: as uniform


def test_binarize_iou_and_hits():
    mask = box_mask([BOX], (10, 10))
    cam = np.zeros((10, 10))
    cam[3, 2], cam[3, 3], cam[0, 0] = 3.0, 2.0, 1.0
    half = binarize(cam, "fraction", 0.5)  # >= 1.5: the two in-box pixels
    assert half.sum() == 2 and iou(half, mask) == pytest.approx(2 / 8)
    top = binarize(cam, "topk", 0.03)  # top 3 of 100 pixels: all three non-zero pixels
    assert top.sum() == 3 and iou(top, mask) == pytest.approx(2 / 9)
    scores = localization_scores(cam, [BOX], tolerance=1.0, thresholds=("0.5max", "top3%"))
    assert scores == pytest.approx({"pointing_game": 1.0, "pointing_game_tol1px": 1.0, "energy_pointing": 5 / 6,
                                    "iou@0.5max": 0.25, "hit0.1@0.5max": 1.0, "hit0.25@0.5max": 1.0,
                                    "hit0.5@0.5max": 0.0, "iou@top3%": 2 / 9, "hit0.1@top3%": 1.0,
                                    "hit0.25@top3%": 0.0, "hit0.5@top3%": 0.0})
    assert threshold_spec("0.3max") == ("fraction", 0.3) and threshold_spec("top10%") == ("topk", 0.1)
    with pytest.raises(KdnasError, match="expected '<f>max'"):
        threshold_spec("half")
    with pytest.raises(KdnasError, match="NaN"):
        pointing_game(np.full((3, 3), np.nan), mask[:3, :3])


def test_centre_baseline_peaks_in_the_middle():
    c = centre_baseline((9, 9))
    assert np.unravel_index(c.argmax(), c.shape) == (4, 4) and c[4, 4] == pytest.approx(1.0)


def test_agreement_of_identical_monotone_reversed_and_resized_maps():
    rng = np.random.default_rng(0)
    a = rng.random((8, 8)).astype(np.float32)
    same = map_agreement(a, a.copy())
    assert same == pytest.approx({"spearman": 1.0, "pearson": 1.0, "top20%_iou": 1.0, "peak_distance": 0.0,
                                  "peak_distance_rel": 0.0})
    cubed = map_agreement(a, a ** 3)  # monotone: same ranking, not linear
    assert cubed["spearman"] == pytest.approx(1.0) and cubed["pearson"] < 0.99
    assert map_agreement(a, 1 - a)["spearman"] == pytest.approx(-1.0)
    # Spearman = Pearson of the ranks (no ties in random floats)
    b = rng.random((8, 8)).astype(np.float32)
    ra, rb = a.ravel().argsort().argsort(), b.ravel().argsort().argsort()
    assert map_agreement(a, b)["spearman"] == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    import cv2

    big = cv2.resize(a, (16, 16), interpolation=cv2.INTER_LINEAR)
    assert map_agreement(a, big)["spearman"] > 0.99  # the 8 x 8 map is brought to 16 x 16 first
    flat = map_agreement(a, np.zeros((8, 8)))
    assert np.isnan(flat["spearman"]) and np.isnan(flat["pearson"])


class Oracle(nn.Module):
    """features = the input (a 1 x 1 conv of weight 1), logits = positive weights x its mean: the
    Grad-CAM of every class is the input image itself, min-max scaled."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Conv2d(1, 1, 1, bias=False)
        self.head = nn.Linear(1, num_classes)
        with torch.no_grad():
            self.features.weight.fill_(1.0)
            self.head.weight.copy_(torch.arange(1, num_classes + 1, dtype=torch.float32)[:, None])
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def _blob(r: int, c: int, size: int = 32) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    img[r:r + 3, c:c + 3] = 1.0
    return img


def _samples() -> list[CXRSample]:
    a_box, b_box = Box("A", 4, 4, 5, 5), Box("B", 19, 19, 5, 5)
    return [
        CXRSample("hit_a", _blob(5, 5), np.array([1, 0], np.float32), [a_box]),
        CXRSample("miss_a_hit_b", _blob(20, 20), np.array([1, 1], np.float32), [a_box, b_box]),
        CXRSample("negative_b", _blob(20, 20), np.array([0, 0], np.float32), [b_box]),  # GT-negative: not scored
        CXRSample("no_box", _blob(5, 5), np.array([1, 1], np.float32), []),
        CXRSample("trained_on", _blob(5, 5), np.array([1, 0], np.float32), [a_box]),
    ]


def test_evaluation_on_an_oracle_model_gives_the_hand_derived_table(tmp_path):
    model = ExplainedModel(Oracle(), ["A", "B"], (32, 32))
    res = evaluate_explanations(model, _samples(), exclude={"trained_on"}, teacher=model,
                                road_percentiles=(50,), batch_size=2)
    p = res["protocol"]
    assert (p["images_read"], p["images_scored"], p["excluded_training_images"], p["n_pairs"]) == (5, 2, 1, 3)
    assert [(r["image"], r["label"]) for r in res["pairs"]] == [("hit_a", "A"), ("miss_a_hit_b", "A"),
                                                                ("miss_a_hit_b", "B")]
    assert res["per_class"]["A"]["pointing_game"] == 0.5 and res["per_class"]["B"]["pointing_game"] == 1.0
    assert res["mean"]["pointing_game"] == 0.75  # macro over classes, not 2/3 over pairs
    # the blob (9 px) inside a 5 x 5 box: IoU 9/25 at 0.5 x max
    assert res["pairs"][0]["iou@0.5max"] == pytest.approx(0.36) and res["pairs"][0]["hit0.25@0.5max"] == 1.0
    assert res["pairs"][0]["energy_pointing"] == pytest.approx(1.0) and res["pairs"][1]["energy_pointing"] == 0.0
    # a teacher identical to the student: perfect agreement and the same localisation
    assert res["teacher"]["agreement"]["mean"]["spearman"] == pytest.approx(1.0)
    assert res["teacher"]["agreement"]["mean"]["n_defined"] == 3
    assert res["teacher"]["mean"]["pointing_game"] == 0.75
    assert res["baselines"]["uniform"]["mean"]["pointing_game"] == pytest.approx(25 / 1024)
    assert all(np.isfinite(r[m]) for r in res["pairs"] for m in res["metrics"]["faithfulness"])
    files = write_scores(res, tmp_path)
    lines = open(files["csv"]).read().splitlines()
    assert lines[0].startswith("model,class,n_pairs,pointing_game") and any(
        ln.startswith("student,mean,3,0.75,") for ln in lines)
    assert "mean (baseline:uniform)" in format_table(res)


def test_evaluation_rescales_boxes_to_the_frame_and_validates_labels():
    model = ExplainedModel(Oracle(), ["A", "B"], (64, 64))  # images are upsampled x2, boxes too
    res = evaluate_explanations(model, _samples()[:2], faithfulness=False, labels=["B"])
    assert list(res["per_class"]) == ["B"] and res["mean"]["pointing_game"] == 1.0
    assert res["baselines"]["uniform"]["mean"]["pointing_game"] == pytest.approx(100 / 4096)
    with pytest.raises(ConfigError, match="not among the model's labels: A, B"):
        evaluate_explanations(model, _samples(), labels=["C"])
    with pytest.raises(KdnasError, match="no image-class pairs to score"):
        evaluate_explanations(model, _samples()[2:4])


def test_summarise_is_a_macro_mean_that_skips_nan():
    rows = [{"label": "A", "m": 1.0}, {"label": "A", "m": 0.0}, {"label": "B", "m": 1.0},
            {"label": "B", "m": float("nan")}]
    out = summarise(rows, ["m"], ["A", "B", "C"])
    assert out["per_class"] == {"A": {"n_pairs": 2, "m": 0.5}, "B": {"n_pairs": 2, "m": 1.0}}
    assert out["mean"] == {"n_pairs": 4, "n_classes": 2, "m": 0.75}


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # inside the library's ROAD imputer
def test_faithfulness_equals_the_library_metrics_and_is_reproducible():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x = torch.rand(3, 1, 16, 16)
    cams = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    classes = [0, 2, 1]
    state = torch.random.get_rng_state()
    got = faithfulness_scores(model, x, cams, classes, road_percentiles=(30, 70), seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    targets = [ClassifierOutputTarget(k) for k in classes]
    torch.manual_seed(5)
    road = ROADCombined(percentiles=[30, 70])(x, cams, targets, model)
    np.testing.assert_allclose(got["road_combined"], road, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["confidence_drop"], DropInConfidence()(x, cams, targets, model), atol=1e-6)
    again = faithfulness_scores(model, x, cams, classes, road_percentiles=(30, 70), seed=5)
    for key in got:
        np.testing.assert_array_equal(got[key], again[key])
    assert set(faithfulness_scores(model, x, cams, classes, road_percentiles=None)) == {
        "confidence_drop", "confidence_change"}
