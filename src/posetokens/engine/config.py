"""Training configs: plain dataclasses read from YAML, with dotted ``--set a.b=c`` overrides.

One YAML per zoo recipe lives in ``configs/``. Every field has a default, so a recipe names only what
differs. Unknown keys are errors that name the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
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
    # false: load what fits from model.weights (another skeleton or head); the rest starts from initialisation
    weights_strict: bool = True
    # with weights_strict false: the checkpoint keypoint (index or name; null: none) each model keypoint's token
    # starts from; default: the keypoint of the same name
    weights_keypoints: tuple[int | str | None, ...] | None = None


@dataclass
class DataCfg:
    """Where the data is and how targets are made."""

    dataset: str = "coco"  # metainfo name: coco, mpii, crowdpose, coco_wholebody; or a skeleton file (.json)
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
    cameras: str | None = ""  # cameras.pkl (MMPose) or a VideoPose3D-style cameras.json (null or "": none)
    train_subjects: tuple[str, ...] = ()  # default S1, S5, S6, S7, S8
    test_subjects: tuple[str, ...] = ()  # default S9, S11
    flip_augment: bool = True  # lifting: every training window also flipped (HoT)
    mv_train_every: int = 5  # multi-view H36M: every n-th instant for training (official: 5)
    mv_val_every: int = 64  # ... and for validation (official: 64)
    mv_cameras: tuple[int, ...] = ()  # ... the camera ids of a sample, in view order (default 0 .. num_views - 1)
    mv_ransac_px: float | None = None  # ... triangulate with RANSAC over views at this threshold (px); None: DLT
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
    no_decay_1d: bool = False  # 1-D parameters and biases get no weight decay (PCT's mmcv layer-decay constructor)
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
    loss: str = "auto"  # auto: the loss the model declares for its recipe (train_loss); or one of LOSSES
    threads: int | None = None  # torch intra-op threads on CPU


# ------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class _Source:
    """Where each value of a recipe came from, for messages: the YAML file (or ``defaults``, or a checkpoint's
    stored config), unless a ``--set`` override set that field or a field above it."""

    file: str = "config"
    set_keys: tuple[str, ...] = ()

    def from_set(self, path: str) -> bool:
        """Whether the dotted field ``path`` was given by ``--set`` (itself or a mapping above it)."""
        return any(path == k or path.startswith((k + ".", k + "[")) for k in self.set_keys)

    def where(self, path: str, blame: str | None = None) -> str:
        """The message prefix for the dotted field ``path`` (blamed on ``--set`` or on the file by ``blame``)."""
        if self.from_set(blame if blame is not None else path):
            return f"--set {path}" if path else "--set"
        return f"{self.file}.{path}" if path else self.file

    def origin(self, path: str) -> str:
        """``--set`` or the file: who gave the dotted field ``path``."""
        return "--set" if self.from_set(path) else self.file


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _coerce(value: Any, tp: Any, where: str | _Source, path: str = "") -> Any:
    """Convert YAML ``value`` to the annotated type ``tp`` (dataclasses, tuples, optionals, scalars, literals).

    ``where`` is the source (a file name or a :class:`_Source`), ``path`` the dotted field; errors name both."""
    src = where if isinstance(where, _Source) else _Source(where)
    loc = src.where(path)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) > 1:  # e.g. str | int: the first type that takes the value
            for a in args:
                try:
                    return _coerce(value, a, src, path)
                except ValueError:
                    pass
            kinds = " or ".join(getattr(a, "__name__", str(a)) for a in args)
            raise ValueError(f"{loc}: expected {kinds}{' or null' if type(None) in typing.get_args(tp) else ''}, "
                             f"got {value!r}")
        return _coerce(value, args[0], src, path)
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError(f"{loc}: expected one of {list(typing.get_args(tp))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{loc}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, src, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{loc}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            inner = args[0] if args else Any
            return tuple(_coerce(v, inner, src, f"{path}[{i}]") for i, v in enumerate(value))  # items named
        if len(value) != len(args):
            raise ValueError(f"{loc}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, src, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{loc}: expected a mapping, got {value!r}")
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
    if tp is Any or not isinstance(tp, type) or tp not in (int, float, bool, str):
        return value  # Any, or a type we do not check here (the consumer does)
    raise ValueError(f"{loc}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _from_dict(cls: type, data: dict, where: str | _Source, path: str = "") -> Any:
    src = where if isinstance(where, _Source) else _Source(where)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)  # YAML reads some keys as non-strings (on: true)
    if unknown:
        from_set = [k for k in unknown if src.from_set(_join(path, k))]
        blamed = from_set or unknown
        hint = ("; YAML reads an unquoted on/off/yes/no/true/false as a boolean: quote such a key"
                if any(isinstance(k, bool) for k in blamed) else "")
        raise ValueError(f"{src.where(path, _join(path, blamed[0]))}: unknown key(s) {blamed}; known: "
                         f"{sorted(names)}{hint}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:  # a field without a default (GTPT's group needs its 'sparse' keypoints)
        raise ValueError(f"{src.where(path)}: missing key(s) {missing}; {cls.__name__} needs them")
    return cls(**{k: _coerce(v, hints[k], src, _join(path, k)) for k, v in data.items()})


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's several-line report as one line: where (line, column) and what, with what it was parsing."""
    if not isinstance(e, yaml.MarkedYAMLError) or e.problem is None:
        return " ".join(str(e).split())
    text = e.problem
    if e.problem_mark is not None:
        text = f"line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1}: {text}"
    if e.context:
        at = e.context_mark
        started = f" at line {at.line + 1}, column {at.column + 1}" if at is not None else ""
        text += f" ({e.context}{started})"
    return " ".join(text.split())


