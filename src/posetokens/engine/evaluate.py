"""Top-down prediction over a loader (with flip test) and its COCO-style evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posetokens.codecs import flip_heatmaps, flip_simcc
from posetokens.codecs.base import BaseKeypointCodec
from posetokens.data.metainfo import PoseMetaInfo
from posetokens.data.transforms import affine_keypoints, invert_affine
from posetokens.evaluation.coco import evaluate_coco
from posetokens.evaluation.wholebody import evaluate_wholebody


def crop_to_image(keypoints: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Map crop-space keypoints (B, K, 2) back to the image with the inverse of each (B, 2, 3) warp."""
    return affine_keypoints(keypoints, invert_affine(warp))


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
def predict_simcc(model: nn.Module, images: torch.Tensor, flip_indices: list[int] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCC logits ``(x, y)`` of a batch; with ``flip_indices``, averaged (as logits) with the mirrored
    images' prediction flipped back with GTPT's one-bin x shift."""
    x, y = model(images)
    if flip_indices is not None:
        fx, fy = flip_simcc(*model(images.flip(-1)), flip_indices, shift=True)
        x, y = 0.5 * (x + fx), 0.5 * (y + fy)
    return x, y


def predict_outputs(model: nn.Module, images: torch.Tensor, flip_indices: list[int] | None) -> Any:
    """The model's decodable output for a batch, as numpy: heatmaps, SimCC ``(x, y)`` logits, or
    crop-pixel ``(keypoints, scores)`` of a coordinate-output model."""
    if getattr(model, "output_kind", "heatmap") == "coords":  # PCT: keypoints and scores, flip test inside
        return tuple(t.float().cpu().numpy() for t in model.predict(images, flip_indices))
    if getattr(model, "output_kind", "heatmap") == "simcc":
        return tuple(t.float().cpu().numpy() for t in predict_simcc(model, images, flip_indices))
    return predict_heatmaps(model, images, flip_indices).float().cpu().numpy()


@torch.no_grad()
def predict_keypoints(model: nn.Module, loader: DataLoader, codec: BaseKeypointCodec, metainfo: PoseMetaInfo,
                      flip_test: bool, device: torch.device) -> dict[str, np.ndarray]:
    """Image-space keypoints (N, K, 2), scores (N, K), image ids and box scores, in loader order."""
    was_training = model.training
    model.eval()
    flip = list(metainfo.flip_indices) if flip_test else None
    out: dict[str, list] = {"keypoints": [], "scores": [], "img_id": [], "bbox_score": []}
    try:
        for batch in loader:
            kpts, scores = codec.decode(predict_outputs(model, batch["image"].to(device), flip))
            out["keypoints"].append(crop_to_image(np.asarray(kpts, np.float64), batch["warp_matrix"].numpy()))
            out["scores"].append(np.asarray(scores, np.float64))
            out["img_id"].append(batch["img_id"].numpy())
            out["bbox_score"].append(batch["bbox_score"].numpy().astype(np.float64))
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) for k, v in out.items()}


def predict_coco(model: nn.Module, loader: DataLoader, codec: BaseKeypointCodec, metainfo: PoseMetaInfo,
                 flip_test: bool, device: torch.device) -> list[dict[str, Any]]:
    """COCO-results dicts (keypoints in image pixels, per-joint scores, ``bbox_score``) for every sample."""
    pred = predict_keypoints(model, loader, codec, metainfo, flip_test, device)
    flat = np.concatenate([pred["keypoints"], pred["scores"][..., None]], axis=2).reshape(len(pred["scores"]), -1)
    return [
        {"image_id": int(i), "category_id": 1, "keypoints": k.tolist(), "score": float(s), "bbox_score": float(s)}
        for i, k, s in zip(pred["img_id"], flat, pred["bbox_score"])
    ]


def load_mpii_headboxes(path: str) -> np.ndarray:
    """MPII head boxes (N, 2, 2) as [[x1, y1], [x2, y2]] from the official ``gt_valid.mat``
    (``headboxes_src``, needs scipy) or a ``.npy`` of that shape."""
    if path.endswith(".mat"):
        try:
            from scipy.io import loadmat
        except ImportError as e:
            raise ImportError(f"reading {path} needs scipy (pip install scipy), or convert it to .npy") from e
        mat = loadmat(path)
        if "headboxes_src" not in mat:
            raise ValueError(f"{path}: no 'headboxes_src' field (expected MPII's gt_valid.mat)")
        boxes = np.asarray(mat["headboxes_src"], np.float64).transpose(2, 0, 1)  # (corner, xy, N) -> (N, corner, xy)
    else:
        boxes = np.load(path).astype(np.float64)
    if boxes.ndim != 3 or boxes.shape[1:] != (2, 2):
        raise ValueError(f"{path}: head boxes must have shape (N, 2, 2), got {boxes.shape}")
    return boxes


def mpii_metrics(dataset: Any, keypoints: np.ndarray, headboxes_file: str | None) -> dict[str, float]:
    """PCKh@0.5 report of image-space predictions against an MPII dataset's joints (same order)."""
    from posetokens.evaluation.functional import pckh

    if not headboxes_file:
        raise ValueError("config: MPII PCKh needs data.mpii_headboxes (gt_valid.mat or an (N, 2, 2) .npy)")
    boxes = load_mpii_headboxes(headboxes_file)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if len(boxes) != len(infos):
        raise ValueError(f"{headboxes_file}: {len(boxes)} head boxes for {len(infos)} MPII samples")
    gt = np.stack([i["keypoints"] for i in infos])
    vis = np.stack([i["keypoints_visible"] for i in infos]) > 0
    return pckh(keypoints, gt, vis, head_boxes=boxes)


def coco_metrics(gt_file: str, results: list[dict[str, Any]], metainfo: PoseMetaInfo) -> dict[str, float]:
    """AP/AR with the dataset's sigmas, box x keypoint rescoring and OKS-NMS at 0.9.

    COCO-WholeBody: ``AP``/``AR`` are the whole-body figures, plus ``{part}_{metric}`` for body, foot, face,
    left/right hand and hand (their mean), from :func:`~posetokens.evaluation.wholebody.evaluate_wholebody`.
    """
    if metainfo.name == "coco_wholebody":
        parts = evaluate_wholebody(gt_file, results, rescore=True, nms_thr=0.9)
        flat = {f"{part}_{k}": v for part, stats in parts.items() for k, v in stats.items()}
        return {**parts["wholebody"], **flat}
    return evaluate_coco(gt_file, results, metainfo.sigmas_array, iou_type=metainfo.eval_iou_type,
                         use_area=metainfo.eval_use_area, rescore=True, nms_thr=0.9)
