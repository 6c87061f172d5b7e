"""Deterministic synthetic people with COCO-17 keypoint annotations.

This is the library's embedded default data set.  Every image holds one to three
articulated 2D "people" rendered with OpenCV: a small 3D stick skeleton with human
limb proportions and joint-angle limits is posed, turned (front, side and back
views), projected orthographically, leaned in the image plane and drawn as shaded,
outlined capsules, hulls and ellipses on a textured background.  Random objects
partially occlude people; keypoints hidden by objects, other people or the person's
own body are labelled ``v=1``, visible ones ``v=2``, and keypoints outside the image
(or faces seen from behind) ``v=0`` at ``[0, 0]``.

Left and right are made visually distinguishable in a dataset-wide consistent way,
as a real data set would make them through context: left limbs are drawn a shade
lighter than right limbs, carry a contrasting stripe along the sleeve / trouser leg,
and the left wrist wears a watch; the face (eyes, nose, mouth) shows which way the
person is facing.

Every image is generated from its own ``numpy.random.default_rng`` seeded by
``(seed, split_name, index)``, so images are independent, reproducible and can be
generated in parallel.  Command line::

    python -m posetokens.data.synthetic OUT_DIR --num-train 2000 --num-val 200 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from posetokens.data.metainfo import COCO
from posetokens.data.metainfo.coco import COCO_KEYPOINT_NAMES
from posetokens.fileio import check_fixed_outputs
from posetokens.runtime import int_at_least

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "COCO_CATEGORY",
    "DEFAULT_IMAGE_SIZE",
    "POSE_KINDS",
    "JOINT_LIMITS",
    "BodyShape",
    "Pose",
    "standing_pose",
    "sample_pose",
    "person_keypoints",
    "generate_image",
    "generate_dataset",
    "generate_splits",
    "main",
]

#: The standard (1-based) COCO person skeleton, as COCO's categories write it (the metainfo's links + 1).
COCO_SKELETON: list[list[int]] = [[a + 1, b + 1] for a, b in COCO.skeleton]

COCO_CATEGORY: dict[str, Any] = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINT_NAMES),
    "skeleton": COCO_SKELETON,
}

DEFAULT_IMAGE_SIZE: tuple[int, int] = (320, 320)

# ----------------------------------------------------------------------------------
# Body model
# ----------------------------------------------------------------------------------


@dataclass
class BodyShape:
    """Segment lengths and widths as fractions of the person's stature.

    Defaults follow classic anthropometric tables (segment length / height):
    shoulder->hip 0.29, upper arm 0.186, forearm 0.146, thigh 0.245, shin 0.246,
    head height 0.13, biacromial width ~0.23.
    """

    torso: float = 0.288  # mid-hip to mid-shoulder
    shoulder_half: float = 0.105  # shoulder joint offset from the spine
    hip_half: float = 0.056  # hip joint offset from the pelvis centre
    neck: float = 0.052  # shoulder line to the base of the head
    upper_arm: float = 0.186
    forearm: float = 0.146
    hand: float = 0.085
    thigh: float = 0.245
    shin: float = 0.246
    foot: float = 0.13
    head_rx: float = 0.047  # head half width
    head_ry: float = 0.064  # head half height
    head_rz: float = 0.053  # head half depth
    # flesh (drawing) radii / half widths
    neck_r: float = 0.025
    upper_arm_r: tuple[float, float] = (0.032, 0.026)
    forearm_r: tuple[float, float] = (0.026, 0.019)
    hand_r: tuple[float, float] = (0.018, 0.021)
    thigh_r: tuple[float, float] = (0.052, 0.036)
    shin_r: tuple[float, float] = (0.036, 0.024)
    foot_r: tuple[float, float] = (0.024, 0.019)
    shoulder_outer: float = 0.125
    hem_half: float = 0.092
    waist_half: float = 0.086
    hip_outer: float = 0.098
    torso_depth: float = 0.062

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "BodyShape":
        """A person with slightly jittered limb lengths and a random build."""
        b = cls()
        build = float(rng.uniform(0.85, 1.2))
        for name in ("torso", "upper_arm", "forearm", "thigh", "shin", "neck", "shoulder_half"):
            setattr(b, name, getattr(b, name) * float(np.clip(rng.normal(1.0, 0.03), 0.93, 1.07)))
        head = float(rng.uniform(0.93, 1.08))
        b.head_rx *= head
        b.head_ry *= head
        b.head_rz *= head
        for name in ("neck_r", "shoulder_outer", "hem_half", "waist_half", "hip_outer", "torso_depth"):
            setattr(b, name, getattr(b, name) * build)
        for name in ("upper_arm_r", "forearm_r", "thigh_r", "shin_r"):
            r0, r1 = getattr(b, name)
            setattr(b, name, (r0 * build, r1 * build))
        return b


#: Joint-angle limits in degrees.  Elbows and knees only flex one way.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "torso_pitch": (-15.0, 60.0),  # + bends forward
    "torso_side": (-20.0, 20.0),
    "torso_twist": (-30.0, 30.0),
    "head_yaw": (-70.0, 70.0),
    "head_pitch": (-30.0, 35.0),  # + looks down
    "head_roll": (-20.0, 20.0),
    "shoulder_flex": (-60.0, 180.0),  # + swings the arm forward
    "shoulder_abd": (-10.0, 180.0),  # + raises the arm sideways
    "shoulder_twist": (-40.0, 90.0),  # + internal rotation
    "elbow": (0.0, 150.0),
    "wrist": (-40.0, 50.0),
    "hip_flex": (-35.0, 130.0),  # + lifts the thigh forward
    "hip_abd": (-15.0, 60.0),
    "knee": (0.0, 150.0),
    "ankle": (-15.0, 45.0),  # + points the toes
}

_LR_FIELDS = ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow", "wrist",
              "hip_flex", "hip_abd", "knee", "ankle")  # fmt: skip


def _pair() -> list[float]:
    return [0.0, 0.0]


@dataclass
class Pose:
    """Joint angles in degrees; paired fields are ``[left, right]``."""

    torso_pitch: float = 0.0
    torso_side: float = 0.0
    torso_twist: float = 0.0
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    head_roll: float = 0.0
    shoulder_flex: list[float] = field(default_factory=_pair)
    shoulder_abd: list[float] = field(default_factory=_pair)
    shoulder_twist: list[float] = field(default_factory=_pair)
    elbow: list[float] = field(default_factory=_pair)
    wrist: list[float] = field(default_factory=_pair)
    hip_flex: list[float] = field(default_factory=_pair)
    hip_abd: list[float] = field(default_factory=_pair)
    knee: list[float] = field(default_factory=_pair)
    ankle: list[float] = field(default_factory=_pair)

    def clipped(self) -> "Pose":
        """Return a copy with every angle clipped to :data:`JOINT_LIMITS`."""
        kw: dict[str, Any] = {}
        for name, (lo, hi) in JOINT_LIMITS.items():
            val = getattr(self, name)
            if name in _LR_FIELDS:
                kw[name] = [float(np.clip(v, lo, hi)) for v in val]
            else:
                kw[name] = float(np.clip(val, lo, hi))
        return Pose(**kw)


def standing_pose() -> Pose:
    """A relaxed upright pose: straight legs, arms hanging slightly away from the body."""
    return Pose(shoulder_abd=[10.0, 10.0], hip_abd=[4.0, 4.0])


POSE_KINDS: tuple[str, ...] = (
    "standing", "walking", "arms_raised", "crouching", "arms_out", "gesture", "leg_raise", "random",
)  # fmt: skip
_POSE_WEIGHTS = np.array([0.22, 0.2, 0.12, 0.12, 0.07, 0.12, 0.05, 0.1])


def sample_pose(rng: np.random.Generator, kind: str | None = None) -> Pose:
    """Sample a plausible pose of the given ``kind`` (one of :data:`POSE_KINDS`, or random)."""
    if kind is None:
        kind = POSE_KINDS[int(rng.choice(len(POSE_KINDS), p=_POSE_WEIGHTS / _POSE_WEIGHTS.sum()))]
    u = rng.uniform
    n = rng.normal
    p = Pose(
        torso_pitch=n(3, 3), torso_side=n(0, 3), torso_twist=n(0, 5),
        head_yaw=n(0, 20), head_pitch=n(0, 10), head_roll=n(0, 6),
    )  # fmt: skip

    def relaxed_arm(i: int) -> None:
        p.shoulder_flex[i] = n(0, 10)
        p.shoulder_abd[i] = u(4, 20)
        p.shoulder_twist[i] = u(-10, 30)
        p.elbow[i] = u(0, 30)
        p.wrist[i] = n(0, 10)

    def straight_leg(i: int) -> None:
        p.hip_flex[i] = n(0, 4)
        p.hip_abd[i] = u(1, 10)
        p.knee[i] = u(0, 8)
        p.ankle[i] = n(0, 5)

    for i in (0, 1):
        relaxed_arm(i)
        straight_leg(i)

    if kind == "walking":
        amp, phase = u(15, 38), u(-1, 1)
        for i, sgn in ((0, 1.0), (1, -1.0)):
            swing = sgn * amp * phase
            p.hip_flex[i] = swing
            p.knee[i] = u(10, 50) if swing < 0 else u(0, 20)
            p.ankle[i] = u(0, 25) if swing < 0 else n(0, 5)
            p.shoulder_flex[i] = -0.9 * swing + n(0, 5)
            p.elbow[i] = u(10, 50)
        p.torso_pitch = u(0, 8)
    elif kind == "arms_raised":
        mode = int(rng.integers(3))
        for i in (0, 1):
            if i == 1 and rng.random() < 0.35:
                break  # one arm only
            if mode == 0:
                p.shoulder_abd[i], p.shoulder_flex[i] = u(140, 175), u(0, 30)
            elif mode == 1:
                p.shoulder_abd[i], p.shoulder_flex[i] = u(105, 150), u(-10, 20)
            else:
                p.shoulder_abd[i], p.shoulder_flex[i] = u(0, 25), u(130, 175)
            p.elbow[i] = u(0, 45)
            p.shoulder_twist[i] = u(-30, 30)
    elif kind == "crouching":
        base = u(55, 115)
        for i in (0, 1):
            p.hip_flex[i] = base + n(0, 8)
            p.knee[i] = float(np.clip(base * u(1.0, 1.35) + n(0, 8), 60, 150))
            p.hip_abd[i] = u(5, 30)
            p.ankle[i] = u(-15, 10)
            p.shoulder_flex[i] = u(10, 90)
            p.shoulder_abd[i] = u(5, 30)
            p.elbow[i] = u(10, 100)
        p.torso_pitch = u(15, 45)
        p.head_pitch = n(-10, 8)
    elif kind == "arms_out":
        for i in (0, 1):
            p.shoulder_abd[i] = u(65, 105)
            p.shoulder_flex[i] = n(0, 15)
            p.elbow[i] = u(0, 35)
    elif kind == "gesture":
        i = int(rng.integers(2))
        p.shoulder_abd[i] = u(50, 160)
        p.shoulder_flex[i] = u(-10, 70)
        p.elbow[i] = u(30, 135)
        p.shoulder_twist[i] = u(-35, 60)
        j = 1 - i
        if rng.random() < 0.5:  # hand on hip
            p.shoulder_abd[j], p.elbow[j], p.shoulder_twist[j] = u(30, 55), u(80, 120), u(55, 90)
            p.shoulder_flex[j] = n(-5, 8)
    elif kind == "leg_raise":
        i = int(rng.integers(2))
        p.hip_flex[i] = u(35, 100)
        p.knee[i] = u(0, 110)
        p.hip_abd[i] = u(0, 30)
        for k in (0, 1):
            p.shoulder_abd[k] = u(20, 85)
            p.elbow[k] = u(0, 60)
    elif kind == "random":
        for i in (0, 1):
            p.shoulder_flex[i] = u(-40, 170)
            p.shoulder_abd[i] = u(0, 160)
            p.shoulder_twist[i] = u(-30, 80)
            p.elbow[i] = u(0, 140)
            p.wrist[i] = u(-30, 40)
            p.hip_flex[i] = u(-25, 100)
            p.hip_abd[i] = u(0, 40)
            p.knee[i] = u(0, 120)
        p.torso_pitch = u(-5, 35)
        p.torso_side = u(-15, 15)
    elif kind != "standing":
        raise ValueError(f"unknown pose kind {kind!r}; expected one of {POSE_KINDS}")
    return p.clipped()


# ----------------------------------------------------------------------------------
# Kinematics
# ----------------------------------------------------------------------------------


def _rx(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


_DOWN = np.array([0.0, -1.0, 0.0])
_FWD = np.array([0.0, 0.0, 1.0])

# Face landmarks in head units (x to the person's left, y up, z forward) and normals.
_FACE_OFFSETS = np.array([
    [0.0, -0.28, 0.9],  # nose
    [0.36, 0.06, 0.84],  # left eye
    [-0.36, 0.06, 0.84],  # right eye
    [0.93, -0.05, -0.1],  # left ear
    [-0.93, -0.05, -0.1],  # right ear
])  # fmt: skip
_FACE_NORMALS = np.array([
    [0.0, -0.1, 1.0], [0.32, 0.1, 0.94], [-0.32, 0.1, 0.94], [1.0, 0.0, -0.2], [-1.0, 0.0, -0.2],
])  # fmt: skip
_FACE_NORMALS = _FACE_NORMALS / np.linalg.norm(_FACE_NORMALS, axis=1, keepdims=True)


@dataclass
class _Skeleton:
    """3D skeleton in stature units: x = person's left, y = up, z = forward."""

    kps: np.ndarray  # (17, 3) COCO order
    face_normals: np.ndarray  # (5, 3)
    pts: dict[str, np.ndarray]
    r_chest: np.ndarray
    r_head: np.ndarray


