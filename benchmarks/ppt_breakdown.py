"""Where TokenPose-S and PPT-S spend a batch: CNN stem, patch embedding, transformer layers, head.

    python benchmarks/ppt_breakdown.py [--batch 32] [--rounds 3]

Both models share random weights and run on their ``optimize_for_inference`` copies (conv-BN folded,
channels-last), one intra-op thread, interleaved rounds; each figure is the median CPU time of the calling
thread. It shows how much of the batch pruning cannot touch (issue "Foundation": the PPT-S / TokenPose-S ratio).
The report is appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from pathlib import Path

import torch

import posetokens
from posetokens.layers import optimize_for_inference

from throughput import append_report, cpu_name, report_path, setup_allocator

MODELS = ("tokenpose_s_coco_256x192", "ppt_s_coco_256x192")
PARTS = ("backbone", "patch embedding", "layers", "head", "total")


def time_parts(model: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    """CPU seconds of each part of one forward pass (the whole forward timed separately as ``total``)."""
    t: dict[str, float] = {}
    t0 = time.thread_time()
    model.backbone(x)
    t["backbone"] = time.thread_time() - t0
    t0 = time.thread_time()
    seq, pos = model.embed(x)  # backbone + patch embedding
    t["patch embedding"] = time.thread_time() - t0 - t["backbone"]
    t0 = time.thread_time()
    keypoints = model.run_layers(seq, pos, range(len(model.blocks)))[-1][0]
    t["layers"] = time.thread_time() - t0
    t0 = time.thread_time()
    model.head(keypoints)
    t["head"] = time.thread_time() - t0
    t0 = time.thread_time()
    model(x)
    t["total"] = time.thread_time() - t0
    return t


def main() -> None:
    """Time the parts and append the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults (throughput.py doc)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    allocator = setup_allocator(args.system_malloc)
    torch.manual_seed(0)
    ref = posetokens.create_model(MODELS[0]).eval()
    models = {}
    for name in MODELS:
        m = posetokens.create_model(name).eval()
        m.load_state_dict(ref.state_dict())
        models[name] = optimize_for_inference(m)
    x = torch.randn(args.batch, 3, 256, 192).contiguous(memory_format=torch.channels_last)
    samples: dict[str, dict[str, list[float]]] = {n: {p: [] for p in PARTS} for n in MODELS}
    with torch.inference_mode():
        for m in models.values():
            m(x)  # warm-up
        for _ in range(args.rounds):
            for name, m in models.items():
                for part, sec in time_parts(m, x).items():
                    samples[name][part].append(sec)
    med = {n: {p: statistics.median(v) * 1e3 for p, v in parts.items()} for n, parts in samples.items()}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## ppt_breakdown.py — {stamp}", "",
             f"Machine: {cpu_name()}, 1 intra-op thread, torch {torch.__version__}, {allocator}. "
             f"Batch {args.batch}, optimized path, "
             f"median CPU ms of the calling thread over {args.rounds} interleaved rounds.", "",
             "| model | " + " | ".join(PARTS) + " |", "|---|" + "---|" * len(PARTS)]
    lines += [f"| {n} | " + " | ".join(f"{med[n][p]:.0f}" for p in PARTS) + " |" for n in MODELS]
    fixed = med[MODELS[1]]["backbone"] + med[MODELS[1]]["patch embedding"] + med[MODELS[1]]["head"]
    lines += ["", f"Ratio of totals {med[MODELS[0]]['total'] / med[MODELS[1]]['total']:.2f}x; the parts pruning "
              f"cannot touch (backbone + patch embedding + head) take {fixed:.0f} ms of PPT-S's batch.", ""]
    append_report("\n".join(lines), args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
