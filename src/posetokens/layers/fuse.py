"""Inference-time rewrites of a trained model that keep its outputs (torch only)."""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .checks import tracing


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


_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
_ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether a fused layer may call its oneDNN kernel: a float32 CPU input, no autograd graph to record (input,
    weight or bias), no autocast, and no tracer, compiler or exporter watching (they must see the plain op)."""
    return (x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                                  or (bias is not None and bias.requires_grad)))
            and not torch.is_autocast_enabled("cpu") and not tracing())


#: oneDNN's float32 math modes a fused layer may run its GEMM in: "ieee" (float32 throughout) or "bf16" (the GEMM's
#: inputs and weights rounded to bfloat16 inside oneDNN, products accumulated and returned in float32; AMX runs it
#: several times faster, and where oneDNN does not apply it the GEMM stays float32: :func:`bf16_gemm_applies`).
#: PyTorch's name for it is ``fp32_precision`` (PyTorch 2.9 and later).
GEMM_MATH = ("ieee", "bf16")
#: Why bf16-gemm is refused where :func:`bf16_gemm_applies` is False.
BF16_GEMM_NOOP = ("oneDNN does not apply its bfloat16 math mode on this CPU (a probe GEMM came out bitwise float32: "
                  "it would run float32 under the name)")
#: Whether this PyTorch can set oneDNN's math mode for matmuls and convolutions (the ``bf16`` mode needs it).
HAS_GEMM_MATH = _ONEDNN_LINEAR and _ONEDNN_CONV and all(
    hasattr(torch.backends.mkldnn, op) for op in ("matmul", "conv"))
_MATH_LOCK = threading.Lock()
_MATH_HELD: dict[str, list] = {}  # knob name -> [calls inside the mode, the setting before the first of them]


def _in_math(op: str, math: str, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """``fn(*args)`` with oneDNN's float32 math mode for ``op`` (``"matmul"`` or ``"conv"``) set to ``math`` for the
    call, then restored. The setting is process-wide: calls overlapping in several threads share one entry, and the
    setting before the first is restored when the last leaves (a float32 GEMM another thread runs meanwhile runs in
    the mode too)."""
    if math == "ieee":
        return fn(*args)
    knob = getattr(torch.backends.mkldnn, op)
    with _MATH_LOCK:
        held = _MATH_HELD.setdefault(op, [0, None])
        if held[0] == 0:
            held[1] = knob.fp32_precision
            knob.fp32_precision = math
        held[0] += 1
    try:
        return fn(*args)
    finally:
        with _MATH_LOCK:
            held[0] -= 1
            if held[0] == 0:
                knob.fp32_precision = held[1]


class FusedLinear(nn.Linear):
    """An inference ``nn.Linear`` whose bias, and with ``gelu`` the GELU after it, run inside one oneDNN matmul
    on the CPU (``torch.ops.mkldnn._linear_pointwise``, the kernel Inductor uses), instead of PyTorch's
    ``addmm`` (which first copies the bias into the whole output) and a separate GELU pass. Same parameters and
    state-dict keys as the ``nn.Linear`` it replaces; outputs equal to float rounding.

    Where the fused kernel does not apply it runs ``F.linear`` (+ GELU): on other devices, for dtypes other than
    float32, when autograd needs the graph (input, weight or bias), under ``torch.autocast``, and under
    ``torch.jit.trace``, ``torch.compile``, ``torch.export`` and ONNX export (which see a plain Linear).
    """

    gelu: str = ""  # "" (no activation), or the GELU's ``approximate`` ("none" | "tanh") fused after the bias
    math: str = "ieee"  # oneDNN's float32 math mode of the fused kernel (GEMM_MATH; gemm_in_bfloat16 sets "bf16")

    @classmethod
    def from_linear(cls, linear: nn.Linear, gelu: str = "") -> FusedLinear:
        """A :class:`FusedLinear` sharing ``linear``'s parameters (``gelu``: the fused GELU's approximation)."""
        fused = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        fused.weight, fused.bias, fused.gelu = linear.weight, linear.bias, gelu
        return fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``gelu(x @ W^T + b)`` (or without the GELU), one oneDNN call where it applies."""
        bias = self.bias
        if _ONEDNN_LINEAR and _onednn_applies(x, self.weight, bias):
            # oneDNN reads the bias as contiguous: a strided one (a user's sliced parameter) is copied first
            return _in_math("matmul", self.math, torch.ops.mkldnn._linear_pointwise, x,
                            self.weight, None if bias is None else bias.contiguous(), "gelu" if self.gelu else "none",
                            [], self.gelu)
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y, approximate=self.gelu) if self.gelu else y

    def extra_repr(self) -> str:
        return (super().extra_repr() + (f", gelu={self.gelu!r}" if self.gelu else "")
                + (f", math={self.math!r}" if self.math != "ieee" else ""))


