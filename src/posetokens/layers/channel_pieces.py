"""A feature map held as channel slices of the tensors that wrote it, in an order kept as integers.

A ShuffleNet stem interleaves the channels of two maps after every block, which moves the whole map and computes
nothing. Its consumers are linear in the channels: the next block's first 1x1 convolution and the patch embedding
can take their input channels in any order if their weight columns are put in the same order. So a map can stay
as the pieces its blocks wrote plus the order of its channels (:class:`ChannelPieces`), and a consumer copies, in
one pass of contiguous runs, only the channels it reads (:meth:`ChannelPieces.gather`), then permutes its
weight's columns (a few kilobytes) instead of the map (megabytes).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


def _starts(sizes: tuple[int, ...]) -> list[int]:
    """Where each part begins in ``cat(parts, 1)``, and the total at the end."""
    return list(itertools.accumulate(sizes, initial=0))


# The plans below are integers only, fixed by the architecture and not by the data, so each is computed once per
# shape of map and cached: at batch 1 the Python bookkeeping would otherwise cost what the copies it saves do.
@functools.lru_cache(maxsize=256)
def _gather_plan(sizes: tuple[int, ...], order: tuple[int, ...], logical: tuple[int, ...]
                 ) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]:
    """For the logical channels ``logical`` of a map of parts of ``sizes`` channels in ``order``: the contiguous
    runs ``(part, start, stop)`` that hold them in physical order, and the logical channel of each channel of
    those runs concatenated."""
    starts = _starts(sizes)
    phys = sorted((order[j], j) for j in logical)
    runs: list[tuple[int, int, int]] = []
    for p, _ in phys:
        part = bisect.bisect_right(starts, p) - 1
        if runs and runs[-1][0] == part and runs[-1][2] == p - starts[part]:
            runs[-1] = (part, runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((part, p - starts[part], p - starts[part] + 1))
    return tuple(runs), tuple(j for _, j in phys)


@functools.lru_cache(maxsize=256)
def _select_plan(sizes: tuple[int, ...], order: tuple[int, ...], start: int, stop: int
                 ) -> tuple[tuple[tuple[int, int, int], ...], tuple[int, ...]]:
    """The parts still read by channels ``start..stop-1``, each narrowed to ``(part, lo, hi)``, and their order."""
    starts, kept = _starts(sizes), order[start:stop]
    narrows: list[tuple[int, int, int]] = []
    remap: dict[int, int] = {}
    base = 0
    for i in range(len(sizes)):
        used = [j for j in kept if starts[i] <= j < starts[i + 1]]
        if used:
            lo, hi = min(used) - starts[i], max(used) - starts[i] + 1
            remap.update({starts[i] + c: base + c - lo for c in range(lo, hi)})
            narrows.append((i, lo, hi))
            base += hi - lo
    return tuple(narrows), tuple(remap[j] for j in kept)


@functools.lru_cache(maxsize=256)
def _interleave_order(order: tuple[int, ...], offset: int) -> tuple[int, ...]:
    return tuple(v for i, j in enumerate(order) for v in (j, offset + i))


@functools.lru_cache(maxsize=256)
def _whole_plan(sizes: tuple[int, ...], order: tuple[int, ...], dense: tuple[bool, ...]
                ) -> tuple[tuple[tuple[int, tuple[int, ...]], ...], tuple[int, ...]]:
    """The dense parts read whole with the logical channel of each of their channels, and the other channels."""
    starts, logical_of = _starts(sizes), {j: i for i, j in enumerate(order)}
    whole, rest = [], []
    for i in range(len(sizes)):
        held = [logical_of.get(c) for c in range(starts[i], starts[i + 1])]
        if dense[i] and all(h is not None for h in held):  # a slice would be copied by its consumer anyway
            whole.append((i, tuple(held)))  # type: ignore[arg-type]
        else:
            rest += [h for h in held if h is not None]
    return tuple(whole), tuple(sorted(rest))


def take_columns(weight: Tensor, where: Sequence[int]) -> Tensor:
    """``weight[:, where]``: a consumer's input channels (dim 1) in the order :meth:`ChannelPieces.gather` gives.
    The index is built at each call (a few microseconds): a cached tensor would outlive an inference-mode call or
    a tracer's fake tensors."""
    return weight.index_select(1, torch.tensor(where, dtype=torch.long, device=weight.device))


