"""Importable, frozen dataset metainfo objects.

>>> from posetokens.data.metainfo import COCO, get_metainfo
>>> COCO.num_keypoints, get_metainfo("coco_wholebody").parts["face"]
(17, slice(23, 91, None))
"""

from __future__ import annotations

import difflib
import functools
import math
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Sequence

from .base import PoseMetaInfo, from_coco_categories, infer_flip_partners
from .coco import COCO
from .coco_wholebody import COCO_WHOLEBODY
from .crowdpose import CROWDPOSE
from .h36m import H36M
from .mpii import MPII

__all__ = [
    "BUILTIN_KEYPOINT_COUNTS",
    "COCO",
    "COCO_WHOLEBODY",
    "CROWDPOSE",
    "H36M",
    "MPII",
    "PoseMetaInfo",
    "available_metainfo",
    "from_coco_categories",
    "get_metainfo",
    "infer_flip_partners",
    "first_name_difference",
    "is_skeleton_file",
    "read_skeleton_file",
]

_BUILTIN: Mapping[str, PoseMetaInfo] = MappingProxyType(
    {m.name: m for m in (COCO, COCO_WHOLEBODY, MPII, CROWDPOSE, H36M)}
)
_ALIASES: Mapping[str, str] = MappingProxyType(
    {"coco17": "coco", "wholebody": "coco_wholebody", "coco-wholebody": "coco_wholebody",
     "human36m": "h36m", "h3.6m": "h36m"}
)


def available_metainfo() -> list[str]:
    """Names accepted by :func:`get_metainfo`."""
    return sorted(_BUILTIN)


def get_metainfo(name: str | PoseMetaInfo) -> PoseMetaInfo:
    """Return the built-in metainfo for ``name`` (case-insensitive), or the layout of a skeleton file of one's own
    when ``name`` is a path ending in ``.json`` (:func:`read_skeleton_file`).

    A :class:`PoseMetaInfo` passed in is returned unchanged, so callers can accept
    either a name or a custom object.

    Raises:
        ValueError: for an unknown name, listing close matches and all choices; a skeleton file that is missing or
            malformed (one line naming the file and the field).
    """
    if isinstance(name, PoseMetaInfo):
        return name
    if is_skeleton_file(name):
        return read_skeleton_file(name)
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key in _BUILTIN:
        return _BUILTIN[key]
    close = difflib.get_close_matches(key, list(_BUILTIN) + list(_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown metainfo {name!r}.{hint} Available: {', '.join(available_metainfo())}, or the path of a skeleton "
        "file of your own ending in .json (docs/training.md, 'Your own dataset')."
    )


_SKELETON_KEYS = ("name", "keypoints", "sigmas", "skeleton", "flip_pairs", "upper_body", "lower_body", "id",
                  "supercategory")  # COCO's categories entry, and what it lacks


def first_name_difference(ours: Sequence[str], theirs: Sequence[str]) -> int | None:
    """The first index at which two keypoint name lists differ (the shorter one's length when one extends the other),
    or None when they are equal: what a layout mismatch names."""
    ours, theirs = [str(n) for n in ours], [str(n) for n in theirs]
    if ours == theirs:
        return None
    return next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))


def is_skeleton_file(name: object) -> bool:
    """Whether ``name`` names a skeleton file (a path ending in ``.json``) rather than a built-in layout."""
    return isinstance(name, (str, os.PathLike)) and str(name).strip().lower().endswith(".json")


