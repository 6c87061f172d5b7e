"""Shared test fixtures: where the shared data and the official parity fixtures live."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSETOKENS_SHARED", REPO.parent / "shared"))  # the one way every test finds shared/
PARITY = SHARED / "parity"
DATA = SHARED / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Without the shared folder the official comparisons cannot run: stop at once, naming the folder (a green
    run must prove they ran)."""
    missing = [p for p in (SHARED, PARITY, DATA) if not p.is_dir()]
    if missing:
        raise pytest.UsageError(
            f"posetokens tests: shared folder not found: {missing[0]} (expected ../shared beside the repo, holding "
            "parity/ and data/; set POSETOKENS_SHARED to its path)"
        )

# the tests run PyTorch eager unless they name a runtime (the default, auto, exports every model to ONNX once), and
# float32 unless they name a precision (the default, auto, runs lifters in bf16-gemm on CPUs with bfloat16 kernels)
os.environ.setdefault("POSETOKENS_RUNTIME", "torch")
os.environ.setdefault("POSETOKENS_PRECISION", "fp32")


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Graphs a test exports go to a throw-away cache, never the user's (posetokens.inference.precision.cache_dir)."""
    os.environ["POSETOKENS_CACHE"] = str(tmp_path_factory.mktemp("posetokens-cache"))


def _threads_per_process() -> int:
    """At most 2 threads; under pytest-xdist (``make test``: two workers) the cores shared out among the workers:
    two workers of 2 threads each on the CI's 2 cores spin against each other (the suite took 8.6-10.6 min against
    6.5 min at one thread each). The CLIs the tests start inherit the count through ``OMP_NUM_THREADS``; an
    ``OMP_NUM_THREADS`` set by the caller is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return min(2, torch.get_num_threads())


torch.set_num_threads(_threads_per_process())
_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Training code sets torch's global thread count (``threads:`` in a recipe); restore it after each
    test so numerics that depend on the thread count (official-parity token selection) do not leak."""
    yield
    torch.set_num_threads(_THREADS)


def parity_fixtures(prefix: str) -> list[Path]:
    """Fixture folders whose config names an official model starting with ``prefix``."""
    if not PARITY.is_dir():
        return []
    out = []
    for cfg in sorted(PARITY.glob("*/config.json")):
        if str(json.loads(cfg.read_text()).get("official_model_name", "")).startswith(prefix):
            out.append(cfg.parent)
    return out


@pytest.fixture
def shared_data() -> Path:
    """The real sample data folder (a failure when absent)."""
    if not DATA.is_dir():
        pytest.fail(f"shared data not found at {DATA}")
    return DATA


def interrupt_when(argv: list[str], ready: Callable[[subprocess.Popen], bool], sig: int = signal.SIGINT,
                   timeout: float = 60.0, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start ``argv``, send ``sig`` once ``ready(proc)`` is true (polled; the run must not end first) and return its
    exit code and stderr."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready(proc):
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it was interrupted"
            time.sleep(0.005)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def partial_lines(folder: Path, pattern: str) -> int:
    """Finished records in the streamed ``.partial`` json matching ``pattern`` under ``folder`` (0 while none)."""
    partial = list(folder.glob(pattern)) if folder.is_dir() else []
    return partial[0].read_text().count("\n") - 1 if partial else 0


def video_frames(path: Path) -> list:
    """Every frame OpenCV decodes from the video at ``path`` (BGR arrays)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


class EchoLifter(nn.Module):
    """A stand-in lifter whose 3D output is its own 2D input (z = 0), root-zeroed by the pipeline: the
    tracking and lift tests check where each track goes without a trained model."""

    task = "lifting"
    zoo_name = "echo"
    prunes = False  # what a lifter declares: it keeps every frame

    def __init__(self, frames: int = 9) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(num_frames=frames, in_channels=2)
        self.is_seq2frame = False

    def forward_frames(self, x: torch.Tensor, keep_index: torch.Tensor | None = None):
        return torch.cat((x[..., :2], torch.zeros_like(x[..., :1])), dim=-1), None
