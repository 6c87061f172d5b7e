"""posetokens.runtime: glibc keeps freed memory once retain_freed_memory has run; vector math set up at import."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import interrupt_when

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


# The first exp of a fresh process after ``import posetokens``, on two intra-op threads over a tensor they split
# between them, against float64: its largest relative error.
_FIRST_EXP = """
import torch
torch.set_num_threads(2)
import posetokens
x = torch.linspace(0.1, 6.3, 8192)
first = x.exp()  # before any other exp of the process
ref = x.double().exp()
print(float(((first.double() - ref) / ref).abs().max()))
"""


def test_import_sets_up_the_vector_math_first() -> None:
    """``import posetokens`` has called settle_vector_math (deterministic half of the check below)."""
    from posetokens import runtime

    assert runtime.settle_vector_math.cache_info().currsize == 1


@pytest.mark.slow
def test_the_first_exp_of_a_process_is_exact() -> None:
    """Without settle_vector_math about one fresh process in ten got a first exp off by about 1e-4 relative
    (torch 2.13, 2-core Intel Xeon: 5 of 45 here; the docstring has the figures), so 60 fresh processes, one at a
    time (two at once hid the race), each check theirs against float64 to float32's precision (an exp within 1 ulp
    is within 6e-8). On a host without the race this passes either way."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    errors = [float(subprocess.run([sys.executable, "-c", _FIRST_EXP], capture_output=True, text=True, env=env,
                                   check=True, timeout=120).stdout) for _ in range(60)]
    assert max(errors) < 2e-7, sorted(errors)[-3:]


def test_the_console_command_starts_outside_the_package() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "posetokens"]
    assert ep.value == "posetokens_launch:main"  # so that the import of torch below is inside its try


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc/PID/maps")
@pytest.mark.parametrize("delay", [0.0, 0.15])
def test_ctrl_c_while_torch_loads_is_one_line(delay: float) -> None:
    # SIGINT once libtorch is mapped (plus a delay): torch's import has begun and takes about a second more. Before,
    # Python's KeyboardInterrupt traceback came out through torch's import, or the library being imported swallowed
    # it (the listing then ran to the end, exit 0, or a half-imported numpy raised RecursionError later).
    rc, err = _interrupt_the_launcher("signal.default_int_handler", delay)
    if delay == 0.0:
        assert (rc, err) == (130, "posetokens: interrupted\n")
    else:  # on a fast host the imports may be done: then the command's own handler says it
        assert rc == 130 and err in ("posetokens: interrupted\n", "posetokens models: interrupted\n"), (rc, err)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="watches /proc/PID/maps")
def test_ctrl_c_inherited_ignored_stays_ignored() -> None:
    # a process started in the background by a non-interactive shell inherits SIGINT ignored: the launcher leaves it so
    rc, err = _interrupt_the_launcher("signal.SIG_IGN", 0.0)
    assert (rc, err) == (0, "")


def _interrupt_the_launcher(handler: str, delay: float) -> tuple[int, str]:
    """``posetokens models`` through the launcher, with ``handler`` for SIGINT as it starts (Python's own, as from a
    terminal; CI runs in the background, where SIGINT is inherited ignored), sent SIGINT ``delay`` s after libtorch
    is mapped."""
    import time

    def ready(proc: subprocess.Popen) -> bool:
        if "libtorch" not in Path(f"/proc/{proc.pid}/maps").read_text():
            return False
        time.sleep(delay)
        return True

    child = (f"import signal, sys; signal.signal(signal.SIGINT, {handler}); import posetokens_launch; "
             "sys.exit(posetokens_launch.main())")
    return interrupt_when([sys.executable, "-c", child, "models"], ready)


def test_option_names_the_argument_as_the_user_typed_it() -> None:
    """Messages reached from Python and from the command line name the argument each way (hand-written cases):
    the flag with its value under ``command_line()``, the Python argument with its value's repr outside it
    (a path as its text, not ``PosixPath(...)``), a flag without a value for True."""
    from pathlib import Path

    from posetokens.runtime import command_line, option

    assert [option("det_every"), option("device", "cpu"), option("pose2d_weights", Path("a.pth")),
            option("online", True), option("out_dir")] == ["det_every", "device='cpu'", "pose2d_weights='a.pth'",
                                                           "online=True", "out_dir"]
    with command_line():
        assert [option("det_every"), option("device", "cpu"), option("pose2d_weights", Path("a.pth")),
                option("online", True), option("out_dir"), option("smooth", "off")] == [
            "--det-every", "--device cpu", "--pose2d-weights a.pth", "--online", "--out", "--filter off"]
    assert option("out_dir") == "out_dir"  # the context is left as it was
