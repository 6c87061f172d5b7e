"""Positional encodings (torch only)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sine_pos_embed_2d(
    h: int, w: int, dim: int, temperature: float = 10000.0, scale: float = 2 * math.pi, eps: float = 1e-6
) -> Tensor:
    """Fixed DETR-style 2-D sine embedding of an ``h x w`` grid, shape (1, h*w, dim), row-major.

    Half the channels encode y and half x (concatenated y then x). Positions are ``cumsum / last * scale``;
    frequency ``temperature ** (2 * (i // 2) / (dim / 2))`` with sin on even and cos on odd channels.
    This is the ``sine-full`` encoding of TokenPose/PPT, bit-compatible with the official tensor.
    """
    if dim % 4:
        raise ValueError(f"sine_pos_embed_2d: dim must be a multiple of 4, got {dim}")
    half = dim // 2
    area = torch.ones(1, h, w)
    y = area.cumsum(1, dtype=torch.float32)
    x = area.cumsum(2, dtype=torch.float32)
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    px = x[..., None] / dim_t
    py = y[..., None] / dim_t
    px = torch.stack((px[..., 0::2].sin(), px[..., 1::2].cos()), dim=4).flatten(3)
    py = torch.stack((py[..., 0::2].sin(), py[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((py, px), dim=3).reshape(1, h * w, dim)


def missing_sine_pos_embed(family: str) -> ValueError:
    """The error for an official checkpoint without its stored sine table (it converted silently: a config with
    no or a learned encoding would have run with ours)."""
    return ValueError(f"no pos_embedding: every official {family} checkpoint of the supported 'sine-full' configs "
                      "stores its sine table (a config without an encoding or with a learned one is not supported)")


def check_sine_pos_embed(pos: Tensor, ours: Tensor, what: str = "") -> None:
    """Raise ``ValueError`` unless an official checkpoint's stored ``pos`` is the sine table ``ours`` to the
    precision it was saved in (float32: 1e-5; a float16 or bfloat16 copy: its rounding), so a learned or other
    encoding is refused and a half-precision copy of the right one is not. ``what`` ends the message."""
    if tuple(pos.shape) != tuple(ours.shape):
        raise ValueError(f"official pos_embedding has shape {tuple(pos.shape)}, but this config's sine PE is "
                         f"{tuple(ours.shape)}{what}")
    tol = 1e-5
    if pos.is_floating_point() and torch.finfo(pos.dtype).bits < 32:
        tol = max(tol, torch.finfo(pos.dtype).eps * float(ours.abs().max()))
    diff = float((pos.float() - ours).abs().max())
    if not diff <= tol:
        raise ValueError(f"official pos_embedding differs from the 2-D sine PE by {diff:.3g} (tolerance {tol:.2g} in "
                         f"{str(pos.dtype).removeprefix('torch.')}){what}")
