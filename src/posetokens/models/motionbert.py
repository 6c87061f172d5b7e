"""MotionBERT's DSTformer (ICCV'23) and HoT w. MotionBERT (CVPR'24) as one model: HoT is a pruning config.

Layout of a forward pass (spec: ``shared/specs/hot.md``), on a clip (B, F, J, 3) of 2D poses + confidence:

1. ``joints_embed`` Linear(3 -> C), plus a joint embedding (1, J, C) and a temporal embedding
   (1, F_max, 1, C) sliced to the clip's F frames.
2. ``depth`` levels. Each runs two branches on the same input: ST (spatial attention, MLP, temporal
   attention, MLP) and TS (temporal first). Every sub-layer is pre-LN with a residual; spatial attention
   is over the J joints of a frame, temporal attention over the F frames of a joint. The branches are fused
   by ``softmax(ts_attn[i](cat[x_st, x_ts]))`` (or averaged when ``att_fuse`` is off).
3. HoT (``cfg.prune``): before level ``prune.layer`` T of the F frames are kept (token pruning cluster on
   the joint-mean tokens, or the uniform / attention / motion ablations) and a learnable (1, T, C)
   embedding is added; after the final norm the F frames are recovered (token recovering attention, or
   nearest / linear interpolation), or, with recovery ``none``, the kept frames are the output (seq2frame).
   Multi-stage schedules (``prune.extra_stages``, H2OT-style) prune again before later levels, each stage with
   its own embedding, and recover once at the end.
4. Final LN, ``pre_logits`` Linear(C -> dim_rep) + tanh, ``head`` Linear(dim_rep -> 3).

Sections: config -> blocks -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from posetokens.layers import (
    Attention,
    FramePruneCfg,
    Mlp,
    TokenRecoveryAttention,
    check_forced_frames,
    drop_path,
    gather_tokens,
    prune_step,
    recover_by_interpolation,
    stage_pos_embeds,
)
from posetokens.layers.init import init_transformer_weights
from posetokens.models._lifting import LiftOutput, check_clip, frame_prunes
from posetokens.layers.checks import require_positive
from posetokens.registry import Family, PaperRow, register_family, register_model


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DSTformerCfg:
    """Every hyperparameter of a DSTformer / HoT-MotionBERT model.

    ``mlp_hidden`` overrides ``mlp_ratio * dim`` when given. ``num_frames`` is the longest clip (the
    temporal embedding's length, MotionBERT's ``maxlen``); shorter clips use its first frames.
    """

    num_frames: int = 243
    num_joints: int = 17
    in_channels: int = 3
    out_channels: int = 3
    dim: int = 256
    depth: int = 5
    heads: int = 8
    mlp_ratio: float = 4.0
    mlp_hidden: int | None = None
    dim_rep: int = 512
    qkv_bias: bool = True
    drop_path: float = 0.0
    att_fuse: bool = True
    norm_eps: float = 1e-6
    prune: FramePruneCfg = field(default_factory=FramePruneCfg)

    @property
    def hidden(self) -> int:
        """Width of the MLPs."""
        return self.mlp_hidden if self.mlp_hidden is not None else int(self.dim * self.mlp_ratio)

    def validate(self) -> None:
        """Raise ``ValueError`` for sizes that cannot build a model."""
        require_positive(self, "num_frames", "num_joints", "in_channels", "out_channels", "dim", "depth", "heads",
                         "mlp_hidden", "dim_rep")
        if self.dim % self.heads:
            raise ValueError(f"DSTformerCfg.dim {self.dim} is not divisible by heads {self.heads}")
        if min(self.num_frames, self.num_joints, self.in_channels, self.depth, self.dim_rep, self.hidden) < 1:
            raise ValueError(f"DSTformerCfg: sizes must be positive, got {self}")
        p = self.prune
        if p.active:
            if not 0 <= p.layer < self.depth:
                raise ValueError(f"DSTformerCfg.prune.layer {p.layer} out of range for depth {self.depth}")
            if p.strategy == "attention" and p.layer == 0:
                raise ValueError("DSTformerCfg.prune: strategy 'attention' needs a level before the pruning point")
            if not 1 <= p.keep <= self.num_frames:
                raise ValueError(f"DSTformerCfg.prune.keep {p.keep} must be in [1, num_frames={self.num_frames}]")
            if p.extra_stages and p.extra_stages[-1].layer >= self.depth:
                raise ValueError(
                    f"DSTformerCfg.prune.extra_stages: layer {p.extra_stages[-1].layer} out of range for depth {self.depth}"
                )


class DSTTrace(NamedTuple):
    """One forward pass with what the pruner saw: output, kept frames, and the joint-mean tokens."""

    out: Tensor
    index: Tensor | None  # (B, T) kept frames, ascending; None without pruning
    tokens: Tensor | None  # (B, F, C) joint-mean tokens at the (first) pruning point; None when not computed
    stage_index: tuple[Tensor, ...] | None = None  # kept frames after each stage (index is the last)


# --------------------------------------------------------------------------------------------- blocks
class DSTBlock(nn.Module):
    """One DSTformer branch on (B, F, J, C): spatial and temporal attention + MLP, in ``order`` "st" or "ts".

    Both attentions are the shared :class:`Attention` on reshaped tokens: (B*F, J, C) for spatial,
    (B*J, F, C) for temporal. Key layout as the official ``Block``: ``{norm1,norm2,attn,mlp}_{s,t}``.
    """

    def __init__(self, dim: int, heads: int, hidden: int, qkv_bias: bool, eps: float, order: str, drop_path: float) -> None:
        super().__init__()
        if order not in ("st", "ts"):
            raise ValueError(f"DSTBlock.order must be 'st' or 'ts', got {order!r}")
        self.order = order
        self.drop_rate = drop_path
        self.norm1_s = nn.LayerNorm(dim, eps=eps)
        self.norm1_t = nn.LayerNorm(dim, eps=eps)
        self.attn_s = Attention(dim, heads, qkv_bias=qkv_bias)
        self.attn_t = Attention(dim, heads, qkv_bias=qkv_bias)
        self.norm2_s = nn.LayerNorm(dim, eps=eps)
        self.norm2_t = nn.LayerNorm(dim, eps=eps)
        self.mlp_s = Mlp(dim, hidden)
        self.mlp_t = Mlp(dim, hidden)

    def _res(self, x: Tensor, y: Tensor) -> Tensor:
        if self.drop_rate == 0.0 or not self.training:
            return x + y
        # the official code drops per row of its (B*F, J, C) layout, i.e. per frame of each clip
        return x + drop_path(y.reshape(-1, *y.shape[2:]), self.drop_rate, True).reshape(y.shape)

    def _spatial(self, x: Tensor) -> Tensor:
        b, f, j, c = x.shape
        x = self._res(x, self.attn_s(self.norm1_s(x).reshape(b * f, j, c)).reshape(b, f, j, c))
        return self._res(x, self.mlp_s(self.norm2_s(x)))

    def _temporal(self, x: Tensor, received: bool) -> tuple[Tensor, Tensor | None]:
        b, f, j, c = x.shape
        t = self.norm1_t(x).transpose(1, 2).reshape(b * j, f, c)
        rec = None
        if received:
            a, rec = self.attn_t.forward_received(t)
            rec = rec.reshape(b, j, f).mean(dim=1)
        else:
            a = self.attn_t(t)
        x = self._res(x, a.reshape(b, j, f, c).transpose(1, 2))
        return self._res(x, self.mlp_t(self.norm2_t(x))), rec

    def forward(self, x: Tensor, received: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, F, J, C) -> (B, F, J, C), plus with ``received`` the temporal attention each frame got (B, F)."""
        if self.order == "st":
            x, rec = self._temporal(self._spatial(x), received)
            return x, rec
        x, rec = self._temporal(x, received)
        return self._spatial(x), rec


