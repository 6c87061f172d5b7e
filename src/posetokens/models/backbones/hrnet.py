"""HRNet (Sun et al., CVPR 2019) in one file: the stem used by TokenPose-S, the 3-stage HRNet of TokenPose-B/L
and PPT-B/L, and the full 4-stage HRNet-W32/W48 heatmap baseline.

One class, :class:`HRNet`, configured by a frozen :class:`HRNetCfg`:

* ``num_stages=1``: conv3x3 s2 (3->64) + BN + ReLU, conv3x3 s2 (64->64) + BN + ReLU, ``layer1`` = 4 Bottlenecks
  (64->256). Output: 256 channels at stride 4 (TokenPose-S ``features``).
* ``num_stages=3``: + ``transition1``, ``stage2`` (branches [c, 2c]), ``transition2``, ``stage3``
  (branches [c, 2c, 4c]); the last stage-3 module keeps only the fused highest-resolution map. Output: c channels
  at stride 4 (TokenPose-B/L ``pre_feature``).
* ``num_stages=4``: + ``transition3``, ``stage4`` (branches [c, 2c, 4c, 8c]) and an optional 1x1 ``final_layer``
  (with bias) to K heatmaps (HRNet-W32/W48 pose baseline).

The module tree mirrors the official implementations (``pose_hrnet.py`` of HRNet and ``hr_base.py`` of
TokenPose), so state-dict keys are identical: an official checkpoint converts by stripping its prefix
(``pre_feature.`` for TokenPose-B/L, ``features.`` for TokenPose-S, none for HRNet).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from posetokens.layers.fuse import FusableBlock, FusedConv2d, fuse_conv_bn
from posetokens.layers.init import init_conv_bn

__all__ = [
    "BN_MOMENTUM",
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

BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, stride=stride, padding=0, bias=False)


class BasicBlock(FusableBlock):
    """Residual block of two 3x3 convs (expansion 1)."""

    expansion = 1
    fused = False  # the inference form (fuse_for_inference): BN folded, ReLUs and the sum inside the convolutions

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _bn(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        residual = x if self.downsample is None else self.downsample(x)
        if self.fused:
            return self.conv2(self.conv1(x), residual)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual  # in place: saves a full-size allocation; autograd-safe (BN/conv keep inputs)
        return self.relu(out)

    def fuse_for_inference(self) -> None:
        """Inference form, in place: the BatchNorms folded into the convs (done first if needed), each ReLU and the
        residual sum inside a :class:`FusedConv2d` (one oneDNN pass each on the CPU)."""
        _fuse_block(self, ("conv1", "conv2"))


class Bottleneck(FusableBlock):
    """Residual bottleneck 1x1 -> 3x3 -> 1x1 (expansion 4)."""

    expansion = 4
    fused = False  # the inference form (fuse_for_inference): BN folded, ReLUs and the sum inside the convolutions

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = _bn(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = _bn(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = _bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block."""
        residual = x if self.downsample is None else self.downsample(x)
        if self.fused:
            return self.conv3(self.conv2(self.conv1(x)), residual)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += residual
        return self.relu(out)

    def fuse_for_inference(self) -> None:
        """As :meth:`BasicBlock.fuse_for_inference`, for the three convolutions."""
        _fuse_block(self, ("conv1", "conv2", "conv3"))


def _fuse_block(block: BasicBlock | Bottleneck, convs: tuple[str, ...]) -> None:
    """Fold each ``bn<k>`` into ``conv<k>`` (:func:`~posetokens.layers.fuse_conv_bn`, a no-op where already folded)
    and make every conv a :class:`FusedConv2d` with its ReLU (the last one's after the residual sum)."""
    fuse_conv_bn(block)
    for conv in convs:
        c = getattr(block, conv)
        setattr(block, conv, c if isinstance(c, FusedConv2d) else FusedConv2d.from_conv(c, relu=True))
    block.fused = True


_Block = type[BasicBlock] | type[Bottleneck]


