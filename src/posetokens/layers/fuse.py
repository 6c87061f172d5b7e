"""Inference-time rewrites of a trained model that keep its outputs (torch only)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d into the Conv2d before it, in place; returns ``module``.

    Pairs are found two ways: consecutive ``(Conv2d, BatchNorm2d)`` items of an ``nn.Sequential``, and
    sibling attributes named ``conv<k>`` / ``bn<k>`` (the ResNet/HRNet convention). The BN becomes an
    ``nn.Identity``. Only valid in eval mode (running statistics), so the module is put in eval mode.
    """
    module.eval()
    for child in module.children():
        fuse_conv_bn(child)
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                module[i + 1] = nn.Identity()
        for i in range(len(module) - 2):  # conv -> PixelShuffle(r) -> BN: BN channel c is conv channels c*r^2 ...
            conv, shuffle, bn = module[i], module[i + 1], module[i + 2]
            if isinstance(conv, nn.Conv2d) and isinstance(shuffle, nn.PixelShuffle) and isinstance(bn, nn.BatchNorm2d):
                module[i] = _fuse_conv_shuffle_bn(conv, shuffle.upscale_factor ** 2, bn)
                module[i + 2] = nn.Identity()
    children = dict(module.named_children())
    for name, conv in children.items():
        bn = children.get("bn" + name[4:]) if name.startswith("conv") else None
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, name, fuse_conv_bn_eval(conv, bn))
            setattr(module, "bn" + name[4:], nn.Identity())
    return module


def _fuse_conv_shuffle_bn(conv: nn.Conv2d, group: int, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Fold a BatchNorm that follows ``PixelShuffle`` into the conv before it (each BN channel scales the
    ``group`` consecutive conv channels that the shuffle spreads over its pixels)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    scale, shift = scale.repeat_interleave(group), shift.repeat_interleave(group)
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        fused.weight.mul_(scale.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(scale)
        fused.bias = nn.Parameter(bias * scale + shift)
    return fused


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` with conv-BN folded and convolutions in channels-last layout.

    Outputs equal the original's to float rounding (about 1e-5 relative). The copy's state dict no longer
    matches the checkpoint layout, so keep the original for saving and training.
    """
    fast = fuse_conv_bn(copy.deepcopy(model).eval())
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
