"""Model zoo registry: every named config maps to one family builder plus its paper row.

A family (``tokenpose``, later ``gtpt``, ``pct``, ``hot`` ...) registers once with :func:`register_family`:
how to build a model from a config, how to convert an official checkpoint, and how the family's papers
counted FLOPs. A variant is then a few lines with :func:`register_model`.
"""

from __future__ import annotations

import difflib
import re
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posetokens.runtime import UserKeyError, note_random_weights


# (submodule, path, what it is, prepare: the file's state dict -> the submodule's) -> the file's description (ours) or
# None; convert.load_init_file
InitLoader = Callable[[nn.Module, str, str, Callable[[dict[str, torch.Tensor], str], dict[str, torch.Tensor]]],
                      dict[str, Any] | None]


@dataclass(frozen=True)
class PaperRow:
    """A model's row in its paper table, and the figures measured from the official code (spec)."""

    params_m: float | None = None  # as printed in the paper
    gflops: float | None = None  # as printed in the paper, in the paper's convention
    official_params_m: float | None = None  # measured from the official code (specs), total incl. buffers
    official_gflops: float | None = None  # the official code's own counter, measured (specs)
    source: str = ""


@dataclass(frozen=True)
class Family:
    """How to build, convert and count one architecture family."""

    name: str
    build: Callable[[Any], nn.Module]
    convert: Callable[[Mapping[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]]
    paper_counter: str  # how the family's paper counted GFLOPs: a key of engine.flops.PAPER_COUNTERS
    convention: str = ""
    param_counter: str = "all"  # how the paper counted params: a key of engine.flops.PARAM_COUNTERS
    protocol: str = "mmpose"  # the official pipeline of the family's variants: a name in posetokens.protocols
    # loads the files a built model's config names to start from (PCT's stage-1 tokenizer and pretrained backbone):
    # called by create_model with posetokens.convert.load_init_file, which reads and strictly loads each one, so a
    # model file reads no file itself
    init_files: Callable[[nn.Module, InitLoader], None] | None = None


@dataclass(frozen=True)
class ModelEntry:
    """A named zoo config."""

    name: str
    family: str
    cfg: Any
    paper: PaperRow = field(default_factory=PaperRow)
    description: str = ""
    protocol: str | None = None  # overrides the family's protocol (HoT-MotionBERT follows the HoT repo's)


_FAMILIES: dict[str, Family] = {}
_MODELS: dict[str, ModelEntry] = {}


def rename_by_rules(key: str, rules: Sequence[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]]) -> str:
    """A checkpoint key rewritten by the first ``(pattern, replacement)`` rule that matches it (converters'
    rename tables), or unchanged when none does."""
    for pat, repl in rules:
        if pat.match(key):
            return pat.sub(repl, key, count=1)
    return key


def register_family(family: Family) -> Family:
    """Register an architecture family."""
    _FAMILIES[family.name] = family
    return family


def register_model(name: str, family: str, cfg: Any, paper: PaperRow | None = None, description: str = "",
                   protocol: str | None = None) -> None:
    """Register a named config of ``family`` (``protocol`` only where it differs from the family's)."""
    if name in _MODELS:
        raise ValueError(f"model name {name!r} is registered twice")
    _MODELS[name] = ModelEntry(name, family, cfg, paper or PaperRow(), description, protocol)


def default_protocol(name: str) -> str:
    """The name of the official protocol (``posetokens.protocols``) of the zoo model ``name``."""
    entry = get_entry(name)
    return entry.protocol or get_family(entry.family).protocol


def _ensure_loaded() -> None:
    import posetokens.models  # noqa: F401  (registers every family and variant)


def list_models(pattern: str = "") -> list[str]:
    """Sorted names of all registered models containing ``pattern``."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if pattern in n)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; an unknown name raises ``KeyError`` suggesting close names."""
    _ensure_loaded()
    if not isinstance(name, str):
        raise ValueError(f"a model name must be a string (`posetokens models` lists them), got {type(name).__name__} "
                         f"{name!r}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserKeyError(f"unknown model {name!r}.{hint} Run `posetokens models` for the full list.")
    return _MODELS[name]


def get_family(name: str) -> Family:
    """The family registered as ``name``."""
    _ensure_loaded()
    if name not in _FAMILIES:
        raise UserKeyError(f"unknown model family {name!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def build_from_cfg(family: str, cfg: Any) -> nn.Module:
    """Build a model of ``family`` from a config object (used by parity fixtures with reduced sizes)."""
    return get_family(family).build(cfg)


def replace_nested(cfg: Any, overrides: Mapping[str, Any], where: str = "config") -> Any:
    """A copy of the frozen dataclass ``cfg`` with ``overrides`` applied; a dict reaches a nested dataclass.

    Lists become tuples. An unknown field raises ``ValueError`` naming it and the known fields. A mapping for a
    field that is ``None`` builds its declared dataclass type (``Optional[Cfg]``) from the mapping.
    """
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"{where}: unknown config field {key!r}; known: {sorted(fields)}{field_hint(key, fields)}")
        current = getattr(cfg, key)
        if isinstance(value, Mapping) and current is None:
            hint = typing.get_type_hints(type(cfg))[key]
            tp = next((a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)), hint)
            if dataclasses.is_dataclass(tp):
                current = tp()
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            changes[key] = replace_nested(current, value, f"{where}.{key}")
        elif isinstance(value, (list, tuple)):
            item = _tuple_item_type(type(cfg), key)  # tuple[SomeCfg, ...]: each mapping builds one
            changes[key] = tuple(_built(item, v, f"{where}.{key}[{i}]") if isinstance(v, Mapping) and item else v
                                 for i, v in enumerate(value))
        else:
            changes[key] = value
    return dataclasses.replace(cfg, **changes)


