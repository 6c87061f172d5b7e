"""A :class:`~posetokens.protocols.Protocol` made into the top-down data pipeline: the one place where a protocol's
box rule, warp and augmentation become a :class:`~posetokens.data.transforms.TopdownPipeline` and its GT-box
cleaning a dataset setting. Training, ``test``, ``evaluate`` and ``infer`` all build their crops here.

* :func:`build_pipeline`: warp kind (``Protocol.warp``), box centre offset (``BoxRule.center_offset``), padding
  (``BoxRule.padding`` for training, ``BoxRule.test_padding`` otherwise), the augmentation (``Protocol.aug``: order,
  samplers, half body) and which joints the affine moves.
* :func:`build_coco_dataset` / :func:`clean_gt_box`: the GT-box cleaning rule ``BoxRule.gt_clean``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from posetokens.codecs.base import BaseKeypointCodec
from posetokens.data.datasets.coco_style import CocoStyleDataset, PathLike, clean_gt_bbox
from posetokens.data.metainfo import PoseMetaInfo
from posetokens.data.transforms import TopdownPipeline
from posetokens.protocols import BoxRule, Protocol

__all__ = ["build_coco_dataset", "build_pipeline", "clean_gt_box"]


def build_pipeline(
    protocol: Protocol,
    input_size_hw: tuple[int, int],
    metainfo: PoseMetaInfo | str,
    codec: BaseKeypointCodec | None = None,
    train: bool = False,
    normalize: bool = True,
) -> TopdownPipeline:
    """The top-down pipeline of ``protocol`` for crops of ``input_size_hw`` = (h, w).

    ``train`` draws the protocol's augmentation (none when ``protocol.aug`` is None) and pads boxes by
    ``box.padding``; otherwise no augmentation and ``box.test_padding`` (PCT: 1.12). Fixed augmentation values can
    still be given per call (``pipeline(..., draws=AugDraws(...))``). ``codec`` (e.g.
    ``posetokens.protocols.codec.build_codec(protocol, input_size_hw, heatmap_size_hw)``) makes the targets;
    ``normalize=False`` returns uint8 RGB crops (inference normalises on the device).

    Invisible joints: MMPose 1.x (``box.move_invisible_joints``) maps every joint through the affine; the official
    HRNet-era and mmpose 0.x code (every other protocol) moves only joints with visibility > 0 and zeroes the
    others on a flip. The HRNet-era ``JointsDataset`` protocols (TokenPose/PPT, GTPT: ``box.float32``) keep the box
    centre and scale in float32 as the official code does (``TopdownPipeline(float32_box=True)``).
    """
    if protocol.task not in ("topdown", "multiview"):
        raise ValueError(f"protocol {protocol.name!r} is a {protocol.task!r} protocol, not a top-down one")
    if len(input_size_hw) != 2 or min(int(v) for v in input_size_hw) < 2:
        raise ValueError(f"input_size_hw must be (h, w) with both >= 2, got {input_size_hw!r}")
    h, w = (int(v) for v in input_size_hw)
    aug = protocol.aug
    return TopdownPipeline(
        (w, h), metainfo, codec=codec, train=bool(train) and aug is not None, aug=aug,
        bbox_padding=protocol.box.padding if train else protocol.box.test_padding,
        normalize=normalize, warp=protocol.warp, center_offset=protocol.box.center_offset,
        transform_invisible=protocol.box.move_invisible_joints, float32_box=protocol.box.float32,
    )


def clean_gt_box(bbox: Any, image_size_hw: tuple[int, int] | None, rule: BoxRule | Protocol | str,
                 area: float | None = None) -> np.ndarray | None:
    """A GT ``[x, y, w, h]`` box cleaned by a protocol's ``BoxRule.gt_clean`` (or the rule's name); ``None`` when
    the rule drops the annotation. See :func:`posetokens.data.datasets.coco_style.clean_gt_bbox`."""
    if isinstance(rule, Protocol):
        rule = rule.box
    name = rule.gt_clean if isinstance(rule, BoxRule) else str(rule)
    return clean_gt_bbox(bbox, image_size_hw, name, area)


def build_coco_dataset(
    protocol: Protocol,
    ann_file: PathLike,
    img_dir: PathLike,
    metainfo: Any,
    mode: str = "train",
    det_file: PathLike | None = None,
    transform: Callable[[dict[str, Any]], Any] | None = None,
    **kwargs: Any,
) -> CocoStyleDataset:
    """A :class:`CocoStyleDataset` whose GT boxes (training, or ``mode='test'`` without ``det_file``) are cleaned,
    and whose annotations are skipped, by ``protocol.box.gt_clean``, and whose images are read as the protocol
    reads them (``exif_orientation``). Other keyword arguments go to the dataset."""
    kwargs.setdefault("exif_orientation", protocol.exif_orientation)
    return CocoStyleDataset(ann_file, img_dir, metainfo, mode=mode, det_file=det_file, transform=transform,
                            gt_clean=protocol.box.gt_clean, **kwargs)
