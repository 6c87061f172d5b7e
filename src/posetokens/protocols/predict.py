"""A model's output for a batch under its protocol's test rule: top-down crops (and the way back to the image)
and lifting windows.

The one home of the flip test and of crop -> image mapping, shared by ``test``, training's evaluation,
``infer`` and ``lift`` (engine and inference both import it; it imports neither).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from posetokens.data.h36m import flip_keypoints
from posetokens.data.metainfo import get_metainfo
from posetokens.evaluation.h36m_protocol import flip_merge as flip_merge_3d, zero_root
from posetokens.layers import read_center_frame

from posetokens.data.transforms import affine_keypoints, invert_affine
from posetokens.protocols import TestRule
from posetokens.protocols.codec import flip_merge

__all__ = ["crop_to_image", "evaluating", "model_input", "predict_outputs", "predict_windows"]


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block (dropout and drop-path off, BatchNorm on its running statistics), then
    every submodule back in its own mode (a frozen backbone kept in eval stays there). Nothing changes when no
    module is in training mode. Every prediction runs under it: a model fresh from ``create_model`` is in training mode."""
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    if not any(mode for _, mode in modes):
        yield model
        return
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


def crop_to_image(keypoints: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Map crop-space keypoints (B, K, 2) back to the image with the inverse of each image -> crop warp (B, 2, 3)."""
    return affine_keypoints(keypoints, invert_affine(warp))


@torch.no_grad()
def predict_outputs(model: nn.Module, images: torch.Tensor, rule: TestRule, flip_indices: list[int] | None) -> Any:
    """The model's decodable output for a batch, as numpy: heatmaps, SimCC ``(x, y)`` logits, or crop-pixel
    ``(keypoints, scores)`` of a coordinate model (PCT, whose flip test is its own ``predict``).

    With ``rule.flip_test`` (and ``flip_indices``), the mirrored batch's output is flipped back (with
    ``rule.flip_shift``'s one-pixel/bin shift) and averaged: heatmaps as maps (TokenPose), SimCC as logits before
    any softmax (GTPT). ``model.output_kind`` (declared by the model class) says which it returns.
    """
    flip = flip_indices if rule.flip_test else None
    kind = model.output_kind
    if kind not in ("heatmap", "simcc", "coords"):
        raise ValueError(f"{type(model).__name__}: output_kind {kind!r} is not heatmap, simcc or coords")
    with evaluating(model):
        if kind == "coords":
            return tuple(t.float().cpu().numpy() for t in model.predict(images, flip))
        out = model(images)
        if flip is not None:  # merged in float32 whatever the model ran in (the official code averages float32)
            out = flip_merge(rule, _float(out), _float(model(images.flip(-1))), flip)
    return tuple(t.cpu().numpy() for t in out) if kind == "simcc" else _float(out).cpu().numpy()


def _float(out: Any) -> Any:
    return tuple(t.float() for t in out) if isinstance(out, (tuple, list)) else out.float()


def model_input(model: nn.Module, x2d: Tensor) -> Tensor:
    """Width-normalised 2D (B, F, J, 2) to the model's input: a confidence channel of 1 for 3-channel
    models (MotionBERT) when the 2D has none."""
    if model.cfg.in_channels == 3 and x2d.shape[-1] == 2:
        x2d = torch.cat((x2d, torch.ones_like(x2d[..., :1])), dim=-1)
    return x2d


@torch.no_grad()
def predict_windows(model: nn.Module, x2d: Tensor, flip_test: bool) -> Tensor:
    """Root-zeroed 3D for windows (B, F, J, 2): every frame for seq2seq, the centre frame (B, 1, J, 3) for
    seq2frame. The flip test is :func:`~posetokens.evaluation.h36m_protocol.flip_merge` of the outputs on the
    plain and the mirrored input (the seq2frame flip pass reuses the plain pass's kept frames, as the
    official TPC code does)."""
    flip = list(get_metainfo("h36m").flip_indices)
    x = model_input(model, x2d)
    with evaluating(model):
        out, index = model.forward_frames(x)
        if flip_test:
            out_f, _ = model.forward_frames(flip_keypoints(x, flip), keep_index=index)
            out = flip_merge_3d(out, out_f, flip, root=0)
        else:
            out = zero_root(out, 0)
    if model.is_seq2frame:
        centre = x2d.shape[1] // 2
        if index is not None:  # TPC: the output covers the kept frames, the centre among them
            out = read_center_frame(out, index, centre)
        elif out.shape[1] != 1:
            out = out[:, centre:centre + 1]
    return out
