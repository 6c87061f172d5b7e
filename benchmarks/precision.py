"""Speed and accuracy of every precision/runtime choice against float32, on trained models; appended to
benchmarks/RESULTS.md (issue 22).

    python benchmarks/precision.py --ppt /tmp/trained/ppt/final.pth --gtpt GTPT.pth --hot HOT.pth
    python benchmarks/precision.py --ppt /tmp/trained/ppt/final.pth --choices fp32/torch bf16/torch --rounds 3
    python benchmarks/precision.py --ppt PPT.pth --gtpt GTPT.pth --val /tmp/bigval  # a larger synthetic val set
    python benchmarks/precision.py --gtpt GTPT.pth --val /tmp/bigval --slices 10  # and ΔAP on 10 disjoint slices
    python benchmarks/precision.py --hot HOT.pth --motion /tmp/bigmotion  # more held-out synthetic motion
    python benchmarks/precision.py --pct PCT.pth --choices fp32/torch bf16-gemm/torch --val /tmp/bigval
    python benchmarks/precision.py --zoo ppt_s_coco_256x192 gtpt_t_coco_256x192 hot_mixste_h36m_243  # speed only

Every ``--ppt``/``--gtpt``/``--pct``/``--hot`` checkpoint is one of ours (it carries its recipe, so its own val/test
set is scored: the synthetic val set for the 2D models, held-out synthetic motion for HoT). For every
choice (:mod:`posetokens.inference.precision`), the model prepared by ``prepare`` is scored by the library's own
evaluation (COCO AP by pycocotools on the recipe's detected boxes; HoT's MPJPE protocol) and compared with
float32 eager on the same inputs: ΔAP in points (x100), ΔMPJPE in mm, and the mean keypoint shift (2D: crop
pixels of the decoded image keypoints; 3D: mm). The float32 reference is the inference path of
``PoseEstimator`` and ``lift`` (``optimize_for_inference``: conv-BN folded, channels-last for images, fused
Linear layers).

Speed: every choice of a model timed in one process on one fixed input, interleaved rounds (every choice once
per round), the median of the calling thread's CPU time with one intra-op thread (onnxruntime's session also
runs in the calling thread with one thread), as ``throughput.py`` does; ``--zoo`` adds the full-size zoo models
(random weights, speed only). The default rule: the fastest choice, over all families at once (geometric mean
of its speed-ups at the largest batch), whose |ΔAP| <= 0.1 point and |ΔMPJPE| <= 0.1 mm on every trained model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from throughput import append_report, cpu_name, report_path, setup_allocator

ALL_CHOICES = ("fp32/torch", "bf16/torch", "bf16-backbone/torch", "bf16-gemm/torch", "int8-dynamic/torch",
               "fp32/compile", "bf16/compile", "bf16-backbone/compile", "fp32/onnxruntime", "int8-dynamic/onnxruntime",
               "fp32/auto")
AP_BAR, MPJPE_BAR = 0.1, 0.1  # points, mm


def _choice(s: str) -> Any:
    from posetokens.inference.precision import parse_choice

    p, _, r = s.partition("/")
    return parse_choice(p, r or None)


def supported(choices: list[str]) -> tuple[list[str], dict[str, str]]:
    """The choices this machine can run, and why the others cannot (one line each)."""
    from posetokens.inference.precision import check_choice

    ok, why = [], {}
    for c in choices:
        try:
            check_choice(_choice(c), "cpu")
            if c.endswith("onnxruntime"):
                import onnxruntime  # noqa: F401
            ok.append(c)
        except (ValueError, ImportError) as e:
            why[c] = str(e)
    return ok, why


def load(weights: str) -> tuple[torch.nn.Module, Any, Any]:
    """(model, recipe, protocol) of a checkpoint of ours."""
    from posetokens.checkpoint import load_trained, read_description
    from posetokens.engine.config import load_config_dict
    from posetokens.engine.data import data_protocol

    meta = read_description(weights) or {}
    if "config" not in meta:
        raise ValueError(f"{weights}: not a checkpoint of ours with its recipe (written by posetokens train)")
    cfg = load_config_dict(meta["config"], f"{weights}: config")
    cfg.data.num_workers = 0
    trained = load_trained(weights)
    model = trained.model.eval()
    protocol = data_protocol(cfg.data, model, base=trained.protocol) if model.task == "topdown" else trained.protocol
    return model, cfg, protocol


def slice_files(gt_file: str, slices: int, folder: Path) -> list[tuple[Path, set[int]]]:
    """The val set's images cut into ``slices`` disjoint runs of image ids: one ground-truth file per run, with the
    run's ids."""
    gt = json.loads(Path(gt_file).read_text())
    out = []
    for k, part in enumerate(np.array_split(np.array(sorted(im["id"] for im in gt["images"])), slices)):
        keep = {int(i) for i in part}
        sub = {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
               "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
        path = folder / f"val_slice{k}.json"
        path.write_text(json.dumps(sub))
        out.append((path, keep))
    return out


def accuracy_2d(model: torch.nn.Module, cfg: Any, protocol: Any, nets: dict[str, torch.nn.Module],
                slices: int = 0) -> dict[str, dict]:
    """AP of every prepared net on the recipe's val set, its change from fp32/torch, and the mean shift of the
    image keypoints from fp32/torch's (pixels); with ``slices``, also the AP on that many disjoint slices of the
    val set's images (``slice_AP``), to show how far the change moves between val sets of that size."""
    from posetokens.data.metainfo import get_metainfo
    from posetokens.engine.data import build_samples, make_loader, model_codec
    from posetokens.engine.evaluate import coco_metrics
    from posetokens.protocols.predict import crop_to_image, predict_outputs

    metainfo = get_metainfo(cfg.data.dataset)
    codec = model_codec(protocol, model)
    samples = build_samples(cfg.data, "val", model.cfg.image_size, protocol, codec)
    batches = list(make_loader(samples, cfg.data.val_batch_size, None, 0))
    flip = list(metainfo.flip_indices)
    out: dict[str, dict] = {}
    parts: list[tuple[Path, set[int]]] = []
    tmp = tempfile.TemporaryDirectory()
    if slices:
        n = len(json.loads(Path(cfg.data.val_ann).read_text())["images"])
        if slices > n:
            raise SystemExit(f"precision.py: --slices {slices}: {cfg.data.val_ann} has {n} images; ask for at most {n}")
        parts = slice_files(cfg.data.val_ann, slices, Path(tmp.name))
        empty = [k for k, (path, _) in enumerate(parts) if not json.loads(path.read_text())["annotations"]]
        if empty:
            raise SystemExit(f"precision.py: --slices {slices}: slice(s) {empty} of {cfg.data.val_ann} hold no "
                             "person (COCOeval gives no AP there); ask for fewer slices")
    for name, net in nets.items():
        kpts, scores = [], []
        with torch.no_grad():
            for b in batches:
                x = b["image"].contiguous(memory_format=torch.channels_last)
                k, s = codec.decode(predict_outputs(net, x, protocol.test, flip))
                kpts.append(crop_to_image(np.asarray(k, np.float64), b["warp_matrix"].numpy()))
                scores.append(np.asarray(s, np.float64))
        k, s = np.concatenate(kpts), np.concatenate(scores)
        results = []
        i = 0
        for b in batches:
            for j in range(len(b["img_id"])):
                flat = np.concatenate([k[i], s[i][:, None]], axis=1).reshape(-1)
                sc = b["scale"][j].numpy()
                results.append({"image_id": int(b["img_id"][j]), "category_id": 1, "keypoints": flat.tolist(),
                                "score": float(b["bbox_score"][j]), "bbox_score": float(b["bbox_score"][j]),
                                "area": float(np.prod(sc)), "center": b["center"][j].numpy().tolist(),
                                "scale": sc.tolist()})
                i += 1
        m = coco_metrics(cfg.data.val_ann, results, metainfo, protocol.eval)
        out[name] = {"AP": 100 * m["AP"], "kpts": k}
        if parts:
            out[name]["slice_AP"] = [100 * coco_metrics(str(path), [r for r in results if r["image_id"] in keep],
                                                        metainfo, protocol.eval)["AP"] for path, keep in parts]
    tmp.cleanup()
    ref = out["fp32/torch"]
    for r in out.values():
        r["dAP"] = r["AP"] - ref["AP"]
        if "slice_AP" in r:
            r["slice_dAP"] = [a - b for a, b in zip(r["slice_AP"], ref["slice_AP"])]
        r["shift"] = float(np.linalg.norm(r["kpts"] - ref["kpts"], axis=-1).mean())
        r["shift_max"] = float(np.linalg.norm(r["kpts"] - ref["kpts"], axis=-1).max())
    return out


def accuracy_3d(model: torch.nn.Module, cfg: Any, protocol: Any, nets: dict[str, torch.nn.Module]) -> dict[str, dict]:
    """MPJPE (mm) of every prepared net on the recipe's test windows, its change from fp32/torch, and the mean
    3D shift from fp32/torch's predictions (mm)."""
    from torch.utils.data import DataLoader

    import posetokens.engine.lifting as lifting_engine
    from posetokens.protocols.predict import predict_windows

    out: dict[str, dict] = {}
    for name, net in nets.items():
        lift, flip = lifting_engine.lifting_protocol(protocol, cfg.data, model)
        dataset = lifting_engine.build_test_windows(cfg.data, model.cfg.num_frames, bool(model.is_seq2frame), lift)
        scorer = lifting_engine._ProtocolScorer(dataset, lift, ())
        preds = []
        try:
            with torch.no_grad():
                for batch in DataLoader(dataset, batch_size=cfg.data.val_batch_size, shuffle=False):
                    pred = predict_windows(net, batch["input_2d"], flip).float().cpu().numpy()
                    scorer.update(pred, batch)
                    preds.append(pred)
        except ValueError as e:  # a choice the library refuses for this model and protocol
            out[name] = {"refused": str(e)}
            continue
        m = scorer.compute()
        out[name] = {"MPJPE": m["MPJPE"], "P-MPJPE": m.get("P-MPJPE", math.nan), "pred": np.concatenate(preds)}
    ref = out["fp32/torch"]
    for r in out.values():
        if "refused" in r:
            continue
        r["dMPJPE"] = r["MPJPE"] - ref["MPJPE"]
        d = 1000.0 * np.linalg.norm(r["pred"] - ref["pred"], axis=-1)
        r["shift"], r["shift_max"] = float(d.mean()), float(d.max())
    return out


def prepare_all(model: torch.nn.Module, choices: list[str]) -> dict[str, torch.nn.Module]:
    """Every choice's prepared net of ``model``, from its ``optimize_for_inference`` copy as ``PoseEstimator`` and
    ``lift`` make it (lifters without channels-last)."""
    from posetokens.inference.precision import prepare
    from posetokens.layers import optimize_for_inference

    base = optimize_for_inference(model, channels_last=model.task == "topdown")
    nets = {}
    for c in choices:
        t0 = time.perf_counter()
        nets[c] = prepare(base, _choice(c), "cpu", threads=1)
        print(f"  prepared {c} in {time.perf_counter() - t0:.1f}s", flush=True)
    return nets


def timing(model: torch.nn.Module, nets: dict[str, torch.nn.Module], batch: int, rounds: int) -> dict[str, float]:
    """Median thread-CPU seconds of one forward at ``batch`` per choice, interleaved rounds (one warm-up each;
    torch.compile's first call compiles)."""
    (x,) = model.dummy_inputs(batch)
    lifting = model.task == "lifting"
    if not lifting:
        x = x.contiguous(memory_format=torch.channels_last)
    calls = {c: ((lambda n=n: n.forward_frames(x)) if lifting else (lambda n=n: n(x))) for c, n in nets.items()}
    with torch.no_grad():
        for f in calls.values():
            f()
            f()
        samples: dict[str, list[float]] = {c: [] for c in calls}
        for _ in range(rounds):
            for c, f in calls.items():
                t0 = time.thread_time()
                f()
                samples[c].append(time.thread_time() - t0)
    return {c: statistics.median(s) for c, s in samples.items()}


def pick_default(acc: dict[str, dict[str, dict]], speed: dict[str, dict[int, dict[str, float]]],
                 choices: list[str]) -> tuple[str, dict[str, float]]:
    """The fastest choice (geometric mean over models of its speed-up at each model's largest batch) whose |ΔAP|
    and |ΔMPJPE| stay within the bars on every trained model; and every passing choice's geometric mean."""
    passing = {}
    for c in choices:
        ok = all("refused" not in a[c] and abs(a[c].get("dAP", 0.0)) <= AP_BAR
                 and abs(a[c].get("dMPJPE", 0.0)) <= MPJPE_BAR for a in acc.values() if c in a)
        if not ok:
            continue
        ups = [s[max(s)]["fp32/torch"] / s[max(s)][c] for s in speed.values() if c in s[max(s)]]
        passing[c] = math.exp(sum(map(math.log, ups)) / len(ups)) if ups else 1.0
    best = max(passing, key=lambda c: passing[c]) if passing else "fp32/torch"
    return best, passing


def report(acc: dict[str, dict[str, dict]], speed: dict[str, dict[int, dict[str, float]]], choices: list[str],
           why_not: dict[str, str], notes: list[str], rounds: int, allocator: str) -> str:
    """The markdown section: machine line, one table per model (speed-ups and accuracy), the default."""
    import onnxruntime as ort

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (f"Machine: {cpu_name()}, 1 intra-op thread, {platform.system()} {platform.machine()}, torch "
               f"{torch.__version__}, onnxruntime {ort.__version__}, CPU, {allocator}; load average (1/5/15 min) "
               f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} at the end; speed is the calling thread's CPU "
               "time, median of "
               f"{rounds} interleaved rounds, every choice in one process. Speed-up: fp32/torch time / choice time. "
               "ΔAP in points (COCO AP x 100, pycocotools, the recipe's detected boxes); ΔMPJPE in mm (HoT's P1); "
               "shift: mean (max) distance of each keypoint from fp32/torch's (2D: image pixels, 3D: mm).")
    lines = [f"## precision.py — {now}", "", machine, ""]
    lines += [f"- {n}" for n in notes] + ([""] if notes else [])
    refusals: dict[str, list[str]] = {}
    for label in dict.fromkeys(list(acc) + list(speed)):
        sp = speed.get(label, {})
        a = acc.get(label, {})
        batches = sorted(sp)
        head = "| choice | " + " | ".join(f"speed-up b{b}" for b in batches)
        sliced = len(a.get("fp32/torch", {}).get("slice_AP", []))
        head += (" | AP | ΔAP | shift px" + (f" | ΔAP on {sliced} slices: min, median, max" if sliced else "")
                 if a and "AP" in a.get("fp32/torch", {}) else
                 " | MPJPE mm | ΔMPJPE mm | shift mm" if a else "") + " |"
        lines += [f"### {label}", "", head, "|" + "---|" * (head.count("|") - 1)]
        for c in choices:
            if c not in sp.get(batches[0], {}) and c not in a:
                continue
            row = f"| {c} | " + " | ".join(
                f"{sp[b]['fp32/torch'] / sp[b][c]:.2f}x ({1e3 * sp[b][c]:.0f} ms)" if c in sp[b] else "—"
                for b in batches)
            if c in a:
                r = a[c]
                if "refused" in r:
                    refusals.setdefault(r["refused"], []).append(c)
                    row += " | refused (below) | — | —" + (" | —" if sliced else "")
                elif "AP" in r:
                    row += f" | {r['AP']:.2f} | {r['dAP']:+.2f} | {r['shift']:.3f} ({r['shift_max']:.2f})"
                    if "slice_dAP" in r:
                        d = r["slice_dAP"]
                        row += f" | {min(d):+.2f}, {statistics.median(d):+.2f}, {max(d):+.2f}"
                else:
                    row += f" | {r['MPJPE']:.2f} | {r['dMPJPE']:+.3f} | {r['shift']:.3f} ({r['shift_max']:.2f})"
            elif a:
                row += " | — | — | —" + (" | —" if sliced else "")
            lines.append(row + " |")
        lines.append("")
        for why, which in refusals.items():
            lines += [f"Refused ({', '.join(which)}): {why}", ""]
        refusals = {}
    if why_not:
        lines += ["Not run here: " + "; ".join(f"{c}: {w}" for c, w in why_not.items()), ""]
    if acc:
        best, passing = pick_default(acc, {k: v for k, v in speed.items() if k in acc}, choices)
        lines += [f"Choices within |ΔAP| <= {AP_BAR} point and |ΔMPJPE| <= {MPJPE_BAR} mm on every trained model "
                  "above, by the geometric mean of their speed-ups at the largest batch: "
                  + ", ".join(f"{c} {g:.2f}x" for c, g in sorted(passing.items(), key=lambda t: -t[1]))
                  + f". Fastest: **{best}**.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure and append the report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ppt", help="a trained PPT checkpoint of ours (the quickstart's final.pth)")
    ap.add_argument("--tokenpose", help="a trained TokenPose checkpoint of ours (the quickstart's unpruned twin)")
    ap.add_argument("--gtpt", help="a trained GTPT checkpoint of ours")
    ap.add_argument("--pct", action="append", default=[], metavar="PATH",
                    help="a trained PCT classifier of ours (configs/pct_synthetic.yaml's final.pth; repeatable)")
    ap.add_argument("--hot", help="a trained HoT-MixSTE checkpoint of ours (synthetic motion)")
    ap.add_argument("--lifter", action="append", default=[], metavar="PATH",
                    help="another trained lifter checkpoint of ours, any family (repeatable; e.g. MotionAGFormer "
                         "from configs/motionagformer_synthetic_27.yaml)")
    ap.add_argument("--zoo", nargs="*", default=[], help="full-size zoo models timed with random weights")
    ap.add_argument("--choices", nargs="+", default=list(ALL_CHOICES))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32], help="image models (lifters: 1 and 8)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--zoo-rounds", type=int, default=3)
    ap.add_argument("--note", action="append", default=[], help="a line for the report (e.g. a missing model)")
    ap.add_argument("--no-accuracy", action="store_true", help="speed only")
    ap.add_argument("--val", type=Path, metavar="DIR",
                    help="score the 2D models on this synthetic val set (python -m posetokens.data.synthetic DIR "
                         "--num-train 1 --num-val N, at the recipe's image size) instead of their recipe's")
    ap.add_argument("--slices", type=int, default=0, metavar="N",
                    help="also score the 2D models on N disjoint slices of the val set's images, and give the "
                         "spread of each choice's ΔAP over them (how far a val set of that size moves it); "
                         "not for the lifters")
    ap.add_argument("--motion", type=Path, metavar="DIR",
                    help="score the lifters on this synthetic motion's test subjects (python -m "
                         "posetokens.data.synthetic_motion DIR --subjects S9 S11) instead of their recipe's")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    for flag, path in [(f, getattr(args, f)) for f in ("ppt", "tokenpose", "gtpt", "hot")] + [
            ("pct", p) for p in args.pct] + [("lifter", p) for p in args.lifter]:  # before any model is built or timed
        if path and not Path(path).is_file():
            ap.error(f"--{flag} {path}: no such checkpoint file (expected a .pth written by posetokens train)")
    if args.slices < 0 or args.slices and args.no_accuracy:
        ap.error(f"--slices {args.slices}: expected a positive number of slices, with the accuracy measured")
    val_files = {}
    if args.val:
        val_files = {"val_ann": args.val / "val.json", "val_img_dir": args.val / "val",
                     "val_det": args.val / "val_detections.json"}
        missing = [str(p) for p in val_files.values() if not p.exists()]
        if missing:
            ap.error(f"--val {args.val}: {', '.join(missing)} not found (expected python -m posetokens.data.synthetic "
                     "DIR's val.json, val/ and val_detections.json)")
        try:
            val = json.loads(val_files["val_ann"].read_text())
            if not (isinstance(val, dict) and isinstance(val.get("images"), list)
                    and isinstance(val.get("annotations"), list)):
                raise ValueError("not a COCO keypoint file")
        except (ValueError, UnicodeDecodeError) as e:
            ap.error(f"--val {args.val}: {val_files['val_ann']}: expected COCO keypoint JSON with 'images' and "
                     f"'annotations' lists ({str(e).splitlines()[0][:80]})")
        args.note.append(f"The 2D models were scored on {args.val} ({len(val['images'])} images, "
                         f"{len(val['annotations'])} people) instead of their recipe's val set.")
    motion_files = {}
    if args.motion:
        motion_files = {"keypoints_3d": args.motion / "data_3d_h36m.npz",
                        "keypoints_2d": args.motion / "data_2d_h36m_gt.npz", "cameras": args.motion / "cameras.json"}
        missing = [str(p) for p in motion_files.values() if not p.is_file()]
        if missing:
            ap.error(f"--motion {args.motion}: {', '.join(missing)} not found (expected python -m "
                     "posetokens.data.synthetic_motion DIR's files)")
        args.note.append(f"The lifters were scored on the test subjects of {args.motion} instead of their recipe's.")
    torch.set_num_threads(1)
    allocator = setup_allocator(False)
    import torch._dynamo.config as dynamo_config

    # several models of one class (PPT and TokenPose, the quickstart's and the zoo's) share their forward's compile
    # cache: past 8 entries dynamo would run the rest eager, unsaid
    dynamo_config.recompile_limit = 64
    if "fp32/torch" not in args.choices:
        args.choices.insert(0, "fp32/torch")
    choices, why_not = supported(args.choices)
    acc: dict[str, dict] = {}
    speed: dict[str, dict] = {}
    for label, weights in (("PPT (quickstart)", args.ppt), ("TokenPose (quickstart twin)", args.tokenpose),
                           ("GTPT-T (quickstart)", args.gtpt), *(("PCT (synthetic)", path) for path in args.pct),
                           ("HoT-MixSTE (synthetic motion)", args.hot),
                           *(("{} (synthetic motion)", path) for path in args.lifter)):
        if not weights:
            continue
        try:
            model, cfg, protocol = load(weights)
        except ValueError as e:  # not a checkpoint of ours: the library's one line
            raise SystemExit(f"precision.py: {e}") from None
        label = label.format(getattr(model, "zoo_name", type(model).__name__))
        for key, path in (val_files if model.task == "topdown" else motion_files).items():
            setattr(cfg.data, key, str(path))
        label = f"{label}: {Path(weights)}"
        print(f"{label}: preparing", flush=True)
        nets = prepare_all(model, choices)
        lifting = model.task == "lifting"
        batches = [1, 8] if lifting else args.batches
        speed[label] = {b: timing(model, nets, b, args.rounds) for b in batches}
        print(f"{label}: timed", flush=True)
        if not args.no_accuracy:
            try:
                acc[label] = (accuracy_3d(model, cfg, protocol, nets) if lifting
                              else accuracy_2d(model, cfg, protocol, nets, args.slices))
            except (ValueError, FileNotFoundError) as e:  # the library's one line on a bad data file
                raise SystemExit(f"precision.py: {label}: {str(e).splitlines()[0]}") from None
            for c, r in acc[label].items():
                print(f"  {c}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items() if isinstance(v, float)), flush=True)
    import posetokens

    for name in args.zoo:
        torch.manual_seed(0)
        model = posetokens.create_model(name).eval()
        print(f"{name}: preparing", flush=True)
        nets = prepare_all(model, choices)
        lifting = model.task == "lifting"
        batches = [1, 8] if lifting else args.batches
        speed[f"{name} (random weights, speed only)"] = {b: timing(model, nets, b, args.zoo_rounds) for b in batches}
        print(f"{name}: timed", flush=True)
    append_report(report(acc, speed, choices, why_not, args.note, args.rounds, allocator), args.out)


if __name__ == "__main__":
    from throughput import run

    with tempfile.TemporaryDirectory():
        run(main)
