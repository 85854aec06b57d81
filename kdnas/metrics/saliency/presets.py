"""Named metric protocols: every choice that moves a saliency number, written down once.

A preset is a frozen dataclass. Metric functions take ``preset="mit"`` (a name) or a
:class:`MetricPreset` instance, so a variant is one ``dataclasses.replace`` away and is
always reported under its own name (``MetricPreset.name``).

The three references (see ``../shared/docs/metrics.md``):

``mit``
    The MIT Saliency Benchmark MATLAB code (``cvzoya/saliency`` ``code_forMetrics``,
    commit 5951cdc). Reproduces its deterministic values to 1e-6 (tested against GNU
    Octave output on real SALICON maps), AUC-Judd included: it is a deterministic metric
    and scores as ``AUC_Judd(..., jitter=0)`` by default. MIT's own default ``jitter=1``
    (``+ U(0,1) * 1e-7`` per pixel to break ties) is an option (``jitter=True``,
    ``judd_jitter=True``), seeded; the randomly sampled AUC-Borji and sAUC agree with the
    MATLAB code within their sampling spread.
``pysaliency``
    ``matthias-k/pysaliency`` (v0.2.22 functions ``CC``, ``NSS``, ``SIM``, ``MIT_KLDiv``,
    ``SaliencyMapModel.AUC``/``AUC_Judd``) as used by the Tuebingen benchmark for
    saliency-map submissions. Equal to it to 1e-6 (tested).
``salicon``
    The SALICON challenge API (``NUS-VIP/salicon-evaluation`` ``saliconeval``, commit
    425922e) with its defects fixed (see :data:`SALICON_FIXES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kdnas.utils.errors import ConfigError

MATLAB_EPS = 2.220446049250313e-16  # MATLAB/Octave ``eps``
PYSALIENCY_EPS = 2.2204e-16  # the rounded constant pysaliency's MIT_KLDiv uses

SALICON_FIXES: tuple[str, ...] = (
    "duplicates: SALICON's evaluate(filterAnns=True) keeps only *repeated* points (its mask is one element "
    "short and selects the duplicates; NumPy >= 1.13 raises IndexError); kdnas collapses duplicate points "
    "to distinct pixels, which is what the filter was meant to do (NSS 1.000 on the 10 example maps). The "
    "demo notebook's recorded NSS 1.078 is what *every* point gives: reproduce it with "
    "preset_variant('salicon', 'salicon_all_points', duplicates='keep') (tested)",
    "sAUC other-fixation map: SALICON's compute_score(shufMap=np.zeros((480, 640))) mutable default "
    "accumulates across calls and hard-codes 640x480; kdnas takes the other-image count map explicitly, "
    "at the evaluated size",
    "coordinates: SALICON annotations are 1-based [row, col]; kdnas expects 0-based (x, y) from the loader",
    "KLD/SIM/IG: the public SALICON API has no KLD, SIM or IG (its KL is a stub); this preset uses the "
    "MIT definitions for them",
    "AUC-Judd: not in the SALICON API; this preset uses the MIT definition, deterministic by default like "
    "mit (jitter=True for MIT's tie-breaking jitter)",
)


@dataclass(frozen=True)
class MetricPreset:
    """Every protocol choice of one reference implementation.

    Fields are grouped by what they control; each docstring line names the reference
    behaviour it reproduces.
    """

    name: str
    description: str

    # --- geometry -------------------------------------------------------------------
    #: how predictions are resized to the stimulus (see :func:`resize_prediction`)
    interpolation: str = "bicubic_matlab"
    #: fixation coordinate -> pixel: "floor" (pysaliency ``x_int``) or "round" (half up)
    coordinate_rounding: str = "round"
    #: "collapse" (binary fixation map, MIT) or "keep" (every fixation counts, pysaliency)
    duplicates: str = "collapse"

    # --- normalisation ----------------------------------------------------------------
    #: std degrees of freedom for NSS/CC z-scores (MATLAB std: 1, NumPy std: 0)
    std_ddof: int = 1
    #: constant prediction -> "nan" (division by zero, MIT) or "zero" (pysaliency/SALICON guard)
    nss_constant: str = "nan"
    #: constant map in CC -> "nan" (MIT, SALICON) or "pysaliency" (0 if only the prediction is constant)
    cc_constant: str = "nan"
    #: map -> distribution for KLD/SIM/IG: "mit" (sum-normalise non-zero maps; SIM/IG min-max first)
    #: or "pysaliency" (shift negative maps to 0, sum-normalise, an all-zero map becomes uniform)
    density: str = "mit"
    #: SIM min-max normalises each map before sum-normalising (MIT yes, pysaliency no)
    sim_minmax: bool = True
    #: KLD regularisers: sum(g * log(kld_log_eps + g / (p + kld_quotient_eps)))
    kld_log_eps: float = MATLAB_EPS
    kld_quotient_eps: float = MATLAB_EPS
    #: IG: log2(ig_eps + p) - log2(ig_eps + b); pysaliency uses exact log densities (0)
    ig_eps: float = MATLAB_EPS
    #: IG: min-max normalise prediction and baseline before sum-normalising (MIT InfoGain.m)
    ig_minmax: bool = True

    # --- AUC-Judd -----------------------------------------------------------------------
    #: "mit" (AUC_Judd.m: tp = i/Nfix, fp = (#S>=t_i - i)/(Npix - Nfix)) or "exact_ties"
    #: (pysaliency thresholds='fixations': tie-aware counts at each distinct fixated value)
    judd_rule: str = "mit"
    #: jitter AUC-Judd by default: ``mit``/``salicon`` no (AUC-Judd is deterministic; MIT's
    #: own ``jitter=1`` is opt-in), ``pysaliency`` yes (``AUC_Judd(jitter=True)``, seed 42)
    judd_jitter: bool = True
    #: "uniform" (MIT: + U(0,1)/1e7 per pixel, torch generator seeded with jitter_seed (or the
    #: call's seed) per image) or "numpy_normal_stream" (pysaliency: + N(0,1)*1e-7 from one
    #: numpy RandomState over the batch)
    jitter_kind: str = "uniform"
    jitter_size: float = 1e-7
    jitter_seed: int = 0

    # --- AUC-Borji ------------------------------------------------------------------------
    borji_splits: int = 100
    borji_step: float = 0.1
    #: negatives per split: "n_fix" (as many as fixations, MIT) or an integer (SALICON 100000)
    borji_samples: int | str = "n_fix"
    #: threshold grid: "octave" (0:step:max, last element clamped to max) or "arange" (np.arange(0, max, step))
    threshold_grid: str = "octave"
    #: min-max when max == min: "nan" (MATLAB 0/0; kdnas then returns AUC 0.5) or "guard" (SALICON: skip division)
    minmax_constant: str = "nan"

    # --- shuffled AUC --------------------------------------------------------------------
    #: "sampled" (MIT: min(Nfix, Nother) distinct other-image pixels per split, no replacement),
    #: "exact" (pysaliency: all other fixations, duplicates kept, ties 0.5) or
    #: "count_weighted" (SALICON: other fixation count map, own fixated pixels zeroed, step thresholds)
    sauc_mode: str = "sampled"
    sauc_splits: int = 100
    sauc_step: float = 0.1
    #: other images for sAUC when the evaluator builds them (MIT/Borji: M=10 random other images; 0 = all)
    sauc_other_images: int = 10

    # --- ground truth ----------------------------------------------------------------------
    #: how an empirical map is built from fixations: "antonio" (MIT fc cycles/image FFT blur),
    #: "gaussian" (scipy.ndimage.gaussian_filter sigma px) or "none" (use the dataset density)
    gt_blur: str = "antonio"
    gt_blur_fc: float = 8.0
    gt_blur_sigma: float = 19.0
    #: min-max the blurred map (SALICON buildFixMap) before use
    gt_minmax: bool = False

    # --- sampling and reporting -------------------------------------------------------------
    seed: int = 0
    #: per-image values; summaries average over images ("image")
    averaging: str = "image"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        """Plain dict of every choice (for reports and JSON summaries)."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out


