"""Multi-person tracking: people keep an identity across frames.

Each track carries a **constant-velocity box model** (centre and size, velocities smoothed by an alpha-beta
update) and its last keypoints. Every frame, the tracks' boxes (and keypoints, shifted by the box motion) are
predicted to the frame; the similarity of a track and a detection is the **box IoU**, averaged with the
**OKS** of their keypoints when both have keypoints. Pairs below ``match_thr`` are gated out, the rest are
assigned by the **Hungarian algorithm** (:func:`scipy.optimize.linear_sum_assignment`) on ``1 - similarity``.
A track not matched for more than ``max_age`` frames ends (so it survives short occlusions, coasting on its
velocity); an unmatched detection starts a new track. Cost matrices are computed for all pairs at once.

Why our own (about 150 lines) rather than a tracking library: the trackers in libraries (SORT/ByteTrack
ports, ``motpy``, ``norfair``) match boxes only or pull in heavy dependencies; this one adds OKS, needs only
scipy, and works both frame by frame (:class:`Tracker`, online) and on a whole list of frame records as
``infer`` writes them (:func:`track_records`, offline).

:class:`PoseTracker` adds the **detector every N frames** of rtmlib's ``det_frequency``: the person detector
runs on frames 0, N, 2N, ...; on the frames between, each person's box is carried from their pose of the
previous frame (:func:`pose_boxes`: the extent of the joints scored at least ``kpt_thr``, grown 1.25x about
its centre, rtmlib's ``pose_to_bbox`` factor, and moved by the track's velocity), so the 2D model still runs
on every frame. Two carried boxes that find the same person (their poses' boxes overlap by IoU
``dedup_iou`` or more) keep only the better-scored pose. The poses of carried frames are matched to the tracks
like a detector frame's, but a carried box is not a measurement of the person's box: it covers the joints scored
at least ``kpt_thr`` (only the upper body when the legs score low), and taking it as one would alternate
pose-sized and detector-sized boxes and send the size velocity swinging until the gate fails. So only detector
boxes update a track's box model; on carried frames the track takes the pose's keypoints (:meth:`Tracker._follow`)
and its box coasts on the velocity the detector boxes gave it, and the next detector box is compared with a
like-sized predicted box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from posetokens.data.metainfo import get_metainfo, is_skeleton_file
from posetokens.data.metainfo.coco import COCO_SIGMAS
from posetokens.runtime import check_count, option

__all__ = ["COCO_SIGMAS", "PoseTracker", "Tracker", "box_iou", "instance_boxes", "oks_matrix", "pose_boxes",
           "track_records", "tracks_of"]

_DEFAULT_SIGMA = 0.07  # layouts without OKS sigmas (H36M): about the mean COCO sigma


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (A, B) of ``[x1, y1, x2, y2]`` boxes (A, 4) and (B, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def oks_matrix(kp_a: np.ndarray, kp_b: np.ndarray, areas_b: np.ndarray, sigmas: np.ndarray,
               vis_a: np.ndarray | None = None, vis_b: np.ndarray | None = None) -> np.ndarray:
    """Pairwise object keypoint similarity (A, B) of keypoints (A, K, 2) and (B, K, 2), the scale taken from
    the areas (B,) of the ``b`` boxes (COCO's ``exp(-d^2 / (2 s^2 (2 sigma)^2))`` averaged over the keypoints
    visible in both; 0 where none is)."""
    d2 = np.sum((kp_a[:, None] - kp_b[None, :]) ** 2, axis=-1)  # (A, B, K)
    var = (2 * np.asarray(sigmas, np.float64)) ** 2
    e = np.exp(-d2 / (2 * np.maximum(areas_b, 1.0)[None, :, None] * var))
    both = np.isfinite(d2)
    if vis_a is not None:
        both &= vis_a[:, None, :]
    if vis_b is not None:
        both &= vis_b[None, :, :]
    n = both.sum(-1)
    return np.where(n > 0, np.where(both, e, 0.0).sum(-1) / np.maximum(n, 1), 0.0)


def _to_cxcywh(b: np.ndarray) -> np.ndarray:
    return np.concatenate(((b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]), axis=-1)


def _to_xyxy(s: np.ndarray) -> np.ndarray:
    return np.concatenate((s[..., :2] - s[..., 2:] / 2, s[..., :2] + s[..., 2:] / 2), axis=-1)


@dataclass
class _Track:
    track_id: int
    state: np.ndarray  # (4,) cx, cy, w, h
    velocity: np.ndarray  # (4,) per frame
    keypoints: np.ndarray | None  # (K, 2) at the last match
    visible: np.ndarray | None  # (K,) bool
    last_frame: int
    hits: int = 1  # boxes measured (0: born on a carried frame, its box made from its pose)
    history: list[int] = field(default_factory=list)
    box_frame: int = -1  # frame of the box ``state`` holds (-1: ``last_frame``, where it was born)

    def __post_init__(self) -> None:
        if self.box_frame < 0:
            self.box_frame = self.last_frame


class Tracker:
    """Online multi-person tracker (see the module doc). Call :meth:`update` once per frame, in order.

    ``match_thr``: least similarity of a match (IoU, or the mean of IoU and OKS); ``max_age``: frames a track
    survives without a match; ``smoothing``: weight of a new velocity measurement (alpha-beta filter);
    ``sigmas``: per-keypoint OKS sigmas (default: the evaluation's sigmas of the built-in ``layout``,
    COCO's, CrowdPose's, MPII's or COCO-WholeBody's; 0.07 for a layout without them, H36M);
    ``kpt_thr``: least keypoint score for a keypoint to count in OKS.
    """

    def __init__(self, match_thr: float = 0.3, max_age: int = 30, smoothing: float = 0.5,
                 sigmas: Sequence[float] | None = None, kpt_thr: float = 0.0, layout: str = "coco") -> None:
        if not 0 <= match_thr <= 1:
            raise ValueError(f"match_thr must be in [0, 1], got {match_thr}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0 frames, got {max_age}")
        self.match_thr, self.max_age, self.smoothing, self.kpt_thr = match_thr, max_age, smoothing, kpt_thr
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        self.layout = layout
        self.tracks: list[_Track] = []
        self.frame = -1
        self._next_id = 1

    def _sigmas(self, k: int) -> np.ndarray:
        if self.sigmas is not None:
            if len(self.sigmas) != k:
                raise ValueError(f"tracker: {len(self.sigmas)} OKS sigmas for {k} keypoints")
            return self.sigmas
        try:  # a built-in layout's evaluation sigmas (a layout of one's own passes its own as ``sigmas``)
            meta = None if is_skeleton_file(self.layout) else get_metainfo(self.layout)
        except ValueError:
            meta = None
        if meta is not None and meta.sigmas is not None and len(meta.sigmas) == k:
            return np.asarray(meta.sigmas, np.float64)
        return np.full(k, _DEFAULT_SIGMA)

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The live tracks' boxes (T, 4) at ``frame`` under constant velocity from their last measured box, and
        their keypoints moved on by the centre velocity from their own frame (T, K, 2) (None when a track has no
        keypoints)."""
        if not self.tracks:
            return np.zeros((0, 4)), None
        dt = np.array([[frame - t.box_frame, frame - t.last_frame] for t in self.tracks], np.float64)
        velocity = np.stack([t.velocity for t in self.tracks])
        state = np.stack([t.state for t in self.tracks]) + dt[:, :1] * velocity
        state[:, 2:] = np.maximum(state[:, 2:], 1.0)
        kps = [t.keypoints for t in self.tracks]
        if any(k is None for k in kps) or len({k.shape for k in kps}) != 1:  # type: ignore[union-attr]
            return _to_xyxy(state), None
        shift = dt[:, 1:] * velocity[:, :2]  # the keypoints move from their own frame
        return _to_xyxy(state), np.stack(kps) + shift[:, None, :]  # type: ignore[arg-type]

    def similarity(self, boxes: np.ndarray, keypoints: np.ndarray | None = None,
                   keypoint_scores: np.ndarray | None = None, frame: int | None = None) -> np.ndarray:
        """Similarity (T, N) of the live tracks, predicted to ``frame`` (default: the next one), and N detections."""
        frame = self.frame + 1 if frame is None else frame
        pred_boxes, pred_kp = self.predict(frame)
        sim = box_iou(pred_boxes, boxes)
        if keypoints is not None and pred_kp is not None and len(boxes) and pred_kp.shape[1:] == keypoints.shape[1:]:
            vis_b = None if keypoint_scores is None else keypoint_scores > self.kpt_thr
            vis_a = np.stack([t.visible for t in self.tracks])  # type: ignore[misc]
            areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=-1)
            oks = oks_matrix(pred_kp, keypoints, areas, self._sigmas(keypoints.shape[1]), vis_a, vis_b)
            sim = (sim + oks) / 2
        return sim

    def update(self, boxes: np.ndarray, keypoints: np.ndarray | None = None,
               keypoint_scores: np.ndarray | None = None, measured: bool = True) -> np.ndarray:
        """Track one frame's detections: boxes (N, 4) ``[x1, y1, x2, y2]``, optional keypoints (N, K, 2) and
        scores (N, K). Returns the track id (N,) of every detection (ids start at 1, never reused).

        ``measured=False``: the boxes were made from the poses (carried boxes), not measured by a detector, so a
        matched track takes only the keypoints (:meth:`_follow`), not the box (:meth:`_correct`)."""
        self.frame += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        kp = None if keypoints is None or n == 0 else np.asarray(keypoints, np.float64).reshape(n, -1, 2)
        sc = None if keypoint_scores is None or kp is None else np.asarray(keypoint_scores, np.float64).reshape(n, -1)
        vis = None if kp is None else (np.ones(kp.shape[:2], bool) if sc is None else sc > self.kpt_thr)
        ids = np.zeros(n, np.int64)
        if self.tracks and n:
            sim = self.similarity(boxes, kp, sc, self.frame)
            cost = np.where(sim >= self.match_thr, 1.0 - sim, 1e6)
            for r, d in zip(*linear_sum_assignment(cost)):
                if sim[r, d] >= self.match_thr:
                    t = self.tracks[r]
                    if measured:
                        self._correct(t, boxes[d], None if kp is None else kp[d], None if vis is None else vis[d])
                    else:
                        self._follow(t, None if kp is None else kp[d], None if vis is None else vis[d])
                    ids[d] = t.track_id
        for c in np.flatnonzero(ids == 0):
            self.tracks.append(_Track(self._next_id, _to_cxcywh(boxes[c]), np.zeros(4),
                                      None if kp is None else kp[c].copy(), None if vis is None else vis[c],
                                      self.frame, int(measured), [self.frame]))
            ids[c] = self._next_id
            self._next_id += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_age]
        return ids

    def _correct(self, t: _Track, box: np.ndarray, kp: np.ndarray | None, vis: np.ndarray | None) -> None:
        """Alpha-beta update of a matched track: the box is the detection's, the velocity a smoothed
        finite difference over the frames since the last measured box."""
        new = _to_cxcywh(box)
        dt = max(self.frame - t.box_frame, 1)  # since the last measured box (carried frames between do not count)
        measured = (new - t.state) / dt
        a = self.smoothing if t.hits > 1 else 1.0  # the second sighting sets the first velocity
        if t.hits > 0:  # a box made from a pose at birth is no sample of the motion: no velocity from it
            t.velocity = a * measured + (1 - a) * t.velocity
        t.velocity[2:] *= 0.5  # sizes change slowly: damp their drift while coasting
        t.state, t.box_frame, t.hits = new, self.frame, t.hits + 1
        self._follow(t, kp, vis)  # and the keypoints, as on a carried frame

    def _follow(self, t: _Track, kp: np.ndarray | None, vis: np.ndarray | None) -> None:
        """Update of a track matched on a carried frame: the track takes the keypoints; its box and velocity are
        left to the detector's boxes (the box the pose was found in was made from a pose, not measured), and
        :meth:`predict` moves the box on from the last measured one."""
        t.last_frame = self.frame
        if kp is not None:
            t.keypoints, t.visible = kp.copy(), vis
        t.history.append(self.frame)


