"""CNN backbones."""

from .hrnet import (
    BasicBlock,
    Bottleneck,
    HighResolutionModule,
    HRNet,
    HRNetCfg,
    hrnet_stem,
    hrnet_w32,
    hrnet_w32_truncated,
    hrnet_w48,
    hrnet_w48_truncated,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "HRNet",
    "HRNetCfg",
    "HighResolutionModule",
    "hrnet_stem",
    "hrnet_w32",
    "hrnet_w32_truncated",
    "hrnet_w48",
    "hrnet_w48_truncated",
]

from .shufflenet import InvertedResidual, ShuffleStem, ShuffleStemCfg, channel_shuffle  # noqa: E402

__all__ += ["InvertedResidual", "ShuffleStem", "ShuffleStemCfg", "channel_shuffle"]