def _skeleton(pose: Pose, body: BodyShape) -> _Skeleton:
    pelvis = np.zeros(3)
    r_chest = _rz(pose.torso_side) @ _rx(pose.torso_pitch) @ _ry(pose.torso_twist)
    neck_base = r_chest @ np.array([0.0, body.torso, 0.0])
    neck_top = neck_base + r_chest @ np.array([0.0, body.neck, 0.008])
    r_head = r_chest @ _ry(pose.head_yaw) @ _rx(pose.head_pitch) @ _rz(pose.head_roll)
    head_c = neck_top + r_head @ np.array([0.0, body.head_ry * 0.95, 0.006])
    radii = np.array([body.head_rx, body.head_ry, body.head_rz])
    face = head_c + (_FACE_OFFSETS * radii) @ r_head.T
    face_normals = _FACE_NORMALS @ r_head.T

    pts: dict[str, np.ndarray] = {
        "pelvis": pelvis, "neck_base": neck_base, "neck_top": neck_top, "head_c": head_c,
    }  # fmt: skip
    shoulders, elbows, wrists, hands = [], [], [], []
    hips, knees, ankles, toes, heels = [], [], [], [], []
    for i, s in ((0, 1.0), (1, -1.0)):
        sh = neck_base + r_chest @ np.array([s * body.shoulder_half, 0.0, 0.0])
        r_ua = r_chest @ _rz(s * pose.shoulder_abd[i]) @ _rx(-pose.shoulder_flex[i])
        r_ua = r_ua @ _ry(-s * pose.shoulder_twist[i])
        u, a = r_ua @ _DOWN, r_ua @ _FWD
        el = sh + body.upper_arm * u
        e = math.radians(pose.elbow[i])
        f_dir = math.cos(e) * u + math.sin(e) * a
        f_ant = -math.sin(e) * u + math.cos(e) * a
        wr = el + body.forearm * f_dir
        w = math.radians(pose.wrist[i])
        hand = wr + body.hand * (math.cos(w) * f_dir + math.sin(w) * f_ant)

        hp = pelvis + np.array([s * body.hip_half, 0.0, 0.0])
        r_th = _rz(s * pose.hip_abd[i]) @ _rx(-pose.hip_flex[i])
        u, a = r_th @ _DOWN, r_th @ _FWD
        kn = hp + body.thigh * u
        k = math.radians(pose.knee[i])
        s_dir = math.cos(k) * u - math.sin(k) * a
        s_ant = math.sin(k) * u + math.cos(k) * a
        an = kn + body.shin * s_dir
        pa = math.radians(pose.ankle[i])
        foot_dir = _ry(s * 12.0) @ (math.cos(pa) * s_ant + math.sin(pa) * s_dir)  # toes point a bit out
        toe = an + 0.25 * body.shin_r[1] * s_dir + body.foot * foot_dir
        heel = an + 0.6 * body.shin_r[1] * s_dir - 0.2 * body.foot * foot_dir

        shoulders.append(sh), elbows.append(el), wrists.append(wr), hands.append(hand)
        hips.append(hp), knees.append(kn), ankles.append(an), toes.append(toe), heels.append(heel)

    for name, vals in (("hand", hands), ("toe", toes), ("heel", heels)):
        pts[name + "_l"], pts[name + "_r"] = vals
    kps = np.stack([*face, *shoulders, *elbows, *wrists, *hips, *knees, *ankles])
    # interleave left/right into COCO order (already [L, R] per joint type)
    return _Skeleton(kps=kps, face_normals=face_normals, pts=pts, r_chest=r_chest, r_head=r_head)


