"""FLOP and parameter counting: true MACs, and the counters the papers used for their tables.

* :func:`true_macs` counts every multiply-accumulate, attention matmuls included, with
  ``torch.utils.flop_counter.FlopCounterMode`` (total / 2). Attention is switched to its explicit path
  while counting, because the counter does not see the fused CPU SDPA kernel; ``torch.cdist`` (HoT's cluster
  under the official numerics) is added to the counter at one multiply-accumulate per pair and feature,
  which it does not count by itself.
* :func:`hrnet_summary_gflops` reproduces the HRNet-era ``get_model_summary`` used by the TokenPose and PPT
  repos for their tables: only Conv and Linear modules are counted (so the attention einsums are not), a
  Conv costs ``weight.numel() * output spatial size`` and a Linear ``output.numel() * input.size(1)``
  (for (B, N, C) tokens that is N, not C), and the sum is divided by ``1024 ** 3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from posetokens.layers import PatchEmbed, TokenRecoveryAttention, use_fused_attn
from posetokens.protocols.predict import evaluating
from posetokens.runtime import UserKeyError


def _run_with_hooks(model: nn.Module, inputs: Sequence[Tensor], modules: list[nn.Module], hook) -> None:
    """One eval-mode forward pass with ``hook`` on ``modules`` as a forward hook; restores everything."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with evaluating(model):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (fixed buffers such as the sine PE are not parameters here)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _cdist_flop(x1_shape: Sequence[int], x2_shape: Sequence[int], *args: object, out_shape: object = None,
                **kwargs: object) -> int:
    """FLOPs of ``aten._cdist_forward`` (B, P, M) x (B, R, M): a squared difference summed per pair and feature,
    counted as one multiply-accumulate (2 FLOPs), as a matmul's."""
    *batch, p, m = x1_shape
    r = x2_shape[-2]
    n = 1
    for d in batch:
        n *= int(d)
    return 2 * n * int(p) * int(r) * int(m)


def _linear_pointwise_flop(x_shape: Sequence[int], w_shape: Sequence[int], *args: object, out_shape: object = None,
                           **kwargs: object) -> int:
    """FLOPs of oneDNN's fused linear (an inference copy's ``FusedLinear``): the matmul's, as ``aten.addmm``'s
    (its bias and GELU, like addmm's bias, are not multiply-accumulates)."""
    n = 1
    for d in x_shape[:-1]:
        n *= int(d)
    return 2 * n * int(w_shape[0]) * int(w_shape[1])


def _convolution_pointwise_flop(x_shape: Sequence[int], w_shape: Sequence[int], *args: object,
                                out_shape: Sequence[int] | None = None, **kwargs: object) -> int:
    """FLOPs of oneDNN's fused convolution (an inference copy's ``FusedConv2d``): the convolution's, as
    ``aten.convolution``'s (its bias and ReLU are not multiply-accumulates)."""
    return conv_flop_count(list(x_shape), list(w_shape), list(out_shape or ()))


_MAPPING = {torch.ops.aten._cdist_forward: _cdist_flop}
if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
    _MAPPING[torch.ops.mkldnn._linear_pointwise] = _linear_pointwise_flop
if hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
    _MAPPING[torch.ops.mkldnn._convolution_pointwise] = _convolution_pointwise_flop


@torch.no_grad()
def true_macs(model: nn.Module, inputs: Sequence[Tensor]) -> int:
    """Every multiply-accumulate of one forward pass on ``inputs``, attention matmuls included.

    Parameters are frozen while counting: under ``no_grad`` a view of a trainable parameter (a slice of HoT's
    recovery queries) still requires grad but has no grad_fn, which the counter's module tracker rejects.
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(False)
        with evaluating(model), use_fused_attn(False), FlopCounterMode(display=False, custom_mapping=_MAPPING) as counter:
            model(*inputs)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return counter.get_total_flops() // 2


@torch.no_grad()
def hrnet_summary_gflops(model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """The TokenPose/PPT repos' "GFLOPs" (really a Conv/Linear multiply-add estimate, see module doc)."""
    total = 0

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):  # the repos call it on (B, N, C): size(1) is the token count N
            tokens = output.size(1) if isinstance(module, PatchEmbed) else args[0].size(1)
            total += output.numel() * tokens
        elif "Conv" in type(module).__name__ and getattr(module, "weight", None) is not None:
            total += module.weight.numel() * output[0, 0].numel()

    _run_with_hooks(model, inputs, [m for m in model.modules() if m is not model and not isinstance(m, (nn.Sequential, nn.ModuleList))], hook)
    return total / 1024**3


