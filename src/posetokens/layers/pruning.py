"""The one token-pruning home of the package (torch only).

PPT (keypoint-attention top-k) lives here; GTPT's group-wise top-k and HoT's DPC-kNN cluster join it.
Every pruner returns the kept indices, so callers can gather positions, patch ids or anything else with
the same indices, and tools (parity, the kept-token pictures) can read them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from posetokens.layers.checks import exporting, tracing


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
    """Gather tokens ``x`` (B, N, ...) along dim 1 with indices (B, K) into (B, K, ...). An index outside [0, N)
    raises, as ``torch.gather`` does (it is sent past the end of the flat tokens, not into another sample)."""
    if x.dim() == 2:
        return x.gather(1, idx)
    if exporting() or torch.jit.is_tracing():  # one GatherElements node, whatever the batch size
        expanded = idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
        return x.gather(1, expanded)
    # whole tokens: one index_select over the (B * N) tokens copies each kept token in one block, where
    # torch.gather reads an index per element (GTPT-T's 196 of 256 tokens at batch 32: 0.34 against 3.7 ms)
    b, n = x.shape[:2]
    flat = idx + torch.arange(b, device=idx.device).unsqueeze(1) * n
    flat = flat.masked_fill((idx < 0) | (idx >= n), b * n)  # out of range: index_select raises (no host sync)
    return x.flatten(0, 1).index_select(0, flat.flatten()).unflatten(0, tuple(idx.shape))


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

    ``valid`` (broadcastable to ``logits``) excludes entries: they get zero weight and contribute nothing (the
    logits are finite, so ``0 * logit`` is 0). The exclusion is a -inf bias of ``valid``'s own (small) shape,
    added once: a third cheaper than filling the full-size logits twice (GTPT-T's group scores at batch 32).
    """
    if valid is None:
        return (logits.softmax(dim) * logits).sum(dim)
    bias = torch.zeros(valid.shape, dtype=logits.dtype, device=logits.device).masked_fill(~valid, float("-inf"))
    return ((logits + bias).softmax(dim) * logits).sum(dim)


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


def _first_of_groups(item: Tensor, label: Tensor, pos: Tensor) -> Tensor:
    """For flat tokens ``pos`` of batch items ``item`` with labels ``label`` (all (B * N,) integers), the flat
    index of the first token of the same item with the same label."""
    _, group = torch.unique(item * pos.numel() + label, return_inverse=True)  # (item, label) -> id < B * N
    first = torch.full_like(pos, pos.numel()).scatter_reduce_(0, group, pos, "amin")
    return first[group]


def _key_weights(m: int) -> Tensor:
    """The fixed integer weights (m, 1) of :func:`_identical_first`'s keys over ``m`` 32-bit integers: small
    enough that every partial sum of products stays an exact float64 integer (at most 2**52 in size), whatever
    the order (``m`` at most 2**21)."""
    if not 1 <= m <= 2**21:
        raise ValueError(f"_key_weights: exact keys need 1 <= m <= 2**21 integers per token, got {m}")
    top = 2 ** max(0, 52 - 31 - max(m - 1, 1).bit_length())  # m * 2**31 * top <= 2**52
    gen = torch.Generator().manual_seed(20240617)
    return torch.randint(1, top + 1, (m, 1), generator=gen, device="cpu").to(torch.float64)


_KEY_CHANNELS = 64  # channels per token that :func:`_identical_first` keys on (evenly spaced; all when fewer)


