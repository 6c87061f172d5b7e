"""Thin top-down datasets: parse annotations, load images lazily, hand each item to a ``transform``.

CrowdPose: ``CocoStyleDataset(ann_file, img_dir, "crowdpose", ...)``.
"""

from .coco_style import COCO_WHOLEBODY_FIELDS, CocoStyleDataset, TopDownDataset, load_image, read_json
from .mpii import MPII_PIXEL_STD, MpiiDataset

__all__ = [
    "COCO_WHOLEBODY_FIELDS",
    "MPII_PIXEL_STD",
    "CocoStyleDataset",
    "MpiiDataset",
    "TopDownDataset",
    "load_image",
    "read_json",
]