def pose_boxes(keypoints: np.ndarray, scores: np.ndarray | None = None, kpt_thr: float = 0.0,
               expansion: float = 1.25, min_joints: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) ``[x1, y1, x2, y2]`` of poses (N, K, 2): the extent of the joints scored at least ``kpt_thr``
    (all joints when ``scores`` is None), grown ``expansion`` times about its centre (rtmlib's ``pose_to_bbox``
    uses 1.25). Also returns which poses had at least ``min_joints`` such joints (N,) bool; the others get a
    zero box."""
    kp = np.asarray(keypoints, np.float64).reshape(len(keypoints), -1, 2)
    ok = np.isfinite(kp).all(-1)
    if scores is not None:
        ok &= np.asarray(scores, np.float64).reshape(kp.shape[:2]) >= kpt_thr
    enough = ok.sum(-1) >= min_joints
    lo = np.where(ok[..., None], kp, np.inf).min(axis=1)
    hi = np.where(ok[..., None], kp, -np.inf).max(axis=1)
    lo, hi = np.where(enough[:, None], lo, 0.0), np.where(enough[:, None], hi, 0.0)
    centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.5) * expansion
    boxes = np.where(enough[:, None], np.concatenate((centre - half, centre + half), axis=1), 0.0)
    return boxes, enough


class PoseTracker:
    """A :class:`Tracker` fed by a person detector that runs every ``det_every`` frames (see the module doc).

    Per frame, in order: :meth:`boxes` (the detector's boxes on frames 0, N, 2N, ..., else the boxes carried
    from the previous frame's poses), then the 2D model on those boxes, then :meth:`update` with its poses,
    which returns each person's track id and which poses to keep (all of them on detector frames; on carried
    frames, duplicates of one person dropped). A pose matched on a carried frame gives its track its keypoints
    only (:meth:`Tracker._follow`): only the detector's boxes update the track's box model, so the next detector
    box meets a like-sized predicted box.
    ``detector(frame) -> (boxes (N, 4), scores (N,))``; ``kpt_thr``: least joint score that counts in a carried
    box (None: the running estimator's ``default_kpt_thr``, 0.3 outside one); ``expansion``: the carried box's
    growth factor; ``tracker_args`` go to :class:`Tracker`.
    """

    def __init__(self, detector: Any, det_every: int = 1, kpt_thr: float | None = None, expansion: float = 1.25,
                 dedup_iou: float = 0.6, **tracker_args: Any) -> None:
        self.detector, self.det_every = detector, check_count(det_every, option("det_every"))
        # None: the estimator's default_kpt_thr when a PoseEstimator runs it (0.3 anywhere else); a fixed 0.3 lost
        # every GTPT person on carried frames (its SimCC scores peak near 0.1)
        self.kpt_thr = None if kpt_thr is None else float(kpt_thr)
        self.fallback_thr = 0.3  # kpt_thr None: this, which each PoseEstimator run sets to its default_kpt_thr
        self.expansion, self.dedup_iou = float(expansion), float(dedup_iou)
        self.tracker = Tracker(**tracker_args)
        self.frames = 0  # frames whose boxes were asked for
        self.detector_frames = 0
        self.carried = False  # whether the current frame's boxes were carried
        self._carry: tuple[np.ndarray, np.ndarray] | None = None  # boxes and box scores for the next frame

    @property
    def _thr(self) -> float:
        return self.fallback_thr if self.kpt_thr is None else self.kpt_thr

    @property
    def needs_feedback(self) -> bool:
        """Whether a frame's boxes depend on the previous frame's poses (``det_every > 1``): the 2D model must
        then finish each frame before the next frame's boxes are made."""
        return self.det_every > 1

    def boxes(self, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        """The person boxes (N, 4) and scores (N,) of the next frame."""
        n = self.frames
        self.frames += 1
        self.carried = n % self.det_every != 0 and self._carry is not None
        if not self.carried:
            self.detector_frames += 1
            return self.detector(frame)
        return self._carry  # type: ignore[return-value]

    __call__ = boxes

    def update(self, boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
               box_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Track one frame's poses (N, K, 2) with scores (N, K), found in ``boxes`` (N, 4). Returns the track id
        (N,) of every pose (0 for a dropped one) and the poses kept (N,) bool."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:  # nobody in this frame: the tracks age, nothing to carry
            self.tracker.update(boxes)
            self._carry = (np.zeros((0, 4)), np.zeros(0))
            return np.zeros(0, np.int64), np.zeros(0, bool)
        kp = np.asarray(keypoints, np.float64).reshape(len(boxes), -1, 2)
        sc = np.asarray(scores, np.float64).reshape(kp.shape[:2])
        bs = np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, np.float64).reshape(-1)
        keep = np.ones(len(boxes), bool)
        if self.carried and len(boxes) > 1:  # two carried boxes that found one person: keep the better pose
            pb, _ = pose_boxes(kp, sc, self._thr, 1.0)
            iou = box_iou(pb, pb)
            for i in np.argsort(-np.mean(sc, axis=1), kind="stable"):
                if keep[i]:
                    dup = (iou[i] >= self.dedup_iou) & keep
                    dup[i] = False
                    keep &= ~dup
        ids = np.zeros(len(boxes), np.int64)
        ids[keep] = self.tracker.update(boxes[keep], kp[keep], sc[keep], measured=not self.carried)
        carry, found = pose_boxes(kp[keep], sc[keep], self._thr, self.expansion)
        vel = {t.track_id: t.velocity[:2] for t in self.tracker.tracks}
        shift = np.array([vel.get(int(i), np.zeros(2)) for i in ids[keep]]).reshape(-1, 2)
        carry = carry + np.concatenate((shift, shift), axis=1)
        self._carry = (carry[found], bs[keep][found])
        return ids, keep


def instance_boxes(instances: Sequence[dict[str, Any]]) -> np.ndarray:
    """(N, 4) ``[x1, y1, x2, y2]`` of ``infer`` instances: their ``bbox`` when it is a finite box with area, else
    the extent of their keypoints (grown to at least 1 pixel)."""
    out = np.zeros((len(instances), 4))
    for i, inst in enumerate(instances):
        b = np.asarray(inst.get("bbox", ()), np.float64).reshape(-1)
        if b.shape == (4,) and np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1]:
            out[i] = b
            continue
        k = np.asarray(inst["keypoints"], np.float64).reshape(-1, 2)
        k = k[np.isfinite(k).all(axis=1)]
        lo, hi = (k.min(axis=0), k.max(axis=0)) if len(k) else (np.zeros(2), np.zeros(2))
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.5)
        out[i] = np.concatenate((centre - half, centre + half))
    return out


