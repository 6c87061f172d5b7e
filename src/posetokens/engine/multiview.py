"""Multi-view training and evaluation pieces (multi-view PPT on :class:`MultiViewH36M` batches).

* :func:`multiview_loss`: JointsMSE summed over views (the official recipe).
* :func:`decode_views`: per-view heatmaps to original-image pixels (argmax + quarter-pixel shift, no flip).
* :func:`evaluate_multiview`: JDR per joint and mean, and MPJPE (mm) of the DLT triangulation of the
  per-view predictions (confidences unused, as the official pymvg DLT), optionally with RANSAC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from posetokens.codecs.heatmap import HeatmapCodec
from posetokens.data.datasets.h36m_multiview import TOOLBOX_ACTIONS
from posetokens.data.metainfo import H36M
from posetokens.data.transforms import affine_keypoints
from posetokens.engine.data import data_protocol
from posetokens.engine.losses import joints_mse
from posetokens.evaluation.multiview import JDR_THRESHOLD_PX, joint_detection_rate, masked_mpjpe, triangulated_mpjpe
from posetokens.fileio import require_file
from posetokens.protocols.codec import build_codec
from posetokens.protocols.predict import evaluating


def multiview_loss(model: nn.Module, batch: dict[str, Any], device: torch.device) -> Tensor:
    """Sum over views of JointsMSE for one (B, V, ...) batch."""
    out = model(*_model_inputs(model, batch, device))
    target, weight = batch["heatmaps"].to(device), batch["target_weight"].to(device)
    return out.shape[1] * joints_mse(out.flatten(0, 1), target.flatten(0, 1), weight.flatten(0, 1))


def decode_views(heatmaps: Tensor, crop_to_image: Tensor, codec: HeatmapCodec) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (B, V, J, h, w) to keypoints (B, V, J, 2) in original-image pixels and scores (B, V, J)."""
    b, v = heatmaps.shape[:2]
    kps, scores = codec.decode(heatmaps.flatten(0, 1).float().cpu().numpy())
    img = affine_keypoints(kps, crop_to_image.double().cpu().numpy().reshape(b * v, 2, 3))
    return img.reshape(b, v, *img.shape[1:]), scores.reshape(b, v, -1)


@torch.no_grad()
def evaluate_multiview(
    model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int = 8, ransac_threshold: float | None = None
) -> dict[str, float]:
    """``{"jdr": mean, "jdr/<joint name>": ..., "instants": n, "mpjpe_mm": ..., "mpjpe_mm/<action>": ...}`` of
    ``model`` on a multi-view dataset (H36M's joint names for 17 joints, else indices; ``mpjpe_mm`` only when the
    dataset has 3D ground truth, and per action (the toolbox's action ids) as the official table; ``instants``:
    how many were scored). The model's train/eval mode is restored."""
    with evaluating(model):
        return _evaluate_multiview(model, dataset, device, batch_size, ransac_threshold)


def _model_inputs(model: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[Tensor, ...]:
    """(images,) or (images, rays): rays only for a model with the 3D ray encoding (``ray_pe``)."""
    images = batch["images"].to(device, non_blocking=True)
    if not model.cfg.ray_pe:
        return (images,)
    return images, batch["rays"].to(device, non_blocking=True)


def _evaluate_multiview(
    model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int, ransac_threshold: float | None
) -> dict[str, float]:
    preds, gts, vis, Ps, gt3d, actions = [], [], [], [], [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        out = model(*_model_inputs(model, batch, device))
        kps, _ = decode_views(out, batch["crop_to_image"], dataset.codec)
        preds.append(kps)
        gts.append(batch["joints_2d"].numpy())
        vis.append(batch["joints_vis"].numpy() > 0)
        Ps.append(batch["P"].numpy())
        actions.append(batch["action"].numpy() if "action" in batch else np.full(len(kps), -1))
        if "joints_3d" in batch:
            gt3d.append(batch["joints_3d"].numpy())
    pred, gt = np.concatenate(preds), np.concatenate(gts)
    per_joint, mean = joint_detection_rate(pred, gt, JDR_THRESHOLD_PX, np.concatenate(vis))
    names = H36M.keypoint_names if len(per_joint) == H36M.num_keypoints else range(len(per_joint))
    metrics = {"jdr": mean, **{f"jdr/{name}": float(r) for name, r in zip(names, per_joint, strict=True)},
               "instants": float(len(pred))}  # how many instants were scored (every mv_val_every-th)
    if len(gt3d) == len(preds):  # every record has 3D ground truth: MPJPE of the triangulated joints
        # invisible joints count as 0 error, by the visibility of the instant's last view (the official estimate_tri
        # takes the `joints_vis` of the last record of each instant's group)
        truth = np.concatenate(gt3d)
        visible = np.concatenate(vis)[:, -1]
        metrics["mpjpe_mm"], points = triangulated_mpjpe(pred, np.concatenate(Ps), truth,
                                                         ransac_threshold=ransac_threshold, visible=visible)
        per_instant, action = masked_mpjpe(points, truth, visible), np.concatenate(actions)
        for a in sorted(set(action.tolist()) & set(TOOLBOX_ACTIONS)):  # the official per-action table
            metrics[f"mpjpe_mm/{TOOLBOX_ACTIONS[a]}"] = float(per_instant[action == a].mean())
    return metrics


def build_multiview_set(cfg: Any, split: str, model: nn.Module) -> Dataset:
    """The recipe's :class:`MultiViewH36M` for ``split`` (``data.format: h36m_multiview``): crops, heatmaps
    and rays at the model's sizes; every ``data.mv_train_every``-th / ``data.mv_val_every``-th instant; the
    cameras ``data.mv_cameras`` (default the first ``num_views`` ids) in view order."""
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    ann, img_dir = (cfg.train_ann, cfg.train_img_dir) if split == "train" else (cfg.val_ann, cfg.val_img_dir)
    if not ann:
        raise ValueError(f"config: data.{split}_ann is empty; set it to an H36M-Toolbox pickle")
    require_file(ann, f"data.{split}_ann")  # the field, as the COCO-style sets say it
    mcfg = model.cfg
    (h, w), (gh, gw) = mcfg.image_size, mcfg.patch_grid
    cameras = tuple(cfg.mv_cameras) or tuple(range(mcfg.num_views))
    if len(cameras) != mcfg.num_views:
        raise ValueError(f"config: data.mv_cameras lists {len(cameras)} camera(s) {list(cameras)} but the model takes "
                         f"{mcfg.num_views} views (model.overrides.num_views)")
    protocol = data_protocol(cfg, model)
    return MultiViewH36M(
        ann, img_dir, cameras=cameras, cameras_pkl=cfg.cameras or None, num_joints=mcfg.num_keypoints,
        image_size=mcfg.image_size, heatmap_size=mcfg.heatmap_size, patch_grid=(gh, gw), patch_stride=(h // gh, w // gw),
        codec=build_codec(protocol, mcfg.image_size, mcfg.heatmap_size),
        every=cfg.mv_train_every if split == "train" else cfg.mv_val_every,
        exif_orientation=protocol.exif_orientation,
    )