def _view_matrix(yaw: float, lean: float = 0.0, cam_pitch: float = 0.0) -> np.ndarray:
    """Body coords -> (u right, v down, depth toward the viewer), orthographic."""
    flip = np.diag([1.0, -1.0, 1.0])
    c, s = math.cos(math.radians(lean)), math.sin(math.radians(lean))
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return rot @ flip @ _rx(cam_pitch) @ _ry(yaw)


def person_keypoints(
    pose: Pose | None = None,
    body: BodyShape | None = None,
    height: float = 200.0,
    yaw: float = 0.0,
    lean: float = 0.0,
    center: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Project a posed person's 17 COCO keypoints to the image plane.

    Returns a ``(17, 3)`` array of ``x, y`` pixel coordinates (pelvis at ``center``) and
    depth toward the viewer in pixels.  ``yaw=0`` faces the camera, ``yaw=180`` shows
    the back; ``lean`` is an in-plane rotation in degrees.
    """
    sk = _skeleton(pose if pose is not None else standing_pose(), body or BodyShape())
    out = sk.kps @ _view_matrix(yaw, lean).T * height
    out[:, 0] += center[0]
    out[:, 1] += center[1]
    return out


# ----------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------

_SHIFT = 3
_SC = float(1 << _SHIFT)
_AA = cv2.LINE_AA
_OCCLUDER = 0xFFFF
_PARTS_PER_PERSON = 32
(HEAD, NECK, CHEST, PELVIS, UARM_L, UARM_R, FARM_L, FARM_R, HAND_L, HAND_R,
 THIGH_L, THIGH_R, SHIN_L, SHIN_R, FOOT_L, FOOT_R, HAIR) = range(17)  # fmt: skip

#: Body parts a keypoint may be seen on (anything else covering it occludes it).
_OWN_PARTS: tuple[tuple[int, ...], ...] = (
    (HEAD,), (HEAD,), (HEAD,), (HEAD,), (HEAD,),
    (CHEST, UARM_L, NECK), (CHEST, UARM_R, NECK),
    (UARM_L, FARM_L), (UARM_R, FARM_R),
    (FARM_L, HAND_L), (FARM_R, HAND_R),
    (PELVIS, THIGH_L, CHEST), (PELVIS, THIGH_R, CHEST),
    (THIGH_L, SHIN_L), (THIGH_R, SHIN_R),
    (SHIN_L, FOOT_L), (SHIN_R, FOOT_R),
)  # fmt: skip

_SKIN_TONES = np.array([
    [196, 216, 244], [170, 196, 232], [140, 176, 224], [110, 150, 200], [80, 120, 176],
    [60, 92, 140], [44, 66, 104], [150, 190, 236],
], dtype=np.float64)  # BGR  # fmt: skip
_HAIR = np.array([[20, 20, 24], [30, 40, 70], [40, 70, 120], [90, 150, 200], [150, 150, 155],
                  [20, 30, 45]], dtype=np.float64)  # fmt: skip
_TROUSERS = np.array([[110, 60, 30], [140, 90, 50], [40, 40, 40], [110, 140, 160], [90, 90, 95],
                      [60, 50, 35], [40, 60, 90]], dtype=np.float64)  # fmt: skip


def _mix(c: np.ndarray, target: float | np.ndarray, a: float) -> np.ndarray:
    """Colour ``c`` moved a fraction ``a`` of the way to ``target`` (BGR floats)."""
    return c * (1.0 - a) + np.asarray(target, dtype=np.float64) * a


def _col(c: np.ndarray) -> tuple[float, float, float]:
    b, g, r = (min(255.0, max(0.0, float(v))) for v in c)
    return (b, g, r)


def side_tone(c: np.ndarray, side: int) -> np.ndarray:
    """A limb's colour with the people's left/right cue: left limbs (``side`` 0) lighter, right limbs darker."""
    return _mix(c, 255.0, 0.16) if side == 0 else _mix(c, 0.0, 0.12)


def stripe_for(c: np.ndarray) -> np.ndarray:
    """The sleeve stripe drawn on ``c``: dark on a light colour, light on a dark one (BGR luminance 150)."""
    lum = 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]
    return _mix(c, 0.0, 0.65) if lum > 150 else _mix(c, 255.0, 0.75)


def _hsv_colour(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    """A random BGR colour (floats) of any hue, saturation in ``s`` and value in ``v`` (OpenCV's 0-255 HSV)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*s), rng.uniform(*v)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def _fix(p: np.ndarray) -> tuple[int, int]:
    return (int(round(float(p[0]) * _SC)), int(round(float(p[1]) * _SC)))


def _fill_capsule(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float,
                  colour: Any, line: int) -> None:  # fmt: skip
    cv2.circle(img, _fix(p0), max(1, int(round(r0 * _SC))), colour, -1, line, _SHIFT)
    cv2.circle(img, _fix(p1), max(1, int(round(r1 * _SC))), colour, -1, line, _SHIFT)
    x0, y0, x1, y1 = float(p0[0]), float(p0[1]), float(p1[0]), float(p1[1])
    length = math.hypot(x1 - x0, y1 - y0)
    if length > 1e-3:
        nx, ny = (y0 - y1) / length * _SC, (x1 - x0) / length * _SC
        x0, y0, x1, y1 = x0 * _SC, y0 * _SC, x1 * _SC, y1 * _SC
        poly = np.array([[x0 + nx * r0, y0 + ny * r0], [x1 + nx * r1, y1 + ny * r1],
                         [x1 - nx * r1, y1 - ny * r1], [x0 - nx * r0, y0 - ny * r0]])  # fmt: skip
        cv2.fillConvexPoly(img, np.round(poly).astype(np.int32), colour, line, _SHIFT)


def _fill_ellipse(img: np.ndarray, c: np.ndarray, axes: tuple[float, float], angle: float,
                  colour: Any, line: int) -> None:  # fmt: skip
    ax = (max(1, int(round(axes[0] * _SC))), max(1, int(round(axes[1] * _SC))))
    cv2.ellipse(img, _fix(c), ax, angle, 0, 360, colour, -1, line, _SHIFT)


@dataclass
class _Part:
    depth: float
    pid: int
    kind: str  # "capsule" | "poly" | "ellipse" | "head"
    geom: tuple
    colour: np.ndarray
    stripe: np.ndarray | None = None
    watch: bool = False


@dataclass
class _Person:
    height: float
    kps: np.ndarray  # (17, 2) pixels, pelvis-relative until placed
    face_z: np.ndarray  # (5,) normal component toward the viewer
    parts: list[_Part]
    extent: np.ndarray  # x0, y0, x1, y1 pelvis-relative
    outline: float
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2))


