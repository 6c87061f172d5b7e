"""Pure-numpy keypoint evaluation: OKS, OKS-NMS, rescoring, PCK and MPII PCKh.

Everything here is stateless and takes plain arrays; the stateful metrics in :mod:`.coco` and
:mod:`.pck` accumulate predictions and call these functions.

Conventions
-----------
* OKS follows COCO: ``e_k = d_k**2 / (2 * s**2 * (2*sigma_k)**2)`` with ``s**2`` the object area, and the
  OKS is the mean of ``exp(-e_k)`` over the counted joints.
* PCK (:func:`pck_accuracy`) follows MMPose: a joint is correct when its normalised distance is
  *strictly below* ``thr``; joints without any valid sample get ``-1``.
* PCKh (:func:`pckh`) follows the MPII evaluation script: correct when the head-normalised distance is
  ``<= thr``; values are reported in **percent**.
* Rescoring and OKS-NMS follow the official HRNet-family code (``lib/dataset/coco.py``, ``lib/nms/nms.py``;
  spec ``pipeline.md`` §1.7): the rescored score is ``box score × mean(joint scores > thr)`` (0 when none
  passes), summed in joint order; OKS-NMS visits instances in ``np.argsort(scores)[::-1]`` order (numpy's
  default sort, reversed, so tied scores are *not* kept in input order: the later instance comes first),
  counts all K joints and takes each instance's area from the caller (the padded box ``prod(scale)``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from posetokens.runtime import warn_once

logger = logging.getLogger(__name__)

__all__ = [
    "MPII_PCKH_THRESHOLDS",
    "MPII_REPORT_GROUPS",
    "NMS_AREA_MODES",
    "compute_oks",
    "head_size_from_boxes",
    "instance_area",
    "keypoint_extent_area",
    "nms_areas",
    "oks_matrix",
    "oks_nms",
    "oks_nms_arrays",
    "pck_accuracy",
    "pckh",
    "pckh_per_joint",
    "rescore",
]

_EPS = np.spacing(1)

# MPII-16 joint order: 0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 6 pelvis, 7 thorax,
# 8 upper_neck, 9 head_top, 10 r_wrist, 11 r_elbow, 12 r_shoulder, 13 l_shoulder, 14 l_elbow, 15 l_wrist.
MPII_REPORT_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
# The MPII "Mean" (and "Mean@0.1") leaves out pelvis and thorax, as the official script does.
_MPII_MEAN_EXCLUDED = (6, 7)
#: the thresholds of the official MPII script's ``pckAll`` table, ``np.arange(0, 0.51, 0.01)``; its
#: "Mean@0.1" reads row 11 (0.11) in HRNet/TokenPose/PPT, row 10 (0.10) in GTPT (spec §1.8)
MPII_PCKH_THRESHOLDS: np.ndarray = np.arange(0, 0.5 + 0.01, 0.01)
#: how OKS-NMS gets each instance's area: ``box`` the result's ``area`` field (official: the padded box
#: ``prod(scale)``), ``keypoints`` the keypoint extent, ``auto`` the ``area`` field, else ``bbox`` w×h, else
#: the keypoint extent (the behaviour before protocols existed)
NMS_AREA_MODES = ("box", "keypoints", "auto")


# ----------------------------------------------------------------------------------------------- OKS
def compute_oks(
    kpts_a: ArrayLike,
    kpts_b: ArrayLike,
    area: float,
    sigmas: ArrayLike,
    vis_thr: float | None = None,
) -> float | np.ndarray:
    """OKS of prediction(s) ``kpts_a`` against one reference instance ``kpts_b``.

    Args:
        kpts_a: predictions, ``(K, 2|3)`` or batched ``(N, K, 2|3)``; a third column is a score.
        kpts_b: the reference, ``(K, 3)`` with ``x, y, v``; joints with ``v > 0`` are counted (COCO GT).
        area: the reference object's area (COCO ``area``), the ``s**2`` in the OKS formula.
        sigmas: ``(K,)`` per-joint sigmas (e.g. COCO ``.026 ... .089``).
        vis_thr: if given (and ``kpts_a`` has scores), a joint is counted only when both its reference
            ``v`` and its predicted score exceed ``vis_thr``.

    Returns:
        A float for a single prediction, else an ``(N,)`` array. An instance with no counted joint scores 0.
    """
    a = np.asarray(kpts_a, dtype=np.float64)
    b = np.asarray(kpts_b, dtype=np.float64)
    sig = np.asarray(sigmas, dtype=np.float64)
    single = a.ndim == 2
    a = a[None] if single else a
    if b.ndim != 2 or b.shape[1] < 3:
        raise ValueError(f"compute_oks: kpts_b must be (K, 3) with visibility, got shape {b.shape}")
    if a.shape[1] != b.shape[0] or sig.shape != (b.shape[0],):
        raise ValueError(
            f"compute_oks: keypoint counts differ: kpts_a {a.shape}, kpts_b {b.shape}, sigmas {sig.shape}"
        )
    d2 = ((a[..., :2] - b[None, :, :2]) ** 2).sum(-1)  # (N, K)
    e = d2 / ((2.0 * sig) ** 2) / (float(area) + _EPS) / 2.0
    mask = np.broadcast_to(b[None, :, 2] > 0, d2.shape)
    if vis_thr is not None:
        mask = mask & (b[None, :, 2] > vis_thr)
        if a.shape[-1] >= 3:
            mask = mask & (a[..., 2] > vis_thr)
    n = mask.sum(-1)
    oks = np.where(n > 0, (np.exp(-e) * mask).sum(-1) / np.maximum(n, 1), 0.0)
    return float(oks[0]) if single else oks


def oks_matrix(
    keypoints: ArrayLike,
    areas: ArrayLike,
    sigmas: ArrayLike,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Pairwise OKS between ``N`` instances of one image, as used by OKS-NMS (MMPose ``oks_iou``).

    The scale of a pair is the mean of the two areas. All joints are counted, or, when ``vis_thr`` is
    given, only the joints whose scores exceed it in both instances.

    Args:
        keypoints: ``(N, K, 3)`` ``x, y, score``.
        areas: ``(N,)`` instance areas.
        sigmas: ``(K,)`` per-joint sigmas.
        vis_thr: optional score threshold for counting a joint.

    Returns:
        ``(N, N)`` symmetric OKS matrix (pairs with no counted joint get 0).
    """
    k = np.asarray(keypoints, dtype=np.float64)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    sig = np.asarray(sigmas, dtype=np.float64)
    if k.ndim != 3 or k.shape[-1] < 3 or k.shape[1] != sig.shape[0] or ar.shape[0] != k.shape[0]:
        raise ValueError(
            f"oks_matrix: expected keypoints (N, K, 3), areas (N,), sigmas (K,); got {k.shape}, "
            f"{ar.shape}, {sig.shape}"
        )
    every = np.arange(len(k))
    return _oks_block(k, ar, sig, every, every, vis_thr)