@torch.compiler.disable  # a sort and a data-dependent check: eager even inside a compiled model
def _identical_first(x: Tensor) -> Tensor | None:
    """For each token of ``x`` (B, N, C), the index (B, N) of its first bitwise-equal copy (-0.0 equals 0.0), or
    None when every token is its own first copy (no two are equal; or ``x`` is a meta tensor, shapes only).

    Tokens are compared by their bits (float32 as they are, other dtypes as float64), exactly. Each token gets
    an exact integer key from at most :data:`_KEY_CHANNELS` evenly spaced channels (their bits as 32-bit
    integers times fixed small integer weights, summed in float64 below 2**53, so in any order), tokens with
    equal keys are grouped by a sort (no (B, N, N) comparisons), and each token that would take an earlier copy
    is checked against it over all its channels, bit for bit. Should two different tokens share a key (they
    agree on the keyed channels, or collide), the grouping falls back to sorting the rows of all their bits
    (``torch.unique`` over rows: exact, but about 8 times slower on TPC-MHFormer's 8 x 351 tokens of 1536
    channels). The sorts' output sizes and the check depend on the data, so this waits for the device a few times
    per clustering (on a GPU, synchronisations).
    """
    b, n, c = x.shape
    if x.is_meta:  # shapes only (the FLOP counters): no values to compare
        return None
    v = (x if x.dtype == torch.float32 else x.double()).flatten(0, 1)  # (B * N, C)
    pos = torch.arange(b * n, device=x.device)
    item = pos.div(n, rounding_mode="floor")

    def bits(t: Tensor) -> Tensor:  # + 0.0 turns -0.0 into 0.0; float64 as two 32-bit halves
        return (t + 0.0).contiguous().view(torch.int32)

    keyed = bits(v[:, :: -(-c // _KEY_CHANNELS)])
    weights = _key_weights(keyed.shape[1])
    key = (keyed.to(torch.float64) @ weights.to(x.device)).squeeze(1)  # a GEMM, so true_macs counts it
    first = _first_of_groups(item, torch.unique(key, return_inverse=True)[1], pos)
    dup = (first != pos).nonzero().squeeze(1)
    if not dup.numel():
        return None
    if not bool((bits(v[dup]) == bits(v[first[dup]])).all()):  # two different tokens shared a key: rows of bits
        first = _first_of_groups(item, torch.unique(bits(v), dim=0, return_inverse=True)[1], pos)
        if bool((first == pos).all()):
            return None
    return (first - item * n).view(b, n)


_GRAM_BLOCKS = 4  # row blocks of the cluster's Gram matrix: the blocks on and above the diagonal are computed


def _symmetric_squared(xd: Tensor) -> Tensor:
    """Squared distances ``|a|^2 + |b|^2 - 2 a.b`` (B, N, N) from the float64 Gram matrix of ``xd`` (B, N, C),
    bitwise symmetric with an exactly zero diagonal, from the Gram's row blocks on and above the diagonal only
    (:data:`_GRAM_BLOCKS` GEMMs, each of a block of rows against every later column: 10/16 of the full product's
    multiply-accumulates, no BLAS symmetric rank-k update in PyTorch). Each diagonal block of the Gram is averaged
    with its transpose; each block of distances below the diagonal is the transpose of its mirror."""
    b, n, _ = xd.shape
    s = -(-n // _GRAM_BLOCKS)
    starts = range(0, n, s)
    rows = [xd[:, i : i + s] @ xd[:, i:].mT for i in starts]  # (B, s, N - i)
    for row in rows:
        diag = row[:, :, :s]
        diag.copy_((diag + diag.mT).mul_(0.5))
    sq = torch.cat([row[:, :, :s].diagonal(dim1=1, dim2=2) for row in rows], dim=1)  # (B, N)
    d2 = xd.new_empty(b, n, n)
    for i, row in zip(starts, rows):
        upper = d2[:, i : i + s, i:]
        torch.add(sq[:, i : i + s, None], sq[:, None, i:], out=upper).sub_(row, alpha=2)  # the sum commutes
        d2[:, i + s :, i : i + s] = upper[:, :, s:].mT
    return d2


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances (B, N, N) between the tokens of ``x`` (B, N, C), in float64, deterministic for ties.

    Computed as ``|a|^2 + |b|^2 - 2 a.b`` from a float64 Gram matrix: the squared distances carry a rounding of a
    few tens of 2**-52 (1e-15 to 1e-14) of the largest squared norm, at most ``C * 2**-52`` of it, and cost a
    quarter of summing squared differences on the CPU. The result does not depend on the memory layout of ``x``.
    The Gram matrix is made bitwise symmetric and computed from its upper blocks only (:func:`_symmetric_squared`), so
    the distances are bitwise symmetric with an exactly zero diagonal. A GEMM can round two equal dot products
    differently by their tile position, so every token takes the row and column of its first bitwise-identical
    copy (:func:`_identical_first`): identical tokens get identical rows and exactly zero distance between them,
    as exact distances would give. Exported graphs sum the squared differences explicitly (ONNX has no bit casts
    for the comparison).

    Two tokens closer than about 1e-7 of their norms get distances of rounding size (0 after the clamp), so
    such near-duplicates are ordered by rounding; exact duplicates are not.
    """
    return _squared_distances(x).clamp_min_(0).sqrt_()


def _squared_distances(x: Tensor) -> Tensor:
    """:func:`pairwise_distances` squared and before its clamp at 0 (a rounding can leave tiny negative values off
    the diagonal): float64 (B, N, N), bitwise symmetric, exactly 0 on the diagonal and between identical tokens
    (tokens of finite float64 squared norm; one that overflows gets NaN there)."""
    if exporting():
        xd = x.double()
        return (xd[:, :, None] - xd[:, None]).square().sum(dim=-1)
    b, n, c = x.shape
    if not n * c:  # no tokens, or tokens without channels: all equal
        return x.new_zeros(b, n, n, dtype=torch.float64)
    d2 = _symmetric_squared(x.double().contiguous())  # one layout, so one set of GEMM roundings
    first = _identical_first(x)
    if first is not None:  # some token has an earlier copy
        d2 = d2.gather(1, first[:, :, None].expand(-1, -1, n)).gather(2, first[:, None, :].expand(-1, n, -1))
    return d2


def _nearest_squared(d2: Tensor, k: int) -> Tensor:
    """The ``k`` smallest entries (B, N, k) of each row of squared distances ``d2`` (B, N, N) clamped at 0,
    ascending, as ``topk`` gives them for rows without NaN. The diagonal must be exactly 0 (a token's own
    distance), so they are that 0 and the ``k - 1`` smallest of the rest of the row (the off-diagonal entries may
    round a little below 0: the clamp makes them 0). The default ``k = 2`` is a row minimum, a few times cheaper
    than ``topk`` on the CPU; ``d2``'s diagonal is set to infinity for it and then restored as it was (a token
    whose squared norm overflows has NaN there, which makes every score of its sample NaN)."""
    if exporting() or k == 1:
        return d2.topk(k, dim=-1, largest=False).values.clamp_min(0)
    diag = d2.diagonal(dim1=1, dim2=2)
    own = diag.clone()
    diag.fill_(float("inf"))
    try:
        rest = d2.amin(dim=-1, keepdim=True) if k == 2 else d2.topk(k - 1, dim=-1, largest=False).values
    finally:
        diag.copy_(own)
    return torch.cat([torch.zeros_like(rest[..., :1]), rest.clamp_min(0)], dim=-1)


def dpc_knn_score(x: Tensor, k: int = 2, noise: Tensor | None = None) -> Tensor:
    """Density-peak score ``gamma = rho * delta`` of each token of ``x`` (B, N, C), shape (B, N).

    ``rho_i = exp(-mean of squared distances to the k nearest tokens)`` (the token itself is one of them),
    ``delta_i`` = distance to the nearest denser token (the densest gets its sample's largest distance).
    Distances are Euclidean over sqrt(C).

    Two modes:

    * ``noise`` given (B, N): the official numerics, for parity. float32 ``torch.cdist`` (its matmul path
      leaves a small self-distance), ``rho + noise * 1e-6``, and density ties left to that noise.
    * ``noise`` None (the library default): deterministic. Float64 distances (:func:`pairwise_distances`:
      identical tokens get identical rows), and exact density ties broken by frame index: of two equally
      dense tokens, the earlier one counts as denser.

    The score ranks frames for a discrete choice: it is computed without autograd (a token's zero distance
    to itself has no derivative).
    """
    if x.dim() != 3 or not 1 <= k <= x.shape[1] or not x.shape[2]:
        raise ValueError(f"dpc_knn_score: expects tokens (B, N, C) with C >= 1 and 1 <= k <= N, got {tuple(x.shape)} "
                         f"with k={k}")
    if noise is not None and tuple(noise.shape) != tuple(x.shape[:2]):
        raise ValueError(f"dpc_knn_score: noise must have shape {tuple(x.shape[:2])} (B, N), got {tuple(noise.shape)}")
    with torch.no_grad():
        return _dpc_knn_score(x, k, noise)


def _dpc_knn_score(x: Tensor, k: int, noise: Tensor | None) -> Tensor:
    n, c = x.shape[1:]
    if noise is not None:  # the official numerics
        dist = torch.cdist(x, x) / c**0.5
        near = dist.topk(k, dim=-1, largest=False).values
        density = (-(near**2).mean(dim=-1)).exp() + noise.to(dist.dtype) * 1e-6
        denser = density[:, None, :] > density[:, :, None]
        dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
        # the official dist * mask + dist_max * (1 - mask), in one pass: the same values (the distances are finite)
        delta = torch.where(denser, dist, dist_max).min(dim=-1).values
        return (delta * density).to(x.dtype)
    # Deterministic: on the squared distances before their clamp, square root and scale. Those are monotone
    # (non-decreasing) and applied value by value, so taking them after a row's minimum (or maximum, or k smallest)
    # gives the same bits as taking them before, on (B, N) values instead of (B, N, N).
    d2 = _squared_distances(x)

    def dist(v: Tensor) -> Tensor:
        return v.clamp_min(0).sqrt().div(c**0.5)

    density = (-(dist(_nearest_squared(d2, k)) ** 2).mean(dim=-1)).exp()
    idx = torch.arange(n, device=x.device)
    earlier = idx[None, :] < idx[:, None]  # [i, j]: j comes before i
    gt = density[:, None, :] > density[:, :, None]
    eq = density[:, None, :] == density[:, :, None]
    denser = gt | (eq & earlier)
    d2_max = d2.flatten(1).amax(dim=-1)[:, None, None]
    return dist(torch.where(denser, d2, d2_max).amin(dim=-1)) * density


def _top_desc(score: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` highest scores, equal scores in index order (a stable descending sort).

    Exported graphs use ONNX TopK, whose spec puts the lower index first among equal values."""
    if exporting():
        return score.topk(k, dim=-1, largest=True, sorted=True).indices
    return torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :k]


def select_frames(score: Tensor, keep: int, center: int | Tensor | None = None) -> Tensor:
    """Indices (B, keep) of the highest scores, sorted ascending (temporal order).

    With ``center`` (seq2frame TPC), that frame is always kept: its score is excluded, the top
    ``keep - 1`` are taken and the centre is appended before sorting (an int, or one per row (B,) or (B, 1)).
    Equal scores keep the earlier frame.
    """
    if isinstance(center, Tensor):  # one centre per row (a later stage: its position among the present frames)
        col = center.reshape(-1, 1).to(torch.long).expand(score.shape[0], 1)
        top = _top_desc(score.scatter(1, col, float("-inf")), keep - 1)
        top = torch.cat((top, col), dim=1)
    elif center is not None:
        score = score.clone()
        score[:, center] = float("-inf")
        top = _top_desc(score, keep - 1)
        top = torch.cat((top, torch.full_like(top[:, :1], center)), dim=1)
    else:
        top = _top_desc(score, keep)
    if exporting():
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


FRAME_STRATEGIES = ("cluster", "uniform", "attention", "motion")


@dataclass(frozen=True)
class PruneStage:
    """One frame-pruning stage: before block ``layer``, keep ``keep`` of the frames still present, chosen by
    ``strategy`` (``cluster`` | ``uniform`` | ``attention`` | ``motion``, as in :class:`FramePruneCfg`)."""

    layer: int
    keep: int
    strategy: str = "cluster"

    def __post_init__(self) -> None:
        if self.strategy not in FRAME_STRATEGIES:
            raise ValueError(f"PruneStage.strategy: unknown {self.strategy!r}; known: {list(FRAME_STRATEGIES)}")
        if self.keep < 1 or self.layer < 0:
            raise ValueError(f"PruneStage: keep must be >= 1 and layer >= 0, got keep={self.keep}, layer={self.layer}")


def _as_stage(value: object, where: str) -> PruneStage:
    """A :class:`PruneStage` from itself, a mapping ``{layer, keep, strategy}`` or a (layer, keep[, strategy])."""
    if isinstance(value, PruneStage):
        return value
    try:
        if isinstance(value, Mapping):
            return PruneStage(**value)
        if isinstance(value, (list, tuple)) and 2 <= len(value) <= 3:
            return PruneStage(*value)
    except TypeError as e:
        raise ValueError(f"{where}: {e}") from None
    raise ValueError(f"{where}: expected a stage {{layer, keep, strategy}}, got {value!r}")


@dataclass(frozen=True)
class FramePruneCfg:
    """Where and how a video transformer keeps T of its F frames, and how it recovers them (HoT).

    ``strategy``: ``none`` | ``cluster`` (token pruning cluster, DPC-kNN) | ``uniform`` | ``attention``
    (frames receiving the most attention in the block before the pruning point) | ``motion`` (frames whose
    input pose changes most). ``recovery``: ``attention`` (token recovering attention) | ``nearest`` |
    ``linear`` | ``none`` (seq2frame: the model outputs the kept frames; the centre frame is always kept).

    Multi-stage (H2OT-style) schedules: ``(strategy, keep, layer)`` is the first stage and ``extra_stages``
    the later ones (:class:`PruneStage`, or mappings / (layer, keep, strategy) tuples), each at a later layer
    keeping fewer of the frames still present; one recovery follows the last. :meth:`from_stages` builds one
    from the whole list, :attr:`stages` reads it back. A later stage chooses among the frames the previous
    one kept (``motion`` scores the input poses of those frames as a sequence; seq2frame keeps the centre).
    """

    strategy: str = "none"
    keep: int = 81
    layer: int = 3  # prune before this block / level
    k: int = 2
    recovery: str = "attention"
    pos_embed: bool = True  # learnable positional embedding for the kept tokens (HoT; not TPC-only), per stage
    extra_stages: tuple[PruneStage, ...] = ()

    def __post_init__(self) -> None:
        if self.strategy not in ("none", *FRAME_STRATEGIES):
            raise ValueError(f"FramePruneCfg.strategy: unknown {self.strategy!r}; known: "
                             f"{['none', *FRAME_STRATEGIES]}")
        if self.recovery not in ("attention", "nearest", "linear", "none"):
            raise ValueError(f"FramePruneCfg.recovery: unknown {self.recovery!r}")
        if isinstance(self.extra_stages, (PruneStage, Mapping)):
            raise ValueError(f"FramePruneCfg.extra_stages: expected a list of stages, got {self.extra_stages!r}")  # noqa: TRY004
        extra = tuple(_as_stage(s, f"FramePruneCfg.extra_stages[{i}]") for i, s in enumerate(self.extra_stages))
        object.__setattr__(self, "extra_stages", extra)  # normalised (YAML and checkpoints give mappings)
        if extra and not self.active:
            raise ValueError("FramePruneCfg.extra_stages: strategy 'none' has no first stage for them to follow")
        stages = self.stages
        if any(b.layer <= a.layer for a, b in itertools.pairwise(stages)):
            raise ValueError(f"FramePruneCfg: stage layers must increase, got {[s.layer for s in stages]}")
        if any(b.keep >= a.keep for a, b in itertools.pairwise(stages)):
            raise ValueError(f"FramePruneCfg: kept frames must decrease from stage to stage, got {[s.keep for s in stages]}")

    @classmethod
    def from_stages(cls, stages: Sequence[PruneStage | Mapping | Sequence], **kwargs: object) -> FramePruneCfg:
        """A schedule from its whole list of stages, e.g. ``from_stages([(3, 81, "cluster"), (5, 27, "cluster")])``;
        ``kwargs`` set the other fields (``recovery``, ``k``, ``pos_embed``)."""
        if not stages:
            raise ValueError("FramePruneCfg.from_stages: give at least one stage")
        first, *rest = (_as_stage(s, f"FramePruneCfg.from_stages[{i}]") for i, s in enumerate(stages))
        return cls(strategy=first.strategy, keep=first.keep, layer=first.layer, extra_stages=tuple(rest), **kwargs)

    @property
    def active(self) -> bool:
        """Whether frames are pruned at all."""
        return self.strategy != "none"

    @property
    def stages(self) -> tuple[PruneStage, ...]:
        """Every pruning stage in order, the first from ``(layer, keep, strategy)``; () when nothing is pruned."""
        if not self.active:
            return ()
        return (PruneStage(self.layer, self.keep, self.strategy), *self.extra_stages)

    @property
    def final_keep(self) -> int:
        """Frames present after the last stage: what the recovery reads, or the seq2frame output length."""
        return self.extra_stages[-1].keep if self.extra_stages else self.keep


def _center_column(center: int | Tensor, like: Tensor) -> Tensor:
    """The centre frame(s) as a (B, 1) column of ``like``'s dtype: an int for every row, or (B,) / (B, 1)."""
    if isinstance(center, Tensor):
        return center.reshape(-1, 1).to(like.dtype).expand(like.shape[0], 1)
    return torch.full_like(like[:, :1], center)


def choose_frames(
    cfg: FramePruneCfg,
    tokens: Tensor,
    *,
    poses: Tensor | None = None,
    attn_received: Tensor | None = None,
    noise: Tensor | None = None,
    center: int | Tensor | None = None,
    stage: int = 0,
    include: Tensor | None = None,
) -> Tensor:
    """Sorted indices (B, keep) of the frames stage ``stage`` of ``cfg`` keeps (the first stage by default).

    ``tokens`` (B, F, C) are the per-frame tokens at the pruning point (cluster); ``poses`` (B, F, J, D) the
    input poses (motion); ``attn_received`` (B, F) the attention each frame received (attention);
    ``noise`` (B, F) switches the cluster to the official numerics (see :func:`dpc_knn_score`);
    ``center`` keeps that frame (seq2frame; an int, or one per row (B,) as at later stages);
    ``include`` (B, F) bool marks frames that must be kept (the rest is filled by the strategy's ranking).
    """
    if not cfg.active:
        raise ValueError("choose_frames: strategy 'none' keeps every frame")
    if not 0 <= stage < len(cfg.stages):
        raise ValueError(f"choose_frames: stage {stage} out of range for {len(cfg.stages)} stage(s)")
    strategy, keep = cfg.stages[stage].strategy, cfg.stages[stage].keep
    with torch.no_grad():
        if strategy == "cluster":
            score = dpc_knn_score(tokens, cfg.k, noise)
        elif strategy == "motion":
            if poses is None:
                raise ValueError("choose_frames: strategy 'motion' needs the input poses")
            score = motion_score(poses)
        elif strategy == "attention":
            if attn_received is None:
                raise ValueError("choose_frames: strategy 'attention' needs the attention each frame received")
            score = attn_received
        else:  # uniform
            b, f = tokens.shape[:2]
            idx = uniform_frame_indices(f, keep, b, tokens.device)
            if include is not None:  # the grid frames rank first after the forced ones
                score = torch.zeros(b, f, device=tokens.device).scatter(1, idx, 1.0)
            else:
                if center is not None:  # the last frame gives way to the centre unless it is kept already
                    col = _center_column(center, idx)
                    swapped = torch.cat((idx[:, :-1], col), 1).sort(dim=1).values
                    idx = torch.where((idx == col).any(dim=1, keepdim=True), idx, swapped)  # no host sync
                return idx
        if include is not None:  # forced frames first (the centre is among them when it must be kept)
            return select_frames(score.masked_fill(include, float("inf")), keep)
        return select_frames(score, keep, center)


def prune_step(
    cfg: FramePruneCfg,
    stage: int,
    tokens: Tensor | None,
    index: Tensor | None,
    *,
    poses: Tensor | None = None,
    attn_received: Tensor | None = None,
    noise: Tensor | None = None,
    center: int | None = None,
    forced: Tensor | Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Run stage ``stage`` of ``cfg`` on the frames still present; returns ``(local, index)``.

    ``tokens`` (B, T, C) hold one token per present frame (the cluster scores them), ``index`` (B, T) the
    original frame of each (None at the first stage: all F frames in order); ``attn_received`` (B, T) is over
    the present frames. ``poses`` (B, F, J, D), ``noise`` (B, F) and ``center`` refer to the original frames
    and are gathered here. ``local`` (B, T') are the positions to gather from the present tokens, ``index``
    (B, T') their original frames, both ascending.

    ``forced`` fixes the choice: one (B, T_s) tensor of original frames per stage (every stage forced), or one
    tensor of the final kept frames (B, T_last) (the last stage keeps exactly those; an earlier one keeps
    them plus the best-ranked others, so a flip pass can reuse a plain pass's output frames). Forced frames
    must be among those present. With one stage, a forced tensor is used as given (as HoT's flip pass).
    """
    last = stage == len(cfg.stages) - 1
    target: Tensor | None = None
    if isinstance(forced, Tensor):
        target = forced if last else None
    elif forced is not None:
        target = forced[stage]
    if target is not None:
        if index is None:
            return target, target
        return torch.searchsorted(index, target), target
    if index is not None:
        poses = gather_tokens(poses, index) if poses is not None else None
        noise = noise.gather(1, index) if noise is not None else None
        center = (index < center).sum(dim=1, keepdim=True) if center is not None else None  # its position
    include = None
    if isinstance(forced, Tensor):  # an earlier stage of a forced multi-stage pass
        present = index if index is not None else torch.arange(tokens.shape[1], device=forced.device)[None]
        include = (present[:, :, None] == forced[:, None, :]).any(dim=-1)
        center = None  # the centre is among the forced final frames
    local = choose_frames(
        cfg, tokens, poses=poses, attn_received=attn_received, noise=noise, center=center, stage=stage, include=include
    )
    return local, (local if index is None else index.gather(1, local))


def stage_pos_embeds(cfg: FramePruneCfg, dim: int) -> torch.nn.ParameterList | None:
    """One zero-initialised (1, keep, dim) position embedding per later stage of a multi-stage schedule (the
    first stage's is the model's own); None for a single-stage schedule or ``pos_embed=False``."""
    if not (cfg.extra_stages and cfg.pos_embed):
        return None
    return torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(1, st.keep, dim)) for st in cfg.extra_stages)


def check_keep_index(
    cfg: FramePruneCfg, keep_index: Tensor | Sequence[Tensor], batch: int, frames: int, name: str,
    device: torch.device | str | None = None, sort: bool = True,
) -> Tensor | tuple[Tensor, ...]:
    """Validate forced kept frames: the final ones, one (B, T_last) integer tensor, or one (B, T_s) per stage of
    ``cfg``, each stage's frames among the previous stage's; every frame in [0, ``frames``). Returns them as int64
    on ``device`` (the input's; None: where they are), each row sorted unless ``sort`` is False (a single tensor
    only; stages are always sorted). One-line ``ValueError`` otherwise."""
    staged = isinstance(keep_index, (tuple, list))
    if staged:
        want = [(batch, s.keep) for s in cfg.stages]
        got = [(tuple(t.shape), t.dtype) if isinstance(t, Tensor) else type(t).__name__ for t in keep_index]
        ok = len(got) == len(want) and all(
            isinstance(t, Tensor) and tuple(t.shape) == w and t.dtype in (torch.int64, torch.int32)
            for t, w in zip(keep_index, want)
        )
        if not ok:
            raise ValueError(f"{name}: keep_index per stage must be integer tensors of shapes {want}, got {got}")
        stages = tuple(keep_index)
    else:
        want = (batch, cfg.final_keep)
        if not isinstance(keep_index, Tensor) or tuple(keep_index.shape) != want or keep_index.dtype not in (
            torch.int64, torch.int32
        ):
            got = (f"{keep_index.dtype} {tuple(keep_index.shape)}" if isinstance(keep_index, Tensor)
                   else type(keep_index).__name__)
            raise ValueError(f"{name}: keep_index must be integer, of shape {want} (batch, kept frames), got {got}")
        stages = (keep_index,)
    # a user's frame outside the clip, or one an earlier stage dropped, would otherwise surface as an indexing
    # error deep in the model or a silently different selection; tracers see no values, and the checks' host
    # syncs are paid only when frames are forced (checked where the caller's tensors are, then moved)
    if not tracing():
        if any(bool(((t < 0) | (t >= frames)).any()) for t in stages):
            raise ValueError(f"{name}: keep_index holds a frame outside [0, {frames}) (the clip's frames)")
        for s, (outer, inner) in enumerate(zip(stages, stages[1:]), start=1):
            if not bool((inner[:, :, None] == outer[:, None, :]).any(dim=-1).all()):
                raise ValueError(f"{name}: keep_index stage {s} holds a frame that stage {s - 1} did not keep "
                                 "(each stage keeps a subset of the previous one)")
    stages = tuple(t.to(device, torch.long) for t in stages)
    if staged or sort:
        stages = tuple(t.sort(dim=1).values for t in stages)
    return stages if staged else stages[0]


def check_forced_frames(
    cfg: FramePruneCfg, keep_index: Tensor | Sequence[Tensor] | None, noise: Tensor | None, batch: int, frames: int,
    name: str, device: torch.device | str | None = None, sort: bool = True,
) -> Tensor | tuple[Tensor, ...] | None:
    """What every pruned lifter's forward checks of its ``keep_index`` and ``noise``, one line naming ``name``: a
    ``keep_index`` needs an active pruning config and passes :func:`check_keep_index` (returned as it gives it);
    ``noise`` holds one value per frame, (B, F)."""
    if keep_index is not None:
        if not cfg.active:
            raise ValueError(f"{name}: keep_index given, but this config prunes no frames")
        keep_index = check_keep_index(cfg, keep_index, batch, frames, name, device, sort)
    if noise is not None and tuple(noise.shape) != (batch, frames):
        raise ValueError(f"{name}: noise must have shape (B, F) = ({batch}, {frames}), got {tuple(noise.shape)}")
    return keep_index


def read_center_frame(out: Tensor, index: Tensor, center: int) -> Tensor:
    """The prediction for frame ``center`` from a seq2frame output over the kept frames.

    ``out`` (B, T, ...) is indexed like the sorted kept frames ``index`` (B, T), which contain ``center``;
    returns (B, 1, ...).
    """
    pos = (index < center).sum(dim=1, keepdim=True)  # sorted, so the centre sits after the earlier ones
    return gather_tokens(out, pos)