# ---------------------------------------------------------------------------------------------- model
class DSTformer(nn.Module):
    """MotionBERT's DSTformer; HoT w. MotionBERT when ``cfg.prune`` is active.

    ``forward(x)`` maps a clip (B, F, J, in_channels), F <= ``cfg.num_frames``, to 3D poses (B, F, J, 3)
    (or (B, T, J, 3) on the kept frames for the seq2frame variant, recovery ``none``).
    """

    task = "lifting"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    prunes = frame_prunes  # whether frame tokens are pruned (HoT, TPC): cfg.prune.active
    auto_precision = "bf16-gemm"  # what --precision auto runs where the CPU's bfloat16 GEMMs pay (docs/speed.md)
    train_loss = "motionbert"  # the recipe's loss (posetokens.engine.lifting): MPJPE + 0.5 N-MPJPE + 20 MPJVE


    def __init__(self, cfg: DSTformerCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c = cfg.dim
        self.joints_embed = nn.Linear(cfg.in_channels, c)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_joints, c))
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, 1, c))
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # linear, 0 -> drop_path
        args = (c, cfg.heads, cfg.hidden, cfg.qkv_bias, cfg.norm_eps)
        self.blocks_st = nn.ModuleList(DSTBlock(*args, "st", rates[i]) for i in range(cfg.depth))
        self.blocks_ts = nn.ModuleList(DSTBlock(*args, "ts", rates[i]) for i in range(cfg.depth))
        self.ts_attn = nn.ModuleList(nn.Linear(2 * c, 2) for _ in range(cfg.depth)) if cfg.att_fuse else None
        self.norm = nn.LayerNorm(c, eps=cfg.norm_eps)
        p = cfg.prune
        self.kept_pos_embed = nn.Parameter(torch.zeros(1, p.keep, c)) if p.active and p.pos_embed else None
        self.stage_pos_embeds = stage_pos_embeds(p, c)  # one per later stage (multi-stage schedules only)
        self.recovery = (
            TokenRecoveryAttention(cfg.num_frames, c, cfg.heads, cfg.qkv_bias)
            if p.active and p.recovery == "attention"
            else None
        )
        self.pre_logits = nn.Linear(c, cfg.dim_rep)
        self.head = nn.Linear(cfg.dim_rep, cfg.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        init_transformer_weights(self.modules())
        if self.ts_attn is not None:  # fusion starts as an even mix
            for lin in self.ts_attn:
                nn.init.zeros_(lin.weight)
                nn.init.constant_(lin.bias, 0.5)

    # -- public API
    @property
    def is_seq2frame(self) -> bool:
        """True when the model outputs only the kept frames (recovery ``none``; the centre is always kept)."""
        return self.cfg.prune.active and self.cfg.prune.recovery == "none"

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random full-length clip (for FLOPs, benchmarks and export)."""
        return (torch.randn(batch, self.cfg.num_frames, self.cfg.num_joints, self.cfg.in_channels),)

    def forward(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """Clip (B, F, J, in_channels) to root-relative 3D poses (B, F, J, out_channels).

        ``keep_index`` (B, T) forces the kept frames (multi-stage: the final ones, or a tuple of one (B, T_s)
        per stage, see :func:`~posetokens.layers.prune_step`); ``noise`` (B, F) in [0, 1) reproduces the official
        cluster's density noise (without it the selection is deterministic, ties broken by frame index;
        other strategies ignore it).
        """
        return self._forward(x, keep_index, noise, False).out

    def forward_frames(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> LiftOutput:
        """Like :meth:`forward`, also returning the kept frame indices (B, T), ascending (None unpruned)."""
        res = self._forward(x, keep_index, noise, False)
        return LiftOutput(res.out, res.index)

    def forward_trace(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> DSTTrace:
        """Like :meth:`forward_frames`, also returning the joint-mean tokens the frame pruner scored."""
        return self._forward(x, keep_index, noise, True)

    # -- internals
    def _fuse(self, level: int, x_st: Tensor, x_ts: Tensor) -> Tensor:
        if self.ts_attn is None:
            return (x_st + x_ts) * 0.5
        alpha = self.ts_attn[level](torch.cat((x_st, x_ts), dim=-1)).softmax(dim=-1)
        return x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]

    def _select(
        self, h: Tensor, x: Tensor, stage: int, index: Tensor | None, keep_index: Tensor | tuple[Tensor, ...] | None,
        noise: Tensor | None, received: Tensor | None, scored: bool, trace: bool,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Stage ``stage``: positions to gather (B, T'), their original frames (B, T'), and (when needed) the
        joint-mean tokens (B, T, C) it scored."""
        p = self.cfg.prune
        tokens = h.mean(dim=2) if trace or (scored and p.stages[stage].strategy == "cluster") else None
        center = (x.shape[1] - 1) // 2 if p.recovery == "none" else None
        pooled = tokens if tokens is not None else h[:, :, 0]  # only the cluster reads the tokens
        local, index = prune_step(
            p, stage, pooled, index, poses=x[..., :2], attn_received=received, noise=noise, center=center, forced=keep_index
        )
        return local, index, tokens

    def _recover(self, h: Tensor, index: Tensor, f: int) -> Tensor:
        """Kept-frame features (B, T, J, C) back to (B, F, J, C)."""
        mode = self.cfg.prune.recovery
        if mode == "none":
            return h
        if mode in ("nearest", "linear"):
            return recover_by_interpolation(h, index, f, mode)
        assert self.recovery is not None  # built for recovery "attention"
        b, t, j, c = h.shape
        kv = h.transpose(1, 2).reshape(b * j, t, c)
        # the shared TokenRecoveryAttention, with its queries cut to the clip's F frames (as temp_embed)
        out = self.recovery(kv, f)
        return out.reshape(b, j, f, c).transpose(1, 2)  # a view: _forward runs the head on the joint-major data

    def _forward(
        self, x: Tensor, keep_index: Tensor | tuple[Tensor, ...] | None, noise: Tensor | None, trace: bool
    ) -> DSTTrace:
        cfg, p = self.cfg, self.cfg.prune
        check_clip(x, cfg.num_frames, cfg.num_joints, cfg.in_channels, type(self).__name__)
        b, f = x.shape[:2]
        if p.active and f < p.keep:
            raise ValueError(f"{type(self).__name__}: a clip of {f} frames is shorter than the {p.keep} kept frames")
        keep_index = check_forced_frames(p, keep_index, noise, b, f, type(self).__name__, x.device)
        h = self.joints_embed(x) + self.pos_embed[:, None]
        h = h + self.temp_embed[:, :f]
        stages = p.stages
        at = {st.layer: n for n, st in enumerate(stages)}
        # stages that rank frames themselves: all without keep_index, the earlier ones when only the last is forced
        scored = [keep_index is None or (isinstance(keep_index, Tensor) and n < len(stages) - 1) for n in range(len(stages))]
        record_at = {st.layer - 1 for n, st in enumerate(stages) if st.strategy == "attention" and scored[n]}
        index = tokens = received = None
        kept = []
        for level, (blk_st, blk_ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            n = at.get(level)
            if n is not None:
                local, index, tok = self._select(h, x, n, index, keep_index, noise, received, scored[n], trace)
                if n == 0:
                    tokens = tok
                h = gather_tokens(h, local)
                pos = self.kept_pos_embed if n == 0 else (
                    self.stage_pos_embeds[n - 1] if self.stage_pos_embeds is not None else None
                )
                if pos is not None:
                    h = h + pos[:, :, None]
                kept.append(index)
            record = level in record_at
            x_st, r_st = blk_st(h, record)
            x_ts, r_ts = blk_ts(h, record)
            if record:
                received = (r_st + r_ts) * 0.5
            h = self._fuse(level, x_st, x_ts)
        h = self.norm(h)
        if index is not None:
            h = self._recover(h, index, f)
        if not h.is_contiguous():  # recovered by attention: (B, F, J, C) is a transposed view of (B, J, F, C)
            # the per-token head runs on the contiguous joint-major data and only the 3-channel output is
            # transposed back (a Linear on the strided view costs a strided copy of every frame's features)
            out = self.head(torch.tanh(self.pre_logits(h.transpose(1, 2)))).transpose(1, 2).contiguous()
        else:
            out = self.head(torch.tanh(self.pre_logits(h)))
        return DSTTrace(out, index, tokens, tuple(kept) or None)


# ------------------------------------------------------------------------- official checkpoint conversion
# Official HoT names of the HoT parts -> ours; every other DSTformer key is the same in both (and in
# MotionBERT's own releases once ``model_pos`` and ``module.`` are unwrapped).
_RENAMES = (
    ("x_token", "recovery.queries"),
    ("pos_embed_token", "kept_pos_embed"),
    ("cross_attention.", "recovery.attn."),
    ("pre_logits.fc.", "pre_logits."),
)


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True when the keys look like an official DSTformer (MotionBERT or HoT) checkpoint."""
    return any(k.startswith(("pre_logits.fc.", "x_token", "cross_attention.")) for k in state_dict)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: DSTformer) -> dict[str, Tensor]:
    """Map an official HoT-MotionBERT / MotionBERT state dict (already unwrapped) to this model's keys.

    Keys that match no rule keep their name, so the strict load that follows reports them as unexpected.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        for old, new in _RENAMES:
            if key == old or (old.endswith(".") and key.startswith(old)):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="motionbert",
        protocol="motionbert",
        build=DSTformer,
        convert=checkpoint_filter_fn,
        paper_counter="linear",
        convention="HoT's: 2 x MACs of every nn.Linear call (attention matmuls excluded), per clip of "
        "num_frames frames, in 1e9",
    )
)

_SRC = "HoT (CVPR'24) Table; official figures: shared/specs/hot.md"
_HOT = FramePruneCfg(strategy="cluster", keep=81, layer=1, k=2, recovery="attention", pos_embed=True)

for _name, _kw, _paper, _desc in [
    ("motionbert_h36m_243", {}, PaperRow(16.00, 131.09, 16.00, 131.09, _SRC),
     "MotionBERT DSTformer (d256, MLP 1024, depth 5), 243 frames"),
    ("hot_motionbert_h36m_243", {"prune": _HOT}, PaperRow(16.35, 63.21, 16.35, 63.21, _SRC),
     "HoT w. MotionBERT: 81 of 243 frames kept before level 1, token recovering attention"),
]:
    # HoT-MotionBERT is evaluated with the HoT repo's test (spec pipeline.md section 6), MotionBERT with its own
    register_model(_name, "motionbert", DSTformerCfg(**_kw), _paper, _desc, protocol="hot" if "prune" in _kw else None)