def field_hint(key: str, fields: Iterable[str]) -> str:
    """A pointer for an unknown model config field that names a concept another field holds (GTPT's keypoints)."""
    if key == "num_keypoints" and "num_body" in fields:
        return ("; GTPT's keypoint count is num_body, its body keypoints put in groups (docs/training.md, 'A "
                "skeleton of your own')")
    return ""


def _tuple_item_type(cls: type, key: str) -> type | None:
    """The dataclass ``T`` of a field declared ``tuple[T, ...]`` (GTPT's ``groups``), else None."""
    args = typing.get_args(typing.get_type_hints(cls)[key])
    return args[0] if args and dataclasses.is_dataclass(args[0]) else None


def _built(tp: type, value: Mapping[str, Any], where: str) -> Any:
    """The dataclass ``tp`` from a mapping of its fields (lists become tuples); ``ValueError`` naming ``where`` for an
    unknown or a missing field."""
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(fields)}")
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{where}: missing field {missing[0]!r} ({tp.__name__} needs {', '.join(missing)})")
    try:
        return tp(**{k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()})
    except ValueError as e:  # the dataclass's own check of its values
        raise ValueError(f"{where}: {e}") from None


def model_config(name: str, **overrides: Any) -> Any:
    """The config that :func:`create_model` builds for zoo model ``name`` with ``overrides``, checked by its
    ``validate()`` (sizes that fit together, ranges) without building the model; raises ``ValueError``."""
    entry = get_entry(name)
    cfg = replace_nested(entry.cfg, overrides, name) if overrides else entry.cfg
    cfg.validate()
    return cfg


def config_overrides(name: str, cfg: Any) -> dict[str, Any]:
    """The overrides that make zoo model ``name``'s config ``cfg`` (what :func:`create_model` takes to build it
    again): the fields that differ from the zoo entry's, nested configs as nested dicts of their own differences."""

    def diff(base: Any, ours: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(base):
            a, b = getattr(base, f.name), getattr(ours, f.name)
            if dataclasses.is_dataclass(a) and type(a) is type(b):
                nested = diff(a, b)
                if nested:
                    out[f.name] = nested
            elif a != b:
                out[f.name] = dataclasses.asdict(b) if dataclasses.is_dataclass(b) else b
        return out

    return diff(get_entry(name).cfg, cfg)


def create_model(name: str, weights: str | Path | None = None, **overrides: Any) -> nn.Module:
    """Build the zoo model ``name``; ``overrides`` replace config fields; ``weights`` loads a checkpoint.

    ``weights`` may be one of ours (a state dict, or a training checkpoint holding ``model``/``ema``) or an
    official release of the family, which is converted on the fly. Loading is strict: missing or
    unexpected keys and shape mismatches raise an error that names them.
    """
    entry = get_entry(name)
    family = get_family(entry.family)
    model = family.build(model_config(name, **overrides))
    model.zoo_name = name  # type: ignore[attr-defined]
    if family.init_files is not None:
        from posetokens.convert import load_init_file

        family.init_files(model, load_init_file)
    if weights is not None:
        from posetokens.convert import load_weights

        load_weights(model, weights, family=entry.family, source=str(weights))
    elif not any(p.is_meta for p in model.parameters()):  # a meta-device build holds no values (FLOP counting)
        _BUILT_WITHOUT_WEIGHTS[model] = _weights_sample(model)
    return model


# ---------------------------------------------------------------------------------------------- random weights
# create_model's models built without weights, with a sample of their initial parameters: a model given to the
# inference API whose parameters still match says so (the brief: running with random weights always says so).
# Parameters only: a forward pass in training mode moves BatchNorm statistics, not the weights. Kept by object, so
# a copy (the inference copy, a deepcopy) is not in it; weak, so a model is not kept alive.
_BUILT_WITHOUT_WEIGHTS: weakref.WeakKeyDictionary[nn.Module, list[torch.Tensor]] = weakref.WeakKeyDictionary()
_SAID_RANDOM: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def _weights_sample(model: nn.Module) -> list[torch.Tensor]:
    """About 256 values of every floating-point parameter of ``model``, on the CPU, in the parameter's dtype."""
    return [p.detach().reshape(-1)[:: max(1, p.numel() // 256)].to("cpu", copy=True) for p in model.parameters()
            if p.is_floating_point()]  # a copy: a view would follow the parameter as it changes


def has_random_weights(model: nn.Module) -> bool:
    """Whether ``model`` came from :func:`create_model` without weights and still holds its random initial
    parameters (no checkpoint loaded into it, no training step taken), in whatever floating-point type it was
    cast to since, round trips included (``.half().float()`` holds the initial values rounded to float16)."""
    initial = _BUILT_WITHOUT_WEIGHTS.get(model)
    if initial is None:
        return False
    now = _weights_sample(model)
    return len(now) == len(initial) and all(
        a.shape == b.shape and any(torch.equal(a.to(via).to(b.dtype), b) for via in (b.dtype, torch.float16,
                                                                                    torch.bfloat16))
        for a, b in zip(initial, now, strict=True))


def note_if_random_weights(model: nn.Module, role: str) -> bool:
    """:func:`has_random_weights`, said on stderr once per model (``role``: "the 2D model", ...)."""
    if not has_random_weights(model):
        return False
    if model not in _SAID_RANDOM:
        _SAID_RANDOM.add(model)
        note_random_weights(getattr(model, "zoo_name", type(model).__name__), role)
    return True
