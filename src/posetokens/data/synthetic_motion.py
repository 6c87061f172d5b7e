"""Deterministic synthetic H36M-17 motion, written in the VideoPose3D layout.

Each subject gets fixed bone lengths (a random height and proportions). Motion is a kinematic chain:
joint angles are smooth tracks (sums of sinusoids plus smoothstep interpolation of key poses),
kept within joint limits by a smooth clamp, and turned into positions by forward kinematics. Every
bone is a fixed vector rotated rigidly, so bone lengths are exactly constant per subject. The pelvis
height follows the lower foot, so the feet stay on the floor (world z = 0, z up, metres, 50 fps).

Actions: ``Walking`` (a circular path, gait cycle with arm swing), ``Reaching`` (key poses of
one or both arms with a leaning trunk), ``Turning`` (large heading changes with small steps),
``Crouching`` (squats with held poses) and ``Mixed`` (a crossfade between two of them). Every
sequence is time-warped at a random, slowly varying speed.

Four H36M-like cameras (about 1145 px focal length, 1000x1002/1000x1000 images, small lens
distortion) ring the capture area; their extrinsics vary slightly per subject, like H36M's. The 2D
keypoints are the 3D joints projected with :meth:`posetokens.data.h36m.Camera.project` (distortion
included), so the real loader reads the output unchanged::

    python -m posetokens.data.synthetic_motion OUT --subjects S1 S5 S9 --seed 0

writes ``OUT/data_3d_h36m.npz`` (``positions_3d``: subject -> action -> (L, 32, 3) world metres,
float64), ``OUT/data_2d_h36m_gt.npz`` (``positions_2d``: subject -> action -> 4 x (L, 17, 2) pixels;
``metadata``) and ``OUT/cameras.json`` (VideoPose3D-style intrinsics + per-subject extrinsics).
Read them with ``load_videopose3d(OUT/data_3d_h36m.npz, OUT/data_2d_h36m_gt.npz, OUT/cameras.json)``.

Randomness: every subject, sequence and camera rig has its own ``numpy.random.default_rng`` seeded by
``(seed, crc32(subject), stream)``, so a subject's data do not depend on which others are generated.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posetokens.fileio import check_fixed_outputs
from posetokens.runtime import int_at_least

from .h36m import H36M32_TO_17, H36M_CAMERA_IDS, H36M_CAMERA_RESOLUTION, Camera, save_videopose3d_cameras

__all__ = [
    "ACTIONS",
    "BONES",
    "DEFAULT_SUBJECTS",
    "FPS",
    "JOINT_LIMITS",
    "Body",
    "bone_lengths",
    "expand_to_32",
    "forward_kinematics",
    "generate_dataset",
    "generate_sequence",
    "generate_subject",
    "main",
    "sample_body",
    "sample_cameras",
]

FPS = 50
ACTIONS: tuple[str, ...] = ("Walking", "Reaching", "Turning", "Crouching", "Mixed")
DEFAULT_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")

#: (parent, child) joint pairs of the H36M-17 kinematic tree.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)

#: Joint-angle limits in radians (flexion positive forward; knee/elbow flexion >= 0).
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "lean": (-0.25, 1.1),
    "side_bend": (-0.3, 0.3),
    "twist": (-0.9, 0.9),
    "neck_pitch": (-0.5, 0.7),
    "hip_flex": (-0.5, 2.1),
    "hip_abd": (-0.15, 0.6),
    "knee": (0.0, 2.4),
    "shoulder_flex": (-0.8, 2.9),
    "shoulder_abd": (0.0, 2.3),
    "elbow": (0.0, 2.4),
}

_PARAMS: tuple[str, ...] = (
    "lean", "side_bend", "twist", "neck_pitch",
    "hip_flex_r", "hip_flex_l", "hip_abd_r", "hip_abd_l", "knee_r", "knee_l",
    "shoulder_flex_r", "shoulder_flex_l", "shoulder_abd_r", "shoulder_abd_l", "elbow_r", "elbow_l",
)


def _limit_of(param: str) -> tuple[float, float]:
    """The joint limits (radians) of a pose parameter; ``_l``/``_r`` sides share their joint's."""
    return JOINT_LIMITS[param[:-2] if param[-2:] in ("_r", "_l") else param]


