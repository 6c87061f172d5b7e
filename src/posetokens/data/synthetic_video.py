"""A synthetic multi-person clip with known identities: people who walk, cross and occlude each other.

Each person is a subject of :mod:`posetokens.data.synthetic_motion` (own bone lengths from
:func:`~posetokens.data.synthetic_motion.sample_body`, its walking gait and forward kinematics) walking a
straight line on the floor, across the view of one pinhole camera (no distortion) at eye height looking along
the floor. People walk at different depths and speeds, in both directions, so they cross in the image and
the nearer one hides the farther one.

Per frame and person: H36M-17 2D keypoints (pixels), 3D joints in the **camera's axes** (metres; x right,
y down, z away from the camera, as the lifters are trained), the box of the 2D keypoints (grown by 10 %) and
the **visibility**: the fraction of the box inside the image and not covered by a nearer person's box. A person
is *visible* (in the ground truth and detected) when the visibility is at least ``min_visibility``.

:meth:`SyntheticClip.records` turns the clip into ``infer``-style frame records (the input of ``lift`` and of
:func:`posetokens.inference.tracking.track_records`) with Gaussian 2D noise, randomly dropped detections and
shuffled instance order, and gives the true identity of every instance. Everything is deterministic from the
seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .synthetic_motion import _PARAMS, _base_params, _gait, _limit_of, _soft_clip, forward_kinematics, sample_body

__all__ = ["SyntheticClip", "make_clip", "walking_person"]


def walking_person(rng: np.random.Generator, start: np.ndarray, velocity: np.ndarray, frames: int,
                   fps: float) -> np.ndarray:
    """World poses (L, 17, 3) (z up, metres) of a synthetic person walking from ``start`` (x, y) at the constant
    floor ``velocity`` (m/s), with a gait cycle matched to the speed."""
    t = np.arange(frames) / fps
    body = sample_body(rng)
    par = _base_params(rng, t)
    speed = float(np.linalg.norm(velocity))
    strides = speed / rng.uniform(1.2, 1.4)  # stride frequency (1/s) for a stride of 1.2-1.4 m
    _gait(par, 2 * np.pi * strides * t + rng.uniform(0, 2 * np.pi), min(1.0, speed / 1.1))
    par["lean"] = par["lean"] + 0.06
    par = {p: _soft_clip(v, *_limit_of(p)) for p, v in par.items() if p in _PARAMS}
    heading = np.full(frames, np.arctan2(velocity[1], velocity[0]))
    root = np.asarray(start, np.float64)[None] + t[:, None] * np.asarray(velocity, np.float64)[None]
    return forward_kinematics(body, par, heading, root)


@dataclass(frozen=True)
class SyntheticClip:
    """Ground truth of a synthetic multi-person clip (L frames, P people). Person ``p``'s identity is ``ids[p]``."""

    keypoints_2d: np.ndarray  # (L, P, 17, 2) pixels, H36M-17
    keypoints_3d: np.ndarray  # (L, P, 17, 3) metres, camera axes (x right, y down, z depth)
    boxes: np.ndarray  # (L, P, 4) x1, y1, x2, y2
    visibility: np.ndarray  # (L, P) in [0, 1]
    visible: np.ndarray  # (L, P) bool
    ids: np.ndarray  # (P,)
    width: int
    height: int
    fps: float

    @property
    def frames(self) -> int:
        return int(self.keypoints_2d.shape[0])

    def crossings(self) -> int:
        """How many times two people cross in the image: sign changes of the difference of their box centres' x,
        counted between frames where both are in the image (so crossings while one is hidden count too)."""
        cx = (self.boxes[..., 0] + self.boxes[..., 2]) / 2  # (L, P)
        inside = (self.boxes[..., 2] > 0) & (self.boxes[..., 0] < self.width)
        n = 0
        p = cx.shape[1]
        for a in range(p):
            for b in range(a + 1, p):
                both = inside[:, a] & inside[:, b]
                s = np.sign(cx[both, a] - cx[both, b])
                s = s[s != 0]
                n += int((s[1:] != s[:-1]).sum())
        return n

    def records(self, noise_px: float = 0.0, drop_prob: float = 0.0, seed: int = 0,
                score: float = 0.9) -> tuple[list[dict[str, Any]], list[list[int]]]:
        """``infer``-style records (H36M-17 keypoints, ``keypoint_layout`` ``h36m``) of the visible people, with
        Gaussian noise of ``noise_px`` pixels on the keypoints (the box follows them), each detection dropped
        with probability ``drop_prob``, instances shuffled; and per frame the true id of each instance."""
        rng = np.random.default_rng([int(seed), 0x52454344])
        recs: list[dict[str, Any]] = []
        gt: list[list[int]] = []
        noise = rng.normal(0, noise_px, self.keypoints_2d.shape) if noise_px > 0 else 0.0
        kp_all = self.keypoints_2d + noise
        keep = self.visible & (rng.uniform(size=self.visible.shape) >= drop_prob)
        for t in range(self.frames):
            people = np.flatnonzero(keep[t])
            people = people[rng.permutation(len(people))]
            insts = []
            for p in people:
                kp = kp_all[t, p]
                insts.append({"keypoints": np.round(kp, 3).tolist(), "keypoint_scores": [score] * kp.shape[0],
                              "bbox": np.round(_box(kp), 3).tolist(), "bbox_score": score})
            recs.append({"frame_id": t, "width": self.width, "height": self.height, "keypoint_layout": "h36m",
                         "instances": insts})
            gt.append([int(self.ids[p]) for p in people])
        return recs, gt

    def gt_boxes(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids (V,) and boxes (V, 4) of the people visible in frame ``t`` (the ground truth for scoring)."""
        v = self.visible[t]
        return self.ids[v], self.boxes[t, v]


def _box(kp: np.ndarray, grow: float = 0.1) -> np.ndarray:
    lo, hi = kp.min(axis=-2), kp.max(axis=-2)
    pad = (hi - lo) * grow / 2
    return np.concatenate((lo - pad, hi + pad), axis=-1)


def make_clip(people: int = 4, frames: int = 150, seed: int = 0, fps: float = 25.0, width: int = 1280,
              height: int = 720, focal: float = 1000.0, min_visibility: float = 0.5) -> SyntheticClip:
    """A clip of ``people`` synthetic people walking across the view (see the module doc), deterministic from
    ``seed``. Person ``p`` walks at depth 4-9 m, alternately left-to-right and right-to-left, from just outside
    or inside the view, at 0.8-1.5 m/s, so opposite walkers cross in the image mid-clip."""
    rng = np.random.default_rng([int(seed), 0x564944])
    duration = frames / fps
    cam_h = 1.6
    depths = np.sort(rng.uniform(4.0, 9.0, people))[rng.permutation(people)]
    depths += np.arange(people) * 1e-3  # no two people at exactly the same depth
    world = []
    for p in range(people):
        direction = 1.0 if p % 2 == 0 else -1.0
        speed = rng.uniform(0.8, 1.5)
        half_view = (width / 2) / focal * depths[p]  # half the visible floor width at this depth
        x_mid = rng.uniform(-0.3, 0.3) * half_view  # where the person is mid-clip
        start = np.array([x_mid - direction * speed * duration / 2, depths[p]])
        velocity = np.array([direction * speed, rng.uniform(-0.05, 0.05)])
        world.append(walking_person(np.random.default_rng([int(seed), p, 0x50]), start, velocity, frames, fps))
    w = np.stack(world, axis=1)  # (L, P, 17, 3): x right, y depth (away), z up
    cam = np.stack((w[..., 0], cam_h - w[..., 2], w[..., 1]), axis=-1)  # camera axes: x right, y down, z depth
    kp2d = focal * cam[..., :2] / cam[..., 2:3] + np.array([width / 2, height / 2])
    boxes = _box(kp2d)
    vis = _visibility(boxes, cam[..., 0, 2], width, height)
    return SyntheticClip(kp2d, cam, boxes, vis, vis >= min_visibility, np.arange(1, people + 1), width, height, fps)


def _visibility(boxes: np.ndarray, depth: np.ndarray, width: int, height: int, samples: int = 24) -> np.ndarray:
    """(L, P) fraction of each box inside the image and not inside a nearer person's box (a grid of sample
    points per box)."""
    u = (np.arange(samples) + 0.5) / samples
    gx = boxes[..., 0:1] + (boxes[..., 2:3] - boxes[..., 0:1]) * u  # (L, P, S)
    gy = boxes[..., 1:2] + (boxes[..., 3:4] - boxes[..., 1:2]) * u
    x, y = gx[..., :, None], gy[..., None, :]  # (L, P, S, 1), (L, P, 1, S)
    ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    p = boxes.shape[1]
    for q in range(p):
        bq = boxes[:, q]
        inside = ((x >= bq[:, None, 0, None, None]) & (x <= bq[:, None, 2, None, None])
                  & (y >= bq[:, None, 1, None, None]) & (y <= bq[:, None, 3, None, None]))
        nearer = depth[:, q][:, None] < depth  # (L, P): q is in front of p
        ok &= ~(inside & nearer[..., None, None])
    return ok.mean(axis=(-1, -2))
