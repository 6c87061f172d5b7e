"""Process-level CPU settings for inference, benchmarks and CPU training."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse instead of returning it to the OS; True if applied.

    glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it on free. A CNN stem at
    batch 32 allocates such buffers at every layer (one 256-channel 64x48 map is 100 MB), so each forward
    pass page-faults its activations in again: a 64->256 1x1 convolution spends half its time in the
    kernel zeroing pages. With ``mmap`` off and trimming disabled the freed blocks stay in the heap and
    the next pass reuses them. This is the effect of the jemalloc/tcmalloc switch that PyTorch's CPU
    performance guide recommends, without a preload. The cost is that the process keeps its peak heap.
    Does nothing (returns False) off Linux/glibc, or when the environment sets
    ``POSETOKENS_SYSTEM_MALLOC=1``. Applied once per process; later calls return the first result.
    """
    if not sys.platform.startswith("linux") or os.environ.get("POSETOKENS_SYSTEM_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    return ok_trim and ok_mmap