def track_records(records: Sequence[dict[str, Any]], use_keypoints: bool = True, **tracker_args: Any) -> list[list[int]]:
    """Track the people of frame records (``infer``'s json: ``{"instances": [{"bbox", "keypoints",
    "keypoint_scores"}, ...]}`` per frame, in frame order). Returns, per frame, the track id of each instance.
    ``tracker_args`` go to :class:`Tracker` (``layout`` defaults to the records' ``keypoint_layout``)."""
    if "layout" not in tracker_args:
        layouts = {r.get("keypoint_layout") for r in records} - {None}
        tracker_args["layout"] = layouts.pop() if len(layouts) == 1 else "coco"
    tracker = Tracker(**tracker_args)
    out: list[list[int]] = []
    for r in records:
        insts = r["instances"]
        boxes = instance_boxes(insts)
        kp = sc = None
        if use_keypoints and insts:
            kp = np.stack([np.asarray(i["keypoints"], np.float64) for i in insts])
            sc = np.stack([np.asarray(i["keypoint_scores"], np.float64) for i in insts]) \
                if all("keypoint_scores" in i for i in insts) else None
        out.append(tracker.update(boxes, kp, sc).tolist())
    return out


def tracks_of(ids: Sequence[Sequence[int]]) -> dict[int, dict[int, int]]:
    """Per-frame instance ids (from :func:`track_records`) to ``{track id: {frame index: instance index}}``,
    tracks in order of their first frame."""
    tracks: dict[int, dict[int, int]] = {}
    for t, frame_ids in enumerate(ids):
        for i, tid in enumerate(frame_ids):
            tracks.setdefault(int(tid), {})[t] = i
    return tracks
