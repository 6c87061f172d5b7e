"""2D->3D lifting on Human3.6M-layout data: clips, windows, loss and the H36M evaluation protocols.

Used by the trainer for every model with ``forward_frames`` (MixSTE, MotionBERT, MHFormer and their
HoT/TPC variants). :func:`evaluate_lifting` scores the test subjects under the lifting rule of a
:class:`~posetokens.protocols.Protocol` (``LiftRule.h36m``, :mod:`posetokens.evaluation.h36m_protocol`):

* ``hot`` (HoT repo: MixSTE, HoT-*, MHFormer, TPC): seq2seq models score every frame of every centred,
  edge-padded window (padded duplicates included), seq2frame models the centre frame of the window of
  every frame; P1 per window, P2 with HoT's batch-mean quirk over ``p2_batch_size`` windows, the overall the
  mean over HoT's 15 classes (an absent class counts 0), or over the classes present when the test set holds
  a class outside the 15 (synthetic data).
* ``motionbert``: MotionBERT's clips (``split_clips``: window-length clips at a stride of the window length,
  trailing remainder dropped), per-frame MPJPE / P-MPJPE averaged over the clips covering each frame, per
  action the mean over frames. Our loaders give camera-space metres, so the prediction is scored in mm
  directly (MotionBERT's 2.5D-factor GT belongs to its own pickle, which these loaders do not read), and
  the block list (``LiftRule.skip_sources``, MotionBERT video ids) cannot match our clips.

The flip test of evaluation and inference is one function, :func:`posetokens.evaluation.h36m_protocol.flip_merge`.
"""

from __future__ import annotations


from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from posetokens.data.h36m import H36MLiftingDataset, load_mmpose_h36m, load_videopose3d, subjects_for
from posetokens.engine.config import DataCfg
from posetokens.engine.losses import hot_lifting_loss, motionbert_lifting_loss
from posetokens.evaluation.h36m_protocol import (
    HOT_ACTIONS,
    HotProtocolAccumulator,
    MotionBERTFrameAccumulator,
    absent_classes_note,
    hot_action_key,
)
from posetokens.evaluation.pose3d import ActionErrorAccumulator
from posetokens.layers import gather_tokens
from posetokens.protocols import LiftRule, Protocol, get_protocol, resolve_protocol
from posetokens.protocols.predict import evaluating, model_input, predict_windows  # noqa: F401 (the one home; re-exported)
from posetokens.runtime import warn



def load_clips(cfg: DataCfg, split: str) -> list:
    """Clips of ``split`` (``train``: S1/5/6/7/8, ``test``: S9/11, or ``data.<split>_subjects``)."""
    subjects = list(cfg.train_subjects if split == "train" else cfg.test_subjects) or split
    if not cfg.keypoints_3d:
        raise ValueError("config: data.keypoints_3d is empty (a VideoPose3D data_3d_h36m.npz or an MMPose-layout npz)")
    if cfg.format == "h36m":
        if not cfg.keypoints_2d or not cfg.cameras:
            raise ValueError("config: data.format=h36m needs data.keypoints_2d (2D npz) and data.cameras")

        def read(who: Any) -> list:
            return load_videopose3d(cfg.keypoints_3d, cfg.keypoints_2d, cfg.cameras, who)
    elif cfg.format == "h36m_mmpose":
        def read(who: Any) -> list:
            return load_mmpose_h36m(cfg.keypoints_3d, cameras=cfg.cameras or None, subjects=who)
    else:
        raise ValueError(f"config: data.format must be 'h36m' or 'h36m_mmpose' for lifting, got {cfg.format!r}")
    clips = read(subjects)
    if not clips:  # a sample file of other subjects (the shared one holds S1, S5, S7, S8)
        have = sorted({c.subject for c in read(None)})
        raise ValueError(f"data.keypoints_3d {cfg.keypoints_3d}: no clips of the {split} subjects "
                         f"{sorted(subjects_for(subjects) or [])} (it holds {have}); set data.{split}_subjects to some "
                         "of them")
    return clips


def build_lifting_set(cfg: DataCfg, split: str, model: nn.Module, seed: int = 0) -> H36MLiftingDataset:
    """Training windows for ``model`` under its protocol's ``LiftRule``: seq2frame windows for seq2frame models;
    otherwise ``train_windows`` (HoT: seq2seq windows; MotionBERT: consecutive clips at ``train_stride`` 81, the
    trailing remainder dropped), and the flip augmentation ``train_flip`` when ``data.flip_augment`` is on (HoT:
    every window plain and flipped; MotionBERT: each flipped with p 0.5, drawn from ``(seed, epoch, index)``).
    The test split is built by :func:`build_test_windows`."""
    from posetokens.engine.data import data_protocol

    lift = data_protocol(cfg, model).lift or get_protocol("hot").lift
    mode = "seq2frame" if model.is_seq2frame else lift.train_windows
    train = split == "train"
    return H36MLiftingDataset(load_clips(cfg, split), frames=model.cfg.num_frames, mode=mode,
                              flip_augment=cfg.flip_augment and train, flip_mode=lift.train_flip,
                              stride=(lift.train_stride or None) if train and mode != "seq2frame" else None, seed=seed)


