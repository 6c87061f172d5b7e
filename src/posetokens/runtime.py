"""Process-level settings for inference, benchmarks and CPU training: the malloc setting, device checks, the
random-weights note, and turning SIGINT/SIGTERM into an exception that a run finishes its files on."""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import ctypes
import functools
import logging
import math
import numbers
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


class UserKeyError(KeyError):
    """A ``KeyError`` the user caused: an unknown name (a model, a protocol, a counter) or a key missing from a
    file of theirs. The CLI prints its message in one line; any other ``KeyError`` is a bug of ours and keeps
    its traceback."""

    def __str__(self) -> str:  # the message itself, not KeyError's repr of it
        return str(self.args[0]) if self.args else "unknown key"


@functools.cache
def cpu_fields() -> dict[str, str]:
    """The first processor's fields in ``/proc/cpuinfo`` ("model name", "cpu family", "flags", ... on x86;
    "CPU implementer", "Features", ... on Arm), or ``{}`` where there is no such file. Read once."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in first.splitlines())}


@functools.cache
def malloc_is_glibc() -> bool:
    """Whether this process's ``malloc`` is glibc's own, not one interposed by a preloaded library (jemalloc,
    tcmalloc via ``LD_PRELOAD``). False off Linux or where libc.so.6 cannot be opened."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        default, glibc = ctypes.CDLL(None), ctypes.CDLL("libc.so.6")
        addr = [ctypes.cast(lib.malloc, ctypes.c_void_p).value for lib in (default, glibc)]
    except (OSError, AttributeError):
        return False
    return addr[0] == addr[1]


@functools.cache
def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse instead of returning it to the OS; True if applied.

    glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free. A CNN stem at
    batch 32 allocates such buffers at every layer (one 256-channel 64x48 map is 100 MB), so each forward
    pass page-faults its activations in again: a 64->256 1x1 convolution spends half its time in the
    kernel zeroing pages. With ``mmap`` off and the trim threshold raised to 2 GiB, freed blocks stay in the
    heap and the next pass reuses them. This is the effect of the jemalloc/tcmalloc switch that PyTorch's CPU
    performance guide recommends, without a preload.

    Costs and limits: the setting is process-wide and permanent. The process keeps its heap, which can grow
    above the true peak, because PyTorch's 64-byte-aligned requests do not always fit a freed block of the
    same size (about 3% above the peak for TokenPose-S inference at mixed batch sizes). It acts on the main
    thread's heap; other threads' arenas still mmap blocks over 64 MiB. Does nothing (returns False) off
    Linux/glibc, when a preloaded jemalloc/tcmalloc serves ``malloc`` (it already reuses memory; see
    :func:`malloc_is_glibc`), or when the environment sets ``POSETOKENS_SYSTEM_MALLOC=1``. Applied once per
    process; later calls return the first result.
    """
    if os.environ.get("POSETOKENS_SYSTEM_MALLOC") == "1" or not malloc_is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # a libc without mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    return ok_trim and ok_mmap


@functools.cache
def settle_vector_math() -> None:
    """Set up PyTorch's CPU vector math once, on one thread, so that the first ``exp``/``log``/``sin``/``cos`` of a
    process is as exact as every later one. ``import posetokens`` calls it.

    Measured with torch 2.13's CPU wheel on a 2-core Intel Xeon: in about one fresh process in ten, the first such call
    on a tensor that the intra-op threads split between them (8192 elements) returned values off by about 1e-4
    relative instead of one ulp, on part or all of the tensor; every later call was exact, and none went wrong with one
    intra-op thread or after one call on a tiny tensor. Those ops go through MKL's vector math library, whose one-time
    setup races when several threads make the first call together. A model built first thing in a process computes
    its sine position table with that first call: the inexact table failed the official-checkpoint check (``parity``,
    ``convert``), and would have stayed in the model for its lifetime.
    """
    import torch

    torch.ones(4).exp()


# ------------------------------------------------------------------------------------------------- devices
def shown_device(device: Any) -> Any:
    """``device`` as a message shows it: as given (``'cuda'``, ``-1``, ``None``), a ``torch.device`` by its name."""
    return str(device) if type(device).__name__ == "device" else device


def check_device(device: Any, named: str | None = None) -> Any:
    """``device`` as a ``torch.device`` when this build and machine can use it; otherwise ``ValueError`` with one
    line saying why (no CUDA in this PyTorch build, no GPU visible, an index past the last GPU, a bad name).
    ``named``: how the message names the argument with its value (default ``device='cuda'`` from Python,
    ``--device cuda`` on the command line)."""
    import torch

    what = option("device", shown_device(device)) if named is None else named
    cpu = option("device", "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what} is not a device (expected cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(f"{what}: this PyTorch build has no CUDA support (a CPU build); use {cpu} "
                             "or install a CUDA build of PyTorch")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"{what}: no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES); "
                             f"use {cpu}")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"{what}: only {n} CUDA GPU(s) visible (cuda:0..cuda:{n - 1})")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"{what}: Apple MPS is not available here; use {cpu}")
    elif dev.type != "cpu":
        raise ValueError(f"{what}: unsupported device type {dev.type!r} (expected cpu, cuda, cuda:N or mps)")
    return dev


# ------------------------------------------------------------------------------------ notes and warnings
def is_number(value: Any) -> bool:
    """A real number, Python's or NumPy's (not a bool): what a JSON number or a numeric argument may be."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value: Any) -> bool:
    """A finite number with a whole value (``3`` or ``3.0``)."""
    return is_number(value) and math.isfinite(value) and value == int(value)


