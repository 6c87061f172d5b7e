"""Pure-numpy 3D pose metrics: MPJPE, P-MPJPE, N-MPJPE, MPJVE and the per-action protocol.

Units
-----
Every function takes ``(..., J, 3)`` arrays in the same unit and multiplies the result by ``scale``
(default ``1000``), so **metres in give millimetres out**; pass ``scale=1`` to stay in input units.
Torch tensors are accepted (converted with ``.detach().cpu().numpy()``); nothing here imports torch.

* :func:`mpjpe`: mean Euclidean joint error, no alignment. Inputs are used as given; make them
  root-relative first (the H36M protocol sets the root of both to 0).
* :func:`p_mpjpe`: per frame, the prediction is aligned to the target by the similarity transform
  (scale, rotation, translation) minimising the squared error (Procrustes / Umeyama), with the
  reflection fixed so the rotation has det +1.
* :func:`n_mpjpe`: per frame, only a scale ``s = <pred, target> / <pred, pred>`` is fitted (VideoPose3D).
* :func:`mpjve`: error of the frame-to-frame velocities along the time axis (default ``-3``).

``reduction="mean"`` returns a float; ``"none"`` returns the per-frame values (the joint mean, shape
``(...)``; for MPJVE one value per frame transition).

:class:`ActionErrorAccumulator` is the plain per-action average: one value per clip (window) = its mean
over frames and joints; clip values averaged within each action class; the action means averaged with
equal weight over the classes present. It also reports the plain frame average. It is HoT's P1, but not
the official P2 (HoT's batch-mean quirk) nor its 15-class overall, and not MotionBERT's per-frame protocol:
those are in :mod:`posetokens.evaluation.h36m_protocol`, which the lifting evaluation uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "POSE3D_METRICS",
    "ActionErrorAccumulator",
    "action_average",
    "mpjpe",
    "mpjve",
    "n_mpjpe",
    "p_mpjpe",
    "procrustes_align",
]

_EPS = 1e-12


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _np(pred), _np(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"expected (..., J, 3) poses, got {p.shape}")
    return p, t


def _reduce(per_frame: np.ndarray, scale: float, reduction: str) -> float | np.ndarray:
    if reduction == "mean":
        return float(per_frame.mean() * scale) if per_frame.size else float("nan")
    if reduction == "none":
        return per_frame * scale
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def mpjpe(pred: Any, target: Any, *, scale: float = 1000.0, reduction: str = "mean") -> float | np.ndarray:
    """Mean per-joint position error (no alignment). (..., J, 3) in; mm for metres in."""
    p, t = _pair(pred, target)
    return _reduce(np.linalg.norm(p - t, axis=-1).mean(axis=-1), scale, reduction)


def procrustes_align(pred: Any, target: Any) -> np.ndarray:
    """Align each pose of ``pred`` to ``target`` by the best similarity transform. (..., J, 3).

    With centred poses ``P0, G0`` and ``P0^T G0 = U S V^T``: ``R = U D V^T`` with
    ``D = diag(1, 1, sign det(U V^T))`` (reflection fix), ``s = tr(S D) / |P0|^2``, and the aligned
    pose is ``s P0 R + mean(G)``.
    """
    p, t = _pair(pred, target)
    mu_p, mu_t = p.mean(axis=-2, keepdims=True), t.mean(axis=-2, keepdims=True)
    p0, t0 = p - mu_p, t - mu_t
    u, s, vt = np.linalg.svd(np.swapaxes(p0, -1, -2) @ t0)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    s = s.copy()
    s[..., 2] *= d
    rot = u @ vt
    norm_p = np.sum(p0 * p0, axis=(-2, -1))
    a = s.sum(axis=-1) / np.maximum(norm_p, _EPS)
    return a[..., None, None] * (p0 @ rot) + mu_t


def p_mpjpe(pred: Any, target: Any, *, scale: float = 1000.0, reduction: str = "mean") -> float | np.ndarray:
    """MPJPE after per-frame similarity Procrustes alignment (reflection fixed). (..., J, 3) in."""
    p, t = _pair(pred, target)
    return mpjpe(procrustes_align(p, t), t, scale=scale, reduction=reduction)


def n_mpjpe(pred: Any, target: Any, *, scale: float = 1000.0, reduction: str = "mean") -> float | np.ndarray:
    """MPJPE after a per-frame least-squares scale of the prediction (no centring). (..., J, 3) in."""
    p, t = _pair(pred, target)
    s = np.sum(p * t, axis=(-2, -1)) / np.maximum(np.sum(p * p, axis=(-2, -1)), _EPS)
    return mpjpe(s[..., None, None] * p, t, scale=scale, reduction=reduction)


def mpjve(
    pred: Any, target: Any, *, axis: int = -3, scale: float = 1000.0, reduction: str = "mean"
) -> float | np.ndarray:
    """Mean per-joint velocity error: MPJPE of the frame differences along ``axis`` (time).

    (T, J, 3) or (B, T, J, 3) with the default ``axis=-3``; mm/frame for metres in. Fewer than two
    frames gives NaN (mean) or an empty array (none).
    """
    p, t = _pair(pred, target)
    if p.ndim < 3:
        raise ValueError(f"mpjve needs a time axis: (..., T, J, 3), got {p.shape}")
    return mpjpe(np.diff(p, axis=axis), np.diff(t, axis=axis), scale=scale, reduction=reduction)


POSE3D_METRICS: dict[str, Callable[..., Any]] = {
    "mpjpe": mpjpe,
    "p_mpjpe": p_mpjpe,
    "n_mpjpe": n_mpjpe,
    "mpjve": mpjve,
}


def _default_action_key(action: str) -> str:
    return str(action).split(" ", 1)[0]


def action_average(
    values: Any, actions: Sequence[str], *, action_key: Callable[[str], str] | None = _default_action_key
) -> tuple[float, dict[str, float]]:
    """Average ``values`` (one per clip) within each action, then the action means with equal weight.

    Returns ``(mean over actions, {action: mean})``; actions are keyed by ``action_key`` (default: the
    text before the first space; None keeps them as given).
    """
    v = _np(values).reshape(-1)
    if len(v) != len(actions):
        raise ValueError(f"{len(v)} values but {len(actions)} actions")
    keys = [action_key(a) if action_key else str(a) for a in actions]
    names, inv = np.unique(np.array(keys, dtype=object).astype(str), return_inverse=True)
    sums = np.bincount(inv, weights=v, minlength=len(names))
    counts = np.bincount(inv, minlength=len(names))
    per = {str(n): float(s / c) for n, s, c in zip(names, sums, counts)}
    return (float(np.mean(list(per.values()))) if per else float("nan")), per


class ActionErrorAccumulator:
    """Per-action 3D error accumulator (per-window values, actions averaged; plus the frame average).

    Args:
        metrics: any of ``"mpjpe"``, ``"p_mpjpe"``, ``"n_mpjpe"``, ``"mpjve"``.
        scale: unit factor applied to every metric (1000: metres -> mm).
        zero_root: set joint ``root_index`` of prediction and target to 0 before scoring (HoT sets the
            predicted root to 0; targets are root-relative). Other joints are left unchanged.
        root_index: the root joint.
        action_key: maps an action name to its class (default: text before the first space).

    :meth:`update` takes clips ``(N, F, J, 3)`` (or single frames ``(N, J, 3)``) with N action names.
    :meth:`compute` returns, for each metric ``m``: ``m`` (action-averaged, equal weight), ``m_frames``
    (mean over all frames), and ``m/<action>`` per action.
    """

    def __init__(
        self,
        metrics: Iterable[str] = ("mpjpe", "p_mpjpe"),
        *,
        scale: float = 1000.0,
        zero_root: bool = True,
        root_index: int = 0,
        action_key: Callable[[str], str] | None = _default_action_key,
    ) -> None:
        self.metrics = tuple(metrics)
        bad = [m for m in self.metrics if m not in POSE3D_METRICS]
        if bad:
            raise ValueError(f"unknown metrics {bad}; choose from {sorted(POSE3D_METRICS)}")
        self.scale = float(scale)
        self.zero_root = bool(zero_root)
        self.root_index = int(root_index)
        self.action_key = action_key
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._clip_values: dict[str, list[np.ndarray]] = {m: [] for m in self.metrics}
        self._frame_sum = {m: 0.0 for m in self.metrics}
        self._frame_count = {m: 0 for m in self.metrics}
        self._actions: list[str] = []

    def update(self, pred: Any, target: Any, actions: Sequence[str] | str) -> None:
        """Add N clips ``(N, F, J, 3)`` (or N single frames ``(N, J, 3)``) and their action names."""
        p, t = _pair(pred, target)
        if p.ndim == 3:
            p, t = p[:, None], t[:, None]
        if p.ndim != 4:
            raise ValueError(f"expected (N, F, J, 3) or (N, J, 3), got {p.shape}")
        if isinstance(actions, str):
            actions = [actions] * p.shape[0]
        if len(actions) != p.shape[0]:
            raise ValueError(f"{p.shape[0]} clips but {len(actions)} actions")
        if self.zero_root:
            p, t = p.copy(), t.copy()
            p[..., self.root_index, :] = 0.0
            t[..., self.root_index, :] = 0.0
        for m in self.metrics:
            if m == "mpjve":
                if p.shape[1] < 2:
                    continue  # a single frame has no velocity
                per_frame = mpjve(p, t, axis=1, scale=self.scale, reduction="none")
            else:
                per_frame = POSE3D_METRICS[m](p, t, scale=self.scale, reduction="none")
            self._clip_values[m].append(per_frame.mean(axis=1))
            self._frame_sum[m] += float(per_frame.sum())
            self._frame_count[m] += int(per_frame.size)
        self._actions.extend(str(a) for a in actions)

    @property
    def num_clips(self) -> int:
        """Clips seen so far."""
        return len(self._actions)

    def compute(self) -> dict[str, float]:
        """Action-averaged (equal weight), frame-averaged and per-action values for every metric."""
        out: dict[str, float] = {}
        for m in self.metrics:
            if not self._clip_values[m]:
                continue
            values = np.concatenate(self._clip_values[m])
            mean, per = action_average(values, self._actions, action_key=self.action_key)
            out[m] = mean
            out[f"{m}_frames"] = self._frame_sum[m] / max(self._frame_count[m], 1)
            for a, v in per.items():
                out[f"{m}/{a}"] = v
        return out