def _sample_yaw(rng: np.random.Generator) -> float:
    r = rng.random()
    if r < 0.5:
        return float(np.clip(rng.normal(0, 15), -35, 35))
    if r < 0.8:
        return float(rng.choice([-1.0, 1.0]) * rng.uniform(35, 115))
    return float(180.0 + np.clip(rng.normal(0, 22), -60, 60))


def _build_person(rng: np.random.Generator, height: float, pose: Pose | None = None,
                  yaw: float | None = None) -> _Person:  # fmt: skip
    """Pose, view and clothe one person; geometry in pixels relative to the pelvis."""
    body = BodyShape.sample(rng)
    pose = pose if pose is not None else sample_pose(rng)
    yaw = _sample_yaw(rng) if yaw is None else yaw
    lean = float(np.clip(rng.normal(0, 7), -25, 25))
    view = _view_matrix(yaw, lean, float(rng.uniform(-8, 8)))
    sk = _skeleton(pose, body)
    H = height

    def proj(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p) @ view.T) * H

    kp3 = proj(sk.kps)
    pts = {k: proj(v) for k, v in sk.pts.items()}
    face_z = (sk.face_normals @ view.T)[:, 2]

    # --- clothing -----------------------------------------------------------------
    skin = _mix(_SKIN_TONES[rng.integers(len(_SKIN_TONES))], rng.uniform(0, 255, 3), 0.08)
    shirt = _hsv_colour(rng, (40, 255), (60, 250))
    if rng.random() < 0.15:
        shirt = np.full(3, rng.uniform(30, 240))
    trousers = _mix(_TROUSERS[rng.integers(len(_TROUSERS))], _hsv_colour(rng, (0, 255), (40, 220)),
                    float(rng.uniform(0, 0.4)))  # fmt: skip
    shoes = np.full(3, rng.uniform(15, 70)) if rng.random() < 0.75 else _hsv_colour(rng, (0, 200), (150, 250))
    hair = _mix(_HAIR[rng.integers(len(_HAIR))], rng.uniform(0, 255, 3), 0.06)
    long_sleeves = rng.random() < 0.5
    shorts = rng.random() < 0.25
    long_hair = rng.random() < 0.3

    pelvis_depth = pts["pelvis"][2]

    def shade(c: np.ndarray, depth: float) -> np.ndarray:
        rel = (depth - pelvis_depth) / H
        return c * (1.0 - 0.3 * float(np.clip(-rel / 0.15, 0.0, 1.0)))

    parts: list[_Part] = []

    def capsule(pid: int, a: np.ndarray, b: np.ndarray, r: tuple[float, float], colour: np.ndarray,
                bias: float, stripe: bool = False, watch: bool = False) -> None:  # fmt: skip
        depth = 0.5 * (a[2] + b[2])
        c = shade(colour, depth)
        parts.append(_Part(depth + bias * H, pid, "capsule", (a[:2], b[:2], r[0] * H, r[1] * H), c,
                           stripe_for(c) if stripe else None, watch))  # fmt: skip

    def hull(pid: int, rings: Sequence[tuple[np.ndarray, np.ndarray, float, float]], colour: np.ndarray,
             depth: float) -> None:  # fmt: skip
        t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
        ring_pts = []
        for c, rot, w, d in rings:
            local = np.stack([w * np.cos(t), np.zeros_like(t), d * np.sin(t)], axis=1)
            ring_pts.append(proj(c + local @ rot.T))
        allp = np.concatenate(ring_pts)[:, :2].astype(np.float32)
        h = cv2.convexHull(allp)[:, 0, :].astype(np.float64)
        parts.append(_Part(depth, pid, "poly", (h,), shade(colour, depth)))

    eye3 = np.eye(3)
    rc = sk.r_chest
    nb = sk.pts["neck_base"]
    td = body.torso_depth
    hull(CHEST, [
        (nb + rc @ np.array([0, 0.014, 0]), rc, 0.062, 0.04),
        (nb + rc @ np.array([0, -0.03, 0]), rc, body.shoulder_outer, td),
        (rc @ np.array([0, 0.08 * body.torso, 0]), rc, body.hem_half, td),
    ], shirt, proj(rc @ np.array([0, 0.5 * body.torso, 0]))[2])  # fmt: skip
    hull(PELVIS, [
        (rc @ np.array([0, 0.3 * body.torso, 0]), rc, body.waist_half, td * 0.95),
        (np.zeros(3), eye3, body.hip_outer, td),
        (np.array([0, -0.045, 0]), eye3, body.hip_outer * 0.8, td * 0.85),
    ], trousers, pts["pelvis"][2] - 0.01 * H)  # fmt: skip
    capsule(NECK, pts["neck_base"], pts["neck_top"], (body.neck_r, body.neck_r), _mix(skin, 0.0, 0.08), 0.03)

    for i, sfx in ((0, "_l"), (1, "_r")):
        sh, el, wr = kp3[5 + i], kp3[7 + i], kp3[9 + i]
        hp, kn, an = kp3[11 + i], kp3[13 + i], kp3[15 + i]
        sleeve = side_tone(shirt, i)
        capsule(UARM_L + i, sh, el, body.upper_arm_r, sleeve, 0.045, stripe=i == 0)
        capsule(FARM_L + i, el, wr, body.forearm_r, sleeve if long_sleeves else side_tone(skin, i), 0.05,
                stripe=i == 0 and long_sleeves, watch=i == 0)  # fmt: skip
        capsule(HAND_L + i, wr, pts["hand" + sfx], body.hand_r, side_tone(skin, i), 0.055)
        leg = side_tone(trousers, i)
        capsule(THIGH_L + i, hp, kn, body.thigh_r, leg, -0.04, stripe=i == 0)
        capsule(SHIN_L + i, kn, an, body.shin_r, side_tone(skin, i) if shorts else leg, -0.035,
                stripe=i == 0 and not shorts)  # fmt: skip
        capsule(FOOT_L + i, pts["heel" + sfx], pts["toe" + sfx], body.foot_r, side_tone(shoes, i), -0.03)

    # --- head -----------------------------------------------------------------------
    head_c = pts["head_c"]
    rh = sk.r_head
    ax3 = view @ rh  # columns: head x/y/z axes in view coords
    up2 = ax3[:2, 1]
    up2 = up2 / max(1e-6, float(np.linalg.norm(up2)))
    across = np.array([-up2[1], up2[0]])
    radii = np.array([body.head_rx, body.head_ry, body.head_rz])
    half_w = float(np.sqrt(np.sum((radii * (across @ ax3[:2])) ** 2))) * H
    half_h = float(np.sqrt(np.sum((radii * (up2 @ ax3[:2])) ** 2))) * H
    angle = math.degrees(math.atan2(across[1], across[0]))
    fwd = ax3[:, 2]
    head_geom = (head_c[:2], (half_w, half_h), angle, up2, fwd, kp3[:5, :2], face_z, skin, hair)
    parts.append(_Part(head_c[2] + 0.06 * H, HEAD, "head", head_geom, skin))
    if long_hair:
        top = sk.pts["head_c"] + rh @ np.array([0, 0.1 * body.head_ry, -0.45 * body.head_rz])
        low = sk.pts["neck_base"] + rh @ np.array([0, 0.01, -0.9 * body.head_rz])
        a, b = proj(top), proj(low)
        capsule(HAIR, a, b, (body.head_rx * 0.95, body.head_rx * 0.8), hair, 0.0)
        parts[-1].depth = 0.5 * (a[2] + b[2])

    parts.sort(key=lambda p: p.depth)
    ext = []
    for p in parts:
        if p.kind == "capsule":
            a, b, r0, r1 = p.geom
            ext += [a - r0, a + r0, b - r1, b + r1]
        elif p.kind == "poly":
            ext += [p.geom[0].min(0), p.geom[0].max(0)]
        else:
            r = max(p.geom[1])
            ext += [p.geom[0] - r, p.geom[0] + r]
    e = np.array(ext)
    extent = np.concatenate([e.min(0), e.max(0)])
    return _Person(H, kp3[:, :2].copy(), face_z, parts, extent, max(0.8, 0.006 * H))


