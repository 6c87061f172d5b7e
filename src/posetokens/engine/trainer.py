"""The training loop, read top to bottom (nanoGPT style).

``train(cfg)`` runs unchanged on one process or under ``torchrun`` (DDP: nccl on GPU, gloo on CPU).
Order: distributed setup -> model -> data -> optimiser -> resume -> loop -> checkpoint/eval per epoch.

Exact resume: a checkpoint holds the model, optimiser, grad scaler, EMA, the step counters and every RNG
state; the learning rate and PPT keep ratio are pure functions of the step, the data order of the
(seed, epoch) pair, and augmentation of (seed, epoch, index). A run stopped after k steps and resumed
therefore ends with the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from posetokens.checkpoint import (INIT_ONLY_SUFFIX, atomic_save, describe, load_file, load_trained,
                                   read_description)
from posetokens.convert import (CheckpointMismatchError, PartialLoad, load_init_file, load_matching, load_weights,
                                strict_load)
from posetokens.data.metainfo import first_name_difference, get_metainfo
from posetokens.engine.config import (LOSSES, RESUME_FREE_FIELDS, OptimCfg, TrainCfg, absolute_paths,
                                      config_changes, config_to_dict, load_config_dict, validate_config,
                                      with_absolute_paths)
from posetokens.engine.data import (StepSampler, build_samples, data_protocol, fields_named, make_loader,
                                    model_codec)
from posetokens.engine.evaluate import coco_metrics, mpii_metrics, predict_coco, predict_keypoints
from posetokens.engine.lifting import build_lifting_set, evaluate_lifting, lifting_loss, load_clips
from posetokens.engine.multiview import build_multiview_set, evaluate_multiview, multiview_loss
from posetokens.engine.losses import gtpt_loss, joints_mse, simcc_kl
from posetokens.engine.pct import evaluate_tokenizer, pct_loss, tokenizer_val_samples
from posetokens.engine.schedule import ema_decay_at, keep_ratio_at, lr_factor
from posetokens.evaluation.coco import PERSON_CATEGORY, check_coco_ground_truth, write_coco_results
from posetokens.fileio import (FolderLock, archive_path, atomic_write_text, check_folder_path, check_no_overwrite,
                               check_replaceable, lock_busy_message, lock_holder, looks_like_coco_results, read_json,
                               require_file, same_file, writable_dir)
from posetokens.protocols import Protocol
from posetokens.registry import create_model, get_entry, get_family
from posetokens.runtime import (Interrupted, interruptible, one_run, retain_freed_memory, short_repr, signal_name,
                                signals_deferred)

logger = logging.getLogger(__name__)


def build_optimizer(model: nn.Module, optim: OptimCfg) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``model``'s parameters: Adam or AdamW with its lr, betas, weight decay and
    amsgrad; with ``optim.no_decay_1d``, 1-D parameters (norms) and biases in a second group without weight decay,
    as PCT's recipes build it (mmcv's layer-decay constructor; its layer scales are all 1 for the trained head)."""
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(optim.name)
    if opt_cls is None:
        raise ValueError(f"config: optim.name must be 'adam' or 'adamw', got {optim.name!r}")
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    if optim.no_decay_1d:
        flat = [p for n, p in model.named_parameters() if p.ndim <= 1 or n.endswith(".bias")]
        kept = {id(p) for p in flat}
        groups = [{"params": [p for p in model.parameters() if id(p) not in kept]},
                  {"params": flat, "weight_decay": 0.0}]
    return opt_cls(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay, amsgrad=optim.amsgrad)


#: the metric that chooses ``best.pth`` (the first an evaluation holds) and whether lower is better
BEST_BY: tuple[tuple[str, bool], ...] = (("MPJPE", True), ("PCKh", False), ("AP", False), ("recon_px", True),
                                         ("jdr", False))


def improves(metrics: dict[str, float], best: dict[str, float]) -> bool:
    """Whether an evaluation's ``metrics`` beat ``best`` (the best one so far, empty at first) on the first metric of
    :data:`BEST_BY` they hold: a lower error, a higher score; a tie keeps the earlier evaluation."""
    key, lower = next((k, low) for k, low in BEST_BY if k in metrics)
    if key not in best:
        return True
    return metrics[key] < best[key] if lower else metrics[key] > best[key]


