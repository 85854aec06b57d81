"""Chest X-ray datasets: image reading, NIH / CheXpert / PadChest / generic CSV loaders, label spaces.

Every loader yields :class:`kdnas.data.types.CXRSample` (grey float32 image in [0, 1], float32
labels with NaN = unknown and -1 = uncertain under the ``teacher`` policy, boxes in image pixels).
"""

from kdnas.data.cxr.base import CXRDataset
from kdnas.data.cxr.chexpert import CheXpertDataset
from kdnas.data.cxr.generic import CSVDataset
from kdnas.data.cxr.harmonise import (
    ConcatCXRDataset,
    HarmonisedDataset,
    harmonise,
    harmonise_labels,
    label_mapping,
)
from kdnas.data.cxr.image_io import read_xray
from kdnas.data.cxr.labels import (
    CANONICAL_LABELS,
    CHEXPERT_COMPETITION,
    CHEXPERT_LABELS,
    NIH_LABELS,
    PADCHEST_LABELS,
    PADCHEST_SYNONYMS,
)
from kdnas.data.cxr.nih import NIHDataset
from kdnas.data.cxr.padchest import PadChestDataset
from kdnas.data.cxr.policies import UNCERTAINTY_POLICIES, apply_uncertainty, check_resolved, fill_uncertain
from kdnas.data.cxr.registry import CXR_FORMATS, dataset_summary, loader_options, open_cxr_dataset

__all__ = [
    "CANONICAL_LABELS", "CHEXPERT_COMPETITION", "CHEXPERT_LABELS", "CXR_FORMATS", "CSVDataset", "CXRDataset",
    "CheXpertDataset", "ConcatCXRDataset", "HarmonisedDataset", "NIHDataset", "NIH_LABELS", "PADCHEST_LABELS",
    "PADCHEST_SYNONYMS", "PadChestDataset", "UNCERTAINTY_POLICIES", "apply_uncertainty", "check_resolved",
    "dataset_summary", "fill_uncertain", "harmonise", "harmonise_labels", "label_mapping", "loader_options",
    "open_cxr_dataset", "read_xray",
]
