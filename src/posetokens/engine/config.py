"""Training configs: plain dataclasses read from YAML, with dotted ``--set a.b=c`` overrides.

One YAML per zoo recipe lives in ``configs/``. Every field has a default, so a recipe names only what
differs. Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelCfg:
    """Which zoo model, and the config fields that differ from its registered values."""

    name: str = "ppt_s_coco_256x192"
    overrides: dict[str, Any] = field(default_factory=dict)  # nested dicts reach nested dataclasses
    weights: str | None = None  # initial weights (ours or official), loaded strictly


@dataclass
class DataCfg:
    """Where the data is and how targets are made."""

    dataset: str = "coco"  # metainfo name: coco, mpii, crowdpose, coco_wholebody
    format: str = "coco"  # coco (any COCO-format json) or mpii (HRNet-style json)
    train_ann: str = ""
    train_img_dir: str = ""
    val_ann: str = ""
    val_img_dir: str = ""
    val_det: str | None = None  # COCO-results detections json for testing; GT boxes when absent
    det_score_thr: float = 0.0
    # 2D->3D lifting (format h36m: VideoPose3D npz files; h36m_mmpose: the MMPose-layout npz)
    keypoints_3d: str = ""  # data_3d_h36m.npz, or the MMPose-layout npz
    keypoints_2d: str = ""  # data_2d_h36m_cpn_ft_h36m_dbb.npz or data_2d_h36m_gt.npz
    cameras: str = ""  # cameras.pkl (MMPose) or a VideoPose3D-style cameras.json
    train_subjects: tuple[str, ...] = ()  # default S1, S5, S6, S7, S8
    test_subjects: tuple[str, ...] = ()  # default S9, S11
    flip_augment: bool = True  # lifting: every training window also flipped (HoT)
    mv_train_every: int = 5  # multi-view H36M: every n-th instant for training (official: 5)
    mv_val_every: int = 64  # ... and for validation (official: 64)
    mpii_headboxes: str | None = None  # MPII PCKh: gt_valid.mat (headboxes_src) or an (N, 2, 2) .npy
    # How images become crops and outputs become numbers: a protocol of posetokens.protocols ("auto": the zoo
    # model's official one), with nested overrides, e.g. {eval: {rescore_thr: 0.01}, target: {sigma: 3}}
    protocol: str = "auto"
    protocol_overrides: dict[str, Any] = field(default_factory=dict)
    aug: str = "protocol"  # the protocol's draws, or a preset of posetokens.protocols.AUG_PRESETS (synthetic, none, ...)
    flip_test: bool | None = None  # None: the protocol's test.flip_test
    batch_size: int = 32  # per process
    val_batch_size: int = 64
    num_workers: int = 0
    skip_bad_images: bool = True  # count and skip unreadable images instead of stopping an epoch


@dataclass
class OptimCfg:
    """Optimiser, clipping and weight averaging."""

    name: str = "adam"  # adam or adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    amsgrad: bool = False  # MHFormer trains with Adam(amsgrad=True)
    grad_clip: float | None = None  # max global grad norm
    ema_decay: float | None = None  # keep an EMA copy of the weights and evaluate it
    ema_decay_end: float | None = None  # cosine-ramp the decay from ema_decay to this over the run (GTPT: 1.0)
    grad_accum: int = 1  # micro-batches per optimiser step


@dataclass
class ScheduleCfg:
    """Learning-rate schedule (per iteration) and PPT's keep-ratio schedule."""

    epochs: int = 300
    kind: str = "multistep"  # multistep, cosine, or exponential (x gamma per epoch: HoT 0.99)
    milestones: tuple[int, ...] = (200, 260)  # epochs
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_ratio: float = 0.001
    min_lr_ratio: float = 0.0  # cosine floor, relative to lr
    prune_start_epoch: int = 10  # keep ratio 1.0 before this epoch (EViT/PPT)
    prune_decay_epochs: int = 100  # cosine from 1.0 to the model's keep ratio over this many epochs


@dataclass
class TrainCfg:
    """A whole training/testing recipe."""

    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    seed: int = 0
    work_dir: str = "work_dirs/run"
    amp: bool = True  # used only when CUDA is present
    eval_interval: int = 10  # epochs; 0 disables evaluation during training
    log_interval: int = 50  # iterations
    max_steps: int | None = None  # stop (and checkpoint) after this many optimiser steps
    loss: str = "auto"  # auto: joints_mse (heatmaps); lifting: hot (MixSTE family), motionbert, mpjpe (MHFormer)
    threads: int | None = None  # torch intra-op threads on CPU


# ------------------------------------------------------------------------------------------- parsing
def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert YAML ``value`` to the annotated type ``tp`` (dataclasses, tuples, optionals, scalars)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is Any:
        return value
    raise ValueError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _from_dict(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()})


def _set_dotted(tree: dict, dotted: str, source: str) -> None:
    if "=" not in dotted:
        raise ValueError(f"{source}: override {dotted!r} must look like a.b=value")
    key, raw = dotted.split("=", 1)
    value = yaml.safe_load(raw)
    node = tree
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"{source}: override {key!r} goes through a non-mapping value")
    node[parts[-1]] = value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainCfg:
    """Read a YAML recipe (or the defaults), apply ``a.b=value`` overrides, and validate every key."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} does not exist")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: malformed YAML ({e})") from e
        if not isinstance(tree, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
        source = str(path)
    for item in overrides or []:
        _set_dotted(tree, item, "--set")
    return _from_dict(TrainCfg, tree, source)


def load_config_dict(tree: dict, source: str = "config") -> TrainCfg:
    """A recipe from an already-parsed dict (e.g. the ``config`` a checkpoint stores), validated like a file."""
    return _from_dict(TrainCfg, dict(tree), source)


def config_to_dict(cfg: Any) -> dict:
    """A YAML/JSON-ready dict of a config (tuples become lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))
