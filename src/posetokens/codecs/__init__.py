"""Keypoint codecs: numpy objects that build targets (``encode``) and decode
network outputs (``decode``) with one shared coordinate convention.
"""

from .base import BaseKeypointCodec
from .coordinate import CoordinateCodec
from .heatmap import HeatmapCodec
from .simcc import SimCCCodec
from .utils import (
    flip_heatmaps,
    flip_indices_from_pairs,
    flip_keypoints,
    flip_simcc,
    gaussian_blur_keep_max,
    get_heatmap_maximum,
    get_simcc_maximum,
    refine_keypoints_dark,
    refine_keypoints_quarter,
)

__all__ = [
    "BaseKeypointCodec",
    "CoordinateCodec",
    "HeatmapCodec",
    "SimCCCodec",
    "flip_heatmaps",
    "flip_indices_from_pairs",
    "flip_keypoints",
    "flip_simcc",
    "gaussian_blur_keep_max",
    "get_heatmap_maximum",
    "get_simcc_maximum",
    "refine_keypoints_dark",
    "refine_keypoints_quarter",
]
