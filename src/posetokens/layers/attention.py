"""The one attention block of the package: multi-head self-attention, MLP and the pre-norm transformer block.

Attention runs through ``F.scaled_dot_product_attention`` (fused) unless the caller needs part of the
attention map. A pruning layer needs only the rows of a few query tokens (the keypoint tokens), so
:meth:`Attention.forward_scored` computes the fused output plus the softmax rows of just those queries.

``use_fused_attn(False)`` switches every block to the explicit ``softmax(q k^T) v`` path. FLOP counting
uses it, because ``torch.utils.flop_counter`` does not see the fused CPU kernel.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import tracing
from .drop import DropPath

_FUSED = True


def fused_attn_enabled() -> bool:
    """Whether attention uses the fused SDPA kernel."""
    return _FUSED


@contextlib.contextmanager
def use_fused_attn(enabled: bool) -> Iterator[None]:
    """Context manager that turns the fused SDPA path on or off for every :class:`Attention`."""
    global _FUSED
    old, _FUSED = _FUSED, enabled
    try:
        yield
    finally:
        _FUSED = old


@functools.cache
def _cpu_vector_width() -> int:
    """float32 lanes of the vector unit PyTorch's CPU kernels were dispatched to (16 for AVX-512, else 8)."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def key_padding(num_keys: int, device: torch.device) -> int:
    """Masked keys to append so that PyTorch's CPU SDPA kernel runs every key in its vector loop.

    The kernel's softmax runs each query row over the keys in vectors of the CPU's float32 width and the
    remainder in a scalar loop with a scalar ``exp``, so its cost per score grows with ``num_keys`` modulo the
    width: at 82 queries, head size 16, 94 keys cost 2.6 ns a score and 96 keys 1.45 (AVX-512, one thread).
    Returns how many keys reach the next multiple of the width when the remainder is at least a quarter of it
    (below that the extra keys cost about what they save), else 0; always 0 off the CPU or while tracing.
    """
    if device.type != "cpu" or tracing():
        return 0
    w = _cpu_vector_width()
    tail = num_keys % w
    return w - tail if tail * 4 >= w else 0


class Attention(nn.Module):
    """Multi-head self-attention with a fused QKV projection.

    ``scale`` defaults to ``head_dim ** -0.5``; TokenPose-S uses ``dim ** -0.5`` and passes it in.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"Attention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = float(scale) if scale is not None else self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if _FUSED:
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        return attn.softmax(dim=-1) @ v

    def _merge(self, out: Tensor) -> Tensor:
        b, h, n, d = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * d))

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention over (B, N, C) tokens."""
        q, k, v = self._qkv(x)
        return self._merge(self._attend(q, k, v))

    def forward_received(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Self-attention that also returns the attention each token receives: the post-softmax map
        averaged over heads and queries, shape (B, N). Materialises the full map (explicit path)."""
        q, k, v = self._qkv(x)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self._merge(attn @ v), attn.mean(dim=(1, 2))

    def forward_scored(self, x: Tensor, num_queries: int) -> tuple[Tensor, Tensor]:
        """Self-attention that also returns the post-softmax attention rows of the first ``num_queries`` tokens.

        Returns ``(out, attn)`` with ``attn`` of shape (B, heads, num_queries, N), softmax over all N keys.
        """
        q, k, v = self._qkv(x)
        rows = ((q[:, :, :num_queries] @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self._merge(self._attend(q, k, v)), rows

    def forward_logits(self, x: Tensor, num_queries: int) -> tuple[Tensor, Tensor]:
        """Self-attention that also returns the pre-softmax scaled logits ``q k^T * scale`` of the first
        ``num_queries`` tokens against all N keys, shape (B, heads, num_queries, N) (GTPT scores from logits)."""
        q, k, v = self._qkv(x)
        logits = (q[:, :, :num_queries] @ k.transpose(-2, -1)) * self.scale
        return self._merge(self._attend(q, k, v)), logits

    def forward_grouped(
        self, x: Tensor, num_shared: int, key_valid: Tensor | None = None, score_rows: Sequence[tuple[int, int]] = ()
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Grouped attention over (B, G, L, C): G groups of L tokens whose first ``num_shared`` are shared.

        Every query of group g attends to the shared tokens of *all* groups (G * num_shared keys) plus the
        other ``L - num_shared`` tokens of its own group only, with every head in every group (GTPT's
        multi-head group attention). ``key_valid`` (G * num_shared,) bool marks usable shared keys (False:
        masked). Vectorised over groups. Returns ``(out, logits)``: with ``score_rows``, one ``(start, stop)``
        per group, the pre-softmax scaled logits of group g's queries ``start..stop-1`` against its own
        ``L - num_shared`` keys, (B, heads, stop - start, L - num_shared) each (GTPT's group-wise pruning
        scores: each group's own keypoint queries, whose counts differ in COCO-WholeBody); else ``()``.
        """
        b, g, n, c = x.shape
        s, h = num_shared, self.num_heads
        if score_rows and (len(score_rows) != g or not all(
                isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(i, int) for i in r)
                and 0 <= r[0] < r[1] <= n for r in score_rows)):
            raise ValueError(f"Attention.forward_grouped: score_rows {list(score_rows)} are not {g} non-empty ranges "
                             f"(start, stop) of ints in [0, {n}]")
        # (B, G, H, L, d) views; groups are folded into the batch of every attention call, because SDPA's
        # fast CPU kernel takes 4-D input only (5-D, or a 1-D mask, falls back to the slow math path)
        qkv = self.qkv(x).reshape(b, g, n, 3, h, self.head_dim).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]

        # the fused kernel gets masked zero keys up to its vector width (see key_padding): free here, because
        # the keys are copied into one tensor anyway
        pad = key_padding(g * s + n - s, x.device) if _FUSED else 0

        def keys(t: Tensor) -> Tensor:  # (B * G, H, G * s + L - s [+ pad], d): every group's shared, then its own
            shared = t[:, :, :, :s].transpose(1, 2).flatten(2, 3)[:, None].expand(-1, g, -1, -1, -1)
            parts = (shared, t[:, :, :, s:]) + ((t.new_zeros(b, g, h, pad, self.head_dim),) if pad else ())
            return torch.cat(parts, dim=3).flatten(0, 1)

        q, kk, vv = q.flatten(0, 1), keys(k), keys(v)
        valid = None
        if key_valid is not None or pad:  # (1, keys): broadcast over queries, heads and groups
            shared_valid = x.new_ones(g * s, dtype=torch.bool) if key_valid is None else key_valid.to(torch.bool)
            own_valid, pad_valid = x.new_ones(n - s, dtype=torch.bool), x.new_zeros(pad, dtype=torch.bool)
            valid = torch.cat((shared_valid, own_valid, pad_valid))[None]
        logits: tuple[Tensor, ...] = ()
        if _FUSED:
            out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=valid, scale=self.scale)
            if score_rows:  # only the scores' blocks of the logits (GTPT-T: 6 of 82 queries, 76 of 94 keys)
                qg, own = q.unflatten(0, (b, g)), k[:, :, :, s:]  # the scale goes on the few queries, not the logits
                logits = tuple(
                    (qg[:, i, :, a:z] * self.scale) @ own[:, i].transpose(-2, -1) for i, (a, z) in enumerate(score_rows)
                )
        else:
            full = q @ kk.transpose(-2, -1)
            if valid is None:
                full = full * self.scale
            else:  # scale and mask in one pass: a (1, keys) bias of 0 / -inf (a broadcast masked_fill is slow);
                # usable logits equal ``qk * scale`` bitwise, and a masked key gets exactly 0 weight either way
                bias = torch.zeros(valid.shape, dtype=q.dtype, device=q.device).masked_fill(~valid, float("-inf"))
                full = torch.add(bias, full, alpha=self.scale)
            out = full.softmax(dim=-1) @ vv
            own_full = full.unflatten(0, (b, g))[..., g * s : g * s + n - s]  # (B, G, H, L, L - s)
            logits = tuple(own_full[:, i, :, a:z] for i, (a, z) in enumerate(score_rows))
        out = out.transpose(1, 2).reshape(b, g, n, c)
        return self.proj(out), logits