def lifting_loss(model: nn.Module, batch: dict[str, Any], device: torch.device, kind: str) -> Tensor:
    """The training loss of one batch. ``kind``: ``hot`` (weighted MPJPE + 0.5 TC + 2 MPJVE, HoT's
    MixSTE recipe), ``motionbert`` (MPJPE + 0.5 N-MPJPE + 20 MPJVE) or ``mpjpe`` (MHFormer).
    seq2frame models are supervised on the frames they output."""
    x = model_input(model, batch["input_2d"].to(device))
    target = batch["target_3d"].to(device)
    out, index = model.forward_frames(x)
    if out.shape[1] != target.shape[1]:  # seq2frame: the kept frames (TPC) or the centre frame
        if index is not None:
            target = gather_tokens(target, index)
        else:
            c = target.shape[1] // 2
            target = target[:, c:c + 1]
    if kind == "hot":
        return hot_lifting_loss(out, target)
    if kind == "mpjpe":
        return torch.linalg.vector_norm(out - target, dim=-1).mean()
    if kind == "motionbert":
        return motionbert_lifting_loss(out, target)
    raise ValueError(f"config: loss must be 'auto', 'hot', 'mpjpe' or 'motionbert' for lifting, got {kind!r}")


def lifting_protocol(protocol: Protocol | LiftRule | str | Mapping[str, Any] | None, cfg: DataCfg,
                     model: nn.Module | None = None) -> tuple[LiftRule, bool]:
    """The lifting rule and the flip-test switch for an evaluation.

    ``protocol``: a :class:`Protocol` (what the trainer passes: ``engine.data.data_protocol(cfg.data, model)``),
    its ``LiftRule``, a protocol name or stored dict, or None: ``data.protocol`` resolved for the zoo model
    (``auto`` = its official one), falling back to ``hot`` for a model that names no protocol. The flip test
    is on when the rule's ``test_flip`` and the protocol's ``test.flip_test`` are; ``data.flip_test``, when
    set, decides.
    """
    if protocol is None:
        name = getattr(model, "zoo_name", None)
        value, overrides = getattr(cfg, "protocol", "auto"), getattr(cfg, "protocol_overrides", None)
        if value == "auto" and name is None:
            protocol = get_protocol("hot").replace(overrides or None, "config: data.protocol")
        else:
            from posetokens.registry import default_protocol

            protocol = resolve_protocol(value, default=default_protocol(name) if name else None,
                                        overrides=overrides, where="config: data.protocol")
    elif isinstance(protocol, (str, Mapping)):
        protocol = resolve_protocol(protocol, where="evaluate_lifting(protocol=...)")
    if isinstance(protocol, Protocol):
        if protocol.lift is None:
            raise ValueError(f"protocol {protocol.name!r} has no lifting rule (lift=None); lifting models need "
                             "a lifting protocol such as 'hot' or 'motionbert'")
        lift, flip = protocol.lift, protocol.lift.test_flip and protocol.test.flip_test
    elif isinstance(protocol, LiftRule):
        lift, flip = protocol, protocol.test_flip
    else:
        raise TypeError(f"protocol must be a Protocol, LiftRule, name or dict, got {type(protocol).__name__}")
    if getattr(cfg, "flip_test", None) is not None:
        flip = bool(cfg.flip_test)
    return lift, flip


def build_test_windows(cfg: DataCfg, frames: int, seq2frame: bool, lift: LiftRule) -> H36MLiftingDataset:
    """The test windows a lifting rule scores: HoT's seq2seq / seq2frame windows, or MotionBERT's clips."""
    clips = load_clips(cfg, "test")
    if lift.h36m == "motionbert":
        if seq2frame:
            raise ValueError("the motionbert protocol scores seq2seq clips; this model outputs one frame per window")
        return H36MLiftingDataset(clips, frames=frames, mode="clips")
    return H36MLiftingDataset(clips, frames=frames, mode="seq2frame" if seq2frame else "seq2seq")


