"""PCT's flip test (``predict`` with ``flip_indices``, what its evaluation runs) through onnxruntime against
PyTorch eager, both on the inference copy, one process, interleaved rounds. Appends a report to
benchmarks/RESULTS.md.

    python benchmarks/pct_flip.py                         # PCT-B without image guidance, batches 1 and 8
    python benchmarks/pct_flip.py --batches 1 --rounds 7
    python benchmarks/pct_flip.py --overrides '{"backbone": {"embed_dim": 8}, "in_channels": 64}'  # a small one

Random weights (speed only); the two outputs are compared first. Times are the calling thread's CPU time with
one intra-op thread (onnxruntime runs in the calling thread then), median over rounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import append_report, cpu_name, report_path, run, setup_allocator  # noqa: E402

import posetokens  # noqa: E402
from posetokens.data.metainfo import get_metainfo  # noqa: E402
from posetokens.inference.precision import OrtSession  # noqa: E402
from posetokens.layers import optimize_for_inference  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Time both runtimes per batch and append the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pct_base_woimgguide_coco_256x256")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--overrides", type=json.loads, default={},
                    help="model config overrides as JSON (a tiny model for the CI smoke test)")
    ap.add_argument("--system-malloc", action="store_true", help="glibc's defaults instead of retained memory")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args(argv)
    allocator = setup_allocator(args.system_malloc)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cache = None
    if "POSETOKENS_CACHE" not in os.environ:  # the exported graph lives only as long as the run
        cache = tempfile.TemporaryDirectory(prefix="posetokens-pct-flip-")
        os.environ["POSETOKENS_CACHE"] = cache.name
    model = optimize_for_inference(posetokens.create_model(args.model, **args.overrides).eval())
    flip = list(get_metainfo("coco").flip_indices)
    session = OrtSession(model, threads=1)
    rows = []
    for b in args.batches:
        x = model.dummy_inputs(b)[0]
        runs = {"PyTorch eager": lambda: model.predict(x, flip), "onnxruntime": lambda: session.predict(x, flip)}
        with torch.inference_mode():
            (k0, _), (k1, _) = runs["PyTorch eager"](), runs["onnxruntime"]()
            gap = float((k0 - k1).abs().max())
            if gap > 1e-3:
                raise SystemExit(f"pct_flip: the runtimes differ by {gap:.3g} px at batch {b}; nothing timed")
            times: dict[str, list[float]] = {k: [] for k in runs}
            for r in range(args.rounds):
                for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
                    start = time.thread_time()
                    runs[k]()
                    times[k].append(time.thread_time() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(f"| {args.model}{' (overridden)' if args.overrides else ''} | {b} | {med['PyTorch eager']:.3f} | {med['onnxruntime']:.3f} | "
                    f"{med['PyTorch eager'] / med['onnxruntime']:.2f}x | {gap:.1e} |")
    text = "\n".join([
        f"## pct_flip.py — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
        f"Command: `python {shlex.join(['benchmarks/pct_flip.py', *(sys.argv[1:] if argv is None else argv)])}`. Machine: {cpu_name()}, 1 "
        f"intra-op thread, {platform.system()} {platform.machine()}, torch {torch.__version__}, {allocator}. "
        f"Random weights; predict with the flip test (COCO flip pairs); median of {args.rounds} interleaved "
        "rounds, calling-thread CPU seconds per batch.", "",
        "| model | batch | PyTorch eager s | onnxruntime s | onnxruntime faster by | max keypoint gap (px) |",
        "|---|---|---|---|---|---|", *rows, ""])
    append_report(text, args.out)
    if cache is not None:
        cache.cleanup()
    return 0


if __name__ == "__main__":
    run(main)
