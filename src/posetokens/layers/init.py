"""Weight initialisation shared by the model families (torch only)."""

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


def init_conv_bn(modules: Iterable[nn.Module], std: float = 0.001, zero_conv_bias: bool = False) -> None:
    """HRNet-style CNN init: every ``nn.Conv2d`` weight normal(0, ``std``) (bias zeroed when ``zero_conv_bias``,
    else left at PyTorch's default), every ``nn.BatchNorm2d`` weight 1 / bias 0."""
    for m in modules:
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=std)
            if zero_conv_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
