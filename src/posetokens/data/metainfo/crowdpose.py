"""CrowdPose (14 joints).

Values match MMPose ``configs/_base_/datasets/crowdpose.py``: the COCO sigmas
for the 12 limb joints plus 0.079 for ``top_head`` and ``neck``; evaluation uses
``iouType='keypoints_crowd'`` without areas. The skeleton stored inside the
CrowdPose json is the COCO-17 one and must not be used.
"""

from __future__ import annotations

from .base import PoseMetaInfo, infer_flip_partners

__all__ = ["CROWDPOSE", "CROWDPOSE_KEYPOINT_NAMES"]

CROWDPOSE_KEYPOINT_NAMES: tuple[str, ...] = (
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
    "top_head", "neck",
)

CROWDPOSE_SIGMAS: tuple[float, ...] = (
    0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
)

CROWDPOSE_SKELETON_LINKS: tuple[tuple[str, str], ...] = (
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
    ("top_head", "neck"),
    ("right_shoulder", "neck"),
    ("left_shoulder", "neck"),
)

# MMPose's crowdpose joint weights, carried as-is.
CROWDPOSE_JOINT_WEIGHTS: tuple[float, ...] = (
    0.2, 0.2, 0.2, 1.3, 1.5, 0.2, 1.3, 1.5, 0.2, 0.2, 0.5, 0.2, 0.2, 0.5,
)

CROWDPOSE = PoseMetaInfo(
    name="crowdpose",
    keypoint_names=CROWDPOSE_KEYPOINT_NAMES,
    flip_partners=infer_flip_partners(CROWDPOSE_KEYPOINT_NAMES),
    skeleton_links=CROWDPOSE_SKELETON_LINKS,
    sigmas=CROWDPOSE_SIGMAS,
    upper_body_names=CROWDPOSE_KEYPOINT_NAMES[:6] + ("top_head", "neck"),
    lower_body_names=CROWDPOSE_KEYPOINT_NAMES[6:12],
    joint_weights=CROWDPOSE_JOINT_WEIGHTS,
    eval_iou_type="keypoints_crowd",
    eval_use_area=False,
    source="MMPose configs/_base_/datasets/crowdpose.py",
)
