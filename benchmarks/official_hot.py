"""HoT's speed-ups in the official HoT code and in ours, timed side by side in one run, appended to RESULTS.md.

    pip install einops                                   # the official model files import it
    git clone https://github.com/NationalGAILab/HoT /path/to/HoT
    python benchmarks/official_hot.py --hot-repo /path/to/HoT                       # batch 8, 3 rounds
    python benchmarks/official_hot.py --hot-repo /path/to/HoT --pairs mixste --batches 1 8 --rounds 5

Issue 8 quotes the official code at 1.80x (HoT-MixSTE over MixSTE) and 2.18x (HoT-MotionBERT over MotionBERT)
at batch 8. The spec (section 0) took those from a single pair on a host with a load average of 8-10, with 2
threads and process CPU time. This
script measures the official figure and ours in the same process, the same way: it imports the official
model files from the checkout you name (``model/mixste/{mixste,hot_mixste}.py``,
``model/motionbert/{motionbert,hot_motionbert}.py`` and ``model/mhformer/{mhformer,tpc_mhformer}.py``; nothing of
them is copied into posetokens), builds them with the hyperparameters of their own ``__main__`` blocks (MHFormer:
``common/arguments.py``'s defaults at 351 frames, 117 kept before SHR block 1, as in the HoT paper), converts their random weights into our zoo models
with the library's checkpoint converter, and checks that the two give the same output on the timed input
(for HoT, our model is given the frames the official clustering kept, since the official code breaks density
ties with random noise; see the parity fixture README). A gap over the tolerance the fixture READMEs set for a
re-implementation (1e-5 for MixSTE and MotionBERT, 1e-4 for MHFormer; ``posetokens parity`` uses them too) stops
the run.

Timing is that of ``throughput.py``: one intra-op thread, the calling thread's CPU time, every model once
per round (interleaved, the order rotated by one model each round), the median over rounds, and ``retain_freed_memory`` for the whole process unless
``--system-malloc``. Ratios are taken inside the run.

The official files import ``DropPath`` and ``trunc_normal_`` from timm, which cannot be installed here (it
needs torchvision, which has no CPU wheel). When timm is not importable, a stand-in module supplies those two
names: ``DropPath`` is the identity (as timm's is in eval mode) and ``trunc_normal_`` is torch's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch
from throughput import append_report, cpu_name, report_path, rotated, setup_allocator
from torch import nn

import posetokens
from posetokens.convert import load_weights
from posetokens.layers import optimize_for_inference
from posetokens.parity.mixste import README_ATOL as TOLERANCE
from posetokens.registry import get_entry

# pair -> (official base file, official HoT file, our base model, our HoT model)
PAIRS = {
    "mixste": ("model/mixste/mixste.py", "model/mixste/hot_mixste.py", "mixste_h36m_243", "hot_mixste_h36m_243"),
    "motionbert": ("model/motionbert/motionbert.py", "model/motionbert/hot_motionbert.py",
                   "motionbert_h36m_243", "hot_motionbert_h36m_243"),
    "mhformer": ("model/mhformer/mhformer.py", "model/mhformer/tpc_mhformer.py", "mhformer_h36m_351",
                 "tpc_mhformer_h36m_351"),  # HoT's pruning-only variant (TPC, seq2frame)
}
# The values of the official files' ``__main__`` blocks (HoT-MotionBERT hard-codes its own).
OFFICIAL_ARGS = argparse.Namespace(layers=8, channel=512, d_hid=1024, frames=243, n_joints=17, out_joints=17,
                                   token_num=81, layer_index=3, maxlen=243)
# MHFormer: common/arguments.py's defaults with the TPC-MHFormer setting of the HoT paper and of our zoo model
# (351 frames, 117 kept before SHR block 1)
ARGS = {"mixste": OFFICIAL_ARGS, "motionbert": OFFICIAL_ARGS,
        "mhformer": argparse.Namespace(channel=512, d_hid=1024, frames=351, n_joints=17, out_joints=17,
                                       token_num=117, layer_index=1)}
TOLERANCES = {"mixste": TOLERANCE, "motionbert": TOLERANCE,
              "mhformer": 1e-4}  # the MHFormer fixture README's tolerance for a re-implementation (fused SDPA)


def _stand_in_timm() -> None:
    """Register ``timm.models.layers`` with DropPath (identity) and trunc_normal_ when timm is missing."""
    try:
        import timm.models.layers
        return
    except ImportError:
        pass

    class DropPath(nn.Module):
        """Stand-in for timm's DropPath: the identity, which is what timm's does in eval mode."""

        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.trunc_normal_ = DropPath, nn.init.trunc_normal_
    models = types.ModuleType("timm.models")
    models.layers = layers
    timm = types.ModuleType("timm")
    timm.models = models
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})


def official_model(repo: Path, rel: str, args: argparse.Namespace = OFFICIAL_ARGS) -> tuple[nn.Module, types.ModuleType]:
    """Build the ``Model`` class of the official file ``repo/rel`` with ``args`` (eval mode); also the module. The
    checkout's root is on ``sys.path`` meanwhile (the MHFormer files import ``model.mhformer.module``)."""
    path = repo / rel
    if not path.is_file():
        raise FileNotFoundError(f"--hot-repo {repo}: {rel} not found; expected a checkout of NationalGAILab/HoT")
    spec = importlib.util.spec_from_file_location(f"official_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(repo))
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the HoT-MotionBERT constructor prints its settings
            spec.loader.exec_module(module)
            torch.manual_seed(0)
            return module.Model(args).eval(), module
    finally:
        sys.path.remove(str(repo))


def output_gap(official: nn.Module, module: types.ModuleType, ours: nn.Module, x: torch.Tensor) -> float:
    """Max abs difference of the two outputs; HoT's kept frames are read off the official clustering (or off the
    official output, which TPC-MHFormer returns as ``(frames, index)``)."""
    kept: dict[str, torch.Tensor] = {}
    cluster = getattr(module, "cluster_dpc_knn", None)
    if cluster is not None:
        def spy(*args, **kwargs):
            out = cluster(*args, **kwargs)
            kept["index"] = out[0]
            return out

        module.cluster_dpc_knn = spy
    try:
        out_official = official(x)
    finally:
        if cluster is not None:
            module.cluster_dpc_knn = cluster
    if isinstance(out_official, tuple):  # TPC-MHFormer: (kept frames' poses, their indices)
        out_official, kept["index"] = out_official
    if getattr(ours.cfg, "prune", None) is not None and ours.cfg.prune.active and not kept:
        raise RuntimeError(f"{module.__file__}: no cluster_dpc_knn call recorded, so the kept frames are unknown")
    out_ours = ours(x, keep_index=kept["index"]) if kept else ours(x)
    if out_ours.shape[1] == 1 < out_official.shape[1]:  # MHFormer (seq2frame): ours returns the centre frame its
        c = (out_official.shape[1] - 1) // 2           # test scores, the official code every frame
        out_official = out_official[:, c : c + 1]
    return (out_official - out_ours).abs().max().item()


def repo_commit(repo: Path) -> str:
    """The checkout's short commit, or "commit unknown" (an exported tree, or a folder inside another repository)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel", "--short", "HEAD"],
                             check=False, capture_output=True, text=True)
    except OSError:
        return "commit unknown"
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != repo.resolve():
        return "commit unknown"
    return lines[1]


def bench(repo: Path, pair: str, batch: int, rounds: int) -> dict:
    """Time the official and our base and HoT models of ``pair``, interleaved; medians and output checks."""
    files_and_names = PAIRS[pair]
    models: dict[str, nn.Module] = {}
    modules: dict[str, types.ModuleType] = {}
    for rel, name in zip(files_and_names[:2], files_and_names[2:]):
        official, modules[name] = official_model(repo, rel, ARGS[pair])
        ours = posetokens.create_model(name).eval()
        load_weights(ours, official.state_dict(), get_entry(name).family, source=f"{repo.name}/{rel}")
        ours = optimize_for_inference(ours, channels_last=False)  # what `lift` runs: fused Linear layers
        models[f"official {name}"], models[f"ours {name}"] = official, ours
    (x,) = posetokens.create_model(files_and_names[2]).dummy_inputs(batch)
    diffs, samples = {}, {k: [] for k in models}
    with torch.inference_mode():
        for name in files_and_names[2:]:  # warm-up, and the same output from both
            diffs[name] = output_gap(models[f"official {name}"], modules[name], models[f"ours {name}"], x)
            if not diffs[name] <= TOLERANCES[pair]:
                raise RuntimeError(f"{name}: official and our outputs differ by {diffs[name]:.2e} "
                                   f"(> {TOLERANCES[pair]:g})")
        order = list(models.items())
        for r in range(rounds):
            for key, m in rotated(order, r):
                c0 = time.thread_time()
                m(x)
                samples[key].append(time.thread_time() - c0)
    return {"pair": pair, "batch": batch, "names": files_and_names[2:], "diffs": diffs,
            "cpu_s": {k: statistics.median(v) for k, v in samples.items()}}


def report(results: list[dict], repo: Path, rounds: int, allocator: str) -> str:
    """Markdown section: per-model times and, per pair, the speed-up of HoT in each code base."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## official_hot.py — {now}",
        "",
        (f"Machine: {cpu_name()}, {torch.get_num_threads()} intra-op thread, {platform.system()} {platform.machine()}, "
        f"torch {torch.__version__}, CPU, {allocator}. Official code: NationalGAILab/HoT model files at {repo} "
        f"({repo_commit(repo)}). Median calling-thread CPU time over {rounds} interleaved rounds; "
        "both code bases run the same weights on the same input."),
        "",
        "| model | batch | official s/batch | ours s/batch | ours faster by | max abs output diff |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["cpu_s"]
        for name in r["names"]:
            o, u = t[f"official {name}"], t[f"ours {name}"]
            lines.append(f"| {name} | {r['batch']} | {o:.2f} | {u:.2f} | {o / u:.2f}x | {r['diffs'][name]:.1e} |")
    lines += ["", "| pair | batch | HoT speed-up, official code | HoT speed-up, ours |", "|---|---|---|---|"]
    for r in results:
        t, (base, hot) = r["cpu_s"], r["names"]
        lines.append(f"| {hot} / {base} | {r['batch']} | {t[f'official {base}'] / t[f'official {hot}']:.2f}x | "
                     f"{t[f'ours {base}'] / t[f'ours {hot}']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the side-by-side timing and append its report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hot-repo", type=Path, required=True, help="a checkout of github.com/NationalGAILab/HoT")
    ap.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--batches", nargs="+", type=int, default=[8])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults (see throughput.py)")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    if importlib.util.find_spec("einops") is None:
        raise SystemExit("the official HoT model files import einops: pip install einops")
    missing = [rel for pair in args.pairs for rel in PAIRS[pair][:2] if not (args.hot_repo / rel).is_file()]
    if missing:  # before any timing: one line, not a traceback halfway through the run
        raise SystemExit(f"official_hot.py: --hot-repo {args.hot_repo}: {missing[0]} not found; expected a checkout "
                         "of NationalGAILab/HoT (git clone https://github.com/NationalGAILab/HoT)")
    _stand_in_timm()
    torch.set_num_threads(1)
    allocator = setup_allocator(args.system_malloc)
    results = []
    for batch in args.batches:
        for pair in args.pairs:
            results.append(bench(args.hot_repo, pair, batch, args.rounds))
            print(f"done: {pair}, batch {batch}", flush=True)
    append_report(report(results, args.hot_repo, args.rounds, allocator), args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
