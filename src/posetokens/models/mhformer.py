"""MHFormer (CVPR'22) and TPC w. MHFormer (HoT, CVPR'24) as one seq2frame lifting model.

Layout of a forward pass (spec: ``shared/specs/hot.md``; official ``NationalGAILab/HoT`` model/mhformer):

1. **MHG** (multi-hypothesis generation). The clip (B, F, J, 2) is read as 2J coordinate tokens of width F
   (channel ``2 j + c``). Three transformer encoders (depth 4, 9 heads, MLP 2F) run in a residual chain,
   each on a LayerNorm(F) of the previous hypothesis: ``x_h = x_{h-1} + enc_h(norm_h(x_{h-1}))``.
2. A Conv1d(2J -> C) per hypothesis turns each into F frame tokens of width C.
3. **SHR** blocks: per-hypothesis self-attention over frames, then one MLP over the concatenated [x1|x2|x3].
   **CHI** block: three sequential cross-attentions between the hypotheses, then the concatenated MLP.
   The hypotheses are kept concatenated here, as (B, N, 3C).
4. LayerNorm(3C), BatchNorm1d(3C) and Conv1d(3C -> 3J) regress every remaining frame.

TPC (``cfg.prune``): before SHR block ``prune.layer`` the model keeps ``prune.keep`` of its F frames (the
centre always among them) and regresses only those (seq2frame; no recovery). ``forward_frames`` returns
every output frame (all F for MHFormer, as the official model and its all-frame training loss; the T kept
ones for TPC) with the kept indices; ``forward`` the centre frame (MHFormer) or the kept frames (TPC);
``forward_center`` the centre frame of either. Multi-stage schedules (``prune.extra_stages``, H2OT-style)
prune again before later SHR blocks (or the CHI block), the centre kept at every stage.

Sections: config -> blocks -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posetokens.layers import (
    Attention,
    Block,
    CrossAttention,
    FramePruneCfg,
    Mlp,
    check_forced_frames,
    drop_path,
    gather_tokens,
    prune_step,
    read_center_frame,
    stage_pos_embeds,
)
from posetokens.models._lifting import LiftOutput, check_clip, frame_prunes
from posetokens.layers.checks import require_positive
from posetokens.registry import Family, PaperRow, register_family, register_model

NUM_HYPOTHESES = 3
# CHI: for hypothesis h (0-based), which hypotheses feed its (query, key, value), as in the official block.
_CHI_SOURCES = ((1, 2, 0), (0, 2, 1), (0, 1, 2))


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MHFormerCfg:
    """Every hyperparameter of an MHFormer / TPC-MHFormer model.

    ``num_frames`` fixes the MHG width (must divide by ``mhg_heads``). ``embed_norm`` None follows the
    official rule (Conv1d+BatchNorm+ReLU embeddings when ``num_frames <= 27``). ``prune`` is inactive for
    MHFormer; TPC is ``FramePruneCfg("cluster", keep, layer, recovery="none", pos_embed=False)``, where
    ``layer`` in ``0..shr_depth`` prunes before that SHR block (``shr_depth``: before the CHI block).
    """

    num_frames: int = 351
    num_joints: int = 17
    out_joints: int | None = None  # default: num_joints
    channel: int = 512
    d_hid: int = 1024  # SHR/CHI MLP hidden width (over the 3C concatenation)
    mhg_depth: int = 4
    mhg_heads: int = 9
    mhg_mlp_ratio: float = 2.0  # MHG MLP hidden = ratio * num_frames
    heads: int = 8  # SHR/CHI heads
    shr_depth: int = 2
    chi_depth: int = 1
    embed_norm: bool | None = None
    drop_rate: float = 0.1  # dropout after the positional embeddings and on every residual branch (training;
    # the official MLPs also drop after their activation, which is left out here)
    drop_path_rate: float = 0.2  # stochastic depth, linear over the MHG blocks and over SHR+CHI (training)
    prune: FramePruneCfg = field(default_factory=lambda: FramePruneCfg(strategy="none", recovery="none"))

    @property
    def center(self) -> int:
        """The scored (centre) frame."""
        return (self.num_frames - 1) // 2

    @property
    def num_out_joints(self) -> int:
        """Joints regressed in 3D."""
        return self.out_joints or self.num_joints

    @property
    def in_channels(self) -> int:
        """Channels per input joint: (x, y), always (the 2D scores are not an input of MHFormer)."""
        return 2

    @property
    def uses_embed_norm(self) -> bool:
        """Whether the hypothesis embeddings are Conv1d+BatchNorm+ReLU (official: ``num_frames <= 27``)."""
        return self.num_frames <= 27 if self.embed_norm is None else self.embed_norm

    def validate(self) -> None:
        """Raise ``ValueError`` for sizes or pruning settings the model cannot run."""
        require_positive(self, "num_frames", "num_joints", "out_joints", "channel", "d_hid", "mhg_depth",
                         "mhg_heads", "heads", "shr_depth", "chi_depth")
        if self.num_frames < 1 or self.num_joints < 1 or self.num_out_joints < 1:
            raise ValueError(f"MHFormerCfg: frames/joints must be positive, got {self.num_frames}/{self.num_joints}")
        if self.num_frames % self.mhg_heads:
            raise ValueError(
                f"MHFormerCfg.num_frames {self.num_frames} must be divisible by mhg_heads {self.mhg_heads} "
                "(the MHG attends over coordinate tokens of width num_frames)"
            )
        if self.channel % self.heads:
            raise ValueError(f"MHFormerCfg.channel {self.channel} is not divisible by heads {self.heads}")
        if self.shr_depth < 0 or self.chi_depth < 0 or self.mhg_depth < 0:
            raise ValueError("MHFormerCfg: depths must be >= 0")
        p = self.prune
        if not p.active:
            return
        if p.recovery != "none":
            raise ValueError(f"MHFormerCfg.prune.recovery must be 'none' (seq2frame), got {p.recovery!r}")
        if not 1 <= p.keep <= self.num_frames:
            raise ValueError(f"MHFormerCfg.prune.keep {p.keep} must be in [1, num_frames={self.num_frames}]")
        if not 0 <= p.layer <= self.shr_depth:
            raise ValueError(
                f"MHFormerCfg.prune.layer {p.layer} must be in [0, {self.shr_depth}] (before an SHR block, or "
                f"{self.shr_depth} for before the CHI block)"
            )
        if p.strategy == "attention" and p.layer == 0:
            raise ValueError("MHFormerCfg.prune: strategy 'attention' needs an SHR block before the pruning point (layer >= 1)")
        if p.extra_stages and p.extra_stages[-1].layer > self.shr_depth:
            raise ValueError(
                f"MHFormerCfg.prune.extra_stages: layer {p.extra_stages[-1].layer} must be in [1, {self.shr_depth}] "
                f"(before an SHR block, or {self.shr_depth} for before the CHI block)"
            )


class MHFormerTrace(NamedTuple):
    """One forward pass with what the frame pruner saw."""

    out: Tensor  # (B, F, J', 3), or (B, T, J', 3) over the kept frames
    index: Tensor | None  # (B, T) kept frames, ascending; None without pruning
    tokens: Tensor | None  # (B, F, 3C) concatenated hypotheses at the (first) pruning point; None without pruning
    stage_index: tuple[Tensor, ...] | None = None  # kept frames after each stage (index is the last)


# --------------------------------------------------------------------------------------------- blocks
def _branch(y: Tensor, drop: float, drop_path_p: float, training: bool) -> Tensor:
    """Regularise a residual branch as the official blocks do: dropout (the attention's ``proj_drop`` and
    the MLP's output dropout), then stochastic depth per sample. The identity in eval."""
    if not training:
        return y
    return drop_path(F.dropout(y, drop, True) if drop > 0 else y, drop_path_p, True)


class MHGEncoder(nn.Module):
    """One MHG transformer over the 2J coordinate tokens of width F: pos-embed, pre-norm blocks, final norm."""

    def __init__(self, cfg: MHFormerCfg) -> None:
        super().__init__()
        f = cfg.num_frames
        self.drop = cfg.drop_rate
        # drop-path rates computed on the host: under torch.device("meta") there are no values to read
        self.dpr = torch.linspace(0, cfg.drop_path_rate, cfg.mhg_depth, device="cpu").tolist()
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 * cfg.num_joints, f))
        hidden = round(f * cfg.mhg_mlp_ratio)
        self.blocks = nn.ModuleList(
            Block(f, cfg.mhg_heads, hidden, qkv_bias=True, eps=1e-6) for _ in range(cfg.mhg_depth)
        )
        self.norm = nn.LayerNorm(f, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 2J, F) -> (B, 2J, F)."""
        x = x + self.pos_embed
        if self.training and self.drop > 0:
            x = F.dropout(x, self.drop, True)
        for blk, dp in zip(self.blocks, self.dpr):
            x = x + _branch(blk.attn(blk.norm1(x)), self.drop, dp, self.training)
            x = x + _branch(blk.mlp(blk.norm2(x)), self.drop, dp, self.training)
        return self.norm(x)


class _HypothesisMixer(nn.Module):
    """The MLP over the concatenated hypotheses (B, N, 3C), shared by SHR and CHI blocks."""

    def __init__(self, dim: int, hidden: int, drop: float, drop_path: float) -> None:
        super().__init__()
        self.drop, self.drop_path = drop, drop_path
        self.norm2 = nn.LayerNorm(NUM_HYPOTHESES * dim, eps=1e-6)
        self.mlp = Mlp(NUM_HYPOTHESES * dim, hidden)

    def _res(self, x: Tensor, y: Tensor) -> Tensor:
        return x + _branch(y, self.drop, self.drop_path, self.training)

    def mix(self, x: Tensor) -> Tensor:
        """Concatenated MLP with its residual."""
        return self._res(x, self.mlp(self.norm2(x)))


class SHRBlock(_HypothesisMixer):
    """Self-hypothesis refinement: per-hypothesis self-attention over frames, then the concatenated MLP."""

    def __init__(self, dim: int, heads: int, hidden: int, drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__(dim, hidden, drop, drop_path)
        self.norm1 = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(NUM_HYPOTHESES))
        self.attn = nn.ModuleList(Attention(dim, heads, qkv_bias=True) for _ in range(NUM_HYPOTHESES))

    def forward(self, x: Tensor, received: bool = False) -> tuple[Tensor, Tensor | None]:
        """(B, N, 3C) -> (B, N, 3C); with ``received``, also the attention each frame received (B, N),
        averaged over the three hypotheses (for the ``attention`` frame strategy)."""
        parts, recv = [], []
        for h, xh in enumerate(x.chunk(NUM_HYPOTHESES, dim=-1)):
            if received:
                y, r = self.attn[h].forward_received(self.norm1[h](xh))
                recv.append(r)
            else:
                y = self.attn[h](self.norm1[h](xh))
            parts.append(self._res(xh, y))
        out = self.mix(torch.cat(parts, dim=-1))
        return out, (torch.stack(recv).mean(dim=0) if received else None)


class CHIBlock(_HypothesisMixer):
    """Cross-hypothesis interaction: three sequential cross-attentions, then the concatenated MLP.

    Hypothesis h is updated from ``attn[h](norm_q[h](x_q), norm_k[h](x_k), norm_v[h](x_v))`` with sources
    ``_CHI_SOURCES[h]``; later hypotheses see the already-updated earlier ones (as the official block).
    """

    def __init__(self, dim: int, heads: int, hidden: int, drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__(dim, hidden, drop, drop_path)
        self.norm_q = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(NUM_HYPOTHESES))
        self.norm_k = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(NUM_HYPOTHESES))
        self.norm_v = nn.ModuleList(nn.LayerNorm(dim, eps=1e-6) for _ in range(NUM_HYPOTHESES))
        self.attn = nn.ModuleList(CrossAttention(dim, heads, qkv_bias=True) for _ in range(NUM_HYPOTHESES))

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, 3C) -> (B, N, 3C)."""
        xs = list(x.chunk(NUM_HYPOTHESES, dim=-1))
        for h, (qi, ki, vi) in enumerate(_CHI_SOURCES):
            y = self.attn[h](self.norm_q[h](xs[qi]), self.norm_k[h](xs[ki]), self.norm_v[h](xs[vi]))
            xs[h] = self._res(xs[h], y)
        return self.mix(torch.cat(xs, dim=-1))


