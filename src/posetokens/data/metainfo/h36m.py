"""Human3.6M (17 joints, MMPose ``h36m`` order).

Values match MMPose ``configs/_base_/datasets/h36m.py``. There are no OKS
sigmas. ``bbox_center``/``bbox_scale`` carry its ``stats_info`` (pixels). The
``h36m_coco.json`` sample file lists the legs swapped in its category names;
this object follows the data (right leg at 1-3).
"""

from __future__ import annotations

from .base import PoseMetaInfo, infer_flip_partners

__all__ = ["H36M", "H36M_KEYPOINT_NAMES"]

H36M_KEYPOINT_NAMES: tuple[str, ...] = (
    "root",
    "right_hip", "right_knee", "right_foot",
    "left_hip", "left_knee", "left_foot",
    "spine", "thorax", "neck_base", "head",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)

# 0-based: 0-4, 4-5, 5-6, 0-1, 1-2, 2-3, 0-7, 7-8, 8-9, 9-10, 8-11, 11-12,
# 12-13, 8-14, 14-15, 15-16.
H36M_SKELETON_LINKS: tuple[tuple[str, str], ...] = (
    ("root", "left_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_foot"),
    ("root", "right_hip"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_foot"),
    ("root", "spine"),
    ("spine", "thorax"),
    ("thorax", "neck_base"),
    ("neck_base", "head"),
    ("thorax", "left_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("thorax", "right_shoulder"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
)

H36M = PoseMetaInfo(
    name="h36m",
    keypoint_names=H36M_KEYPOINT_NAMES,
    flip_partners=infer_flip_partners(H36M_KEYPOINT_NAMES),
    skeleton_links=H36M_SKELETON_LINKS,
    sigmas=None,
    upper_body_names=H36M_KEYPOINT_NAMES[7:],
    lower_body_names=H36M_KEYPOINT_NAMES[:7],
    bbox_center=(528.0, 427.0),
    bbox_scale=400.0,
    source="MMPose configs/_base_/datasets/h36m.py",
)
