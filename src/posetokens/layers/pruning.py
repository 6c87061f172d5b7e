"""The one token-pruning home of the package (torch only).

PPT (keypoint-attention top-k) lives here; GTPT's group-wise top-k and HoT's DPC-kNN cluster join it.
Every pruner returns the kept indices, so callers can gather positions, patch ids or anything else with
the same indices, and tools (parity, the kept-token pictures) can read them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PruneCfg:
    """Where and how much to prune.

    ``layers``: 0-based indices of the transformer layers after whose attention tokens are pruned.
    ``keep_ratio``: fraction of the current visual tokens kept at each of those layers (compounds).
    """

    layers: tuple[int, ...] = ()
    keep_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_ratio <= 1.0:
            raise ValueError(f"PruneCfg.keep_ratio must be in (0, 1], got {self.keep_ratio}")
        if any(i < 0 for i in self.layers):
            raise ValueError(f"PruneCfg.layers must be >= 0, got {self.layers}")


def keep_count(num_tokens: int, keep_ratio: float) -> int:
    """Number of tokens kept out of ``num_tokens``: ``ceil(num_tokens * keep_ratio)`` (PPT's rule)."""
    return max(1, math.ceil(num_tokens * keep_ratio))


def keep_counts(num_tokens: int, keep_ratio: float, num_layers: int) -> list[int]:
    """Token counts after each of ``num_layers`` successive prunings (e.g. 256 -> [180, 126, 89] at 0.7)."""
    out, n = [], num_tokens
    for _ in range(num_layers):
        n = keep_count(n, keep_ratio)
        out.append(n)
    return out


def keypoint_attention_score(attn_rows: Tensor, num_prefix: int) -> Tensor:
    """PPT's human-token score: attention from keypoint queries to each visual key.

    ``attn_rows`` is (B, heads, J, num_prefix + N), post-softmax over all keys, for the J keypoint queries.
    The score is the head-mean, summed over keypoints, of the visual columns: shape (B, N).
    """
    return attn_rows[..., num_prefix:].mean(dim=1).sum(dim=1)


def topk_indices(score: Tensor, k: int) -> Tensor:
    """Indices (B, k) of the ``k`` highest scores per row, in descending score order."""
    return score.topk(k, dim=-1, largest=True, sorted=True).indices


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Gather tokens ``x`` (B, N, ...) along dim 1 with indices (B, K) into (B, K, ...)."""
    if x.dim() == 2:
        return x.gather(1, idx)
    expanded = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return x.gather(1, expanded)


def prune_topk(
    x: Tensor, score: Tensor, num_prefix: int, keep_ratio: float, carry: tuple[Tensor, ...] = ()
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """Keep the prefix tokens and the ``ceil(N * keep_ratio)`` visual tokens with the highest ``score``.

    ``x`` is (B, num_prefix + N, C) with the prefix (keypoint) tokens first; ``score`` is (B, N).
    ``carry`` tensors of shape (B, N, ...) (positional encodings, patch ids) are gathered with the same
    indices. Returns ``(x_kept, idx, carry_kept)``; ``idx`` (B, K) indexes the N visual tokens entering
    this step, in descending score order. Pruned tokens are dropped, never fused or restored (PPT).
    """
    idx = topk_indices(score, keep_count(x.shape[1] - num_prefix, keep_ratio))
    kept = torch.cat((x[:, :num_prefix], gather_tokens(x[:, num_prefix:], idx)), dim=1)
    return kept, idx, tuple(gather_tokens(c, idx) for c in carry)


# ----------------------------------------------------------------------------------------------- GTPT
def softmax_pool(logits: Tensor, dim: int, valid: Tensor | None = None) -> Tensor:
    """Smooth max over ``dim``: ``sum(softmax(l) * l)`` (GTPT's score from pre-softmax attention logits).

    ``valid`` (broadcastable to ``logits``) excludes entries: they get zero weight and contribute nothing.
    """
    if valid is None:
        return (logits.softmax(dim) * logits).sum(dim)
    masked = logits.masked_fill(~valid, float("-inf"))
    weight = masked.softmax(dim)
    return (weight * logits.masked_fill(~valid, 0.0)).sum(dim)


def group_topk(score: Tensor, keep: Sequence[int]) -> Tensor:
    """Per-group top-k with a different k per group, vectorised.

    ``score`` (B, G, N). Returns indices (B, G, max(keep)) in descending score order; group g uses its first
    ``keep[g]`` entries. Pair with :func:`group_slot_index` to lay out slots of equal length per group.
    """
    if len(keep) != score.shape[1]:
        raise ValueError(f"group_topk: {len(keep)} keep counts for {score.shape[1]} groups")
    if min(keep) < 0 or max(keep) > score.shape[-1]:
        raise ValueError(f"group_topk: keep counts {list(keep)} out of range for {score.shape[-1]} tokens")
    return score.topk(max(keep), dim=-1, largest=True, sorted=True).indices


def group_slot_index(
    idx: Tensor, fixed_start: Sequence[int], fixed_count: Sequence[int], offset: int, num_slots: int
) -> Tensor:
    """Source indices (B, G, num_slots) of per-group slots: ``fixed_count[g]`` fixed tokens, then top-k ones.

    Slot s of group g takes source ``fixed_start[g] + s`` when ``s < fixed_count[g]`` (never-pruned tokens,
    e.g. GTPT's dense whole-body keypoint tokens), else ``offset + idx[b, g, s - fixed_count[g]]`` (the
    kept candidates from :func:`group_topk`, in its order). Gather the sources with :func:`gather_tokens`
    per group (flatten B and G).
    """
    b, g, _ = idx.shape
    dev = idx.device
    slots = torch.arange(num_slots, device=dev)[None, :]  # (1, S)
    fc = torch.as_tensor(list(fixed_count), device=dev)[:, None]  # (G, 1)
    fs = torch.as_tensor(list(fixed_start), device=dev)[:, None]
    is_fixed = slots < fc  # (G, S)
    pick = (slots - fc).clamp(0, idx.shape[-1] - 1).expand(g, -1)
    cand = offset + idx.gather(2, pick[None].expand(b, -1, -1))
    return torch.where(is_fixed[None], (fs + slots)[None].expand(b, -1, -1), cand)


def gather_group_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Gather (B, G, N, ...) along dim 2 with indices (B, G, K) into (B, G, K, ...)."""
    b, g = idx.shape[:2]
    out = gather_tokens(x.flatten(0, 1), idx.flatten(0, 1))
    return out.reshape(b, g, *out.shape[1:])


# ------------------------------------------------------------------------------------------------ HoT
# Frame pruning for video pose transformers (HoT, CVPR'24): choose T representative frames out of F
# (token pruning cluster, or the ablation's uniform / attention / motion choices), then recover F frames
# (token recovering attention, or nearest / linear interpolation along time).


def dpc_knn_score(x: Tensor, k: int = 2, noise: Tensor | None = None) -> Tensor:
    """Density-peak score ``gamma = rho * delta`` of each token of ``x`` (B, N, C), shape (B, N).

    ``rho_i = exp(-mean of squared distances to the k nearest tokens)`` (the token itself is one of them),
    ``delta_i`` = distance to the nearest denser token (the densest gets its sample's largest distance).
    Distances are Euclidean over sqrt(C).

    Two modes:

    * ``noise`` given (B, N): the official numerics, for parity. float32 ``torch.cdist`` (its matmul path
      leaves a small self-distance), ``rho + noise * 1e-6``, and density ties left to that noise.
    * ``noise`` None (the library default): deterministic. Exact float64 distances, and exact density
      ties broken by frame index: of two equally dense tokens, the earlier one counts as denser.
    """
    b, n, c = x.shape
    if noise is not None:
        dist = torch.cdist(x, x) / c**0.5
        near = dist.topk(k, dim=-1, largest=False).values
        density = (-(near**2).mean(dim=-1)).exp() + noise.to(dist.dtype) * 1e-6
        denser = (density[:, None, :] > density[:, :, None]).to(dist.dtype)
    else:
        xd = x.double()
        if _exporting():  # ONNX has no cdist: the same exact distances, summed explicitly
            dist = (xd[:, :, None] - xd[:, None]).square().sum(dim=-1).sqrt() / c**0.5
        else:
            dist = torch.cdist(xd, xd, compute_mode="donot_use_mm_for_euclid_dist") / c**0.5
        near = dist.topk(k, dim=-1, largest=False).values
        density = (-(near**2).mean(dim=-1)).exp()
        idx = torch.arange(n, device=x.device)
        earlier = idx[None, :] < idx[:, None]  # [i, j]: j comes before i
        gt = density[:, None, :] > density[:, :, None]
        eq = density[:, None, :] == density[:, :, None]
        denser = (gt | (eq & earlier)).to(dist.dtype)
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    delta = (dist * denser + dist_max * (1 - denser)).min(dim=-1).values
    return (delta * density).to(x.dtype if noise is not None else torch.float64)


def _exporting() -> bool:
    """True while torch.export / ONNX export traces the model (``is_exporting`` exists from torch 2.6)."""
    return getattr(torch.compiler, "is_exporting", lambda: False)() or torch.onnx.is_in_onnx_export()


def _top_desc(score: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` highest scores, equal scores in index order (a stable descending sort).

    Exported graphs use ONNX TopK, whose spec puts the lower index first among equal values."""
    if _exporting():
        return score.topk(k, dim=-1, largest=True, sorted=True).indices
    return torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :k]


def select_frames(score: Tensor, keep: int, center: int | None = None) -> Tensor:
    """Indices (B, keep) of the highest scores, sorted ascending (temporal order).

    With ``center`` (seq2frame TPC), that frame is always kept: its score is excluded, the top
    ``keep - 1`` are taken and the centre is appended before sorting. Equal scores keep the earlier frame.
    """
    if center is not None:
        score = score.clone()
        score[:, center] = float("-inf")
        top = _top_desc(score, keep - 1)
        top = torch.cat((top, torch.full_like(top[:, :1], center)), dim=1)
    else:
        top = _top_desc(score, keep)
    if _exporting():
        return top.topk(top.shape[1], dim=-1, largest=False, sorted=True).values
    return top.sort(dim=-1).values


def uniform_frame_indices(num_frames: int, keep: int, batch: int = 1, device: torch.device | None = None) -> Tensor:
    """``keep`` evenly spaced frame indices of ``num_frames`` (first and last included), (batch, keep)."""
    idx = torch.linspace(0, num_frames - 1, keep, device=device).round().long()
    return idx.expand(batch, -1)


def motion_score(poses: Tensor) -> Tensor:
    """How much each frame's pose changes from its neighbours: (B, F, J, D) -> (B, F).

    The mean joint displacement to the previous frame plus that to the next (edges use their one neighbour).
    """
    step = (poses[:, 1:] - poses[:, :-1]).norm(dim=-1).mean(dim=-1)  # (B, F-1)
    pad = torch.zeros_like(step[:, :1])
    return torch.cat((pad, step), dim=1) + torch.cat((step, pad), dim=1)


def recover_by_interpolation(tokens: Tensor, idx: Tensor, num_frames: int, mode: str = "linear") -> Tensor:
    """Fill ``num_frames`` frames from tokens kept at sorted frame indices ``idx`` (B, T), tokens (B, T, ...).

    ``nearest`` copies the closest kept frame (ties to the earlier); ``linear`` interpolates between the
    kept frames around each frame and holds the end values outside them. Vectorised over frames.
    """
    b, t = idx.shape
    frames = torch.arange(num_frames, device=idx.device).expand(b, -1).contiguous()
    right = torch.searchsorted(idx.contiguous(), frames).clamp(max=t - 1)  # first kept >= f
    left = (right - 1).clamp(min=0)
    right_f, left_f = idx.gather(1, right), idx.gather(1, left)
    exact_or_before = right_f <= frames  # f is at/after the last kept frame, or exactly kept
    left = torch.where(exact_or_before, right, left)
    left_f = torch.where(exact_or_before, right_f, left_f)
    span = (right_f - left_f).clamp(min=1).to(tokens.dtype)
    w = ((frames - left_f).to(tokens.dtype) / span).clamp(0, 1)
    w = torch.where(frames <= left_f, torch.zeros_like(w), w)
    if mode == "nearest":
        w = (w > 0.5).to(tokens.dtype)
    elif mode != "linear":
        raise ValueError(f"recover_by_interpolation: mode must be 'nearest' or 'linear', got {mode!r}")
    shape = (b, num_frames) + (1,) * (tokens.dim() - 2)
    lo, hi = gather_tokens(tokens, left), gather_tokens(tokens, right)
    return lo + (hi - lo) * w.reshape(shape)


class TokenRecoveryAttention(torch.nn.Module):
    """HoT's token recovering attention: ``num_frames`` learnable queries cross-attend to the kept tokens.

    ``forward(x)`` maps (B', T, C) to (B', num_frames, C) as ``queries + CrossAttention(queries, x, x)``.
    The queries are shared over the batch (and joints), so their projection is computed once per call; the
    official code projects them for every sequence, which the HoT FLOPs convention counts (see
    ``engine.flops.linear_gflops``). Official key layout: ``x_token`` (the queries) and
    ``cross_attention.{linear_q,linear_k,linear_v,proj}``.
    """

    def __init__(self, num_frames: int, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        from .attention import CrossAttention

        super().__init__()
        self.queries = torch.nn.Parameter(torch.zeros(1, num_frames, dim))
        self.attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)

    def forward(self, x: Tensor, num_frames: int | None = None) -> Tensor:
        """Recover the full-length sequence from the kept tokens: (B', T, C) -> (B', F, C), ``F`` the first
        ``num_frames`` queries (default all)."""
        q = self.queries if num_frames is None else self.queries[:, :num_frames]  # (1, F, C)
        return q + self.attn(q, x, x)  # broadcast over the B' sequences


@dataclass(frozen=True)
class FramePruneCfg:
    """Where and how a video transformer keeps T of its F frames, and how it recovers them (HoT).

    ``strategy``: ``none`` | ``cluster`` (token pruning cluster, DPC-kNN) | ``uniform`` | ``attention``
    (frames receiving the most attention in the block before the pruning point) | ``motion`` (frames whose
    input pose changes most). ``recovery``: ``attention`` (token recovering attention) | ``nearest`` |
    ``linear`` | ``none`` (seq2frame: the model outputs the kept frames; the centre frame is always kept).
    """

    strategy: str = "none"
    keep: int = 81
    layer: int = 3  # prune before this block / level
    k: int = 2
    recovery: str = "attention"
    pos_embed: bool = True  # learnable positional embedding for the kept tokens (HoT; not TPC-only)

    def __post_init__(self) -> None:
        if self.strategy not in ("none", "cluster", "uniform", "attention", "motion"):
            raise ValueError(f"FramePruneCfg.strategy: unknown {self.strategy!r}")
        if self.recovery not in ("attention", "nearest", "linear", "none"):
            raise ValueError(f"FramePruneCfg.recovery: unknown {self.recovery!r}")

    @property
    def active(self) -> bool:
        """Whether frames are pruned at all."""
        return self.strategy != "none"


def choose_frames(
    cfg: FramePruneCfg,
    tokens: Tensor,
    *,
    poses: Tensor | None = None,
    attn_received: Tensor | None = None,
    noise: Tensor | None = None,
    center: int | None = None,
) -> Tensor:
    """Sorted indices (B, keep) of the frames ``cfg.strategy`` keeps.

    ``tokens`` (B, F, C) are the per-frame tokens at the pruning point (cluster); ``poses`` (B, F, J, D) the
    input poses (motion); ``attn_received`` (B, F) the attention each frame received (attention);
    ``noise`` (B, F) switches the cluster to the official numerics (see :func:`dpc_knn_score`);
    ``center`` keeps that frame (seq2frame).
    """
    with torch.no_grad():
        if cfg.strategy == "cluster":
            score = dpc_knn_score(tokens, cfg.k, noise)
        elif cfg.strategy == "motion":
            if poses is None:
                raise ValueError("choose_frames: strategy 'motion' needs the input poses")
            score = motion_score(poses)
        elif cfg.strategy == "attention":
            if attn_received is None:
                raise ValueError("choose_frames: strategy 'attention' needs the attention each frame received")
            score = attn_received
        elif cfg.strategy == "uniform":
            b, f = tokens.shape[:2]
            idx = uniform_frame_indices(f, cfg.keep, b, tokens.device)
            if center is not None:  # the last frame gives way to the centre unless it is kept already
                swapped = torch.cat((idx[:, :-1], torch.full_like(idx[:, :1], center)), 1).sort(dim=1).values
                idx = torch.where((idx == center).any(dim=1, keepdim=True), idx, swapped)  # no host sync
            return idx
        else:
            raise ValueError("choose_frames: strategy 'none' keeps every frame")
        return select_frames(score, cfg.keep, center)


def read_center_frame(out: Tensor, index: Tensor, center: int) -> Tensor:
    """The prediction for frame ``center`` from a seq2frame output over the kept frames.

    ``out`` (B, T, ...) is indexed like the sorted kept frames ``index`` (B, T), which contain ``center``;
    returns (B, 1, ...).
    """
    pos = (index < center).sum(dim=1, keepdim=True)  # sorted, so the centre sits after the earlier ones
    return gather_tokens(out, pos)