class ModelEMA:
    """Exponential moving average of a model's weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        """``ema = decay * ema + (1 - decay) * model`` for parameters (``decay`` default ``self.decay``);
        buffers copied."""
        d = self.decay if decay is None else decay
        for e, p in zip(self.module.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


def _rng_state() -> dict[str, Any]:
    """Every RNG state, as tensors and plain Python values (so ``torch.load(weights_only=True)`` reads it)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _keep_buffers(model: nn.Module, kept: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s buffers (written into ``kept``'s tensors where they fit): what a step boundary
    holds, since a training forward pass changes some (BatchNorm's running statistics, PCT's codebook averages)
    before its step is applied, and an interrupt may land in between."""
    kept = {} if kept is None else kept
    with torch.no_grad():
        for name, b in model.named_buffers():
            old = kept.get(name)
            if old is not None and (old.shape, old.dtype, old.device) == (b.shape, b.dtype, b.device):
                old.copy_(b)
            else:
                kept[name] = b.detach().clone()
    return kept


def _restore_buffers(model: nn.Module, kept: dict[str, torch.Tensor]) -> None:
    """Put back the buffers :func:`_keep_buffers` copied (those of a step that did not finish are dropped)."""
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in kept:
                b.copy_(kept[name])


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tensorboard(work_dir: Path, resumed_step: int | None) -> Any:
    """A TensorBoard writer in ``WORK_DIR/tb``, or None without tensorboard. A resumed run hides the events of
    the steps after its checkpoint (``purge_step``): it redoes them."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: scalars also go to log.jsonl
        return None
    return SummaryWriter(str(work_dir / "tb"), purge_step=None if resumed_step is None else resumed_step + 1)


class TrainStep(nn.Module):
    """Model + loss in one module, so DDP wraps (and syncs) exactly what a training step runs.

    The model declares what it is: ``task`` (topdown, multiview, lifting, tokenizer), for top-down models
    ``output_kind``, and ``train_loss``, the loss its recipe trains with (what config loss ``auto`` means).
    Heatmap models regress heatmaps (JointsMSE); SimCC models classify coordinates (GTPT: pruned and unpruned
    branches plus distillation, when the config prunes); coordinate models are PCT's two stages; lifting models
    use the lifting loss of the recipe.
    """

    def __init__(self, model: nn.Module, loss: str) -> None:
        super().__init__()
        self.model = model
        self.task = model.task
        self.lifting = self.task == "lifting"
        self.multiview = self.task == "multiview"  # multi-view PPT: (B, V, ...) batches, JointsMSE over views
        self.output_kind = getattr(model, "output_kind", None)  # top-down and tokenizer models declare it
        if loss == "auto":  # the model declares its recipe's loss
            loss = getattr(model, "train_loss", None)
            if not isinstance(loss, str):
                raise TypeError(f"{type(model).__name__} declares no train_loss, so config loss 'auto' has nothing "
                                f"to train with; name one in the config's loss ({', '.join(LOSSES[1:])})")
        kind = "lifting" if self.lifting else "multi-view" if self.multiview else self.output_kind
        fits = {"lifting": ("hot", "mpjpe", "motionbert"), "multi-view": ("joints_mse",), "heatmap": ("joints_mse",),
                "simcc": ("gtpt", "simcc_kl"), "coords": ("pct",)}.get(kind, ())
        if loss not in fits:  # said before the work dir is started, not at the first step
            raise ValueError(f"config: loss {loss!r} does not apply to {kind} models ({type(model).__name__}); use "
                             f"auto or {' or '.join(fits) or 'nothing else'}")
        self.loss = loss
        self.last_stats: dict[str, torch.Tensor] = {}  # extra scalars of the last step for the log (PCT codebook use)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of one batch."""
        device = next(self.model.parameters()).device
        if self.lifting:
            return lifting_loss(self.model, batch, device, self.loss)
        if self.multiview:
            return multiview_loss(self.model, batch, device)
        if self.output_kind == "coords":
            loss, self.last_stats = pct_loss(self.model, batch, device)
            return loss
        image = batch["image"].to(device, non_blocking=True)
        weight = batch["keypoint_weights"].to(device)
        if self.output_kind == "simcc":
            labels = (batch["keypoint_x_labels"].to(device), batch["keypoint_y_labels"].to(device))
            if self.loss == "gtpt":
                pruned, unpruned = self.model.forward_train(image)
                return gtpt_loss(pruned, unpruned, labels, weight)
            return simcc_kl(self.model(image), labels, weight)  # __init__ admits gtpt or simcc_kl only
        return joints_mse(self.model(image).float(), batch["heatmaps"].to(device), weight)


def build_model(cfg: TrainCfg, initial_weights: bool = True, init_files: bool = True) -> nn.Module:
    """The recipe's model (zoo name + overrides; its keypoint count checked against ``data.dataset``), started
    from ``model.weights`` when ``initial_weights`` (:func:`start_from_weights`; a partial load's summary is
    logged). A resumed run builds it without them and without the files its overrides name to start parts from
    (``init_files`` False: PCT's ``tokenizer_ckpt``, which may have changed or moved since): it takes its weights
    from ``last.pth``."""
    overrides = dict(cfg.model.overrides)
    if not init_files:
        overrides = {k: None if k.endswith(INIT_ONLY_SUFFIX) else v for k, v in overrides.items()}
    model = create_model(cfg.model.name, **overrides)
    check_keypoint_count(cfg, model)
    if initial_weights:
        report = start_from_weights(cfg, model)
        if report is not None:
            logger.warning("%s", report.summary())
    return model


def reload_init_files(cfg: TrainCfg, model: nn.Module) -> None:
    """Load the files the recipe's overrides name for parts of the model (PCT's ``tokenizer_ckpt``,
    ``backbone_ckpt``) again after ``model.weights``: the named files win over that checkpoint's copies of those
    parts (a stage 1 trained again after the warm start was made), said when they differ."""
    family = get_family(get_entry(cfg.model.name).family)
    if family.init_files is None:
        return
    replaced: list[str] = []

    def load(module: nn.Module, path: str, what: str, prepare: Any) -> dict[str, Any] | None:
        before = [t.detach().clone() for t in module.state_dict().values()]
        described = load_init_file(module, path, what, prepare)
        if any(not torch.equal(a, b) for a, b in zip(before, module.state_dict().values(), strict=True)):
            replaced.append(f"the {what} with {path}")
        return described

    family.init_files(model, load)
    if replaced:
        logger.warning("model.weights %s held other values than the files model.overrides names: replaced %s "
                       "(the files the overrides name win)", cfg.model.weights, "; ".join(replaced))


def note_frozen_random_parts(cfg: TrainCfg, model: nn.Module) -> None:
    """Say which parts of the model are frozen (never trained) yet start from their random initial values: no
    ``model.weights`` and no file of the overrides set them (PCT stage 2 without ``tokenizer_ckpt``: its labels
    would come from a random encoder)."""
    if cfg.model.weights is not None:
        return
    random = [name for name, part in model.named_children()
              if any(True for _ in part.parameters()) and not any(p.requires_grad for p in part.parameters())
              and getattr(part, "init_file", None) is None]
    if random:
        logger.warning("model %s: the frozen part(s) %s start from random values and are never trained (no "
                       "model.weights, and no file of model.overrides sets them): what the model learns rests on "
                       "random weights there", cfg.model.name, ", ".join(random))


def check_keypoint_count(cfg: TrainCfg, model: nn.Module) -> None:
    """A top-down model predicts as many keypoints as the recipe's ``data.dataset`` has; else one line naming the
    fields to set (lifting and multi-view models read their joints from their data)."""
    if model.task in ("lifting", "multiview"):
        return
    mcfg, metainfo = model.cfg, get_metainfo(cfg.data.dataset)
    if metainfo.num_keypoints == mcfg.num_keypoints:
        return
    fields, k = {f.name for f in dataclasses.fields(mcfg)}, metainfo.num_keypoints
    if "num_keypoints" in fields:  # TokenPose, PPT
        how = f"set model.overrides.num_keypoints={k} to train it on that layout"
    elif "dense_runs" in fields and mcfg.dense_runs:  # whole-body GTPT: body plus dense part keypoints
        how = ("a whole-body GTPT predicts num_body plus its dense part keypoints (dense_runs); retarget a "
               "body model (gtpt_*_coco_*) instead, with model.overrides.num_body and groups")
    elif "num_body" in fields and "groups" in fields:  # GTPT: the body keypoints in groups
        how = (f"set model.overrides.num_body={k} and model.overrides.groups, which put each of the {k} "
               "keypoints in one group (docs/training.md, 'A skeleton of your own')")
    else:
        how = "its keypoint count is not a field of its config (TokenPose, PPT and GTPT models take one)"
    raise ValueError(f"config: model {cfg.model.name} predicts {mcfg.num_keypoints} keypoints but "
                     f"data.dataset={cfg.data.dataset!r} has {metainfo.num_keypoints}; {how}")


def start_from_weights(cfg: TrainCfg, model: nn.Module) -> PartialLoad | None:
    """Load ``model.weights`` into ``model``: strictly, or under ``model.weights_strict: false`` what fits
    (:func:`posetokens.convert.load_matching`, whose report is returned), then the files the overrides name for
    parts of it again (:func:`reload_init_files`: they win). Without ``model.weights`` the partial load's options
    are said to do nothing."""
    weights, family = cfg.model.weights, get_entry(cfg.model.name).family
    if weights is None:
        if not cfg.model.weights_strict or cfg.model.weights_keypoints is not None:
            logger.warning("model.weights is not set: the recipe's partial start (model.weights_strict: false, "
                           "model.weights_keypoints) has no file to apply to; the model starts from its initialisation "
                           "(--set model.weights=FILE names the checkpoint to start from)")
        return None
    try:  # read once; a missing file, a folder or another kind of file is said with the field
        obj = load_file(require_file(weights, "model.weights"))
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith("model.weights") else f"model.weights: {e}") from None
    if cfg.model.weights_strict:
        try:
            load_weights(model, obj, family, source=str(weights))
        except CheckpointMismatchError as e:
            try:  # what a partial load would take: the way out, when it is one
                load_matching(create_model(cfg.model.name, **cfg.model.overrides), obj, family, str(weights))
            except (CheckpointMismatchError, ValueError):
                raise CheckpointMismatchError(f"model.weights {e}") from None
            raise CheckpointMismatchError(f"model.weights {e}; a checkpoint of another skeleton or head: set "
                                          "model.weights_strict=false to load what fits") from None
        reload_init_files(cfg, model)
        return None
    names = None if model.task == "lifting" else get_metainfo(cfg.data.dataset).keypoint_names
    report = load_matching(model, obj, family, f"model.weights {weights}", names, cfg.model.weights_keypoints)
    reload_init_files(cfg, model)
    return report


@one_run()  # a warning about the val set is said once, not at every evaluation
def train(cfg: TrainCfg, resume: bool = False, overwrite: bool = False,
          allow_config_change: bool = False) -> dict[str, Any]:
    """Train ``cfg``; returns the last evaluation metrics (empty when none ran).

    The work dir is checked before anything is built or written (:func:`check_work_dir`): one that holds a run
    is refused unless ``resume`` (continue it from ``last.pth``, with the config it was trained with unless
    ``allow_config_change``) or ``overwrite`` (its files are moved to ``WORK_DIR/archive/<time>/`` when the
    first new file is written)."""
    validate_config(cfg)  # types and ranges, before any model is built
    cfg = with_absolute_paths(cfg)  # the recipe it stores then reads the same from any folder
    work_dir = Path(cfg.work_dir)
    seen = run_files_state(work_dir)  # what start_work_dir must find still there once the model and data are built
    ckpt, changes = check_work_dir(cfg, resume, overwrite, allow_config_change)  # last.pth when resuming
    if ckpt is not None:  # the weights the run started from stay its record (a resumed run does not read them)
        began = (ckpt.get("config") or {}).get("model") or {}
        for key in ("weights", "weights_strict", "weights_keypoints"):
            if key in began:
                value = began[key]
                setattr(cfg.model, key, tuple(value) if isinstance(value, list) else value)
    # ---- distributed setup (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
    ddp = int(os.environ.get("RANK", -1)) != -1
    if ddp:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    else:
        rank, world, local_rank = 0, 1, 0
    master = rank == 0
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        retain_freed_memory()  # about 1.4x faster CPU steps (posetokens.runtime)
    use_amp = cfg.amp and device.type == "cuda"
    amp_ctx = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()

    # ---- model (same seed on every rank; DDP also broadcasts rank 0's weights)
    torch.manual_seed(cfg.seed)
    raw_model = build_model(cfg, initial_weights=False, init_files=ckpt is None)  # a resumed run: from last.pth
    started = start_from_weights(cfg, raw_model) if ckpt is None else None  # a resumed run reads last.pth
    if started is not None and master:
        logger.warning("%s", started.summary())
    if ckpt is None and master:
        note_frozen_random_parts(cfg, raw_model)
    raw_model = raw_model.to(device)
    mcfg = raw_model.cfg
    anneals = getattr(raw_model, "anneals_keep_ratio", False)  # PPT: keep ratio 1 -> the config's over epochs
    target_ratio = raw_model.keep_ratio if anneals else 1.0

    # ---- data: top-down crops with the protocol's targets, or lifting windows
    step_module = TrainStep(raw_model, cfg.loss)
    protocol = data_protocol(cfg.data, raw_model)
    if step_module.lifting:
        train_set = build_lifting_set(cfg.data, "train", raw_model, cfg.seed)
    elif step_module.multiview:
        train_set = build_multiview_set(cfg.data, "train", raw_model)
    else:  # build_model checked the keypoint count against data.dataset
        codec = model_codec(protocol, raw_model)
        train_set = build_samples(cfg.data, "train", mcfg.image_size, protocol, codec, cfg.seed,
                                  poses_only=not getattr(raw_model, "needs_images", True))
    sampler = StepSampler(len(train_set), cfg.data.batch_size, world, rank, cfg.optim.grad_accum, cfg.seed)
    loader = make_loader(train_set, cfg.data.batch_size, sampler, cfg.data.num_workers)
    steps_per_epoch = sampler.steps_per_epoch
    total_steps = steps_per_epoch * cfg.schedule.epochs
    said_skipped = _skipped(train_set)  # what loading the annotations left out, which the dataset logged

    # ---- optimiser, scaler, EMA
    optimizer = build_optimizer(raw_model, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = ModelEMA(raw_model, cfg.optim.ema_decay) if cfg.optim.ema_decay else None

    # ---- resume
    epoch, step_in_epoch, step, best = 0, 0, 0, {}
    ckpt_path = work_dir / "last.pth"
    if ckpt is not None:
        # the global batch (and so steps per epoch and the schedule) is batch size x processes x accumulation
        then_world = len(ckpt["rng"])  # one RNG state per process that saved it
        saved = ckpt.get("config") or {}  # a checkpoint without its config (older ones): this run's values stand in
        then = (saved.get("data", {}).get("batch_size", cfg.data.batch_size) * then_world
                * saved.get("optim", {}).get("grad_accum", cfg.optim.grad_accum))
        now = cfg.data.batch_size * world * cfg.optim.grad_accum
        if then != now:
            msg = (f"--resume: {ckpt_path} was trained with a global batch of {then} ({then_world} process(es)), this "
                   f"run has {now} ({world}); the steps per epoch and the schedule would change")
            if not allow_config_change:
                raise ValueError(msg + ": start as many processes, or set data.batch_size / optim.grad_accum to "
                                       "keep the global batch (or pass --allow-config-change)")
            if master:
                logger.warning("%s (allowed by --allow-config-change)", msg)
        try:
            strict_load(raw_model, ckpt["model"], str(ckpt_path))
        except CheckpointMismatchError as e:  # only after --allow-config-change of the model
            raise ValueError(f"--resume: {e} (the model was changed under --allow-config-change)") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None:
            ema.module.load_state_dict(ckpt["ema"])
        epoch, step_in_epoch, step, best = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["step"], ckpt.get("best", {})
        _set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
        if master:
            logger.info("resumed from %s at epoch %d, step %d", ckpt_path, epoch, step)
    model: nn.Module = DDP(step_module) if ddp else step_module
    # what every checkpoint says about itself: test/infer/lift/export rebuild the model from it alone
    description = {**describe(cfg.model.name, cfg.model.overrides, protocol, _metainfo_of(cfg, raw_model)),
                   "config": config_to_dict(cfg)}

    def save(epoch_: int, step_in_epoch_: int, rng: dict[str, Any] | None = None, eval_due: int | None = None) -> None:
        """``last.pth`` (every rank takes part under DDP). ``eval_due``: the epoch whose evaluation has not finished
        yet; a resume runs it before training on (it is written before an evaluation and cleared after it)."""
        rngs = [rng or _rng_state()]
        if ddp:
            rngs = [None] * world
            dist.all_gather_object(rngs, rng or _rng_state())
        if master:
            atomic_save({
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.module.state_dict() if ema else None, "epoch": epoch_, "step_in_epoch": step_in_epoch_,
                "step": step, "best": best, "rng": rngs, "eval_due": eval_due, **description,
            }, ckpt_path)

    def run_evaluation(epoch_: int) -> None:
        """The evaluation after ``epoch_`` epochs (rank 0): metrics, their log records, ``best.pth``."""
        nonlocal metrics, best
        if anneals:
            raw_model.set_keep_ratio(target_ratio)
        eval_model = ema.module if ema else raw_model
        metrics = evaluate_model(eval_model, cfg, protocol, device, work_dir / "val_predictions.json")
        logger.info("epoch %d: %s", epoch_, metrics)
        log_file.write(json.dumps({"epoch": epoch_, "eval": metrics}) + "\n")
        log_file.flush()
        if writer:
            for k, v in metrics.items():
                writer.add_scalar(f"val/{k}", v, step)
        if improves(metrics, best):
            best = dict(metrics, epoch=epoch_)
            atomic_save({**description, "state_dict": eval_model.state_dict()}, work_dir / "best.pth")

    if cfg.eval_interval:  # found now, not at the first evaluation epochs later
        check_eval_inputs(raw_model, cfg, protocol)
    # ---- the first file written: an --overwrite run archives the old run now, a resumed one logs its changes
    resumed_at = None if ckpt is None else (epoch, step)
    eval_due = None if ckpt is None else ckpt.get("eval_due")  # an evaluation that an interrupt or a crash cut short
    has_val = bool(cfg.data.val_ann) or step_module.lifting
    if eval_due is not None and not (cfg.eval_interval and has_val):
        logger.warning("--resume: the evaluation of epoch %d did not finish; eval_interval=%d skips it", eval_due,
                       cfg.eval_interval)
        eval_due = None
    lock = start_work_dir(cfg, overwrite, changes, resumed_at, eval_due, seen) if master else None
    description["config"] = config_to_dict(cfg)  # model.weights where it lies now, when it moved with an old run
    if started is not None:
        started.source = f"model.weights {cfg.model.weights}"
    del ckpt
    metrics: dict[str, float] = {}
    bar = None
    try:
        # ---- the loop
        writer = _tensorboard(work_dir, None if resumed_at is None else step) if master else None
        log_file = (work_dir / "log.jsonl").open("a") if master else None
        if log_file is not None and started is not None:  # what the run started from, kept with its steps
            log_file.write(json.dumps({"initial_weights": started.record()}) + "\n")
        accum = cfg.optim.grad_accum
        stop = False
        rng_at_step = _rng_state()  # the RNG state at the last step boundary: what an interrupt saves
        buffers_at_step = _keep_buffers(raw_model)  # and the buffers then (a forward pass changes BatchNorm's)
        try:
            with interruptible():  # SIGINT / SIGTERM raise Interrupted: the finished steps are kept below
                if eval_due is not None:  # the resumed weights are those the cut-short evaluation was scoring
                    if master:
                        logger.info("--resume: running the evaluation of epoch %d that did not finish", eval_due)
                        run_evaluation(eval_due)
                    save(epoch, step_in_epoch, rng_at_step)  # done: a later resume does not run it again
                    eval_due = None
                    if ddp:
                        dist.barrier()
                model.train()
                while epoch < cfg.schedule.epochs and not stop:
                    sampler.set_epoch(epoch, step_in_epoch)
                    if hasattr(train_set, "set_epoch"):
                        train_set.set_epoch(epoch)
                    bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, desc=f"epoch {epoch}", disable=not master,
                               leave=False, dynamic_ncols=True)
                    micro, t0 = 0, time.perf_counter()
                    for batch in loader:
                        lr = cfg.optim.lr * lr_factor(step, steps_per_epoch, cfg.schedule)
                        for g in optimizer.param_groups:
                            g["lr"] = lr
                        ratio = keep_ratio_at(step, steps_per_epoch, target_ratio, cfg.schedule.prune_start_epoch,
                                              cfg.schedule.prune_decay_epochs)
                        if anneals:
                            raw_model.set_keep_ratio(ratio)
                        last_micro = micro == accum - 1
                        sync = contextlib.nullcontext() if (not ddp or last_micro) else model.no_sync()
                        with sync:
                            with amp_ctx:
                                loss = model(batch)
                            if not torch.isfinite(loss):
                                raise ValueError(f"loss is {loss.item()} at epoch {epoch}, step {step}: check the data "
                                                 "(NaN keypoints or images) and optim.lr")
                            scaler.scale(loss / accum).backward()
                        micro += 1
                        if not last_micro:
                            continue
                        micro = 0
                        if cfg.optim.grad_clip:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.optim.grad_clip)
                        with signals_deferred():  # a step is applied and logged whole: an interrupt lands between steps
                            scaler.step(optimizer)
                            scaler.update()
                            optimizer.zero_grad(set_to_none=True)
                            if ema is not None:
                                ema.update(raw_model, ema_decay_at(step, total_steps,
                                                                   cfg.optim.ema_decay, cfg.optim.ema_decay_end))
                            step += 1
                            step_in_epoch += 1
                            rng_at_step = _rng_state()
                            _keep_buffers(raw_model, buffers_at_step)
                            bar.update(1)
                            if master and (step % cfg.log_interval == 0 or step_in_epoch == steps_per_epoch):
                                loss_v = loss.item()
                                bar.set_postfix(loss=f"{loss_v:.3g}", lr=f"{lr:.2e}", keep=f"{ratio:.3f}")
                                rec = {"step": step, "epoch": epoch, "loss": loss_v, "lr": lr, "keep_ratio": ratio,
                                       "sec_per_step": (time.perf_counter() - t0) / max(1, step_in_epoch),
                                       **{k: float(v) for k, v in step_module.last_stats.items()}}
                                log_file.write(json.dumps(rec) + "\n")
                                log_file.flush()
                                if writer:
                                    for k in ("loss", "lr", "keep_ratio", *step_module.last_stats):
                                        writer.add_scalar(f"train/{k}", rec[k], step)
                        if cfg.max_steps is not None and cfg.max_steps <= step < total_steps:
                            stop = True  # a max_steps at or past the schedule's end is a whole run: final.pth
                            break
                    bar.close()
                    skipped = _skipped(train_set)
                    if master and skipped:  # documented skips (unreadable images, ...), counted per epoch
                        if skipped != said_skipped:  # said when the count changes (the loader said the first)
                            logger.warning("epoch %d: skipped samples %s", epoch, skipped)
                            said_skipped = skipped
                        log_file.write(json.dumps({"epoch": epoch, "skipped": skipped}) + "\n")
                    if stop:
                        save(epoch, step_in_epoch)
                        break
                    epoch, step_in_epoch = epoch + 1, 0
                    due = epoch % cfg.eval_interval == 0 or epoch == cfg.schedule.epochs if cfg.eval_interval else False
                    eval_due = epoch if due and has_val else None  # set before the save: an interrupt keeps it
                    rng_at_step = _rng_state()
                    save(epoch, 0, rng_at_step, eval_due=eval_due)
                    if eval_due is not None:
                        if master:
                            run_evaluation(epoch)
                        if ddp:
                            dist.barrier()
                        save(epoch, 0, rng_at_step)  # the evaluation finished: clear eval_due
                        eval_due = None
                    model.train()
        except Interrupted as e:
            if bar is not None:
                bar.close()  # clears its line, so the interrupt's message starts a line of its own
            if writer:
                writer.close()
            if log_file:
                log_file.close()
            if ddp:  # the other ranks cannot join a checkpoint now: the last epoch end's stands
                raise Interrupted(e.signum, f"interrupted by {signal_name(e.signum)}; a DDP run keeps {ckpt_path} "
                                            "from its last epoch end (continue with --resume)") from None
            with signals_deferred(discard=True):  # the checkpoint is written whole, whatever arrives meanwhile
                _restore_buffers(raw_model, buffers_at_step)  # as they were when the last finished step ended
                save(epoch, step_in_epoch, rng_at_step, eval_due=eval_due)
            lost = "" if eval_due is None else f"; the evaluation of epoch {eval_due} did not finish and runs first"
            raise Interrupted(e.signum, f"interrupted by {signal_name(e.signum)}: kept {ckpt_path} at epoch {epoch}, "
                                        f"step {step} ({step_in_epoch} of {steps_per_epoch} in the epoch){lost}; "
                                        "continue with --resume") from None
        if anneals:
            raw_model.set_keep_ratio(target_ratio)
        if master:
            if not stop:  # only a completed run has final weights; an interrupted one resumes from last.pth
                atomic_save({**description, "state_dict": (ema.module if ema else raw_model).state_dict()},
                            work_dir / "final.pth")
            else:  # a stop by max_steps is no finished run: said, with the way on (it printed the last metrics only)
                logger.warning("stopped at max_steps=%d (epoch %d, step %d of %d; no final.pth): %s is the run at this "
                               "step; --resume with a larger max_steps (or --set max_steps=null) continues it",
                               cfg.max_steps, epoch, step, total_steps, ckpt_path)
            log_file.close()
            if writer:
                writer.close()
        if ddp:
            dist.barrier()
            dist.destroy_process_group()
    finally:
        if lock is not None:
            lock.release()
    return metrics