def read_skeleton_file(path: str | os.PathLike) -> PoseMetaInfo:
    """The keypoint layout of a dataset of one's own, from a JSON file: one COCO ``categories`` entry (``keypoints``:
    the K names in the annotations' order; ``skeleton``: links as 1-based index pairs, COCO's convention) with
    ``sigmas`` (K OKS sigmas, which the evaluation needs) added, and optionally ``flip_pairs`` (pairs of names a
    horizontal flip swaps; default: found from ``left``/``right``, ``l_``/``_r`` in the names), ``upper_body`` and
    ``lower_body`` (names for the half-body augmentation; with neither it is off) and ``name`` (default the file's
    stem; not a built-in name). Each problem is one ``ValueError`` naming the file and the field. The file is read
    at each call (it is small) and parsed once per content."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"skeleton file {p.absolute()} is a folder; expected a .json file")
    try:
        raw = p.read_bytes()
    except OSError:
        raise ValueError(f"skeleton file {p.absolute()} does not exist (a dataset's keypoint layout: a path ending in "
                         f".json, or one of {', '.join(available_metainfo())})") from None
    return _read_skeleton(str(p.resolve()), raw)


@functools.lru_cache(maxsize=16)
def _read_skeleton(path: str, raw: bytes) -> PoseMetaInfo:
    import json

    from posetokens.runtime import short_repr

    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text/JSON file ({e})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object (a COCO categories entry with 'sigmas'), got "
                         f"{type(data).__name__}")
    if {"annotations", "images"} & set(data):
        raise ValueError(f"{path}: this is an annotation json; a skeleton file is one of its 'categories' entries "
                         "(the one with 'keypoints') with 'sigmas' added, saved as a file of its own")
    unknown = sorted(set(data) - set(_SKELETON_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown field {unknown[0]!r}; expected some of {', '.join(_SKELETON_KEYS[:8])}")

    def names_list(field: str, required: bool = False) -> list[str]:
        value = data.get(field)
        if value is None and not required:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value) or (required and not value):
            raise ValueError(f"{path}: field {field!r} must be a list of keypoint names (strings), got "
                             f"{short_repr(value)}")
        return value

    names = names_list("keypoints", required=True)
    k = len(names)

    def numbers(field: str, positive: bool) -> list[float] | None:
        value = data.get(field)
        if value is None:
            if field == "sigmas":
                raise ValueError(f"{path}: missing field 'sigmas': {k} OKS sigmas, one per keypoint (COCO's are "
                                 "0.025-0.107), which the evaluation scores with")
            return None
        ok = isinstance(value, list) and len(value) == k and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > 0 or (not positive and v == 0)) for v in value)
        if not ok:
            bound = "> 0" if positive else ">= 0"
            raise ValueError(f"{path}: field {field!r} must be {k} finite numbers {bound} (one per keypoint), got "
                             f"{short_repr(value)}")
        return [float(v) for v in value]

    sigmas = numbers("sigmas", True)
    pairs = data.get("flip_pairs")
    flip: dict[str, str] | None = None
    if pairs is not None:
        if not isinstance(pairs, list) or not all(isinstance(q, list) and len(q) == 2 and all(
                isinstance(n, str) for n in q) for q in pairs):
            raise ValueError(f"{path}: field 'flip_pairs' must be a list of [left name, right name] pairs, got "
                             f"{short_repr(pairs)}")
        flip = {}
        for a, b in pairs:
            for n in (a, b):
                if n not in names:
                    raise ValueError(f"{path}: field 'flip_pairs' names {n!r}, which is not one of its 'keypoints'")
            if a == b or a in flip or b in flip:
                raise ValueError(f"{path}: field 'flip_pairs': {[a, b]} pairs a keypoint twice")
            flip[a], flip[b] = b, a
    links = data.get("skeleton", [])
    if not isinstance(links, list) or not all(isinstance(q, list) and len(q) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= k for i in q) for q in links):
        raise ValueError(f"{path}: field 'skeleton' must be a list of [i, j] links, 1-based keypoint indices from 1 "
                         f"to {k} (COCO's convention), got {short_repr(links)}")
    name = data.get("name", Path(path).stem)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: field 'name' must be a non-empty string, got {short_repr(name)}")
    if name.strip().lower() in _BUILTIN or name.strip().lower() in _ALIASES:
        which = "field 'name'" if "name" in data else "its name (the file's stem; no 'name' field)"
        raise ValueError(f"{path}: {which} is {name!r}, a built-in layout's name; give your layout its own "
                         "(a checkpoint finds a built-in layout by its name)")
    upper, lower = names_list("upper_body"), names_list("lower_body")
    try:
        return from_coco_categories(
            {"keypoints": names, "skeleton": links}, name=name, sigmas=sigmas, flip=flip, upper_body=upper,
            lower_body=lower)
    except ValueError as e:  # duplicate names, a body part named twice, ...
        raise ValueError(f"{path}: {e}") from None


# the built-in layout a zoo model of each keypoint count predicts (H36M's 17 joints: by the model's name)
BUILTIN_KEYPOINT_COUNTS: Mapping[int, str] = MappingProxyType(
    {17: "coco", 16: "mpii", 133: "coco_wholebody", 14: "crowdpose"})


def metainfo_for_model(num_keypoints: int, zoo_name: str = "") -> PoseMetaInfo:
    """The built-in metainfo of a zoo model, from its keypoint count (17 COCO, or H36M for an ``h36m`` model;
    16 MPII, 133 COCO-WholeBody, 14 CrowdPose)."""
    k = int(num_keypoints)
    if k == 17 and "h36m" in zoo_name:
        return get_metainfo("h36m")
    if k not in BUILTIN_KEYPOINT_COUNTS:
        raise ValueError(f"no built-in metainfo has {k} keypoints; pass a metainfo explicitly")
    return get_metainfo(BUILTIN_KEYPOINT_COUNTS[k])
