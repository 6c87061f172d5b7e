"""MotionAGFormer (WACV'24) and HoT w. MotionAGFormer (HoT repo, 2025) as one model: HoT is a pruning config.

Layout of a forward pass (spec: ``shared/specs/motionagformer_h2ot.md`` §1-2), on a clip (B, T, J, 3) of 2D
poses + confidence, T exactly ``num_frames`` (the temporal graph's BatchNorm has one slot per frame):

1. ``joints_embed`` Linear(3 -> C) per joint plus a joint embedding (1, J, C). No temporal embedding: the
   per-frame BatchNorm of the temporal graph is the only place where frame position enters.
2. ``depth`` layers. Each runs two streams on the same input: attention (spatial then temporal multi-head
   attention) and graph (spatial then temporal GCN), each sub-block a MetaFormer block
   ``y = x + ls1 * mixer(LN(x)); y + ls2 * MLP(LN(y))`` with per-channel layer scales. The streams are fused by
   ``softmax(fusion(cat[attn, graph]))``; there is no residual around the layer.
   * Spatial GCN: the fixed, asymmetric 17-joint table without self loops, normalised by row degrees on
     both sides, ``ReLU(X + BN(A_hat V(X) + U(X)))`` with a BatchNorm over the joint slots.
   * Temporal GCN: per (sample, joint), each frame is linked to the frames whose dot-product similarity is
     at least the row's k-th largest (``neighbours``; exact ties add more), same update, BatchNorm over frame
     slots. The neighbour sets can be injected (``neighbours=``), because near-ties flip under float noise.
3. HoT (``cfg.prune``): before layer ``prune.layer`` T' of the T frames are kept (token pruning cluster on the
   joint-mean tokens, or the uniform / motion ablations) and a learnable (1, T', C) embedding is added; the
   later layers' temporal BatchNorms have T' slots. After the final norm the T frames are recovered (token
   recovering attention, or nearest / linear interpolation).
4. Final LN, ``rep_logit`` Linear(C -> dim_rep) + tanh, ``head`` Linear(dim_rep -> 3). Root not zeroed.

Every release uses 8 heads and 2 neighbours; the official constructors default to 4 / 4, and neither changes a
tensor shape, so a wrong value loads silently (spec trap 2): the named configs below set 8 / 2.

Sections: config -> blocks -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
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
from posetokens.models._lifting import LiftOutput, check_clip, frame_prunes
from posetokens.layers.checks import require_positive
from posetokens.registry import Family, PaperRow, register_family, register_model

# Row i receives from these joints (H36M-17 order). Not symmetric, no self loops: the pelvis (0) does not receive
# from the left hip (4), the thorax (8) not from the shoulders (11, 14) (spec §1.6, trap 5).
H36M_RECEIVES: tuple[tuple[int, ...], ...] = (
    (1, 7), (0, 2), (1, 3), (2,), (0, 5), (4, 6), (5,), (0, 8), (7, 9), (8, 10), (9,),
    (8, 12), (11, 13), (12,), (8, 15), (14, 16), (15,),
)


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MotionAGFormerCfg:
    """Every hyperparameter of a MotionAGFormer / HoT-MotionAGFormer model.

    ``num_frames`` is the exact clip length. ``heads`` and ``neighbours`` (the temporal graph's k) are 8 and 2
    in every release. ``joint_graph`` lists, per joint, the joints it receives from (default: the official
    H36M-17 table). ``prune`` active gives HoT: frames are pruned before layer ``prune.layer``.
    """

    num_frames: int = 243
    num_joints: int = 17
    in_channels: int = 3
    out_channels: int = 3
    dim: int = 128
    depth: int = 16
    heads: int = 8
    neighbours: int = 2
    mlp_ratio: float = 4.0
    mlp_hidden: int | None = None
    dim_rep: int = 512
    qkv_bias: bool = False
    layer_scale_init: float | None = 1e-5  # None: no layer scale
    adaptive_fusion: bool = True
    drop_path: float = 0.0
    norm_eps: float = 1e-5
    joint_graph: tuple[tuple[int, ...], ...] | None = None
    prune: FramePruneCfg = field(default_factory=FramePruneCfg)

    @property
    def hidden(self) -> int:
        """Width of the MLPs."""
        return self.mlp_hidden if self.mlp_hidden is not None else int(self.dim * self.mlp_ratio)

    @property
    def graph(self) -> tuple[tuple[int, ...], ...]:
        """The spatial graph: per joint, the joints it receives from."""
        return self.joint_graph if self.joint_graph is not None else H36M_RECEIVES

    def frames_at(self, layer: int) -> int:
        """Frames (temporal BatchNorm slots) seen by ``layer``."""
        frames = self.num_frames
        for st in self.prune.stages:  # each stage at or before this layer narrows it (multi-stage: H2OT-style)
            if layer >= st.layer:
                frames = st.keep
        return frames

    def validate(self) -> None:
        """Raise ``ValueError`` for sizes that cannot build a model."""
        require_positive(self, "num_frames", "num_joints", "in_channels", "out_channels", "dim", "depth", "heads",
                         "mlp_hidden", "dim_rep")
        name = "MotionAGFormerCfg"
        if self.dim % self.heads:
            raise ValueError(f"{name}.dim {self.dim} is not divisible by heads {self.heads}")
        if min(self.num_frames, self.num_joints, self.in_channels, self.depth, self.dim_rep, self.hidden) < 1:
            raise ValueError(f"{name}: sizes must be positive, got {self}")
        if not 1 <= self.neighbours <= self.num_frames:
            raise ValueError(f"{name}.neighbours {self.neighbours} must be in [1, num_frames={self.num_frames}]")
        g = self.graph
        if len(g) != self.num_joints or any(not 0 <= j < self.num_joints for row in g for j in row):
            raise ValueError(
                f"{name}.joint_graph must list, for each of the {self.num_joints} joints, joints in "
                f"[0, {self.num_joints}); got {len(g)} rows (the default table is for 17 H36M joints)"
            )
        if any(not row for row in g):
            raise ValueError(f"{name}.joint_graph: every joint must receive from at least one joint")
        p = self.prune
        if p.active:
            if p.recovery not in ("attention", "nearest", "linear"):
                raise ValueError(f"{name}.prune.recovery must be attention, nearest or linear, got {p.recovery!r}")
            for n, st in enumerate(p.stages):  # the first stage is (strategy, keep, layer); then extra_stages
                what = f"{name}.prune" if n == 0 else f"{name}.prune.extra_stages[{n - 1}]"
                if st.strategy not in ("cluster", "uniform", "motion"):
                    raise ValueError(f"{what}.strategy must be cluster, uniform or motion, got {st.strategy!r}")
                if not 1 <= st.layer < self.depth:
                    raise ValueError(f"{what}.layer {st.layer} out of range: prune before a layer 1..{self.depth - 1}")
                if not self.neighbours <= st.keep <= self.num_frames:
                    raise ValueError(
                        f"{what}.keep {st.keep} must be in [neighbours={self.neighbours}, num_frames={self.num_frames}]"
                    )


class MotionAGFormerTrace(NamedTuple):
    """One forward pass with what the pruner and the temporal graphs saw.

    ``tokens`` (B, T, C): the joint-mean tokens at the pruning point (None unpruned or not traced);
    ``adjacency``: per layer, the temporal adjacency (B*J, T_i, T_i) bool the layer computed from its own
    similarities (rows b*J + j), even where ``neighbours`` forced another one; empty when not traced.
    """

    out: Tensor
    index: Tensor | None
    tokens: Tensor | None
    adjacency: list[Tensor]


def neighbours_to_adjacency(neighbours: Tensor, frames: int) -> Tensor:
    """Neighbour lists (G, T, w), ascending positions padded with -1, to a 0/1 bool adjacency (G, T, T)."""
    if neighbours.dim() != 3 or neighbours.shape[1] != frames:
        raise ValueError(f"neighbours must have shape (graphs, {frames}, width), got {tuple(neighbours.shape)}")
    idx = neighbours.long()
    idx = torch.where(idx < 0, torch.full_like(idx, frames), idx)  # padding goes to a spare column
    adj = torch.zeros(*idx.shape[:2], frames + 1, dtype=torch.bool, device=idx.device)
    adj.scatter_(2, idx, True)
    return adj[..., :frames]


def normalize_rows_both_sides(adj: Tensor) -> Tensor:
    """``D^-1/2 A D^-1/2`` of 0/1 matrices (..., N, N) with ``d`` the row sums (the official ``normalize_digraph``)."""
    inv = adj.sum(dim=-1).rsqrt()
    return adj * inv[..., :, None] * inv[..., None, :]


# --------------------------------------------------------------------------------------------- blocks
class AGAttention(Attention):
    """Multi-head self-attention on (B, T, J, C): over the joints of a frame (``spatial``) or the frames of a
    joint (``temporal``). Keys ``qkv`` (q | k | v rows, head-major) and ``proj``, as the official mixer."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, mode: str) -> None:
        super().__init__(dim, heads, qkv_bias=qkv_bias)
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """(B, T, J, C) -> (B, T, J, C)."""
        b, t, j, c = x.shape
        if self.mode == "spatial":
            return super().forward(x.reshape(b * t, j, c)).reshape(b, t, j, c)
        y = super().forward(x.transpose(1, 2).reshape(b * j, t, c))
        return y.reshape(b, j, t, c).transpose(1, 2)


class GraphMixer(nn.Module):
    """MotionAGFormer's GCN on (B, T, J, C): ``ReLU(X + BN(A_hat V(X) + U(X)))``.

    ``spatial``: over the joints of a frame with the fixed graph ``receives``; BatchNorm slots = joints.
    ``temporal``: over the frames of a joint with the top-``neighbours`` similarity graph; slots = frames.
    """

    def __init__(self, dim: int, nodes: int, mode: str, neighbours: int = 2,
                 receives: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        self.mode, self.neighbours = mode, neighbours
        self.U = nn.Linear(dim, dim)
        self.V = nn.Linear(dim, dim)
        self.batch_norm = nn.BatchNorm1d(nodes)
        if mode == "spatial":
            assert receives is not None
            adj = torch.zeros(nodes, nodes)
            for i, row in enumerate(receives):
                adj[i, list(row)] = 1.0
            self.register_buffer("adj_norm", normalize_rows_both_sides(adj), persistent=False)

    def similarity_graph(self, h: Tensor) -> Tensor:
        """The temporal adjacency (G, T, T) bool of node features ``h`` (G, T, C): S = h h^T, each row keeps
        the entries >= its ``neighbours``-th largest (ties kept)."""
        with torch.no_grad():
            sim = h @ h.transpose(1, 2)
            kth = sim.topk(self.neighbours, dim=-1).values[..., -1:]
            return sim >= kth

    def forward(self, x: Tensor, forced: Tensor | None = None, record: list[Tensor] | None = None) -> Tensor:
        """(B, T, J, C) -> (B, T, J, C). Temporal mode: ``forced`` (B*J, T, T) bool replaces the computed
        adjacency; ``record`` receives the computed one."""
        b, t, j, c = x.shape
        if self.mode == "spatial":
            h = x.reshape(b * t, j, c)
            adj = self.adj_norm.to(h.dtype)
        else:
            h = x.transpose(1, 2).reshape(b * j, t, c)
            own = self.similarity_graph(h) if forced is None or record is not None else None
            if record is not None:
                record.append(own)
            adj = normalize_rows_both_sides((forced if forced is not None else own).to(h.dtype))
        out = torch.relu(h + self.batch_norm(adj @ self.V(h) + self.U(h)))
        if self.mode == "spatial":
            return out.reshape(b, t, j, c)
        return out.reshape(b, j, t, c).transpose(1, 2)


class AGFormerBlock(nn.Module):
    """MetaFormer block around one mixer: ``x + ls1 * mixer(LN1(x))``, then ``+ ls2 * MLP(LN2(x))``."""

    def __init__(self, dim: int, hidden: int, mixer: nn.Module, eps: float, ls_init: float | None, rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mixer = mixer
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden)
        self.drop_rate = rate
        if ls_init is not None:
            self.layer_scale_1 = nn.Parameter(torch.full((dim,), float(ls_init)))
            self.layer_scale_2 = nn.Parameter(torch.full((dim,), float(ls_init)))
        else:
            self.layer_scale_1 = self.layer_scale_2 = None

    def _res(self, x: Tensor, y: Tensor, scale: Tensor | None) -> Tensor:
        if scale is not None:
            y = scale * y
        if self.drop_rate > 0.0 and self.training:
            y = drop_path(y, self.drop_rate, True)
        return x + y

    def forward(self, x: Tensor, **mixer_kw: object) -> Tensor:
        """(B, T, J, C) -> (B, T, J, C); ``mixer_kw`` go to a graph mixer (forced / recorded adjacency)."""
        x = self._res(x, self.mixer(self.norm1(x), **mixer_kw), self.layer_scale_1)
        return self._res(x, self.mlp(self.norm2(x)), self.layer_scale_2)


class MotionAGFormerLayer(nn.Module):
    """One layer: the attention stream (spatial, temporal) and the graph stream read the same input and are
    fused per token by ``softmax(fusion(cat[attn, graph]))`` (an even mix without adaptive fusion)."""

    def __init__(self, cfg: MotionAGFormerCfg, frames: int, rate: float) -> None:
        super().__init__()
        c, hid, eps, ls = cfg.dim, cfg.hidden, cfg.norm_eps, cfg.layer_scale_init

        def block(mixer: nn.Module) -> AGFormerBlock:
            return AGFormerBlock(c, hid, mixer, eps, ls, rate)

        self.att_spatial = block(AGAttention(c, cfg.heads, cfg.qkv_bias, "spatial"))
        self.att_temporal = block(AGAttention(c, cfg.heads, cfg.qkv_bias, "temporal"))
        self.graph_spatial = block(GraphMixer(c, cfg.num_joints, "spatial", receives=cfg.graph))
        self.graph_temporal = block(GraphMixer(c, frames, "temporal", neighbours=cfg.neighbours))
        self.fusion = nn.Linear(2 * c, 2) if cfg.adaptive_fusion else None

    def forward(self, x: Tensor, forced: Tensor | None = None, record: list[Tensor] | None = None) -> Tensor:
        """(B, T, J, C) -> (B, T, J, C)."""
        a = self.att_temporal(self.att_spatial(x))
        g = self.graph_temporal(self.graph_spatial(x), forced=forced, record=record)
        if self.fusion is None:
            return (a + g) * 0.5
        alpha = self.fusion(torch.cat((a, g), dim=-1)).softmax(dim=-1)
        return a * alpha[..., 0:1] + g * alpha[..., 1:2]


# ---------------------------------------------------------------------------------------------- model
class MotionAGFormer(nn.Module):
    """MotionAGFormer; HoT w. MotionAGFormer when ``cfg.prune`` is active (see the module doc).

    ``forward(x)`` maps a clip (B, num_frames, J, in_channels) to root-relative 3D poses (B, num_frames, J, 3).
    """

    task = "lifting"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    prunes = frame_prunes  # whether frame tokens are pruned (HoT, TPC): cfg.prune.active
    auto_precision = "bf16-gemm"  # what --precision auto runs where the CPU's bfloat16 GEMMs pay (docs/speed.md)
    train_loss = "motionbert"  # the recipe's loss (posetokens.engine.lifting): MPJPE + 0.5 N-MPJPE + 20 MPJVE
    is_seq2frame = False

    def __init__(self, cfg: MotionAGFormerCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        c, p = cfg.dim, cfg.prune
        self.joints_embed = nn.Linear(cfg.in_channels, c)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_joints, c))
        self.layers = nn.ModuleList(MotionAGFormerLayer(cfg, cfg.frames_at(i), cfg.drop_path) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(c, eps=cfg.norm_eps)
        self.kept_pos_embed = nn.Parameter(torch.zeros(1, p.keep, c)) if p.active and p.pos_embed else None
        self.stage_pos_embeds = stage_pos_embeds(p, c)  # one per later stage (multi-stage schedules only)
        self.recovery = (
            TokenRecoveryAttention(cfg.num_frames, c, cfg.heads, cfg.qkv_bias)
            if p.active and p.recovery == "attention"
            else None
        )
        self.rep_logit = nn.Sequential(OrderedDict(fc=nn.Linear(c, cfg.dim_rep), act=nn.Tanh()))
        self.head = nn.Linear(cfg.dim_rep, cfg.out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """The official init: torch defaults, GCN U/V weights N(0, 2/C), fusion weight 0 / bias 0.5."""
        for m in self.modules():
            if isinstance(m, GraphMixer):
                for lin in (m.U, m.V):
                    nn.init.normal_(lin.weight, std=(2.0 / lin.in_features) ** 0.5)
            elif isinstance(m, MotionAGFormerLayer) and m.fusion is not None:
                nn.init.zeros_(m.fusion.weight)
                nn.init.constant_(m.fusion.bias, 0.5)

    # -- public API
    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random full-length clip (for FLOPs, benchmarks and export), on the model's device."""
        cfg = self.cfg
        dev = self.joints_embed.weight.device
        return (torch.randn(batch, cfg.num_frames, cfg.num_joints, cfg.in_channels, device=dev),)

    def forward(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None,
                neighbours: Sequence[Tensor | None] | None = None) -> Tensor:
        """Clip (B, T, J, in_channels) to 3D poses (B, T, J, out_channels).

        ``keep_index`` (B, T') forces the kept frames; ``noise`` (B, T) in [0, 1) reproduces the official
        cluster's density noise (without it the selection is deterministic). ``neighbours``: per layer, the
        temporal neighbour sets to use, (B*J, T_i, w) integer positions padded with -1 (None: computed).
        """
        return self._forward(x, keep_index, noise, neighbours, False).out

    def forward_frames(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None) -> LiftOutput:
        """Like :meth:`forward`, also returning the kept frame indices (B, T'), ascending (None unpruned)."""
        out, index, _, _ = self._forward(x, keep_index, noise, None, False)
        return LiftOutput(out, index)

    def forward_trace(self, x: Tensor, keep_index: Tensor | None = None, noise: Tensor | None = None,
                      neighbours: Sequence[Tensor | None] | None = None) -> MotionAGFormerTrace:
        """Like :meth:`forward`, also returning the pruner's tokens and every layer's own temporal adjacency."""
        return self._forward(x, keep_index, noise, neighbours, True)

    # -- internals
    def _forced(self, neighbours: Sequence[Tensor | None] | None, layer: int, graphs: int, frames: int,
                device: torch.device) -> Tensor | None:
        if neighbours is None:
            return None
        if len(neighbours) != self.cfg.depth:
            raise ValueError(f"{type(self).__name__}: neighbours must list {self.cfg.depth} layers, got {len(neighbours)}")
        nbr = neighbours[layer]
        if nbr is None:
            return None
        if nbr.shape[0] != graphs:
            raise ValueError(f"{type(self).__name__}: neighbours[{layer}] must have {graphs} rows (B*J), got {nbr.shape[0]}")
        return neighbours_to_adjacency(nbr.to(device), frames)

    def _forward(self, x: Tensor, keep_index: Tensor | None, noise: Tensor | None,
                 neighbours: Sequence[Tensor | None] | None, trace: bool) -> MotionAGFormerTrace:
        cfg, p = self.cfg, self.cfg.prune
        check_clip(x, cfg.num_frames, cfg.num_joints, cfg.in_channels, type(self).__name__, exact=True)
        b, f, j = x.shape[:3]
        keep_index = check_forced_frames(p, keep_index, noise, b, f, type(self).__name__, x.device)
        h = self.joints_embed(x) + self.pos_embed
        index = tokens = None
        record: list[Tensor] | None = [] if trace else None
        stages = p.stages
        at = {st.layer: n for n, st in enumerate(stages)}
        for i, layer in enumerate(self.layers):
            n = at.get(i)
            if n is not None:
                # a stage ranks frames itself unless every stage is forced, or this is the last and it is forced
                scored = keep_index is None or (isinstance(keep_index, Tensor) and n < len(stages) - 1)
                frame_tokens = h.mean(dim=2) if trace or scored else None  # (B, T, C): one token per frame
                if n == 0:
                    tokens = frame_tokens
                local, index = prune_step(p, n, frame_tokens, index, poses=x[..., :2], noise=noise, forced=keep_index)
                h = gather_tokens(h, local)
                pos = self.kept_pos_embed if n == 0 else (
                    self.stage_pos_embeds[n - 1] if self.stage_pos_embeds is not None else None
                )
                if pos is not None:
                    h = h + pos[:, :, None]
            h = layer(h, self._forced(neighbours, i, b * j, h.shape[1], h.device), record)
        h = self.norm(h)
        if index is not None:
            if self.recovery is not None:
                c = h.shape[-1]
                r = self.recovery(h.transpose(1, 2).reshape(b * j, h.shape[1], c))
                h = r.reshape(b, j, f, c).transpose(1, 2)
            else:
                h = recover_by_interpolation(h, index, f, p.recovery)
        out = self.head(self.rep_logit(h))
        return MotionAGFormerTrace(out, index, tokens if trace else None, record or [])


# ------------------------------------------------------------------------- official checkpoint conversion
# HoT's names of its additions -> ours; every other key is the same in MotionAGFormer's releases, the HoT repo's
# copies and ours (releases wrap it in ``{"model": {"module.<key>": ...}}``, which ``posetokens.convert`` unwraps).
_RENAMES = (
    ("x_token", "recovery.queries"),
    ("pos_embed_token", "kept_pos_embed"),
    ("cross_attention.", "recovery.attn."),
)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: MotionAGFormer) -> dict[str, Tensor]:
    """Map an official MotionAGFormer / HoT-MotionAGFormer state dict (already unwrapped) to this model's keys.

    Keys that match no rule keep their name, so the strict load that follows reports them as unexpected.
    The head and neighbour counts are not in the weights: they come from the zoo config (8 / 2 in every release).
    """
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
        name="motionagformer",
        protocol="motionbert",
        build=MotionAGFormer,
        convert=checkpoint_filter_fn,
        paper_counter="mag_readme",
        convention="MotionAGFormer README: torchprofile MACs per clip of num_frames frames of Linear + LayerNorm + "
        "BatchNorm + elementwise mul, without the attention and graph matrix products, in 1e9 (G MACs)",
    )
)
register_family(
    Family(
        name="hot_motionagformer",
        protocol="hot",
        build=MotionAGFormer,
        convert=checkpoint_filter_fn,
        paper_counter="linear",
        convention="HoT's: 2 x MACs of every nn.Linear call (attention and graph matmuls excluded), per clip of "
        "num_frames frames, in 1e9",
    )
)

