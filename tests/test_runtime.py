"""posetokens.runtime: glibc keeps freed memory once retain_freed_memory has run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# Bytes glibc holds in mmap-ed blocks (mallinfo2().hblkhd) before and after a 64 MiB tensor is allocated.
_PROBE = """
import ctypes, torch
from posetokens.runtime import retain_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):  # glibc < 2.33, or another libc
    print("skip 0")
    raise SystemExit
libc.mallinfo2.restype = Info
applied = retain_freed_memory()
before = libc.mallinfo2().hblkhd
x = torch.ones(64 << 20, dtype=torch.uint8)
print(applied, libc.mallinfo2().hblkhd - before)
"""


def _probe(env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True)
    applied, grown = out.stdout.split()
    if applied == "skip":
        pytest.skip("no glibc mallinfo2 to observe the allocator")
    return applied, int(grown)


def _clean_env() -> dict[str, str]:
    """This environment without the opt-out and without any preloaded library (pytest may run under one)."""
    return {k: v for k, v in os.environ.items() if k not in ("POSETOKENS_SYSTEM_MALLOC", "LD_PRELOAD")}


_GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not _GLIBC, reason="glibc mallopt")
def test_large_blocks_come_from_the_heap_once_applied() -> None:
    env = _clean_env()
    applied, grown = _probe(env)
    assert applied == "True" and grown == 0  # served from the heap, so freeing it keeps it for reuse
    applied, grown = _probe({**env, "POSETOKENS_SYSTEM_MALLOC": "1"})
    assert applied == "False" and grown >= 64 << 20  # glibc's default: a fresh mmap, unmapped on free


_SHIM = "#include <stddef.h>\nextern void *__libc_malloc(size_t);\nvoid *malloc(size_t n) { return __libc_malloc(n); }\n"


@pytest.mark.skipif(not _GLIBC, reason="glibc mallopt")
def test_a_preloaded_malloc_is_left_alone(tmp_path) -> None:
    # An LD_PRELOAD library that defines malloc (as jemalloc and tcmalloc do) takes over the process's
    # allocations; glibc's settings would then label a benchmark wrongly and do nothing, so none are applied.
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build an interposing malloc")
    (tmp_path / "shim.c").write_text(_SHIM)
    lib = tmp_path / "libshim.so"
    built = subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(tmp_path / "shim.c")], capture_output=True)
    if built.returncode != 0:
        pytest.skip(f"could not build the interposing malloc: {built.stderr.decode(errors='replace')[:200]}")
    code = "from posetokens.runtime import malloc_is_glibc, retain_freed_memory; print(malloc_is_glibc(), retain_freed_memory())"
    env = _clean_env()
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert plain.stdout.split() == ["True", "True"]
    shimmed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**env, "LD_PRELOAD": str(lib)})
    assert shimmed.stdout.split() == ["False", "False"]
