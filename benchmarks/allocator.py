"""What ``posetokens.runtime.retain_freed_memory`` buys: glibc's defaults against freed memory kept, in one run.

    python benchmarks/allocator.py                      # PPT-S: inference at batch 32, a training step at 16
    python benchmarks/allocator.py --model tokenpose_b_coco_256x192 --rounds 5

The allocator setting is per process, so each measurement runs in a child process, alternating between
``POSETOKENS_SYSTEM_MALLOC=1`` (glibc's defaults) and the library's setting. A child times an inference batch
on the ``optimize_for_inference`` copy and a training step (forward, MSE to zero, backward, Adam), each after
one warm-up, as the calling thread's CPU time with one intra-op thread. The report gives the median over
rounds and is appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from throughput import append_report, cpu_name, report_path


def child(model_name: str, infer_batch: int, train_batch: int) -> dict[str, float | bool]:
    """Body of a child process: seconds of one inference batch and one training step."""
    import torch

    import posetokens
    from posetokens.layers import optimize_for_inference
    from posetokens.runtime import retain_freed_memory

    applied = retain_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = posetokens.create_model(model_name)
    fast = optimize_for_inference(model)
    (x,) = model.dummy_inputs(infer_batch)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast(x)
        t0 = time.thread_time()
        fast(x)
        infer = time.thread_time() - t0
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    (xt,) = model.dummy_inputs(train_batch)

    def step() -> float:
        t0 = time.thread_time()
        model(xt).float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.thread_time() - t0

    step()
    return {"applied": applied, "infer_s": infer, "train_step_s": step()}


def main() -> None:
    """Alternate the two settings in child processes and append the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="ppt_s_coco_256x192")
    ap.add_argument("--infer-batch", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.infer_batch, args.train_batch)))
        return
    settings = {"glibc defaults": "1", "freed memory retained": "0"}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in settings}
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--infer-batch", str(args.infer_batch),
           "--train-batch", str(args.train_batch)]
    for _ in range(args.rounds):
        for label, flag in settings.items():
            env = {**os.environ, "POSETOKENS_SYSTEM_MALLOC": flag}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            samples[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{label}: {samples[label][-1]}", flush=True)
    med = {k: {m: statistics.median(s[m] for s in v) for m in ("infer_s", "train_step_s")} for k, v in samples.items()}
    base, tuned = med["glibc defaults"], med["freed memory retained"]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## allocator.py — {stamp}", "",
             f"Machine: {cpu_name()}, 1 intra-op thread. {args.model}: inference batch {args.infer_batch} "
             f"(optimize_for_inference copy), training step batch {args.train_batch}. Child processes alternate the "
             f"two settings; median calling-thread CPU seconds over {args.rounds} rounds.", "",
             "| allocator | inference s/batch | img/s | training s/step |", "|---|---|---|---|"]
    for label, m in med.items():
        lines.append(f"| {label} | {m['infer_s']:.3f} | {args.infer_batch / m['infer_s']:.1f} | {m['train_step_s']:.3f} |")
    applied = all(s["applied"] for s in samples["freed memory retained"])
    lines += ["", f"Speed-up from retaining freed memory: inference {base['infer_s'] / tuned['infer_s']:.2f}x, "
              f"training step {base['train_step_s'] / tuned['train_step_s']:.2f}x"
              + ("" if applied else " (NOT applied on this platform: the two rows measure the same thing)") + ".", ""]
    append_report("\n".join(lines), args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