@dataclass(frozen=True)
class Body:
    """Bone geometry of one subject (metres): half hip width, thigh, shin, pelvis->spine,
    spine->thorax, thorax->neck base, neck->head, half shoulder width, upper arm, forearm, and the
    height of the ankle joint above the floor."""

    hip: float
    thigh: float
    shin: float
    spine: float
    chest: float
    neck: float
    head: float
    shoulder: float
    upper_arm: float
    forearm: float
    ankle_height: float


def _rng(seed: int, subject: str, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(subject.encode()), *stream])


def sample_body(rng: np.random.Generator) -> Body:
    """Random adult proportions: height 1.55-1.95 m, each bone jittered by up to 6 %."""
    s = rng.uniform(1.55, 1.95) / 1.75
    base = dict(hip=0.13, thigh=0.44, shin=0.44, spine=0.23, chest=0.25, neck=0.10, head=0.12,
                shoulder=0.16, upper_arm=0.28, forearm=0.25, ankle_height=0.08)
    return Body(**{k: float(v * s * rng.uniform(0.94, 1.06)) for k, v in base.items()})


def bone_lengths(positions: np.ndarray) -> np.ndarray:
    """(..., 17, 3) positions -> (..., 16) bone lengths in :data:`BONES` order."""
    p = np.asarray(positions)
    parent, child = np.array(BONES).T
    return np.linalg.norm(p[..., child, :] - p[..., parent, :], axis=-1)


# ----------------------------------------------------------------------------- rotations
def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Batched rotation matrices (L, 3, 3) about x (0), y (1) or z (2)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    m = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., i, j] = -s
    m[..., j, i] = s
    return m


def _apply(R: np.ndarray, v: Sequence[float]) -> np.ndarray:
    return R @ np.asarray(v, dtype=np.float64)


def forward_kinematics(
    body: Body, params: dict[str, np.ndarray], heading: np.ndarray, root_xy: np.ndarray
) -> np.ndarray:
    """Joint angles -> world positions (L, 17, 3), z up, with the lower foot's ankle at ``ankle_height``.

    Body frame: x forward, y left, z up, turned by ``heading`` about world z. Angles (radians) are those
    in :data:`_PARAMS`; flexion moves a limb forward, abduction moves it sideways away from the body.
    """
    L = len(heading)
    P = _rot(2, heading)                                            # pelvis
    trunk = P @ _rot(1, params["lean"]) @ _rot(0, params["side_bend"])
    chest = trunk @ _rot(2, params["twist"])
    head = chest @ _rot(1, params["neck_pitch"])
    out = np.zeros((L, 17, 3))
    down = (0.0, 0.0, -1.0)
    for side, hip_j, sign in (("r", 1, -1.0), ("l", 4, 1.0)):
        hip = _apply(P, (0.0, sign * body.hip, 0.0))
        thigh = P @ _rot(0, sign * params[f"hip_abd_{side}"]) @ _rot(1, -params[f"hip_flex_{side}"])
        knee = hip + _apply(thigh, down) * body.thigh
        shin = thigh @ _rot(1, params[f"knee_{side}"])
        out[:, hip_j], out[:, hip_j + 1] = hip, knee
        out[:, hip_j + 2] = knee + _apply(shin, down) * body.shin
    out[:, 7] = _apply(trunk, (0.0, 0.0, body.spine))
    out[:, 8] = out[:, 7] + _apply(chest, (0.0, 0.0, body.chest))
    out[:, 9] = out[:, 8] + _apply(head, (0.02 * body.neck / 0.1, 0.0, body.neck))
    out[:, 10] = out[:, 9] + _apply(head, (0.03, 0.0, body.head))
    for side, sh_j, sign in (("l", 11, 1.0), ("r", 14, -1.0)):
        sh = out[:, 8] + _apply(chest, (0.0, sign * body.shoulder, -0.03))
        upper = chest @ _rot(0, sign * params[f"shoulder_abd_{side}"]) @ _rot(1, -params[f"shoulder_flex_{side}"])
        elbow = sh + _apply(upper, down) * body.upper_arm
        fore = upper @ _rot(1, -params[f"elbow_{side}"])
        out[:, sh_j], out[:, sh_j + 1] = sh, elbow
        out[:, sh_j + 2] = elbow + _apply(fore, down) * body.forearm
    # Feet on the floor: lift the body so the lower ankle (smooth minimum) sits at ankle_height.
    tau = 0.01
    low = -tau * np.logaddexp(-out[:, 3, 2] / tau, -out[:, 6, 2] / tau)
    out[..., 2] += (body.ankle_height - low)[:, None]
    out[..., :2] += np.asarray(root_xy)[:, None, :]
    return out


