"""GPU throughput of the zoo, ready to run: inference of every zoo model and training steps; appended to
benchmarks/RESULTS.md with the device name (issue 22).

    python benchmarks/gpu.py                                # CUDA: every zoo model, then the training steps
    python benchmarks/gpu.py --models ppt_s_coco_256x192 --compile-models all --max-batch 512
    python benchmarks/gpu.py --device cpu --tiny --out /tmp/gpu.md   # seconds: the CI check that it still runs

Inference, per zoo model (random weights: speed does not depend on them) and per variant: ``fp32`` (eager,
TF32 off, as PyTorch's default for matmuls), ``bf16``, ``bf16-backbone`` (image models only) and ``compile``
(float32 through ``torch.compile``), the
choices of :mod:`posetokens.inference.precision`; 2D models in their inference path (``optimize_for_inference``:
conv-BN folded, channels-last). At batch 1 and at the largest batch that fits (doubling up to ``--max-batch``
until CUDA runs out of memory). Images/s for image models, frames/s for lifters (clips x frames). torch.compile
costs a compile per model and shape, so by default only the three trained families compile
(``--compile-models all`` for every one).

Training, for PPT-S, GTPT-T and HoT-MixSTE at their recipes' batch sizes: the step (forward, the recipe's loss
through the trainer's :class:`~posetokens.engine.trainer.TrainStep`, backward, AdamW) under AMP bfloat16 with
channels-last image models, on one batch already on the device; and, separately, the data loader alone
(images/s or clips/s of the real pipeline, ``--workers`` processes) on generated synthetic data, so a data
bottleneck shows: training runs at the smaller of the two.

Timing: wall clock with ``torch.cuda.synchronize`` around ``--iters`` calls after warm-up calls (the device is
not shared). ``--tiny`` swaps in small models, a handful of images and 2 iterations, and is what the fast test
runs on the CPU; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

TRAIN_MODELS = ("ppt_s_coco_256x192", "gtpt_t_coco_256x192", "hot_mixste_h36m_243")
VARIANTS = ("fp32", "bf16", "bf16-backbone", "compile")
# --tiny: small versions of the three trained families (the CI check), with their recipes' data pipelines
TINY = {
    "ppt_s_coco_256x192": {"image_size": [64, 48], "dim": 32, "depth": 2, "heads": 2, "patch_size": [2, 2],
                           "head_hidden": 64, "prune": {"layers": [0], "keep_ratio": 0.7},
                           "backbone": {"stem_channels": 16, "num_blocks": [1, 4, 4, 4]}},
    "gtpt_t_coco_256x192": {"image_size": [64, 48], "dim": 32, "heads": 2,
                            "stem": {"stem_channels": 16, "stage_channels": [32], "blocks_per_stage": 1,
                                     "up_blocks": 1}},
    "hot_mixste_h36m_243": {"num_frames": 27, "depth": 2, "dim": 32, "prune": {"keep": 9, "layer": 1}},
}


def device_name(device: torch.device) -> str:
    """The GPU's name and memory, or the CPU's model name."""
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    from throughput import cpu_name

    return f"{cpu_name()} (CPU)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def seconds_per_call(fn: Callable[[], Any], device: torch.device, iters: int, warmup: int = 2) -> float:
    """Mean wall seconds of ``fn()`` over ``iters`` calls after ``warmup`` calls, synchronised."""
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def _caller(net: torch.nn.Module, task: str, kind: str | None) -> Callable[..., Any]:
    if task == "lifting":
        return net.forward_frames
    if kind == "coords":
        return net.predict
    return net


# ---------------------------------------------------------------------------------------------- inference
def inference_rows(name: str, overrides: dict, device: torch.device, variants: list[str], compile_it: bool,
                   max_batch: int, iters: int) -> list[dict]:
    """Throughput of one zoo model per variant at batch 1 and at the largest batch that fits."""
    import posetokens
    from posetokens.inference.precision import bf16_supported, image_backbone, prepare
    from posetokens.layers import optimize_for_inference

    torch.manual_seed(0)
    model = posetokens.create_model(name, **overrides).eval().to(device)
    task, kind = model.task, getattr(model, "output_kind", None)
    if task == "tokenizer":
        return [{"model": name, "variant": "—", "batch": "—", "note": "skipped: a PCT stage-1 tokenizer (a "
                 "training-time model)"}]
    base = optimize_for_inference(model) if task in ("topdown", "multiview") else model
    per_item = int(model.cfg.num_frames) if task == "lifting" else 1
    unit = "frames/s" if task == "lifting" else "img/s"
    rows = []
    for v in variants:
        if v == "compile" and not compile_it:
            continue
        if v in ("bf16", "bf16-backbone") and not bf16_supported(device)[0]:
            rows.append({"model": name, "variant": v, "batch": "—", "note": bf16_supported(device)[1]})
            continue
        if v == "bf16-backbone" and image_backbone(model) is None:
            rows.append({"model": name, "variant": v, "batch": "—", "note": "no image backbone (the fp32 rows)"})
            continue
        choice = {"fp32": "fp32/torch", "bf16": "bf16/torch", "bf16-backbone": "bf16-backbone/torch",
                  "compile": "fp32/compile"}[v]
        net = prepare(base, choice, device)
        call = _caller(net, task, kind)
        fits = 0
        batch, results = 1, {}
        with torch.inference_mode():
            while batch <= max_batch:
                inputs = tuple(t.to(device) for t in model.dummy_inputs(batch))
                if task in ("topdown", "multiview") and inputs[0].ndim == 4:
                    inputs = (inputs[0].contiguous(memory_format=torch.channels_last),) + inputs[1:]
                try:
                    t = seconds_per_call(lambda i=inputs, c=call: c(*i), device, iters if batch == 1 else
                                         max(1, iters // 2), warmup=1 if iters < 3 else 2)
                except Exception as e:  # noqa: BLE001 (out of memory ends the search; anything else is reported)
                    if not _is_oom(e):
                        rows.append({"model": name, "variant": v, "batch": batch,
                                     "note": f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"})
                    break
                finally:
                    del inputs
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                results[batch] = t
                fits = batch
                batch *= 2
        for b in sorted({1, fits} & set(results)):
            rows.append({"model": name, "variant": v, "batch": b, "ms": 1e3 * results[b],
                         "throughput": b * per_item / results[b], "unit": unit,
                         "note": "largest tried" if b == fits and b == max_batch else
                         ("largest that fits" if b == fits and b > 1 else "")})
        del net
    return rows


# ----------------------------------------------------------------------------------------------- training
def make_data(root: Path, tiny: bool, workers: int) -> list[str]:
    """Synthetic COCO-format people and synthetic motion under ``root``; the recipe overrides pointing at them."""
    from posetokens.data.synthetic import generate_splits
    from posetokens.data.synthetic_motion import generate_dataset

    coco = generate_splits(root / "coco", 8 if tiny else 256, 2 if tiny else 8, seed=0, workers=max(1, workers))
    motion = generate_dataset(root / "motion", subjects=("S1", "S9"), seed=0, frames=60 if tiny else 300,
                              sequences_per_action=1)
    return [f"data.train_ann={coco['train_ann']}", f"data.train_img_dir={coco['train_img_dir']}",
            f"data.val_ann={coco['val_ann']}", f"data.val_img_dir={coco['val_img_dir']}",
            f"data.val_det={coco['val_det']}", f"data.keypoints_3d={motion['3d']}",
            f"data.keypoints_2d={motion['2d']}", f"data.cameras={motion['cameras']}",
            "data.train_subjects=[S1]", "data.test_subjects=[S9]"]


def training_row(name: str, data: list[str], device: torch.device, tiny: bool, workers: int, iters: int,
                 batch: int | None, amp: str) -> dict:
    """One trained family: its training step (AMP, channels-last) on a batch on the device, and its data loader
    alone."""
    from posetokens.engine.config import load_config
    from posetokens.engine.data import build_samples, data_protocol, model_codec
    from posetokens.engine.lifting import build_lifting_set
    from posetokens.engine.trainer import TrainStep, build_model

    over = list(data) + [f"data.num_workers={workers}"]
    if tiny:
        over += [f"model.overrides={json.dumps(TINY[name])}", "data.batch_size=4"]
    if batch:
        over.append(f"data.batch_size={batch}")
    cfg = load_config(REPO / "configs" / f"{name}.yaml", over)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)
    lifting = model.task == "lifting"
    if lifting:
        samples = build_lifting_set(cfg.data, "train", model, cfg.seed)
    else:
        protocol = data_protocol(cfg.data, model)
        samples = build_samples(cfg.data, "train", model.cfg.image_size, protocol, model_codec(protocol, model),
                                cfg.seed)
    bs = cfg.data.batch_size
    loader = torch.utils.data.DataLoader(samples, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    # the loader alone: batches per second after the first (worker start-up)
    it = iter(loader)
    first = next(it)
    n, t0 = 0, time.perf_counter()
    for b in it:
        n += 1
        if n >= (2 if tiny else 20):
            break
    load_s = (time.perf_counter() - t0) / max(n, 1)
    del it
    # the step, on one batch on the device
    model = model.to(device).train()
    if not lifting:
        model = model.to(memory_format=torch.channels_last)
    step = TrainStep(model, cfg.loss)
    batch_dev = {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in first.items()}
    if not lifting:
        batch_dev["image"] = batch_dev["image"].contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    use_amp = dtype is not None and (device.type == "cuda" or dtype == torch.bfloat16)

    def train_step() -> None:
        ctx = torch.autocast(device.type, dtype=dtype) if use_amp else contextlib.nullcontext()
        with ctx:
            loss = step(batch_dev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step_s = seconds_per_call(train_step, device, iters, warmup=1 if tiny else 2)
    per_item = int(model.cfg.num_frames) if lifting else 1
    return {"model": name, "batch": bs, "amp": amp if use_amp else "off", "step_ms": 1e3 * step_s,
            "step_items": bs * per_item / step_s, "load_items": bs * per_item / load_s,
            "unit": "frames/s" if lifting else "img/s", "workers": workers}


# ------------------------------------------------------------------------------------------------- report
def report(inf: list[dict], train: list[dict], device: torch.device, args: argparse.Namespace) -> str:
    """The markdown section: device line, inference table, training table."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tf32 = torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else False
    lines = [f"## gpu.py{' --tiny' if args.tiny else ''} — {now}", "",
             f"Device: {device_name(device)}; torch {torch.__version__}, {platform.system()} {platform.machine()}; "
             f"matmul TF32 {'on' if tf32 else 'off'}. Wall clock, synchronised, mean over {args.iters} calls "
             f"(batch 1) after warm-up; largest batch by doubling up to {args.max_batch}."
             + (" Tiny mode: small models, figures meaningless (the CI check)." if args.tiny else ""), "",
             "| model | variant | batch | ms/batch | throughput | note |", "|---|---|---|---|---|---|"]
    for r in inf:
        if "ms" in r:
            lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | {r['ms']:.2f} | "
                         f"{r['throughput']:.1f} {r['unit']} | {r['note']} |")
        else:
            lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | — | — | {r['note']} |")
    if train:
        lines += ["", "| training | batch | AMP | step ms | step throughput | data loader alone | workers |",
                  "|---|---|---|---|---|---|---|"]
        for r in train:
            lines.append(f"| {r['model']} | {r['batch']} | {r['amp']} | {r['step_ms']:.1f} | "
                         f"{r['step_items']:.1f} {r['unit']} | {r['load_items']:.1f} {r['unit']} | {r['workers']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the inference and training measurements and append the report."""
    import posetokens

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="small models and data, a few iterations (the CI check)")
    ap.add_argument("--models", nargs="*", default=None, help="zoo models (default: every one; --tiny: the three "
                                                              "trained families, small)")
    ap.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                    help="default: fp32 bf16 compile (--tiny: fp32 bf16)")
    ap.add_argument("--compile-models", nargs="*", default=list(TRAIN_MODELS),
                    help="models timed through torch.compile ('all': every one)")
    ap.add_argument("--max-batch", type=int, default=None, help="largest batch tried (default 1024; --tiny 4)")
    ap.add_argument("--iters", type=int, default=None, help="timed calls (default 20; --tiny 1)")
    ap.add_argument("--train", nargs="*", default=list(TRAIN_MODELS), help="families whose training step is timed")
    ap.add_argument("--train-batch", type=int, default=None, help="default: each recipe's batch size")
    ap.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "off"])
    ap.add_argument("--workers", type=int, default=None, help="data loader processes (default: min(8, CPUs); "
                                                              "--tiny 0)")
    ap.add_argument("--minutes", type=float, default=8.0, help="stop starting new zoo models after this many "
                                                               "minutes (the rest are listed as not run)")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args(argv)
    from posetokens.runtime import check_device

    device = check_device(args.device, f"--device {args.device}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    import os

    args.max_batch = args.max_batch or (4 if args.tiny else 1024)
    args.iters = args.iters or (1 if args.tiny else 20)
    args.variants = args.variants or (["fp32", "bf16", "bf16-backbone"] if args.tiny else list(VARIANTS))
    workers = args.workers if args.workers is not None else (0 if args.tiny else min(8, os.cpu_count() or 1))
    models = args.models if args.models is not None else (list(TINY) if args.tiny else posetokens.list_models())
    compile_all = "all" in args.compile_models
    inf: list[dict] = []
    start = time.perf_counter()
    for name in models:
        if time.perf_counter() - start > 60 * args.minutes:
            inf.append({"model": name, "variant": "—", "batch": "—", "note": f"not run: past --minutes {args.minutes}"})
            continue
        t0 = time.perf_counter()
        inf += inference_rows(name, copy.deepcopy(TINY.get(name, {})) if args.tiny else {}, device, args.variants,
                              compile_all or name in args.compile_models, args.max_batch, args.iters)
        print(f"{name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    train: list[dict] = []
    if args.train:
        with tempfile.TemporaryDirectory(prefix="posetokens-gpu-") as tmp:
            data = make_data(Path(tmp), args.tiny, workers)
            for name in args.train:
                train.append(training_row(name, data, device, args.tiny, workers, args.iters, args.train_batch,
                                          args.amp))
                print(f"training {name}: done", file=sys.stderr, flush=True)
    from throughput import append_report

    append_report(report(inf, train, device, args), args.out)
    return 0


if __name__ == "__main__":
    from throughput import run

    run(main)