class ChannelPieces(NamedTuple):
    """A (B, C, H, W) map that is never built: its channel ``j`` is channel ``order[j]`` of ``cat(parts, 1)``.

    The parts are (B, C_i, H, W) tensors or channel slices of them; ``order`` is a tuple of ints fixed by the
    architecture. A named tuple, so code that maps over a module's outputs (a dtype cast in a hook) maps over the
    parts and keeps the order; it is therefore also a tuple (``isinstance(x, tuple)``, unpacking, ``len``).
    Eager only: under a tracer the map is built whole (GTPT checks ``layers.checks.tracing``).
    """

    parts: tuple[Tensor, ...]
    order: tuple[int, ...]

    @classmethod
    def of(cls, x: Tensor) -> ChannelPieces:
        """A whole map as one piece, in its own channel order."""
        return cls((x,), tuple(range(x.shape[1])))

    @property
    def channels(self) -> int:
        """Number of channels of the map."""
        return len(self.order)

    def interleave(self, other: Tensor) -> ChannelPieces:
        """The map whose channel ``2i`` is this map's channel ``i`` and ``2i + 1`` is ``other[:, i]`` (a ShuffleNet
        block's ``channel_shuffle(cat((self, other), 1), 2)``), without moving either."""
        if other.shape[1] != self.channels:
            raise ValueError(f"ChannelPieces.interleave: {self.channels} channels against {other.shape[1]}")
        return ChannelPieces((*self.parts, other), _interleave_order(self.order, sum(self._sizes())))

    def select(self, start: int, stop: int) -> ChannelPieces:
        """Channels ``start..stop-1``, each part narrowed to the channels still read (a view: the tensor it narrows
        stays alive until the map is consumed; GTPT-S's stem and embedding at batch 32 still peaked 48 MB lower
        than with the interleaves)."""
        narrows, order = _select_plan(self._sizes(), self.order, start, stop)
        parts = (self.parts[i] if (lo, hi) == (0, self.parts[i].shape[1]) else self.parts[i][:, lo:hi]
                 for i, lo, hi in narrows)
        return ChannelPieces(tuple(parts), order)

    def gather(self, logical: Sequence[int] | None = None) -> tuple[Tensor, tuple[int, ...]]:
        """The channels ``logical`` (default: all) as one dense map, in the order they are stored, and the logical
        channel of each of its channels: a consumer that is linear in the channels reads the map with its weight
        columns in that order. One copy by contiguous runs; none when the channels are one whole part."""
        runs, where = _gather_plan(self._sizes(), self.order,
                                   tuple(range(self.channels)) if logical is None else tuple(logical))
        if len(runs) == 1 and runs[0][1:] == (0, self.parts[runs[0][0]].shape[1]):
            return self.parts[runs[0][0]], where
        return torch.cat([self.parts[p][:, a:z] for p, a, z in runs], dim=1), where

    def whole_parts(self) -> tuple[list[tuple[Tensor, tuple[int, ...]]], tuple[int, ...]]:
        """The dense parts the map reads whole, each with the logical channel of each of its channels, and the
        logical channels held by the other parts: a consumer convolves the first in place and gathers the rest."""
        dense = tuple(p.is_contiguous() or p.is_contiguous(memory_format=torch.channels_last) for p in self.parts)
        whole, rest = _whole_plan(self._sizes(), self.order, dense)
        return [(self.parts[i], where) for i, where in whole], rest

    def _sizes(self) -> tuple[int, ...]:
        return tuple(int(p.shape[1]) for p in self.parts)  # ints: the plans are cached by them

    def dense(self) -> Tensor:
        """The map itself, (B, C, H, W) (for checks, and for a consumer that needs it whole)."""
        x, where = self.gather()
        return x.index_select(1, torch.tensor(where, device=x.device).argsort())  # logical channel j at its place
