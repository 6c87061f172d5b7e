"""Stateful PCK / PCKh metrics: accumulate batches, then call the functional code once."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .functional import head_size_from_boxes, pck_accuracy, pckh

__all__ = ["MpiiPCKh", "PCKAccuracy", "bbox_size_norm"]


def bbox_size_norm(bboxes: ArrayLike) -> np.ndarray:
    """PCK@bbox normaliser (MMPose): ``max(w, h)`` of each xywh box, repeated for x and y, ``(N, 2)``."""
    b = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    m = np.maximum(b[:, 2], b[:, 3])
    return np.stack([m, m], axis=1)


class _Accumulator:
    def __init__(self) -> None:
        self._pred: list[np.ndarray] = []
        self._gt: list[np.ndarray] = []
        self._mask: list[np.ndarray] = []
        self._norm: list[np.ndarray] = []

    def reset(self) -> None:
        """Drop everything accumulated (the settings stay)."""
        self._pred, self._gt, self._mask, self._norm = [], [], [], []

    def _add(self, pred: ArrayLike, gt: ArrayLike, mask: ArrayLike, norm: np.ndarray) -> None:
        p = np.asarray(pred, dtype=np.float64)[..., :2]
        g = np.asarray(gt, dtype=np.float64)[..., :2]
        m = np.asarray(mask).astype(bool)
        if p.shape != g.shape or m.shape != p.shape[:2]:
            raise ValueError(f"shapes differ: pred {p.shape}, gt {g.shape}, mask {m.shape}")
        self._pred.append(p)
        self._gt.append(g)
        self._mask.append(m)
        self._norm.append(norm.reshape(p.shape[0], -1))

    def _cat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self._pred:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update()")
        return (
            np.concatenate(self._pred),
            np.concatenate(self._gt),
            np.concatenate(self._mask),
            np.concatenate(self._norm),
        )


class PCKAccuracy(_Accumulator):
    """PCK with a per-sample normaliser (bbox size, head size, torso size ...), MMPose semantics.

    Args:
        thr: threshold on the normalised distance (0.05 for PCK@0.05 with the bbox normaliser).
    """

    def __init__(self, thr: float = 0.05) -> None:
        super().__init__()
        self.thr = thr

    def update(self, pred: ArrayLike, gt: ArrayLike, mask: ArrayLike, norm: ArrayLike) -> None:
        """Add a batch: ``pred, gt (N, K, 2)``, ``mask (N, K)``, ``norm`` ``(N,)`` or ``(N, 2)``."""
        n = np.asarray(pred).shape[0]
        nrm = np.asarray(norm, dtype=np.float64)
        nrm = np.repeat(nrm.reshape(n, 1), 2, axis=1) if nrm.size == n else nrm.reshape(n, 2)
        self._add(pred, gt, mask, nrm)

    def compute(self) -> dict[str, float | np.ndarray]:
        """``{'PCK': mean, 'per_joint': (K,) array with -1 for joints without samples}``."""
        p, g, m, nrm = self._cat()
        acc, mean, _ = pck_accuracy(p, g, m, self.thr, nrm)
        return {"PCK": mean, "per_joint": acc}


class MpiiPCKh(_Accumulator):
    """MPII PCKh (percent): Head ... Ankle, Mean, Mean@0.1 (plus both readings ``Mean@0.10`` and
    ``Mean@0.11``); see :func:`~.functional.pckh`.

    Args:
        thr: 0.5 for PCKh@0.5.
        sc_bias: head size = ``sc_bias`` × head-box diagonal (0.6) when boxes are given.
        mean01_thr: the threshold reported as ``Mean@0.1``: a protocol's ``EvalRule.pckh_mean01_thr``
            (0.11 for the official TokenPose/PPT script, 0.10 for GTPT/MMPose).
    """

    def __init__(self, thr: float = 0.5, sc_bias: float = 0.6, mean01_thr: float = 0.1) -> None:
        super().__init__()
        self.thr = thr
        self.sc_bias = sc_bias
        self.mean01_thr = mean01_thr

    def update(
        self,
        pred: ArrayLike,
        gt: ArrayLike,
        mask: ArrayLike,
        head_size: ArrayLike | None = None,
        head_boxes: ArrayLike | None = None,
    ) -> None:
        """Add a batch in the MPII joint order with a head size ``(N,)`` or head boxes ``(N, 4)``."""
        if head_size is None:
            if head_boxes is None:
                raise ValueError("MpiiPCKh.update: give head_size or head_boxes")
            head_size = head_size_from_boxes(head_boxes, self.sc_bias)
        self._add(pred, gt, mask, np.asarray(head_size, dtype=np.float64))

    def compute(self) -> dict[str, float]:
        """The MPII report over everything accumulated."""
        p, g, m, hs = self._cat()
        return pckh(p, g, m, head_size=hs[:, 0], thr=self.thr, mean01_thr=self.mean01_thr)
