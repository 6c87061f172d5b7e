"""MPII Human Pose (16 joints).

Values match MMPose ``configs/_base_/datasets/mpii.py``. Note that the MPII
files store centres 1-based and scales as box height / 200 (dataset concern).
"""

from __future__ import annotations

from .base import PoseMetaInfo, infer_flip_partners

__all__ = ["MPII", "MPII_KEYPOINT_NAMES"]

MPII_KEYPOINT_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip",
    "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder",
    "left_shoulder", "left_elbow", "left_wrist",
)

MPII_SIGMAS: tuple[float, ...] = (
    0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026,
    0.026, 0.026, 0.062, 0.072, 0.179, 0.179, 0.072, 0.062,
)

MPII_SKELETON_LINKS: tuple[tuple[str, str], ...] = (
    ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"),
    ("right_hip", "pelvis"),
    ("pelvis", "left_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("pelvis", "thorax"),
    ("thorax", "upper_neck"),
    ("upper_neck", "head_top"),
    ("upper_neck", "right_shoulder"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("upper_neck", "left_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
)

MPII_JOINT_WEIGHTS: tuple[float, ...] = (
    1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5,
)

MPII = PoseMetaInfo(
    name="mpii",
    keypoint_names=MPII_KEYPOINT_NAMES,
    flip_partners=infer_flip_partners(MPII_KEYPOINT_NAMES),
    skeleton_links=MPII_SKELETON_LINKS,
    sigmas=MPII_SIGMAS,
    upper_body_names=MPII_KEYPOINT_NAMES[7:],
    lower_body_names=MPII_KEYPOINT_NAMES[:7],
    joint_weights=MPII_JOINT_WEIGHTS,
    source="MMPose configs/_base_/datasets/mpii.py",
)
