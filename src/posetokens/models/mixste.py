"""MixSTE (CVPR'22), HoT w. MixSTE and TPC w. MixSTE (HoT, CVPR'24) as one model: the variant is a config.

Layout of a forward pass (spec: ``shared/specs/hot.md``), on a clip x (B, F, J, C_in):

1. Linear(C_in -> C) per joint plus a spatial positional embedding (1, J, C).
2. ``depth`` steps, each a spatial block (attention over the J joints of a frame, batch B*F) followed by
   the one shared spatial LayerNorm, then a temporal block (attention over the frames of a joint, batch
   B*J) followed by the one shared temporal LayerNorm. The temporal positional embedding (1, F, C) is added
   once, before the first temporal block. Pre-norm blocks, LN eps 1e-6, drop-path linspace(0, p, depth)
   shared by the spatial and temporal block of a step.
3. HoT / TPC: before step ``prune.layer`` the model keeps T of the F frames (``FramePruneCfg.strategy``:
   the token pruning cluster on the joint-mean frame tokens, uniform, attention received in the previous
   temporal block, or input motion); HoT adds a learnable (1, T, C) embedding to every joint's kept sequence.
   Multi-stage schedules (``prune.extra_stages``, H2OT-style) prune again before later steps, each stage with
   its own embedding, and recover once at the end.
4. Recovery (seq2seq): token recovering attention from F learnable queries (HoT), or nearest / linear
   interpolation along time. ``recovery='none'`` is TPC's seq2frame mode: the centre frame is always kept
   and the model outputs the T kept frames.
5. Head: LayerNorm (eps 1e-5) -> Linear(C -> 3), root-relative 3D.

Sections: config -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from posetokens.layers import (
    Block,
    FramePruneCfg,
    TokenRecoveryAttention,
    check_forced_frames,
    gather_tokens,
    prune_step,
    recover_by_interpolation,
    stage_pos_embeds,
)
from posetokens.models._lifting import LiftOutput, check_clip, frame_prunes
from posetokens.registry import Family, PaperRow, register_family, register_model


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MixSTECfg:
    """Every hyperparameter of a MixSTE / HoT-MixSTE / TPC-MixSTE model.

    ``prune`` inactive (strategy ``none``) is plain MixSTE; ``prune.layer`` is the step (0-based) before
    which frames are pruned, so steps ``0 .. layer-1`` see all F frames.
    """

    num_frames: int = 243
    num_joints: int = 17
    in_channels: int = 2
    dim: int = 512
    depth: int = 8
    heads: int = 8
    mlp_hidden: int = 1024
    qkv_bias: bool = True
    drop_path: float = 0.1  # stochastic depth rises linearly from 0 to this over the steps
    prune: FramePruneCfg = field(default_factory=FramePruneCfg)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for sizes that do not fit together (run on construction too)."""
        if self.dim % self.heads:
            raise ValueError(f"MixSTECfg.dim {self.dim} is not divisible by heads {self.heads}")
        if min(self.num_frames, self.num_joints, self.in_channels, self.depth) < 1:
            raise ValueError(f"MixSTECfg: sizes must be positive, got {self}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"MixSTECfg.drop_path must be in [0, 1), got {self.drop_path}")
        p = self.prune
        if p.active:
            if not 1 <= p.layer < self.depth:
                raise ValueError(
                    f"MixSTECfg.prune.layer {p.layer} out of range: frames are pruned before a step 1..{self.depth - 1}"
                )
            if not 1 <= p.keep <= self.num_frames:
                raise ValueError(f"MixSTECfg.prune.keep {p.keep} must be in [1, {self.num_frames}]")
            if p.extra_stages and p.extra_stages[-1].layer >= self.depth:
                raise ValueError(
                    f"MixSTECfg.prune.extra_stages: layer {p.extra_stages[-1].layer} out of range: frames are pruned "
                    f"before a step 1..{self.depth - 1}"
                )

    @property
    def seq2frame(self) -> bool:
        """Whether the model outputs only its kept frames (TPC without recovery)."""
        return self.prune.active and self.prune.recovery == "none"

    @property
    def center(self) -> int:
        """The centre frame of a window, ``(F - 1) // 2``; always kept in seq2frame mode."""
        return (self.num_frames - 1) // 2


class MixSTETrace(NamedTuple):
    """A forward pass with what the frame selection saw: ``tokens`` (B, F, C), the joint-mean frame tokens
    entering the (first) pruning step (None when nothing is pruned); ``stage_index`` the original frames kept
    after each stage (``index`` is the last; pass them as ``keep_index`` to force every stage)."""

    out: Tensor
    index: Tensor | None
    tokens: Tensor | None
    stage_index: tuple[Tensor, ...] | None = None


# ---------------------------------------------------------------------------------------------- model
class MixSTE(nn.Module):
    """MixSTE, and HoT / TPC with MixSTE when ``cfg.prune`` is active (see the module doc)."""

    task = "lifting"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    prunes = frame_prunes  # whether frame tokens are pruned (HoT, TPC): cfg.prune.active
    auto_precision = "bf16-gemm"  # what --precision auto runs where the CPU's bfloat16 GEMMs pay (docs/speed.md)
    train_loss = "hot"  # the recipe's loss (posetokens.engine.lifting): weighted MPJPE + 0.5 TC + 2 MPJVE

    def __init__(self, cfg: MixSTECfg) -> None:
        super().__init__()
        self.cfg = cfg
        c, p = cfg.dim, cfg.prune
        self.joint_embed = nn.Linear(cfg.in_channels, c)
        self.spatial_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_joints, c))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, c))
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linspace(0, p, depth)

        def block(rate: float) -> Block:
            return Block(c, cfg.heads, cfg.mlp_hidden, qkv_bias=cfg.qkv_bias, eps=1e-6, drop_path=rate)

        self.spatial_blocks = nn.ModuleList(block(r) for r in rates)
        self.temporal_blocks = nn.ModuleList(block(r) for r in rates)
        self.spatial_norm = nn.LayerNorm(c, eps=1e-6)  # one LN shared by every spatial block (official quirk)
        self.temporal_norm = nn.LayerNorm(c, eps=1e-6)
        self.pruned_pos_embed = nn.Parameter(torch.zeros(1, p.keep, c)) if p.active and p.pos_embed else None
        self.stage_pos_embeds = stage_pos_embeds(p, c)  # one per later stage (multi-stage schedules only)
        self.recovery = (
            TokenRecoveryAttention(cfg.num_frames, c, cfg.heads, cfg.qkv_bias)
            if p.active and p.recovery == "attention"
            else None
        )
        self.head_norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, 3)

    # -- public API
    @property
    def is_seq2frame(self) -> bool:
        """True when the output covers only the kept frames (TPC); read the centre with ``read_center_frame``."""
        return self.cfg.seq2frame

    @property
    def center(self) -> int:
        """The centre frame index of a window."""
        return self.cfg.center

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random clip batch (B, F, J, C_in) of the model's size, on its device (FLOPs, benchmarks, export)."""
        cfg = self.cfg
        device = self.joint_embed.weight.device
        return (torch.randn(batch, cfg.num_frames, cfg.num_joints, cfg.in_channels, device=device),)

    def forward(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """2D clip (B, F, J, C_in) to 3D (B, F, J, 3), or (B, T, J, 3) over the kept frames if seq2frame.

        ``keep_index`` (B, T) forces the kept frames (the TPC flip pass reuses the un-flipped ones); with a
        multi-stage schedule it is the final frames, or a tuple of one (B, T_s) per stage (see
        :func:`~posetokens.layers.prune_step`). ``noise`` (B, F) in [0, 1) switches the cluster to the official
        numerics with that density noise.
        """
        return self._forward(x, keep_index, noise, False).out

    def forward_frames(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> LiftOutput:
        """Like :meth:`forward`, also returning the sorted kept frames (B, T) (None when nothing is pruned)."""
        res = self._forward(x, keep_index, noise, False)
        return LiftOutput(res.out, res.index)

    def forward_trace(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> MixSTETrace:
        """Like :meth:`forward_frames`, also returning the frame tokens the selection saw (parity, analysis)."""
        return self._forward(x, keep_index, noise, True)

    # -- internals
    def _step(self, i: int, h: Tensor, want_received: bool) -> tuple[Tensor, Tensor | None]:
        """One spatial + temporal step on h (B, T, J, C); optionally the attention each frame received."""
        b, t, j, c = h.shape
        s = self.spatial_norm(self.spatial_blocks[i](h.reshape(b * t, j, c)))
        s = s.reshape(b, t, j, c).transpose(1, 2).reshape(b * j, t, c)
        if i == 0:
            s = s + self.temporal_pos_embed[:, :t]
        blk, received = self.temporal_blocks[i], None
        if want_received:
            s, rec = blk.attend_received(s)
            s = blk.feed(s)
            received = rec.reshape(b, j, t).mean(dim=1)  # averaged over joints: (B, T)
        else:
            s = blk(s)
        s = self.temporal_norm(s)
        return s.reshape(b, j, t, c).transpose(1, 2), received

    def _forward(
        self, x: Tensor, keep_index: Tensor | tuple[Tensor, ...] | None, noise: Tensor | None, trace: bool
    ) -> MixSTETrace:
        cfg, p = self.cfg, self.cfg.prune
        check_clip(x, cfg.num_frames, cfg.num_joints, cfg.in_channels, type(self).__name__, exact=p.active)
        b, f = x.shape[:2]
        keep_index = check_forced_frames(p, keep_index, noise, b, f, type(self).__name__, x.device)
        h = self.joint_embed(x) + self.spatial_pos_embed  # (B, F, J, C)
        index, received, tokens, kept = None, None, None, []
        stages = p.stages
        at = {st.layer: n for n, st in enumerate(stages)}
        # stages that rank frames themselves: all without keep_index, the earlier ones when only the last is forced
        scored = [keep_index is None or (isinstance(keep_index, Tensor) and n < len(stages) - 1) for n in range(len(stages))]
        record = {st.layer - 1 for n, st in enumerate(stages) if st.strategy == "attention" and scored[n]}
        center = cfg.center if cfg.seq2frame else None
        for i in range(cfg.depth):
            n = at.get(i)
            if n is not None:
                frame_tokens = h.mean(dim=2) if trace or scored[n] else None  # (B, T, C): one token per frame
                if n == 0:
                    tokens = frame_tokens
                local, index = prune_step(
                    p, n, frame_tokens, index, poses=x, attn_received=received, noise=noise, center=center,
                    forced=keep_index,
                )
                h = gather_tokens(h, local)
                pos = self.pruned_pos_embed if n == 0 else (
                    self.stage_pos_embeds[n - 1] if self.stage_pos_embeds is not None else None
                )
                if pos is not None:
                    h = h + pos.unsqueeze(2)  # (1, T, 1, C): every joint's kept sequence
                kept.append(index)
            h, received = self._step(i, h, i in record)
        stage_index = tuple(kept) or None
        if index is not None and not cfg.seq2frame:
            if self.recovery is not None:
                c, j = h.shape[-1], h.shape[2]
                s = self.recovery(h.transpose(1, 2).reshape(b * j, h.shape[1], c))  # (B*J, F, C), joint-major
                # the per-token head runs in the recovery's own layout and only the 3-channel output is
                # transposed: a LayerNorm on the (B, F, J, C) transposed view would first copy all F frames
                out = self.head(self.head_norm(s)).reshape(b, j, f, 3).transpose(1, 2).contiguous()
                return MixSTETrace(out, index, tokens if trace else None, stage_index)
            h = recover_by_interpolation(h, index, f, p.recovery)
        return MixSTETrace(self.head(self.head_norm(h)), index, tokens if trace else None, stage_index)


# ------------------------------------------------------------------------- official checkpoint conversion
# Official HoT (model/mixste/{mixste,hot_mixste,tpc_mixste}.py) and original MixSTE key names -> ours.
_RENAME = {
    "Spatial_patch_to_embedding.weight": "joint_embed.weight",
    "Spatial_patch_to_embedding.bias": "joint_embed.bias",
    "Spatial_pos_embed": "spatial_pos_embed",
    "Temporal_pos_embed": "temporal_pos_embed",
    "pos_embed_token": "pruned_pos_embed",
    "x_token": "recovery.queries",
    "Spatial_norm.weight": "spatial_norm.weight",
    "Spatial_norm.bias": "spatial_norm.bias",
    "Temporal_norm.weight": "temporal_norm.weight",
    "Temporal_norm.bias": "temporal_norm.bias",
    "head.0.weight": "head_norm.weight",
    "head.0.bias": "head_norm.bias",
    "head.1.weight": "head.weight",
    "head.1.bias": "head.bias",
}
# Prefixes whose sub-keys are already ours (blocks: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2).
_PREFIX = {"STEblocks.": "spatial_blocks.", "TTEblocks.": "temporal_blocks.", "cross_attention.": "recovery.attn."}


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True when the keys look like an official HoT or MixSTE checkpoint (MixSTE-style key names)."""
    return any(k.startswith(("STEblocks.", "Spatial_patch_to_embedding.")) for k in state_dict)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: MixSTE) -> dict[str, Tensor]:
    """Map an official MixSTE / HoT-MixSTE / TPC-MixSTE state dict (already unwrapped) to this model's keys.

    Our own checkpoints pass through. Keys that match no rule keep their name, so the strict load that
    follows names them as unexpected (e.g. HoT weights loaded into a plain MixSTE config).
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key in _RENAME:
            out[_RENAME[key]] = value
            continue
        for old, new in _PREFIX.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value  # unknown: reported by the strict load
    return out


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="mixste",
        protocol="hot",
        build=MixSTE,
        convert=checkpoint_filter_fn,
        paper_counter="linear",
        convention="HoT (CVPR'24): 2 x MACs of the Linear layers only (attention matmuls excluded), per "
        "clip of num_frames frames, in 1e9",
    )
)

_SRC = "HoT (CVPR'24) Table (MixSTE rows); official figures measured in shared/specs/hot.md"
_HOT = FramePruneCfg(strategy="cluster", keep=81, layer=3, recovery="attention", pos_embed=True)
_TPC = FramePruneCfg(strategy="cluster", keep=61, layer=7, recovery="none", pos_embed=False)

for _name, _prune, _paper in [
    ("mixste_h36m_243", FramePruneCfg(), PaperRow(33.78, 277.25, 33.78, 277.25, _SRC)),
    ("hot_mixste_h36m_243", _HOT, PaperRow(35.00, 167.52, 35.00, 167.51, _SRC)),
    ("tpc_mixste_h36m_243", _TPC, PaperRow(33.78, 251.29, 33.78, 251.28, _SRC)),
]:
    register_model(_name, "mixste", MixSTECfg(prune=_prune), _paper)