def _draw_head(img: np.ndarray | None, lab: np.ndarray, part: _Part, off: np.ndarray, label: int,
               outline: float) -> None:  # fmt: skip
    c, (hw, hh), angle, up2, fwd, face_kps, face_z, skin, hair = part.geom
    c = c + off
    _fill_ellipse(lab, c, (hw + outline, hh + outline), angle, label, cv2.LINE_8)
    if img is None:
        return
    _fill_ellipse(img, c, (hw + outline, hh + outline), angle, _col(_mix(hair, 0.0, 0.5)), _AA)
    _fill_ellipse(img, c, (hw, hh), angle, _col(hair), _AA)
    f2 = fwd[:2]
    fz = float(fwd[2])
    if fz > -0.45:  # some of the face is visible
        vis = float(np.clip((fz + 0.45) / 1.2, 0.0, 1.0))
        fc = c + f2 * 0.3 * hw - up2 * 0.14 * hh
        _fill_ellipse(img, fc, (hw * (0.55 + 0.3 * vis), hh * 0.8), angle, _col(skin), _AA)
    face = face_kps + off
    ear_col = _col(_mix(skin, 0.0, 0.1))
    for k in (3, 4):
        if face_z[k] > -0.3:
            _fill_ellipse(img, face[k], (max(0.7, 0.17 * hw), max(0.9, 0.27 * hh)), angle, ear_col, _AA)
    eye_r = max(0.7, 0.12 * hw)
    for k in (1, 2):
        if face_z[k] > 0.05:
            _fill_ellipse(img, face[k], (eye_r, eye_r * 0.8), angle, (35, 30, 30), _AA)
    if face_z[0] > -0.1:
        dark = _col(_mix(skin, 0.0, 0.3))
        mid_eye = 0.5 * (face[1] + face[2])
        cv2.line(img, _fix(mid_eye), _fix(face[0]), dark, max(1, int(round(0.06 * hw))), _AA, _SHIFT)
        _fill_ellipse(img, face[0], (max(0.7, 0.09 * hw), max(0.6, 0.07 * hw)), angle, dark, _AA)
        mouth = face[0] - up2 * 0.3 * hh
        half = np.array([up2[1], -up2[0]]) * 0.22 * hw * max(0.3, float(fwd[2]))
        cv2.line(img, _fix(mouth - half), _fix(mouth + half), (60, 60, 150), max(1, int(round(0.07 * hw))),
                 _AA, _SHIFT)  # fmt: skip


