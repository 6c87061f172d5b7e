"""Thin top-down datasets: parse annotations, load images lazily, hand each item to a ``transform``.

CrowdPose: ``CocoStyleDataset(ann_file, img_dir, "crowdpose", ...)``. GT boxes are cleaned by a protocol's
``BoxRule.gt_clean`` (``CocoStyleDataset(..., gt_clean=...)``, :func:`clean_gt_bbox`).
"""

from .coco_style import (
    COCO_WHOLEBODY_FIELDS,
    GT_CLEAN_RULES,
    CocoStyleDataset,
    TopDownDataset,
    clean_gt_bbox,
    imread_flags,
    load_image,
    read_json,
)
from .mpii import MPII_PIXEL_STD, MpiiDataset

__all__ = [
    "COCO_WHOLEBODY_FIELDS",
    "GT_CLEAN_RULES",
    "MPII_PIXEL_STD",
    "CocoStyleDataset",
    "MpiiDataset",
    "TopDownDataset",
    "clean_gt_bbox",
    "imread_flags",
    "load_image",
    "read_json",
]
