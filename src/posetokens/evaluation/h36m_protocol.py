"""The H36M test protocols of the lifting methods (``shared/specs/pipeline.md`` §6-7).

Two official evaluations are reproduced, number for number:

* **HoT** (``protocol="hot"``; HoT's ``main_mixste.py test`` with ``common/utils.py``; MixSTE, HoT-MixSTE,
  HoT-MotionBERT, MHFormer, TPC). Windows are the seq2seq windows of
  :func:`posetokens.data.h36m.seq2seq_indices`, every frame scored (padded duplicates included).

  - P1: one value per window, its mean over frames and joints; per action the mean over windows.
  - P2: per-frame Procrustes. **The batch-mean quirk**: ``mpjpe_by_action_p2`` gives every window of a test
    batch the mean P-MPJPE of the *whole batch* (``np.mean(dist)``), whatever its action; a single-action
    batch adds ``mean x count``, which is the same. Batches are ``p2_batch_size`` consecutive windows in
    loader order (no shuffle), so they cross sequence boundaries. ``p2_batch_size=0`` gives the per-window
    P2 instead (not official; measured +0.60 mm overall on the ``h36m_protocol_hot`` fixture).
  - The action key is the text before the first space (no alias mapping).
  - Overall (``print_error_action``): the **unweighted mean over all 15** ``define_actions('*')`` classes
    (:data:`HOT_ACTIONS`). A class with no window keeps its accumulator at 0 and so **contributes 0**
    (it never happens on the full test set; reproduced as is). ``all_actions=None`` averages over the
    classes present instead.

* **MotionBERT** (``protocol="motionbert"``; ``train.py evaluate`` with ``DataReaderH36M``). Clips are
  :func:`posetokens.data.h36m.split_clips` (consecutive ``clip_len`` frames per video at the test stride,
  trailing remainder dropped). The flip-merged, root-zeroed prediction is denormalised with the clip's
  first-frame camera resolution (:func:`motionbert_denormalize`), multiplied by the per-frame 2.5D factor,
  and scored root-relative against ``joints_2.5d_image`` frame by frame: MPJPE and P-MPJPE are added into
  per-frame accumulators (frames covered twice are averaged), clips of the block-listed videos
  (``source[:-6]`` in :data:`MOTIONBERT_BLOCK_LIST`) are skipped, frames whose accumulated MPJPE is exactly 0
  count as not evaluated. Per action the mean over its frames; overall the mean over the sorted action names
  of the split. An action with no evaluated frame is NaN, and so is the overall.

The flip merge of both (and of the engine's and inference's lifting) is one function, :func:`flip_merge`.
Everything is numpy (torch tensors accepted where noted); errors are in mm for metres in (``scale=1000``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from posetokens.codecs.utils import flip_indices_from_pairs as pair_flip_indices
from posetokens.data.h36m import H36M_ACTIONS, H36M_CAMERA_RESOLUTION, flip_keypoints, split_clips
from posetokens.evaluation.pose3d import mpjpe, p_mpjpe

logger = logging.getLogger(__name__)

__all__ = [
    "HOT_ACTIONS",
    "MOTIONBERT_BLOCK_LIST",
    "H36MProtocolResult",
    "HotProtocolAccumulator",
    "MotionBERTFrameAccumulator",
    "evaluate_hot",
    "evaluate_motionbert",
    "flip_indices_from_pairs",
    "flip_merge",
    "hot_action_key",
    "hot_p2_batch_mean",
    "hot_window_errors",
    "motionbert_denormalize",
    "motionbert_resolution",
    "split_clips",
    "zero_root",
]

#: HoT's ``define_actions('*')``: the 15 classes its overall P1/P2 averages over (Human3.6M's, in its order).
HOT_ACTIONS: tuple[str, ...] = H36M_ACTIONS
#: MotionBERT's ``evaluate`` skips every clip of these videos (``source[:-6]``, all cameras).
MOTIONBERT_BLOCK_LIST: tuple[str, ...] = ("s_09_act_05_subact_02", "s_09_act_10_subact_02", "s_09_act_13_subact_01")


# ================================================================================ flip merge
def flip_indices_from_pairs(left: Sequence[int], right: Sequence[int], num_joints: int = 17) -> list[int]:
    """The joint permutation that swaps ``left[i]`` with ``right[i]`` (the official ``joints_left/right``):
    :func:`posetokens.codecs.utils.flip_indices_from_pairs` of the pairs they make."""
    if len(left) != len(right):
        raise ValueError(f"joints_left has {len(left)} entries but joints_right has {len(right)}")
    return pair_flip_indices(list(zip(left, right)), num_joints)


def zero_root(x: Any, root: int | None = 0) -> Any:
    """A copy of (..., J, 3) poses (numpy or torch) with joint ``root`` set to 0 (None: unchanged copy)."""
    out = x.clone() if hasattr(x, "clone") else np.array(x, copy=True)
    if root is not None:
        out[..., root, :] = 0
    return out


def flip_merge(out: Any, out_flipped: Any, flip_indices: Sequence[int] | None = None, root: int | None = 0) -> Any:
    """The lifting flip test: ``(out + flip(out_flipped)) / 2``, then joint ``root`` set to 0.

    ``out_flipped`` is the network output on the mirrored input; ``flip`` negates x and swaps left/right
    (:func:`posetokens.data.h36m.flip_keypoints`; default H36M indices, the official
    ``[4,5,6,11,12,13] <-> [1,2,3,14,15,16]``). HoT's ``test`` and MotionBERT's ``evaluate`` both do this.
    Numpy arrays or torch tensors (..., J, 3); the dtype of the inputs is kept.
    """
    if tuple(out.shape) != tuple(out_flipped.shape):
        raise ValueError(f"flip_merge: output {tuple(out.shape)} and flipped output {tuple(out_flipped.shape)} differ")
    merged = (out + flip_keypoints(out_flipped, flip_indices)) / 2
    if root is not None:
        merged[..., root, :] = 0
    return merged


# ================================================================================ result
@dataclass
class H36MProtocolResult:
    """P1 / P2 of one protocol run, in mm.

    ``per_action_*`` hold the classes that were scored (HoT: windows; MotionBERT: every action of the split,
    NaN when none of its frames was evaluated); ``counts`` the windows (HoT) or evaluated frames
    (MotionBERT) per class; ``info`` sizes (``num_windows``, ``num_batches``, ``num_clips``, ...).
    """

    protocol: str
    p1: float
    p2: float
    per_action_p1: dict[str, float] = field(default_factory=dict)
    per_action_p2: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    info: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """``MPJPE``, ``P-MPJPE`` and per class ``MPJPE/<action>``, ``P-MPJPE/<action>`` (engine keys)."""
        out = {"MPJPE": float(self.p1), "P-MPJPE": float(self.p2)}
        out.update({f"MPJPE/{a}": float(v) for a, v in self.per_action_p1.items()})
        out.update({f"P-MPJPE/{a}": float(v) for a, v in self.per_action_p2.items()})
        return out


# ================================================================================ HoT
def hot_action_key(action: str) -> str:
    """HoT's action key: the text before the first space (``"Walking 1" -> "Walking"``)."""
    return str(action).split(" ", 1)[0]