def _draw_person(img: np.ndarray, lab: np.ndarray, person: _Person, base_label: int) -> None:
    off = person.offset
    ow = person.outline
    for part in person.parts:
        label = base_label + part.pid
        if part.kind == "head":
            _draw_head(img, lab, part, off, label, ow)
            continue
        col = _col(part.colour)
        dark = _col(_mix(part.colour, 0.0, 0.45))
        if part.kind == "capsule":
            a, b, r0, r1 = part.geom
            a, b = a + off, b + off
            _fill_capsule(img, a, b, r0 + ow, r1 + ow, dark, _AA)
            _fill_capsule(img, a, b, r0, r1, col, _AA)
            _fill_capsule(lab, a, b, r0 + ow, r1 + ow, label, cv2.LINE_8)
            if part.stripe is not None:
                th = max(1, int(round(0.32 * (r0 + r1))))
                cv2.line(img, _fix(a + 0.1 * (b - a)), _fix(b - 0.1 * (b - a)), _col(part.stripe), th, _AA,
                         _SHIFT)  # fmt: skip
            if part.watch:
                w0, w1 = a + 0.8 * (b - a), a + 0.93 * (b - a)
                _fill_capsule(img, w0, w1, r1 * 1.15, r1 * 1.15, (30, 30, 35), _AA)
        else:  # poly
            poly = np.round((part.geom[0] + off) * _SC).astype(np.int32)
            cv2.fillConvexPoly(img, poly, col, _AA, _SHIFT)
            cv2.polylines(img, [poly], True, dark, max(1, int(round(1.6 * ow))), _AA, _SHIFT)
            cv2.fillConvexPoly(lab, poly, label, cv2.LINE_8, _SHIFT)


_GRID_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    if (w, h) not in _GRID_CACHE:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRID_CACHE[(w, h)] = (xx, yy)
    return _GRID_CACHE[(w, h)]


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Wall/floor gradients, smooth colour noise, stripes and random shapes."""
    c1, c2 = _hsv_colour(rng, (0, 160), (60, 240)), _hsv_colour(rng, (0, 160), (50, 230))
    horizon = int(rng.uniform(0.3, 0.8) * h) if rng.random() < 0.7 else h
    col = np.empty((h, 3), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    col[:horizon] = (c1 * (1 - 0.25 * t[:horizon]) + 0.25 * t[:horizon] * c2)
    col[horizon:] = (c2 * (0.8 + 0.3 * t[horizon:]))
    img = np.broadcast_to(col[:, None, :], (h, w, 3)).copy()
    # low-frequency colour noise
    cell = int(rng.integers(8, 48))
    gh, gw = h // cell + 2, w // cell + 2
    small = rng.standard_normal((gh, gw, 1)).astype(np.float32) * float(rng.uniform(5, 28))
    small = small + rng.standard_normal((gh, gw, 3)).astype(np.float32) * float(rng.uniform(0, 10))
    img += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.4:  # stripes / tiles
        xx, yy = _grid(w, h)
        ang = rng.uniform(0, math.pi)
        period = rng.uniform(5, 40)
        wave = np.sin((xx * math.cos(ang) + yy * math.sin(ang)) * (2 * math.pi / period))
        if rng.random() < 0.5:
            wave = np.sign(wave)
        img += (wave * float(rng.uniform(6, 30)))[:, :, None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 10))):
        colour = _col(_hsv_colour(rng, (0, 255), (30, 255)))
        kind = rng.random()
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(max(3, min(w, h) // 30), max(6, min(w, h) // 3)))
        if kind < 0.35:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 3))), colour, -1)
        elif kind < 0.6:
            cv2.circle(img, (x, y), s // 2, colour, -1, _AA)
        elif kind < 0.85:
            x2, y2 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 6)), _AA)
        else:
            pts = np.array([[x, y]]) + rng.integers(-s, s + 1, (int(rng.integers(3, 6)), 2))
            cv2.fillPoly(img, [pts.astype(np.int32)], colour, _AA)
    return img


def _occluder(rng: np.random.Generator, img: np.ndarray, lab: np.ndarray, box: np.ndarray) -> None:
    """Draw a random object over part of ``box`` (x0, y0, x1, y1) and mark it in the label map."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    colour = _hsv_colour(rng, (0, 255), (30, 240))
    kind = rng.random()
    if kind < 0.4:  # table / fence / box covering the lower body or a side
        ww, hh = bw * rng.uniform(0.4, 1.1), bh * rng.uniform(0.15, 0.4)
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0 + 0.45 * bh, y1)
        ang = rng.normal(0, 8)
        rect = cv2.boxPoints(((float(cx), float(cy)), (float(ww), float(hh)), float(ang)))
        shape = ("poly", rect)
    elif kind < 0.65:  # pole / post
        ww, hh = max(3.0, bw * rng.uniform(0.08, 0.2)), bh * rng.uniform(0.5, 1.6)
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rect = cv2.boxPoints(((float(cx), float(cy)), (float(ww), float(hh)), float(rng.normal(0, 6))))
        shape = ("poly", rect)
    elif kind < 0.85:  # ball / bush
        r = bh * rng.uniform(0.08, 0.22)
        shape = ("ellipse", (rng.uniform(x0, x1), rng.uniform(y0, y1)), (r, r * rng.uniform(0.6, 1.0)))
    else:  # random convex blob
        r = bh * rng.uniform(0.1, 0.25)
        c = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        pts = c + rng.normal(0, r, (7, 2))
        shape = ("poly", cv2.convexHull(pts.astype(np.float32))[:, 0, :])
    dark = _col(_mix(colour, 0.0, 0.5))
    if shape[0] == "poly":
        poly = np.round(np.asarray(shape[1], np.float64) * _SC).astype(np.int32)
        cv2.fillConvexPoly(img, poly, _col(colour), _AA, _SHIFT)
        if rng.random() < 0.5 and len(shape[1]) >= 4:  # texture: a few stripes inside
            p = np.asarray(shape[1], np.float64)
            for t in np.linspace(0.2, 0.8, int(rng.integers(2, 5))):
                a, b = p[0] + t * (p[1] - p[0]), p[3] + t * (p[2] - p[3])
                cv2.line(img, _fix(a), _fix(b), dark, 1, _AA, _SHIFT)
        cv2.polylines(img, [poly], True, dark, 1, _AA, _SHIFT)
        cv2.fillConvexPoly(lab, poly, _OCCLUDER, cv2.LINE_8, _SHIFT)
    else:
        c, ax = np.asarray(shape[1]), shape[2]
        ang = float(rng.uniform(0, 180))
        _fill_ellipse(img, c, (ax[0] + 1, ax[1] + 1), ang, dark, _AA)
        _fill_ellipse(img, c, ax, ang, _col(colour), _AA)
        _fill_ellipse(lab, c, (ax[0] + 1, ax[1] + 1), ang, _OCCLUDER, cv2.LINE_8)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box: 1.0 when one box hides inside the other."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-6)