def _make_layer(block: _Block, inplanes: int, planes: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
    """A stack of ``num_blocks`` residual blocks; the first gets a conv1x1+BN shortcut when shapes change."""
    downsample: nn.Module | None = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(_conv1x1(inplanes, planes * block.expansion, stride), _bn(planes * block.expansion))
    layers: list[nn.Module] = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class _UpFuse(nn.Sequential):
    """Fuse path from a lower-resolution branch: conv1x1 + BN + nearest upsample (official layout ``.0``/``.1``)."""

    def __init__(self, cin: int, cout: int, scale: int) -> None:
        super().__init__(_conv1x1(cin, cout), _bn(cout), nn.Upsample(scale_factor=scale, mode="nearest"))

    def forward_to(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Project and upsample (nearest) to ``size``; equals the ``scale_factor`` upsample on exact 2^k sizes."""
        return F.interpolate(self[1](self[0](x)), size=size, mode="nearest")


class HighResolutionModule(nn.Module):
    """Parallel multi-resolution branches followed by all-to-all fusion (one HRNet module)."""

    def __init__(
        self,
        num_branches: int,
        block: _Block,
        num_blocks: tuple[int, ...],
        num_inchannels: list[int],
        num_channels: tuple[int, ...],
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        if not (len(num_blocks) == len(num_inchannels) == len(num_channels) == num_branches):
            raise ValueError(
                f"num_branches={num_branches} does not match num_blocks={num_blocks}, "
                f"num_inchannels={num_inchannels}, num_channels={num_channels}"
            )
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.branches = nn.ModuleList(
            _make_layer(block, num_inchannels[i], num_channels[i], num_blocks[i]) for i in range(num_branches)
        )
        self.num_inchannels = [c * block.expansion for c in num_channels]
        self.fuse_layers = self._make_fuse_layers()
        self.relu = nn.ReLU(inplace=False)

    def _make_fuse_layers(self) -> nn.ModuleList | None:
        if self.num_branches == 1:
            return None
        chans = self.num_inchannels
        fuse_layers = nn.ModuleList()
        for i in range(self.num_branches if self.multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(_UpFuse(chans[j], chans[i], 2 ** (j - i)))
                elif j == i:
                    row.append(None)
                else:
                    steps: list[nn.Module] = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            steps.append(nn.Sequential(_conv3x3(chans[j], chans[i], 2), _bn(chans[i])))
                        else:
                            steps.append(
                                nn.Sequential(_conv3x3(chans[j], chans[j], 2), _bn(chans[j]), nn.ReLU(inplace=True))
                            )
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        return fuse_layers

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        """Run every branch on its input, then fuse: out_i = ReLU(sum_j f_ij(x_j))."""
        xs = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:
            return xs
        out: list[Tensor] = []
        for i, row in enumerate(self.fuse_layers):
            size = (xs[i].shape[-2], xs[i].shape[-1])
            terms = [
                xs[j] if j == i else (layer.forward_to(xs[j], size) if j > i else layer(xs[j]))
                for j, layer in enumerate(row)
            ]
            y = terms[0]
            for t in terms[1:]:  # same summation order as the official code (j = 0, 1, ...)
                y = y + t
            out.append(self.relu(y))
        return out


@dataclass(frozen=True)
class HRNetCfg:
    """Configuration of :class:`HRNet`.

    ``num_modules`` and ``num_blocks`` are indexed by stage (1..4); stage 1 is ``layer1`` (one "module" of
    ``num_blocks[0]`` Bottlenecks), stages 2..4 use BasicBlocks with ``num_blocks[s-1]`` blocks per branch.
    ``multi_scale_output`` applies to the last module of the last stage (False: only the fused
    highest-resolution map is produced, as in every official pose model).
    """

    width: int = 32
    num_stages: int = 4
    stem_channels: int = 64
    num_modules: tuple[int, ...] = (1, 1, 4, 3)
    num_blocks: tuple[int, ...] = (4, 4, 4, 4)
    multi_scale_output: bool = False
    final_conv: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.num_stages <= 4:
            raise ValueError(f"HRNetCfg.num_stages must be in 1..4, got {self.num_stages}")
        if len(self.num_modules) < self.num_stages or len(self.num_blocks) < self.num_stages:
            raise ValueError("HRNetCfg.num_modules and num_blocks need one entry per stage")
        if self.num_modules[0] != 1:
            raise ValueError("HRNetCfg.num_modules: stage 1 (layer1) has exactly one module")
        for name in ("width", "stem_channels"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"HRNetCfg.{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("num_modules", "num_blocks"):
            used = tuple(getattr(self, name))[: self.num_stages]
            if not all(isinstance(v, int) and v >= 1 for v in used):
                raise ValueError(f"HRNetCfg.{name} must be integers >= 1 (one per stage), got {list(used)}")
        if self.final_conv is not None and not (isinstance(self.final_conv, int) and self.final_conv >= 1):
            raise ValueError(f"HRNetCfg.final_conv must be None or an integer >= 1, got {self.final_conv!r}")

    def stage_channels(self, stage: int) -> list[int]:
        """Branch widths of stage ``stage`` (2..4): [c, 2c, ..., 2^(stage-1) c]."""
        return [self.width * 2**k for k in range(stage)]


def hrnet_stem() -> HRNetCfg:
    """TokenPose-S stem: two stride-2 convs + 4 Bottlenecks, 256 channels at stride 4 (0.325M params)."""
    return HRNetCfg(num_stages=1)


def hrnet_w32_truncated() -> HRNetCfg:
    """HRNet-W32 up to stage 3 (TokenPose-B / PPT-B backbone), 32 channels at stride 4."""
    return HRNetCfg(width=32, num_stages=3)


def hrnet_w48_truncated() -> HRNetCfg:
    """HRNet-W48 up to stage 3 (TokenPose-L / PPT-L backbone), 48 channels at stride 4."""
    return HRNetCfg(width=48, num_stages=3)


def hrnet_w32(final_conv: int | None = None) -> HRNetCfg:
    """Full 4-stage HRNet-W32; ``final_conv=K`` adds the 1x1 heatmap head (28.5M params with K=17)."""
    return HRNetCfg(width=32, num_stages=4, final_conv=final_conv)


def hrnet_w48(final_conv: int | None = None) -> HRNetCfg:
    """Full 4-stage HRNet-W48; ``final_conv=K`` adds the 1x1 heatmap head (63.6M params with K=17)."""
    return HRNetCfg(width=48, num_stages=4, final_conv=final_conv)


class HRNet(nn.Module):
    """HRNet stem / truncated / full backbone with the official module names (see module docstring)."""

    def __init__(self, cfg: HRNetCfg) -> None:
        super().__init__()
        self.cfg = cfg
        sc = cfg.stem_channels
        self.conv1 = nn.Conv2d(3, sc, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = _bn(sc)
        self.conv2 = nn.Conv2d(sc, sc, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = _bn(sc)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_layer(Bottleneck, sc, sc, cfg.num_blocks[0])
        pre_channels = [sc * Bottleneck.expansion]

        self.num_stages = cfg.num_stages
        for stage in range(2, cfg.num_stages + 1):
            channels = cfg.stage_channels(stage)
            setattr(self, f"transition{stage - 1}", self._make_transition(pre_channels, channels))
            last = stage == cfg.num_stages
            module, pre_channels = self._make_stage(
                channels,
                cfg.num_modules[stage - 1],
                cfg.num_blocks[stage - 1],
                multi_scale_output=cfg.multi_scale_output or not last,
            )
            setattr(self, f"stage{stage}", module)

        self.feature_channels: int = pre_channels[0]
        self.final_layer: nn.Conv2d | None = None
        if cfg.final_conv is not None:
            self.final_layer = nn.Conv2d(pre_channels[0], cfg.final_conv, kernel_size=1, stride=1, padding=0)
        self.out_channels: int = cfg.final_conv if cfg.final_conv is not None else pre_channels[0]
        self.init_weights()

    @staticmethod
    def _make_transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                if c != pre[i]:
                    layers.append(nn.Sequential(_conv3x3(pre[i], c), _bn(c), nn.ReLU(inplace=True)))
                else:
                    layers.append(None)
            else:
                steps: list[nn.Module] = []
                for k in range(i + 1 - len(pre)):
                    cin = pre[-1]
                    cout = c if k == i - len(pre) else cin
                    steps.append(nn.Sequential(_conv3x3(cin, cout, 2), _bn(cout), nn.ReLU(inplace=True)))
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(
        channels: list[int], num_modules: int, num_blocks: int, multi_scale_output: bool
    ) -> tuple[nn.Sequential, list[int]]:
        n = len(channels)
        inchannels = list(channels)
        modules: list[HighResolutionModule] = []
        for m in range(num_modules):
            mod = HighResolutionModule(
                n,
                BasicBlock,
                (num_blocks,) * n,
                inchannels,
                tuple(channels),
                multi_scale_output=multi_scale_output or m < num_modules - 1,
            )
            inchannels = mod.num_inchannels
            modules.append(mod)
        return nn.Sequential(*modules), inchannels

    def init_weights(self) -> None:
        """Official HRNet/TokenPose init: conv weights N(0, 0.001), conv biases 0, BN weight 1 / bias 0."""
        init_conv_bn(self.modules(), std=0.001, zero_conv_bias=True)

    @staticmethod
    def _transit(transition: nn.ModuleList, xs: list[Tensor]) -> list[Tensor]:
        out: list[Tensor] = []
        for i, t in enumerate(transition):
            src = xs[i] if i < len(xs) else xs[-1]
            out.append(src if t is None else t(src))
        return out

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Backbone outputs of the last stage, highest resolution first (one map unless multi-scale)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for stage in range(2, self.num_stages + 1):
            xs = self._transit(getattr(self, f"transition{stage - 1}"), xs)
            xs = getattr(self, f"stage{stage}")(xs)
        return xs

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, out_channels, H/4, W/4): the highest-resolution map (through ``final_layer`` if set)."""
        y = self.forward_features(x)[0]
        if self.final_layer is not None:
            y = self.final_layer(y)
        return y
