"""``make quickstart``: the library's main job, on CPU in under 15 minutes.

``python -m posetokens.quickstart [--out DIR] [--model ppt] [--fast]``

1. generate a synthetic train/val set of people (deterministic seed);
2. warm-start the CNN backbone as a heatmap CNN (shared initial weights), then train a small pruned model
   (PPT) and its unpruned twin (TokenPose) from two recipes in ``configs/`` that differ only in
   ``model.overrides.prune``: same model otherwise, same initial weights, schedule, seed and data;
3. evaluate both with pycocotools (COCO AP; flip test as the recipe says) on the held-out synthetic val set;
4. print AP, GMACs and images/s (both models timed in this process, interleaved rounds);
5. write two pictures to ``DIR``: predicted skeletons on val images, and the kept visual tokens at each
   pruning layer (the PPT paper's figure);
6. end with one JSON line ``{"ppt": {"ap", "gmacs", "img_per_s"}, "tokenpose": {...}}``.

The two trainings run as two processes side by side (one intra-op thread each, ``--jobs 2``) or one after
the other with two threads each (``--jobs 1``). The warm start runs alone with two threads (1.46x faster than
one on the 2-core machine). Timing uses one thread: on a 2-core host shared with other work, 2-thread torch
ops can run several times slower than 1-thread ones (they wait on the busier core). ``--fast`` is a tiny run
that only checks the mechanics. ``--table`` prints the zoo efficiency table instead (the paper's figures
beside ours). ``--warm-start CONFIG --out FILE.pth`` only writes that recipe's warm-started initial checkpoint
(``configs/pct_synthetic.yaml`` starts from one: its Swin V2 heatmap-trained).

A pair is a :class:`Quickstart` in :data:`QUICKSTARTS`, so another pruning method joins with its own two
recipes (e.g. ``--model gtpt_t``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Quickstart:
    """A pruned model and its unpruned twin: labels (the JSON keys) and their recipe files."""

    pruned: str
    pruned_config: str
    twin: str
    twin_config: str
    seed: int = 0
    num_train: int = 2000  # synthetic images (1-3 people each, about 1.75 per image)
    num_val: int = 200
    image_size: tuple[int, int] = (320, 320)  # synthetic image (w, h)
    warmup_steps: int = 3500  # backbone warm start: steps of the CNN as a heatmap model (0: from scratch)
    warmup_lr: float = 1e-3  # its Adam learning rate (a CNN with BatchNorm takes a higher rate than the transformer)


QUICKSTARTS: dict[str, Quickstart] = {
    "ppt": Quickstart("ppt", "quickstart_ppt.yaml", "tokenpose", "quickstart_tokenpose.yaml"),
    # GTPT's ShuffleNet stem is warm-started the same way (from scratch both twins sat on the mean pose), and
    # twice as long: its small receptive field learns slower than the HRNet (README, Training GTPT)
    "gtpt_t": Quickstart("gtpt_t", "quickstart_gtpt_t.yaml", "gtpt_t_unpruned", "quickstart_gtpt_t_unpruned.yaml",
                         warmup_steps=7000),
}

# --fast: a tiny run that checks the mechanics only (data, both trainings, eval, timing, pictures, JSON)
FAST: dict[str, Any] = dict(
    num_train=24, num_val=8, warmup_steps=3,
    overrides=["schedule.epochs=1", "schedule.warmup_iters=2", "data.batch_size=8", "schedule.prune_start_epoch=0",
               "schedule.prune_decay_epochs=1"],
)
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress line on stdout, stamped with the seconds since start (the last stdout line is the JSON)."""
    print(f"[{time.perf_counter() - _T0:5.0f}s] {msg}" if msg else "", flush=True)


def find_config(name: str) -> Path:
    """A recipe in the repository's ``configs/`` folder (or ``./configs`` when installed elsewhere)."""
    for root in (REPO_CONFIGS, Path.cwd() / "configs"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"quickstart recipe {name} not found in {REPO_CONFIGS} or ./configs")


