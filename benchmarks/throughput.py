"""Throughput of pruned models against their unpruned twins, in one run, appended to benchmarks/RESULTS.md.

    python benchmarks/throughput.py                 # PPT-S vs TokenPose-S, PPT-B vs TokenPose-B, batch 1 and 32
    python benchmarks/throughput.py --pairs s --batches 1 --rounds 3
    python benchmarks/throughput.py --pairs hot_mixste hot_motionbert --batches 1 8   # frames/s of HoT
    python benchmarks/throughput.py --pairs hot_motionagformer --batches 1 --rounds 5   # HoT w. MotionAGFormer-B
    python benchmarks/throughput.py --pairs gtpt_coco gtpt_wholebody --variants optimized   # GTPT (issue 7)
    python benchmarks/throughput.py --pairs l_d6 s_mpii --batches 32 --variants optimized   # the other PPT twins
    python benchmarks/throughput.py --pairs multiview tpc_mixste tpc_mhformer --batches 8 --variants optimized

A group is a reference model and the models compared with it (``PAIRS``; a model is a zoo name, or a name
with config overrides such as GTPT with every keep rate 1). Models of one family share one set of random
weights (the pruned model's extra parameters stay random); other families get their own. Image models
report images/s, the multi-view pair samples/s (4 views and their camera rays each), video lifters frames/s (clips
x input frames, whatever a clip outputs: a seq2frame model such as MHFormer predicts one frame per clip; the
speed-ups are per clip either way). A model of several inputs (multi-view) is not run through onnxruntime or
``optimized-bf16``. Execution paths timed for every model:

* ``eager``: the model as built (fused SDPA attention, BatchNorm separate, NCHW);
* ``optimized``: ``optimize_for_inference`` (conv-BN folded, channels-last for images, every Linear fused with its
  bias and an MLP's GELU in one oneDNN call), the inference path of the library (``PoseEstimator``, ``lift``);
* ``explicit-attn``: ``optimized`` with attention written out as softmax(q k^T) v, the way the official
  TokenPose/PPT code computes it with two einsums (the hand-written baseline);
* ``optimized-bf16`` (only when asked for with ``--variants``): ``optimized`` cast to bfloat16, input too.
  It is fast on CPUs with AVX512-BF16 or AMX; its accuracy is not checked here.
* ``optimized-bf16-gemm`` (only when asked for): ``optimized`` with every Linear and 2-D convolution in oneDNN's
  bfloat16 math mode (``gemm_in_bfloat16``), what ``--precision bf16-gemm`` runs and PCT's and the lifters' default on
  a CPU with AMX; refused where oneDNN ignores the mode (an AMD EPYC with AVX512-BF16 alone).
* ``after-backbone`` (only when asked for; image models that declare an ``image_backbone``): ``optimized`` with
  that backbone (GTPT's ShuffleNet stem, PPT's HRNet) replaced by a replay of its output, computed once. A pruned
  model and its twin run the same backbone, so this times what pruning changes: its speed-up is set beside the
  true-MAC ratio without the backbone's MACs.
* ``onnxruntime`` (only when asked for; image models): ``optimized`` exported once and run by onnxruntime
  with the intra-op thread count of the run (``prepare(..., "fp32/onnxruntime")``), which is what the
  library's default runtime ``fp32/auto`` runs for an image model with trained weights on a CPU where it beats
  eager (auto races the two at the first call). The graph
  is cached where the library caches it (``POSETOKENS_CACHE``).

The process first calls ``posetokens.runtime.retain_freed_memory`` (glibc keeps freed memory instead of
unmapping every buffer over 32 MiB), the setting the library's train/test/infer commands use; pass
``--system-malloc`` to time glibc's defaults instead.

Timing: the host may be shared, so the robust figure is the CPU time of the calling thread with a fixed
number of intra-op threads (default 1), the median over interleaved rounds (every model and variant once per
round, the order rotated by one each round, so that no model always runs right after the same other one).
Wall-clock medians are reported beside it. Speed claims are ratios inside one run. Each speed-up is set beside
the pair's true-MAC ratio (``engine.flops.true_macs``, attention included, counted at batch 1), and beside the
middle half of its per-round speed-ups (the reference's time over the model's in the same round): where that range
spans the ratio, the run cannot tell whether the model is above or below it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import posetokens
from posetokens.engine.flops import true_macs
from posetokens.inference.precision import image_backbone
from posetokens.inference.precision import prepare as prepare_runtime
from posetokens.layers import gemm_in_bfloat16, optimize_for_inference, use_fused_attn
from posetokens.runtime import cpu_fields, malloc_is_glibc, retain_freed_memory

_NO_PRUNING = {"keep_rate": (1.0,) * 12}  # GTPT with every keep rate 1: its unpruned branch
PAIRS: dict[str, tuple] = {  # reference first, then the models compared with it
    "s": ("tokenpose_s_coco_256x192", "ppt_s_coco_256x192"),
    "b": ("tokenpose_b_coco_256x192", "ppt_b_coco_256x192"),
    "hot_mixste": ("mixste_h36m_243", "hot_mixste_h36m_243"),
    "hot_motionbert": ("motionbert_h36m_243", "hot_motionbert_h36m_243"),
    "hot_motionagformer": ("motionagformer_b_h36m_243", "hot_motionagformer_b_h36m_243"),
    "tpc_mixste": ("mixste_h36m_243", "tpc_mixste_h36m_243"),  # HoT's pruning-only (seq2frame) variants
    "tpc_mhformer": ("mhformer_h36m_351", "tpc_mhformer_h36m_351"),
    "l_d6": ("tokenpose_l_d6_coco_256x192", "ppt_l_d6_coco_256x192"),
    "s_mpii": ("tokenpose_s_mpii_256x256", "ppt_s_mpii_256x256"),
    "multiview": ("tokenpose_multiview_h36m_256x256", "ppt_multiview_h36m_256x256"),  # a batch item: 4 views, rays
    "gtpt_coco": ("tokenpose_s_coco_256x192", "ppt_s_coco_256x192", "gtpt_t_coco_256x192", "gtpt_s_coco_256x192",
                  "gtpt_b_coco_256x192"),
    "gtpt_t": (("gtpt_t_coco_256x192", _NO_PRUNING), "gtpt_t_coco_256x192"),  # GTPT-T over its unpruned twin
    "gtpt_s": (("gtpt_s_coco_256x192", _NO_PRUNING), "gtpt_s_coco_256x192"),
    "gtpt_b": (("gtpt_b_coco_256x192", _NO_PRUNING), "gtpt_b_coco_256x192"),
    "gtpt_wholebody": tuple(x for v in "tsb" for x in ((f"gtpt_{v}_wholebody_256x192", _NO_PRUNING),
                                                       f"gtpt_{v}_wholebody_256x192")),
}


def _spec(entry: Any) -> tuple[str, dict]:
    """(zoo name, overrides) of a ``PAIRS`` entry."""
    return (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))


def _label(entry: Any) -> str:
    name, over = _spec(entry)
    return name + (" (unpruned)" if over == _NO_PRUNING else "")


def _comparisons(key: str) -> list[tuple[Any, Any]]:
    """(reference, model) pairs reported for a group: unpruned/pruned twins pairwise when the group lists
    twins (``gtpt_wholebody``), else every model against the first."""
    group = PAIRS[key]
    if key == "gtpt_wholebody":
        return [(group[i], group[i + 1]) for i in range(0, len(group), 2)]
    return [(group[0], m) for m in group[1:]] + [(group[1], m) for m in group[2:]]
VARIANTS = ("eager", "optimized", "explicit-attn", "optimized-bf16", "optimized-bf16-gemm", "onnxruntime",
            "after-backbone")
DEFAULT_VARIANTS = VARIANTS[:3]
VIDEO_VARIANTS = ("eager", "optimized", "explicit-attn")  # optimized: what `lift` runs (fused Linear layers)
IMAGE_ONLY = ("optimized-bf16", "onnxruntime", "after-backbone")
MULTI_INPUT_SKIP = ("optimized-bf16", "onnxruntime")  # not written for a model of several inputs (multi-view)


class _Replay(torch.nn.Module):
    """Stands in for an image backbone: returns the output it was given, whatever the input (``after-backbone``).
    Other attributes are read from the backbone it replaces (GTPT asks its stem whether it ends in a block)."""

    def __init__(self, out: Any, replaced: torch.nn.Module) -> None:
        super().__init__()
        self.out = out
        object.__setattr__(self, "_replaced", replaced)  # not a submodule: its parameters are not the model's

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.out

    def __getattr__(self, name: str) -> Any:
        """A submodule, parameter or buffer of the replay, else the replaced backbone's attribute."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_replaced"), name)


