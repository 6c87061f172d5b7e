"""ShuffleNetV2-style stems (GTPT): a 3x3 stride-2 conv, then stages of inverted-residual blocks.

One stage gives GTPT-T/S's stride-4 stem; several stages plus an upsampling path give GTPT-B's U-shaped
multi-scale stem (1x1 conv to 4C, PixelShuffle(2), BN, ReLU; concat with the skip; 1x1 fuse; blocks).
Module names follow the official layout closely (``conv1``, ``branch1``/``branch2`` indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from posetokens.layers.channel_pieces import ChannelPieces, take_columns
from posetokens.layers.checks import exporting
from posetokens.layers.fuse import FusedConv2d
from posetokens.layers.init import init_conv_bn


@dataclass(frozen=True)
class ShuffleStemCfg:
    """Channels of the stride-2 conv and of each down stage (stride 4, 8, ...); ``up_blocks`` per up stage."""

    stem_channels: int = 64
    stage_channels: tuple[int, ...] = (128,)
    blocks_per_stage: int = 4
    up_blocks: int = 2

    @property
    def out_channels(self) -> int:
        """Channels of the stride-4 output."""
        return self.stage_channels[0]


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet)."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _channels_innermost(t: Tensor) -> bool:
    """Whether a 4-D map stores its channels innermost (channels-last, or a channel slice of such a map)."""
    return t.dim() == 4 and t.stride(1) == 1 and t.shape[1] > 1 and t.shape[2] * t.shape[3] > 1


def concat_shuffle(a: Tensor, b: Tensor) -> Tensor:
    """``channel_shuffle(cat((a, b), 1), 2)`` in one copy: channel ``2i`` is ``a[:, i]``, ``2i + 1`` is
    ``b[:, i]``. Channels-last inputs give a channels-last output (no layout round trip)."""
    if _channels_innermost(b):  # the branch output's layout, or a channel slice of it (shuffle_halves)
        if exporting():  # ONNX turns the strided copies below into ScatterND: onnxruntime ran GTPT-T 2.5x slower
            return torch.stack((a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)), dim=-1).flatten(3).permute(0, 3, 1, 2)
        if a.dtype == b.dtype and b.dtype in (torch.float32, torch.float64) and not torch.compiler.is_compiling():
            # a complex tensor stores (real, imag) pairs: torch.complex writes the interleave in one vectorised
            # pass; inside GTPT-T 1.3x (batch 1) to 1.5x (batch 8) faster than the strided copies (float32, CPU)
            z = torch.complex(a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1))
            return torch.view_as_real(z).flatten(3).permute(0, 3, 1, 2)
        n, c, h, w = a.shape
        nhwc = torch.empty((n, h, w, c, 2), dtype=b.dtype, device=b.device)
        # two strided copies: torch.stack into this interleaved layout takes a slower kernel (5x at batch 1
        # when both inputs are contiguous, 1.4x at batch 32)
        nhwc[..., 0] = a.permute(0, 2, 3, 1)
        nhwc[..., 1] = b.permute(0, 2, 3, 1)
        return nhwc.flatten(3).permute(0, 3, 1, 2)
    return torch.stack((a, b), dim=2).flatten(1, 2)


def shuffle_halves(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """The two channel halves of ``concat_shuffle(a, b)``, each written as its own dense tensor.

    A stride-1 block splits its input into channel halves and convolves the second; a half of one channels-last
    map is a strided view, which the convolution first copies. Handing the next block these two tensors instead
    skips that copy, and interleaving half the channels twice costs less than the whole map once (GTPT-T's
    stem at batch 32, one thread: 8.2 ms for both halves against 17.3 ms for the interleave plus the copy).
    """
    c = a.shape[1]
    if c % 2:  # an odd count: each half of the 2c interleaved channels ends mid-pair, so split the whole map
        lo, hi = concat_shuffle(a, b).chunk(2, dim=1)
        return lo, hi
    h = c // 2
    return concat_shuffle(a[:, :h], b[:, :h]), concat_shuffle(a[:, h:], b[:, h:])


class InvertedResidual(nn.Module):
    """ShuffleNetV2 block: stride 2 = two branches concatenated; stride 1 = split, transform half, concat."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        mid = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"InvertedResidual: stride 1 needs in == out channels, got {in_channels}, {out_channels}")
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels),
                nn.BatchNorm2d(in_channels),
                nn.Conv2d(in_channels, mid, 1),
                nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
            )
        self.branch2 = nn.Sequential(
            nn.Conv2d(in_channels if stride > 1 else mid, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid),
            nn.BatchNorm2d(mid),
            nn.Conv2d(mid, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )

    def branches(self, x: Tensor | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The two maps the block interleaves: ``(branch1(x), branch2(x))`` at stride 2, ``(x1, branch2(x2))``
        at stride 1 for the channel halves ``x1, x2`` of ``x``, or of a pair already split (:func:`shuffle_halves`,
        stride 1 only)."""
        if self.stride > 1:
            return self.branch1(x), self.branch2(x)  # type: ignore[arg-type]
        x1, x2 = x if isinstance(x, tuple) else x.chunk(2, dim=1)
        return x1, self.branch2(x2)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride)."""
        return concat_shuffle(*self.branches(x))

    def forward_pieces(self, x: ChannelPieces) -> ChannelPieces:
        """:meth:`forward` on a map held in pieces, returned in pieces: the second half of the channels is gathered
        in the order it is stored (one copy of half the map) and ``branch2``'s first convolution reads it with its
        weight columns in that order; the first half and the branch's output are not moved. The same sums in
        another order (equal to float rounding). Stride 1, an even number of channels."""
        c = x.channels
        if self.stride != 1 or c % 2:
            raise ValueError(f"InvertedResidual.forward_pieces: needs stride 1 and an even channel count, got stride "
                             f"{self.stride} and {c} channels")
        h = c // 2
        x2, where = x.gather(range(h, c))
        first = self.branch2[0]
        weight = take_columns(first.weight, [j - h for j in where])
        if isinstance(first, FusedConv2d):  # the inference copy's conv (folded BatchNorm, its ReLU inside)
            y = first(x2, weight=weight)
        else:
            y = torch.func.functional_call(first, {"weight": weight}, (x2,))
        for layer in self.branch2[1:]:
            y = layer(y)
        return x.select(0, h).interleave(y)


def run_blocks(blocks: nn.Sequential, x: Tensor) -> Tensor:
    """Run ``blocks`` in order, as ``blocks(x)`` does, but hand each :class:`InvertedResidual` that follows another
    the previous block's output as its two channel halves (:func:`shuffle_halves`): the same values, with one
    copy fewer per block."""
    pending: tuple[Tensor, Tensor] | None = None  # the last block's two maps, not yet interleaved
    for m in blocks:
        if isinstance(m, InvertedResidual):
            inp: Tensor | tuple[Tensor, Tensor] = x
            if pending is not None:  # a stride-1 block takes the halves; a stride-2 block the whole map
                inp = shuffle_halves(*pending) if m.stride == 1 else concat_shuffle(*pending)
            pending = m.branches(inp)
        else:
            if pending is not None:
                x, pending = concat_shuffle(*pending), None
            x = m(x)
    return x if pending is None else concat_shuffle(*pending)


def run_blocks_in_pieces(blocks: nn.Sequential, x: Tensor) -> ChannelPieces:
    """:func:`run_blocks` that returns the output in pieces (:class:`~posetokens.layers.ChannelPieces`): no block
    interleaves its output; each stride-1 block gathers only the half of the channels its branch reads
    (:meth:`InvertedResidual.forward_pieces`: half a map copied per block, against the whole map in two halves).
    Modules that are not blocks, and stride-2 blocks, get the map whole. For a consumer that is linear in the
    channels (:meth:`~posetokens.layers.PatchEmbed.forward_pieces`); equal to :func:`run_blocks` to float
    rounding."""
    state: ChannelPieces | None = None
    for m in blocks:
        if isinstance(m, InvertedResidual) and m.stride == 1:
            state = m.forward_pieces(state if state is not None else ChannelPieces.of(x))
            continue
        if state is not None:
            x, state = state.dense(), None
        if isinstance(m, InvertedResidual):  # stride 2: two branches over the whole map
            a, b = m.branches(x)
            state = ChannelPieces.of(a).interleave(b)
        else:
            x = m(x)
    return state if state is not None else ChannelPieces.of(x)


class ShuffleStem(nn.Module):
    """ShuffleNetV2-style stem to a stride-4 map of ``cfg.out_channels`` channels."""

    def __init__(self, cfg: ShuffleStemCfg) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = cfg.stem_channels
        self.conv1 = nn.Sequential(nn.Conv2d(3, c0, 3, 2, 1), nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        self.down = nn.ModuleList()
        cin = c0
        for c in cfg.stage_channels:
            blocks = [InvertedResidual(cin if i == 0 else c, c, 2 if i == 0 else 1) for i in range(cfg.blocks_per_stage)]
            self.down.append(nn.Sequential(*blocks))
            cin = c
        # up path, deepest first: stage_channels[i+1] -> stage_channels[i]
        self.upsample = nn.ModuleList()
        self.up_layers = nn.ModuleList()
        for i in reversed(range(len(cfg.stage_channels) - 1)):
            hi, lo = cfg.stage_channels[i + 1], cfg.stage_channels[i]
            self.upsample.append(
                nn.Sequential(nn.Conv2d(hi, lo * 4, 1), nn.PixelShuffle(2), nn.BatchNorm2d(lo), nn.ReLU(inplace=True))
            )
            fuse = nn.Sequential(nn.Conv2d(lo * 2, lo, 1), nn.BatchNorm2d(lo), nn.ReLU(inplace=True))
            self.up_layers.append(nn.Sequential(fuse, *(InvertedResidual(lo, lo, 1) for _ in range(cfg.up_blocks))))
        self._init_weights()

    @property
    def out_channels(self) -> int:
        """Channels of the output map."""
        return self.cfg.out_channels

    @property
    def ends_in_shuffle(self) -> bool:
        """Whether the output is the channel interleave of a ShuffleNet block's two maps (what ``forward(x,
        pieces=True)`` saves): always, except for an up path whose stages have no blocks after their fuse conv."""
        last = self.up_layers[-1] if len(self.up_layers) else self.down[-1]
        return isinstance(last[-1], InvertedResidual)

    def _init_weights(self) -> None:
        init_conv_bn(self.modules(), std=0.001)  # official GTPT: convs N(0, 0.001), BN 1 / 0

    def forward(self, x: Tensor, pieces: bool = False) -> Tensor | ChannelPieces:
        """(B, 3, H, W) -> (B, C, H / 4, W / 4); with ``pieces`` (and :attr:`ends_in_shuffle`) that map's last stage
        run by :func:`run_blocks_in_pieces` and returned in pieces, for a consumer that reads them without building
        it (:meth:`~posetokens.layers.PatchEmbed.forward_pieces`). A forward hook on the stem then sees a
        :class:`~posetokens.layers.ChannelPieces`, and hooks on that stage's ``branch2`` Sequentials do not run
        (their layers are called one by one). Eager only."""
        if pieces and not self.ends_in_shuffle:
            raise ValueError("ShuffleStem: pieces=True needs a stem that ends in a ShuffleNet block (ends_in_shuffle)")
        x = self.conv1(x)
        feats: list[Tensor] = []
        last = len(self.down) - 1 if not len(self.up_layers) else None  # the down stage that ends the stem, if one
        for i, stage in enumerate(self.down):
            if pieces and i == last:
                return run_blocks_in_pieces(stage, x)
            x = run_blocks(stage, x)
            feats.append(x)
        x = feats[-1]
        for j, i in enumerate(reversed(range(len(feats) - 1))):
            inp = torch.cat((feats[i], self.upsample[j](x)), dim=1)
            if pieces and j == len(self.up_layers) - 1:
                return run_blocks_in_pieces(self.up_layers[j], inp)
            x = run_blocks(self.up_layers[j], inp)
        return x