MIT = MetricPreset(
    name="mit",
    description="MIT Saliency Benchmark MATLAB code (cvzoya/saliency code_forMetrics @5951cdc)",
    interpolation="bicubic_matlab",
    coordinate_rounding="round",
    duplicates="collapse",
    std_ddof=1,
    nss_constant="nan",
    cc_constant="nan",
    density="mit",
    sim_minmax=True,
    kld_log_eps=MATLAB_EPS,
    kld_quotient_eps=MATLAB_EPS,
    ig_eps=MATLAB_EPS,
    ig_minmax=True,
    judd_rule="mit",
    judd_jitter=False,
    jitter_kind="uniform",
    jitter_seed=0,
    borji_splits=100,
    borji_step=0.1,
    borji_samples="n_fix",
    threshold_grid="octave",
    minmax_constant="nan",
    sauc_mode="sampled",
    sauc_splits=100,
    sauc_step=0.1,
    sauc_other_images=10,
    gt_blur="antonio",
    gt_blur_fc=8.0,
    gt_minmax=False,
    notes=(
        "fixations collapse to a binary map (distinct pixels), as the MATLAB code receives them",
        "std is MATLAB's (N-1); eps = 2.220446049250313e-16 in KLD and IG",
        "predictions are resized with MATLAB imresize semantics (bicubic a=-0.5, antialiasing when "
        "shrinking, symmetric edges); Octave image>=2.14 differs only when shrinking by a non-integer factor "
        "(use interpolation='bicubic_octave' to reproduce Octave there)",
        "AUC-Judd is deterministic by default, as AUC_Judd(..., jitter=0) (the reference values); MIT's own "
        "default jitter=1 adds U(0,1)/1e7 per pixel to break ties: jitter=True (judd_jitter=True) does so "
        "from a torch generator seeded per image",
        "AUC-Borji draws from a torch generator seeded per image, sAUC from a NumPy generator seeded per "
        "image (not MATLAB's rand): values agree with the MATLAB code within sampling spread (~0.001), not "
        "digit for digit. sAUC draws each split's min(Nfix, Nother) negatives without replacement by "
        "sampling how many fall in each threshold class (multivariate hypergeometric), the distribution of "
        "MATLAB's randperm subset",
        "a constant prediction gives NaN for NSS, CC and SIM (MATLAB divides by zero) and 0.5 for every "
        "AUC (MATLAB's min-max turns it into NaN and returns an arbitrary number); a map that is constant "
        "as given stays exactly constant through resizing (no ~1e-16 interpolation noise)",
        "KLD is NaN where MATLAB would return a complex number (a negative prediction value under a "
        "fixated ground-truth pixel, e.g. bicubic overshoot)",
        "EMD: MIT EMD.m is broken at HEAD; kdnas solves the same problem exactly with POT (see emd())",
    ),
)