def _backbone_calls(model: torch.nn.Module, inputs: tuple) -> list[tuple[tuple, Any]]:
    """(inputs, output) of every call of ``model``'s declared image backbone during one forward pass on ``inputs``
    (a multi-view model calls it on its views, not on its own inputs); ``[]`` for a model that declares none."""
    attr = image_backbone(model)
    if attr is None:
        return []
    calls: list[tuple[tuple, Any]] = []
    hook = getattr(model, attr).register_forward_hook(lambda _m, args, out: calls.append((args, out)))
    try:
        with torch.inference_mode():
            model(*inputs)
    finally:
        hook.remove()
    return calls


_MACS: dict[str, tuple[int, int]] = {}  # label -> MACs, counted once per process (they do not depend on the batch)


def _macs(label: str, model: torch.nn.Module) -> tuple[int, int]:
    """True MACs of one item (batch 1): the whole model, and what its declared image backbone does of them (0
    without one)."""
    if label not in _MACS:
        inputs = model.dummy_inputs(1)
        backbone = getattr(model, image_backbone(model) or "", None)
        _MACS[label] = (true_macs(model, inputs),
                        sum(true_macs(backbone, args) for args, _ in _backbone_calls(model, inputs)))
    return _MACS[label]


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo with its family, model and stepping numbers (a virtual machine often
    names only the vendor line, "AMD EPYC", for CPUs that run these benchmarks at different speeds); else the
    platform string."""
    fields = cpu_fields()
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    numbers = ", ".join(f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if fields.get(k))
    return f"{name} ({numbers})" if numbers else name


def run(main: Callable[[], int | None]) -> None:
    """Run a benchmark's ``main`` as the script's entry point: Ctrl-C ends it in one line (exit 130), saying
    that reports printed above were appended and the one in progress was not."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\nbenchmark: interrupted; reports printed above were appended, the one in progress was not",
              file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code or 0)


