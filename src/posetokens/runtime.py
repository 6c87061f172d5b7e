"""Process-level CPU settings for inference, benchmarks and CPU training."""

from __future__ import annotations

import ctypes
import functools
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


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