def _place(rng: np.random.Generator, person: _Person, w: int, h: int, placed: list[np.ndarray]) -> None:
    ext = person.extent
    bw, bh = ext[2] - ext[0], ext[3] - ext[1]
    inside = rng.random() < 0.88
    slack = 0.0 if inside else 0.35
    best, best_iou = None, 2.0
    for _ in range(12):
        lo_x, hi_x = -ext[0] - slack * bw, w - ext[2] + slack * bw
        lo_y, hi_y = -ext[1] - slack * bh, h - ext[3] + slack * bh
        ox = rng.uniform(lo_x, hi_x) if hi_x > lo_x else 0.5 * (lo_x + hi_x)
        oy = rng.uniform(lo_y, hi_y) if hi_y > lo_y else 0.5 * (lo_y + hi_y)
        box = ext + np.array([ox, oy, ox, oy])
        worst = max((_overlap(box, q) for q in placed), default=0.0)
        if worst < best_iou:
            best, best_iou = np.array([ox, oy]), worst
        if worst < 0.3:
            break
    assert best is not None
    person.offset = best
    placed.append(ext + np.array([best[0], best[1], best[0], best[1]]))


def _visible(lab: np.ndarray, x: float, y: float, own: set[int]) -> bool:
    """True when one of the person's own parts is on top at (or next to) ``(x, y)``."""
    h, w = lab.shape
    xi, yi = int(round(x)), int(round(y))
    win = lab[max(0, yi - 1):min(h, yi + 2), max(0, xi - 1):min(w, xi + 2)]
    return not own.isdisjoint(win.ravel().tolist())


