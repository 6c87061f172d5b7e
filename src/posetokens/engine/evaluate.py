"""Top-down prediction over a loader (with the protocol's flip test) and its COCO-style or PCKh evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posetokens.codecs.base import BaseKeypointCodec
from posetokens.data.metainfo import PoseMetaInfo
from posetokens.evaluation.coco import PERSON_CATEGORY, evaluate_keypoints
from posetokens.protocols import EvalRule, Protocol
from posetokens.protocols.predict import crop_to_image, evaluating, predict_outputs


@torch.no_grad()
def predict_keypoints(model: nn.Module, loader: DataLoader, codec: BaseKeypointCodec, metainfo: PoseMetaInfo,
                      protocol: Protocol, device: torch.device) -> dict[str, np.ndarray]:
    """Image-space keypoints (N, K, 2), scores (N, K), image ids, box scores and the padded boxes' centres and
    sizes (N, 2), in loader order, with the protocol's flip test."""
    flip = list(metainfo.flip_indices)
    out: dict[str, list] = {"keypoints": [], "scores": [], "img_id": [], "bbox_score": [], "center": [], "scale": []}
    with evaluating(model):
        for batch in loader:
            kpts, scores = codec.decode(predict_outputs(model, batch["image"].to(device), protocol.test, flip))
            out["keypoints"].append(crop_to_image(np.asarray(kpts, np.float64), batch["warp_matrix"].numpy()))
            out["scores"].append(np.asarray(scores, np.float64))
            out["img_id"].append(batch["img_id"].numpy())
            out["bbox_score"].append(batch["bbox_score"].numpy().astype(np.float64))
            out["center"].append(batch["center"].numpy())
            out["scale"].append(batch["scale"].numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def predict_coco(model: nn.Module, loader: DataLoader, codec: BaseKeypointCodec, metainfo: PoseMetaInfo,
                 protocol: Protocol, device: torch.device) -> list[dict[str, Any]]:
    """COCO-results dicts for every sample: keypoints in image pixels with per-joint scores, ``score`` and
    ``bbox_score`` (the box score; rescoring happens at evaluation), and ``area``, ``center``, ``scale`` of the
    padded box (the area OKS-NMS uses under the official protocols)."""
    pred = predict_keypoints(model, loader, codec, metainfo, protocol, device)
    flat = np.concatenate([pred["keypoints"], pred["scores"][..., None]], axis=2).reshape(len(pred["scores"]), -1)
    return [
        {"image_id": int(i), "category_id": PERSON_CATEGORY, "keypoints": k.tolist(), "score": float(s),
         "bbox_score": float(s), "area": float(np.prod(sc)), "center": c.tolist(), "scale": sc.tolist()}
        for i, k, s, c, sc in zip(pred["img_id"], flat, pred["bbox_score"], pred["center"], pred["scale"])
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


def mpii_metrics(dataset: Any, keypoints: np.ndarray, headboxes_file: str | None, rule: EvalRule) -> dict[str, float]:
    """PCKh@0.5 report of image-space predictions against an MPII dataset's joints (same order); ``Mean@0.1``
    reads the protocol's threshold (``rule.pckh_mean01_thr``: 0.11 in the official TokenPose/PPT code), and
    ``Mean@0.10`` / ``Mean@0.11`` give both readings."""
    from posetokens.evaluation.functional import pckh

    if not headboxes_file:
        raise ValueError("config: MPII PCKh needs data.mpii_headboxes (gt_valid.mat or an (N, 2, 2) .npy)")
    boxes = load_mpii_headboxes(headboxes_file)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    if len(boxes) != len(infos):
        raise ValueError(f"{headboxes_file}: {len(boxes)} head boxes for {len(infos)} MPII samples")
    gt = np.stack([i["keypoints"] for i in infos])
    vis = np.stack([i["keypoints_visible"] for i in infos]) > 0
    return pckh(keypoints, gt, vis, head_boxes=boxes, mean01_thr=rule.pckh_mean01_thr)


def coco_metrics(gt_file: str, results: list[dict[str, Any]], metainfo: PoseMetaInfo, rule: EvalRule,
                 source: str | None = None) -> dict[str, float]:
    """AP/AR under the protocol's evaluation rule (rescoring threshold, OKS-NMS and its area, COCOeval);
    ``source``: what the messages call the results.

    COCO-WholeBody: ``AP``/``AR`` are the whole-body figures, plus ``{part}_{metric}`` for every part.
    """
    return evaluate_keypoints(gt_file, results, metainfo, rule, source=source)
