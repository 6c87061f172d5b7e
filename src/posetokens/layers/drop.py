"""Stochastic depth (drop-path): drop a residual branch per sample while training (torch only)."""

from __future__ import annotations

from torch import Tensor, nn


def drop_path(x: Tensor, p: float = 0.0, training: bool = False) -> Tensor:
    """Zero whole samples (dim 0) of the branch ``x`` with probability ``p`` and rescale the rest by 1/(1-p).

    The identity when ``p`` is 0 or outside training.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    """Module form of :func:`drop_path` (stochastic depth of a residual branch)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropPath: p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        """Drop samples of ``x`` while training."""
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