def _oks_block(k: np.ndarray, ar: np.ndarray, sig: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               vis_thr: float | None) -> np.ndarray:
    """The ``(rows, cols)`` block of :func:`oks_matrix` (checked arrays): OKS-NMS takes one row at a time, so its
    memory grows with N x K, not N x N x K (42,000 duplicates on one image took 23 GB)."""
    a, b = k[rows], k[cols]
    d2 = ((a[:, None, :, :2] - b[None, :, :, :2]) ** 2).sum(-1)  # (R, C, K)
    scale = (ar[rows][:, None] + ar[cols][None, :]) / 2.0 + _EPS
    e = d2 / ((2.0 * sig) ** 2) / scale[..., None] / 2.0
    if vis_thr is None:
        return np.exp(-e).mean(-1)
    mask = (a[..., 2] > vis_thr)[:, None, :] & (b[..., 2] > vis_thr)[None, :, :]
    n = mask.sum(-1)
    return np.where(n > 0, (np.exp(-e) * mask).sum(-1) / np.maximum(n, 1), 0.0)


def oks_nms_arrays(
    keypoints: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    sigmas: ArrayLike,
    thr: float = 0.9,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS over the instances of ONE image.

    Instances are visited in the official order ``np.argsort(scores)[::-1]`` (numpy's default sort,
    reversed: decreasing score, and tied scores not in input order, e.g. of two equal scores the later
    instance comes first); each kept instance suppresses every remaining instance whose OKS with it is
    ``> thr`` (official ``oks_nms``, which keeps those ``<= thr``: an OKS that is NaN, from NaN keypoints,
    suppresses; ``evaluate`` refuses non-finite inputs before). Memory grows with N x K (one OKS row at a time).

    Args:
        keypoints: ``(N, K, 3)``; scores: ``(N,)``; areas: ``(N,)``; sigmas: ``(K,)``.
        thr: OKS above which an instance is a duplicate (MMPose default 0.9).
        vis_thr: optional per-joint score threshold, see :func:`oks_matrix`.

    Returns:
        Indices of the kept instances, ``int64``, in visiting (decreasing-score) order.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    k = np.asarray(keypoints, dtype=np.float64)
    ar = np.asarray(areas, dtype=np.float64).reshape(-1)
    sig = np.asarray(sigmas, dtype=np.float64)
    if k.ndim != 3 or k.shape[-1] < 3 or k.shape[1] != sig.shape[0] \
            or len({k.shape[0], ar.shape[0], s.shape[0]}) != 1:
        raise ValueError(f"oks_nms_arrays: expected keypoints (N, K, 3), scores (N,), areas (N,), sigmas (K,); got "
                         f"{k.shape}, {s.shape}, {ar.shape}, {sig.shape}")
    order = np.argsort(s)[::-1]  # the official order, ties included (do not make this stable)
    keep: list[int] = []
    while order.size:  # the official loop: the first kept suppresses the rest above thr, one OKS row at a time
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[_oks_block(k, ar, sig, order[:1], rest, vis_thr)[0] <= thr]
    return np.asarray(keep, dtype=np.int64)


def keypoint_extent_area(keypoints: ArrayLike) -> np.ndarray | float:
    """Area of the keypoints' bounding box over all joints, ``ptp(x) * ptp(y)`` (what pycocotools' ``loadRes``
    gives a result without ``bbox``). ``(K, 2|3)`` gives a float, ``(N, K, 2|3)`` an ``(N,)`` array."""
    k = np.asarray(keypoints, dtype=np.float64)
    out = np.ptp(k[..., 0], axis=-1) * np.ptp(k[..., 1], axis=-1)
    return float(out) if k.ndim == 2 else out


def instance_area(inst: Mapping[str, Any], keypoints: np.ndarray | None = None) -> float:
    """The ``auto`` OKS-NMS area of a prediction dict (see :data:`NMS_AREA_MODES`).

    ``inst['area']`` if given, else ``w*h`` of ``inst['bbox']`` (xywh), else the area of the keypoints'
    bounding box (COCO's convention for results without a box).
    """
    if inst.get("area") is not None:
        return float(inst["area"])
    if inst.get("bbox") is not None:
        b = np.asarray(inst["bbox"], dtype=np.float64).reshape(-1)
        return float(b[2] * b[3])
    k = np.asarray(inst["keypoints"] if keypoints is None else keypoints, dtype=np.float64)
    k = k.reshape(-1, 3) if k.ndim == 1 else k
    return float(keypoint_extent_area(k[:, :2]))


def nms_areas(
    instances: Sequence[Mapping[str, Any]],
    keypoints: np.ndarray,
    nms_area: str = "box",
    where: Sequence[str] | None = None,
) -> np.ndarray:
    """The OKS-NMS area of each instance under ``nms_area`` (one of :data:`NMS_AREA_MODES`).

    Args:
        instances: result dicts; ``nms_area='box'`` reads their ``area`` field (the official padded-box area
            ``prod(scale)``, e.g. from :func:`~.coco.to_coco_results` ``areas=``).
        keypoints: ``(N, K, 2|3)`` their keypoints (for ``keypoints`` / ``auto``).
        nms_area: ``box``, ``keypoints`` or ``auto``.
        where: a label per instance for error messages (e.g. ``"predictions: entry [3]"``).

    Raises:
        ValueError: under ``box``, for the first instance without a finite positive ``area``, naming the
            entry and the field, with the hint to pass ``nms_area='keypoints'``.
    """
    if nms_area not in NMS_AREA_MODES:
        raise ValueError(f"nms_area must be one of {list(NMS_AREA_MODES)}, got {nms_area!r}")
    k = np.asarray(keypoints, dtype=np.float64)
    if nms_area == "keypoints":
        return np.asarray(keypoint_extent_area(k[..., :2]), dtype=np.float64).reshape(-1)
    if nms_area == "auto":
        return np.asarray([instance_area(r, kk) for r, kk in zip(instances, k)], dtype=np.float64)
    out = np.empty(len(instances), dtype=np.float64)
    for i, r in enumerate(instances):
        a = r.get("area")
        if a is None or not np.isfinite(float(a)) or float(a) <= 0:
            label = where[i] if where is not None else f"instance [{i}]"
            got = "missing" if a is None else f"{a!r}"
            raise ValueError(
                f"{label}: field 'area' is {got}; OKS-NMS with nms_area='box' (the official rule) takes each "
                "result's padded-box area prod(scale) from 'area' (to_coco_results(areas=...)); pass "
                "nms_area='keypoints' to use the keypoint extent instead, or, for results already rescored and "
                "NMS'd (what the official code writes), rescore_thr=None and nms_thr=None to score them as they are"
            )
        out[i] = float(a)
    return out


def _instance_keypoints(inst: Mapping[str, Any]) -> np.ndarray:
    k = np.asarray(inst["keypoints"], dtype=np.float64)
    if k.ndim == 1:
        k = k.reshape(-1, 3)
    if k.shape[-1] == 2:
        sc = inst.get("keypoint_scores")
        sc = np.ones(k.shape[0]) if sc is None else np.asarray(sc, dtype=np.float64).reshape(-1)
        k = np.concatenate([k, sc[:, None]], axis=1)
    return k


def oks_nms(
    instances: Sequence[Mapping[str, Any]],
    sigmas: ArrayLike,
    thr: float = 0.9,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS-NMS over a list of instance dicts of ONE image (MMPose ``oks_nms`` interface).

    Each instance has ``keypoints`` (``(K, 3)`` or flat ``3K``, or ``(K, 2)`` plus ``keypoint_scores``),
    ``score``, and optionally ``area``/``bbox`` (see :func:`instance_area`).

    Returns:
        Indices of the kept instances in decreasing-score order.
    """
    if len(instances) == 0:
        return np.zeros(0, dtype=np.int64)
    kpts = np.stack([_instance_keypoints(x) for x in instances])
    scores = np.asarray([float(x["score"]) for x in instances])
    areas = np.asarray([instance_area(x, k) for x, k in zip(instances, kpts)])
    return oks_nms_arrays(kpts, scores, areas, sigmas, thr=thr, vis_thr=vis_thr)


def rescore(keypoint_scores: ArrayLike, bbox_score: ArrayLike, thr: float = 0.2) -> np.ndarray | float:
    """Official (HRNet ``COCODataset.evaluate``; MMPose ``bbox_keypoint``) rescoring: box score × mean of the
    keypoint scores above ``thr``, or 0 when no joint passes.

    The sum runs in joint order in float64, as the official Python loop adds them (so equal inputs give
    bit-equal scores and the tie order of OKS-NMS is the official one).

    Args:
        keypoint_scores: ``(K,)`` or ``(N, K)``.
        bbox_score: scalar or ``(N,)``.
        thr: joints with score ``> thr`` enter the mean (TokenPose/PCT/MMPose 0.2, GTPT 0.01:
            ``EvalRule.rescore_thr``).

    Returns:
        A float for one instance, else ``(N,)``.
    """
    s = np.asarray(keypoint_scores, dtype=np.float64)
    single = s.ndim == 1
    s = s[None] if single else s
    mask = s > thr
    n = mask.sum(-1)
    total = np.cumsum(np.where(mask, s, 0.0), axis=-1)[..., -1] if s.shape[-1] else np.zeros(s.shape[:-1])
    kpt = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    out = kpt * np.asarray(bbox_score, dtype=np.float64).reshape(-1)
    return float(out[0]) if single else out


# ----------------------------------------------------------------------------------------------- PCK
def _normalized_distances(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: ArrayLike) -> np.ndarray:
    """``||(pred - gt) / norm||`` per joint, ``(N, K)``; ``-1`` where masked out or ``norm`` is 0."""
    n, k = mask.shape
    nrm = np.asarray(norm, dtype=np.float64)
    if nrm.ndim == 0:
        nrm = np.full((n, 2), float(nrm))
    elif nrm.ndim == 1:
        nrm = np.repeat(nrm.reshape(n, 1), 2, axis=1)
    nrm = nrm.reshape(n, 2)
    valid = mask & np.all(nrm > 0, axis=1, keepdims=True)
    safe = np.where(nrm > 0, nrm, 1.0)
    d = np.linalg.norm((pred - gt) / safe[:, None, :], axis=-1)
    return np.where(valid, d, -1.0)


def pck_accuracy(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike,
    thr: float,
    norm: ArrayLike,
) -> tuple[np.ndarray, float, int]:
    """PCK: per-joint and mean fraction of joints within ``thr`` × normaliser (MMPose semantics).

    Args:
        pred, gt: ``(N, K, 2)`` keypoints.
        mask: ``(N, K)`` bool, joints to evaluate.
        thr: threshold on the normalised distance (strictly below counts as correct).
        norm: normaliser, scalar, ``(N,)`` (same for x and y) or ``(N, 2)`` (per axis), e.g. the bbox
            size for PCK@bbox or the head size for PCKh. Samples with a zero normaliser are skipped.

    Returns:
        ``(per_joint (K,), mean, count)``: per-joint accuracy in [0, 1] with ``-1`` for joints without a
        valid sample; the mean over joints that have one (0 if none); the number of valid joints.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    d = _normalized_distances(p, g, m, norm)
    valid = d >= 0
    n_valid = valid.sum(0)
    correct = ((d < thr) & valid).sum(0)
    acc = np.where(n_valid > 0, correct / np.maximum(n_valid, 1), -1.0)
    has = acc >= 0
    mean = float(acc[has].mean()) if has.any() else 0.0
    return acc, mean, int(has.sum())


def head_size_from_boxes(head_boxes: ArrayLike, sc_bias: float = 0.6) -> np.ndarray:
    """MPII head-size normaliser: ``sc_bias`` × diagonal of the head box.

    Args:
        head_boxes: ``(N, 4)`` ``x1, y1, x2, y2`` or ``(N, 2, 2)`` ``[[x1, y1], [x2, y2]]``.
        sc_bias: 0.6 in the official MPII evaluation.

    Returns:
        ``(N,)`` head sizes.
    """
    hb = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 2, 2)
    return np.linalg.norm(hb[:, 1] - hb[:, 0], axis=-1) * sc_bias


def _head_normalized_errors(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, head_size: np.ndarray) -> np.ndarray:
    """``||pred - gt|| / head_size`` per joint, ``(N, K)``, in the official script's order of operations
    (norm first, then the division, so joints placed exactly on a threshold ring count as the official
    code counts them); ``-1`` where masked out. A head size of 0 gives ``inf``: the official script divides by
    it, so such a sample's joints count and are never correct (:func:`pckh` says how many); a negative or
    non-finite head size is refused."""
    bad = np.flatnonzero(~np.isfinite(head_size) | (head_size < 0))
    if len(bad):
        raise ValueError(f"pckh: head size {head_size[bad[0]]} of sample {bad[0]} is negative or not finite; expected "
                         "0.6 x the head box's diagonal (>= 0)")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.linalg.norm(pred - gt, axis=-1) / head_size[:, None]
    d = np.where(head_size[:, None] > 0, d, np.inf)  # 0 / 0 too: the official NaN is never <= a threshold
    return np.where(mask, d, -1.0)


def pckh_per_joint(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike,
    head_size: ArrayLike,
    thr: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh in percent, MPII-script semantics (correct when ``||pred - gt|| / head_size <= thr``).

    Args:
        pred, gt: ``(N, K, 2)`` in the same pixel convention (the official script adds 1 to 0-based
            predictions to compare them with the 1-based Matlab GT; only rounding depends on it);
            mask: ``(N, K)`` labelled joints; head_size: ``(N,)``.
        thr: threshold on the head-normalised distance (0.5 for PCKh@0.5).

    Returns:
        ``(pckh (K,), count (K,))``: percent correct per joint (``-1`` where ``count`` is 0) and the number
        of evaluated joints. A sample with a head size of 0 counts, never correct (the official division by 0).
    """
    p = np.asarray(pred, dtype=np.float64)[..., :2]
    g = np.asarray(gt, dtype=np.float64)[..., :2]
    m = np.asarray(mask, dtype=bool)
    hs = np.asarray(head_size, dtype=np.float64).reshape(-1)
    if p.shape != g.shape or m.shape != p.shape[:2] or hs.shape != p.shape[:1]:
        raise ValueError(f"pckh: shapes differ: pred {p.shape}, gt {g.shape}, mask {m.shape}, head_size {hs.shape}")
    d = _head_normalized_errors(p, g, m, hs)
    valid = d >= 0
    count = valid.sum(0)
    correct = ((d <= thr) & valid).sum(0)
    return np.where(count > 0, 100.0 * correct / np.maximum(count, 1), -1.0), count


def _mpii_report(pck: np.ndarray, count: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, idx in MPII_REPORT_GROUPS.items():
        vals = [pck[i] for i in idx if count[i] > 0]
        out[name] = float(np.mean(vals)) if vals else -1.0
    out["Mean"] = _mpii_mean(pck, count)
    return out


def _mpii_mean(pck: np.ndarray, count: np.ndarray) -> float:
    """Count-weighted mean over the joints, pelvis and thorax masked (official ``jnt_ratio``)."""
    w = count.astype(np.float64).copy()
    w[list(_MPII_MEAN_EXCLUDED)] = 0.0
    return float((np.where(w > 0, pck, 0.0) * w).sum() / w.sum()) if w.sum() > 0 else -1.0


def pckh(
    pred: ArrayLike,
    gt: ArrayLike,
    mask: ArrayLike,
    head_size: ArrayLike | None = None,
    head_boxes: ArrayLike | None = None,
    thr: float = 0.5,
    sc_bias: float = 0.6,
    mean01_thr: float = 0.1,
) -> dict[str, float]:
    """MPII PCKh report (percent): Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1.

    Groups are the mean of the left/right joints (a side without labelled joints is left out). ``Mean`` is
    the count-weighted mean over all joints except pelvis (6) and thorax (7), as in the official MPII
    script. A group with no labelled joint reports ``-1``.

    The "Mean@0.1" of the official script is ``pckAll[11]`` of ``np.arange(0, 0.51, 0.01)``, i.e. the
    threshold **0.11** (HRNet/TokenPose/PPT; GTPT's copy and MMPose read 0.10). Both readings are
    reported under their own keys, and ``mean01_thr`` (a protocol's ``EvalRule.pckh_mean01_thr``) selects
    which one is reported as ``Mean@0.1``:

    * ``Mean@0.10``: the Mean at threshold exactly 0.1;
    * ``Mean@0.11``: the Mean at 0.11, the official HRNet-family reading of "Mean@0.1";
    * ``Mean@0.1``: the Mean at ``mean01_thr``.

    Args:
        pred, gt: ``(N, 16, 2)`` in the MPII joint order, same pixel convention; mask: ``(N, 16)``
            labelled joints.
        head_size: ``(N,)`` normaliser; or ``head_boxes`` (``(N, 4)``/``(N, 2, 2)``), from which
            ``sc_bias`` × diagonal is used.
        thr: threshold for the main report (0.5).
        mean01_thr: the threshold reported as ``Mean@0.1`` (0.1 exact by default; 0.11 for the official
            TokenPose/PPT number).

    Returns:
        A dict of floats (percent), plus ``"PCKh"`` (= ``Mean``).
    """
    if head_size is None:
        if head_boxes is None:
            raise ValueError("pckh: give head_size or head_boxes")
        head_size = head_size_from_boxes(head_boxes, sc_bias)
    k = np.asarray(gt).shape[1]
    if k != 16:
        raise ValueError(f"pckh: the MPII report needs the 16 MPII joints, got K={k}; use pckh_per_joint")
    zero = np.flatnonzero(np.asarray(head_size, np.float64).reshape(-1) == 0)
    if len(zero):
        warn_once(logger, "pckh: %d sample(s) with a head size of 0 (the first: sample %d): their labelled joints "
                  "count as wrong, as the official MPII script's division by 0 makes them", len(zero), zero[0])
    pck, count = pckh_per_joint(pred, gt, mask, head_size, thr)
    out = _mpii_report(pck, count)
    out["PCKh"] = out["Mean"]
    readings = {"Mean@0.10": float(MPII_PCKH_THRESHOLDS[10]), "Mean@0.11": float(MPII_PCKH_THRESHOLDS[11])}
    for key, t in readings.items():
        out[key] = _mpii_mean(*pckh_per_joint(pred, gt, mask, head_size, t))
    chosen = next((key for key, t in readings.items() if t == float(mean01_thr)), None)
    out["Mean@0.1"] = (out[chosen] if chosen is not None
                       else _mpii_mean(*pckh_per_joint(pred, gt, mask, head_size, float(mean01_thr))))
    return out