def setup_allocator(system_malloc: bool) -> str:
    """Apply ``retain_freed_memory`` unless ``system_malloc``; a phrase naming the allocator setting."""
    if not system_malloc and retain_freed_memory():
        return "glibc malloc with freed memory retained (posetokens.runtime)"
    if malloc_is_glibc():
        return "glibc malloc defaults"
    preload = os.environ.get("LD_PRELOAD", "")
    return f"a preloaded allocator (LD_PRELOAD={preload})" if preload else "the system allocator"


def report_path(text: str) -> Path:
    """``--out``'s type: the markdown file a report is appended to, checked before a long run rather than after
    it (argparse turns the ``ArgumentTypeError`` into one usage line; the default is a string, so it is checked
    too)."""
    out = Path(text).expanduser()
    if out.is_dir():
        raise argparse.ArgumentTypeError(f"{out} is a folder; expected the markdown file to append the report to")
    if out.suffix.lower() != ".md":  # a report appended to a data file (detections json, a checkpoint) ruins it
        raise argparse.ArgumentTypeError(f"{out}: expected a markdown file ending in .md to append the report to")
    folder = out.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{out}: the folder {folder} does not exist")
    if not os.access(out if out.exists() else folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"{out}: cannot be written (permissions)")
    return out


def append_report(text: str, out: Path) -> None:
    """Print a benchmark's markdown report and append it to ``out`` (benchmarks/RESULTS.md by default).

    An ``out`` that cannot be written ends the run with one line, after the report is printed and kept in a
    file of the temporary folder: a long run is never lost to a mistyped path."""
    print(text)
    try:
        with out.open("a") as f:
            f.write("\n" + text)
    except OSError as e:
        keep = Path(tempfile.gettempdir()) / f"posetokens-report-{dt.datetime.now():%Y%m%d-%H%M%S}.md"
        keep.write_text(text)
        raise SystemExit(f"benchmark: cannot append to {out} ({e.strerror or e}); the report is printed above "
                         f"and kept in {keep}") from None