# ------------------------------------------------------------------------------------------------- data
def make_data(qs: Quickstart, root: Path, num_train: int, num_val: int, workers: int) -> dict[str, str]:
    """Generate (or reuse, when the same arguments made it) the synthetic splits under ``root``."""
    from posetokens.data.synthetic import generate_splits

    stamp = {"seed": qs.seed, "num_train": num_train, "num_val": num_val, "image_size": list(qs.image_size)}
    stamp_file = root / "quickstart_data.json"
    keys = ("train_ann", "train_img_dir", "val_ann", "val_img_dir", "val_det")
    if stamp_file.is_file() and json.loads(stamp_file.read_text()).get("stamp") == stamp:
        paths = json.loads(stamp_file.read_text())["paths"]
        if all(Path(paths[k]).exists() for k in keys):
            log(f"data: reusing {root} ({num_train} train / {num_val} val images)")
            return paths
    if root.exists():  # an earlier quickstart's data (other arguments): only what it made is deleted
        made = {stamp_file.name, "train.json", "val.json", "val_detections.json", "train", "val"}
        other = sorted(p.name for p in root.iterdir() if p.name not in made)
        if other or (any(root.iterdir()) and not stamp_file.is_file()):
            raise ValueError(f"{root} holds files the quickstart did not make ({', '.join(other) or 'no stamp file'}); "
                             "choose another --out")
        shutil.rmtree(root)
    t0 = time.perf_counter()
    out = generate_splits(root, num_train, num_val, qs.seed, image_size=qs.image_size, workers=workers)
    paths = {k: str(out[k]) for k in keys}
    stamp_file.write_text(json.dumps({"stamp": stamp, "paths": paths}))
    log(f"data: {num_train} train / {num_val} val synthetic images in {time.perf_counter() - t0:.0f}s -> {root}")
    return paths


def data_overrides(paths: dict[str, str]) -> list[str]:
    """``--set`` overrides pointing a recipe at the generated data."""
    return [f"data.{k}={v}" for k, v in paths.items()]