def _set_dotted(tree: dict, dotted: str, source: str) -> str:
    """Apply one ``a.b=value`` override to ``tree``; returns the dotted key it set."""
    if "=" not in dotted:
        raise ValueError(f"{source}: override {dotted!r} must look like a.b=value")
    key, raw = dotted.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"{source} {key}: the value {raw!r} is not valid YAML ({_yaml_problem(e)})") from None
    node = tree
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"{source}: override {dotted!r} must look like a.b=value")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"{source}: override {key!r} goes through a non-mapping value")
    node[parts[-1]] = value
    return key


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainCfg:
    """Read a YAML recipe (or the defaults), apply ``a.b=value`` overrides, and validate every key by type and
    range (:func:`validate_config`). Errors name the file, or ``--set`` for a field an override gave."""
    tree: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"config {path} is a directory, expected a YAML file")
        if not path.is_file():
            raise FileNotFoundError(f"config {path} does not exist")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{path}: malformed YAML at {_yaml_problem(e)}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not a UTF-8 text/YAML file ({e})") from e
        if not isinstance(tree, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
        source = str(path)
    set_keys = tuple(_set_dotted(tree, item, "--set") for item in overrides or [])
    src = _Source(source, set_keys)
    return validate_config(_from_dict(TrainCfg, tree, src), src)


def load_config_dict(tree: dict, source: str = "config") -> TrainCfg:
    """A recipe from an already-parsed dict (e.g. the ``config`` a checkpoint stores), validated like a file."""
    return validate_config(_from_dict(TrainCfg, dict(tree), source), source)


# ------------------------------------------------------------------------------------------ validation
def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_POSITIVE = (lambda v: _num(v) and v > 0, "a number > 0")
_NON_NEGATIVE = (lambda v: _num(v) and v >= 0, "a number >= 0")
_UNIT = (lambda v: _num(v) and 0 <= v <= 1, "in [0, 1]")
_COUNT = (lambda v: _int(v) and v >= 1, "an integer >= 1")
_INDEX = (lambda v: _int(v) and v >= 0, "an integer >= 0")


def _optional(rule: tuple[Any, str]) -> tuple[Any, str]:
    test, text = rule
    return (lambda v: v is None or test(v), f"{text} or null")


def _one_of(*names: str) -> tuple[Any, str]:
    return (lambda v: v in names, "one of " + ", ".join(repr(n) for n in names))


LOSSES = ("auto", "joints_mse", "simcc_kl", "gtpt", "pct", "hot", "mpjpe", "motionbert")
DATA_FORMATS = ("coco", "mpii", "h36m", "h36m_mmpose", "h36m_multiview")

# the range of every field where one exists (types are checked when the recipe is read); validate_config applies
# them in this order, before any model is built
RANGES: dict[str, tuple[Any, str]] = {
    "optim.name": _one_of("adam", "adamw"),
    "optim.lr": _POSITIVE,
    "optim.weight_decay": _NON_NEGATIVE,
    "optim.betas": (lambda v: len(v) == 2 and all(_num(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "optim.grad_clip": _optional(_POSITIVE),
    "optim.ema_decay": _optional(_UNIT),
    "optim.ema_decay_end": _optional(_UNIT),
    "optim.grad_accum": _COUNT,
    "data.format": _one_of(*DATA_FORMATS),
    "data.det_score_thr": _UNIT,
    "data.batch_size": _COUNT,
    "data.val_batch_size": _COUNT,
    "data.num_workers": _INDEX,
    "data.mv_train_every": _COUNT,
    "data.mv_val_every": _COUNT,
    "data.mv_ransac_px": _optional(_POSITIVE),
    "data.mv_cameras": (lambda v: all(_int(c) and c >= 0 for c in v) and len(set(v)) == len(v),
                        "a list of distinct camera ids >= 0"),
    "schedule.epochs": _COUNT,
    "schedule.kind": _one_of("multistep", "cosine", "exponential"),
    "schedule.milestones": (lambda v: all(_int(m) and m >= 0 for m in v), "a list of integers >= 0"),
    "schedule.gamma": _POSITIVE,
    "schedule.warmup_iters": _INDEX,
    "schedule.warmup_ratio": _UNIT,
    "schedule.min_lr_ratio": _UNIT,
    "schedule.prune_start_epoch": _INDEX,
    "schedule.prune_decay_epochs": _INDEX,
    "seed": _INDEX,
    "work_dir": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty folder name"),
    "eval_interval": _INDEX,
    "log_interval": _COUNT,
    "max_steps": _optional(_COUNT),
    "loss": _one_of(*LOSSES),
    "threads": _optional(_COUNT),
}


def _get(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def validate_config(cfg: TrainCfg, source: str | _Source = "config") -> TrainCfg:
    """Check every value of ``cfg`` by type and range (:data:`RANGES`), the zoo model name and its
    ``model.overrides`` (field names and types of the model's config), the dataset name and the protocol with its
    overrides, all before any model is built. Raises ``ValueError`` naming the source (the YAML file, or
    ``--set`` when an override gave the field), the dotted field, what was expected and what was given.
    Returns ``cfg`` unchanged."""
    src = source if isinstance(source, _Source) else _Source(source)
    _from_dict(TrainCfg, config_to_dict(cfg), src)  # types: a recipe built in Python gets the same checks
    for dotted, (test, text) in RANGES.items():
        value = _get(cfg, dotted)
        try:
            ok = bool(test(value))
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{src.origin(dotted)}: {dotted} must be {text}, got {value!r}")
    if cfg.model.weights_keypoints is not None and cfg.model.weights_strict:
        raise ValueError(f"{src.origin('model.weights_keypoints')}: model.weights_keypoints maps keypoints of a "
                         "partial load: set model.weights_strict: false (or drop the map: "
                         "model.weights_keypoints=null)")
    if cfg.optim.ema_decay_end is not None and not cfg.optim.ema_decay:
        raise ValueError(f"{src.origin('optim.ema_decay_end')}: optim.ema_decay_end needs optim.ema_decay (the start "
                         "of the ramp)")
    _check_model(cfg, src)
    _check_dataset_and_protocol(cfg, src)
    return cfg


def _check_model(cfg: TrainCfg, src: _Source) -> None:
    """The zoo name exists and ``model.overrides`` name fields of its config with values of their types."""
    from posetokens.registry import get_entry, model_config

    try:
        entry = get_entry(cfg.model.name)
    except KeyError as e:
        raise ValueError(f"{src.where('model.name')}: {e.args[0]}") from None
    _check_overrides(entry.cfg, cfg.model.overrides, "model.overrides", src)
    try:  # sizes that must fit together and ranges: the model config's own validate(), without building it
        model_config(cfg.model.name, **cfg.model.overrides)
    except (ValueError, ZeroDivisionError) as e:  # a size of 0 that no validate() check catches divides by it
        given = [k for k in src.set_keys if k == "model" or k.startswith("model.overrides")]
        where = "--set " + ", ".join(given) if given else f"{src.file}.model.overrides"
        raise ValueError(f"{where}: {e}") from None


def _check_overrides(model_cfg: Any, overrides: dict[str, Any], path: str, src: _Source) -> None:
    """Field names and value types of ``overrides`` against the (nested) model config dataclass ``model_cfg``."""
    from posetokens.registry import field_hint

    if not isinstance(overrides, dict):
        raise ValueError(f"{src.where(path)}: expected a mapping, got {overrides!r}")
    fields = {f.name for f in dataclasses.fields(model_cfg)}
    try:
        hints = typing.get_type_hints(type(model_cfg))
    except Exception:  # noqa: BLE001 (a config whose annotations do not resolve: names only, the builder checks)
        hints = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"{src.where(path, _join(path, key))}: unknown config field {key!r}; "
                             f"known: {sorted(fields)}{field_hint(key, fields)}")
        current = getattr(model_cfg, key)
        hint = hints.get(key, Any)
        if isinstance(value, dict):
            sub = current
            if sub is None:
                sub = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), None)
                sub = sub() if sub is not None else None
            if dataclasses.is_dataclass(sub):
                _check_overrides(sub, value, _join(path, key), src)
                continue
        _coerce(value, hint, src, _join(path, key))


def _check_dataset_and_protocol(cfg: TrainCfg, src: _Source) -> None:
    """``data.dataset`` is a known keypoint definition; ``data.protocol``, ``data.aug`` and
    ``data.protocol_overrides`` resolve (the trainer later checks the protocol against the built model)."""
    from posetokens.data.metainfo import get_metainfo
    from posetokens.protocols import aug_preset, resolve_protocol
    from posetokens.registry import default_protocol

    try:
        get_metainfo(cfg.data.dataset)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{src.where('data.dataset')}: {e.args[0] if e.args else e}") from None
    try:
        proto = resolve_protocol(cfg.data.protocol, default=default_protocol(cfg.model.name))
        if cfg.data.aug != "protocol":
            proto = dataclasses.replace(proto, aug=aug_preset(cfg.data.aug))
    except (KeyError, ValueError):
        return  # an unknown protocol or aug preset: data_protocol names it ("config: data.protocol: ...")
    where = src.where("data.protocol_overrides")
    try:
        proto.replace(cfg.data.protocol_overrides, where)
    except ValueError as e:
        msg = str(e)
        msg = msg[len(where) + 2:] if msg.startswith(where + ": ") else msg
        # a --set of a field inside the overrides (data.protocol_overrides.eval.rescore_thr=...) whose field the
        # error names gave the bad value, not the recipe
        inner = [k[len("data.protocol_overrides."):] for k in src.set_keys if k.startswith("data.protocol_overrides.")]
        if any(f".{k}:" in msg or msg.startswith(f"{k}:") for k in inner):
            where = "--set data.protocol_overrides"
        raise ValueError(f"{where}: {msg}") from None


# ---------------------------------------------------------------------------------------- resume checks
# fields a resumed run may change without --allow-config-change: they change neither the weights a run ends with
# nor its metrics (where the run writes, how often it logs, CPU threads and loader workers, the evaluation batch
# size, and max_steps, the point where a run is stopped to be resumed), and the weights it started from, which a
# resumed run does not read (its stored recipe keeps those it started from)
RESUME_FREE_FIELDS = ("work_dir", "log_interval", "threads", "data.num_workers", "data.val_batch_size", "max_steps",
                      "model.weights", "model.weights_strict", "model.weights_keypoints")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and (tree or not prefix):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, _join(prefix, str(k))))
        return out
    if isinstance(tree, tuple):
        tree = list(tree)
    return {prefix: tree}