def rotated(items: list, r: int) -> list:
    """``items`` rotated left by ``r`` (modulo its length): round ``r``'s order, so that each item in turn runs first
    and none always follows the same other one (a heavy model before a light one can slow it: caches, clocks)."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def time_once(model: torch.nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...], variant: str) -> tuple[float, float]:
    """(thread CPU seconds, wall seconds) of one forward pass on ``x`` (a tuple: the model's several inputs)."""
    inputs = x if isinstance(x, tuple) else (x,)
    with torch.inference_mode(), use_fused_attn(variant != "explicit-attn"):
        c0, w0 = time.thread_time(), time.perf_counter()
        model(*inputs)
        return time.thread_time() - c0, time.perf_counter() - w0


def bench_pair(key: str, batch: int, rounds: int, only: tuple[str, ...] = ()) -> tuple[list[dict], list[str]]:
    """Time every model of a group in every variant, interleaved; return one row per (model, variant), and one
    line for each asked-for variant that was not run, with why."""
    built: dict[str, torch.nn.Module] = {}
    first_by_family: dict[str, torch.nn.Module] = {}
    for entry in PAIRS[key]:
        name, over = _spec(entry)
        torch.manual_seed(0)
        m = posetokens.create_model(name, **over).eval()
        ref = first_by_family.setdefault(type(m).__name__, m)
        if ref is not m:
            try:  # shared weights within a family; the pruned model's extras stay random
                m.load_state_dict(ref.state_dict(), strict=False)
            except RuntimeError:  # sizes differ (another variant of the family): its own random weights
                pass
        built[_label(entry)] = m
    base = next(iter(built.values()))
    video = base.task == "lifting"
    default = VIDEO_VARIANTS if video else DEFAULT_VARIANTS
    skipped: list[str] = []
    variants = tuple(v for v in (VARIANTS if only else default) if not only or v in only)
    if video and any(v in IMAGE_ONLY for v in variants):
        skipped += [f"{v} for pair {key}: image models only" for v in variants if v in IMAGE_ONLY]
        variants = tuple(v for v in variants if v not in IMAGE_ONLY)
    x, *extra = base.dummy_inputs(batch)  # a multi-view model also takes its camera rays
    if extra and any(v in MULTI_INPUT_SKIP for v in variants):
        skipped += [f"{v} for pair {key}: single-input models only" for v in variants if v in MULTI_INPUT_SKIP]
        variants = tuple(v for v in variants if v not in MULTI_INPUT_SKIP)
    x_cl = x if video or x.dim() != 4 else x.contiguous(memory_format=torch.channels_last)
    if "after-backbone" in variants:  # every model must call its declared backbone exactly once per forward
        counts = {name: len(_backbone_calls(m, (x_cl[:1], *(t[:1] for t in extra)))) for name, m in built.items()}
        if any(n != 1 for n in counts.values()):
            skipped.append(f"after-backbone for pair {key}: it needs every model to call a declared image backbone "
                           f"once per forward pass; calls: {counts}")
            variants = tuple(v for v in variants if v != "after-backbone")
    macs = {name: _macs(name, m) for name, m in built.items()}

    def prepare(m: torch.nn.Module, v: str) -> torch.nn.Module:
        if v == "eager":
            return m
        fast = optimize_for_inference(m, channels_last=not video)
        if v == "onnxruntime":
            return prepare_runtime(fast, "fp32/onnxruntime", "cpu", threads=torch.get_num_threads())
        if v == "optimized-bf16-gemm":
            return gemm_in_bfloat16(fast)
        if v == "after-backbone":  # the backbone's output on this batch, replayed at every call
            ((_, feat),) = _backbone_calls(fast, (x_cl, *extra))
            attr = image_backbone(fast)
            setattr(fast, attr, _Replay(feat, getattr(fast, attr)))
        return fast.to(torch.bfloat16) if v == "optimized-bf16" else fast

    models = {(name, v): prepare(m, v) for name, m in built.items() for v in variants}
    per_item = base.cfg.num_frames if video else 1
    xs = {v: (x_cl if v != "eager" else x, *extra) for v in variants}
    if "optimized-bf16" in xs:
        xs["optimized-bf16"] = tuple(t.to(torch.bfloat16) for t in xs["optimized-bf16"])
    for (name, v), m in models.items():  # warm-up
        time_once(m, xs[v], v)
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in models}
    for r in range(rounds):
        for (name, v), m in rotated(list(models.items()), r):
            samples[(name, v)].append(time_once(m, xs[v], v))
    rows = []
    for (name, v), s in samples.items():
        cpu = statistics.median(t[0] for t in s)
        wall = statistics.median(t[1] for t in s)
        whole, backbone = macs[name]
        rows.append({"pair": key, "model": name, "variant": v, "batch": batch, "cpu_s": cpu, "wall_s": wall,
                     "cpu_rounds": [t[0] for t in s],
                     "img_s": batch * per_item / cpu, "unit": "frames/s" if video else "samples/s" if extra else "img/s",
                     "macs": whole - backbone if v == "after-backbone" else whole})
    return rows, skipped


def round_ratio_quartiles(ref: list[float], model: list[float]) -> tuple[float, float]:
    """Lower and upper quartiles of the per-round ratios ``ref[i] / model[i]`` (both timed in round ``i``): the
    middle half of what one round would have said, so a speed-up can be read against the run's own scatter."""
    if len(ref) != len(model) or not ref:
        raise ValueError(f"round_ratio_quartiles: {len(ref)} reference rounds against {len(model)}")
    ratios = sorted(a / b for a, b in zip(ref, model))
    if len(ratios) == 1:
        return ratios[0], ratios[0]
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q1, q3


