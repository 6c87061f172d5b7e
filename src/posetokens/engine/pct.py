"""PCT in the trainer: the two stages' training step and the stage-1 (tokenizer) evaluation.

Stage 1 reads only poses (``TopDownSamples(poses_only=True)``) unless its encoder is image-guided;
its evaluation reconstructs the val poses (GT boxes, no augmentation) and reports the mean pixel error
over labelled joints in the input crop plus codebook usage. Stage 2 is scored by the COCO path
(``model.predict`` gives crop-pixel keypoints and the official pose score).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from posetokens.codecs import CoordinateCodec
from posetokens.engine.config import TrainCfg
from posetokens.engine.data import build_samples, data_protocol, make_loader
from posetokens.models.pct import codebook_usage_from_counts
from posetokens.protocols.predict import evaluating


def pct_loss(model: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
    """The loss of one PCT batch (either stage) and its detached statistics for the log (tensors: the trainer
    turns them into numbers only on the steps it logs, so training does not sync every step)."""
    if "joints" not in batch:
        raise ValueError("PCT training needs crop-pixel joints in the batch (a protocol whose target codec is coords)")
    joints = batch["joints"].to(device)
    img = batch["image"].to(device, non_blocking=True) if "image" in batch else None
    out = model.forward_train(joints, img)
    stats = {k: torch.as_tensor(v).detach() for k, v in out.items() if k != "loss"}
    return out["loss"], stats


def tokenizer_val_samples(data: Any, model: nn.Module) -> Any:
    """The tokenizer's val samples: ground-truth boxes (``data.val_det`` is not used), crop joints for every
    instance."""
    data = dataclasses.replace(data, val_det=None)
    size = model.cfg.image_size
    samples = build_samples(data, "val", size, data_protocol(data, model), None, poses_only=not model.needs_images)
    samples.pipeline.codec = CoordinateCodec((size[1], size[0]))
    return samples


@torch.no_grad()
def evaluate_tokenizer(model: nn.Module, cfg: TrainCfg, device: torch.device) -> dict[str, float]:
    """Stage-1 metrics on the val set (GT boxes): ``recon_px`` (mean Euclidean error over labelled joints,
    crop pixels), ``recon_px_median``, ``codes_in_use`` (distinct codes over all val tokens),
    ``codebook_usage`` (their fraction of the codebook) and ``perplexity`` of the code histogram."""
    samples = tokenizer_val_samples(cfg.data, model)
    loader = make_loader(samples, cfg.data.val_batch_size, None, cfg.data.num_workers)
    errors, counts = [], None
    v = model.cfg.tokenizer.codebook_size
    with evaluating(model):
        counts = torch.zeros(v, dtype=torch.long, device=device)
        for batch in loader:
            joints = batch["joints"].to(device)
            img = batch["image"].to(device) if "image" in batch else None
            out = model.tokenize(joints, img)
            err = (out.joints - joints[..., :2]).norm(dim=-1)
            errors.append(err[joints[..., 2] > 0].cpu())
            counts += torch.bincount(out.indices.flatten(), minlength=v)
    if not errors:
        raise ValueError(f"{cfg.data.val_ann}: no val instances to evaluate the tokenizer on")
    err = torch.cat(errors)
    usage = codebook_usage_from_counts(counts)
    used = float(usage["codes_in_use"])
    return {"recon_px": float(err.mean()), "recon_px_median": float(err.median()), "codes_in_use": used,
            "codebook_usage": used / v, "perplexity": float(usage["perplexity"])}
