"""Saliency metric engine: every common metric under the MIT, pysaliency and SALICON protocols.

Batched torch code (CPU and CUDA, float64 by default). Every metric returns a ``(B,)``
tensor of per-image values. Presets (:data:`PRESETS`) document each choice that moves a
number; see ``presets.py`` and ``../shared/docs/metrics.md``.

Typical use::

    from kdnas.metrics.saliency import batch_metrics, score_sample
    vals = batch_metrics(pred, density, fixations, preset="mit")      # training-time fast path
    row = score_sample(pred_map, sample, preset="mit", baseline=cb)     # native-resolution evaluation
"""

from .auc import auc_borji, auc_exact, auc_judd, auc_shuffled
from .baselines import (
                        CenterBias,
                        center_bias_from_fixations,
                        load_center_bias,
                        other_image_fixations,
                        uniform_baseline,
)
from .blur import gaussian_blur, mit_blur
from .core import FixationSet, fixation_map, prepare_fixations, rescale_fixations
from .distribution import cc, info_gain, kld, nss, sim
from .emd import emd
from .evaluator import (
                        DEFAULT_EVAL_METRICS,
                        KNOWN,
                        SaliencyEvaluator,
                        build_ground_truth,
                        describe_baseline,
                        gt_description,
                        score_sample,
)
from .fast import ALL_METRICS, DEFAULT_METRICS, batch_metrics
from .presets import PRESETS, MetricPreset, get_preset, preset_variant
from .resize import MODE_DESCRIPTIONS as INTERPOLATION_DESCRIPTIONS
from .resize import MODES as INTERPOLATION_MODES
from .resize import imresize_scale, resize_prediction

__all__ = [
    "ALL_METRICS",
    "DEFAULT_EVAL_METRICS",
    "DEFAULT_METRICS",
    "INTERPOLATION_DESCRIPTIONS",
    "INTERPOLATION_MODES",
    "KNOWN",
    "PRESETS",
    "CenterBias",
    "FixationSet",
    "MetricPreset",
    "SaliencyEvaluator",
    "auc_borji",
    "auc_exact",
    "auc_judd",
    "auc_shuffled",
    "batch_metrics",
    "build_ground_truth",
    "cc",
    "center_bias_from_fixations",
    "describe_baseline",
    "emd",
    "fixation_map",
    "gaussian_blur",
    "get_preset",
    "gt_description",
    "imresize_scale",
    "info_gain",
    "kld",
    "load_center_bias",
    "mit_blur",
    "nss",
    "other_image_fixations",
    "prepare_fixations",
    "preset_variant",
    "rescale_fixations",
    "resize_prediction",
    "score_sample",
    "sim",
    "uniform_baseline",
]