def config_changes(old: dict[str, Any], new: dict[str, Any],
                   free: tuple[str, ...] = RESUME_FREE_FIELDS) -> list[tuple[str, Any, Any]]:
    """The dotted fields whose value differs between two config dicts (:func:`config_to_dict`), as
    ``(field, old, new)`` sorted by field; a missing field reads as ``<absent>``, ``free`` fields are ignored."""
    a, b = _flatten(config_to_dict_plain(old)), _flatten(config_to_dict_plain(new))
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or key.startswith(f + ".") for f in free):
            continue
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if va != vb:
            out.append((key, va, vb))
    return out


# the fields that name files or folders (plus model.overrides.*_ckpt): a trained checkpoint stores them absolute
PATH_FIELDS = ("work_dir", "model.weights", "data.train_ann", "data.train_img_dir", "data.val_ann", "data.val_img_dir",
               "data.val_det", "data.keypoints_3d", "data.keypoints_2d", "data.cameras", "data.mpii_headboxes")


def absolute_paths(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config dict ``tree`` (:func:`config_to_dict`) whose relative paths in :data:`PATH_FIELDS` and
    ``model.overrides.*_ckpt`` (and ``data.dataset`` when it names a skeleton file) are made absolute against the
    current folder; empty and absent ones stay. What ``train`` stores, so ``test --weights`` finds the data from
    any folder."""
    from posetokens.checkpoint import INIT_ONLY_SUFFIX  # the one name of "a file to initialise from"
    from posetokens.data.metainfo import is_skeleton_file

    out = config_to_dict_plain(tree)

    def fix(node: dict[str, Any], key: str) -> None:
        value = node.get(key)
        if isinstance(value, str) and value and not os.path.isabs(os.path.expanduser(value)):
            node[key] = os.path.abspath(value)
        elif isinstance(value, str) and value.startswith("~"):  # the home folder, as a shell would read it
            node[key] = os.path.expanduser(value)

    for dotted in PATH_FIELDS:
        *parents, key = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            fix(node, key)
    overrides = (out.get("model") or {}).get("overrides")
    if isinstance(overrides, dict):
        for key in [k for k in overrides if k.endswith(INIT_ONLY_SUFFIX)]:
            fix(overrides, key)
    data = out.get("data")
    if isinstance(data, dict) and is_skeleton_file(data.get("dataset")):  # a skeleton file, not a built-in name
        fix(data, "dataset")
    return out


def with_absolute_paths(cfg: TrainCfg) -> TrainCfg:
    """``cfg`` with its relative paths made absolute against the current folder (:func:`absolute_paths`)."""
    return _from_dict(TrainCfg, absolute_paths(config_to_dict(cfg)), _Source())


def config_to_dict_plain(tree: Any) -> Any:
    """Lists for tuples, recursively, so stored (JSON/pickle) and fresh configs compare equal."""
    if isinstance(tree, (list, tuple)):
        return [config_to_dict_plain(x) for x in tree]
    if isinstance(tree, dict):
        return {k: config_to_dict_plain(v) for k, v in tree.items()}
    return tree


def config_to_dict(cfg: Any) -> dict:
    """A YAML/JSON-ready dict of a config (tuples become lists)."""

    def conv(v: Any) -> Any:
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(dataclasses.asdict(cfg))
