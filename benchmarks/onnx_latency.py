"""onnxruntime (CPU) latency beside PyTorch eager for exported zoo models, appended to benchmarks/RESULTS.md.

    python benchmarks/onnx_latency.py                                  # the default models, batch 1
    python benchmarks/onnx_latency.py --models ppt_s_coco_256x192 --batch 1 --rounds 5 --threads 1

Every model is exported with ``posetokens.export.export_onnx`` (checked against PyTorch to 1e-4 on random
inputs), then timed on one fixed random input: PyTorch eager (the model as built, fused attention) and an
onnxruntime CPU session (all graph optimisations), both with ``--threads`` intra-op threads. The host may be
shared, so the robust figure is the CPU time of the calling thread (with one thread both run there), the
median over interleaved rounds; wall-clock medians are reported beside it. Like ``throughput.py``, the process
first calls ``posetokens.runtime.retain_freed_memory`` (the setting of the library's own commands) unless
``--system-malloc`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import posetokens
from posetokens.export import export_onnx, io_names

from throughput import append_report, cpu_name, run, setup_allocator

DEFAULT = ("tokenpose_s_coco_256x192", "ppt_s_coco_256x192", "gtpt_t_coco_256x192", "mixste_h36m_243",
           "hot_mixste_h36m_243", "motionbert_h36m_243", "hot_motionbert_h36m_243")


def _time(fn, rounds: int) -> tuple[float, float]:
    """Median thread-CPU and wall milliseconds of ``fn()`` over ``rounds`` calls (after one warm-up)."""
    fn()
    cpu, wall = [], []
    for _ in range(rounds):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def measure(name: str, batch: int, rounds: int, threads: int, workdir: Path) -> dict:
    """Export ``name`` and time PyTorch eager against onnxruntime on one batch."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = posetokens.create_model(name).eval()
    res = export_onnx(model, workdir / f"{name}.onnx", check_batches=(batch,))
    inputs = tuple(t.cpu() for t in model.dummy_inputs(batch))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(res.path), opts, providers=["CPUExecutionProvider"])
    feed = {n: t.numpy() for n, t in zip(io_names(model)[0], inputs)}
    torch.set_num_threads(threads)
    with torch.no_grad():
        eager = _time(lambda: model(*inputs), rounds)
    onnx = _time(lambda: sess.run(None, feed), rounds)
    return {"model": name, "batch": batch, "eager": eager, "onnx": onnx, "export_s": res.seconds,
            "max_abs_diff": max(res.max_abs_diff.values())}


def main() -> None:
    """Measure, print and append a table to benchmarks/RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(DEFAULT))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    p.add_argument("--system-malloc", action="store_true", help="keep glibc's allocator defaults")
    args = p.parse_args()
    allocator = setup_allocator(args.system_malloc)
    import onnxruntime as ort

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = measure(name, args.batch, args.rounds, args.threads, Path(tmp))
            rows.append(r)
            print(f"{name}: eager {r['eager'][0]:.1f} ms, onnxruntime {r['onnx'][0]:.1f} ms (CPU, batch {args.batch})",
                  flush=True)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## onnx_latency.py — {now}\n",
        f"Machine: {cpu_name()}, {args.threads} intra-op thread(s), "
        f"{platform.system()} {platform.machine()}, torch {torch.__version__}, onnxruntime {ort.__version__} "
        f"(CPUExecutionProvider, ORT_ENABLE_ALL), {allocator}. Batch {args.batch}; median of {args.rounds} rounds; "
        "ms per batch from the calling thread's CPU time (wall in brackets). Export checked: max |ORT - PyTorch|.\n",
        "| model | PyTorch eager ms | onnxruntime ms | ORT speed-up | max abs diff | export s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        (ec, ew), (oc, ow) = r["eager"], r["onnx"]
        lines.append(f"| {r['model']} | {ec:.1f} ({ew:.1f}) | {oc:.1f} ({ow:.1f}) | {ec / oc:.2f}x | "
                     f"{r['max_abs_diff']:.1e} | {r['export_s']:.0f} |")
    append_report("\n".join(lines) + "\n", Path(args.results))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    run(main)
