"""Number format and runtime of inference: the one home of the choice (``infer``, ``lift``, ``export`` and
:class:`~posetokens.inference.api.PoseEstimator` all take it from here).

A choice is a precision and a runtime:

==================  =====================================================================================
precision           what runs
==================  =====================================================================================
``auto``            the default: what the model class declares (``auto_precision``): ``bf16-gemm`` for PCT and
                    the lifters on a CPU with bfloat16 kernels where the mode is faster (timed once per
                    process), run by PyTorch (``torch`` or ``auto`` runtime); ``fp32`` for everything else
                    (TokenPose/PPT, GTPT, multi-view PPT, other devices, CPUs without the kernels, ``compile``
                    and ``onnxruntime``), :func:`resolve_precision`
``fp32``            float32 weights and activations (exact to float rounding)
``bf16``            bfloat16 weights and activations (``model.to(torch.bfloat16)``); needs a CPU with
                    AVX512-BF16 or AMX (the oneDNN kernels), or a CUDA GPU with bfloat16 support
``bf16-backbone``   the image backbone (the CNN before the tokens, which the model declares as
                    ``image_backbone``: TokenPose/PPT's HRNet, GTPT's stem) in bfloat16, the transformer and
                    heads float32 (:func:`backbone_in_bfloat16`); same hardware as ``bf16``. A model that
                    declares none (PCT, the lifters) runs as ``fp32`` under the same runtime, said once
``bf16-gemm``       float32 model whose Linear and convolution layers run in oneDNN's bfloat16 math mode
                    (:func:`posetokens.layers.gemm_in_bfloat16`): each GEMM's inputs and weights are rounded to
                    bfloat16 inside the kernel, the products accumulated and returned in float32 (PyTorch's
                    ``fp32_precision="bf16"``, the CPU's TF32); attention, softmax, norms, residual sums,
                    pruning scores and the HoT clustering stay float32. A CPU where oneDNN applies the mode
                    (AMX; refused where it would run float32 unchanged, an AMD EPYC with AVX512-BF16 alone:
                    :func:`~posetokens.layers.fuse.bf16_gemm_applies`), PyTorch eager only
``int8-dynamic``    ``torch.ao`` dynamic quantisation of the ``nn.Linear`` layers (int8 weights, activations
                    quantised per batch); convolutions stay float32. CPU only
==================  =====================================================================================

==================  =====================================================================================
runtime             what runs
==================  =====================================================================================
``auto``            the default: the fastest runtime for the model that keeps its outputs (:func:`resolve`):
                    for float32 image models on the CPU, ``onnxruntime`` against ``torch`` raced on this
                    CPU at the first call of each batch bucket, 1, up to 8, more (the winner runs that
                    bucket, the verdict is cached beside the graph per CPU, said once on stderr); ``torch`` on a GPU, for ``bf16`` and ``int8-dynamic``, for lifters,
                    for random weights, and where onnxruntime is not installed or the export fails (said once
                    on stderr). A call the ONNX graph cannot serve (``forward_tokens``, another input
                    size) runs eager. The graph is exported at the first call that needs it,
                    once per code and weights, and kept in the cache folder (:func:`cache_dir`)
``torch``           PyTorch eager
``compile``         ``torch.compile`` of the forward (Inductor; needs a C++ compiler on CPU). Compiled at the
                    first call of each method; a compile that fails falls back to eager, said once on stderr
                    and counted in :attr:`PreparedModel.fallbacks`
``onnxruntime``     the model exported by :func:`posetokens.export.export_onnx` (float32, or with
                    ``int8-dynamic`` onnxruntime's dynamic quantisation of its MatMuls) run by an onnxruntime
                    CPU session; the graph is cached as under ``auto``
==================  =====================================================================================

``POSETOKENS_RUNTIME`` and ``POSETOKENS_PRECISION`` (environment variables) replace ``auto`` as the runtime and
the precision used when none is named (the test suite sets ``torch`` and ``fp32``); ``POSETOKENS_CACHE`` moves the cache folder.

Whatever runs inside, the prepared model takes float32 inputs and returns float32 outputs, and keeps the
attributes and methods the library calls (``output_kind``, ``cfg``, ``forward_tokens``, ``forward_frames``,
``predict``, ...), so the flip test, decoding and scoring around it are unchanged.

Unsupported combinations are refused with one line (:func:`check_choice`): ``bf16`` (and ``bf16-backbone``,
``bf16-gemm``) on a CPU without bfloat16 kernels, ``bf16-gemm`` on a PyTorch before 2.9 (no oneDNN math mode),
``int8-dynamic``, ``bf16-gemm`` or ``onnxruntime`` on a GPU,
the bfloat16 precisions through onnxruntime, ``int8-dynamic`` and ``bf16-gemm`` through torch.compile; and, once
the model is built but before it is exported or run (:func:`check_model_choice`), ``--show-tokens`` and the flip
test of a pruned lifter through a named onnxruntime. ``benchmarks/precision.py`` measures every choice's
speed-up and accuracy change against float32 on trained models; :data:`DEFAULT` says what was chosen from it and
why (docs/speed.md).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetokens.layers.fuse import BF16_GEMM_NOOP, HAS_GEMM_MATH, bf16_gemm_applies, bf16_gemm_pays, gemm_in_bfloat16
from posetokens.runtime import cpu_fields, option, warn

__all__ = [
    "DEFAULT",
    "PRECISIONS",
    "RUNTIMES",
    "Choice",
    "PreparedModel",
    "BF16_PRECISIONS",
    "backbone_in_bfloat16",
    "bf16_supported",
    "cache_dir",
    "check_choice",
    "image_backbone",
    "parse_choice",
    "prepare",
    "resolve",
    "resolve_precision",
    "to_float32",
]

PRECISIONS = ("auto", "fp32", "bf16", "bf16-backbone", "bf16-gemm", "int8-dynamic")
# the precisions that need bfloat16 kernels and that onnxruntime lacks
BF16_PRECISIONS = ("bf16", "bf16-backbone", "bf16-gemm")
RUNTIMES = ("auto", "torch", "compile", "onnxruntime")
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "int8": "int8-dynamic", "ort": "onnxruntime",
            "eager": "torch", "torch.compile": "compile"}


@dataclasses.dataclass(frozen=True)
class Choice:
    """A precision (:data:`PRECISIONS`) and a runtime (:data:`RUNTIMES`)."""

    precision: str = "fp32"
    runtime: str = "torch"

    def __str__(self) -> str:
        return f"{self.precision}/{self.runtime}"

    @property
    def exact(self) -> bool:
        """Whether outputs equal float32 eager's to float rounding (fp32 through any runtime; ``auto`` is not
        known to be until :func:`resolve_precision` has resolved it for a model)."""
        return self.precision == "fp32"


#: The default of PoseEstimator, ``infer`` and ``lift`` (docs/speed.md "The default", benchmarks/precision.py).
#: Lifters, which run in PyTorch: ``bf16-gemm`` on a CPU with bfloat16 kernels where it pays, the fastest choice
#: within 0.1 mm of float32 (+0.02 to +0.07 mm on three trained HoT-MixSTE, -0.02 and -0.03 mm on a trained
#: MotionAGFormer and HoT-MotionAGFormer, 2026-12-04), else float32. PCT the same (+0.09 and +0.10 AP on two
#: trained PCTs, 2026-12-05). TokenPose/PPT, GTPT, multi-view PPT:
#: float32 through ``auto`` (onnxruntime or PyTorch, raced per batch bucket): exact, one precision at every batch
#: size, and the faster at batch 1 for PPT-S and GTPT-T (``bf16-gemm`` is faster at larger batches). Each model
#: class declares which (``auto_precision``, :func:`resolve_precision`).
DEFAULT = Choice("auto", "auto")


def _default_runtime() -> str:
    """``auto``, or the runtime named by ``POSETOKENS_RUNTIME``."""
    return os.environ.get("POSETOKENS_RUNTIME", "").strip() or DEFAULT.runtime


def _default_precision() -> str:
    """``auto``, or the precision named by ``POSETOKENS_PRECISION``."""
    return os.environ.get("POSETOKENS_PRECISION", "").strip() or DEFAULT.precision


def parse_choice(precision: str | None = None, runtime: str | None = None) -> Choice:
    """A :class:`Choice` from names (None: :data:`DEFAULT`'s); ``ValueError`` with one line for a name that is
    neither a precision nor a runtime. Aliases: float32, bfloat16, int8, ort, eager, torch.compile."""
    named_p = _default_precision() if precision is None else precision
    p = _ALIASES.get(str(named_p).lower(), str(named_p).lower())
    named = _default_runtime() if runtime is None else runtime
    r = _ALIASES.get(str(named).lower(), str(named).lower())
    if p not in PRECISIONS:
        where = option("precision", named_p) if precision is not None else f"POSETOKENS_PRECISION {named_p!r}"
        raise ValueError(f"{where}: expected one of {', '.join(PRECISIONS)}")
    if r not in RUNTIMES:
        where = option("runtime", named) if runtime is not None else f"POSETOKENS_RUNTIME {named!r}"
        raise ValueError(f"{where}: expected one of {', '.join(RUNTIMES)}")
    return Choice(p, r)


@functools.cache
def _cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 kernels (AVX512-BF16 or AMX tiles, as oneDNN uses them)."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and fn():
                return True
        except RuntimeError:  # a build without the probe's backend
            continue
    flags = cpu_fields().get("flags", "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_supported(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """(whether bfloat16 inference is fast and supported on ``device``, why not when it is not)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available (this PyTorch build or machine has no GPU)"
        ok = bool(torch.cuda.is_bf16_supported())
        return ok, "" if ok else "this GPU has no bfloat16 support"
    if dev.type == "cpu":
        why = "this CPU has neither AVX512-BF16 nor AMX (bfloat16 would be emulated, slower than float32)"
        if not _cpu_bf16():
            return False, why
        name = next((v for v in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA") if os.environ.get(v)), None)
        cap = os.environ.get(name, "").upper() if name else ""
        if cap and cap not in ("ALL", "DEFAULT") and not any(t in cap for t in ("BF16", "AMX", "FP16", "AVX10")):
            return False, (f"{name}={os.environ[name]} keeps oneDNN below this CPU's bfloat16 instructions (bfloat16 "
                           "would be emulated, slower than float32)")
        return True, ""
    return False, f"bfloat16 inference is not offered on {dev.type}"


def check_choice(choice: Choice, device: str | torch.device = "cpu") -> None:
    """``ValueError`` with one line when ``choice`` cannot run on ``device`` (see the module doc)."""
    dev = torch.device(device)
    where = f"{option('precision', choice.precision)} {option('runtime', choice.runtime)} on {dev}"
    fp32, torch_ = option("precision", "fp32"), option("runtime", "torch")
    if choice.runtime == "auto":  # resolve() falls back to torch wherever onnxruntime cannot run: torch's rules
        choice = Choice(choice.precision, "torch")
    if choice.precision == "auto":  # resolve_precision() picks bf16-gemm only where it runs, else fp32: fp32's rules
        choice = Choice("fp32", choice.runtime)
    if choice.precision == "bf16-gemm" and dev.type != "cpu":
        raise ValueError(f"{where}: bf16-gemm is oneDNN's CPU math mode; on a GPU use {option('precision', 'bf16')}")
    if choice.precision == "bf16-gemm" and not HAS_GEMM_MATH:
        raise ValueError(f"{where}: bf16-gemm needs oneDNN's float32 math mode (PyTorch 2.9 or later with oneDNN; "
                         f"this is {torch.__version__}); use {fp32}")
    if choice.precision == "bf16-gemm" and choice.runtime == "compile":
        raise ValueError(f"{where}: torch.compile traces the plain layers, which ignore the mode; use {torch_}")
    if choice.precision in BF16_PRECISIONS:
        ok, why = bf16_supported(dev)
        if not ok:
            raise ValueError(f"{where}: {why}; use {fp32}")
        if choice.runtime == "onnxruntime":
            raise ValueError(f"{where}: onnxruntime's CPU kernels have no bfloat16; use {torch_}"
                             + (" or compile" if choice.precision != "bf16-gemm" else ""))
        if choice.precision == "bf16-gemm" and dev.type == "cpu" and not bf16_gemm_applies():
            raise ValueError(f"{where}: {BF16_GEMM_NOOP}; use {fp32}, or {option('precision', 'bf16')} for "
                             "bfloat16 weights and activations")
    if choice.precision == "int8-dynamic" and dev.type != "cpu":
        raise ValueError(f"{where}: dynamic int8 quantisation runs on the CPU only; use {fp32} or bf16")
    if choice.precision == "int8-dynamic" and choice.runtime == "compile":
        raise ValueError(f"{where}: torch.compile does not take dynamically quantised layers; use {torch_}")
    if choice.runtime == "onnxruntime" and dev.type != "cpu":
        raise ValueError(f"{where}: the onnxruntime runtime runs a CPU session; use {torch_} or compile")


def _no_tokens() -> str:
    return (f"the ONNX graph returns predictions only, not the kept tokens ({option('show_tokens')} needs "
            f"{option('runtime', 'torch')} or compile)")


def _no_given_frames() -> str:
    return (f"{option('runtime', 'onnxruntime')}: the flip test's mirrored pass of a pruned lifter reuses the frames "
            f"the first pass kept, which the ONNX graph cannot take; drop {option('flip_test')} or use "
            f"{option('runtime', 'torch')}")


def check_float32(model: nn.Module, who: str, precision: bool = False) -> None:
    """Refuse in one line a model whose floating-point parameters are not float32 (``model.double()``,
    ``model.half()``): the inference paths feed float32 and choose a reduced precision themselves (``precision``:
    ``who`` takes that argument, named in the message); PyTorch's own error was "Input type (float) and bias type
    (double) should be the same"."""
    other = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()}
                   - {"float32"})
    if other:
        name = getattr(model, "zoo_name", type(model).__name__)
        hint = f"; {option('precision')} chooses a reduced precision" if precision else ""
        raise ValueError(f"{who}: {name}'s parameters are {', '.join(other)}; expected float32 (call "
                         f"model.float(){hint})")


def check_model_choice(model: nn.Module | None, choice: Choice, *, show_tokens: bool = False,
                       flip_test: bool = False) -> None:
    """The refusals of :func:`check_choice` that depend on what is asked of the model, before it is exported or
    run (a named ``--runtime onnxruntime``): ``show_tokens`` (needs no model: checked before one is built), and
    the flip test of a pruned lifter (``model`` built)."""
    if choice.runtime != "onnxruntime":
        return
    if show_tokens:
        raise ValueError(f"{choice}: {_no_tokens()}")
    if flip_test and model is not None and getattr(model, "task", None) == "lifting" and model.prunes:
        raise ValueError(_no_given_frames())


# ------------------------------------------------------------------------------------------------ outputs
def to_float32(obj: Any) -> Any:
    """``obj`` with every floating tensor cast to float32 (tensors, tuples, lists, named tuples, dicts)."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() and obj.dtype != torch.float32 else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_float32(v) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_float32(v) for v in obj)
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    return obj


def _cast_inputs(args: tuple, kwargs: dict, dtype: torch.dtype | None) -> tuple[tuple, dict]:
    if dtype is None:
        return args, kwargs
    def cast(v: Any) -> Any:
        return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


# ------------------------------------------------------------------------------------------------- models
_METHODS = ("forward_tokens", "forward_frames", "predict")


class PreparedModel(nn.Module):
    """A model run under a :class:`Choice`: float32 in, float32 out, its methods and attributes passed through.

    ``model`` is the module that runs (already cast or quantised); ``dtype`` the floating type its inputs are
    cast to (None: as given); ``compiled`` whether methods go through ``torch.compile``; ``session`` an
    onnxruntime session that replaces the network's deployment forward. :attr:`fallbacks` counts calls that a
    failed compile sent to eager. A bfloat16 model whose own code casts some tensors to float32 (PCT's Swin
    attention) fails its first call with a dtype mismatch; that call and every later one then run under
    ``torch.autocast`` (:attr:`mixed`), which joins the two."""

    def __init__(self, model: nn.Module, choice: Choice, dtype: torch.dtype | None = None, compiled: bool = False,
                 session: Any = None, eager_otherwise: bool = False,
                 session_factory: Callable[[], Any] | None = None, race: bool = False) -> None:
        super().__init__()
        self.model = model
        self.choice = choice
        self.dtype = dtype
        self.compiled = compiled
        self.session = session
        self.eager_otherwise = eager_otherwise  # ``auto``: a call the graph cannot serve runs ``model`` eager
        self._factory = session_factory  # ``auto``: the session is made at the first call that uses it
        self.race = race  # ``auto``: onnxruntime runs a call only where it beat eager on this CPU (:meth:`_race`)
        self.verdicts: dict[int, str] = {}  # ``auto``: the race's winner per batch bucket (:func:`race_bucket`)
        self.fallbacks = 0
        self.mixed = False  # bf16 under autocast: a model whose code casts parts to float32 (see _run)
        self._compiled: dict[str, Callable[..., Any]] = {}
        self._failed: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:  # the wrapped model's config, flags and plain attributes
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in _METHODS or name.startswith("__"):
                raise
            return getattr(self._modules["model"], name)

    def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        args, kwargs = _cast_inputs(args, kwargs, self.dtype)
        fn = getattr(self.model, method) if method != "forward" else self.model
        if self.compiled and method not in self._failed:
            compiled = self._compiled.get(method)
            if compiled is None:
                compiled = self._compiled[method] = torch.compile(fn)
            try:
                return to_float32(compiled(*args, **kwargs))
            except Exception as e:  # noqa: BLE001 (any compiler failure: eager instead, said once)
                self._failed[method] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                warn(f"torch.compile of {type(self.model).__name__}.{method} failed ({self._failed[method][:200]}); "
                     "running it eager")
        if self.compiled:
            self.fallbacks += 1
        with self._mixed_context():
            try:
                return to_float32(fn(*args, **kwargs))
            except RuntimeError as e:
                if self.dtype is None or self.mixed or not _dtype_mismatch(e):
                    raise
        # the model runs some parts in float32 on purpose (PCT's Swin attention): autocast joins the two from now on,
        # once a call under it has run
        self.mixed = True
        try:
            with self._mixed_context():
                return to_float32(fn(*args, **kwargs))
        except Exception:
            self.mixed = False
            raise

    def _mixed_context(self) -> Any:
        if not self.mixed:
            return contextlib.nullcontext()
        device = next((p.device.type for p in self.model.parameters()), "cpu")
        return torch.autocast(device, dtype=self.dtype)

    def _ort(self) -> Any:
        """The onnxruntime session (made now, under ``auto``, at the first call that needs it), or None."""
        if self.session is None and self._factory is not None:
            factory, self._factory = self._factory, None
            self.session = factory()  # None when the export failed (said there): eager from now on
        return self.session

    def _session_or_eager(self, method: str, *args: Any, **kwargs: Any) -> Any:
        session = self._ort()
        if session is not None:
            try:
                if self.race:
                    return self._race(session, method, args, kwargs)
                return getattr(session, method)(*args, **kwargs)
            except OrtUnsupported as e:
                if not self.eager_otherwise:
                    raise
                _say_once(f"posetokens: runtime auto: {type(self.model).__name__}.{method} {e.call} runs in "
                          "PyTorch eager (the ONNX graph cannot)")
        return self._run(method, *args, **kwargs)

    def _race(self, session: Any, method: str, args: tuple, kwargs: dict) -> Any:
        """``auto``: a call the graph serves runs in the runtime that won the race for its batch bucket
        (:func:`race_bucket`: one input, up to 8, more). The first call of a bucket races onnxruntime against
        PyTorch eager on this CPU, on the bucket's size of its inputs (repeated when it has fewer; a warm-up and
        :data:`RACE_ROUNDS` interleaved rounds each, the fastest round of each); the verdict is kept beside the
        graph, one file per host (:func:`host_key`) and bucket, so each graph races once per CPU and bucket.
        :attr:`choice` names the runtime of the latest call. An empty batch runs eager and races nothing. Returns
        the call's output."""
        n = _batch_size(args)
        if n == 0:  # nothing to time: no verdict, and eager returns the empty outputs
            return self._run(method, *args, **kwargs)
        bucket = race_bucket(args)
        verdict, out = self.verdicts.get(bucket), None
        if verdict is None:
            host = host_key(session.threads)
            path = session.path.parent / f"race-{hashlib.sha256(host.encode()).hexdigest()[:12]}-b{bucket}.json"
            verdict = _read_verdict(path)
            if verdict is None:
                out = getattr(session, method)(*args, **kwargs)  # a call the graph cannot serve raises before timing
                # the bucket's size of inputs, repeated when the call has fewer: a first call of 9 must not
                # decide for batches of 32 on 9
                take = torch.arange(bucket) % n
                small = tuple(a[take] if isinstance(a, torch.Tensor) and a.dim() else a for a in args)
                with torch.no_grad():
                    t_ort, t_eager = _race_times(lambda: getattr(session, method)(*small, **kwargs),
                                                 lambda: self._run(method, *small, **kwargs))
                verdict = "onnxruntime" if t_ort < t_eager else "torch"
                record = {"verdict": verdict, "onnxruntime_s": t_ort, "torch_s": t_eager, "host": host,
                          "inputs": bucket, "measured": time.strftime("%Y-%m-%d %H:%M:%S %z")}
                kept = session.cached and _write_verdict(path, record)
                name = getattr(self.model, "zoo_name", type(self.model).__name__)
                _say_once(f"posetokens: runtime auto: {name} on this CPU, {_bucket_words(bucket)}: onnxruntime {t_ort * 1e3:.0f} ms, "
                          f"PyTorch eager {t_eager * 1e3:.0f} ms a call, so "
                          f"{'onnxruntime' if verdict == 'onnxruntime' else 'PyTorch eager'} runs them "
                          f"({f'measured once, kept in {path}' if kept else 'measured for this run'})")
            self.verdicts[bucket] = verdict
        self.choice = Choice(self.choice.precision, verdict)
        if out is not None:
            return out
        if verdict == "onnxruntime":
            return getattr(session, method)(*args, **kwargs)
        return self._run(method, *args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The model's forward under the choice (float32 outputs)."""
        return self._session_or_eager("forward", *args, **kwargs)

    def forward_tokens(self, *args: Any, **kwargs: Any) -> Any:
        """The model's ``forward_tokens`` (prediction and pruning record) under the choice."""
        if not hasattr(self.model, "forward_tokens"):
            raise AttributeError("forward_tokens")
        if self.choice.runtime == "onnxruntime":
            if not self.eager_otherwise:
                raise ValueError(f"{self.choice}: {_no_tokens()}")
            _say_once(f"posetokens: runtime auto: {type(self.model).__name__}.forward_tokens (the kept tokens, "
                      "--show-tokens) runs in PyTorch eager (the ONNX graph returns predictions only)")
        return self._run("forward_tokens", *args, **kwargs)

    def forward_frames(self, *args: Any, **kwargs: Any) -> Any:
        """A lifter's ``forward_frames`` (3D and kept frame indices) under the choice."""
        return self._session_or_eager("forward_frames", *args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """A coordinate model's ``predict`` (PCT) under the choice."""
        return self._session_or_eager("predict", *args, **kwargs)


def _inputs_to_bfloat16(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a bfloat16 backbone: its floating inputs cast to bfloat16."""
    return _cast_inputs(args, {}, torch.bfloat16)[0]


def _output_to_float32(module: nn.Module, args: tuple, out: Any) -> Any:
    """Forward hook of a bfloat16 backbone: its outputs cast back to float32."""
    return to_float32(out)


def image_backbone(model: nn.Module) -> str | None:
    """The attribute name of the image backbone ``model`` declares for ``bf16-backbone`` (``image_backbone``), or
    None: a lifter, PCT, or a model of the user's that declares none."""
    if getattr(model, "task", None) == "lifting":
        return None
    return getattr(model, "image_backbone", None)


def backbone_in_bfloat16(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose declared image backbone (:func:`image_backbone`) runs in bfloat16, the rest
    float32: the backbone's weights are cast once, and two hooks on it cast its inputs to bfloat16 and its
    outputs back to float32 (its keys and attributes stay as they were). ``ValueError`` for a model that
    declares none (:func:`prepare` runs those float32)."""
    attr = image_backbone(model)
    if attr is None:
        raise ValueError(f"{type(model).__name__} declares no image backbone to run in bfloat16")
    net = copy.deepcopy(model)
    backbone = getattr(net, attr).to(torch.bfloat16)
    backbone.register_forward_pre_hook(_inputs_to_bfloat16)
    backbone.register_forward_hook(_output_to_float32)
    return net


def _dtype_mismatch(e: RuntimeError) -> bool:
    """Whether ``e`` is PyTorch's refusal to mix float32 and bfloat16 operands (matmul: "expected scalar type",
    "same dtype"; a convolution: "Input type (torch.FloatTensor) and weight type (CPUBFloat16Type)", or "bias type
    (c10::BFloat16)")."""
    text = str(e)
    if "scalar type" in text or "same dtype" in text:
        return True
    # a float32 operand must be named (FloatTensor, float), not only bfloat16 ones on two devices
    named = "dtype" in text or "type (" in text
    return "BFloat16" in text and named and re.search(r"\b(Float|float)", text) is not None


def _reads_weight(parent: nn.Module, name: str) -> bool:
    """Whether ``parent``'s code reads ``self.<name>.weight`` directly (a quantised layer has no such tensor)."""
    try:
        src = inspect.getsource(type(parent))
    except (OSError, TypeError):
        return True
    return f"self.{name}.weight" in src


def quantize_linear_dynamic(model: nn.Module, min_features: int = 16) -> nn.Module:
    """A copy of ``model`` with every plain ``nn.Linear`` (at least ``min_features`` inputs, and not read as a
    weight tensor by its parent's code) replaced by a dynamically quantised int8 linear (``torch.ao``)."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    from posetokens.layers.fuse import unfuse_linear

    model = unfuse_linear(copy.deepcopy(model))  # an inference copy's fused layers are Linear layers again
    names = {}
    for parent_name, parent in model.named_modules():
        for name, child in parent.named_children():
            if type(child) is nn.Linear and child.in_features >= min_features and not _reads_weight(parent, name):
                names[f"{parent_name}.{name}" if parent_name else name] = default_dynamic_qconfig
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer that int8-dynamic can quantise")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        return quantize_dynamic(model, names, dtype=torch.qint8)


_KEPT_IN_GRAPH = object()  # a pruned lifter's kept frames, chosen inside the graph and not returned
_SAID: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _SAID:
        _SAID.add(line)
        print(line, file=sys.stderr, flush=True)


class OrtUnsupported(ValueError):
    """A call the ONNX graph cannot serve (``call`` names it); ``auto`` runs it eager instead."""

    def __init__(self, message: str, call: str) -> None:
        super().__init__(message)
        self.call = call


RACE_BUCKETS = (1, 8, 32)  # auto's batch buckets: calls of up to 1, 8 and more inputs; a bucket's race times this
                           # many inputs (its first call's, repeated when it has fewer)
RACE_ROUNDS = 3  # interleaved timed rounds per runtime (after one warm-up each); the fastest round counts


def race_bucket(args: tuple) -> int:
    """``auto``'s batch bucket of a call (:data:`RACE_BUCKETS`): 1 for one input, 8 for up to 8, else 32.
    Which runtime wins moves with the batch: on one CPU onnxruntime won at batch 1 and 8 (its lower overhead
    per op) and PyTorch at batch 32."""
    n = _batch_size(args)
    return next((b for b in RACE_BUCKETS[:-1] if n <= b), RACE_BUCKETS[-1])


def _batch_size(args: tuple) -> int:
    """The batch of a call: the first dimension of its first tensor argument with one (1 when there is none)."""
    return next((int(a.shape[0]) for a in args if isinstance(a, torch.Tensor) and a.dim()), 1)


def _bucket_words(bucket: int) -> str:
    """A bucket of :data:`RACE_BUCKETS` in words, with the number of inputs its race times (the bucket's size)."""
    i = RACE_BUCKETS.index(bucket)
    if i == 0:
        return "one input" if bucket == 1 else f"batches of up to {bucket}"
    low = RACE_BUCKETS[i - 1] + 1
    words = f"batches of {low} to {bucket}" if i < len(RACE_BUCKETS) - 1 else f"batches of more than {low - 1}"
    return f"{words} (timed on {bucket})"


@functools.cache
def _cpu_identity() -> str:
    """This CPU as /proc/cpuinfo names it (x86: model name, family, model, stepping, flags; Arm: implementer,
    architecture, part, features), else ``platform``'s."""
    fields = cpu_fields()
    parts = [fields.get(k, "") for k in ("model name", "cpu family", "model", "stepping", "flags",  # x86
                                         "CPU implementer", "CPU architecture", "CPU part", "Features")]  # Arm
    return "|".join(parts) if any(parts) else f"{platform.processor()}|{platform.machine()}"


def host_key(ort_threads: int) -> str:
    """What ``auto``'s race verdict holds for: this CPU (:func:`_cpu_identity`), torch's intra-op threads and
    onnxruntime's."""
    return f"{_cpu_identity()}|torch threads {torch.get_num_threads()}|onnxruntime threads {ort_threads}"


def _race_times(ort: Callable[[], Any], eager: Callable[[], Any]) -> tuple[float, float]:
    """Seconds of the fastest of :data:`RACE_ROUNDS` interleaved calls of each (after one warm-up each)."""
    ort()
    eager()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RACE_ROUNDS):
        for fn, t in ((ort, times[0]), (eager, times[1])):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def _read_verdict(path: Path) -> str | None:
    """The runtime a kept race verdict names, or None (no file, or one that cannot be read: raced again)."""
    try:
        verdict = json.loads(path.read_text()).get("verdict")
    except (OSError, ValueError, AttributeError):
        return None
    return verdict if verdict in ("onnxruntime", "torch") else None


def _write_verdict(path: Path, record: dict) -> bool:
    """Write a race verdict atomically; False when the folder cannot be written (the race then holds for this run)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, path)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False


CACHE_GRAPHS = 16  # graphs kept in the cache; the least recently used beyond this are removed after an export


def cache_dir() -> Path:
    """Where exported ONNX graphs are kept: ``$POSETOKENS_CACHE``, else ``$XDG_CACHE_HOME/posetokens``, else
    ``~/.cache/posetokens`` (each graph in ``onnx/<key>/``, the key a hash of the code, model and weights; the
    :data:`CACHE_GRAPHS` most recently used are kept)."""
    if os.environ.get("POSETOKENS_CACHE"):
        return Path(os.environ["POSETOKENS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "posetokens"


@functools.cache
def _code_digest() -> str:
    """A hash of what shapes an exported graph: the model, layer and export code, and the versions of torch and
    of the packages that export, optimise and (int8) quantise it."""
    from importlib import metadata

    h = hashlib.sha256(torch.__version__.encode())
    for pkg in ("onnx", "onnxscript", "onnxruntime", "onnx-ir"):
        try:
            h.update(f"{pkg}={metadata.version(pkg)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{pkg}=none".encode())
    root = Path(__file__).resolve().parents[1]
    for sub in ("models", "layers", "export"):
        for f in sorted((root / sub).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def graph_key(model: nn.Module, int8: bool = False) -> str:
    """The cache key of ``model``'s exported graph: code, module tree, config, every parameter and buffer (the
    non-persistent ones too: a position table, an index buffer)."""
    h = hashlib.sha256(_code_digest().encode())
    h.update(f"{type(model).__qualname__}|{int8}|{getattr(model, 'cfg', None)!r}|{model!r}".encode())
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _trim_cache(root: Path, keep: Path) -> None:
    """Remove the least recently used graph folders of ``root`` beyond :data:`CACHE_GRAPHS` (never ``keep``)."""
    import shutil

    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir() and p != keep and len(p.name) == 32),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in folders[CACHE_GRAPHS - 1:]:
        shutil.rmtree(old, ignore_errors=True)


class OrtSession:
    """An onnxruntime CPU session of a model exported by :func:`posetokens.export.export_onnx`, called like the
    model: ``forward`` (heatmaps / SimCC), ``predict`` (PCT, no flip), ``forward_frames`` (lifters). The graph is
    exported once per model and weights into :func:`cache_dir` (written atomically; a cache folder that cannot
    be written: a temporary folder removed with the session). :attr:`exported_s` is the export's time (0 when
    the cached graph was used)."""

    def __init__(self, model: nn.Module, threads: int | None = None, int8: bool = False, said_as: str = "onnxruntime") -> None:
        import shutil

        import onnxruntime as ort

        from posetokens.export import export_onnx
        from posetokens.export.onnx import io_names

        model = model.cpu().eval()
        cache = cache_dir() / "onnx"
        folder = cache / graph_key(model, int8)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            cached = True
        except OSError as e:
            self._dir = tempfile.TemporaryDirectory(prefix="posetokens-ort-")
            folder, cached = Path(self._dir.name), False
            _say_once(f"posetokens: runtime {said_as}: the cache folder {cache} cannot be written ({e.strerror or e}); "
                      "the graph is exported for this run only (POSETOKENS_CACHE moves the cache)")
        path = folder / "model.onnx"
        self.path, self.exported_s, self.cached = path, 0.0, cached
        name = getattr(model, "zoo_name", type(model).__name__)
        opts = ort.SessionOptions()
        self.threads = opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 4  # a graph it cannot load is an exception here, not onnxruntime's own log line
        session = None
        if path.is_file():
            try:
                session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
                names_in, names_out = io_names(model)
                with contextlib.suppress(OSError):
                    os.utime(folder)  # most recently used
            except Exception:  # noqa: BLE001 (a damaged or partial cached graph: exported again below)
                _say_once(f"posetokens: runtime {said_as}: the cached graph {path} cannot be loaded; exporting again")
                session = None
                for f in folder.iterdir():
                    if f.is_file():
                        f.unlink()
                    else:
                        shutil.rmtree(f, ignore_errors=True)
        if session is None:
            where = f"cached in {folder}" if cached else "for this run"
            _say_once(f"posetokens: runtime {said_as}: exporting {name} to ONNX once (10-60 s; {where}; "
                      f"{option('runtime', 'torch')} skips this)")
            try:
                res = export_onnx(copy.deepcopy(model), path, check=False, precision="int8-dynamic" if int8 else "fp32")
            except BaseException:  # failed or interrupted: no empty graph folder is left in the cache
                if cached:
                    with contextlib.suppress(OSError):
                        folder.rmdir()  # only when empty: the graph is written atomically, so nothing of it is there
                raise
            names_in, names_out, self.exported_s = res.inputs, res.outputs, res.seconds
            if cached:
                _trim_cache(cache, keep=folder)
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.session = session
        self.inputs, self.outputs = names_in, names_out
        # the fixed (non-batch) sizes of each input, as exported: other sizes are refused before onnxruntime
        self.shapes = [tuple(d if isinstance(d, int) else None for d in i.shape) for i in session.get_inputs()]
        self.task = model.task
        self.output_kind = getattr(model, "output_kind", None)
        self.prunes = bool(getattr(model, "prunes", False))  # a pruned lifter's kept frames (forward_frames)

    def _call(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        for name, t, shape in zip(self.inputs, inputs, self.shapes):
            if t.dim() != len(shape) or any(e is not None and e != g for e, g in zip(shape, t.shape)):
                want = "(" + ", ".join("B" if e is None else str(e) for e in shape) + ")"
                raise OrtUnsupported(f"{option('runtime', 'onnxruntime')}: input {name} of shape {tuple(t.shape)}: the "
                                     f"graph was exported for {want}; use {option('runtime', 'torch')}",
                                     "on inputs of another shape")
        feed = {n: t.detach().float().cpu().numpy() for n, t in zip(self.inputs, inputs)}
        return [torch.from_numpy(a) for a in self.session.run(None, feed)]

    def forward(self, *inputs: torch.Tensor) -> Any:
        """The network's output as the model returns it (a tensor, or SimCC's pair)."""
        out = self._call(*inputs)
        return tuple(out) if len(out) > 1 else out[0]

    def predict(self, images: torch.Tensor, flip_indices: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """PCT's crop-pixel keypoints and scores; with ``flip_indices`` the graph runs on the mirrored images
        too and the two are merged as :meth:`PCT.predict <posetokens.models.pct.PCT.predict>` does."""
        from posetokens.models.pct import merge_flipped

        k, s = self._call(images)
        if flip_indices is not None:
            k, s = merge_flipped(k, s, *self._call(images.flip(-1)), flip_indices, images.shape[-1])
        return k, s

    def forward_frames(self, x: torch.Tensor, keep_index: Any = None) -> tuple[torch.Tensor, Any]:
        """A lifter's 3D and its kept frames: the graph's ``kept_frames`` (TPC), or for another pruned lifter
        (HoT) a marker that they exist but the graph does not give them. The flip test's second pass reuses the
        first pass's kept frames, which the graph cannot take, so it is refused (one line) rather than run with a
        selection of its own."""
        if keep_index is not None:
            raise OrtUnsupported(_no_given_frames(), "with given kept frames")
        out = self._call(x)
        return out[0], (out[1] if len(out) > 1 else _KEPT_IN_GRAPH if self.prunes else None)


def _onnx_missing() -> str:
    """The first of the packages the onnxruntime runtime needs that is not installed ('' when all are)."""
    return next((m for m in ("onnxruntime", "onnx", "onnxscript") if importlib.util.find_spec(m) is None), "")


def resolve_precision(model: nn.Module, choice: Choice, device: str | torch.device = "cpu") -> Choice:
    """The precision ``auto`` stands for, for ``model`` on ``device`` (any other precision: itself): what the
    model class declares as ``auto_precision`` (a model of the user's that declares none: ``fp32``). A declared
    ``bf16-gemm`` runs on a CPU with bfloat16 kernels when PyTorch runs it (runtime ``torch`` or ``auto``, which
    then runs PyTorch), can set the mode (PyTorch 2.9 or later), oneDNN applies it and it is clearly faster on this CPU
    (:func:`~posetokens.layers.fuse.bf16_gemm_pays`, timed once per process); anywhere else ``fp32``. The lifters
    declare ``bf16-gemm`` (measured: +0.02 to +0.07 mm on three trained HoT-MixSTE, -0.02 and -0.03 mm on trained
    MotionAGFormer and HoT-MotionAGFormer; the full-size lifters 2.35-2.52x the official float32 code against
    1.06-1.27x in float32); PCT too (+0.09 and +0.10 AP on two trained PCTs; PCT-B 2.23x / 2.58x the official code
    at batch 1 / 8 against 1.50x / 1.34x in float32); TokenPose/PPT, GTPT and multi-view PPT ``fp32``: exact, one
    precision at every batch (docs/speed.md "The default")."""
    if choice.precision != "auto":
        return choice
    declared = getattr(model, "auto_precision", "fp32")
    if declared not in ("fp32", "bf16-gemm"):
        raise ValueError(f"{type(model).__name__}.auto_precision {declared!r}: expected 'fp32' or 'bf16-gemm'")
    fast = (declared == "bf16-gemm" and torch.device(device).type == "cpu" and choice.runtime in ("torch", "auto")
            and HAS_GEMM_MATH and bf16_supported("cpu")[0] and bf16_gemm_pays())
    return Choice("bf16-gemm" if fast else "fp32", choice.runtime)


def resolve(model: nn.Module, choice: Choice, device: str | torch.device = "cpu",
            trained: bool = True) -> tuple[Choice, str]:
    """The runtime ``auto`` stands for, for ``model`` on ``device`` (any other choice: itself), and why, in a
    few words. Measured (benchmarks/precision.py): onnxruntime's float32 is exact, and the faster of the two on
    some CPUs and batch sizes only, so where it is chosen here, the prepared model still races it against eager
    at the first call of each batch bucket (:meth:`PreparedModel._race`); torch where it cannot run, would refuse the model's recipe, or would not
    be the same numbers on every call.
    ``trained`` False (a zoo model built without weights) keeps torch: random weights change with every run,
    so each would export a new graph."""
    if choice.runtime != "auto":
        return choice, "named"
    dev = torch.device(device)
    torch_ = Choice(choice.precision, "torch")
    if dev.type != "cpu":
        return torch_, f"the onnxruntime runtime is CPU-only ({dev})"
    if choice.precision != "fp32":
        return torch_, ("auto takes onnxruntime for float32 only: its int8 differs from PyTorch's, which the calls "
                        "the graph cannot serve would use" if choice.precision == "int8-dynamic" else
                        "onnxruntime's CPU kernels have no bfloat16")
    if not trained:
        return torch_, "random weights (a new graph every run)"
    if getattr(model, "task", None) == "lifting":
        return torch_, ("lifters run in PyTorch: a pruned one's flip test reuses the first pass's kept frames, which "
                        "the graph cannot take, and the unpruned MixSTE ran slower through onnxruntime at 6x the "
                        "memory (docs/speed.md)")
    missing = _onnx_missing()
    if missing:
        return torch_, f"{missing} is not installed (pip install 'posetokens[onnx]' for 1.3-2x on the CPU)"
    return Choice(choice.precision, "onnxruntime"), "exact, and raced against eager on this CPU at the first call"


def prepare(model: nn.Module, choice: Choice | str | None = None, device: str | torch.device | None = None,
            threads: int | None = None, trained: bool = True) -> nn.Module:
    """``model`` (put in eval mode, on ``device``) ready to run under ``choice``: the model itself for float32
    eager, else a :class:`PreparedModel` of a copy (of the model itself for fp32/compile); nothing else of
    ``model`` is changed. ``choice``: a :class:`Choice`, a ``"precision/runtime"`` string, or None
    (:data:`DEFAULT`, or ``POSETOKENS_PRECISION`` and ``POSETOKENS_RUNTIME``). The precision ``auto`` becomes what
    :func:`resolve_precision` gives, the runtime ``auto`` what :func:`resolve` gives (``trained``: see there); its
    onnxruntime session is made at the first call
    that needs it (an export is said on stderr; a cached graph is not), and an export that fails runs eager,
    said in one line. ``threads``: onnxruntime's intra-op threads (default torch's). Raises ``ValueError`` (one
    line) for a choice the device cannot run."""
    if choice is None or isinstance(choice, str):
        parts = (choice or f"{_default_precision()}/{_default_runtime()}").split("/")
        choice = parse_choice(parts[0], parts[1] if len(parts) > 1 else None)
    dev = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    check_choice(choice, dev)
    model = model.eval()
    auto = choice.runtime == "auto"
    name = getattr(model, "zoo_name", type(model).__name__)
    if choice.precision == "auto":
        choice = resolve_precision(model, choice, dev)
        if choice.precision != "fp32":
            _say_once(f"posetokens: precision auto: {name} runs {choice.precision} (its Linear and convolution "
                      "layers in oneDNN's bfloat16 math mode: within 0.1 mm and 0.1 AP of float32 on the trained "
                      "models measured, docs/speed.md; --precision fp32 for float32 throughout)")
    if choice.precision == "bf16-backbone" and image_backbone(model) is None:  # nothing to run in bfloat16
        what = "a lifter has no image backbone" if getattr(model, "task", None) == "lifting" else \
            "it declares no image backbone"
        _say_once(f"posetokens: --precision bf16-backbone: {name} runs as fp32/{choice.runtime} ({what})")
        choice = Choice("fp32", choice.runtime)
    if auto:
        choice, why = resolve(model, choice, dev, trained)
        if choice.runtime == "torch" and choice.precision == "fp32" and "not installed" in why:
            _say_once(f"posetokens: runtime auto: PyTorch eager for {name}: {why}")
    if choice == Choice("fp32", "torch"):
        return model
    if choice.runtime == "onnxruntime" and auto:  # float32 (resolve): exported at the first call that needs it
        def session() -> OrtSession | None:
            try:
                return OrtSession(model, threads, said_as="auto")
            except Exception as e:  # noqa: BLE001 (any export or session failure runs eager instead, said)
                first = str(e).splitlines()[0] if str(e) else ""
                _say_once(f"posetokens: runtime auto: onnxruntime could not take {name} ({type(e).__name__}: "
                          f"{first[:200]}); running PyTorch eager")
                return None

        return PreparedModel(model, choice, eager_otherwise=True, session_factory=session, race=True).eval()
    if choice.runtime == "onnxruntime":
        int8 = choice.precision == "int8-dynamic"
        return PreparedModel(model, choice, session=OrtSession(model, threads, int8=int8)).eval()
    dtype = None
    net = model
    if choice.precision == "bf16":
        net, dtype = copy.deepcopy(model).to(torch.bfloat16), torch.bfloat16
    elif choice.precision == "bf16-backbone":
        net = backbone_in_bfloat16(model)
    elif choice.precision == "bf16-gemm":
        net = gemm_in_bfloat16(copy.deepcopy(model))
    elif choice.precision == "int8-dynamic":
        net = quantize_linear_dynamic(model.cpu())
    if net is not model:  # a copy of ours; fp32/compile wraps the caller's model itself, which stays as it was
        for p in net.parameters():
            p.requires_grad_(False)
    return PreparedModel(net.eval(), choice, dtype=dtype, compiled=choice.runtime == "compile").eval()
