"""Checkpoint files: atomic writes, reading with clear errors, and self-describing checkpoints.

Every checkpoint we write (``train``'s ``last.pth``/``best.pth``/``final.pth``, ``convert``'s output) carries
:func:`describe`: the zoo name, the model overrides, the protocol, the metainfo and the package version, so
``test``, ``infer``, ``lift`` and ``export`` rebuild the trained model from ``--weights`` alone
(:func:`load_trained`). Official releases still load by zoo name.
"""

from __future__ import annotations

import dataclasses
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it over ``path``.

    A crash mid-write leaves the previous file intact; readers never see a half-written checkpoint. The file gets
    the umask's permissions (``0o666 & ~umask``, like ``open(path, "w")``), not ``mkstemp``'s private 0600.
    """
    from posetokens.fileio import atomic_write

    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: torch.save(obj, f), "a checkpoint")


def load_file(path: str | Path, weights_only: bool = True) -> Any:
    """``torch.load`` on CPU with errors that name the file (a folder, a missing or unreadable file, not a
    checkpoint)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory, expected a checkpoint file (.pth)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except OSError as e:
        if e.errno == errno.EINVAL:  # torch's zip reader on a cut-off archive: the file reads, its contents do not
            raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt? "
                             f"{path.stat().st_size} bytes; torch.load: {e.strerror})") from None
        if e.filename is None:  # torch reports some read errors without the file
            e.filename = str(path)
        raise
    except Exception as e:  # pickle, zip and unpickling-policy errors all mean "not a checkpoint we can read"
        with open(path, "rb") as f:
            head = f.read(2)
        if head != b"PK" and head[:1] != b"\x80":  # neither torch.save's zip nor a legacy pickle, by their magic
            raise ValueError(f"{path} is not a PyTorch checkpoint: expected a .pth file written by torch.save (a zip "
                             "archive or a pickle), got another kind of file") from e
        detail = str(e).strip().splitlines()[0] if str(e).strip() else "no detail"
        if len(detail) > 160:  # miniz says what failed, then runs on about its internals
            detail = detail[:160].split(". ", 1)[0] + "."
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt? {type(e).__name__}: "
                         f"{detail})") from e


# ------------------------------------------------------------------------------ self-describing checkpoints
CHECKPOINT_FORMAT = "posetokens.checkpoint/1"
# model config fields that only name files to initialise from (PCT's tokenizer_ckpt, backbone_ckpt): the saved
# state dict already holds what they loaded, so a description leaves them out and a rebuild never needs the files
INIT_ONLY_SUFFIX = "_ckpt"


def describe(name: str, overrides: Mapping[str, Any] | None, protocol: Any, metainfo: Any = None) -> dict[str, Any]:
    """What a checkpoint we write says about itself: the zoo name, every model override, the protocol
    (:meth:`posetokens.protocols.Protocol.to_dict`), the metainfo (``to_dict()``; None for lifting models whose
    joints are the model's own) and the package version. :func:`load_trained` rebuilds the model from it."""
    from posetokens import __version__

    overrides = {k: v for k, v in (overrides or {}).items() if not k.endswith(INIT_ONLY_SUFFIX)}
    return {
        "format": CHECKPOINT_FORMAT,
        "zoo_name": name,
        "model_overrides": _plain(overrides),
        "protocol": protocol.to_dict() if hasattr(protocol, "to_dict") else protocol,
        "metainfo": metainfo.to_dict() if hasattr(metainfo, "to_dict") else metainfo,
        "posetokens_version": __version__,
    }


