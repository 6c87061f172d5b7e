"""Importable, frozen dataset metainfo objects.

>>> from posetokens.data.metainfo import COCO, get_metainfo
>>> COCO.num_keypoints, get_metainfo("coco_wholebody").parts["face"]
(17, slice(23, 91, None))
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Mapping

from .base import PoseMetaInfo, from_coco_categories, infer_flip_partners
from .coco import COCO
from .coco_wholebody import COCO_WHOLEBODY, COCO_WHOLEBODY_GTPT_HALF_BODY
from .crowdpose import CROWDPOSE
from .h36m import H36M
from .mpii import MPII

__all__ = [
    "COCO",
    "COCO_WHOLEBODY",
    "COCO_WHOLEBODY_GTPT_HALF_BODY",
    "CROWDPOSE",
    "H36M",
    "MPII",
    "PoseMetaInfo",
    "available_metainfo",
    "from_coco_categories",
    "get_metainfo",
    "infer_flip_partners",
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
    """Return the built-in metainfo for ``name`` (case-insensitive).

    A :class:`PoseMetaInfo` passed in is returned unchanged, so callers can accept
    either a name or a custom object.

    Raises:
        ValueError: for an unknown name, listing close matches and all choices.
    """
    if isinstance(name, PoseMetaInfo):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key in _BUILTIN:
        return _BUILTIN[key]
    close = difflib.get_close_matches(key, list(_BUILTIN) + list(_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown metainfo {name!r}.{hint} Available: {', '.join(available_metainfo())}; training and evaluation "
        "take these only; for your own skeleton in Python, PoseEstimator(..., metainfo=from_coco_categories(...)) "
        "(docs/training.md, 'Your own dataset')."
    )


def metainfo_for_model(num_keypoints: int, zoo_name: str = "") -> PoseMetaInfo:
    """The built-in metainfo of a zoo model, from its keypoint count (17 COCO, or H36M for an ``h36m`` model;
    16 MPII, 133 COCO-WholeBody, 14 CrowdPose)."""
    k = int(num_keypoints)
    if k == 17 and "h36m" in zoo_name:
        return get_metainfo("h36m")
    by_count = {17: "coco", 16: "mpii", 133: "coco_wholebody", 14: "crowdpose"}
    if k not in by_count:
        raise ValueError(f"no built-in metainfo has {k} keypoints; pass a metainfo explicitly")
    return get_metainfo(by_count[k])
