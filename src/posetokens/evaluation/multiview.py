"""Multi-view 2D/3D metrics (numpy): joint detection rate (JDR) and MPJPE of triangulated joints.

* :func:`joint_detection_rate`: the fraction of (sample, view) joints whose predicted 2D point, in
  original-image pixels, is within ``threshold`` of the ground truth (distance <= threshold), per joint
  and averaged over joints. The default 12.8 px is multi-view PPT's (and Qiu et al.'s) "half head size",
  0.5 x 256 / 10, a fixed radius in the 1000-px H36M frames.
* :func:`triangulated_mpjpe`: triangulates the per-view predictions (:mod:`posetokens.geometry`) and scores
  them with :func:`posetokens.evaluation.pose3d.mpjpe` (no root alignment, as the official code); invisible
  joints count as 0 error when their visibility is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posetokens.evaluation.pose3d import mpjpe
from posetokens.geometry import triangulate_dlt, triangulate_ransac

__all__ = ["JDR_THRESHOLD_PX", "joint_detection_rate", "masked_mpjpe", "triangulated_mpjpe"]

JDR_THRESHOLD_PX = 0.5 * 256 / 10  # 12.8 px


def joint_detection_rate(
    pred: Any, gt: Any, threshold: float = JDR_THRESHOLD_PX, mask: Any | None = None
) -> tuple[np.ndarray, float]:
    """JDR of 2D predictions (..., J, 2) against ground truth (..., J, 2), both in original-image pixels.

    ``mask`` (..., J) leaves unlabelled joints out. Returns ``(per_joint (J,), mean over joints)``, as
    fractions in [0, 1]; a joint never labelled gets NaN and is left out of the mean.
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.shape[-1] != 2:
        raise ValueError(f"joint_detection_rate: pred and gt must both be (..., J, 2), got {p.shape} and {g.shape}")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise ValueError("joint_detection_rate: non-finite predictions or ground truth")
    m = np.ones(p.shape[:-1], dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), p.shape[:-1])
    hit = (np.linalg.norm(p - g, axis=-1) <= threshold) & m
    hits = hit.reshape(-1, p.shape[-2]).sum(axis=0)
    counts = m.reshape(-1, p.shape[-2]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    if not (counts > 0).any():
        raise ValueError("joint_detection_rate: no labelled joint")
    return per_joint, float(np.nanmean(per_joint))


def triangulated_mpjpe(
    pred2d: Any,
    P: Any,
    gt3d: Any,
    weights: Any | None = None,
    ransac_threshold: float | None = None,
    scale: float = 1.0,
    visible: Any | None = None,
) -> tuple[float, np.ndarray]:
    """Triangulate per-view 2D predictions (..., V, J, 2) with cameras P (..., V, 3, 4) and score against
    ``gt3d`` (..., J, 3) (same unit as the cameras; ``scale`` converts, e.g. 1000 for metres -> mm).

    ``weights`` (..., V, J): confidences for the weighted DLT; ``ransac_threshold`` (px) turns on RANSAC
    over views; ``visible`` (..., J): a joint not visible counts as 0 error and still counts in the mean over
    the J joints (the official ``estimate_tri`` multiplies both poses by the visibility). Returns
    ``(MPJPE, triangulated points)``.
    """
    if ransac_threshold is None:
        points = triangulate_dlt(pred2d, P, weights)
    else:
        points, _ = triangulate_ransac(pred2d, P, weights, threshold=ransac_threshold)
    if visible is None:
        return float(mpjpe(points, gt3d, scale=scale)), points
    return float(masked_mpjpe(points, gt3d, visible, scale).mean()), points


def masked_mpjpe(points: Any, gt3d: Any, visible: Any, scale: float = 1.0) -> np.ndarray:
    """Per-sample MPJPE (...,) of ``points`` against ``gt3d`` (..., J, 3) where a joint not ``visible`` (..., J)
    counts as 0 error and stays in the mean over the J joints (the official multi-view ``estimate_tri``)."""
    p, g = np.asarray(points, np.float64), np.asarray(gt3d, np.float64)
    seen = np.asarray(visible, dtype=bool)
    if seen.shape != p.shape[:-1]:
        raise ValueError(f"triangulated_mpjpe: visible must be (..., J) = {p.shape[:-1]}, got {seen.shape}")
    return np.where(seen, np.linalg.norm(p - g, axis=-1) * scale, 0.0).mean(axis=-1)
