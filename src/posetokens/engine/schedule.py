"""Per-iteration schedules: learning rate, PPT's keep ratio and the EMA decay. Pure functions of the step."""

from __future__ import annotations

import math

from posetokens.engine.config import ScheduleCfg


def lr_factor(step: int, steps_per_epoch: int, cfg: ScheduleCfg) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (linear warm-up, then the schedule)."""
    if cfg.warmup_iters and step < cfg.warmup_iters:
        w = cfg.warmup_ratio + (1 - cfg.warmup_ratio) * step / cfg.warmup_iters
    else:
        w = 1.0
    epoch = step / max(1, steps_per_epoch)
    if cfg.kind == "multistep":
        return w * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.kind == "exponential":
        return w * cfg.gamma ** math.floor(epoch)
    if cfg.kind == "cosine":
        total = max(1, cfg.epochs * steps_per_epoch)
        t = min(1.0, step / total)
        return w * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
    raise ValueError(f"schedule.kind must be 'multistep', 'cosine' or 'exponential', got {cfg.kind!r}")


def keep_ratio_at(step: int, steps_per_epoch: int, target: float, start_epoch: int, decay_epochs: int) -> float:
    """PPT's keep-ratio schedule (from EViT): 1.0 before ``start_epoch``, cosine to ``target`` over
    ``decay_epochs`` epochs (per iteration), then ``target``."""
    if target >= 1.0:
        return 1.0
    start = start_epoch * steps_per_epoch
    if step < start:
        return 1.0
    span = max(1, decay_epochs * steps_per_epoch)
    t = min(1.0, (step - start) / span)
    return target + (1.0 - target) * 0.5 * (1 + math.cos(math.pi * t))


def ema_decay_at(step: int, total_steps: int, start: float, end: float | None = None) -> float:
    """EMA decay at optimiser step ``step``: ``start`` throughout when ``end`` is None, else the per-iteration
    cosine ramp ``end - (end - start) * (1 + cos(pi * step / total_steps)) / 2`` (GTPT: 0.996 -> 1.0 over the run)."""
    if end is None:
        return start
    t = min(1.0, step / max(1, total_steps))
    return end - (end - start) * 0.5 * (1 + math.cos(math.pi * t))