PYSALIENCY = MetricPreset(
    name="pysaliency",
    description="pysaliency 0.2.22 / Tuebingen benchmark, saliency-map submissions",
    interpolation="bilinear_zoom",
    coordinate_rounding="floor",
    duplicates="keep",
    std_ddof=0,
    nss_constant="zero",
    cc_constant="pysaliency",
    density="pysaliency",
    sim_minmax=False,
    kld_log_eps=PYSALIENCY_EPS,
    kld_quotient_eps=PYSALIENCY_EPS,
    ig_eps=0.0,
    ig_minmax=False,
    judd_rule="exact_ties",
    judd_jitter=True,
    jitter_kind="numpy_normal_stream",
    jitter_size=1e-7,
    jitter_seed=42,
    borji_splits=100,
    borji_step=0.1,
    borji_samples="n_fix",
    threshold_grid="octave",
    minmax_constant="nan",
    sauc_mode="exact",
    sauc_other_images=0,
    gt_blur="gaussian",
    gt_blur_sigma=23.99,
    gt_minmax=False,
    notes=(
        "every fixation counts (duplicates kept); coordinates are truncated to pixels like Fixations.x_int",
        "std is NumPy's (N); a constant prediction gives NSS 0 and CC 0 (pysaliency guards)",
        "KLD is MIT_KLDiv (eps 2.2204e-16); SIM sum-normalises without min-max; an all-zero map becomes "
        "uniform",
        "AUC (auc_exact) uses all pixels as negatives, ties count 0.5, no jitter",
        "AUC-Judd: unfixated negatives, thresholds at fixated values, N(0,1)*1e-7 jitter from "
        "numpy.random.RandomState(42) drawn image after image (as SaliencyMapModel.AUC_Judd does)",
        "sAUC: exact AUC against all fixations of the other images (rescaled, duplicates kept)",
        "IG: prediction and baseline as densities, bits per fixation, no eps (log 0 = -inf)",
        "pysaliency has no AUC-Borji: kdnas uses the MIT sampling scheme with this preset's fixations",
        "resizing: pysaliency needs exact-size maps; ResizingSaliencyMapModel uses "
        "scipy.ndimage.zoom(order=1, mode='nearest'), reproduced by interpolation='bilinear_zoom'",
        "ground truth from fixations: Gaussian sigma 23.99 px (MIT300/MIT1003 setting of the Tuebingen code)",
    ),
)