class FusedConv2d(nn.Conv2d):
    """An inference ``nn.Conv2d`` whose ReLU runs inside its oneDNN convolution on the CPU
    (``torch.ops.mkldnn._convolution_pointwise``, the kernel Inductor uses) instead of a second pass over the
    output. Same parameters and state-dict keys as the ``nn.Conv2d`` it replaces; outputs equal to float
    rounding. Falls back to ``conv2d`` + ReLU where :class:`FusedLinear` does (and for non-zero padding modes,
    string padding and unbatched input).
    """

    relu: bool = False
    math: str = "ieee"  # oneDNN's float32 math mode of the fused kernel (GEMM_MATH; gemm_in_bfloat16 sets "bf16")

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, relu: bool = True) -> FusedConv2d:
        """A :class:`FusedConv2d` sharing ``conv``'s parameters, with the ReLU after it when ``relu``."""
        fused = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                    conv.dilation, conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device="meta")
        fused.weight, fused.bias, fused.relu = conv.weight, conv.bias, relu
        return fused

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        """``relu(conv2d(x) [+ residual])`` (or without the ReLU), one oneDNN call where it applies: a residual
        block's sum and its ReLU run inside the convolution's output pass (oneDNN's binary post-op). ``weight``
        stands in for the layer's own (a caller that gives it the input channels in another order)."""
        weight = self.weight if weight is None else weight
        if (_ONEDNN_CONV and x.dim() == 4 and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and _onednn_applies(x, weight, self.bias)
                and (residual is None or (residual.dtype == x.dtype and not residual.requires_grad))):
            bias = None if self.bias is None else self.bias.contiguous()  # oneDNN reads it as contiguous
            conv, knob = torch.ops.mkldnn._convolution_pointwise, "conv"
            geometry = (self.padding, self.stride, self.dilation, self.groups)
            if residual is None:
                return _in_math(knob, self.math, conv, x, weight, bias, *geometry,
                                "relu" if self.relu else "none", [], "")
            if residual_post_op_pays():
                return _in_math(knob, self.math, conv, x, residual, weight, bias, *geometry,
                                "add", 1.0, "relu" if self.relu else None, [], "")
            y = _in_math(knob, self.math, conv, x, weight, bias, *geometry, "none", [], "")
            y += residual
            return y.relu_() if self.relu else y
        y = self._conv_forward(x, weight, self.bias)
        if residual is not None:
            y = y + residual
        return F.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        return (super().extra_repr() + (", relu=True" if self.relu else "")
                + (f", math={self.math!r}" if self.math != "ieee" else ""))


def _fastest_of_rounds(fns: tuple[Callable[[], Any], ...], rounds: int = 4) -> dict[Callable[[], Any], float]:
    """The fastest thread CPU time of each of ``fns`` over ``rounds`` interleaved rounds (the first warms them up:
    oneDNN builds its primitives), under inference mode: how the inference copy picks between two kernels."""
    import time

    times = dict.fromkeys(fns, float("inf"))
    with torch.inference_mode():
        for _ in range(rounds):
            for fn in fns:
                t = time.thread_time()
                fn()
                times[fn] = min(times[fn], time.thread_time() - t)
    return times


@functools.cache
def residual_post_op_pays() -> bool:
    """Whether oneDNN's convolution with the residual sum as a binary post-op beats the convolution, an in-place
    sum and a ReLU on this CPU: timed once per process on a 1x1 64->256 convolution of 8 channels-last 32x24 maps
    (a Bottleneck's last), fastest of 3 rounds each after a warm-up round, about 50 ms. It paid on an Intel Xeon
    with AMX (36.5 against 44.0 ms at batch 32) and lost on an AMD EPYC (62.4 against 45.4 ms). Both give the same sums to float
    rounding, so only speed is at stake."""
    # constant values (the timing does not depend on them): the caller's random number stream is left alone
    x = torch.full((8, 64, 32, 24), 0.5).contiguous(memory_format=torch.channels_last)
    residual = torch.full((8, 256, 32, 24), -0.5).contiguous(memory_format=torch.channels_last)
    w = torch.full((256, 64, 1, 1), 0.01).contiguous(memory_format=torch.channels_last)
    b = torch.zeros(256)
    conv = torch.ops.mkldnn._convolution_pointwise

    def fused() -> None:
        conv(x, residual, w, b, [0, 0], [1, 1], [1, 1], 1, "add", 1.0, "relu", [], "")

    def separate() -> None:
        conv(x, w, b, [0, 0], [1, 1], [1, 1], 1, "none", [], "").add_(residual).relu_()

    times = _fastest_of_rounds((fused, separate))
    return times[fused] < times[separate]