def check_flag(value: Any, what: str) -> bool:
    """``value`` as a bool when it is one (Python's or NumPy's); else ``ValueError`` naming ``what``: a string such
    as ``"no"`` would otherwise count as true."""
    import numpy as np

    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {short_repr(value)}")
    return bool(value)


def check_count(value: Any, what: str, low: int = 1) -> int:
    """``value`` as an int when it is a whole number >= ``low`` (``4`` or ``4.0``); else ``ValueError`` naming
    ``what`` (``"4"``, ``2.5``, None and True are refused)."""
    if not is_whole(value) or value < low:
        raise ValueError(f"{what} must be a whole number >= {low}, got {short_repr(value)}")
    return int(value)


def number_array(value: Any, what: str, expected: str) -> Any:
    """``value`` as a float64 NumPy array when it holds real numbers (an array, a tensor on any device, with or
    without a gradient: its values are copied, nested lists); else ``ValueError`` naming ``what`` and ``expected``
    (e.g. ``"H36M-17 keypoints (L, 17, 2)"``). Refused: text (even ``"3.5"``, which NumPy would convert), None,
    booleans, complex numbers, a generator (read it into a list first), lists of unequal lengths."""
    import numpy as np

    torch = sys.modules.get("torch")
    try:
        if torch is not None and isinstance(value, torch.Tensor):  # a detector's boxes straight from a model
            value = value.detach().cpu()
        arr = np.asarray(value)
    except ValueError:  # NumPy: "setting an array element with a sequence. The requested array has an inhomogeneous..."
        raise ValueError(f"{what}: expected {expected}, got nested lists of unequal lengths") from None
    except (TypeError, RuntimeError, NotImplementedError) as e:  # an object NumPy cannot convert, a meta tensor
        raise ValueError(f"{what}: expected {expected}, got a {type(value).__name__} NumPy cannot read "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if arr.dtype.kind not in "iuf":
        kind = {"U": "text", "S": "bytes", "b": "booleans", "c": "complex numbers", "M": "dates",
                "m": "time spans"}.get(arr.dtype.kind, "Python objects (None, or values of mixed types)")
        if arr.dtype == object and arr.ndim == 0:
            kind = "None" if value is None else f"a {type(value).__name__}"
        raise ValueError(f"{what}: expected {expected} as numbers, got {kind}")
    return arr.astype(np.float64)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line (an array's rows joined) cut to ``limit`` characters, for a user's value in a
    one-line message."""
    text = repr(value)
    if "\n" in text:  # a str's repr escapes its newlines: only containers' reprs (arrays, tensors) have them
        text = re.sub(r"\n\s*", " ", text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_SAID: set[str] | None = None  # warn_once's texts within the current run (None: outside one)


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """The scope of one run (a training, a test): within it :func:`warn_once` says each text once."""
    global _SAID
    outer, _SAID = _SAID, set()
    try:
        yield
    finally:
        _SAID = outer


def warn_once(log: logging.Logger, message: str, *args: Any) -> None:
    """``log.warning(message % args)``, once per run within :func:`one_run` (a warning about a file, not repeated
    at every evaluation of a training), every time outside one."""
    text = message % args
    if _SAID is None or text not in _SAID:
        if _SAID is not None:
            _SAID.add(text)
        log.warning(text)


def warn(message: str) -> None:
    """One ``posetokens: warning: ...`` line on stderr (a counted skip, a partial detections file, ...)."""
    print(f"posetokens: warning: {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """One ``posetokens: note: ...`` line on stderr (what a run did that the user may not expect)."""
    print(f"posetokens: note: {message}", file=sys.stderr, flush=True)


def note_random_weights(model: str, role: str = "model") -> None:
    """Say on stderr that ``model`` (e.g. ``"the 2D model tokenpose_s_coco_256x192"``) runs with random weights."""
    note(f"{role} {model} has no weights given: it runs with random weights (predictions are meaningless)")


# ---------------------------------------------------------------------------------------------- interrupts
class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM after finishing its files. ``exit_code`` is the shell's
    convention, 128 + the signal number (130 for SIGINT, 143 for SIGTERM); ``str()`` is a one-line account of
    what was kept. A ``KeyboardInterrupt``, so ``except Exception`` never swallows it."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "", files: Sequence[str] = ()) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        self.files = list(files)  # what the run finished and kept, where the raiser says (infer: its results json)
        super().__init__(message or f"interrupted by {signal_name(self.signum)}")

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def signal_name(signum: int) -> str:
    """``"SIGINT"``, ``"SIGTERM"``, ... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_deferring = 0  # depth of signals_deferred blocks
_pending: list[int] = []  # signals that arrived inside one


def _raise_interrupted(signum: int, frame: Any) -> None:
    if _deferring:
        _pending.append(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (in the main thread), so ``finally`` clauses
    close writers and finish files instead of the process dying mid-write. Previous handlers come back on exit.
    Outside the main thread (where handlers cannot be set) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextlib.contextmanager
def signals_deferred(discard: bool = False) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back during the block (a step that must not be cut in half, like writing one frame
    to both the video and its JSON): one that arrives meanwhile takes effect when the block ends (``discard``: is
    dropped, for the clean-up after an interrupt). Python runs signal handlers in the main thread between
    bytecodes whichever thread the kernel picked, so the deferral is done there, not with a signal mask (which a
    worker thread of OpenMP or FFmpeg would not share)."""
    global _deferring
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    outside = {s: h for s, h in ours.items() if h is not _raise_interrupted}
    for s in outside:
        signal.signal(s, _raise_interrupted)
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        for s, h in outside.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if not _deferring and _pending:
            signum = _pending[0]
            _pending.clear()
            if not discard:
                if signum in outside:  # the handler from before the block decides (default: KeyboardInterrupt / exit)
                    os.kill(os.getpid(), signum)
                else:
                    raise Interrupted(signum)


# ------------------------------------------------------------------------------------------ command lines
_COMMAND_LINE: contextvars.ContextVar[bool] = contextvars.ContextVar("posetokens_command_line", default=False)
# where the flag is not the argument's name
_FLAGS = {"out_dir": "--out", "boxes": "--boxes / --detector", "smooth": "--filter"}
_UNSET = object()


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Within it messages name the command line's flags (:func:`option`); ``cli.run_command`` runs commands in it."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(name: str, value: Any = _UNSET) -> str:
    """How a message names the argument ``name`` (the Python one), with ``value`` if given: the command line's
    flag under :func:`command_line` (``--det-every``, ``--device cpu``), else the Python argument (``det_every``,
    ``device='cpu'``): a message reached from both says what the user typed. ``value`` True: the flag alone
    (``--online``; ``online=True``)."""
    if _COMMAND_LINE.get():
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        return flag if value is _UNSET or value is True else f"{flag} {value}"
    return name if value is _UNSET else f"{name}={str(value)!r}" if isinstance(value, os.PathLike) else \
        f"{name}={value!r}"


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``low`` (else argparse's one-line error naming the option)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value
    return parse