# ------------------------------------------------------------------------------------------ work dirs
# what a run writes into its work dir; RUN_MARKERS mean "this folder holds a run", or a start that failed before its
# first checkpoint when none of CHECKPOINTS is there (a plain rerun archives those files)
def _skipped(train_set: Any) -> dict[str, int]:
    """The training set's skip counts by reason (an image dataset's; none for the others)."""
    return dict(getattr(getattr(train_set, "base", None), "skipped", {}) or {})


CHECKPOINTS = ("last.pth", "final.pth", "best.pth")
RUN_MARKERS = (*CHECKPOINTS, "log.jsonl", "config.json")
RUN_FILES = (*RUN_MARKERS, "log.redone.jsonl", "val_predictions.json", "test_predictions.json", "tb")


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is the ``config.json`` a run writes (a recipe: model, data, optim, schedule), not a user's."""
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(tree, dict) and {"model", "data", "optim", "schedule"} <= set(tree)


def run_files_state(work_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """The run files in ``work_dir`` (:data:`RUN_MARKERS`) as (name, modification time in ns, size): what another
    run writing there changes."""
    state = []
    for name in RUN_MARKERS:
        try:
            st = (work_dir / name).stat()
        except OSError:
            continue
        state.append((name, st.st_mtime_ns, st.st_size))
    return tuple(state)


def check_work_dir(cfg: TrainCfg, resume: bool, overwrite: bool,
                   allow_config_change: bool) -> tuple[dict[str, Any] | None, list[tuple[str, Any, Any]]]:
    """Refuse, before anything is built or written, a work dir that cannot take this run. Reads only; returns the
    loaded ``last.pth`` when resuming (else None) and the config changes a resume was allowed (field, old, new).

    * ``WORK_DIR`` must be a folder (or not exist yet) that we can write in;
    * no other training may be running there (:class:`~posetokens.fileio.FolderLock`);
    * a folder holding a run (a checkpoint among :data:`RUN_MARKERS`) needs ``resume`` or ``overwrite`` (not both);
      the files of a start that failed before its first checkpoint (``config.json``, ``log.jsonl``) do not count;
    * ``resume`` needs ``last.pth``, the config it stores (else ``config.json``) must equal ``cfg`` except for
      :data:`~posetokens.engine.config.RESUME_FREE_FIELDS` unless ``allow_config_change``, and there must be steps
      left to train.
    """
    work_dir = Path(cfg.work_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: --resume continues the run in "
                         f"{work_dir}, --overwrite starts a new one there")
    if work_dir.exists() and not work_dir.is_dir():
        raise ValueError(f"work_dir {work_dir} is a file; expected a folder (it is created if missing)")
    existing = next((p for p in (work_dir, *work_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"work_dir {work_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(13, "work dir is not writable", str(existing))
    # rank 0 holds a DDP run's lock (start_work_dir): the other ranks may check after it has taken it
    holder = lock_holder(work_dir) if int(os.environ.get("RANK", 0)) == 0 else None
    if holder is not None:
        raise ValueError(lock_busy_message(work_dir, "work_dir", holder))
    found = [name for name in RUN_MARKERS if (work_dir / name).exists()]
    # a start that failed before its first checkpoint (its config.json is one of our recipes) holds no run: a plain
    # rerun goes ahead and start_work_dir archives its files
    failed_start = bool(found) and not any(n in CHECKPOINTS for n in found) and _is_run_config(work_dir / "config.json")
    if not resume:
        if found and not failed_start and not overwrite:
            raise ValueError(f"work_dir {work_dir} already holds a run ({', '.join(found)}); pass --resume to "
                             f"continue it, --overwrite to start a new one (the old run's files are moved to "
                             f"{work_dir / 'archive'}/<time>/), or choose another --work-dir")
        return None, []
    ckpt_path = work_dir / "last.pth"
    if not ckpt_path.is_file():
        have = f" (it holds {', '.join(found)})" if found else ""
        if failed_start:
            have = (f" (it holds {', '.join(found)} of a start that saved no checkpoint; run without --resume to "
                    "start again: they are moved to archive/<time>/)")
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}{have}")
    ckpt = load_file(ckpt_path)
    if not isinstance(ckpt, dict) or not {"model", "optimizer", "epoch", "step"} <= set(ckpt):
        raise ValueError(f"{ckpt_path}: not a training checkpoint (no model/optimizer/epoch/step state) to resume")
    stored, where, changes = ckpt.get("config"), str(ckpt_path), []
    if not isinstance(stored, dict) and (work_dir / "config.json").is_file():
        stored, where = read_json(work_dir / "config.json", "config"), str(work_dir / "config.json")
    if not isinstance(stored, dict):
        logger.warning("--resume: %s stores no config; cannot check that the run continues under the same one",
                       ckpt_path)
    else:
        try:  # fill fields added since the run started with their defaults, so only real differences count
            stored = config_to_dict(load_config_dict(stored, f"{where}: config"))
        except ValueError:
            pass
        stored = absolute_paths(stored)  # a run stored before paths were made absolute: read from here, as then
        changes = config_changes(stored, config_to_dict(cfg))
        if changes and not allow_config_change:
            listed = "; ".join(f"{k}: {short_repr(a)} -> {short_repr(b)}" for k, a, b in changes)
            raise ValueError(f"--resume: the config differs from the one {where} was trained with ({listed}); "
                             "resume with the same config, or pass --allow-config-change to continue under the new "
                             f"values (fields free to change: {', '.join(RESUME_FREE_FIELDS)})")
    step, epoch = int(ckpt["step"]), int(ckpt["epoch"])
    if cfg.max_steps is not None and cfg.max_steps <= step:
        raise ValueError(f"--resume: {ckpt_path} is at step {step} already; max_steps={cfg.max_steps} leaves "
                         "nothing to train (raise max_steps or drop it)")
    if epoch >= cfg.schedule.epochs and (work_dir / "final.pth").is_file():
        raise ValueError(f"--resume: the run in {work_dir} has finished ({epoch} of schedule.epochs="
                         f"{cfg.schedule.epochs} epochs, final.pth written): nothing to train; to train longer, "
                         "raise schedule.epochs and pass --allow-config-change")
    return ckpt, changes


def _moved_with(path: str | None, work_dir: Path, moved: list[str], dest: Path) -> str | None:
    """Where the file ``path`` names will lie once the run files ``moved`` go from ``work_dir`` to ``dest`` (call it
    before they move; None: it stays where it is). A symbolic link among them that points elsewhere moves, its
    file does not: the file's own path is returned."""
    if path is None:
        return None
    p = Path(path)
    real, lexical = p.resolve(), p.parent.resolve() / p.name
    work = work_dir.resolve()
    for name in moved:
        src = work / name  # the item as it moves (a link moves as a link)
        if real == src or src in real.parents:
            return str(dest.resolve() / name / real.relative_to(src))
    if any(lexical == work / name or work / name in lexical.parents for name in moved):
        return str(real)  # a link that moves, to a file that stays
    return None


def start_work_dir(cfg: TrainCfg, overwrite: bool, changes: list[tuple[str, Any, Any]],
                   resumed_at: tuple[int, int] | None = None, eval_due: int | None = None,
                   seen: tuple[tuple[str, int, int], ...] | None = None) -> FolderLock:
    """The first writes of a run (rank 0), once the model and the data are built: create ``WORK_DIR`` and lock it
    (returned: release it when the run ends); refuse, unless ``overwrite``, when its run files are no longer those
    :func:`check_work_dir` judged (``seen``, from :func:`run_files_state`: another run wrote there meanwhile);
    move an old run's files to ``WORK_DIR/archive/<time>/``
    (``overwrite``, or the files of a start that saved no checkpoint; a ``model.weights`` among them is then
    recorded where it moved), write ``config.json`` atomically; a run
    resumed at ``(epoch, step)`` moves the log records of the steps (and the evaluation ``eval_due``) it redoes to
    ``log.redone.jsonl`` (:func:`trim_log`) and records the config changes it was allowed (``log.jsonl``:
    ``{"at_step": step, "config_changes": {field: [old, new]}}``)."""
    step = 0 if resumed_at is None else resumed_at[1]
    work_dir = Path(cfg.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(work_dir, "work_dir")
    now = run_files_state(work_dir)
    if seen is not None and not overwrite and now != seen:
        lock.release()
        changed = sorted({n for n, *_ in set(now) ^ set(seen)})
        raise ValueError(f"work_dir {work_dir}: another run wrote or removed {', '.join(changed)} there while this "
                         "one was being built; nothing was written: look at that run, then start again (--resume to "
                         "continue it, --overwrite to archive it, or another --work-dir)")
    present = [name for name in RUN_FILES if (work_dir / name).exists()]
    failed_start = not any((work_dir / name).exists() for name in CHECKPOINTS)
    if present and (overwrite or failed_start):
        dest = archive_path(work_dir)
        moved = _moved_with(cfg.model.weights, work_dir, present, dest)  # found before the files move
        dest.mkdir()
        for name in present:
            os.replace(work_dir / name, dest / name)
        if moved is not None:  # the recipe names the file where it now lies, not the new run's file of that name
            logger.warning("model.weights %s was among the previous run's files, which moved to %s: this run's "
                           "recipe records the file as %s", cfg.model.weights, dest, moved)
            cfg.model.weights = moved
        if overwrite:
            logger.warning("--overwrite: moved the previous run's files (%s) to %s", ", ".join(present), dest)
        else:
            logger.warning("%s held the files of an earlier run but no checkpoint (%s; a start that failed before its "
                           "first save); moved them to %s", work_dir, ", ".join(present), dest)
    if resumed_at is not None:
        trim_log(work_dir / "log.jsonl", *resumed_at, eval_due)
    if changes:
        logger.warning("--resume --allow-config-change: continuing after step %d under changed fields: %s", step,
                       "; ".join(f"{k}: {short_repr(a)} -> {short_repr(b)}" for k, a, b in changes))
        with (work_dir / "log.jsonl").open("a") as f:
            f.write(json.dumps({"at_step": int(step),
                                "config_changes": {k: [a, b] for k, a, b in changes}}) + "\n")
    atomic_write_text(work_dir / "config.json", json.dumps(config_to_dict(cfg), indent=1))
    return lock


def trim_log(path: Path, epoch: int, step: int, eval_due: int | None = None) -> int:
    """Before a run resumes at ``(epoch, step)``: move the records of ``log.jsonl`` that the resumed run writes again
    (steps after ``step``; the skip counts of epochs from ``epoch`` on; the evaluation of epoch ``eval_due``, which it
    reruns; a half-written last line) to ``log.redone.jsonl`` beside it, so the log holds each step and evaluation
    once. A run stopped without a checkpoint (a crash, ``kill -9``) leaves such records, and one stopped by
    ``max_steps`` the skip counts of the epoch it stopped in. Returns how many were moved."""
    if not path.is_file():
        return 0
    keep, redone = [], []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        again = not line.endswith("\n") or (isinstance(rec, dict) and (
            ("step" in rec and rec["step"] > step) or ("skipped" in rec and rec.get("epoch", -1) >= epoch)
            or ("eval" in rec and eval_due is not None and rec.get("epoch") == eval_due)))
        (redone if again or rec is None else keep).append(line)
    if redone:
        side = path.with_name("log.redone.jsonl")
        with side.open("a", encoding="utf-8") as f:
            f.write("".join(line if line.endswith("\n") else line + "\n" for line in redone))
        atomic_write_text(path, "".join(keep))
        logger.warning("--resume: %d record(s) of %s are of steps after the checkpoint's step %d, of an epoch it "
                       "finishes or of an evaluation it reruns (a run stopped without saving them, or by max_steps "
                       "within an epoch); moved them to %s", len(redone), path, step, side)
    return len(redone)


def _metainfo_of(cfg: TrainCfg, model: nn.Module) -> Any:
    """The keypoint definition a checkpoint records: the recipe's dataset (none for lifting models)."""
    return None if model.task == "lifting" else get_metainfo(cfg.data.dataset)


def evaluate_model(model: nn.Module, cfg: TrainCfg, protocol: Protocol, device: torch.device, out: Path) -> dict[str, float]:
    """Score ``model`` on the recipe's val/test set the way its task and protocol say."""
    if model.task == "lifting":
        return evaluate_lifting(model, cfg.data, device, cfg.data.val_batch_size, protocol)
    if model.task == "multiview":  # multi-view PPT: JDR and triangulated MPJPE
        return evaluate_multiview(model, build_multiview_set(cfg.data, "val", model), device, cfg.data.val_batch_size,
                                  ransac_threshold=cfg.data.mv_ransac_px)
    if model.task == "tokenizer":  # PCT stage 1: reconstruction error and codebook usage
        return evaluate_tokenizer(model, cfg, device)
    return evaluate_topdown(model, cfg, protocol, device, out)


def check_eval_inputs(model: nn.Module, cfg: TrainCfg, protocol: Protocol) -> None:
    """Read what :func:`evaluate_model` will read, as it will read it, without predicting: the files exist and
    parse (one-line errors naming the field). Run before training starts, so a typo in the val set shows now and
    not at the first evaluation, ``eval_interval`` epochs in."""
    if model.task == "lifting":
        load_clips(cfg.data, "test")  # the test subjects are in the files
        return
    _check_val_inputs(cfg, detections=model.task != "tokenizer")  # a tokenizer is scored on ground-truth boxes
    if not cfg.data.val_ann:
        return
    if model.task == "multiview":
        build_multiview_set(cfg.data, "val", model)
    elif model.task == "tokenizer":
        tokenizer_val_samples(cfg.data, model)
    else:
        samples = build_samples(cfg.data, "val", model.cfg.image_size, protocol, model_codec(protocol, model))
        missing = next((p for p in dict.fromkeys(d["img_path"] for d in samples.base.data_list)
                        if not os.path.isfile(p)), None)  # found at the first evaluation, epochs in
        if missing is not None:
            raise FileNotFoundError(f"image file not found: {missing} (data.val_img_dir {cfg.data.val_img_dir}, "
                                    f"listed in data.val_ann {cfg.data.val_ann}); an evaluation scores every image")
        if cfg.data.format != "mpii":  # scored by COCOeval: its checks of the ground truth, now
            with fields_named({"data.val_ann": cfg.data.val_ann}):
                check_coco_ground_truth(cfg.data.val_ann, get_metainfo(cfg.data.dataset), protocol.eval.coco_backend,
                                        {PERSON_CATEGORY}, "the model's predictions")


def evaluate_topdown(model: nn.Module, cfg: TrainCfg, protocol: Protocol, device: torch.device, out: Path) -> dict[str, float]:
    """Predict the recipe's val/test set with the protocol's pipeline and score it: COCO AP (predictions
    written to ``out`` in the COCO results format, with the padded-box ``area``) or, for MPII, PCKh."""
    metainfo = get_metainfo(cfg.data.dataset)
    codec = model_codec(protocol, model)
    val_set = build_samples(cfg.data, "val", model.cfg.image_size, protocol, codec)
    loader = make_loader(val_set, cfg.data.val_batch_size, None, cfg.data.num_workers)
    if cfg.data.format == "mpii":
        pred = predict_keypoints(model, loader, codec, metainfo, protocol, device)
        return mpii_metrics(val_set.base, pred["keypoints"], cfg.data.mpii_headboxes, protocol.eval)
    results = predict_coco(model, loader, codec, metainfo, protocol, device)
    write_coco_results(out, results)
    # an image with people but no prediction had no box: the messages name where the boxes came from
    boxes = f"data.val_det {cfg.data.val_det}" if cfg.data.val_det else "the ground-truth boxes"
    return coco_metrics(cfg.data.val_ann, results, metainfo, protocol.eval, source=f"the predictions on {boxes}")


@one_run()  # the early check of the ground truth and the evaluation say a warning once
def test(cfg: TrainCfg | None, weights: str, out: str | None = None) -> dict[str, float]:
    """Evaluate ``weights`` on a val/test set (COCO AP, PCKh, MPJPE, JDR...). A checkpoint we wrote rebuilds its
    model, protocol and (without ``cfg``) its recipe by itself; an official one needs ``cfg`` for the zoo name."""
    meta = read_description(weights) or {}
    given = cfg is not None
    held = meta.get("zoo_name")
    if given and held and held != cfg.model.name:
        way = ("leave out CONFIG (the checkpoint carries its recipe) or give the recipe it was trained with"
               if "config" in meta else f"give a recipe of that model, or test it on this recipe's data with --set "
               f"model.name={held} (a converted official checkpoint carries no recipe)")
        raise ValueError(f"{weights}: the checkpoint holds {held!r} but CONFIG's model.name is {cfg.model.name!r}; "
                         f"{way}")
    if cfg is None:
        if "config" not in meta:
            raise ValueError(f"{weights}: this checkpoint carries no training recipe; give the config too "
                             "(posetokens test CONFIG --weights W)")
        cfg = load_config_dict(meta["config"], f"{weights}: config")
    # without --out: the recipe's work dir, or beside the weights when the checkpoint gave the recipe
    out_path = Path(out) if out else Path(cfg.work_dir if given else Path(weights).parent) / "test_predictions.json"
    _check_test_output(cfg, weights, out_path, "--out" if out else "the predictions file")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        retain_freed_memory()
    trained = load_trained(weights, cfg.model.name if given else None, cfg.model.overrides if given else None)
    progress, epochs = meta.get("progress"), (meta.get("config") or {}).get("schedule", {}).get("epochs")
    if progress and isinstance(epochs, int) and progress["epoch"] < epochs:
        logger.warning("%s is the last.pth of a run that has not finished (epoch %d of %d, step %d): its weights at "
                       "that step are scored; the run's final.pth is written when it finishes (train --resume)",
                       weights, progress["epoch"], epochs, progress["step"])
    model = trained.model.to(device).eval()
    writes = model.task == "topdown" and cfg.data.format != "mpii"  # COCO-style results; the others score only
    if out and not writes:
        what = "MPII" if model.task == "topdown" else f"a {model.task} model's"
        raise ValueError(f"--out {out}: {what} test scores without writing predictions; leave out --out")
    # the checkpoint's protocol (what it was trained with), refined by what the recipe states on top of it
    protocol = data_protocol(cfg.data, model, base=trained.protocol)
    if trained.metainfo is not None and model.task != "lifting":
        _check_test_layout(cfg, trained.metainfo, weights, given)
    if model.task != "lifting":  # what the evaluation reads, named by its field, before any prediction (as train)
        _check_val_inputs(cfg, detections=model.task != "tokenizer")
    if writes and cfg.data.val_ann:  # the ground truth as COCOeval will read it, before the predictions
        with fields_named({"data.val_ann": cfg.data.val_ann}):
            check_coco_ground_truth(cfg.data.val_ann, get_metainfo(cfg.data.dataset), protocol.eval.coco_backend,
                                    {PERSON_CATEGORY}, "the model's predictions")
    metrics = evaluate_model(model, cfg, protocol, device, out_path)
    if writes:
        print(f"posetokens test: predictions written to {out_path}", file=sys.stderr)
    return metrics


def _check_test_layout(cfg: TrainCfg, stored: Any, weights: str, given: bool) -> None:
    """``test`` scores with ``data.dataset``'s layout: another keypoint set than the one the checkpoint stores is
    refused in one line naming the first joint that differs; the same joints with other OKS sigmas or flip pairs (an
    edited skeleton file) are said. ``given``: the recipe came from CONFIG (else from the checkpoint)."""
    layout = get_metainfo(cfg.data.dataset)
    ours, theirs = list(layout.keypoint_names), list(stored.keypoint_names)
    at = first_name_difference(ours, theirs)
    if at is not None:
        joint = (f"joint {at} is {theirs[at]!r} in the model, " if at < len(theirs) else f"joint {at}: ") + (
            f"{ours[at]!r} in data.dataset" if at < len(ours) else "none in data.dataset")
        fix = ("leave out CONFIG (the checkpoint carries its recipe) or give the dataset it was trained on" if given
               else "the skeleton file has changed since training: restore it, or give a CONFIG with the layout it "
               "was trained on")
        raise ValueError(f"{weights}: the model predicts the {stored.num_keypoints} keypoints of {stored.name!r} but "
                         f"data.dataset={cfg.data.dataset!r} has {layout.num_keypoints} others ({joint}); {fix}")
    changed = [what for what, a, b in (("OKS sigmas", layout.sigmas, stored.sigmas),
                                       ("flip pairs", layout.flip_indices, stored.flip_indices)) if a != b]
    if changed:
        logger.warning("data.dataset %s: its %s differ from those stored in %s (what the model was trained with); "
                       "the evaluation uses the file's", cfg.data.dataset, " and ".join(changed), weights)


def _check_val_inputs(cfg: TrainCfg, detections: bool = True) -> None:
    """The evaluation's files exist (``FileNotFoundError`` / ``ValueError`` naming the field), checked before a
    run starts: otherwise a typo shows only at the first evaluation, ``eval_interval`` epochs in. ``detections``:
    whether the evaluation reads ``data.val_det``."""
    d = cfg.data
    for field, path in (("data.val_ann", d.val_ann), ("data.val_det", d.val_det if detections else None),
                        ("data.mpii_headboxes", d.mpii_headboxes)):
        if path and field == "data.val_det" and not os.path.exists(path):
            raise FileNotFoundError(f"data.val_det {path} does not exist (a detections json in the COCO results "
                                    "format; --set data.val_det=null evaluates on the ground-truth boxes)")
        if path:
            require_file(path, field)
    if d.val_ann and d.val_img_dir and not Path(d.val_img_dir).is_dir():
        raise FileNotFoundError(f"data.val_img_dir {d.val_img_dir} is not a folder")


def _check_test_output(cfg: TrainCfg, weights: str, out: Path, what: str) -> None:
    """Refuse, before any model is built, a predictions path that is one of the test's inputs (the weights, an
    annotation, detection or data file) or lies in an image folder, or whose folder cannot be made."""
    d = cfg.data
    inputs = [("--weights", weights), ("data.val_ann", d.val_ann or None), ("data.val_det", d.val_det),
              ("data.train_ann", d.train_ann or None), ("data.mpii_headboxes", d.mpii_headboxes),
              ("data.keypoints_2d", d.keypoints_2d or None), ("data.keypoints_3d", d.keypoints_3d or None),
              ("data.cameras", d.cameras or None)]
    check_no_overwrite(inputs, [(f"predictions file {what}", out)])
    for field, folder in (("data.val_img_dir", d.val_img_dir), ("data.train_img_dir", d.train_img_dir)):
        if folder and Path(folder).is_dir() and same_file(out.parent, folder):
            raise ValueError(f"{what} {out} is in the image folder {field} {folder}; choose a path outside it")
    if out.is_dir():
        raise ValueError(f"{what} {out} is a folder; expected the path of a .json file to write")
    check_replaceable(out, what, looks_like_coco_results, "a predictions file (a JSON list of keypoint results, "
                      "what test writes)")  # a checkpoint, a run's config, a user's detections, a dangling link
    if not out.parent.is_dir():  # made when the predictions are written (a test that writes none makes nothing)
        check_folder_path(out.parent, f"folder of {what}")
        return
    try:  # a file is made there now, not after the predictions
        writable_dir(out.parent, f"the folder of {what} {out.name}")
    except PermissionError as e:
        raise PermissionError(e.errno, f"{e.strerror}; give --out elsewhere", e.filename) from None
