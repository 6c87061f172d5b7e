"""2D->3D lifting on Human3.6M-layout data: clips, windows, loss and per-action MPJPE evaluation.

Used by the trainer for every model with ``forward_frames`` (MixSTE, MotionBERT, MHFormer and their
HoT/TPC variants). seq2seq models score every frame of every window (padded duplicates included, as the
official protocol does); seq2frame models score the centre frame of a window per frame.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from posetokens.data.h36m import H36MLiftingDataset, flip_keypoints, load_mmpose_h36m, load_videopose3d
from posetokens.data.metainfo import get_metainfo
from posetokens.engine.config import DataCfg
from posetokens.engine.losses import hot_lifting_loss, motionbert_lifting_loss
from posetokens.evaluation.pose3d import ActionErrorAccumulator
from posetokens.layers import gather_tokens, read_center_frame


def load_clips(cfg: DataCfg, split: str) -> list:
    """Clips of ``split`` (``train``: S1/5/6/7/8, ``test``: S9/11, or ``data.<split>_subjects``)."""
    subjects = list(cfg.train_subjects if split == "train" else cfg.test_subjects) or split
    if not cfg.keypoints_3d:
        raise ValueError("config: data.keypoints_3d is empty (a VideoPose3D data_3d_h36m.npz or an MMPose-layout npz)")
    if cfg.format == "h36m":
        if not cfg.keypoints_2d or not cfg.cameras:
            raise ValueError("config: data.format=h36m needs data.keypoints_2d (2D npz) and data.cameras")
        return load_videopose3d(cfg.keypoints_3d, cfg.keypoints_2d, cfg.cameras, subjects)
    if cfg.format == "h36m_mmpose":
        return load_mmpose_h36m(cfg.keypoints_3d, cameras=cfg.cameras or None, subjects=subjects)
    raise ValueError(f"config: data.format must be 'h36m' or 'h36m_mmpose' for lifting, got {cfg.format!r}")


def build_lifting_set(cfg: DataCfg, split: str, model: nn.Module) -> H36MLiftingDataset:
    """Windows for ``model``: seq2seq or seq2frame by the model, flip augmentation for training."""
    mode = "seq2frame" if model.is_seq2frame else "seq2seq"
    return H36MLiftingDataset(load_clips(cfg, split), frames=model.cfg.num_frames, mode=mode,
                              flip_augment=cfg.flip_augment and split == "train")


def model_input(model: nn.Module, x2d: Tensor) -> Tensor:
    """Width-normalised 2D (B, F, J, 2) to the model's input: a confidence channel of 1 for 3-channel
    models (MotionBERT) when the 2D has none."""
    if getattr(model.cfg, "in_channels", 2) == 3 and x2d.shape[-1] == 2:
        x2d = torch.cat((x2d, torch.ones_like(x2d[..., :1])), dim=-1)
    return x2d


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


@torch.no_grad()
def predict_windows(model: nn.Module, x2d: Tensor, flip_test: bool) -> Tensor:
    """Root-zeroed 3D for windows (B, F, J, 2): every frame for seq2seq, the centre frame (B, 1, J, 3) for
    seq2frame. The flip test averages with the un-flipped prediction on mirrored input (the seq2frame
    flip pass reuses the plain pass's kept frames, as the official TPC code does)."""
    flip = list(get_metainfo("h36m").flip_indices)
    x = model_input(model, x2d)
    out, index = model.forward_frames(x)
    if flip_test:
        out_f, _ = model.forward_frames(flip_keypoints(x, flip), keep_index=index)
        out = 0.5 * (out + flip_keypoints(out_f, flip))
    if model.is_seq2frame:
        centre = x2d.shape[1] // 2
        if index is not None:  # TPC: the output covers the kept frames, the centre among them
            out = read_center_frame(out, index, centre)
        elif out.shape[1] != 1:
            out = out[:, centre:centre + 1]
    out = out.clone()
    out[..., 0, :] = 0.0
    return out


@torch.no_grad()
def evaluate_lifting(model: nn.Module, cfg: DataCfg, device: torch.device, batch_size: int = 8) -> dict[str, float]:
    """MPJPE (P1), P-MPJPE (P2), N-MPJPE and, for seq2seq models, MPJVE, in mm on the test subjects: per
    action, then the actions averaged with equal weight. ``MPJPE/<action>`` gives each action's P1."""
    was_training = model.training
    model.eval()
    dataset = build_lifting_set(cfg, "test", model)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=cfg.num_workers)
    names = ("mpjpe", "p_mpjpe", "n_mpjpe") + (() if model.is_seq2frame else ("mpjve",))
    acc = ActionErrorAccumulator(metrics=names)
    try:
        for batch in loader:
            pred = predict_windows(model, batch["input_2d"].to(device), cfg.flip_test).float().cpu()
            target = batch["target_3d"]
            if pred.shape[1] != target.shape[1]:
                c = target.shape[1] // 2
                target = target[:, c:c + 1]
            acc.update(pred.numpy(), target.numpy(), list(batch["action"]))
    finally:
        model.train(was_training)
    res = acc.compute()
    out = {"MPJPE": float(res["mpjpe"]), "P-MPJPE": float(res["p_mpjpe"]), "N-MPJPE": float(res["n_mpjpe"])}
    if "mpjve" in res:
        out["MPJVE"] = float(res["mpjve"])
    out.update({k.replace("mpjpe/", "MPJPE/"): float(v) for k, v in res.items() if k.startswith("mpjpe/")})
    return out


def make_loader(dataset: Any, batch: int, sampler: Any, num_workers: int) -> DataLoader:
    """A DataLoader over lifting windows."""
    return DataLoader(dataset, batch_size=batch, sampler=sampler, shuffle=False, num_workers=num_workers)


def mean_pose_baseline(cfg: DataCfg, num_frames: int = 1) -> dict[str, float]:
    """The zero-motion baseline: predict the training set's mean root-relative pose for every test frame.

    Returns MPJPE / P-MPJPE in mm under the same per-action protocol as :func:`evaluate_lifting`; a
    lifting model that learned anything beats it by a wide margin.
    """
    import numpy as np

    train = H36MLiftingDataset(load_clips(cfg, "train"), frames=num_frames, mode="seq2seq")
    mean_pose = np.concatenate(train._x3d).mean(axis=0)  # (J, 3), root stays 0
    test = H36MLiftingDataset(load_clips(cfg, "test"), frames=num_frames, mode="seq2seq")
    acc = ActionErrorAccumulator(metrics=("mpjpe", "p_mpjpe"))
    for i in range(len(test)):
        item = test[i]
        target = item["target_3d"].numpy()[None]
        acc.update(np.broadcast_to(mean_pose, target.shape).copy(), target, [item["action"]])
    res = acc.compute()
    return {"MPJPE": float(res["mpjpe"]), "P-MPJPE": float(res["p_mpjpe"])}
