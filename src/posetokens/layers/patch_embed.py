"""Linear embedding of non-overlapping feature-map patches (torch only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .channel_pieces import ChannelPieces, take_columns


class PatchEmbed(nn.Linear):
    """Embed the non-overlapping ``(ph, pw)`` patches of a (B, C, H, W) map as (B, N, D) tokens, row-major.

    Each patch is flattened in (row, col, channel) order, the TokenPose/GTPT layout, and multiplied by
    ``weight`` (D, ph*pw*C). The parameters are those of an ``nn.Linear``, so checkpoints keep the keys
    ``weight``/``bias``. A channels-last input (what ``optimize_for_inference`` feeds) runs as one strided
    convolution, which reads the map in place instead of copying it into patches; any other input runs as
    reshape + matmul. Both compute the same sums.
    """

    def __init__(self, in_channels: int, patch_size: tuple[int, int], dim: int) -> None:
        ph, pw = patch_size
        super().__init__(in_channels * ph * pw, dim)
        self.in_channels = in_channels
        self.patch_size = (ph, pw)

    def forward(self, feat: Tensor | ChannelPieces) -> Tensor:  # type: ignore[override]
        """(B, C, H, W) feature map, H and W multiples of the patch size, to (B, H/ph * W/pw, D) tokens; a map held
        in pieces goes to :meth:`forward_pieces`."""
        if isinstance(feat, ChannelPieces):
            return self.forward_pieces(feat)
        b, c, h, w = feat.shape
        ph, pw = self.patch_size
        if c != self.in_channels or h % ph or w % pw:
            raise ValueError(f"PatchEmbed: expected (B, {self.in_channels}, H, W) with H a multiple of {ph} and W of "
                             f"{pw}, got {tuple(feat.shape)}")
        gh, gw = h // ph, w // pw
        if feat.is_contiguous(memory_format=torch.channels_last) and not feat.is_contiguous():
            out = F.conv2d(feat, self._conv_weight(), self.bias, stride=(ph, pw))  # (B, D, gh, gw), channels-last
            return out.permute(0, 2, 3, 1).reshape(b, gh * gw, -1)
        x = feat.reshape(b, c, gh, ph, gw, pw).permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, ph * pw * c)
        return F.linear(x, self.weight, self.bias)

    def forward_pieces(self, x: ChannelPieces) -> Tensor:
        """The embedding of a map held in pieces (:class:`~posetokens.layers.ChannelPieces`, a ShuffleNet stem's
        output without its interleaves), without building the map: one strided convolution over each dense part the
        map reads whole, and one over the other channels gathered in a single copy, each with the weight's input
        channels in that part's order, summed. The same sums in another order (equal to float rounding in float32).
        Two whole parts (a block's two maps) is GTPT-S's 256-channel map at batch 32, one thread: 63 ms, against
        16 ms of interleave and 75 ms of one convolution (oneDNN ran two 128-channel convolutions at 77 GMAC/s, the
        one at 65). ``self(x)`` calls it, so module hooks see it."""
        n, _, h, w = x.parts[0].shape
        ph, pw = self.patch_size
        if x.channels != self.in_channels or h % ph or w % pw or any(p.shape[0] != n or p.shape[2:] != (h, w)
                                                                    for p in x.parts):
            raise ValueError(f"PatchEmbed.forward_pieces: expected a map of {self.in_channels} channels with H a "
                             f"multiple of {ph} and W of {pw}, got {x.channels} channels in parts of shapes "
                             f"{[tuple(p.shape) for p in x.parts]}")
        weight = self._conv_weight()
        whole, rest = x.whole_parts()
        (first, where), *others = whole + ([x.gather(rest)] if rest else [])
        out = F.conv2d(first, take_columns(weight, where), self.bias, stride=(ph, pw))
        for part, where in others:
            out = out + F.conv2d(part, take_columns(weight, where), None, stride=(ph, pw))
        return out.permute(0, 2, 3, 1).reshape(n, (h // ph) * (w // pw), -1)

    def _conv_weight(self) -> Tensor:
        """The weight as a (D, C, ph, pw) convolution kernel (a view: a patch is flattened in (row, col, channel))."""
        ph, pw = self.patch_size
        return self.weight.view(-1, ph, pw, self.in_channels).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        """Shown by ``print(module)``."""
        return f"in_channels={self.in_channels}, patch_size={self.patch_size}, dim={self.out_features}"

    def fold_input_norm(self, bn: nn.BatchNorm2d) -> None:
        """Fold an eval-mode ``bn`` applied to this layer's input map into the weight and bias, in place: the
        patches do not overlap and nothing is padded, so ``self(bn(x))`` equals the folded ``self(x)`` to float
        rounding. Inference only (the running statistics are fixed)."""
        if bn.num_features != self.in_channels or bn.running_var is None or bn.running_mean is None:
            raise ValueError(f"PatchEmbed.fold_input_norm: expected a BatchNorm2d of {self.in_channels} channels with "
                             f"running statistics, got {bn}")
        with torch.no_grad():
            scale = bn.running_var.add(bn.eps).rsqrt()
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale + (bn.bias if bn.bias is not None else 0.0)
            ph, pw = self.patch_size
            weight = self.weight.view(-1, ph, pw, self.in_channels)  # the (row, col, channel) order of a patch
            bias = weight.double().sum((1, 2)) @ shift.double()
            self.weight.copy_((weight * scale).view_as(self.weight))
            if self.bias is None:
                self.bias = nn.Parameter(bias.to(self.weight.dtype))
            else:
                self.bias.add_(bias.to(self.bias.dtype))

