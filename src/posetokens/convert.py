"""Loading weights into zoo models: unwrap containers, convert official layouts, load strictly.

Each family's ``checkpoint_filter_fn`` (beside its model) maps an official state dict to ours; this module
unwraps the containers the official repos save (``state_dict``, ``best_state_dict``, ``model_pos``, ``module.`` prefixes)
and refuses any checkpoint that does not fit, naming the missing, unexpected and mis-shaped keys.
:func:`load_matching` is the one partial load: a training's start from a checkpoint of another skeleton or head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from posetokens.checkpoint import atomic_save, description_of, load_file
from posetokens.registry import create_model, get_entry, get_family

# Containers, in order of preference, that hold a state dict inside a saved dict.
_CONTAINER_KEYS = ("state_dict_ema", "ema", "best_state_dict", "state_dict", "model", "model_pos", "net", "params")


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model."""


def unwrap_state_dict(obj: Any, source: str = "checkpoint", prefer: tuple[str, ...] = _CONTAINER_KEYS) -> dict[str, Tensor]:
    """Find the tensor state dict inside a saved object and strip ``module.`` prefixes."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        sd = dict(obj)
    elif isinstance(obj, Mapping):
        for key in prefer:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                sd = dict(inner)
                break
        else:
            raise CheckpointMismatchError(
                f"{source}: no state dict found; expected a dict of tensors or one under any of {list(prefer)}, "
                f"got keys {list(obj)[:10]}"
            )
    else:
        raise CheckpointMismatchError(f"{source}: expected a dict of tensors, got {type(obj).__name__}")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _fmt(keys: list[str], limit: int = 6) -> str:
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def strict_load(model: nn.Module, state_dict: Mapping[str, Tensor], source: str = "checkpoint",
                converted: bool = False) -> None:
    """Load ``state_dict`` into ``model``; any missing, unexpected or mis-shaped key raises, by name. ``converted``:
    ``state_dict`` was renamed from an official file, so the missing keys carry this library's names (the
    unexpected ones are the file's, left over)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        name = getattr(model, "zoo_name", type(model).__name__)
        parts = []
        if missing:
            ours = " in posetokens' names, after converting the file's" if converted else ""
            parts.append(f"missing keys ({len(missing)}{ours}): {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_fmt(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_fmt(shapes, 4)}")
        raise CheckpointMismatchError(f"{source} does not fit model {name}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def load_init_file(module: nn.Module, path: str | Path, what: str,
                   prepare: Callable[[dict[str, Tensor], str], dict[str, Tensor]]) -> dict[str, Any] | None:
    """Load the file a model's config names to start a part from (``what``: "PCT tokenizer", ...) strictly into
    ``module``, after the family's ``prepare(state_dict, source)`` (prefixes, official layout, size checks):
    :attr:`posetokens.registry.Family.init_files` calls it through :func:`~posetokens.registry.create_model`.
    The module's ``init_file`` then names the file (the trainer says which frozen parts no file set). Returns
    the file's description when it is a checkpoint of ours (:func:`~posetokens.checkpoint.description_of`),
    else None."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} checkpoint {p} does not exist")
    obj = load_file(p)
    sd = prepare(unwrap_state_dict(obj, str(p)), str(p))
    strict_load(module, sd, f"{p} ({what.split()[-1]})")
    module.init_file = str(p)
    return description_of(obj)


def _converted(sd: dict[str, Tensor], model: nn.Module, family: str, source: str) -> dict[str, Tensor]:
    """``sd`` in this library's names (the family's converter; ours pass through)."""
    try:
        return get_family(family).convert(sd, model)
    except CheckpointMismatchError:
        raise
    except ValueError as e:  # a converter's own check (a sine table of another size...): said with the file
        raise CheckpointMismatchError(str(e) if source in str(e) else f"{source}: {e}") from None


def load_weights(model: nn.Module, weights: str | Path | Mapping[str, Any], family: str, source: str = "") -> nn.Module:
    """Load ours or an official checkpoint of ``family`` into ``model`` (converted, strict)."""
    source = source or str(weights)
    obj = load_file(weights) if isinstance(weights, (str, Path)) else weights
    sd = unwrap_state_dict(obj, source)
    converted = _converted(sd, model, family, source)
    try:
        strict_load(model, converted, source, converted=set(converted) != set(sd))
    except CheckpointMismatchError as e:
        held = (description_of(obj) or {}).get("zoo_name")  # one of ours names what it holds
        if isinstance(held, str) and held != getattr(model, "zoo_name", None):
            raise CheckpointMismatchError(f"{e}; the checkpoint holds {held!r}") from None
        raise
    return model


# A partial load needs at least this share of the model's weight tensors to fit by name and shape (a per-keypoint
# tensor by its other sizes), and MIN_PARTIAL_VALUES of its values to come from the file: less is another family's
# checkpoint, one of other widths, or the wrong file, not a model of another skeleton, head or input size (a
# PPT-S at 384x288 from one at 256x192 takes 47% of its values: its heatmap head is larger).
MIN_PARTIAL_SHARE = 0.5
MIN_PARTIAL_VALUES = 0.25


@dataclass
class PartialLoad:
    """What :func:`load_matching` took from a checkpoint into a model."""

    source: str
    loaded: list[str] = field(default_factory=list)  # model weight tensors copied whole
    rows: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # per-keypoint tensor: (keypoint, source)
    fresh: dict[str, list[str]] = field(default_factory=dict)  # per-keypoint tensor: keypoints left at initialisation
    how: dict[str, str] = field(default_factory=dict)  # per-keypoint tensor: how its rows were matched (a sentence)
    kept: list[str] = field(default_factory=list)  # model tensors left at initialisation, each "name (why)"
    unused: list[str] = field(default_factory=list)  # checkpoint tensors no model tensor took
    share: float = 0.0  # of the model's values (state-dict elements) that came from the checkpoint

    def summary(self) -> str:
        """One line for the log: what was loaded, what starts from initialisation, what the file had over."""
        share = math.floor(self.share * 1000) / 10  # 99.99% is not "100.0%"
        parts = [f"{self.source}: loaded {len(self.loaded)} tensors whole ({share:.1f}% of the model's values)"]
        for name, rows in self.rows.items():
            fresh = self.fresh.get(name, [])
            took = ", ".join(f"{i}<-{src}" for i, src in rows[:8]) + (" ..." if len(rows) > 8 else "")
            parts.append(f"{name}: {len(rows)} keypoint rows taken" + (f" ({took})" if rows else "")
                         + (f", {len(fresh)} start from initialisation ({_fmt(fresh)})" if fresh else "")
                         + (f" ({self.how[name]})" if self.how.get(name) else ""))
        if self.kept:
            parts.append(f"start from initialisation: {_fmt(self.kept, 4)}")
        if self.unused:
            parts.append(f"not used from the file: {_fmt(self.unused, 4)}")
        return "; ".join(parts)

    def record(self) -> dict[str, Any]:
        """The report as plain JSON (the ``initial_weights`` record of a training's ``log.jsonl``)."""
        return {"source": self.source, "share_of_values": self.share, "loaded": len(self.loaded),
                "keypoint_rows": {k: [list(r) for r in v] for k, v in self.rows.items()},
                "fresh_keypoints": self.fresh, "matched": self.how, "kept": self.kept, "unused": self.unused}


def _source_names(obj: Any) -> list[str] | None:
    """The keypoint names of a checkpoint of ours (its stored layout), or None (an official file, an older one)."""
    meta = (description_of(obj) or {}).get("metainfo")
    names = meta.get("keypoint_names") if isinstance(meta, Mapping) else None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def _label(names: Sequence[str] | None, i: int) -> str:
    return names[i] if names is not None and i < len(names) else str(i)


def _row_sources(name: str, rows: int, src_rows: int, names: Sequence[str] | None, src_names: Sequence[str] | None,
                 keypoint_map: Sequence[int | str | None] | None, source: str,
                 same_model: bool = False) -> tuple[list[int | None], str]:
    """For each of the model's ``rows`` keypoint rows of tensor ``name``, the checkpoint row it starts from (None:
    its initialisation), and how they were matched when that needs saying. ``keypoint_map`` gives them (index or
    checkpoint keypoint name, per model keypoint) for a file of another layout; a file that stores the model's own
    layout's names takes its rows as they are. A map applied to a file that stores no names but fits every other
    tensor of the model (``same_model``: perhaps of the model's own layout) says how to keep its rows. Otherwise
    keypoints are matched by name, or taken in order when the file stores no names and the counts agree."""
    own_layout = (src_names is not None and names is not None and src_rows == rows
                  and list(src_names[:src_rows]) == list(names[:rows]))
    if keypoint_map is not None:
        if len(keypoint_map) != rows:
            raise ValueError(f"model.weights_keypoints: {len(keypoint_map)} entries for {rows} keypoint rows of "
                             f"{name}; expected one per keypoint of the model (a checkpoint keypoint or null)")
        out: list[int | None] = []
        for i, want in enumerate(keypoint_map):
            if want is None:
                out.append(None)
            elif isinstance(want, bool) or not isinstance(want, (int, str)):
                raise ValueError(f"model.weights_keypoints[{i}]: expected a checkpoint keypoint's index or name, or "
                                 f"null, got {want!r}")
            elif isinstance(want, str):
                if src_names is None:
                    raise ValueError(f"model.weights_keypoints[{i}]: {want!r} is a name, but {source} stores no "
                                     "keypoint names (an official or older file); give the checkpoint keypoint's index")
                if want not in src_names[:src_rows]:
                    raise ValueError(f"model.weights_keypoints[{i}]: {source} has no keypoint {want!r} among the "
                                     f"{src_rows} rows of {name}; it has {_fmt(list(src_names[:src_rows]), 8)}")
                out.append(src_names.index(want))
            elif not 0 <= want < src_rows:
                raise ValueError(f"model.weights_keypoints[{i}]: {want} is outside the {src_rows} keypoint rows of "
                                 f"{name} in {source}")
            else:
                out.append(int(want))
        if own_layout:  # checked entry by entry all the same
            return list(range(rows)), "model.weights_keypoints not applied: the file stores the model's own layout"
        doubt = src_names is None and same_model and src_rows == rows
        return out, ("model.weights_keypoints applied to a file that stores no keypoint names and fits every other "
                     "tensor of the model: if it is of the model's own layout (an official multi-view release), "
                     "drop the map (model.weights_keypoints=null) or convert the file first (posetokens convert)"
                     if doubt else "")
    if names is not None and src_names is not None:
        where = {n: i for i, n in enumerate(src_names[:src_rows])}
        return [where.get(n) for n in names[:rows]] + [None] * (rows - len(names[:rows])), ""
    if rows == src_rows:
        return list(range(rows)), "the file stores no keypoint names (an official release): taken in order"
    return [None] * rows, (f"the file stores no keypoint names (an official release) and has {src_rows} rows: "
                           "model.weights_keypoints gives each keypoint's row by index")


def load_matching(model: nn.Module, weights: str | Path | Mapping[str, Any], family: str, source: str = "",
                  keypoint_names: Sequence[str] | None = None,
                  keypoint_map: Sequence[int | str | None] | None = None) -> PartialLoad:
    """Start ``model`` from a checkpoint of its family with another skeleton, head or input size (a training's
    ``model.weights_strict: false``).

    Every tensor whose name and shape fit is copied (after the family's conversion of an official file). A
    tensor the model declares per keypoint (``keypoint_rows``: (name, axis) pairs; row i = keypoint i) is copied
    row by row: keypoint i takes the checkpoint's row ``keypoint_map[i]`` (an index, a name of the checkpoint's
    layout, or None; not applied to a file of the model's own layout), or, without a map, the row of the keypoint
    of the same name (``keypoint_names`` against the names a checkpoint of ours stores; in order for a file that
    stores none, when the counts agree). Everything else keeps its initialisation and is listed in the returned
    :class:`PartialLoad`. Raises :class:`CheckpointMismatchError` when less than :data:`MIN_PARTIAL_SHARE` of the
    model's weight tensors fit, or less than :data:`MIN_PARTIAL_VALUES` of its values come from the file (another
    family's file, or one of other widths)."""
    source = source or str(weights)
    obj = load_file(weights) if isinstance(weights, (str, Path)) else weights
    sd = unwrap_state_dict(obj, source)
    try:
        converted = _converted(sd, model, family, source)
    except CheckpointMismatchError as e:  # an official file is converted for the model's own sizes
        raise CheckpointMismatchError(f"{e}; to start a model of other sizes from an official file, convert it at "
                                      "its own size first (posetokens convert) and start from the converted file"
                                      ) from None
    own = model.state_dict()
    per_keypoint = dict(getattr(type(model), "keypoint_rows", ()))  # (tensor name, keypoint axis) pairs
    src_names = _source_names(obj)
    same_model = all(k in converted and tuple(converted[k].shape) == tuple(v.shape)  # a file of this very model
                     for k, v in own.items() if k not in per_keypoint)
    report = PartialLoad(source)
    take: dict[str, Tensor] = {}
    taken_values = fitting = 0
    for key, mine in own.items():
        theirs = converted.get(key)
        weight = mine.is_floating_point()  # a BatchNorm's step counter is no weight
        if key in per_keypoint and theirs is not None and theirs.dim() == mine.dim():
            axis = per_keypoint[key]
            others = [d for d in range(mine.dim()) if d != axis]
            if all(theirs.shape[d] == mine.shape[d] for d in others):
                rows, how = _row_sources(key, mine.shape[axis], theirs.shape[axis], keypoint_names, src_names,
                                         keypoint_map, source, same_model)
                value = mine.detach().clone()
                picked = [(i, r) for i, r in enumerate(rows) if r is not None]
                if picked:
                    dst = torch.tensor([i for i, _ in picked])
                    src = torch.tensor([r for _, r in picked])
                    value.index_copy_(axis, dst, theirs.to(mine.dtype).index_select(axis, src))
                    take[key] = value
                    taken_values += value.numel() // mine.shape[axis] * len(picked)
                report.rows[key] = [(_label(keypoint_names, i), _label(src_names, r)) for i, r in picked]
                report.fresh[key] = [_label(keypoint_names, i) for i, r in enumerate(rows) if r is None]
                report.how[key] = how
                fitting += 1
                continue
        if theirs is None:
            report.kept.append(f"{key} (not in the file)")
        elif tuple(theirs.shape) != tuple(mine.shape):
            report.kept.append(f"{key} (file {tuple(theirs.shape)}, model {tuple(mine.shape)})")
        else:
            take[key] = theirs
            taken_values += mine.numel()
            if weight:
                report.loaded.append(key)
                fitting += 1
    report.unused = [k for k in converted if k not in own]
    total = sum(t.numel() for t in own.values())
    report.share = taken_values / total if total else 1.0
    weights_total = sum(t.is_floating_point() for t in own.values())
    if fitting < MIN_PARTIAL_SHARE * weights_total or report.share < MIN_PARTIAL_VALUES:
        name = getattr(model, "zoo_name", type(model).__name__)
        raise CheckpointMismatchError(
            f"{source} fits only {fitting} of model {name}'s {weights_total} weight tensors by name and shape "
            f"({report.share:.1%} of its values); a partial load needs at least {MIN_PARTIAL_SHARE:.0%} of them and "
            f"{MIN_PARTIAL_VALUES:.0%} of the values: is it a checkpoint of another family or of other widths (it "
            f"holds {_fmt(list(converted), 3)})?")
    model.load_state_dict(take, strict=False)
    return report


def convert_checkpoint(name: str, official: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Convert the official checkpoint ``official`` for zoo model ``name`` and save it to ``out``.

    The saved file describes itself (:func:`posetokens.checkpoint.describe`: zoo name, the zoo model's official
    protocol, its metainfo, the package version) beside ``state_dict`` and ``converted_from``, so ``test``,
    ``infer``, ``lift`` and ``export`` need only ``--weights``; ``create_model(name, weights=out)`` loads it too.
    ``out`` is never the official file; an existing ``out`` is replaced only with ``overwrite``. Both, and a
    folder that cannot be written, are refused before anything is loaded.
    """
    from posetokens.checkpoint import describe
    from posetokens.data.metainfo import metainfo_for_model
    from posetokens.fileio import check_no_overwrite, writable_dir
    from posetokens.protocols import get_protocol
    from posetokens.registry import default_protocol

    out = Path(out)
    check_no_overwrite([("--official", official)], [("--out", out, "choose another --out path")])
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; expected the path of the .pth file to write")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ValueError(f"--out {out} exists; choose another path, or pass --overwrite to replace it")
    writable_dir(out.parent, "folder of --out")
    model = create_model(name)
    load_weights(model, official, get_entry(name).family)
    metainfo = None if model.task == "lifting" else metainfo_for_model(model.cfg.num_keypoints, name)
    payload = {**describe(name, {}, get_protocol(default_protocol(name)), metainfo),
               "state_dict": model.state_dict(), "converted_from": str(official)}
    return atomic_save(payload, out)