def hot_window_errors(pred: Any, target: Any, *, root: int | None = 0,
                      scale: float = 1000.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-window errors of windows (W, F, J, 3): P1 means (W,), P2 per-frame sums (W,) and frame counts (W,).

    Joint ``root`` of prediction and target is set to 0 first (HoT's ``test``); every frame is scored.
    """
    p, t = zero_root(np.asarray(pred, np.float64), root), zero_root(np.asarray(target, np.float64), root)
    if p.ndim == 3:
        p, t = p[:, None], t[:, None]
    if p.ndim != 4 or p.shape != t.shape:
        raise ValueError(f"expected windows (W, F, J, 3) for prediction and target, got {p.shape} and {t.shape}")
    e1 = mpjpe(p, t, scale=scale, reduction="none")  # (W, F)
    e2 = p_mpjpe(p, t, scale=scale, reduction="none")
    return e1.mean(axis=1), e2.sum(axis=1), np.full(len(p), p.shape[1], np.int64)


def hot_p2_batch_mean(p2_sum: Any, frames: Any, batch_size: int) -> np.ndarray:
    """The P2 each window is credited with (W,): the mean per-frame P-MPJPE of its test batch of
    ``batch_size`` consecutive windows (HoT's quirk), or its own mean with ``batch_size <= 0``."""
    s, n = np.asarray(p2_sum, np.float64).reshape(-1), np.asarray(frames, np.float64).reshape(-1)
    if s.shape != n.shape:
        raise ValueError(f"hot_p2_batch_mean: {s.shape[0]} sums but {n.shape[0]} frame counts")
    if int(batch_size) <= 0:
        return s / n
    batch = np.arange(len(s)) // int(batch_size)
    return (np.bincount(batch, s) / np.bincount(batch, n))[batch]


def _hot_result(p1: np.ndarray, p2: np.ndarray, actions: Sequence[str], all_actions: Sequence[str] | None,
                info: dict[str, float]) -> H36MProtocolResult:
    keys = np.array([hot_action_key(a) for a in actions], dtype=str)
    if len(keys) != len(p1):
        raise ValueError(f"{len(p1)} windows but {len(keys)} action names")
    if all_actions is not None:
        unknown = sorted(set(keys.tolist()) - set(all_actions))
        if unknown:
            raise ValueError(f"HoT protocol: action(s) {unknown} are not among the classes {list(all_actions)} "
                             "(pass all_actions=None to average over the classes present)")
    names, inv = np.unique(keys, return_inverse=True)
    count = np.bincount(inv, minlength=len(names))
    m1 = np.bincount(inv, p1, minlength=len(names)) / np.maximum(count, 1)
    m2 = np.bincount(inv, p2, minlength=len(names)) / np.maximum(count, 1)
    per1 = {str(a): float(v) for a, v in zip(names, m1)}
    per2 = {str(a): float(v) for a, v in zip(names, m2)}
    classes = list(all_actions) if all_actions is not None else [str(a) for a in names]
    # an absent class keeps its AccumLoss at 0: it adds 0 to the sum and 1 to the divisor
    overall1 = sum(per1.get(a, 0.0) for a in classes) / len(classes) if classes else float("nan")
    overall2 = sum(per2.get(a, 0.0) for a in classes) / len(classes) if classes else float("nan")
    info = dict(info, num_classes=float(len(classes)), num_absent_classes=float(len(set(classes) - set(per1))))
    return H36MProtocolResult("hot", overall1, overall2, per1, per2,
                              {str(a): int(c) for a, c in zip(names, count)}, info)


def evaluate_hot(pred: Any, target: Any, actions: Sequence[str], *, p2_batch_size: int = 4,
                 all_actions: Sequence[str] | None = HOT_ACTIONS, root: int | None = 0,
                 scale: float = 1000.0) -> H36MProtocolResult:
    """HoT's protocol over windows in loader order: ``pred``/``target`` (W, F, J, 3) (already flip-merged),
    one action name per window. See the module docstring; ``p2_batch_size`` is HoT's test batch
    (``LiftRule.p2_batch_size``). Classes of ``all_actions`` without a window count as 0 in the overall means, as
    in HoT's ``print_error_action``: said with the means over the classes present (the engine says it itself)."""
    acc = HotProtocolAccumulator(p2_batch_size=p2_batch_size, all_actions=all_actions, root=root, scale=scale)
    acc.update(pred, target, actions)
    res = acc.compute()
    note = absent_classes_note(res, all_actions)
    if note:
        logger.warning("evaluate_hot: %s", note)
    return res


def absent_classes_note(res: H36MProtocolResult, all_actions: Sequence[str] | None) -> str:
    """What to say when classes of ``all_actions`` have no window ("" when none): they count as 0 in HoT's overall
    MPJPE and P-MPJPE (``print_error_action``), with the means over the classes present."""
    if all_actions is None:
        return ""
    absent = [a for a in all_actions if a not in res.per_action_p1]
    if not absent:
        return ""
    n, k = len(all_actions), len(all_actions) - len(absent)
    return (f"{len(absent)} of the {n} action classes have no window ({', '.join(absent)}): they count as 0 in MPJPE "
            f"and P-MPJPE, as in HoT's print_error_action; over the {k} present they are {res.p1 * n / k:.2f} and "
            f"{res.p2 * n / k:.2f} mm")


class HotProtocolAccumulator:
    """HoT's protocol fed batch by batch (any loader batch size: the P2 quirk groups the windows into
    ``p2_batch_size`` windows in the order they arrive, as HoT's test loader would).

    Args:
        p2_batch_size: HoT's test batch for the P2 quirk; 0: per-window P2.
        all_actions: the classes the overall averages over (absent ones count 0); None: the classes present.
        root: the joint zeroed in prediction and target. scale: unit factor (1000: metres -> mm).
    """

    def __init__(self, p2_batch_size: int = 4, all_actions: Sequence[str] | None = HOT_ACTIONS,
                 root: int | None = 0, scale: float = 1000.0) -> None:
        self.p2_batch_size = int(p2_batch_size)
        self.all_actions = None if all_actions is None else tuple(all_actions)
        self.root, self.scale = root, float(scale)
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._p1: list[np.ndarray] = []
        self._p2: list[np.ndarray] = []
        self._frames: list[np.ndarray] = []
        self._actions: list[str] = []

    def update(self, pred: Any, target: Any, actions: Sequence[str]) -> None:
        """Add windows (W, F, J, 3) (or single frames (W, J, 3)) with one action name each."""
        if hasattr(pred, "detach"):
            pred = pred.detach().cpu().numpy()
        if hasattr(target, "detach"):
            target = target.detach().cpu().numpy()
        p1, p2, n = hot_window_errors(pred, target, root=self.root, scale=self.scale)
        if isinstance(actions, str) or len(actions) != len(p1):
            raise ValueError(f"{len(p1)} windows need {len(p1)} action names, got {actions!r:.80}")
        self._p1.append(p1)
        self._p2.append(p2)
        self._frames.append(n)
        self._actions.extend(str(a) for a in actions)

    @property
    def num_windows(self) -> int:
        """Windows seen so far."""
        return len(self._actions)

    def compute(self) -> H36MProtocolResult:
        """P1 / P2 overall and per class (see :func:`evaluate_hot`)."""
        if not self._actions:
            raise ValueError("HoT protocol: no window was added")
        p1 = np.concatenate(self._p1)
        frames = np.concatenate(self._frames)
        p2 = hot_p2_batch_mean(np.concatenate(self._p2), frames, self.p2_batch_size)
        b = self.p2_batch_size
        info = {"num_windows": float(len(p1)), "num_frames": float(frames.sum()),
                "num_batches": float(-(-len(p1) // b) if b > 0 else len(p1))}
        return _hot_result(p1, p2, self._actions, self.all_actions, info)


# ================================================================================ MotionBERT
def motionbert_resolution(camera_names: Sequence[str] | np.ndarray) -> np.ndarray:
    """MotionBERT's ``read_hw``: (N, 2) ``(res_w, res_h)`` per camera name (1000x1002 for 54138969 and
    60457274, 1000x1000 for 55011271 and 58860488); another name raises ``ValueError``."""
    names = [str(c) for c in np.asarray(camera_names).reshape(-1)]
    bad = sorted(set(names) - set(H36M_CAMERA_RESOLUTION))
    if bad:
        raise ValueError(f"camera_name: unknown H36M camera(s) {bad}; expected one of {sorted(H36M_CAMERA_RESOLUTION)}")
    return np.array([H36M_CAMERA_RESOLUTION[c] for c in names], np.float64).reshape(-1, 2)


def motionbert_denormalize(pred: Any, res_wh: Any) -> np.ndarray:
    """MotionBERT's ``denormalize`` of clips (N, T, J, 3) with one ``(res_w, res_h)`` per clip (N, 2):
    ``xy = (v + [1, res_h/res_w]) * res_w/2`` and ``z = v * res_w/2`` (pixels). Like the official code it
    writes back into an array of the prediction's float dtype."""
    p = np.asarray(pred)
    res = np.asarray(res_wh, np.float64).reshape(-1, 2)
    if p.ndim != 4 or p.shape[-1] != 3 or len(res) != len(p):
        raise ValueError(f"motionbert_denormalize: expected clips (N, T, J, 3) and (N, 2) resolutions, "
                         f"got {p.shape} and {res.shape}")
    w, h = res[:, 0, None, None], res[:, 1, None, None]
    out = np.empty_like(p, dtype=p.dtype if p.dtype.kind == "f" else np.float64)
    out[..., 0] = (p[..., 0] + 1.0) * w / 2
    out[..., 1] = (p[..., 1] + h / w) * w / 2
    out[..., 2] = p[..., 2] * w / 2
    return out


class MotionBERTFrameAccumulator:
    """MotionBERT's per-frame accumulation: clip errors are added into the frames they cover.

    Args:
        frame_actions: (F,) the action name of every frame of the split (what the per-action means use).
        skip_sources: video ids whose clips are skipped (:data:`MOTIONBERT_BLOCK_LIST`; ``source[:-6]``).
        root: the joint pred and GT are made relative to. scale: unit factor applied to the errors.
        action_names: the classes averaged (default: the sorted action names of ``frame_actions``).
    """

    def __init__(self, frame_actions: Sequence[str] | np.ndarray, skip_sources: Sequence[str] = MOTIONBERT_BLOCK_LIST,
                 root: int = 0, scale: float = 1.0, action_names: Sequence[str] | None = None) -> None:
        self.actions = np.asarray(frame_actions).astype(str).reshape(-1)
        self.skip = frozenset(str(s) for s in skip_sources)
        self.root, self.scale = int(root), float(scale)
        self.action_names = sorted(set(self.actions.tolist())) if action_names is None else list(action_names)
        n = len(self.actions)
        self.e1, self.e2, self.count = np.zeros(n), np.zeros(n), np.zeros(n)
        self.num_clips = 0
        self.num_skipped = 0

    def update(self, pred: Any, gt: Any, frames: Any, sources: Sequence[str] | None = None) -> None:
        """Add clips: ``pred`` and ``gt`` (N, T, J, 3) in the metric's unit, ``frames`` (N, T) the frame
        indices of each clip, ``sources`` the video id of each clip's first frame (None: nothing skipped)."""
        if hasattr(pred, "detach"):
            pred = pred.detach().cpu().numpy()
        if hasattr(gt, "detach"):
            gt = gt.detach().cpu().numpy()
        p, g = np.asarray(pred), np.asarray(gt)
        idx = np.asarray(frames, np.int64)
        if p.ndim != 4 or p.shape != g.shape or idx.shape != p.shape[:2]:
            raise ValueError(f"MotionBERT protocol: expected pred and GT clips (N, T, J, 3) and frames (N, T), "
                             f"got {p.shape}, {g.shape} and {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.actions)):
            raise ValueError(f"MotionBERT protocol: frame index out of range 0..{len(self.actions) - 1}")
        keep = np.ones(len(p), bool)
        if sources is not None:
            if len(sources) != len(p):
                raise ValueError(f"MotionBERT protocol: {len(p)} clips but {len(sources)} sources")
            keep = np.array([str(s)[:-6] not in self.skip for s in sources], bool)
        self.num_clips += len(p)
        self.num_skipped += int((~keep).sum())
        if not keep.any():
            return
        p, g, idx = p[keep], g[keep], idx[keep]
        p = p - p[..., self.root:self.root + 1, :]
        g = g - g[..., self.root:self.root + 1, :]
        err1 = mpjpe(p, g, scale=self.scale, reduction="none")  # (N, T)
        err2 = p_mpjpe(p, g, scale=self.scale, reduction="none")
        for i in range(len(idx)):  # a loop over clips; `a[idx] += v` as the official code (a repeated index adds once)
            self.e1[idx[i]] += err1[i]
            self.e2[idx[i]] += err2[i]
            self.count[idx[i]] += 1

    def compute(self) -> H36MProtocolResult:
        """Per-action means over evaluated frames and their unweighted mean (NaN rules of the module doc)."""
        evaluated = self.e1 > 0
        names = self.action_names
        lookup = {a: i for i, a in enumerate(names)}
        act = np.array([lookup.get(a, -1) for a in self.actions[evaluated].tolist()], np.int64)
        if (act < 0).any():
            raise ValueError("MotionBERT protocol: an evaluated frame has an action outside action_names")
        e1 = self.e1[evaluated] / self.count[evaluated]
        e2 = self.e2[evaluated] / self.count[evaluated]
        n = np.bincount(act, minlength=len(names))
        with np.errstate(invalid="ignore", divide="ignore"):
            m1 = np.bincount(act, e1, minlength=len(names)) / n  # 0/0 -> NaN: the official np.mean([])
            m2 = np.bincount(act, e2, minlength=len(names)) / n
        per1 = {a: float(v) for a, v in zip(names, m1)}
        per2 = {a: float(v) for a, v in zip(names, m2)}
        info = {"num_clips": float(self.num_clips), "num_skipped_clips": float(self.num_skipped),
                "num_frames": float(len(self.actions)), "num_evaluated_frames": float(evaluated.sum())}
        p1 = float(np.mean(m1)) if len(names) else float("nan")
        p2 = float(np.mean(m2)) if len(names) else float("nan")
        return H36MProtocolResult("motionbert", p1, p2, per1, per2, {a: int(c) for a, c in zip(names, n)}, info)


def evaluate_motionbert(pred: Any, pred_flipped: Any | None, gt_25d: Any, factor_25d: Any, source: Any,
                        action: Any, camera_name: Any, clips: Any | None = None, *, stride: int | None = None,
                        skip_sources: Sequence[str] = MOTIONBERT_BLOCK_LIST,
                        flip_indices: Sequence[int] | None = None, root: int = 0) -> H36MProtocolResult:
    """MotionBERT's ``evaluate`` on its test split (the ``h36m_*_cam_source*.pkl`` layout).

    Args:
        pred: (N, T, J, 3) network output per clip, normalised units (px / res_w * 2), root-relative.
        pred_flipped: the output on the flipped clips (before flipping back), or None (no flip test).
        gt_25d: (F, J, 3) per-frame ``joints_2.5d_image`` (mm). factor_25d: (F,) ``2.5d_factor``.
        source, action, camera_name: (F,) per-frame video id, action and camera name.
        clips: (N, T) frame indices of the clips; None: :func:`split_clips` of ``source`` with ``stride``
            (default T), in which case their number must match ``pred``.
        skip_sources: the block list (``source[:-6]``). flip_indices: default H36M's.
    """
    p = np.asarray(pred)
    if p.ndim != 4 or p.shape[-1] != 3:
        raise ValueError(f"pred: expected clips (N, T, J, 3), got {p.shape}")
    src = np.asarray(source).astype(str)
    idx = split_clips(src, p.shape[1], stride or p.shape[1]) if clips is None else np.asarray(clips, np.int64)
    if idx.shape != p.shape[:2]:
        raise ValueError(f"clips: {idx.shape[0]} clips of {idx.shape[1] if idx.ndim == 2 else '?'} frames, but pred "
                         f"holds {p.shape[0]} of {p.shape[1]}")
    if pred_flipped is not None:
        merged = flip_merge(p, np.asarray(pred_flipped), flip_indices, root)
    else:
        merged = zero_root(p, root)
    res = motionbert_resolution(np.asarray(camera_name).astype(str)[idx[:, 0]])
    factor = np.asarray(factor_25d)
    mm = motionbert_denormalize(merged, res) * factor[idx][..., None, None]
    acc = MotionBERTFrameAccumulator(np.asarray(action).astype(str), skip_sources, root=root)
    acc.update(mm, np.asarray(gt_25d)[idx], idx, src[idx[:, 0]].tolist())
    return acc.compute()
