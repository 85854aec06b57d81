"""CAM explanations for multi-label CXR models and their scoring (cxr-kd.md §8).

* :func:`explain_batch` / :func:`explain_pairs`: pytorch-grad-cam heatmaps for every requested label
  of a batch of images in one call (automatic target layer and ViT/Swin reshape);
* :func:`evaluate_explanations`: pointing game, energy pointing, IoU / hit rate against boxes, ROAD
  and confidence drop, teacher-student agreement, per class and macro-averaged;
* :func:`explain_images`: overlay PNGs and raw ``.npy`` maps for image files;
* :func:`evaluate_run`: the scores of a trained run on one of its splits (``kdnas explain --evaluate``).
"""

from kdnas.explain.agreement import map_agreement
from kdnas.explain.cams import METHODS, Explanation, explain_batch, explain_pairs, method_name
from kdnas.explain.evaluate import ExplainedModel, evaluate_explanations, format_table, write_scores
from kdnas.explain.faithfulness import faithfulness_scores
from kdnas.explain.layers import find_target_layer, reshape_transform_for, unwrap_model
from kdnas.explain.localization import (
    box_mask,
    energy_pointing_game,
    localization_scores,
    pointing_game,
)
from kdnas.explain.overlays import explain_images
from kdnas.explain.runs import evaluate_run, load_cxr_run

__all__ = [
    "METHODS", "Explanation", "ExplainedModel", "box_mask", "energy_pointing_game", "evaluate_explanations",
    "evaluate_run", "explain_batch", "explain_images", "explain_pairs", "faithfulness_scores", "find_target_layer",
    "format_table", "load_cxr_run", "localization_scores", "map_agreement", "method_name", "pointing_game",
    "reshape_transform_for", "unwrap_model", "write_scores",
]