_SRC = "MotionAGFormer README table (params, MACs per clip); measured: shared/specs/motionagformer_h2ot.md §0"
_HOT_SRC = "no published figure; measured with the official HoT file: shared/specs/motionagformer_h2ot.md §0"
# HoT w. MotionAGFormer: what the official file hard-codes (81 kept before layer 7, k = 2, TRA) as config
_HOT = FramePruneCfg(strategy="cluster", keep=81, layer=7, k=2, recovery="attention", pos_embed=True)

for _name, _kw, _paper, _desc in [
    ("motionagformer_xs_h36m_27", {"num_frames": 27, "dim": 64, "depth": 12}, PaperRow(2.2, 1.0, 2.2415, 1.019, _SRC),
     "MotionAGFormer-XS (12 layers x 64), 27 frames"),
    ("motionagformer_s_h36m_81", {"num_frames": 81, "dim": 64, "depth": 26}, PaperRow(4.8, 6.6, 4.8171, 6.587, _SRC),
     "MotionAGFormer-S (26 layers x 64), 81 frames"),
    ("motionagformer_b_h36m_243", {"num_frames": 243, "dim": 128, "depth": 16}, PaperRow(11.7, 48.3, 11.7238, 48.28, _SRC),
     "MotionAGFormer-B (16 layers x 128), 243 frames"),
    ("motionagformer_l_h36m_243", {"num_frames": 243, "dim": 128, "depth": 26}, PaperRow(19.0, 78.3, 19.0071, 78.29, _SRC),
     "MotionAGFormer-L (26 layers x 128), 243 frames"),
]:
    register_model(_name, "motionagformer", MotionAGFormerCfg(**_kw), _paper, _desc)

register_model(
    "hot_motionagformer_b_h36m_243", "hot_motionagformer", MotionAGFormerCfg(prune=_HOT),
    PaperRow(None, None, 11.828, 60.521, _HOT_SRC),
    "HoT w. MotionAGFormer-B: 81 of 243 frames kept before layer 7, token recovering attention",
)