def report(rows: list[dict], threads: int, rounds: dict[int, int], allocator: str = "", skipped: tuple[str, ...] = ()
           ) -> str:
    """Markdown section with machine, date, the raw table, the ratios and what was asked for but not run."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## throughput.py — {now}",
        "",
        (f"Machine: {cpu_name()}, {torch.get_num_threads()} intra-op thread(s) (requested {threads}), "
         f"{platform.system()} {platform.machine()}, torch {torch.__version__}, CPU, {allocator or 'default allocator'}. "
         f"Median over interleaved rounds ({', '.join(f'batch {b}: {r}' for b, r in rounds.items())}); "
         "img/s from the calling thread's CPU time. Per-round speed-ups: the quartiles of the reference's time over "
         "the model's in the same round, the run's own scatter."),
        "",
        "| model | path | batch | CPU ms/batch | wall ms/batch | throughput |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | {r['batch']} | {r['cpu_s'] * 1e3:.1f} | "
                     f"{r['wall_s'] * 1e3:.1f} | {r['img_s']:.1f} {r['unit']} |")
    lines += ["", "| model / reference | batch | path | speed-up over the reference | per-round speed-ups, middle half "
              "| true-MAC ratio | model fused vs model explicit-attn |", "|---|---|---|---|---|---|---|"]
    by = {(r["pair"], r["batch"], r["model"], r["variant"]): r for r in rows}
    for key in PAIRS:
        for batch in sorted({r["batch"] for r in rows if r["pair"] == key}):
            for ref_entry, entry in _comparisons(key):
                base_name, pruned_name = _label(ref_entry), _label(entry)
                variants = [v for v in VARIANTS if (key, batch, base_name, v) in by]
                fused = "optimized" if "optimized" in variants else "eager"
                for v in variants:
                    b, p = by[(key, batch, base_name, v)], by[(key, batch, pruned_name, v)]
                    e = by.get((key, batch, pruned_name, "explicit-attn"))
                    o = by.get((key, batch, pruned_name, fused))
                    vs = f"{e['cpu_s'] / o['cpu_s']:.2f}x" if e and o else "—"
                    ratio = b["macs"] / p["macs"]
                    q1, q3 = round_ratio_quartiles(b["cpu_rounds"], p["cpu_rounds"])
                    lines.append(f"| {pruned_name} / {base_name} | {batch} | {v} | {b['cpu_s'] / p['cpu_s']:.2f}x | "
                                 f"{q1:.2f}-{q3:.2f}x | {ratio:.2f} | {vs} |")
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and append its report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", nargs="+", default=["s", "b"], choices=list(PAIRS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--rounds", type=int, default=0, help="rounds per batch size (default: 9 at batch 1, 3 above)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", nargs="+", default=[], choices=list(VARIANTS),
                    help=f"only these execution paths (default: {' '.join(DEFAULT_VARIANTS)})")
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults (see the module doc)")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    if "optimized-bf16-gemm" in args.variants:
        from posetokens.layers.fuse import BF16_GEMM_NOOP, HAS_GEMM_MATH, bf16_gemm_applies

        if not HAS_GEMM_MATH:
            raise SystemExit("throughput.py: --variants optimized-bf16-gemm needs oneDNN's float32 math mode "
                             f"(PyTorch 2.9 or later with oneDNN); this is {torch.__version__}")
        if not bf16_gemm_applies():  # it would time float32 under the name (an AMD EPYC with AVX512-BF16 alone)
            raise SystemExit(f"throughput.py: --variants optimized-bf16-gemm: {BF16_GEMM_NOOP}")
    torch.set_num_threads(args.threads)
    allocator = setup_allocator(args.system_malloc)
    rows, rounds, skipped = [], {}, []
    for batch in args.batches:
        rounds[batch] = args.rounds or (9 if batch == 1 else 3)
        for key in args.pairs:
            got, not_run = bench_pair(key, batch, rounds[batch], tuple(args.variants))
            rows += got
            for line in not_run:
                print(f"benchmark: not run: {line}", file=sys.stderr)
                skipped += [line] if line not in skipped else []
            print(f"done: pair {key}, batch {batch}", flush=True)
    append_report(report(rows, args.threads, rounds, allocator, tuple(skipped)), args.out)


if __name__ == "__main__":
    run(main)
