"""Saliency dataset loaders: the kdnas folder format and the native benchmark formats.

Every loader is a :class:`~kdnas.data.types.SaliencyDataset` of
:class:`~kdnas.data.types.SaliencySample` (image at native size, 0-based (x, y) fixations
with duplicates kept, optional density map, original size). Open any of them with
:func:`open_saliency_dataset`; standard splits come from :func:`make_split`.
"""

from kdnas.data.saliency.cat2000 import CAT2000Dataset
from kdnas.data.saliency.dut_omron import DUTOmronDataset
from kdnas.data.saliency.fiwi import FIWIDataset
from kdnas.data.saliency.folder import (
    FolderSaliencyDataset,
    read_fixation_csv,
    write_folder_sample,
    write_split,
)
from kdnas.data.saliency.mit1003 import MIT1003Dataset
from kdnas.data.saliency.osie import OSIEDataset
from kdnas.data.saliency.pascal_s import PascalSDataset
from kdnas.data.saliency.registry import SALIENCY_FORMATS, canonical_format, open_saliency_dataset
from kdnas.data.saliency.salicon import SaliconDataset
from kdnas.data.saliency.splits import STANDARD_SPLITS, make_split, read_split_csv, write_split_csv
from kdnas.data.saliency.toronto import TorontoDataset

__all__ = [
    "CAT2000Dataset",
    "DUTOmronDataset",
    "FIWIDataset",
    "FolderSaliencyDataset",
    "MIT1003Dataset",
    "OSIEDataset",
    "PascalSDataset",
    "SALIENCY_FORMATS",
    "STANDARD_SPLITS",
    "SaliconDataset",
    "TorontoDataset",
    "canonical_format",
    "make_split",
    "open_saliency_dataset",
    "read_fixation_csv",
    "read_split_csv",
    "write_folder_sample",
    "write_split",
    "write_split_csv",
]