SALICON = MetricPreset(
    name="salicon",
    description="SALICON challenge API (NUS-VIP/salicon-evaluation saliconeval @425922e), defects fixed",
    interpolation="cubic_zoom",
    coordinate_rounding="floor",
    duplicates="collapse",
    std_ddof=0,
    nss_constant="zero",
    cc_constant="nan",
    density="mit",
    sim_minmax=True,
    kld_log_eps=MATLAB_EPS,
    kld_quotient_eps=MATLAB_EPS,
    ig_eps=MATLAB_EPS,
    ig_minmax=True,
    judd_rule="mit",
    judd_jitter=False,
    jitter_kind="uniform",
    borji_splits=1,
    borji_step=0.01,
    borji_samples=100000,
    threshold_grid="arange",
    minmax_constant="guard",
    sauc_mode="count_weighted",
    sauc_splits=1,
    sauc_step=0.01,
    sauc_other_images=0,
    gt_blur="gaussian",
    gt_blur_sigma=19.0,
    gt_minmax=True,
    notes=(
        "resize: scipy.ndimage.zoom(order=3) to the image size, as the API does (can overshoot)",
        "NSS and CC z-scores use NumPy std (N); constant prediction: NSS 0, CC NaN (np.corrcoef)",
        "AUC is Borji-style: 100,000 uniform random pixels, one split, thresholds np.arange(0, max, 0.01)",
        "sAUC: other-image fixation counts as weighted negatives, own fixated pixels zeroed, step 0.01",
        "ground truth: binary fixation map blurred with gaussian_filter(sigma=19), then min-max",
    )
    + SALICON_FIXES,
)

PRESETS: dict[str, MetricPreset] = {p.name: p for p in (MIT, PYSALIENCY, SALICON)}

_CHOICES = {
    "interpolation": ("bicubic_matlab", "bicubic_octave", "bicubic_noaa", "bilinear_zoom", "cubic_zoom",
                      "bilinear", "nearest"),
    "coordinate_rounding": ("floor", "round"),
    "duplicates": ("collapse", "keep"),
    "nss_constant": ("nan", "zero"),
    "cc_constant": ("nan", "pysaliency", "zero"),
    "density": ("mit", "pysaliency"),
    "judd_rule": ("mit", "exact_ties"),
    "jitter_kind": ("uniform", "numpy_normal_stream"),
    "threshold_grid": ("octave", "arange"),
    "minmax_constant": ("nan", "guard"),
    "sauc_mode": ("sampled", "exact", "count_weighted"),
    "gt_blur": ("antonio", "gaussian", "none"),
    "averaging": ("image",),
}


def validate_preset(preset: MetricPreset) -> MetricPreset:
    """Check every enumerated field; raise :class:`ConfigError` naming the field and the choices."""
    for name, choices in _CHOICES.items():
        value = getattr(preset, name)
        if value not in choices:
            raise ConfigError(f"metric preset {preset.name!r}: {name}={value!r} is not one of {list(choices)}")
    if preset.std_ddof not in (0, 1):
        raise ConfigError(f"metric preset {preset.name!r}: std_ddof must be 0 or 1, got {preset.std_ddof!r}")
    samples = preset.borji_samples
    if not (samples == "n_fix" or (isinstance(samples, int) and samples > 0)):
        raise ConfigError(f"metric preset {preset.name!r}: borji_samples must be 'n_fix' or a positive int")
    for name in ("borji_splits", "sauc_splits"):
        if getattr(preset, name) < 1:
            raise ConfigError(f"metric preset {preset.name!r}: {name} must be >= 1")
    for name in ("borji_step", "sauc_step"):
        if not getattr(preset, name) > 0:
            raise ConfigError(f"metric preset {preset.name!r}: {name} must be > 0")
    return preset


def get_preset(preset: str | MetricPreset) -> MetricPreset:
    """Return a preset by name (``"mit"``, ``"pysaliency"``, ``"salicon"``) or validate an instance."""
    if isinstance(preset, MetricPreset):
        return validate_preset(preset)
    try:
        return PRESETS[preset]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown metric preset {preset!r}; valid presets: {sorted(PRESETS)}") from None


def preset_variant(base: str | MetricPreset, name: str, **changes: Any) -> MetricPreset:
    """A named variant of a preset (e.g. ``preset_variant("mit", "mit_jitter", judd_jitter=True)``)."""
    return validate_preset(replace(get_preset(base), name=name, **changes))


for _p in PRESETS.values():
    validate_preset(_p)