@torch.no_grad()
def linear_gflops(model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """HoT's convention: 2 x MACs of every ``nn.Linear`` and ``nn.Conv1d`` call (attention matmuls and
    everything else excluded), for one forward pass on ``inputs`` (one clip), in GFLOPs (1e9).

    The official token recovering attention projects its learnable queries once per sequence (clip x
    joint); ours projects them once per call (:class:`~posetokens.layers.TokenRecoveryAttention`), so the
    count adds the official code's B' - 1 further projections of the (F, C) queries.
    """
    total = 0

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += 2 * module.in_features * output.numel()
        elif isinstance(module, nn.Conv1d):
            total += 2 * module.weight[0].numel() * output.numel()
        elif isinstance(module, TokenRecoveryAttention):  # output (B', F, C); the hook above saw (1, F, C)
            q = module.attn.linear_q
            total += 2 * q.in_features * q.out_features * output.shape[1] * (output.shape[0] - 1)

    kinds = (nn.Linear, nn.Conv1d, TokenRecoveryAttention)
    _run_with_hooks(model, inputs, [m for m in model.modules() if isinstance(m, kinds)], hook)
    return total / 1e9


def _conv_linear_macs(module: nn.Module, output: Tensor) -> int:
    """MACs of one ``nn.Conv2d`` (output elements x in_channels / groups x kernel area) or ``nn.Linear``
    (output elements x in_features) call, bias not counted."""
    if isinstance(module, nn.Conv2d):
        return output.numel() * (module.in_channels // module.groups) * module.weight[0, 0].numel()
    return output.numel() * module.in_features


@torch.no_grad()
def thop_style_macs(model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """``thop.profile``'s count (GTPT's table), in G (1e9): MACs of nn.Module calls only.

    Conv: output elements x (in_channels / groups) x kernel area (bias not counted); Linear: output
    elements x in_features; BatchNorm / LayerNorm with affine: 4 x input elements (thop's
    ``count_normalization``: 2 x numel, doubled for affine). Activations, PixelShuffle and the attention
    einsums / matmuls are not modules thop counts, so they are left out.
    """
    total = 0

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        nonlocal total
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            total += _conv_linear_macs(module, output)
        elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
            total += 2 * args[0].numel() * (2 if affine else 1)

    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm)
    _run_with_hooks(model, inputs, [m for m in model.modules() if isinstance(m, kinds)], hook)
    return total / 1e9


@torch.no_grad()
def linear_conv_macs(model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """An mmcv/fvcore-style hook count (PCT's table), in G (1e9): MACs of ``nn.Linear`` and ``nn.Conv2d``
    module calls only (Linear: output elements x in_features; Conv: output elements x in_channels /
    groups x kernel area). Functional calls (Swin V2's q/k/v projection with its q/v-only bias) and every
    matmul (attention, codebook mixing) are not module calls, so they are left out."""
    total = 0

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        nonlocal total
        total += _conv_linear_macs(module, output)

    _run_with_hooks(model, inputs, [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))], hook)
    return total / 1e9


def thop_style_params(model: nn.Module) -> int:
    """``thop.profile``'s parameter count: parameters of leaf modules only, so free tensors held by
    container modules (learned tokens) and buffers (fixed sine tables) are left out."""
    return sum(p.numel() for m in model.modules() if not list(m.children()) for p in m.parameters(recurse=False))


class _MulCounter(TorchDispatchMode):
    """Counts the output elements of every elementwise ``aten.mul`` (torchprofile's ``mul`` rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.overloadpacket in (torch.ops.aten.mul, torch.ops.aten.mul_) and isinstance(out, Tensor):
            self.total += out.numel()
        return out


@torch.no_grad()
def mag_readme_macs(model: nn.Module, inputs: Sequence[Tensor]) -> float:
    """MotionAGFormer's README "MACs" (its ``_test()`` used ``torchprofile.profile_macs``), in G (1e9).

    torchprofile of the official code with ``matmul``/``bmm`` not counted (spec motionagformer_h2ot.md §0):
    ``nn.Linear`` MACs (output elements x in_features), one per output element of every affine LayerNorm and
    BatchNorm, and one per output element of every elementwise multiply (layer scales, fusion weights,
    attention scaling, degree normalisation). Attention runs on its explicit path so its scaling is a multiply.
    Ours normalises the spatial graph once at build time and the temporal one with two multiplies where the
    official code uses one (0.03% of MotionAGFormer-B's count). The token recovering attention's queries are
    counted once per sequence, as the official code projects them (see :func:`linear_gflops`).
    """
    total = 0

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.in_features * output.numel()
        elif isinstance(module, TokenRecoveryAttention):
            q = module.attn.linear_q
            total += q.in_features * q.out_features * output.shape[1] * (output.shape[0] - 1)
        elif getattr(module, "weight", None) is not None:  # affine LayerNorm / BatchNorm
            total += output.numel()

    kinds = (nn.Linear, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, TokenRecoveryAttention)
    muls = _MulCounter()
    with use_fused_attn(False), muls:
        _run_with_hooks(model, inputs, [m for m in model.modules() if isinstance(m, kinds)], hook)
    return (total + muls.total) / 1e9


PARAM_COUNTERS = {
    "all": count_params,
    "thop": thop_style_params,  # GTPT table
}


def paper_params(model: nn.Module, counter: str = "all") -> int:
    """Parameters of ``model`` counted the way a family's paper counted (``counter``)."""
    if counter not in PARAM_COUNTERS:
        raise UserKeyError(f"unknown parameter counter {counter!r}; known: {sorted(PARAM_COUNTERS)}")
    return PARAM_COUNTERS[counter](model)


PAPER_COUNTERS = {
    "hrnet_summary": hrnet_summary_gflops,  # TokenPose / PPT tables
    "linear": linear_gflops,  # HoT table (MixSTE, MotionBERT, MHFormer)
    "thop": thop_style_macs,  # GTPT table (thop MACs, called GFLOPs)
    "linear_conv": linear_conv_macs,  # PCT table (Linear/Conv2d module calls, MACs called GFLOPs)
    "mag_readme": mag_readme_macs,  # MotionAGFormer README (torchprofile MACs without matmul/bmm, per clip)
}


def paper_gflops(model: nn.Module, counter: str, inputs: Sequence[Tensor] | None = None) -> float:
    """GFLOPs of ``model`` counted the way a family's paper counted (``counter``), at its input size."""
    if counter not in PAPER_COUNTERS:
        raise UserKeyError(f"unknown FLOPs counter {counter!r}; known: {sorted(PAPER_COUNTERS)}")
    return PAPER_COUNTERS[counter](model, inputs if inputs is not None else model.dummy_inputs(1))