@functools.cache
def bf16_gemm_applies() -> bool:
    """Whether oneDNN really runs a float32 Linear and convolution in its bfloat16 math mode on this CPU: both
    layers' inputs are 1 + 2^-10 (which bfloat16 rounds to 1) against weights of 1, so their exact float32 sums
    (256.25, 288.28125) come out whole in the mode. Shapes of a lifter's Linear and a 3x3 convolution, about 5 ms
    once per process. The mode ran on the Intel Xeons with AMX timed here; on an AMD EPYC with AVX512-BF16 (Zen 4,
    oneDNN 3.12 in torch 2.13) it changed nothing, every output bitwise float32's (docs/speed.md). ``False`` where
    the mode cannot be set (:data:`HAS_GEMM_MATH`)."""
    if not HAS_GEMM_MATH:
        return False
    x, w, b = torch.full((2048, 256), 1 + 2**-10), torch.ones(512, 256), torch.zeros(512)
    xc = torch.full((8, 32, 16, 12), 1 + 2**-10).contiguous(memory_format=torch.channels_last)
    wc = torch.ones(64, 32, 3, 3).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = _in_math("matmul", "bf16", torch.ops.mkldnn._linear_pointwise, x, w, b, "none", [], "")
        yc = _in_math("conv", "bf16", torch.ops.mkldnn._convolution_pointwise, xc, wc, None, [0, 0], [1, 1],
                      [1, 1], 1, "none", [], "")
    return bool((y == 256).all()) and bool((yc == 288).all())


@functools.cache
def bf16_gemm_pays() -> bool:
    """Whether oneDNN's bfloat16 math mode runs a float32 Linear clearly faster than float32 on this CPU (in under
    0.8 of its time): timed once per process on a 2048x256 by 256x512 Linear (a lifter's MLP layer in size), fastest
    of 3 rounds each after a warm-up round, about 25 ms. On an Intel Xeon with AMX the mode ran a Linear 3.6x
    faster; a CPU whose oneDNN has no fast path for it would run it no faster, and the default (precision ``auto``)
    then keeps float32. ``False`` where the mode changes nothing (:func:`bf16_gemm_applies`) or cannot be set."""
    if not bf16_gemm_applies():
        return False
    # constant values (the timing does not depend on them): the caller's random number stream is left alone
    x, w, b = torch.full((2048, 256), 0.5), torch.full((512, 256), 0.01), torch.zeros(512)
    linear = torch.ops.mkldnn._linear_pointwise
    ieee, bf16 = (functools.partial(_in_math, "matmul", math, linear, x, w, b, "none", [], "") for math in GEMM_MATH)
    times = _fastest_of_rounds((ieee, bf16))
    return times[bf16] < 0.8 * times[ieee]


class FusableBlock(nn.Module):
    """A block with an inference form that runs more of its work inside fused kernels (HRNet's residual blocks: the
    activations and the residual sum inside the convolutions; Swin V2's window attention: the q/0/v bias inside
    the qkv GEMM). :func:`optimize_for_inference` calls :meth:`fuse_for_inference` on each one, after folding
    BatchNorm and fusing the Linear layers; the block keeps its parameters."""

    def fuse_for_inference(self) -> None:
        """Switch to the fused inference form, in place (eval only)."""
        raise NotImplementedError


def fuse_conv_relu(module: nn.Module) -> nn.Module:
    """Fold each ``nn.ReLU`` that follows an ``nn.Conv2d`` in an ``nn.Sequential`` (``nn.Identity`` items, such
    as a BatchNorm already folded by :func:`fuse_conv_bn`, may sit between them) into a :class:`FusedConv2d`,
    in place; the ReLU becomes ``nn.Identity``. Returns ``module``. Eval-time only: the result keeps the
    parameters but not the modules a training script may look for."""
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        items = list(seq)
        for i, conv in enumerate(items):
            if type(conv) is not nn.Conv2d:
                continue
            j = i + 1
            while j < len(items) and type(items[j]) is nn.Identity:
                j += 1
            if j < len(items) and type(items[j]) is nn.ReLU:
                seq[i] = FusedConv2d.from_conv(conv)
                seq[j] = nn.Identity()
    return module


