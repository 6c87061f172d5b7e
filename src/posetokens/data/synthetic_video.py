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

**Rendering** (:meth:`SyntheticClip.render`, :meth:`~SyntheticClip.render_frame`, :meth:`~SyntheticClip.images`,
:meth:`~SyntheticClip.write_video`): every person is drawn with the renderer of :mod:`posetokens.data.synthetic`
(its clothing, shading, left/right cues, face and outlines, the same drawing functions), posed by the clip's 3D
joints and projected through the clip's pinhole camera, so limbs and heads shrink with depth. People are drawn
farthest first, so a nearer person really hides a farther one; the background is one static textured scene of
that module (a fixed camera) with fresh sensor noise per frame. Each rendered frame also gives COCO-17 ground
truth (face landmarks from the drawn head; ``v=2`` visible, ``v=1`` hidden by another person or the person's own
body, ``v=0`` outside the image), the silhouette box and area of every person, and a per-pixel map of who is on
top, so a COCO-17 2D model can be scored on the frames (:meth:`~SyntheticClip.coco_ground_truth`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetokens.media import VideoWriter

from . import synthetic as _syn
from .synthetic_motion import (
    _PARAMS,
    _base_params,
    _gait,
    _limit_of,
    _soft_clip,
    forward_kinematics,
    sample_body,
)

__all__ = ["CAMERA_HEIGHT", "RenderedFrame", "SyntheticClip", "clip_camera", "make_clip", "walking_person",
           "write_motion_dataset"]

#: Height (m) of the clip's camera above the floor; it looks level along the floor (world +y).
CAMERA_HEIGHT = 1.6


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
class RenderedFrame:
    """One rendered frame of a :class:`SyntheticClip` (P people, in the clip's person order)."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    person_map: np.ndarray  # (H, W) int16: the person p on top at each pixel, -1 for the background
    keypoints_coco: np.ndarray  # (P, 17, 3) COCO-17 x, y (pixels), v (2 visible, 1 hidden, 0 outside the image)
    boxes: np.ndarray  # (P, 4) x, y, w, h of the person's drawn pixels (2 % margin, clipped); zeros if not drawn
    areas: np.ndarray  # (P,) the person's drawn (unhidden) pixels


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
    focal: float = 1000.0  # pixels; the principal point is the image centre
    seed: int = 0  # the people's looks and the background of the rendered frames

    @property
    def frames(self) -> int:
        """The clip's frame count."""
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

    # ------------------------------------------------------------------------------------------------ rendering
    def render_frame(self, t: int) -> RenderedFrame:
        """Frame ``t`` drawn (see the module doc), with its COCO-17 ground truth and who is on top per pixel."""
        if not 0 <= int(t) < self.frames:
            raise IndexError(f"frame {t} is outside the clip (0..{self.frames - 1})")
        t = int(t)
        looks = _looks(self.seed, self.ids.tolist())
        img = _clip_background(self.seed, self.width, self.height).copy()
        lab = np.zeros((self.height, self.width), np.uint16)
        centre = np.array([self.width / 2, self.height / 2])
        order = np.argsort(-self.keypoints_3d[t, :, 0, 2], kind="stable")  # farthest first
        people = []
        for rank, p in enumerate(order):
            person = _posed_person(self.keypoints_3d[t, p], looks[p], self.focal, centre)
            _syn._draw_person(img, lab, person, 1 + rank * _syn._PARTS_PER_PERSON)
            people.append(person)
        rng = np.random.default_rng([self.seed, t, 0x4E4F4953])
        amp = 3  # sensor noise, uniform in [-amp, amp] (synthetic.py draws 2-9 per image)
        noise = rng.integers(0, 2 * amp + 1, img.shape, np.uint8)
        img = cv2.subtract(cv2.add(img, noise), (float(amp),) * 3 + (0.0,))
        n = len(self.ids)
        lut = np.full(1 + n * _syn._PARTS_PER_PERSON, -1, np.int16)
        lut[1:] = np.repeat(order.astype(np.int16), _syn._PARTS_PER_PERSON)
        person_map = lut[lab]
        kps = np.zeros((n, 17, 3))
        boxes, areas = np.zeros((n, 4)), np.zeros(n)
        for rank, (p, person) in enumerate(zip(order, people)):
            kps[p] = _coco_visibility(lab, person, 1 + rank * _syn._PARTS_PER_PERSON)
            boxes[p], areas[p] = _silhouette_box(person_map == p)
        return RenderedFrame(img, person_map, kps, boxes, areas)

    def render(self, t: int) -> np.ndarray:
        """Frame ``t`` as an (H, W, 3) uint8 BGR image (see :meth:`render_frame`)."""
        return self.render_frame(t).image

    def images(self) -> Iterator[np.ndarray]:
        """Every frame in order, as BGR images."""
        for t in range(self.frames):
            yield self.render(t)

    def detections(self, rendered: Sequence[RenderedFrame] | None = None) -> list[dict[str, Any]]:
        """Ground-truth person boxes as a COCO-results detections list (``infer --boxes``; ``image_id`` is the frame
        index, score 1): the silhouette box of every person the clip counts as visible (:attr:`visible`) and that is
        drawn in the frame. ``rendered``: the frames already rendered (all of them), else they are rendered."""
        frames = rendered if rendered is not None else [self.render_frame(t) for t in range(self.frames)]
        dets = []
        for t, rf in enumerate(frames):
            for p in np.flatnonzero(self.visible[t] & (rf.areas > 0)):
                dets.append({"image_id": t, "category_id": 1, "bbox": np.round(rf.boxes[p], 2).tolist(),
                             "score": 1.0, "track_id": int(self.ids[p])})
        return dets

    def coco_ground_truth(self, frames: Sequence[int] | None = None,
                          rendered: Sequence[RenderedFrame] | None = None) -> dict[str, Any]:
        """A COCO keypoint ground truth of ``frames`` (None: all; ``image_id`` = frame index + 1): one annotation per
        drawn person with at least one labelled keypoint, COCO-17 keypoints with visibility, the silhouette
        ``bbox``/``area`` and the person's ``track_id``. ``rendered``: those frames already rendered."""
        frames = list(range(self.frames)) if frames is None else [int(t) for t in frames]
        rendered = rendered if rendered is not None else [self.render_frame(t) for t in frames]
        images, anns = [], []
        for t, rf in zip(frames, rendered):
            images.append({"id": t + 1, "file_name": f"{t + 1:06d}.png", "width": self.width, "height": self.height})
            for p in range(len(self.ids)):
                num = int(np.count_nonzero(rf.keypoints_coco[p, :, 2]))
                if num == 0 or rf.areas[p] <= 0:
                    continue
                anns.append({"id": len(anns) + 1, "image_id": t + 1, "category_id": 1, "iscrowd": 0,
                             "bbox": np.round(rf.boxes[p], 2).tolist(), "area": float(rf.areas[p]),
                             "num_keypoints": num, "track_id": int(self.ids[p]),
                             "keypoints": [round(float(v), 2) if j % 3 < 2 else int(v)
                                           for j, v in enumerate(rf.keypoints_coco[p].reshape(-1))]})
        return {"info": {"description": f"posetokens synthetic clip (seed {self.seed})"}, "licenses": [],
                "images": images, "annotations": anns, "categories": [_syn.COCO_CATEGORY]}

    def write_video(self, path: str | Path, codec: str = "auto", crf: int = 18) -> dict[str, Any]:
        """Render every frame into an MP4 at ``path`` (H.264 through PyAV where available, else mp4v; see
        :class:`posetokens.media.VideoWriter`, which writes atomically). Returns ``{"path", "codec",
        "frames", "rendered"}``; ``rendered`` holds the :class:`RenderedFrame` of every frame (for
        :meth:`detections` and :meth:`coco_ground_truth` without rendering again)."""
        writer = VideoWriter(path, self.fps, (self.width, self.height), codec=codec, crf=crf)
        rendered = []
        try:
            for t in range(self.frames):
                rf = self.render_frame(t)
                writer.write(rf.image)
                rendered.append(rf)
        finally:
            writer.close()
        return {"path": Path(path), "codec": writer.codec, "frames": self.frames, "rendered": rendered}


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
    cam_h = CAMERA_HEIGHT
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
    return SyntheticClip(kp2d, cam, boxes, vis, vis >= min_visibility, np.arange(1, people + 1), width, height, fps,
                         float(focal), int(seed))


def clip_camera(width: int = 1280, height: int = 720, focal: float = 1000.0, name: str = "clip") -> Any:
    """The clip's camera as a :class:`posetokens.data.h36m.Camera`: at ``CAMERA_HEIGHT`` above the world origin,
    looking level along world +y (x right, z up), pinhole, principal point at the image centre, so its
    ``world_to_camera`` gives the camera axes of :attr:`SyntheticClip.keypoints_3d`."""
    from .h36m import Camera

    rot = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # camera -> world: x, y down = -z, z = +y
    return Camera(R=rot, T=np.array([0.0, 0.0, CAMERA_HEIGHT]), f=np.array([focal, focal]),
                  c=np.array([width / 2, height / 2]), w=int(width), h=int(height), id=name, name=name)


def write_motion_dataset(out_dir: str | Path, subjects: Sequence[str] = ("S1", "S5", "S6", "S7", "S9"),
                         seed: int = 0, frames: int = 150, walkers: int = 4, width: int = 1280, height: int = 720,
                         focal: float = 1000.0) -> dict[str, Path]:
    """Training data for a lifter meant for these clips: the motion of :mod:`posetokens.data.synthetic_motion`
    (every action of :func:`~posetokens.data.synthetic_motion.generate_subject`, taken at 25 fps) placed at a
    random spot 4-9 m in front of the clip's camera (:func:`clip_camera`) anywhere across its view, plus
    ``walkers`` people per subject walking across the view as in :func:`make_clip`. Lifters take screen
    positions and sizes as they are, so one trained on people near the image centre (the synthetic_motion
    cameras) is lost on a person at the edge of the view or far away; this data covers both.

    Writes the VideoPose3D layout that ``posetokens train`` reads (``data.format: h36m``): ``data_3d_h36m.npz``,
    ``data_2d_h36m_gt.npz`` and ``cameras.json`` (one camera), returned by role (``"3d"``, ``"2d"``,
    ``"cameras"``). Deterministic from ``seed``; each subject's data depends on its name and the seed only."""
    import zlib

    from .h36m import save_videopose3d_cameras
    from .synthetic_motion import FPS, expand_to_32, generate_subject

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cam = clip_camera(width, height, focal)
    step = max(1, round(FPS / 25))
    pos3d: dict[str, dict[str, np.ndarray]] = {}
    pos2d: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject in subjects:
        rng = np.random.default_rng([int(seed), zlib.crc32(subject.encode()), 0x4D4F56])
        _, seqs = generate_subject(subject, seed, frames=frames * step, sequences_per_action=1)
        world = {name: seq[::step] for name, seq in seqs.items()}
        for k in range(walkers):
            depth, speed = rng.uniform(4.0, 9.0), rng.uniform(0.8, 1.5)
            direction = 1.0 if k % 2 == 0 else -1.0
            half = (width / 2) / focal * depth
            start = np.array([rng.uniform(-1.0, 1.0) * half - direction * speed * frames / 50, depth])
            velocity = np.array([direction * speed, rng.uniform(-0.05, 0.05)])
            world[f"Crossing {k + 1}"] = walking_person(rng, start, velocity, frames, 25.0)
        pos3d[subject], pos2d[subject] = {}, {}
        for name, seq in world.items():
            if not name.startswith("Crossing"):  # move the capture area to a random spot of the view
                depth = rng.uniform(4.0, 9.0)
                spot = np.array([rng.uniform(-0.8, 0.8) * (width / 2) / focal * depth, depth])
                seq = seq.copy()
                seq[..., :2] += spot - seq[:, 0, :2].mean(axis=0)
            pos3d[subject][name] = expand_to_32(seq)
            pos2d[subject][name] = [cam.project(cam.world_to_camera(seq), distort=False).astype(np.float32)]
    metadata = {"layout_name": "h36m", "num_joints": 17,
                "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    paths = {"3d": out / "data_3d_h36m.npz", "2d": out / "data_2d_h36m_gt.npz", "cameras": out / "cameras.json"}
    np.savez_compressed(paths["3d"], positions_3d=np.array(pos3d, dtype=object))
    np.savez_compressed(paths["2d"], positions_2d=np.array(pos2d, dtype=object),
                        metadata=np.array(metadata, dtype=object))
    save_videopose3d_cameras(paths["cameras"], {s: [cam] for s in subjects})
    return paths


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


# ---------------------------------------------------------------------------------------------------- rendering
@dataclass(frozen=True)
class _Look:
    """How one person is drawn: body build (:class:`~posetokens.data.synthetic.BodyShape`) and clothes, drawn
    from the distributions of :mod:`posetokens.data.synthetic`'s people."""

    body: _syn.BodyShape
    skin: np.ndarray
    shirt: np.ndarray
    trousers: np.ndarray
    shoes: np.ndarray
    hair: np.ndarray
    long_sleeves: bool
    shorts: bool
    long_hair: bool


def _sample_look(rng: np.random.Generator) -> _Look:
    body = _syn.BodyShape.sample(rng)
    skin = _syn._mix(_syn._SKIN_TONES[rng.integers(len(_syn._SKIN_TONES))], rng.uniform(0, 255, 3), 0.08)
    shirt = _syn._hsv_colour(rng, (40, 255), (60, 250))
    if rng.random() < 0.15:
        shirt = np.full(3, rng.uniform(30, 240))
    trousers = _syn._mix(_syn._TROUSERS[rng.integers(len(_syn._TROUSERS))], _syn._hsv_colour(rng, (0, 255), (40, 220)),
                         float(rng.uniform(0, 0.4)))
    shoes = np.full(3, rng.uniform(15, 70)) if rng.random() < 0.75 else _syn._hsv_colour(rng, (0, 200), (150, 250))
    hair = _syn._mix(_syn._HAIR[rng.integers(len(_syn._HAIR))], rng.uniform(0, 255, 3), 0.06)
    return _Look(body, skin, shirt, trousers, shoes, hair, bool(rng.random() < 0.5), bool(rng.random() < 0.25),
                 bool(rng.random() < 0.3))


_LOOKS: dict[tuple[int, int], _Look] = {}
_BACKGROUNDS: dict[tuple[int, int, int], np.ndarray] = {}


def _looks(seed: int, ids: Sequence[int]) -> list[_Look]:
    """The looks of the people ``ids``: from ``(seed, id)`` alone, so a person looks the same in any clip with that
    seed (e.g. one made of some of its people with :func:`dataclasses.replace`)."""
    for i in ids:
        if (seed, int(i)) not in _LOOKS:
            _LOOKS[(seed, int(i))] = _sample_look(np.random.default_rng([seed, int(i), 0x4C4F4F4B]))
    return [_LOOKS[(seed, int(i))] for i in ids]


def _clip_background(seed: int, width: int, height: int) -> np.ndarray:
    key = (seed, width, height)
    if key not in _BACKGROUNDS:
        _BACKGROUNDS[key] = _syn._background(np.random.default_rng([seed, 0x4247]), width, height)
    return _BACKGROUNDS[key]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)


def _orthogonal(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    return _unit(v - np.dot(v, axis) * axis)


#: COCO-17 keypoints that are H36M-17 joints: COCO index -> H36M index (shoulders to ankles).
_COCO_FROM_H36M = {5: 11, 6: 14, 7: 12, 8: 15, 9: 13, 10: 16, 11: 4, 12: 1, 13: 5, 14: 2, 15: 6, 16: 3}


def _posed_person(joints: np.ndarray, look: _Look, focal: float, centre: np.ndarray) -> Any:
    """A :mod:`~posetokens.data.synthetic` person (``_Person``: drawing parts in image pixels) posed by H36M-17
    ``joints`` (17, 3) in camera metres (x right, y down, z away), seen through a pinhole camera."""
    P = np.asarray(joints, np.float64)
    b = look.body
    stature = 0.5 * (np.linalg.norm(P[1] - P[2]) + np.linalg.norm(P[4] - P[5])) / 0.44 * 1.75  # body-scale metres
    S = float(stature)

    def proj(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return focal * x[..., :2] / x[..., 2:3] + centre

    def toward(x: np.ndarray) -> float:  # depth toward the camera (synthetic.py's drawing order: larger is nearer)
        return -float(np.asarray(x)[..., 2].mean())

    up_t = _unit(P[8] - P[0])  # trunk up
    left_c = _orthogonal(P[11] - P[14], up_t)
    fwd_c = np.cross(left_c, up_t)
    rc = np.stack((left_c, up_t, fwd_c), axis=1)  # chest frame (columns: left, up, forward)
    left_p = _orthogonal(P[4] - P[1], up_t)
    rp = np.stack((left_p, up_t, np.cross(left_p, up_t)), axis=1)
    up_h = _unit(P[10] - P[9] - 0.03 * fwd_c)  # synthetic_motion puts the head top 3 cm in front of its axis
    left_h = _orthogonal(left_c, up_h)
    rh = np.stack((left_h, up_h, np.cross(left_h, up_h)), axis=1)
    pelvis_depth = toward(P[0])

    def shade(c: np.ndarray, depth: float) -> np.ndarray:
        return c * (1.0 - 0.3 * float(np.clip(-((depth - pelvis_depth) / S) / 0.15, 0.0, 1.0)))

    parts: list[Any] = []

    def capsule(pid: int, a: np.ndarray, e: np.ndarray, r: tuple[float, float], colour: np.ndarray, bias: float,
                stripe: bool = False, watch: bool = False) -> None:
        depth = 0.5 * (toward(a) + toward(e))
        c = shade(colour, depth)
        geom = (proj(a), proj(e), r[0] * S * focal / a[2], r[1] * S * focal / e[2])
        parts.append(_syn._Part(depth + bias * S, pid, "capsule", geom, c, _syn.stripe_for(c) if stripe else None,
                                watch))

    def hull(pid: int, rings: Sequence[tuple[np.ndarray, np.ndarray, float, float]], colour: np.ndarray,
             depth: float) -> None:
        ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        pts = [c + (S * np.stack((w * np.cos(ang), np.zeros_like(ang), d * np.sin(ang)), 1)) @ rot.T
               for c, rot, w, d in rings]
        h = cv2.convexHull(proj(np.concatenate(pts)).astype(np.float32))[:, 0, :].astype(np.float64)
        parts.append(_syn._Part(depth, pid, "poly", (h,), shade(colour, depth)))

    torso = float(np.linalg.norm(P[8] - P[0]))
    td = b.torso_depth
    hull(_syn.CHEST, [(P[8] + 0.014 * S * up_t, rc, 0.062, 0.04), (P[8] - 0.03 * S * up_t, rc, b.shoulder_outer, td),
                      (P[0] + 0.08 * torso * up_t, rc, b.hem_half, td)], look.shirt, toward(0.5 * (P[0] + P[8])))
    hull(_syn.PELVIS, [(P[0] + 0.3 * torso * up_t, rc, b.waist_half, td * 0.95), (P[0], rp, b.hip_outer, td),
                       (P[0] - 0.045 * S * up_t, rp, b.hip_outer * 0.8, td * 0.85)], look.trousers,
         pelvis_depth - 0.01 * S)
    capsule(_syn.NECK, P[8], P[9], (b.neck_r, b.neck_r), _syn._mix(look.skin, 0.0, 0.08), 0.03)
    fwd_floor = _orthogonal(rp[:, 2], np.array([0.0, -1.0, 0.0]))
    for i, (sh, el, wr, hp, kn, an) in enumerate(((11, 12, 13, 4, 5, 6), (14, 15, 16, 1, 2, 3))):
        sleeve = _syn.side_tone(look.shirt, i)
        capsule(_syn.UARM_L + i, P[sh], P[el], b.upper_arm_r, sleeve, 0.045, stripe=i == 0)
        forearm = sleeve if look.long_sleeves else _syn.side_tone(look.skin, i)
        capsule(_syn.FARM_L + i, P[el], P[wr], b.forearm_r, forearm, 0.05, stripe=i == 0 and look.long_sleeves,
                watch=i == 0)
        hand = P[wr] + _unit(P[wr] - P[el]) * b.hand * S
        capsule(_syn.HAND_L + i, P[wr], hand, b.hand_r, _syn.side_tone(look.skin, i), 0.055)
        leg = _syn.side_tone(look.trousers, i)
        capsule(_syn.THIGH_L + i, P[hp], P[kn], b.thigh_r, leg, -0.04, stripe=i == 0)
        capsule(_syn.SHIN_L + i, P[kn], P[an], b.shin_r, _syn.side_tone(look.skin, i) if look.shorts else leg, -0.035,
                stripe=i == 0 and not look.shorts)
        down = _unit(P[an] - P[kn])
        toe = P[an] + 0.25 * b.shin_r[1] * S * down + b.foot * S * fwd_floor
        heel = P[an] + 0.6 * b.shin_r[1] * S * down - 0.2 * b.foot * S * fwd_floor
        capsule(_syn.FOOT_L + i, heel, toe, b.foot_r, _syn.side_tone(look.shoes, i), -0.03)

    # head: synthetic.py's ellipse and face, seen along the ray to the head (perspective)
    radii = np.array([b.head_rx, b.head_ry, b.head_rz]) * S
    head_c = P[9] + 0.95 * radii[1] * up_h
    ray = _unit(head_c)
    x_v = _unit(np.cross(np.array([0.0, 1.0, 0.0]), ray))
    view = np.stack((x_v, np.cross(ray, x_v), -ray))  # rows: image right, image down, toward the camera
    ax3 = view @ rh
    scale = focal / head_c[2]
    up2 = _unit(ax3[:2, 1])
    across = np.array([-up2[1], up2[0]])
    half_w = float(np.sqrt(np.sum((radii * (across @ ax3[:2])) ** 2))) * scale
    half_h = float(np.sqrt(np.sum((radii * (up2 @ ax3[:2])) ** 2))) * scale
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    face3 = head_c + (_syn._FACE_OFFSETS * radii) @ rh.T
    face_z = (_syn._FACE_NORMALS @ rh.T) @ (-ray)
    face2 = proj(face3)
    head_geom = (proj(head_c), (half_w, half_h), angle, up2, ax3[:, 2], face2, face_z, look.skin, look.hair)
    parts.append(_syn._Part(toward(head_c) + 0.06 * S, _syn.HEAD, "head", head_geom, look.skin))
    if look.long_hair:
        top = head_c + rh @ (np.array([0.0, 0.1 * b.head_ry, -0.45 * b.head_rz]) * S)
        low = P[8] + rh @ (np.array([0.0, 0.01, -0.9 * b.head_rz]) * S)
        capsule(_syn.HAIR, top, low, (b.head_rx * 0.95, b.head_rx * 0.8), look.hair, 0.0)
    parts.sort(key=lambda q: q.depth)
    kps = np.zeros((17, 2))
    kps[:5] = face2
    for c, h in _COCO_FROM_H36M.items():
        kps[c] = proj(P[h])
    height_px = S * focal / P[0, 2]
    return _syn._Person(height_px, kps, face_z, parts, np.zeros(4), max(0.8, 0.006 * height_px))


def _coco_visibility(lab: np.ndarray, person: Any, base: int) -> np.ndarray:
    """(17, 3) COCO keypoints of a drawn person with synthetic.py's visibility rules (label map ``lab``)."""
    h, w = lab.shape
    out = np.zeros((17, 3))
    for k in range(17):
        x, y = float(person.kps[k, 0]), float(person.kps[k, 1])
        if not (0.0 <= x < w and 0.0 <= y < h):
            continue
        v = 2
        if k < 5:
            fz = float(person.face_z[k])
            if k < 3 and fz < -0.5:
                continue  # face seen from behind: not labelled
            if fz < (-0.3 if k >= 3 else 0.05):
                v = 1
        if v == 2 and not _syn._visible(lab, x, y, {base + part for part in _syn._OWN_PARTS[k]}):
            v = 1
        out[k] = (x, y, v)
    return out


def _silhouette_box(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """x, y, w, h of a person's drawn pixels with synthetic.py's 2 % margin (clipped to the image), and their count."""
    area = float(np.count_nonzero(mask))
    if area == 0:
        return np.zeros(4), 0.0
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    tight = np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], np.float64)
    margin = 1.0 + 0.02 * (tight[2:] - tight[:2])
    h, w = mask.shape
    lo = np.maximum(tight[:2] - margin, 0.0)
    hi = np.minimum(tight[2:] + margin, (w, h))
    return np.concatenate((lo, hi - lo)), area