class CrossAttention(nn.Module):
    """Multi-head cross-attention with separate q/k/v projections (HoT's token recovering attention)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, scale: float | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = float(scale) if scale is not None else self.head_dim**-0.5
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """``query`` (B, Nq, C) attends to ``key``/``value`` (B, Nk, C); returns (B, Nq, C).

        A ``query`` of batch 1 is shared by every key sequence: it is projected once and broadcast (HoT's
        recovery queries are the same for every clip and joint).
        """
        k, v = self._heads(self.linear_k(key)), self._heads(self.linear_v(value))
        q = self._heads(self.linear_q(query))
        if q.shape[0] != k.shape[0]:
            if q.shape[0] != 1:
                raise ValueError(f"CrossAttention: query batch {q.shape[0]} is neither 1 nor the key batch {k.shape[0]}")
            q = q.expand(k.shape[0], -1, -1, -1)
        if _FUSED:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        else:
            out = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1) @ v
        b, h, n, d = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, n, h * d))


class Mlp(nn.Module):
    """Two-layer feed-forward network with GELU."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply fc1, GELU, fc2."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``.

    The two halves are exposed separately (:meth:`attend`, :meth:`feed`) because token pruning happens
    between them, after the attention residual and before the FFN.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_hidden: int,
        qkv_bias: bool = False,
        scale: float | None = None,
        eps: float = 1e-5,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, scale=scale)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()  # stochastic depth, both halves

    def attend(self, x: Tensor) -> Tensor:
        """Attention half with its residual."""
        return x + self.drop_path(self.attn(self.norm1(x)))

    def attend_scored(self, x: Tensor, num_queries: int) -> tuple[Tensor, Tensor]:
        """Attention half with its residual, plus the attention rows of the first ``num_queries`` tokens."""
        out, rows = self.attn.forward_scored(self.norm1(x), num_queries)
        return x + self.drop_path(out), rows

    def attend_received(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Attention half with its residual, plus the attention each token receives (B, N)
        (see :meth:`Attention.forward_received`)."""
        out, received = self.attn.forward_received(self.norm1(x))
        return x + self.drop_path(out), received

    def attend_logits(self, x: Tensor, num_queries: int) -> tuple[Tensor, Tensor]:
        """Attention half with its residual, plus the pre-softmax logits of the first ``num_queries`` tokens."""
        out, logits = self.attn.forward_logits(self.norm1(x), num_queries)
        return x + self.drop_path(out), logits

    def attend_grouped(
        self, x: Tensor, num_shared: int, key_valid: Tensor | None = None, score_rows: Sequence[tuple[int, int]] = ()
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Grouped attention half (B, G, L, C) with its residual (see :meth:`Attention.forward_grouped`)."""
        out, logits = self.attn.forward_grouped(self.norm1(x), num_shared, key_valid, score_rows)
        return x + self.drop_path(out), logits

    def feed(self, x: Tensor) -> Tensor:
        """Feed-forward half with its residual."""
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Full block."""
        return self.feed(self.attend(x))