# ------------------------------------------------------------------------------------ backbone warm start
def warm_start(cfg: Any, steps: int, out_file: Path, threads: int, lr: float | None = None, workers: int = 0) -> Path:
    """The shared initial checkpoint of both models: the recipe's model at its seed, with its CNN (HRNet
    ``backbone`` or ShuffleNet ``stem``) first trained for ``steps`` steps as a heatmap CNN (CNN + 1x1 conv to
    K heatmaps at stride 4) on the train split. A PCT's Swin V2 is trained the same way through SimpleBaseline's
    three deconvolutions (stride 32 to 4), as the heatmap-pretrained Swin its official stage 2 starts from.

    TokenPose's and GTPT's keypoint tokens reach the visual tokens only through attention, so from a random CNN
    the model sits for thousands of steps on the mean pose; TokenPose-B/L and PPT-B/L start from a pretrained
    HRNet for the same reason (and a PCT trained from a random Swin sat at 0.1-0.3 AP points after 5 epochs,
    configs/pct_synthetic.yaml). Same data pipeline, loss and optimiser (Adam, or AdamW with the recipe's weight
    decay) as the recipe; ``lr`` (default the recipe's) and ``workers`` (data-loading processes) are the warm
    start's own.
    """
    import dataclasses

    import torch
    from torch import nn

    from posetokens.data.metainfo import get_metainfo
    from posetokens.engine.data import StepSampler, build_samples, data_protocol, make_loader
    from posetokens.engine.losses import joints_mse
    from posetokens.engine.schedule import lr_factor
    from posetokens.fileio import atomic_write
    from posetokens.protocols.codec import build_codec
    from posetokens.engine.trainer import build_model
    from posetokens.models.backbones.hrnet import HRNet
    from posetokens.models.backbones.shufflenet import ShuffleStem
    from posetokens.models.pct import PCT

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)  # the recipe's model at its seed: what train() would build
    k = get_metainfo(cfg.data.dataset).num_keypoints
    mcfg = model.cfg
    attr = getattr(model, "image_backbone", None)  # the CNN before the tokens, as the model declares it
    backbone = model.backbone if isinstance(model, PCT) else getattr(model, attr) if attr else None
    if isinstance(backbone, HRNet):
        target, cnn = backbone, HRNet(dataclasses.replace(mcfg.backbone, final_conv=k))
    elif isinstance(backbone, ShuffleStem):  # GTPT: stride-4 stem + 1x1 conv
        target = backbone
        cnn = nn.Sequential(copy.deepcopy(backbone), nn.Conv2d(backbone.out_channels, k, 1))
    elif isinstance(model, PCT) and backbone is not None:  # PCT's Swin V2 as SimpleBaseline trains it: three
        target = backbone  # deconvolutions from stride 32 to 4 (PCT's stage 2 starts from a heatmap-trained Swin)
        layers: list[nn.Module] = []
        for cin in (backbone.cfg.num_features, 256, 256):
            layers += [nn.ConvTranspose2d(cin, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True)]
        cnn = nn.Sequential(copy.deepcopy(backbone), nn.Sequential(*layers, nn.Conv2d(256, k, 1)))
        cnn.requires_grad_(True)  # the recipe's stage 2 freezes it; here it is what trains
    else:
        if steps > 0:  # said before any work; the quickstart pairs all have one
            raise ValueError(f"{cfg.model.name}: nothing to warm-start (an HRNet, a ShuffleNet stem or PCT's Swin V2 "
                             "backbone is warm-started)")
        target, cnn = None, None
    if steps > 0:
        heatmap_hw = (mcfg.image_size[0] // 4, mcfg.image_size[1] // 4)  # the CNN's stride-4 output
        protocol = data_protocol(cfg.data, model)
        if protocol.target.codec != "heatmap":  # GTPT's stem learns heatmaps here, at the stem's stride
            protocol = protocol.replace({"target": {"codec": "heatmap", "heatmap_mapping": "stride",
                                                    "weight_rule": "floor_box"}, "test": {"decode": "dark"}})
        codec = build_codec(protocol, mcfg.image_size, heatmap_hw)
        samples = build_samples(cfg.data, "train", mcfg.image_size, protocol, codec, cfg.seed)
        sampler = StepSampler(len(samples), cfg.data.batch_size, seed=cfg.seed)
        loader = make_loader(samples, cfg.data.batch_size, sampler, workers)
        lr = cfg.optim.lr if lr is None else lr
        sched = dataclasses.replace(cfg.schedule, epochs=max(1, math.ceil(steps / sampler.steps_per_epoch)))
        opt = (torch.optim.AdamW(cnn.parameters(), lr=lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
               if cfg.optim.name == "adamw" else torch.optim.Adam(cnn.parameters(), lr=lr, betas=cfg.optim.betas))
        cnn.train()
        step, epoch, t0 = 0, 0, time.perf_counter()
        while step < steps:
            sampler.set_epoch(epoch)
            samples.set_epoch(epoch)
            for batch in loader:
                for g in opt.param_groups:
                    g["lr"] = lr * lr_factor(step, sampler.steps_per_epoch, sched)
                loss = joints_mse(cnn(batch["image"]), batch["heatmaps"], batch["keypoint_weights"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if step % 200 == 0 or step == steps:
                    log(f"  backbone warm start: step {step}/{steps} loss {loss.item():.4g} "
                        f"({time.perf_counter() - t0:.0f}s)")
                if step >= steps:
                    break
            epoch += 1
        trained = cnn[0] if isinstance(cnn, nn.Sequential) else cnn
        state = {k_: v for k_, v in trained.state_dict().items() if not k_.startswith("final_layer.")}
        target.load_state_dict(state)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_file, lambda f: torch.save({"model": cfg.model.name, "state_dict": model.state_dict()}, f),
                 "the initial checkpoint")  # an interrupted warm start leaves no half-written file
    return out_file


# --------------------------------------------------------------------------------------------- training
def _train_child(config: str, overrides: list[str], log_path: str, result_path: str) -> None:
    """Body of a training process: output to ``log_path``, metrics to ``result_path``."""
    with open(log_path, "w") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True)
    try:
        from posetokens.engine.config import load_config
        from posetokens.engine.trainer import train

        cfg = load_config(config, overrides)
        t0 = time.perf_counter()
        metrics = train(cfg)
        result = {"metrics": metrics, "train_s": time.perf_counter() - t0}
    except BaseException:  # report any failure to the parent
        traceback.print_exc()
        result = {"error": traceback.format_exc()}
    Path(result_path).write_text(json.dumps(result))


def _progress(work_dir: Path) -> str:
    log_file = work_dir / "log.jsonl"
    if not log_file.is_file():
        return "starting"
    last = None
    for line in log_file.read_text().splitlines():
        rec = json.loads(line)
        if "step" in rec:
            last = rec
    if last is None:
        return "starting"
    return f"epoch {last['epoch']} step {last['step']} loss {last['loss']:.4g} keep {last['keep_ratio']:.2f}"


def archive_earlier_run(wd: Path, label: str) -> Path | None:
    """Move an earlier quickstart run in ``wd`` (any file in it) to ``archive/<name>-<time>`` beside it, so a rerun
    keeps it; returns where it went (None when there was nothing)."""
    if not wd.is_dir() or not any(wd.iterdir()):
        return None
    from posetokens.fileio import archive_path

    dest = archive_path(wd.parent, wd.name)
    wd.rename(dest)
    log(f"train {label}: the earlier run in {wd} moved to {dest}")
    return dest


def train_pair(runs: list[dict[str, Any]], jobs: int, poll_s: float = 60.0) -> None:
    """Train every run (``config``, ``overrides``, ``work_dir``) in child processes, ``jobs`` at a time."""
    ctx = mp.get_context("spawn")
    pending = list(runs)
    active: list[tuple[dict[str, Any], Any]] = []
    last_poll = time.perf_counter()
    while pending or active:
        while pending and len(active) < jobs:
            run = pending.pop(0)
            wd = Path(run["work_dir"])
            archive_earlier_run(wd, run["label"])
            wd.mkdir(parents=True, exist_ok=True)
            run["result"] = str(wd / "quickstart_result.json")
            p = ctx.Process(target=_train_child, args=(run["config"], run["overrides"], str(wd / "train.log"),
                                                       run["result"]))
            p.start()
            run["t0"] = time.perf_counter()
            active.append((run, p))
            log(f"train {run['label']}: started ({run['config'].name}, log {wd / 'train.log'})")
        time.sleep(1.0)
        for run, p in list(active):
            if p.is_alive():
                continue
            p.join()
            active.remove((run, p))
            res = json.loads(Path(run["result"]).read_text()) if Path(run["result"]).is_file() else {}
            if "metrics" not in res:
                raise RuntimeError(f"training {run['label']} failed (exit code {p.exitcode}); see "
                                   f"{Path(run['work_dir']) / 'train.log'}\n{res.get('error', '')}")
            run["metrics"], run["train_s"] = res["metrics"], res["train_s"]
            log(f"train {run['label']}: done in {run['train_s']:.0f}s, AP {run['metrics'].get('AP', float('nan')):.4f}")
        if active and time.perf_counter() - last_poll >= poll_s:
            last_poll = time.perf_counter()
            log("  " + " | ".join(f"{r['label']}: {_progress(Path(r['work_dir']))}" for r, _ in active))


# ------------------------------------------------------------------------------------- cost and timing
def measure(models: dict[str, Any], batch: int, rounds: int, threads: int) -> dict[str, dict[str, float]]:
    """GMACs (batch 1) and inference images/s (``optimize_for_inference`` copies, ``batch``, ``threads``
    intra-op threads, median wall time over ``rounds`` interleaved rounds after one warm-up)."""
    import torch

    from posetokens.engine.flops import true_macs
    from posetokens.layers import optimize_for_inference

    torch.set_num_threads(threads)
    out: dict[str, dict[str, float]] = {}
    fast: dict[str, Any] = {}
    for label, model in models.items():
        out[label] = {"gmacs": true_macs(model, model.dummy_inputs(1)) / 1e9}
        fast[label] = optimize_for_inference(model)
    x = next(iter(models.values())).dummy_inputs(batch)[0].contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in fast.values():  # warm-up
            m(x)
        for _ in range(rounds):
            for label, m in fast.items():
                t0 = time.perf_counter()
                m(x)
                times[label].append(time.perf_counter() - t0)
    for label in models:
        out[label]["img_per_s"] = batch / statistics.median(times[label])
    return out


# --------------------------------------------------------------------------------------------- pictures
def skeleton_grid(pred_file: Path, val_ann: str, img_dir: str, out: Path, num: int = 8, cols: int = 4,
                  title: str = "", kpt_thr: float = 0.3, exif_orientation: bool = True) -> None:
    """Predicted skeletons over the first ``num`` val images with a person, as one PNG grid (keypoints scored at
    least ``kpt_thr``), each image read as the predictions' protocol read it (``exif_orientation``)."""
    import cv2
    import numpy as np

    from posetokens.data.datasets.coco_style import imread_flags
    from posetokens.data.metainfo import get_metainfo
    from posetokens.inference import draw_skeleton, put_caption, tile_images

    meta = get_metainfo("coco")
    images = {im["id"]: im for im in json.loads(Path(val_ann).read_text())["images"]}
    preds: dict[int, list[dict[str, Any]]] = {}
    for p in json.loads(pred_file.read_text()):
        preds.setdefault(int(p["image_id"]), []).append(p)
    tiles = []
    for img_id in sorted(preds)[:num]:
        img = cv2.imread(str(Path(img_dir) / images[img_id]["file_name"]), imread_flags(exif_orientation))
        k = np.asarray([p["keypoints"] for p in preds[img_id]], np.float64).reshape(len(preds[img_id]), -1, 3)
        drawn = draw_skeleton(img, k[..., :2], k[..., 2], meta, kpt_thr=kpt_thr, channel_order="bgr")
        n = len(preds[img_id])
        tiles.append(put_caption(drawn, f"{title}, val image {img_id}: {n} {'person' if n == 1 else 'people'}"))
    cv2.imwrite(str(out), tile_images(tiles, cols=cols, pad=6))


def kept_patches(rec: Any, b: int) -> Any:
    """Patch ids kept by one pruning record for example ``b``: PPT's (B, K) row, or the union of GTPT's
    per-group rows (``counts[g]`` valid entries in row ``g``)."""
    import numpy as np

    idx = rec.patch_idx[b].numpy()
    if idx.ndim == 1:
        return idx
    counts = getattr(rec, "counts", ()) or (idx.shape[-1],) * idx.shape[0]
    return np.unique(np.concatenate([row[:n] for row, n in zip(idx, counts)]))


def kept_tokens_figure(model: Any, cfg: Any, out: Path, num: int = 4) -> None:
    """PPT's figure: for ``num`` val crops, the crop and the patches kept at each pruning layer."""
    import cv2
    import torch

    from posetokens.engine.data import build_samples, data_protocol, model_codec
    from posetokens.inference import denormalize_image, draw_kept_tokens, tile_images

    mcfg = model.cfg
    protocol = data_protocol(cfg.data, model)
    val = build_samples(cfg.data, "val", mcfg.image_size, protocol, model_codec(protocol, model))
    step = max(1, len(val) // num)
    picks = [val[i] for i in range(0, len(val), step)][:num]
    images = torch.stack([p["image"] for p in picks])
    model.eval()
    with torch.inference_mode():
        pruned = model.forward_tokens(images)[-1]  # the records of every pruning step
    rows = []
    for b, p in enumerate(picks):
        crop = cv2.cvtColor(denormalize_image(p["image"].numpy()), cv2.COLOR_RGB2BGR)
        kept = [kept_patches(rec, b) for rec in pruned]
        names = [f"after layer {rec.layer}" if hasattr(rec, "layer") else f"after block {rec.block}" for rec in pruned]
        rows.append(draw_kept_tokens(crop, mcfg.patch_grid, kept, names, scale=2))
    cv2.imwrite(str(out), tile_images(rows, cols=1, pad=8))


# ------------------------------------------------------------------------------------------------- main
def run(model: str = "ppt", out: str | Path = "outputs/quickstart", fast: bool = False, jobs: int = 2,
        warmup_steps: int | None = None, overrides: Sequence[str] = (), bench_batch: int = 32,
        bench_rounds: int = 7, bench_threads: int = 1) -> dict[str, dict[str, float]]:
    """The whole quickstart; returns the summary that the last stdout line prints as JSON."""
    import torch

    from posetokens.engine.config import load_config
    from posetokens.engine.data import data_protocol, model_codec
    from posetokens.engine.trainer import build_model
    from posetokens.inference import default_kpt_thr

    t_start = time.perf_counter()
    qs = QUICKSTARTS[model]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    num_train, num_val = (FAST["num_train"], FAST["num_val"]) if fast else (qs.num_train, qs.num_val)
    extra = (list(FAST["overrides"]) if fast else []) + list(overrides)  # applied to both recipes alike
    if fast:
        bench_batch, bench_rounds = 4, 1
    cpu_count = os.cpu_count() or 1
    paths = make_data(qs, out / ("data_fast" if fast else "data"), num_train, num_val, workers=min(2, cpu_count))

    # one initial checkpoint for both models
    warm_steps = FAST["warmup_steps"] if fast else qs.warmup_steps
    if warmup_steps is not None:
        warm_steps = warmup_steps
    base_cfg = load_config(find_config(qs.pruned_config), data_overrides(paths) + extra)
    t0 = time.perf_counter()
    # the warm start runs alone: two intra-op threads (1.46x faster than one), data loaded in-process
    init = warm_start(base_cfg, warm_steps, out / "init.pth", threads=min(2, cpu_count), lr=qs.warmup_lr)
    log(f"initial weights for both models: {init} (backbone warm start {warm_steps} steps, "
        f"{time.perf_counter() - t0:.0f}s)")

    # one intra-op thread per process: on a shared 2-core host, 2-thread torch ops wait on the busier core
    threads = 1 if jobs > 1 else min(2, cpu_count)
    runs = []
    for label, config in ((qs.pruned, qs.pruned_config), (qs.twin, qs.twin_config)):
        overrides = data_overrides(paths) + extra + [f"model.weights={init}", f"work_dir={out / label}",
                                                     f"threads={threads}"]
        runs.append({"label": label, "config": find_config(config), "overrides": overrides,
                     "work_dir": str(out / label)})
    log(f"training {qs.pruned} and {qs.twin}: {jobs} process(es) at a time, {threads} thread(s) each")
    train_pair(runs, jobs=jobs, poll_s=10.0 if fast else 60.0)

    # models back from their final weights; cost and speed measured here, both interleaved
    cfgs = {r["label"]: load_config(r["config"], r["overrides"]) for r in runs}
    models = {}
    for r in runs:
        cfg = cfgs[r["label"]]
        cfg.model.weights = str(Path(r["work_dir"]) / "final.pth")  # the run's own weights, loaded strictly
        cfg.model.weights_strict, cfg.model.weights_keypoints = True, None
        models[r["label"]] = build_model(cfg).eval()
    log("measuring GMACs and images/s")
    bench = measure(models, bench_batch, bench_rounds, min(bench_threads, cpu_count))
    log("drawing pictures")
    metrics = {r["label"]: r["metrics"] for r in runs}

    # pictures
    skel_png, tokens_png = out / "skeletons.png", out / "kept_tokens.png"
    proto = data_protocol(cfgs[qs.pruned].data, models[qs.pruned])
    codec = model_codec(proto, models[qs.pruned])  # the one that decoded val_predictions.json
    skeleton_grid(Path(runs[0]["work_dir"]) / "val_predictions.json", paths["val_ann"], paths["val_img_dir"],
                  skel_png, num=8, title=qs.pruned.upper(), kpt_thr=default_kpt_thr(codec.score_scale),
                  exif_orientation=proto.exif_orientation)
    kept_tokens_figure(models[qs.pruned], cfgs[qs.pruned], tokens_png, num=4)

    # report
    summary = {label: {"ap": round(float(metrics[label].get("AP", float("nan"))), 4),
                       "gmacs": round(bench[label]["gmacs"], 4),
                       "img_per_s": round(bench[label]["img_per_s"], 1)} for label in (qs.pruned, qs.twin)}
    width = max(len(k) for k in summary) + 2
    log("")
    log(f"{'model':<{width}}{'AP':>8}{'AP50':>8}{'AP75':>8}{'GMACs':>9}{'img/s':>9}{'train s':>9}")
    for r in runs:
        label, m = r["label"], metrics[r["label"]]
        ap_cols = "".join(f"{m.get(k, math.nan):>8.4f}" for k in ("AP", "AP50", "AP75"))
        b = bench[label]
        log(f"{label:<{width}}{ap_cols}{b['gmacs']:>9.4f}{b['img_per_s']:>9.1f}{r['train_s']:>9.0f}")
    flip = "on" if proto.test.flip_test else "off"
    log(f"(COCO AP on {num_val} synthetic val images, detected boxes, flip test {flip}; GMACs: true MACs at "
        f"batch 1; img/s: batch {bench_batch}, {min(bench_threads, cpu_count)} intra-op thread(s), conv-BN fused + "
        f"channels-last copies, median of {bench_rounds} interleaved rounds, torch {torch.__version__})")
    p, t = summary[qs.pruned], summary[qs.twin]
    if not fast:
        checks = {f"{qs.pruned} AP >= 0.5": p["ap"] >= 0.5, "|AP gap| <= 0.03": abs(p["ap"] - t["ap"]) <= 0.03,
                  "fewer GMACs": p["gmacs"] < t["gmacs"], "more img/s": p["img_per_s"] > t["img_per_s"]}
        log("acceptance: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
    log(f"pictures: {skel_png}, {tokens_png}")
    log(f"total wall time {time.perf_counter() - t_start:.0f}s")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m posetokens.quickstart", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="output folder (data, runs, pictures; default outputs/quickstart); "
                                                 "with --warm-start, the .pth to write")
    ap.add_argument("--model", default="ppt", choices=sorted(QUICKSTARTS), help="which pruned/unpruned pair")
    ap.add_argument("--fast", action="store_true", help="tiny run that checks the mechanics only")
    ap.add_argument("--jobs", type=int, default=2, choices=(1, 2),
                    help="trainings at a time: 2 = side by side, 1 thread each; 1 = in turn, 2 threads")
    ap.add_argument("--warmup-steps", type=int, default=None,
                    help="backbone warm-start steps (default: the pair's; 0 trains from a random CNN)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override applied to both recipes alike, e.g. --set schedule.epochs=4 (repeatable)")
    ap.add_argument("--table", action="store_true", help="print the zoo efficiency table and exit")
    ap.add_argument("--warm-start", metavar="CONFIG",
                    help="only write the warm-started initial checkpoint of this recipe (with --set) to --out, a .pth "
                         "(e.g. configs/pct_synthetic.yaml's heatmap-trained Swin): --warmup-steps steps (default "
                         "2000), the recipe's optimiser (Adam or AdamW) at lr 1e-3, 2 threads; --model, --fast and --jobs do "
                         "not apply")
    args = ap.parse_args(argv)
    if args.table:
        print_zoo_table()
        return 0
    from posetokens.cli import run_command

    if args.warm_start:
        from posetokens.engine.config import load_config

        def warm() -> int:
            from posetokens.fileio import writable_dir

            if args.out is None or Path(args.out).suffix != ".pth":
                raise ValueError(f"--warm-start needs --out FILE.pth, the checkpoint to write (got {args.out})")
            out = Path(args.out)
            if out.exists():
                raise ValueError(f"--out {out}: exists; the warm start writes a new checkpoint, give --out another file")
            steps = 2000 if args.warmup_steps is None else args.warmup_steps
            if steps < 1:
                raise ValueError(f"--warmup-steps {steps}: --warm-start trains at least 1 step")
            cfg = load_config(args.warm_start, args.set)
            cfg.model.weights = None  # the recipe's initial weights are what this writes
            writable_dir(out.parent, "--out's folder")  # before the training, not after it
            warm_start(cfg, steps, out, threads=min(2, os.cpu_count() or 1), lr=1e-3)
            log(f"initial weights: {out} ({steps} warm-start steps)")
            return 0

        return run_command("quickstart", warm)

    args.out = "outputs/quickstart" if args.out is None else args.out

    def job() -> int:
        summary = run(args.model, args.out, fast=args.fast, jobs=args.jobs, warmup_steps=args.warmup_steps,
                      overrides=args.set)
        print(json.dumps(summary), flush=True)
        return 0

    # an interrupt stops the children too; what they finished stays under --out
    return run_command("quickstart", job, f"interrupted; the finished files are under {args.out} (a rerun trains "
                                          "again and moves the earlier runs to archive/)")


def print_zoo_table() -> None:
    """Print the zoo efficiency table: our parameter and MAC counts beside the paper's figures."""
    from posetokens.engine.zoo import efficiency_table
    from posetokens.registry import list_models

    print("posetokens zoo: TokenPose / PPT (batch 1, input at the model's size)\n")
    print(efficiency_table(list_models("tokenpose") + list_models("ppt")))


if __name__ == "__main__":
    raise SystemExit(main())
