"""COCO person keypoints (17 joints).

Values match MMPose ``configs/_base_/datasets/coco.py`` (and COCOeval's built-in
sigmas); see ``shared/specs/ecosystem.md`` "Facts we must carry".
"""

from __future__ import annotations

from .base import PoseMetaInfo, infer_flip_partners

__all__ = ["COCO", "COCO_KEYPOINT_NAMES", "COCO_SIGMAS", "COCO_SKELETON_LINKS"]

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye", "right_eye",
    "left_ear", "right_ear",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
)

COCO_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)

# 19 links (0-based: 15-13, 13-11, 16-14, 14-12, 11-12, 5-11, 6-12, 5-6, 5-7,
# 6-8, 7-9, 8-10, 1-2, 0-1, 0-2, 1-3, 2-4, 3-5, 4-6).
COCO_SKELETON_LINKS: tuple[tuple[str, str], ...] = (
    ("left_ankle", "left_knee"),
    ("left_knee", "left_hip"),
    ("right_ankle", "right_knee"),
    ("right_knee", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_elbow", "right_wrist"),
    ("left_eye", "right_eye"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
    ("left_ear", "left_shoulder"),
    ("right_ear", "right_shoulder"),
)

COCO_UPPER_BODY: tuple[str, ...] = COCO_KEYPOINT_NAMES[:11]
COCO_LOWER_BODY: tuple[str, ...] = COCO_KEYPOINT_NAMES[11:]

# Elbows and knees 1.2, wrists and ankles 1.5.
COCO_JOINT_WEIGHTS: tuple[float, ...] = (
    1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5,
)

COCO = PoseMetaInfo(
    name="coco",
    keypoint_names=COCO_KEYPOINT_NAMES,
    flip_partners=infer_flip_partners(COCO_KEYPOINT_NAMES),
    skeleton_links=COCO_SKELETON_LINKS,
    sigmas=COCO_SIGMAS,
    upper_body_names=COCO_UPPER_BODY,
    lower_body_names=COCO_LOWER_BODY,
    joint_weights=COCO_JOINT_WEIGHTS,
    source="MMPose configs/_base_/datasets/coco.py",
)