# ---------------------------------------------------------------------------------------------- model
class MHFormer(nn.Module):
    """MHFormer, and TPC w. MHFormer when ``cfg.prune`` is active (seq2frame: the centre frame is scored)."""

    is_seq2frame = True
    task = "lifting"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    prunes = frame_prunes  # whether frame tokens are pruned (HoT, TPC): cfg.prune.active
    auto_precision = "bf16-gemm"  # what --precision auto runs where the CPU's bfloat16 GEMMs pay (docs/speed.md)
    train_loss = "mpjpe"  # the recipe's loss (posetokens.engine.lifting): MPJPE of the frames it outputs

    def __init__(self, cfg: MHFormerCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        f, j, c = cfg.num_frames, cfg.num_joints, cfg.channel
        self.mhg_norms = nn.ModuleList(nn.LayerNorm(f) for _ in range(NUM_HYPOTHESES))
        self.mhg = nn.ModuleList(MHGEncoder(cfg) for _ in range(NUM_HYPOTHESES))
        if cfg.uses_embed_norm:
            self.embed = nn.ModuleList(
                nn.Sequential(nn.Conv1d(2 * j, c, 1), nn.BatchNorm1d(c, momentum=0.1), nn.ReLU(), nn.Dropout(0.25))
                for _ in range(NUM_HYPOTHESES)
            )
        else:
            self.embed = nn.ModuleList(nn.Conv1d(2 * j, c, 1) for _ in range(NUM_HYPOTHESES))
        self.pos_embed = nn.Parameter(torch.zeros(1, f, NUM_HYPOTHESES * c))  # [pos_1 | pos_2 | pos_3]
        p = cfg.prune
        self.pruned_pos_embed = (
            nn.Parameter(torch.zeros(1, p.keep, NUM_HYPOTHESES * c)) if p.active and p.pos_embed else None
        )
        self.stage_pos_embeds = stage_pos_embeds(p, NUM_HYPOTHESES * c)  # one per later stage (multi-stage schedules only)
        dpr = torch.linspace(0, cfg.drop_path_rate, cfg.shr_depth + cfg.chi_depth, device="cpu").tolist()
        self.shr_blocks = nn.ModuleList(
            SHRBlock(c, cfg.heads, cfg.d_hid, cfg.drop_rate, dpr[i]) for i in range(cfg.shr_depth)
        )
        self.chi_blocks = nn.ModuleList(
            CHIBlock(c, cfg.heads, cfg.d_hid, cfg.drop_rate, dpr[cfg.shr_depth + i]) for i in range(cfg.chi_depth)
        )
        self.norm = nn.LayerNorm(NUM_HYPOTHESES * c, eps=1e-6)
        self.head = nn.Sequential(
            nn.BatchNorm1d(NUM_HYPOTHESES * c, momentum=0.1), nn.Conv1d(NUM_HYPOTHESES * c, 3 * cfg.num_out_joints, 1)
        )

    # -- public API
    @property
    def center(self) -> int:
        """Index of the scored centre frame."""
        return self.cfg.center

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random clip batch (B, F, J, 2) of the model's size (for FLOPs, benchmarks and export)."""
        return (torch.rand(batch, self.cfg.num_frames, self.cfg.num_joints, 2) * 2 - 1,)

    def forward(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """2D clip (B, F, J, 2) to 3D (root not zeroed): MHFormer gives the centre frame (B, 1, J', 3), the
        frame its seq2frame test scores; TPC gives its kept frames (B, T, J', 3) (read the centre with
        :meth:`forward_center`, or ``read_center_frame`` on :meth:`forward_frames`)."""
        out, index = self.forward_frames(x, keep_index, noise)
        return out[:, self.center : self.center + 1] if index is None else out

    def forward_center(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        """The centre-frame prediction (B, 1, J', 3) of either variant."""
        out, index = self.forward_frames(x, keep_index, noise)
        if index is None:
            return out[:, self.center : self.center + 1]
        return read_center_frame(out, index, self.center)

    def forward_frames(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> LiftOutput:
        """Every output frame: MHFormer (B, F, J', 3) with ``index`` None; TPC (B, T, J', 3) over the kept
        frames ``index`` (B, T), ascending, centre included.

        ``keep_index`` (B, T) forces the kept frames (the official flip pass reuses the plain pass's; with a
        multi-stage schedule the final frames, or a tuple of one (B, T_s) per stage);
        ``noise`` (B, F) U[0,1) switches the cluster to the official numerics (see ``dpc_knn_score``; unused
        with ``keep_index``); without it the selection is deterministic (ties broken by frame index).
        """
        res = self._forward(x, keep_index, noise, trace=False)
        return LiftOutput(res.out, res.index)

    def forward_trace(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> MHFormerTrace:
        """Like :meth:`forward_frames`, also returning the tokens the frame pruner scored."""
        return self._forward(x, keep_index, noise, trace=True)

    # -- internals
    def _forward(self, x: Tensor, keep_index: Tensor | None, noise: Tensor | None, trace: bool) -> MHFormerTrace:
        cfg, p = self.cfg, self.cfg.prune
        check_clip(x, cfg.num_frames, cfg.num_joints, cfg.in_channels, type(self).__name__, exact=True)
        b = x.shape[0]
        if noise is not None and p.strategy != "cluster":
            raise ValueError(f"MHFormer.forward: noise is only used by the cluster strategy, not {p.strategy!r}")
        # prune_step's forced frames are ascending; a single stage takes them in the caller's order
        keep_index = check_forced_frames(p, keep_index, noise, b, cfg.num_frames, "MHFormer.forward", x.device,
                                         sort=bool(p.extra_stages))
        poses = x
        z = x.permute(0, 2, 3, 1).reshape(b, 2 * cfg.num_joints, cfg.num_frames)  # channel 2j + c
        hyps = []
        for norm, enc in zip(self.mhg_norms, self.mhg):
            z = z + enc(norm(z))
            hyps.append(z)
        x = torch.cat([emb(h).transpose(1, 2) for emb, h in zip(self.embed, hyps)], dim=-1) + self.pos_embed
        if self.training and cfg.drop_rate > 0:
            x = F.dropout(x, cfg.drop_rate, True)

        index: Tensor | None = None
        tokens: Tensor | None = None
        received: Tensor | None = None
        stages = p.stages
        at = {st.layer: n for n, st in enumerate(stages)}
        # stages that rank frames themselves: all without keep_index, the earlier ones when only the last is forced
        scored = [keep_index is None or (isinstance(keep_index, Tensor) and n < len(stages) - 1) for n in range(len(stages))]
        record_at = {st.layer - 1 for n, st in enumerate(stages) if st.strategy == "attention" and scored[n]}
        kept: list[Tensor] = []
        for i in range(len(self.shr_blocks) + 1):
            n = at.get(i)
            if n is not None:
                if n == 0:
                    tokens = x if trace else None
                x, index = self._prune(x, poses, received, keep_index, noise, n, index)
                kept.append(index)
            if i < len(self.shr_blocks):
                x, received = self.shr_blocks[i](x, received=i in record_at)
        for blk in self.chi_blocks:
            x = blk(x)
        x = self.head(self.norm(x).transpose(1, 2))  # (B, 3J', N), channel 3j + c
        out = x.reshape(b, cfg.num_out_joints, 3, x.shape[-1]).permute(0, 3, 1, 2)
        return MHFormerTrace(out, index, tokens, tuple(kept) or None)

    def _prune(
        self, x: Tensor, poses: Tensor, received: Tensor | None, keep_index: Tensor | tuple[Tensor, ...] | None,
        noise: Tensor | None, stage: int = 0, index: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Stage ``stage`` on the present frame tokens ``x`` (B, T, 3C) of original frames ``index`` (None: all)."""
        local, index = prune_step(
            self.cfg.prune, stage, x, index, poses=poses, attn_received=received, noise=noise, center=self.center,
            forced=keep_index,
        )
        x = gather_tokens(x, local)
        pos = self.pruned_pos_embed if stage == 0 else (
            self.stage_pos_embeds[stage - 1] if self.stage_pos_embeds is not None else None
        )
        if pos is not None:
            x = x + pos
        return x, index


# ------------------------------------------------------------------------- official checkpoint conversion
_HYP = "Transformer_hypothesis."


def _h(g: str) -> int:
    """Official 1-based hypothesis number to our 0-based index."""
    return int(g) - 1


# official key pattern -> our key, from the match groups
_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^embedding_([123])\.(.+)$"), lambda m: f"embed.{_h(m[1])}.{m[2]}"),
    (re.compile(r"^norm_([123])\.(.+)$"), lambda m: f"mhg_norms.{_h(m[1])}.{m[2]}"),
    (re.compile(r"^Transformer_encoder_([123])\.(.+)$"), lambda m: f"mhg.{_h(m[1])}.{m[2]}"),
    (re.compile(r"^Transformer_hypothesis\.SHR_blocks\.(\d+)\.norm1_([123])\.(.+)$"),
     lambda m: f"shr_blocks.{m[1]}.norm1.{_h(m[2])}.{m[3]}"),
    (re.compile(r"^Transformer_hypothesis\.(SHR|CHI)_blocks\.(\d+)\.attn_([123])\.(.+)$"),
     lambda m: f"{m[1].lower()}_blocks.{m[2]}.attn.{_h(m[3])}.{m[4]}"),
    # CHI norm3_{h}{r}: r = 1, 2, 3 normalises the query, key, value source of hypothesis h
    (re.compile(r"^Transformer_hypothesis\.CHI_blocks\.(\d+)\.norm3_([123])([123])\.(.+)$"),
     lambda m: f"chi_blocks.{m[1]}.norm_{'qkv'[_h(m[3])]}.{_h(m[2])}.{m[4]}"),
    (re.compile(r"^Transformer_hypothesis\.(SHR|CHI)_blocks\.(\d+)\.((?:norm2|mlp)\..+)$"),
     lambda m: f"{m[1].lower()}_blocks.{m[2]}.{m[3]}"),
    (re.compile(r"^Transformer_hypothesis\.norm\.(.+)$"), lambda m: f"norm.{m[1]}"),
    (re.compile(r"^regression\.([01]\..+)$"), lambda m: f"head.{m[1]}"),
]


def _rename(key: str) -> str | None:
    for pat, fn in _RULES:
        if m := pat.match(key):
            return fn(m)
    return None


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True when the keys look like an official MHFormer / TPC-MHFormer checkpoint (HoT or Vegetebird)."""
    return any(k.startswith(("Transformer_hypothesis.", "Transformer_encoder_")) for k in state_dict)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: MHFormer) -> dict[str, Tensor]:
    """Map an official MHFormer / TPC-MHFormer state dict (HoT and Vegetebird layouts) to this model's keys.

    The three hypothesis positional embeddings ``pos_embed_{1,2,3}`` are concatenated on channels into
    ``pos_embed``. BatchNorm buffers are kept. Keys that match no rule keep their own name, so the strict
    load that follows reports them as unexpected.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    out: dict[str, Tensor] = {}
    pos = {f"{_HYP}pos_embed_{h}": None for h in (1, 2, 3)}
    for key, value in state_dict.items():
        if key in pos:
            pos[key] = value
            continue
        new = _rename(key)
        out[new if new is not None else key] = value
    found = [v for v in pos.values() if v is not None]
    if len(found) == NUM_HYPOTHESES and len({tuple(v.shape) for v in found}) == 1 and found[0].dim() == 3:
        out["pos_embed"] = torch.cat(found, dim=-1)
    else:  # incomplete or inconsistent: leave them for the strict load to report
        out.update({k: v for k, v in pos.items() if v is not None})
    return out


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="mhformer",
        protocol="hot",
        build=MHFormer,
        convert=checkpoint_filter_fn,
        paper_counter="linear",
        convention="HoT's: 2 x MACs of every nn.Linear and nn.Conv1d call for one clip (attention matmuls, "
        "norms and activations excluded), in 1e9",
    )
)

_SRC = "HoT (CVPR'24) Table; official figures: shared/specs/hot.md"
_TPC = FramePruneCfg(strategy="cluster", keep=117, layer=1, k=2, recovery="none", pos_embed=False)

for _name, _kw, _paper in [
    ("mhformer_h36m_351", {}, PaperRow(31.52, 14.15, 31.516, 14.146, _SRC)),
    ("tpc_mhformer_h36m_351", {"prune": _TPC}, PaperRow(31.52, 8.22, 31.516, 8.220, _SRC)),
]:
    register_model(_name, "mhformer", MHFormerCfg(**_kw), _paper)
