"""Loading weights into zoo models: unwrap containers, convert official layouts, load strictly.

Each family's ``checkpoint_filter_fn`` (beside its model) maps an official state dict to ours; this module
unwraps the containers the official repos save (``state_dict``, ``best_state_dict``, ``model_pos``, ``module.`` prefixes)
and refuses any checkpoint that does not fit, naming the missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def load_weights(model: nn.Module, weights: str | Path | Mapping[str, Any], family: str, source: str = "") -> nn.Module:
    """Load ours or an official checkpoint of ``family`` into ``model`` (converted, strict)."""
    source = source or str(weights)
    obj = load_file(weights) if isinstance(weights, (str, Path)) else weights
    sd = unwrap_state_dict(obj, source)
    try:
        converted = get_family(family).convert(sd, model)
    except CheckpointMismatchError:
        raise
    except ValueError as e:  # a converter's own check (a sine table of another size...): said with the file
        raise CheckpointMismatchError(str(e) if source in str(e) else f"{source}: {e}") from None
    try:
        strict_load(model, converted, source, converted=set(converted) != set(sd))
    except CheckpointMismatchError as e:
        held = (description_of(obj) or {}).get("zoo_name")  # one of ours names what it holds
        if isinstance(held, str) and held != getattr(model, "zoo_name", None):
            raise CheckpointMismatchError(f"{e}; the checkpoint holds {held!r}") from None
        raise
    return model


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
