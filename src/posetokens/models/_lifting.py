"""Shared pieces of the 2D-to-3D lifting families (MixSTE, MotionBERT, MHFormer and their HoT variants)."""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor


class LiftOutput(NamedTuple):
    """A lifting model's output and the frames it kept.

    ``out`` is (B, F, J, 3) for seq2seq models, or (B, T, J, 3) over the kept frames for seq2frame ones;
    ``index`` is the sorted kept frames (B, T), or None when the model keeps every frame.
    """

    out: Tensor
    index: Tensor | None


def check_clip(x: Tensor, num_frames: int, num_joints: int, in_channels: int, name: str, exact: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is a (B, F, J, C) clip this model can take.

    J must equal ``num_joints``, C ``in_channels`` and F is at most ``num_frames`` (exactly that with
    ``exact``). The message names the model, what it expects and what it got.
    """
    expect = f"(B, {'' if exact else '<='}{num_frames}, {num_joints}, {in_channels})"
    got = tuple(x.shape)
    if x.dim() != 4:
        raise ValueError(f"{name} expects a clip of shape {expect} (batch, frames, joints, channels); got {got}")
    _, f, j, c = got
    if j != num_joints:
        raise ValueError(f"{name} expects {num_joints} joints per frame, got {j} (input {got}; expected {expect})")
    if c != in_channels:
        raise ValueError(f"{name} expects {in_channels} input channels per joint, got {c} (input {got}; expected {expect})")
    if f > num_frames:
        raise ValueError(
            f"{name} takes windows of at most {num_frames} frames, got {f} (input {got}): split the sequence "
            f"into windows of {num_frames}"
        )
    if exact and f != num_frames:
        raise ValueError(
            f"{name} takes windows of exactly {num_frames} frames, got {f} (input {got}): edge-pad the clip "
            f"to {num_frames} frames"
        )
    if f < 1:
        raise ValueError(f"{name} got an empty clip {got}")


def _frame_prunes(self: Any) -> bool:
    """Whether the lifter prunes frame tokens (HoT, TPC): its ``cfg.prune`` is active."""
    return bool(self.cfg.prune.active)


#: Every lifter's ``prunes`` (declared, so callers read it rather than probe the config).
frame_prunes = property(_frame_prunes)