def generate_image(
    seed: int, index: int, image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, split_name: str = "train"
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Render image ``index`` of a split: returns a BGR ``uint8`` image and its annotations.

    Annotations are COCO-style dicts without ``id``/``image_id`` (``category_id``, ``bbox``,
    ``area``, ``iscrowd``, ``num_keypoints``, ``keypoints``).  Deterministic in
    ``(seed, index, image_size, split_name)``.
    """
    w, h = int(image_size[0]), int(image_size[1])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split_name.encode()), int(index)]))
    img = _background(rng, w, h)
    lab = np.zeros((h, w), np.uint16)
    size = min(w, h)
    n = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    lo, hi = {1: (0.3, 0.92), 2: (0.26, 0.8), 3: (0.25, 0.7)}[n]
    people: list[_Person] = []
    placed: list[np.ndarray] = []
    for _ in range(n):
        height = float(size * math.exp(rng.uniform(math.log(lo), math.log(hi))))
        state = rng.bit_generator.state
        person = _build_person(rng, height)
        ext = person.extent
        fit = min(1.0, 0.97 * h / (ext[3] - ext[1]), 0.97 * w / (ext[2] - ext[0]))
        if fit < 1.0:  # too big for the frame: rebuild the same person smaller
            rng.bit_generator.state = state
            person = _build_person(rng, height * fit)
        _place(rng, person, w, h, placed)
        people.append(person)
    order = np.argsort([p.height for p in people], kind="stable")  # small (far) ones first
    boxes: dict[int, tuple[np.ndarray, float]] = {}
    for rank, pi in enumerate(order):
        person = people[pi]
        base = 1 + rank * _PARTS_PER_PERSON
        _draw_person(img, lab, person, base)
        x0, y0, x1, y1 = person.extent + np.tile(person.offset, 2)
        x0, y0 = max(0, int(math.floor(x0)) - 2), max(0, int(math.floor(y0)) - 2)
        x1, y1 = min(w, int(math.ceil(x1)) + 3), min(h, int(math.ceil(y1)) + 3)
        roi = lab[y0:y1, x0:x1]
        mask = (roi >= base) & (roi < base + _PARTS_PER_PERSON)
        area = float(np.count_nonzero(mask))
        if area > 0:
            rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
            ry = np.flatnonzero(rows)
            cx = np.flatnonzero(cols)
            tight = np.array([x0 + cx[0], y0 + ry[0], x0 + cx[-1] + 1, y0 + ry[-1] + 1], np.float64)
            boxes[rank] = (tight, area)
    # occluding objects in front of people
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 3))):
            target = people[int(rng.integers(len(people)))]
            _occluder(rng, img, lab, target.extent + np.tile(target.offset, 2))
    # camera effects
    if rng.random() < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 0.9)))
    amp = int(rng.integers(2, 10))  # sensor noise, uniform in [-amp, amp]
    noise = np.frombuffer(rng.bytes(h * w * 3), np.uint8).reshape(h, w, 3) % np.uint8(2 * amp + 1)
    img = cv2.subtract(cv2.add(img, noise), (float(amp), float(amp), float(amp), 0.0))

    anns: list[dict[str, Any]] = []
    for rank, pi in enumerate(order):
        if rank not in boxes:
            continue
        person = people[pi]
        base = 1 + rank * _PARTS_PER_PERSON
        kps = person.kps + person.offset
        out = np.zeros((17, 3))
        for k in range(17):
            x, y = float(kps[k, 0]), float(kps[k, 1])
            if not (0.0 <= x < w and 0.0 <= y < h):
                continue
            v = 2
            if k < 5:  # face landmarks: facing away
                fz = float(person.face_z[k])
                if k < 3 and fz < -0.5:
                    continue  # face seen from behind: not labelled, as COCO annotators do
                if fz < (-0.3 if k >= 3 else 0.05):
                    v = 1
            if v == 2 and not _visible(lab, x, y, {base + part for part in _OWN_PARTS[k]}):
                v = 1
            out[k] = (round(x, 2), round(y, 2), v)
        num = int(np.count_nonzero(out[:, 2]))
        if num == 0:
            continue
        tight, area = boxes[rank]
        margin = 1.0 + 0.02 * (tight[2:] - tight[:2])
        bx0, by0 = np.maximum(tight[:2] - margin, 0.0)
        bx1, by1 = np.minimum(tight[2:] + margin, (w, h))
        anns.append({
            "category_id": 1,
            "bbox": [round(float(bx0), 2), round(float(by0), 2), round(float(bx1 - bx0), 2),
                     round(float(by1 - by0), 2)],
            "area": round(area, 2),
            "iscrowd": 0,
            "num_keypoints": num,
            "keypoints": [float(v) if j % 3 < 2 else int(v) for j, v in enumerate(out.reshape(-1))],
        })  # fmt: skip
    return img, anns


# ----------------------------------------------------------------------------------
# Data set writers
# ----------------------------------------------------------------------------------


def _render_and_write(args: tuple[int, int, tuple[int, int], str, str, str]) -> list[dict[str, Any]]:
    seed, index, size, split_name, path, ext = args
    img, anns = generate_image(seed, index, size, split_name)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext in ("jpg", "jpeg") else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, buf = cv2.imencode("." + ext, img, params)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    Path(path).write_bytes(buf.tobytes())
    return anns


def _dump_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, separators=(",", ":")))


def generate_dataset(
    out_dir: str | Path,
    num_images: int,
    seed: int,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    split_name: str = "train",
    ext: str = "jpg",
    workers: int = 1,
) -> Path:
    """Write ``num_images`` images to ``out_dir/<split_name>/`` and their COCO keypoint json.

    The annotation file is ``out_dir/<split_name>.json`` (its ``file_name`` fields are
    relative to the image folder; the digits of each file name are its ``image_id``, counted from 1, so
    ``infer --boxes`` and COCO tools agree on which image a box belongs to); its path is returned.  The same arguments always give a
    byte-identical json and identical images.  ``workers > 1`` renders in processes.
    """
    out_dir = Path(out_dir)
    img_dir = out_dir / split_name
    img_dir.mkdir(parents=True, exist_ok=True)
    ext = ext.lower().lstrip(".")
    size = (int(image_size[0]), int(image_size[1]))
    names = [f"{i + 1:06d}.{ext}" for i in range(num_images)]  # the digits are the image id, as in COCO
    jobs = [(int(seed), i, size, split_name, str(img_dir / names[i]), ext) for i in range(num_images)]
    if workers > 1 and num_images > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            per_image = list(pool.map(_render_and_write, jobs, chunksize=max(1, num_images // (4 * workers))))
    else:
        per_image = [_render_and_write(j) for j in jobs]

    images, annotations = [], []
    ann_id = 1
    for i, anns in enumerate(per_image):
        images.append({"id": i + 1, "file_name": names[i], "width": size[0], "height": size[1]})
        for a in anns:
            annotations.append({"id": ann_id, "image_id": i + 1, **a})
            ann_id += 1
    coco = {
        "info": {"description": f"posetokens synthetic people ({split_name}, seed {seed})", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [COCO_CATEGORY],
    }
    json_path = out_dir / f"{split_name}.json"
    _dump_json(coco, json_path)
    return json_path


def _jittered_detections(ann_file: Path, seed: int) -> list[dict[str, Any]]:
    coco = json.loads(ann_file.read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xDE7EC7]))
    dets = []
    for a in coco["annotations"]:
        x, y, bw, bh = a["bbox"]
        iw, ih = sizes[a["image_id"]]
        j = rng.normal(0.0, 0.03, 4) * np.array([bw, bh, bw, bh])
        x0, y0 = max(0.0, x + j[0]), max(0.0, y + j[1])
        x1, y1 = min(float(iw), x + bw + j[2]), min(float(ih), y + bh + j[3])
        if x1 - x0 < 1 or y1 - y0 < 1:
            x0, y0, x1, y1 = x, y, x + bw, y + bh
        dets.append({
            "image_id": a["image_id"], "category_id": 1,
            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], "score": 1.0,
        })  # fmt: skip
    return dets


def generate_splits(
    root: str | Path,
    num_train: int,
    num_val: int,
    seed: int,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    workers: int = 1,
) -> dict[str, Path]:
    """Write a train and a val split under ``root`` plus person detections for val.

    Layout: ``root/train/*.jpg``, ``root/train.json``, ``root/val/*.jpg``, ``root/val.json``
    and ``root/val_detections.json`` (COCO results format: ground-truth boxes with a small
    jitter and score 1.0).  Returns the paths under the keys ``root``, ``train_ann``,
    ``train_img_dir``, ``val_ann``, ``val_img_dir`` and ``val_det``.
    """
    root = Path(root)
    train_ann = generate_dataset(root, num_train, seed, image_size, "train", workers=workers)
    val_ann = generate_dataset(root, num_val, seed, image_size, "val", workers=workers)
    det_path = root / "val_detections.json"
    _dump_json(_jittered_detections(val_ann, seed), det_path)
    return {
        "root": root,
        "train_ann": train_ann,
        "train_img_dir": root / "train",
        "val_ann": val_ann,
        "val_img_dir": root / "val",
        "val_det": det_path,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: ``python -m posetokens.data.synthetic OUT_DIR ...``."""
    ap = argparse.ArgumentParser(description="Generate the synthetic COCO-17 keypoint data set.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--num-train", type=int_at_least(1), default=2000)
    ap.add_argument("--num-val", type=int_at_least(1), default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int_at_least(32), nargs=2, default=list(DEFAULT_IMAGE_SIZE), metavar=("W", "H"))
    ap.add_argument("--workers", type=int_at_least(1), default=1)
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in OUT_DIR")
    args = ap.parse_args(argv)
    names = ("train.json", "val.json", "val_detections.json", "train", "val")
    try:
        check_fixed_outputs(args.out_dir, names, args.overwrite, "OUT_DIR",
                            "choose another OUT_DIR, or pass --overwrite to replace it")
    except ValueError as e:
        ap.error(str(e))
    paths = generate_splits(args.out_dir, args.num_train, args.num_val, args.seed,
                            tuple(args.image_size), workers=args.workers)  # fmt: skip
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
