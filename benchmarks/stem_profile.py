"""Where GTPT's CPU time goes at batch 32: the ShuffleNet stem against the transformer, and what the
inference rewrites buy the stem. Appends a report to benchmarks/RESULTS.md.

    python benchmarks/stem_profile.py                      # GTPT-T/S/B COCO, batch 32
    python benchmarks/stem_profile.py --models gtpt_t_coco_256x192 --batch 1 --rounds 5

Stem layouts timed, interleaved, per model:

* ``eager``: as built (conv, BatchNorm and ReLU separate, NCHW);
* ``fused``: conv-BN folded and each ReLU run inside its conv (``fuse_conv_bn``, ``fuse_conv_relu``), NCHW;
* ``fused+channels-last``: folded and channels-last, what ``optimize_for_inference`` returns.

The whole model is timed on its ``optimize_for_inference`` copy, so ``stem share`` is the fraction of the
deployed forward pass spent in the stem. The stem is timed whole, with the interleaves of its last stage, which
the deployed GTPT no longer runs since 2026-12-05 (that stage runs in pieces, ``stem(x, pieces=True)``, which the
embedding reads: at batch 32 roughly 15 ms less of stem and embedding in GTPT-T and 60 ms in GTPT-S, by the
probes in docs/speed.md): the share is that much too high. Times are the calling thread's CPU time (1 intra-op
thread by default), median over rounds: robust on a shared host.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import platform
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from throughput import append_report, cpu_name, report_path, setup_allocator, time_once  # noqa: E402

import posetokens  # noqa: E402
from posetokens.layers import optimize_for_inference  # noqa: E402
from posetokens.layers.fuse import fuse_conv_bn, fuse_conv_relu  # noqa: E402

MODELS = ("gtpt_t_coco_256x192", "gtpt_s_coco_256x192", "gtpt_b_coco_256x192")


def profile(name: str, batch: int, rounds: int) -> dict[str, float]:
    """CPU seconds per batch of the stem in each layout and of the whole deployed model."""
    torch.manual_seed(0)
    model = posetokens.create_model(name).eval()
    fused = fuse_conv_relu(fuse_conv_bn(copy.deepcopy(model.stem)))
    runs = {
        "eager": (model.stem, model.dummy_inputs(batch)[0]),
        "fused": (fused, model.dummy_inputs(batch)[0]),
        "fused+channels-last": (copy.deepcopy(fused).to(memory_format=torch.channels_last),
                                model.dummy_inputs(batch)[0].contiguous(memory_format=torch.channels_last)),
        "model": (optimize_for_inference(model),
                  model.dummy_inputs(batch)[0].contiguous(memory_format=torch.channels_last)),
    }
    for m, x in runs.values():  # warm-up
        time_once(m, x, "eager")
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, (m, x) in runs.items():
            times[k].append(time_once(m, x, "eager")[0])
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    """Profile and append the report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults (throughput.py doc)")
    args = ap.parse_args()
    unknown = [m for m in args.models if m not in posetokens.list_models()]
    if unknown:
        ap.error(f"--models: unknown {', '.join(unknown)} (`posetokens models` lists them)")
    torch.set_num_threads(args.threads)
    allocator = setup_allocator(args.system_malloc)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## stem_profile.py — {now}",
        "",
        f"Machine: {cpu_name()}, {torch.get_num_threads()} intra-op thread(s), {platform.system()} "
        f"{platform.machine()}, torch {torch.__version__}, CPU, {allocator}. Batch {args.batch}, median of {args.rounds} "
        "interleaved rounds, calling-thread CPU ms per batch. Model = the `optimize_for_inference` copy.",
        "",
        "| model | stem eager | stem fused | stem fused+channels-last | whole model | stem share | stem speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.models:
        t = profile(name, args.batch, args.rounds)
        best = min(t["fused"], t["fused+channels-last"])
        lines.append(f"| {name} | {t['eager'] * 1e3:.1f} | {t['fused'] * 1e3:.1f} | "
                     f"{t['fused+channels-last'] * 1e3:.1f} | {t['model'] * 1e3:.1f} | "
                     f"{t['fused+channels-last'] / t['model']:.0%} | {t['eager'] / best:.2f}x |")
        print(f"done: {name}", flush=True)
    append_report("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
