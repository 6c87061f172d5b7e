"""Top-down prediction over a loader (with flip test) and its COCO-style evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posetokens.codecs import HeatmapCodec, flip_heatmaps
from posetokens.data.metainfo import PoseMetaInfo
from posetokens.evaluation.coco import evaluate_coco


def crop_to_image(keypoints: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Map crop-space keypoints (B, K, 2) back to the image with the inverse of each (B, 2, 3) warp."""
    a, t = warp[:, :, :2], warp[:, :, 2:]
    inv_a = np.linalg.inv(a)
    return np.einsum("bij,bkj->bki", inv_a, keypoints - t.transpose(0, 2, 1))


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_indices: list[int] | None) -> torch.Tensor:
    """Heatmaps of a batch, averaged with the flipped-back prediction on mirrored images when
    ``flip_indices`` is given (TokenPose/PPT: no one-pixel shift)."""
    heatmaps = model(images)
    if flip_indices is not None:
        flipped = model(images.flip(-1))
        heatmaps = 0.5 * (heatmaps + flip_heatmaps(flipped, flip_indices, shift=False))
    return heatmaps


@torch.no_grad()
def predict_coco(model: nn.Module, loader: DataLoader, codec: HeatmapCodec, metainfo: PoseMetaInfo,
                 flip_test: bool, device: torch.device) -> list[dict[str, Any]]:
    """COCO-results dicts (keypoints in image pixels, per-joint scores, ``bbox_score``) for every sample."""
    was_training = model.training
    model.eval()
    results: list[dict[str, Any]] = []
    flip = list(metainfo.flip_indices) if flip_test else None
    try:
        for batch in loader:
            heatmaps = predict_heatmaps(model, batch["image"].to(device), flip).float().cpu().numpy()
            kpts, scores = codec.decode(heatmaps)
            kpts = crop_to_image(np.asarray(kpts, np.float64), batch["warp_matrix"].numpy())
            for i in range(len(kpts)):  # per instance: building the output records, not model work
                flat = np.concatenate([kpts[i], np.asarray(scores[i], np.float64)[:, None]], axis=1)
                results.append({
                    "image_id": int(batch["img_id"][i]), "category_id": 1,
                    "keypoints": flat.reshape(-1).tolist(), "score": float(batch["bbox_score"][i]),
                    "bbox_score": float(batch["bbox_score"][i]),
                })
    finally:
        model.train(was_training)
    return results


def coco_metrics(gt_file: str, results: list[dict[str, Any]], metainfo: PoseMetaInfo) -> dict[str, float]:
    """AP/AR with the dataset's sigmas, box x keypoint rescoring and OKS-NMS at 0.9."""
    return evaluate_coco(gt_file, results, metainfo.sigmas_array, iou_type=metainfo.eval_iou_type,
                         use_area=metainfo.eval_use_area, rescore=True, nms_thr=0.9)