def _plain(v: Any) -> Any:
    """JSON-ready: dataclass configs become dicts (``create_model`` reads a dict into a nested config)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _plain(dataclasses.asdict(v))
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


@dataclass
class Trained:
    """A model rebuilt from a checkpoint, with the pipeline it was trained and is tested with."""

    model: nn.Module
    protocol: Any  # posetokens.protocols.Protocol
    metainfo: Any  # PoseMetaInfo, or None (lifting)
    meta: dict[str, Any]  # the checkpoint's description (see describe); {} for a bare/official checkpoint


def read_description(path: str | Path) -> dict[str, Any] | None:
    """The description stored in a checkpoint of ours (new or older layout; plus the training recipe, ``config``,
    when ``train`` wrote it), or None for a bare state dict or an official release. Older checkpoints of ours
    carry only the zoo name (and a training config)."""
    return description_of(load_file(path))


def description_of(obj: Any) -> dict[str, Any] | None:
    """:func:`read_description` of an already loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        return None
    if obj.get("format") == CHECKPOINT_FORMAT:
        out = {k: obj[k] for k in ("format", "zoo_name", "model_overrides", "protocol", "metainfo",
                                   "posetokens_version", "config") if k in obj}
        if "optimizer" in obj and isinstance(obj.get("epoch"), int) and isinstance(obj.get("step"), int):
            out["progress"] = {"epoch": obj["epoch"], "step": obj["step"]}  # a run's last.pth: where it stands
        return out
    name = obj.get("zoo_name") or (obj["model"] if isinstance(obj.get("model"), str) else None)
    if name is None:
        return None
    cfg = obj.get("config") if isinstance(obj.get("config"), Mapping) else {}
    overrides = cfg.get("model", {}).get("overrides", {}) if cfg else {}
    return {"zoo_name": name, "model_overrides": dict(overrides), **({"config": dict(cfg)} if cfg else {})}


def load_trained(weights: str | Path, name: str | None = None, overrides: Mapping[str, Any] | None = None) -> Trained:
    """Rebuild a model from ``weights`` alone: a checkpoint we wrote names its zoo model, overrides, protocol
    and metainfo. An official release (or a bare state dict) needs ``name``, and gets the zoo model's official
    protocol. ``name``/``overrides`` given with one of our checkpoints must agree with what it stores.
    """
    from posetokens.data.metainfo import PoseMetaInfo, available_metainfo, get_metainfo
    from posetokens.protocols import resolve_protocol
    from posetokens.registry import create_model, default_protocol

    path = Path(weights)
    meta = read_description(path) or {}
    stored = meta.get("zoo_name")
    for key, kind, expected in (("zoo_name", str, "a zoo model name"),
                                ("model_overrides", Mapping, "a mapping of config fields")):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise ValueError(f"{path}: the checkpoint's {key!r} is {meta[key]!r:.60}; expected {expected} (its "
                             "description is damaged)")
    if stored is None and name is None:
        from posetokens.runtime import option

        raise ValueError(f"{path}: this checkpoint does not name its model (an official release or a bare state "
                         f"dict); give its zoo model name as well ({option('model')} with {option('weights')}, "
                         f"{option('pose2d')} with {option('pose2d_weights')}, export's name argument)")
    if stored is not None and name is not None and name != stored:
        held = {k: v for k, v in (meta.get("model_overrides") or {}).items() if not k.endswith(INIT_ONLY_SUFFIX)}
        raise ValueError(f"{path}: the checkpoint holds {stored!r}"
                         + (f" with overrides {json.dumps(held, default=str)}" if held else "")
                         + f" but {name!r} was asked for; leave out the model name (our checkpoints name their own)")
    zoo = stored or name
    kw = {k: v for k, v in (meta.get("model_overrides") or {}).items() if not k.endswith(INIT_ONLY_SUFFIX)}
    if overrides:
        for k, v in overrides.items():
            if k.endswith(INIT_ONLY_SUFFIX):
                continue  # initial-weight files: the checkpoint's own state dict replaces what they would load
            if k in kw and _plain(kw[k]) != _plain(v):
                raise ValueError(f"{path}: model override {k}={v!r} differs from the checkpoint's {kw[k]!r}")
            kw[k] = v
    model = create_model(zoo, weights=path, **kw)
    protocol = resolve_protocol(meta.get("protocol"), default=default_protocol(zoo), where=f"{path}: protocol")
    mi = meta.get("metainfo")
    metainfo = None
    if isinstance(mi, Mapping) and str(mi.get("name")).strip().lower() not in available_metainfo():
        metainfo = PoseMetaInfo.from_dict(mi, f"{path}: metainfo")  # a skeleton of one's own, stored whole
    elif isinstance(mi, Mapping):
        metainfo = get_metainfo(str(mi.get("name")))
        if list(metainfo.keypoint_names) != list(mi.get("keypoint_names", metainfo.keypoint_names)):
            raise ValueError(f"{path}: stored metainfo {mi.get('name')!r} has other keypoints than the built-in one")
    return Trained(model, protocol, metainfo, meta)
