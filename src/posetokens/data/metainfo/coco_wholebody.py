"""COCO-WholeBody v1.0 (133 keypoints).

Order: body 17 (COCO) + feet 6 + face 68 + left hand 21 + right hand 21, i.e.
index blocks 0-16, 17-22, 23-90, 91-111, 112-132 (see ``COCO_WHOLEBODY.parts``).

Source of the names, flip partners, links and sigmas: MMPose
``configs/_base_/datasets/coco_wholebody.py`` (open-mmlab/mmpose v1.3.2, commit
759b39c; the finger chains start at ``*_hand_root`` as there, older versions
started them at the wrist), whose sigmas in turn come from jin-s13/COCO-WholeBody
``evaluation/myeval_wholebody.py``. 61 flip pairs (body 8, feet 3, face 29,
hands 21) and 65 links (body 19, feet 6, hands 40).

Half-body sets follow MMPose (upper = body 0-10, lower = body 11-16 + feet), what MMPose 1.x's augmentation
uses. The HRNet-era code that GTPT trains with puts every joint that is not a lower-body one in the upper half
(body 0-10, face and hands): :func:`posetokens.data.transforms.half_body_part_ids` reads both from these lists.
"""

from __future__ import annotations

from .base import PoseMetaInfo, infer_flip_partners
from .coco import COCO_KEYPOINT_NAMES, COCO_SIGMAS, COCO_SKELETON_LINKS

__all__ = [
    "COCO_WHOLEBODY",
    "COCO_WHOLEBODY_KEYPOINT_NAMES",
    "COCO_WHOLEBODY_PARTS",
]

_FOOT = ("big_toe", "small_toe", "heel")
FOOT_NAMES: tuple[str, ...] = tuple(f"left_{p}" for p in _FOOT) + tuple(f"right_{p}" for p in _FOOT)

FACE_NAMES: tuple[str, ...] = tuple(f"face-{i}" for i in range(68))

_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root",) + tuple(f"{side}_{f}{j}" for f in _FINGERS for j in range(1, 5))


LEFT_HAND_NAMES = _hand_names("left")
RIGHT_HAND_NAMES = _hand_names("right")

COCO_WHOLEBODY_KEYPOINT_NAMES: tuple[str, ...] = (
    COCO_KEYPOINT_NAMES + FOOT_NAMES + FACE_NAMES + LEFT_HAND_NAMES + RIGHT_HAND_NAMES
)

COCO_WHOLEBODY_PARTS: tuple[tuple[str, int, int], ...] = (
    ("body", 0, 17),
    ("foot", 17, 23),
    ("face", 23, 91),
    ("left_hand", 91, 112),
    ("right_hand", 112, 133),
)

# Mirror pairs inside the 68-point face (indices within the face block):
# jaw 0<->16 ..., brows 17<->26 ..., nostrils, eyes, outer and inner mouth.
_FACE_PAIRS: tuple[tuple[int, int], ...] = (
    tuple((i, 16 - i) for i in range(8))
    + tuple((17 + i, 26 - i) for i in range(5))
    + ((31, 35), (32, 34))
    + ((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46))
    + ((48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67))
)


def _flip_partners() -> tuple[str, ...]:
    partners = list(infer_flip_partners(COCO_WHOLEBODY_KEYPOINT_NAMES))
    off = 23
    for a, b in _FACE_PAIRS:
        partners[off + a] = FACE_NAMES[b]
        partners[off + b] = FACE_NAMES[a]
    return tuple(partners)


def _hand_links(side: str) -> tuple[tuple[str, str], ...]:
    links = []
    for f in _FINGERS:
        chain = [f"{side}_hand_root"] + [f"{side}_{f}{j}" for j in range(1, 5)]
        links.extend(zip(chain[:-1], chain[1:]))
    return tuple(links)


_FOOT_LINKS: tuple[tuple[str, str], ...] = tuple(
    (f"{s}_ankle", f"{s}_{p}") for s in ("left", "right") for p in _FOOT
)

COCO_WHOLEBODY_SKELETON_LINKS: tuple[tuple[str, str], ...] = (
    COCO_SKELETON_LINKS + _FOOT_LINKS + _hand_links("left") + _hand_links("right")
)

FOOT_SIGMAS: tuple[float, ...] = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)

FACE_SIGMAS: tuple[float, ...] = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023,
    0.029, 0.032, 0.037, 0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011,
    0.011, 0.012, 0.012, 0.011, 0.011, 0.013, 0.015, 0.009, 0.007, 0.007,
    0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009, 0.011,
    0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008,
    0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
    0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008,
)

HAND_SIGMAS: tuple[float, ...] = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018,
    0.024, 0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022,
    0.031,
)

COCO_WHOLEBODY_SIGMAS: tuple[float, ...] = (
    COCO_SIGMAS + FOOT_SIGMAS + FACE_SIGMAS + HAND_SIGMAS + HAND_SIGMAS
)

COCO_WHOLEBODY = PoseMetaInfo(
    name="coco_wholebody",
    keypoint_names=COCO_WHOLEBODY_KEYPOINT_NAMES,
    flip_partners=_flip_partners(),
    skeleton_links=COCO_WHOLEBODY_SKELETON_LINKS,
    sigmas=COCO_WHOLEBODY_SIGMAS,
    upper_body_names=COCO_KEYPOINT_NAMES[:11],
    lower_body_names=COCO_KEYPOINT_NAMES[11:] + FOOT_NAMES,
    part_ranges=COCO_WHOLEBODY_PARTS,
    source="MMPose configs/_base_/datasets/coco_wholebody.py (sigmas: COCO-WholeBody myeval_wholebody.py)",
)