def fuse_linear(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` of ``module`` by a :class:`FusedLinear`, in place, and fold each
    :class:`~posetokens.layers.attention.Mlp`'s GELU into its ``fc1`` (its ``act`` becomes ``nn.Identity``);
    returns ``module``. :func:`unfuse_linear` undoes it."""
    from .attention import Mlp

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                gelu = ""
                if isinstance(parent, Mlp) and name == "fc1" and type(parent.act) is nn.GELU:
                    gelu = parent.act.approximate
                    parent.act = nn.Identity()
                setattr(parent, name, FusedLinear.from_linear(child, gelu))
    return module


def unfuse_linear(module: nn.Module) -> nn.Module:
    """Undo :func:`fuse_linear` in place (plain ``nn.Linear`` layers and ``nn.GELU`` activations, the same
    parameters): what code that swaps layers by type, such as dynamic quantisation, expects. A GELU fused outside
    an :class:`~posetokens.layers.attention.Mlp`'s ``fc1`` has no ``act`` to return to: ``ValueError``."""
    from .attention import Mlp

    for parent_name, parent in list(module.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, FusedLinear):
                if child.gelu and not (isinstance(parent, Mlp) and name == "fc1"):
                    where = f"{parent_name}.{name}" if parent_name else name
                    raise ValueError(f"unfuse_linear: {where} fuses a GELU outside an Mlp's fc1; there is no "
                                     "activation module to restore it to")
                linear = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
                linear.weight, linear.bias = child.weight, child.bias
                setattr(parent, name, linear)
                if child.gelu:
                    parent.act = nn.GELU(approximate=child.gelu)
    return module


def gemm_in_bfloat16(module: nn.Module) -> nn.Module:
    """Run every Linear and 2-D convolution layer of ``module`` in oneDNN's bfloat16 math mode, in place: each
    layer's input and weight are rounded to bfloat16 inside the kernel, and the products are accumulated and
    returned in float32 (PyTorch's ``fp32_precision="bf16"``, like TF32 on a GPU). Everything else (attention
    scores, softmax, norms, residual sums, pruning scores) stays float32. Plain ``nn.Linear`` and ``nn.Conv2d``
    layers become :class:`FusedLinear` and :class:`FusedConv2d` first (same parameters); the mode is set on each
    fused layer and applies only inside its own kernel call, where the fused kernel runs (a float32 CPU input,
    no autograd; elsewhere the layer is exact float32). Each :class:`FusableBlock` not yet in its inference form
    is switched to it first (eval only), so a GEMM the block runs functionally (Swin V2's qkv) is a layer too.
    ``RuntimeError`` without the math mode (:data:`HAS_GEMM_MATH`: PyTorch 2.9 or later with oneDNN), or where
    oneDNN does not apply it on this CPU (:func:`bf16_gemm_applies`: the layers would run float32 unchanged).
    Returns ``module``."""
    if not HAS_GEMM_MATH:
        raise RuntimeError("bf16-gemm needs oneDNN's float32 math mode (PyTorch 2.9 or later with oneDNN); this "
                           f"PyTorch {torch.__version__} has none")
    if not bf16_gemm_applies():
        raise RuntimeError(BF16_GEMM_NOOP)
    for block in [m for m in module.modules() if isinstance(m, FusableBlock) and not getattr(m, "fused", False)]:
        block.fuse_for_inference()
    fuse_linear(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d:
                setattr(parent, name, FusedConv2d.from_conv(child, relu=False))
    for layer in module.modules():
        if isinstance(layer, (FusedLinear, FusedConv2d)):
            layer.math = "bf16"
    return module


def optimize_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` with conv-BN folded, a ReLU after a conv run inside it
    (:class:`FusedConv2d`), convolutions in channels-last layout, every ``nn.Linear`` a :class:`FusedLinear`
    (bias and an MLP's GELU inside one oneDNN matmul on the CPU), every :class:`FusableBlock` in its fused form
    (HRNet's residual blocks: ReLUs and the residual sum inside the convolutions; Swin V2's attention: the q/0/v
    bias inside its qkv GEMM), and each BatchNorm the model declares in
    ``norms_to_fold`` (pairs of a BatchNorm2d and the :class:`~posetokens.layers.PatchEmbed` that alone reads its
    output: GTPT's ``patch_norm``) folded into that embedding.

    Outputs equal the original's to float rounding (about 1e-5 relative). The copy's state dict no longer
    matches the checkpoint layout, so keep the original for saving and training.
    """
    fast = fuse_linear(fuse_conv_relu(fuse_conv_bn(copy.deepcopy(model).eval())))
    for block in [m for m in fast.modules() if isinstance(m, FusableBlock)]:  # HRNet's blocks, Swin V2's attention
        block.fuse_for_inference()
    for norm, embed in getattr(fast, "norms_to_fold", ()):  # (a BatchNorm2d, the PatchEmbed it feeds alone)
        getattr(fast, embed).fold_input_norm(getattr(fast, norm))
        setattr(fast, norm, nn.Identity())
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast
