"""Weight initialisation shared by the transformer families (torch only)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def init_transformer_weights(modules: Iterable[nn.Module], std: float = 0.02) -> None:
    """ViT-style init: every ``nn.Linear`` truncated-normal(``std``) with zero bias, every ``nn.LayerNorm`` 1 / 0."""
    for m in modules:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
