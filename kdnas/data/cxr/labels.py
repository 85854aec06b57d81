"""Label spaces of the CXR datasets and the explicit tables that map them to one canonical space.

Every mapping here is an exact-name table (no substring matching: PadChest "consolidation"
must not also count as Infiltration). Unit tests pin the tables.
"""

from __future__ import annotations

from types import MappingProxyType

# NIH ChestX-ray14, alphabetical, exact spellings of Data_Entry_2017 (note Pleural_Thickening).
NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NO_FINDING = "No Finding"
# BBox_List_2017 spells one finding differently from the label file.
NIH_BOX_LABELS = MappingProxyType({"Infiltrate": "Infiltration"})
NIH_BOX_FRAME = (1024, 1024)

# CheXpert train.csv observation columns, in file order.
CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
CHEXPERT_COMPETITION: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion",
)

# Canonical space = torchxrayvision's default_pathologies (the 14 NIH labels + 4), same order.
CANONICAL_LABELS: tuple[str, ...] = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
    "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
    "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)

# PadChest: kdnas label -> exact PadChest `Labels` terms (lower case, stripped). One term never
# feeds two labels. The label names follow torchxrayvision's PadChest list.
PADCHEST_SYNONYMS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "Atelectasis": ("atelectasis", "laminar atelectasis", "lobar atelectasis", "segmental atelectasis",
                    "round atelectasis", "total atelectasis", "atelectasis basal"),
    "Consolidation": ("consolidation", "air bronchogram"),
    "Infiltration": ("infiltrates", "interstitial pattern", "reticular interstitial pattern",
                     "reticulonodular interstitial pattern", "alveolar pattern", "ground glass pattern"),
    "Pneumothorax": ("pneumothorax", "hydropneumothorax"),
    "Edema": ("pulmonary edema",),
    "Emphysema": ("emphysema",),
    "Fibrosis": ("pulmonary fibrosis", "fibrotic band"),
    "Effusion": ("pleural effusion", "loculated pleural effusion", "loculated fissural effusion"),
    "Pneumonia": ("pneumonia", "atypical pneumonia"),
    "Pleural_Thickening": ("pleural thickening", "apical pleural thickening", "calcified pleural thickening"),
    "Cardiomegaly": ("cardiomegaly",),
    "Nodule": ("nodule", "multiple nodules"),
    "Mass": ("mass", "pulmonary mass", "mediastinal mass", "soft tissue mass"),
    "Hernia": ("hiatal hernia",),
    "Fracture": ("fracture", "rib fracture", "clavicle fracture", "humeral fracture", "vertebral fracture",
                 "callus rib fracture"),
    "Granuloma": ("granuloma", "calcified granuloma"),
    "Flattened Diaphragm": ("flattened diaphragm",),
    "Bronchiectasis": ("bronchiectasis",),
    "Aortic Elongation": ("aortic elongation", "descendent aortic elongation"),
    "Scoliosis": ("scoliosis",),
    "Hilar Enlargement": ("hilar enlargement", "adenopathy", "pulmonary artery enlargement"),
    "Tuberculosis": ("tuberculosis", "tuberculosis sequelae"),
    "Air Trapping": ("air trapping",),
    "Costophrenic Angle Blunting": ("costophrenic angle blunting",),
    "Aortic Atheromatosis": ("aortic atheromatosis",),
    "Hemidiaphragm Elevation": ("hemidiaphragm elevation",),
    "Support Devices": ("pacemaker", "dual chamber device", "single chamber device", "electrical device",
                        "artificial heart valve", "heart valve"),
    "Tube": ("nsg tube", "endotracheal tube", "chest drain tube", "tracheostomy tube"),
})
PADCHEST_LABELS: tuple[str, ...] = tuple(PADCHEST_SYNONYMS)
PADCHEST_NORMAL_TERMS: tuple[str, ...] = ("normal",)

# Native label -> canonical label, per dataset. A native label absent here is dropped by
# harmonisation; a canonical label no native label maps to becomes NaN.
NIH_TO_CANONICAL = MappingProxyType({name: name for name in NIH_LABELS})
CHEXPERT_TO_CANONICAL = MappingProxyType({
    "Enlarged Cardiomediastinum": "Enlarged Cardiomediastinum",
    "Cardiomegaly": "Cardiomegaly",
    "Lung Opacity": "Lung Opacity",
    "Lung Lesion": "Lung Lesion",
    "Edema": "Edema",
    "Consolidation": "Consolidation",
    "Pneumonia": "Pneumonia",
    "Atelectasis": "Atelectasis",
    "Pneumothorax": "Pneumothorax",
    "Pleural Effusion": "Effusion",
    "Fracture": "Fracture",
})
PADCHEST_TO_CANONICAL = MappingProxyType({
    name: name for name in PADCHEST_LABELS if name in CANONICAL_LABELS
})
# Other sources' spellings met in practice (cxr-kd.md §5).
EXTRA_SYNONYMS = MappingProxyType({
    "Pleural Effusion": "Effusion",
    "Infiltrate": "Infiltration",
    "Airspace opacity": "Lung Opacity",
    "Pleural Thickening": "Pleural_Thickening",
})
TO_CANONICAL = MappingProxyType({
    "nih": NIH_TO_CANONICAL,
    "chexpert": CHEXPERT_TO_CANONICAL,
    "padchest": PADCHEST_TO_CANONICAL,
})