# ----------------------------------------------------------------------------- motion tracks
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _soft_clip(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` squashed smoothly into ``(lo, hi)`` (a tanh about the middle: near-linear there, never past a limit)."""
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    return mid + half * np.tanh((x - mid) / half)


def _noise(rng: np.random.Generator, t: np.ndarray, amp: float, terms: int = 3) -> np.ndarray:
    """Sum of ``terms`` sinusoids with periods of 1.5-6 s and total amplitude about ``amp``."""
    freq = 1.0 / rng.uniform(1.5, 6.0, terms)
    phase = rng.uniform(0, 2 * np.pi, terms)
    w = rng.uniform(0.5, 1.0, terms)
    w = amp * w / w.sum()
    return (w * np.sin(2 * np.pi * freq * t[:, None] + phase)).sum(axis=1)


def _keyed(rng: np.random.Generator, t: np.ndarray, values: np.ndarray, hold: float = 0.3) -> np.ndarray:
    """Smoothstep interpolation through key values (K, D) spread over ``t``, holding each key a bit."""
    k = len(values)
    span = (t[-1] - t[0]) if len(t) > 1 else 1.0
    gaps = rng.uniform(0.7, 1.3, k - 1)
    key_t = t[0] + np.concatenate([[0.0], np.cumsum(gaps)]) / max(gaps.sum(), 1e-9) * span
    seg = np.clip(np.searchsorted(key_t, t, side="right") - 1, 0, k - 2)
    u = (t - key_t[seg]) / (key_t[seg + 1] - key_t[seg])
    u = _smoothstep((u - hold / 2) / (1 - hold))                     # dwell near each key pose
    return values[seg] + (values[seg + 1] - values[seg]) * u[:, None]


def _base_params(rng: np.random.Generator, t: np.ndarray) -> dict[str, np.ndarray]:
    """Relaxed standing pose with idle variation."""
    n = len(t)
    out = {p: np.zeros(n) for p in _PARAMS}
    out["lean"] = 0.05 + _noise(rng, t, 0.05)
    out["side_bend"] = _noise(rng, t, 0.04)
    out["twist"] = _noise(rng, t, 0.08)
    out["neck_pitch"] = 0.05 + _noise(rng, t, 0.12)
    for s in "rl":
        out[f"hip_flex_{s}"] = 0.05 + _noise(rng, t, 0.04)
        out[f"hip_abd_{s}"] = 0.05 + _noise(rng, t, 0.03)
        out[f"knee_{s}"] = 0.1 + _noise(rng, t, 0.05)
        out[f"shoulder_flex_{s}"] = 0.05 + _noise(rng, t, 0.1)
        out[f"shoulder_abd_{s}"] = 0.15 + _noise(rng, t, 0.05)
        out[f"elbow_{s}"] = 0.3 + _noise(rng, t, 0.15)
    return out


def _gait(out: dict[str, np.ndarray], phase: np.ndarray, amp: float) -> None:
    """Add a walking cycle of relative amplitude ``amp`` (1 = normal walk) in place."""
    for s, off in (("r", 0.0), ("l", np.pi)):
        ph = phase + off
        out[f"hip_flex_{s}"] = out[f"hip_flex_{s}"] + amp * (0.1 + 0.42 * np.sin(ph))
        out[f"knee_{s}"] = out[f"knee_{s}"] + amp * 0.6 * ((1 + np.cos(ph - 0.4)) / 2) ** 2
        out[f"shoulder_flex_{'l' if s == 'r' else 'r'}"] += amp * 0.35 * np.sin(ph)
        out[f"elbow_{s}"] = out[f"elbow_{s}"] + amp * 0.15 * (1 + np.sin(ph + np.pi))
    out["twist"] = out["twist"] + amp * 0.1 * np.sin(phase)


def _action(
    rng: np.random.Generator, action: str, t: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Angle tracks, heading (L,) and root xy (L, 2) for one action over warped time ``t`` (s)."""
    par = _base_params(rng, t)
    n = len(t)
    home = rng.uniform(-0.6, 0.6, 2)
    heading = rng.uniform(-np.pi, np.pi) + _noise(rng, t, 0.1)
    root = np.repeat(home[None], n, axis=0) + np.stack([_noise(rng, t, 0.03), _noise(rng, t, 0.03)], 1)
    if action == "Walking":
        fg = rng.uniform(0.8, 1.0)                                   # strides per second
        _gait(par, 2 * np.pi * fg * t + rng.uniform(0, 2 * np.pi), 1.0)
        speed = fg * rng.uniform(1.0, 1.3)                           # m/s
        radius = rng.uniform(1.1, 1.5)
        direction = rng.choice([-1.0, 1.0])
        theta = rng.uniform(-np.pi, np.pi) + direction * speed * t / radius
        root = rng.uniform(-0.2, 0.2, 2) + radius * np.stack([np.cos(theta), np.sin(theta)], 1)
        heading = theta + direction * np.pi / 2
        par["lean"] = par["lean"] + 0.06
    elif action == "Reaching":
        k = max(3, int(t[-1] / 1.5) + 2)
        keys = np.zeros((k, 7))
        arms = rng.integers(0, 3, k)                                 # 0 right, 1 left, 2 both
        for i in range(1, k, 2):                                     # rest, reach, rest, reach, ...
            flex, abd, elbow = rng.uniform(0.5, 2.5), rng.uniform(0.1, 1.3), rng.uniform(0.0, 1.2)
            keys[i, :3] = (flex, abd, elbow) if arms[i] != 1 else (0, 0, 0)
            keys[i, 3:6] = (flex, abd, elbow) if arms[i] != 0 else (0, 0, 0)
            keys[i, 6] = rng.uniform(0.0, 0.6)
        track = _keyed(rng, t, keys)
        for j, s in enumerate("rl"):
            par[f"shoulder_flex_{s}"] += track[:, 3 * j]
            par[f"shoulder_abd_{s}"] += track[:, 3 * j + 1]
            par[f"elbow_{s}"] += track[:, 3 * j + 2] - 0.3 * _smoothstep(track[:, 3 * j] / 0.5)
        par["lean"] = par["lean"] + track[:, 6]
        par["twist"] = par["twist"] + 0.3 * (track[:, 0] - track[:, 3])
        par["neck_pitch"] = par["neck_pitch"] + 0.4 * track[:, 6]
    elif action == "Turning":
        k = max(3, int(t[-1] / 2.0) + 2)
        turns = np.concatenate([[0.0], np.cumsum(rng.choice([-1, 1], k - 1) * rng.uniform(np.pi / 2, np.pi, k - 1))])
        yaw = _keyed(rng, t, turns[:, None], hold=0.4)[:, 0]
        rate = np.gradient(yaw, t) if n > 1 else np.zeros(n)
        heading = heading + yaw
        step = np.clip(np.abs(rate) / 2.0, 0.0, 1.0)
        phase = 2 * np.pi * 1.6 * t
        _gait(par, phase, 0.35 * step)
        par["twist"] = par["twist"] + 0.25 * np.tanh(rate)
    elif action == "Crouching":
        k = max(3, int(t[-1] / 1.6) + 2)
        depth = np.where(np.arange(k) % 2 == 1, rng.uniform(0.55, 1.0, k), rng.uniform(0.0, 0.1, k))
        d = _keyed(rng, t, depth[:, None], hold=0.35)[:, 0]
        for s in "rl":
            par[f"hip_flex_{s}"] += 1.75 * d
            par[f"knee_{s}"] += 2.1 * d
            par[f"hip_abd_{s}"] += 0.2 * d
            par[f"shoulder_flex_{s}"] += 1.0 * d
            par[f"elbow_{s}"] += 0.3 * d
        par["lean"] = par["lean"] + 0.55 * d
        par["neck_pitch"] = par["neck_pitch"] - 0.3 * d
    else:
        raise ValueError(f"unknown synthetic action {action!r}; choose from {ACTIONS}")
    return par, heading, root


def _warped_time(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Monotonic time (s) at a random speed (0.8-1.25x) that varies slowly by up to +-25 %."""
    t = np.arange(frames) / FPS
    speed = rng.uniform(0.8, 1.25)
    period = rng.uniform(3.0, 8.0)
    amp = 0.25 * speed * period / (2 * np.pi)                        # keeps d(tau)/dt >= 0.75*speed
    return speed * t + amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))


def generate_sequence(body: Body, action: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """One sequence of ``frames`` world poses (L, 17, 3) for ``action`` (one of :data:`ACTIONS`)."""
    t = _warped_time(rng, frames)
    if action == "Mixed":
        a, b = rng.choice([x for x in ACTIONS if x != "Mixed"], 2, replace=False)
        pa, ha, ra = _action(rng, str(a), t)
        pb, hb, rb = _action(rng, str(b), t)
        centre, width = rng.uniform(0.35, 0.65) * t[-1], rng.uniform(0.15, 0.3) * t[-1] + 1e-6
        w = _smoothstep((t - centre + width / 2) / width)
        mid = int(np.clip(np.searchsorted(t, centre), 0, frames - 1))
        # Move B rigidly (turn about z, then shift) so it starts the crossfade where A is and facing
        # the same way: no sudden jump of position or heading during the blend.
        turn = ha[mid] - hb[mid]
        c, s_ = np.cos(turn), np.sin(turn)
        rel = rb - rb[mid]
        rb = ra[mid] + np.stack([c * rel[:, 0] - s_ * rel[:, 1], s_ * rel[:, 0] + c * rel[:, 1]], 1)
        hb = hb + turn
        par = {p: (1 - w) * pa[p] + w * pb[p] for p in _PARAMS}
        heading, root = (1 - w) * ha + w * hb, (1 - w[:, None]) * ra + w[:, None] * rb
        root = root - (root.min(0) + root.max(0)) / 2 + rng.uniform(-0.3, 0.3, 2)  # stay in the capture area
    else:
        par, heading, root = _action(rng, action, t)
    par = {p: _soft_clip(v, *_limit_of(p)) for p, v in par.items()}
    return forward_kinematics(body, par, heading, root)


def expand_to_32(poses17: np.ndarray) -> np.ndarray:
    """(L, 17, 3) -> the 32-joint H36M layout of ``data_3d_h36m.npz``; each dropped joint copies the
    nearest kept joint up its chain (toes -> foot, hand sites -> wrist, ...)."""
    p = np.asarray(poses17)
    parents32 = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22,
                 12, 24, 25, 26, 27, 28, 27, 30)
    src = {j32: j17 for j17, j32 in enumerate(H36M32_TO_17)}
    full = []
    for j in range(32):
        k = j
        while k not in src:
            k = parents32[k]
        full.append(src[k])
    return p[:, full]


# ----------------------------------------------------------------------------- cameras
def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera->world rotation for a camera at ``centre`` looking at ``target`` (x right, y down)."""
    z = target - centre
    z = z / np.linalg.norm(z)
    x = np.cross(z, (0.0, 0.0, 1.0))
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def sample_cameras(seed: int, subjects: Sequence[str]) -> dict[str, tuple[Camera, ...]]:
    """Four H36M-like cameras: one shared rig (intrinsics, layout) from ``seed``, with small
    per-subject changes of the extrinsics (about 2 degrees and 5 cm)."""
    rig = np.random.default_rng([int(seed), 0x43414D])
    intr = []
    for i, cam_id in enumerate(H36M_CAMERA_IDS):
        fx = rig.uniform(1140, 1150)
        w, h = H36M_CAMERA_RESOLUTION[cam_id]
        intr.append(dict(
            f=(fx, fx - rig.uniform(0, 3)), c=(rig.uniform(505, 515), rig.uniform(500, 515)),
            k=(rig.normal(-0.2, 0.01), rig.normal(0.24, 0.01), rig.normal(-0.003, 0.001)),
            p=rig.normal(0, 0.001, 2), w=w, h=h, id=cam_id, name=f"camera{i + 1}",
        ))
    azimuth = np.deg2rad(np.array([45.0, 135.0, 225.0, 315.0]) + rig.uniform(-15, 15, 4))
    dist, height = rig.uniform(5.0, 6.0, 4), rig.uniform(1.2, 1.9, 4)
    aim = np.column_stack([rig.uniform(-0.3, 0.3, 4), rig.uniform(-0.3, 0.3, 4), rig.uniform(0.8, 1.1, 4)])
    out: dict[str, tuple[Camera, ...]] = {}
    for subject in subjects:
        r = _rng(seed, subject, 0x43414D)
        cams = []
        for i in range(4):
            a = azimuth[i] + np.deg2rad(r.uniform(-2, 2))
            centre = np.array([dist[i] * np.cos(a), dist[i] * np.sin(a), height[i]]) + r.uniform(-0.05, 0.05, 3)
            R = _look_at(centre, aim[i] + r.uniform(-0.05, 0.05, 3))
            cams.append(Camera(R=R, T=centre, azimuth=float(np.rad2deg(a)), **intr[i]))
        out[subject] = tuple(cams)
    return out


# ----------------------------------------------------------------------------- dataset
def generate_subject(
    subject: str,
    seed: int = 0,
    actions: Sequence[str] = ACTIONS,
    sequences_per_action: int = 2,
    frames: int = 500,
) -> tuple[Body, dict[str, np.ndarray]]:
    """A subject's body and sequences ``{"Walking 1": (L, 17, 3) world metres, ...}``.

    Lengths vary in [0.8, 1.2] * ``frames``; sub-actions are numbered from 1.
    """
    body = sample_body(_rng(seed, subject, 1))
    seqs: dict[str, np.ndarray] = {}
    for ai, action in enumerate(actions):
        for k in range(sequences_per_action):
            r = _rng(seed, subject, 2, ai, k)
            n = max(2, int(round(frames * r.uniform(0.8, 1.2))))
            seqs[f"{action} {k + 1}"] = generate_sequence(body, action, n, r)
    return body, seqs


def generate_dataset(
    out_dir: str | Path,
    subjects: Sequence[str] = DEFAULT_SUBJECTS,
    seed: int = 0,
    frames: int = 500,
    sequences_per_action: int = 2,
    actions: Sequence[str] = ACTIONS,
) -> dict[str, Path]:
    """Write the VideoPose3D-layout files for ``subjects``; returns their paths by role
    (``"3d"``, ``"2d"``, ``"cameras"``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cameras = sample_cameras(seed, subjects)
    pos3d: dict[str, dict[str, np.ndarray]] = {}
    pos2d: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in subjects:
        _, seqs = generate_subject(subject, seed, actions, sequences_per_action, frames)
        pos3d[subject], pos2d[subject] = {}, {}
        for name, world in seqs.items():
            pos3d[subject][name] = expand_to_32(world)
            views = []
            for cam in cameras[subject]:
                xc = cam.world_to_camera(world)
                if xc[..., 2].min() < 0.5:
                    raise RuntimeError(f"{subject} {name}: a joint is behind camera {cam.id}")
                views.append(cam.project(xc).astype(np.float32))
            pos2d[subject][name] = views
    metadata = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    }
    paths = {"3d": out / "data_3d_h36m.npz", "2d": out / "data_2d_h36m_gt.npz", "cameras": out / "cameras.json"}
    np.savez_compressed(paths["3d"], positions_3d=np.array(pos3d, dtype=object))
    np.savez_compressed(paths["2d"], positions_2d=np.array(pos2d, dtype=object),
                        metadata=np.array(metadata, dtype=object))
    save_videopose3d_cameras(paths["cameras"], cameras)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m posetokens.data.synthetic_motion OUT --subjects S1 S9 --seed 0``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--subjects", nargs="+", default=list(DEFAULT_SUBJECTS), choices=list(DEFAULT_SUBJECTS),
                    help="Human3.6M subjects (train S1 S5 S6 S7 S8, test S9 S11)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int_at_least(2), default=500, help="mean sequence length (50 fps)")
    ap.add_argument("--sequences-per-action", type=int_at_least(1), default=2)
    ap.add_argument("--actions", nargs="+", default=list(ACTIONS), choices=list(ACTIONS))
    ap.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in OUT")
    a = ap.parse_args(argv)
    names = ("data_3d_h36m.npz", "data_2d_h36m_gt.npz", "cameras.json")  # the VideoPose3D names: never over real ones
    try:
        check_fixed_outputs(a.out, names, a.overwrite, "OUT", "it may be real Human3.6M data; choose another OUT, or "
                            "pass --overwrite to replace it")
    except ValueError as e:
        ap.error(str(e))
    paths = generate_dataset(a.out, a.subjects, a.seed, a.frames, a.sequences_per_action, a.actions)
    n = len(a.subjects) * len(a.actions) * a.sequences_per_action
    print(f"wrote {n} sequences x 4 cameras: " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
