"""Input checks and tracing state shared by the models (torch only)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor


def exporting() -> bool:
    """True while torch.export / ONNX export traces the model (``is_exporting`` exists from torch 2.6): code that
    takes an eager-only fast path (an in-place strided copy, cdist) takes its exportable form instead."""
    return getattr(torch.compiler, "is_exporting", lambda: False)() or torch.onnx.is_in_onnx_export()


def tracing() -> bool:
    """True while any tracer runs the model: an export (:func:`exporting`), ``torch.compile`` or
    ``torch.jit.trace``. Their tensors are not real: eager-only kernels and caches stay out of the way."""
    return exporting() or torch.compiler.is_compiling() or torch.jit.is_tracing()


def check_image_batch(img: Tensor, size_hw: tuple[int, int], owner: str, why: str = "RGB") -> None:
    """Raise ``ValueError`` naming ``owner`` and the expected shape unless ``img`` is (B, 3, H, W) at ``size_hw``."""
    h, w = size_hw
    if img.dim() != 4 or img.shape[1] != 3 or tuple(img.shape[2:]) != (h, w):
        raise ValueError(f"{owner} expects images of shape (B, 3, {h}, {w}) ({why}, height {h}, width {w}); "
                         f"got {tuple(img.shape)}")


def require_positive(cfg: object, *names: str) -> None:
    """Raise ``ValueError`` naming ``cfg``'s class and the field unless each named size (an int, a tuple of ints,
    or None for "derived") is at least 1, and a size declared as a tuple (``image_size`` (h, w)) keeps its length:
    a config's ``validate()`` runs this before the checks that divide by or index them."""
    declared = {f.name: f.default for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else {}
    for name in names:
        value = getattr(cfg, name)
        default = declared.get(name)
        if isinstance(default, tuple) and (not isinstance(value, tuple) or len(value) != len(default)):
            raise ValueError(f"{type(cfg).__name__}.{name} must be {len(default)} sizes like {default!r}, got {value!r}")
        items = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not (isinstance(v, int) and v >= 1) for v in items):
            raise ValueError(f"{type(cfg).__name__}.{name} must be >= 1, got {value!r}")
