"""The one token-pruning home of the package (torch only).

PPT (keypoint-attention top-k) lives here; GTPT's group-wise top-k and HoT's DPC-kNN cluster join it.
Every pruner returns the kept indices, so callers can gather positions, patch ids or anything else with
the same indices, and tools (parity, the kept-token pictures) can read them.
"""

from __future__ import annotations

import math
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