class _ProtocolScorer:
    """Feeds (prediction, batch) pairs of a test set to the protocol's accumulator, plus the N-MPJPE /
    MPJVE extras (per window, actions averaged with equal weight; not part of either official protocol)."""

    def __init__(self, dataset: H36MLiftingDataset, lift: LiftRule, extras: tuple[str, ...]) -> None:
        self.lift = lift
        self.extras = ActionErrorAccumulator(metrics=extras) if extras else None
        classes = {hot_action_key(c.action_class) for c in dataset.clips}
        if lift.h36m == "motionbert":
            lengths = np.array([c.length for c in dataset.clips], np.int64)
            self.offsets = np.cumsum(lengths) - lengths
            actions = np.repeat(np.array([c.action_class for c in dataset.clips], dtype=str), lengths)
            self.acc: Any = MotionBERTFrameAccumulator(actions, lift.skip_sources, scale=1000.0)
        else:  # HoT's 15 classes, or the classes present when the data has others (synthetic motion)
            self.acc = HotProtocolAccumulator(lift.p2_batch_size, HOT_ACTIONS if classes <= set(HOT_ACTIONS) else None)
        # HoT's mean counts a class without a window as 0: said when this test set lacks some (never the full one)
        self.absent = [a for a in HOT_ACTIONS if a not in classes] if lift.h36m != "motionbert" and \
            classes <= set(HOT_ACTIONS) else []

    def update(self, pred: np.ndarray, batch: dict[str, Any]) -> None:
        target = batch["target_3d"].numpy()
        if pred.shape[1] != target.shape[1]:  # seq2frame: the centre frame
            c = target.shape[1] // 2
            target = target[:, c:c + 1]
        actions = list(batch["action"])
        if self.lift.h36m == "motionbert":
            frames = self.offsets[batch["clip"].numpy()][:, None] + batch["frame_indices"].numpy()
            self.acc.update(pred, target, frames)  # metres, scored x 1000; our clips carry no MotionBERT ids
        else:
            self.acc.update(pred, target, actions)
        if self.extras is not None:
            self.extras.update(pred, target, actions)

    def compute(self) -> dict[str, float]:
        res = self.acc.compute()
        out = res.metrics()
        if self.absent:  # the full test set has them all
            warn(absent_classes_note(res, HOT_ACTIONS))
        if self.extras is not None:
            res = self.extras.compute()
            names = {"n_mpjpe": "N-MPJPE", "mpjve": "MPJVE"}
            out.update({names[m]: float(res[m]) for m in self.extras.metrics if m in res})
        return out


@torch.no_grad()
def evaluate_lifting(model: nn.Module, cfg: DataCfg, device: torch.device, batch_size: int = 8,
                     protocol: Protocol | LiftRule | str | None = None) -> dict[str, float]:
    """MPJPE (P1) and P-MPJPE (P2) in mm on the test subjects under the lifting ``protocol``
    (:func:`lifting_protocol`; None: the model's official one, see the module docstring), with
    ``MPJPE/<action>`` and ``P-MPJPE/<action>`` per class, plus N-MPJPE and, for seq2seq models, MPJVE
    (per window, actions averaged). The result does not depend on ``batch_size``."""
    lift, flip = lifting_protocol(protocol, cfg, model)
    dataset = build_test_windows(cfg, model.cfg.num_frames, bool(model.is_seq2frame), lift)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=cfg.num_workers)
    scorer = _ProtocolScorer(dataset, lift, ("n_mpjpe",) + (() if model.is_seq2frame else ("mpjve",)))
    with evaluating(model):
        for batch in loader:
            pred = predict_windows(model, batch["input_2d"].to(device), flip).float().cpu().numpy()
            scorer.update(pred, batch)
    return scorer.compute()


def make_loader(dataset: Any, batch: int, sampler: Any, num_workers: int) -> DataLoader:
    """A DataLoader over lifting windows."""
    return DataLoader(dataset, batch_size=batch, sampler=sampler, shuffle=False, num_workers=num_workers)


def mean_pose_baseline(cfg: DataCfg, num_frames: int = 1,
                       protocol: Protocol | LiftRule | str | None = None) -> dict[str, float]:
    """The zero-motion baseline: predict the training set's mean root-relative pose for every test frame.

    Returns MPJPE / P-MPJPE in mm scored like :func:`evaluate_lifting` under ``protocol`` (default:
    ``data.protocol``, ``hot`` when that is ``auto``) on windows of ``num_frames``; a lifting model that
    learned anything beats it by a wide margin.
    """
    lift, _ = lifting_protocol(protocol, cfg, None)
    train = H36MLiftingDataset(load_clips(cfg, "train"), frames=num_frames, mode="seq2seq")
    mean_pose = np.concatenate(train._x3d).mean(axis=0)  # (J, 3), root stays 0
    test = build_test_windows(cfg, num_frames, False, lift)
    scorer = _ProtocolScorer(test, lift, ())
    for batch in DataLoader(test, batch_size=256, shuffle=False):
        target = batch["target_3d"].numpy()
        scorer.update(np.broadcast_to(mean_pose, target.shape).astype(np.float32), batch)
    res = scorer.compute()
    return {"MPJPE": float(res["MPJPE"]), "P-MPJPE": float(res["P-MPJPE"])}
