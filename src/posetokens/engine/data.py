"""Glue between the datasets, the top-down pipeline and torch: samples, sampler and loaders.

Augmentation draws from ``numpy.random.default_rng([seed, epoch, index])``, so every sample of every
epoch is the same whatever the worker count, process count or resume point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from posetokens.codecs.base import BaseKeypointCodec
from posetokens.data.datasets import CocoStyleDataset, MpiiDataset
from posetokens.data.metainfo import PoseMetaInfo, get_metainfo
from posetokens.data.transforms import TopdownPipeline
from posetokens.engine.config import DataCfg
from posetokens.fileio import require_file
from posetokens.protocols import Protocol, aug_preset, check_model_protocol, resolve_protocol
from posetokens.protocols.codec import build_codec
from posetokens.protocols.topdown import build_pipeline
from posetokens.registry import default_protocol

logger = logging.getLogger(__name__)


class TopDownSamples(Dataset):
    """Top-down crops with targets: one dict of tensors and metadata per instance."""

    def __init__(self, base: Dataset, pipeline: TopdownPipeline, seed: int = 0, poses_only: bool = False) -> None:
        self.base, self.pipeline, self.seed, self.epoch = base, pipeline, seed, 0
        self.poses_only = poses_only  # no image read (PCT stage 1): boxes and joints only, no "image" key

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = self.base.get_data_info(idx) if self.poses_only else self.base[idx]
        img = _blank_image(item) if self.poses_only else item["img"]
        rng = np.random.default_rng([self.seed, self.epoch, idx]) if self.pipeline.train else None
        out = self.pipeline.run_item(item, rng, image=img)
        sample = {
            "warp_matrix": torch.from_numpy(np.asarray(out["warp_matrix"], dtype=np.float64)),
            "center": torch.from_numpy(np.asarray(out["center"], dtype=np.float64)),  # the (padded) box, pixels:
            "scale": torch.from_numpy(np.asarray(out["scale"], dtype=np.float64)),  # its area is OKS-NMS's area
            "img_id": int(item.get("img_id", -1)),
            "bbox_score": float(item.get("bbox_score", 1.0)),
            "index": idx,
        }
        codec = self.pipeline.codec
        for key in codec.label_keys if codec is not None else ():  # the codec's targets (heatmaps or SimCC labels)
            if key in out:
                sample[key] = torch.from_numpy(np.asarray(out[key], dtype=np.float32))
        if not self.poses_only:
            sample["image"] = torch.from_numpy(np.ascontiguousarray(out["image"], dtype=np.float32))
        return sample


def _blank_image(item: dict[str, Any]) -> np.ndarray:
    """A 1x1 stand-in image for poses-only samples. Crop-space joints do not depend on the image: a flip
    mirrors the joints and the box centre about the same axis, so the crop coordinates are the same
    whatever the width used for it."""
    return np.zeros((1, 1, 3), np.uint8)


class StepSampler(Sampler[int]):
    """Per-epoch permutation from ``(seed, epoch)``, cut into global batches of ``batch * world * accum``.

    Micro-batch ``a`` of rank ``r`` in a step is slot ``a * world + r`` of the global batch, so two
    processes with batch b see exactly what one process sees with batch b and 2 accumulation steps.
    Incomplete global batches are dropped. ``set_epoch(e, start_step)`` skips steps already done.
    """

    def __init__(self, n: int, batch: int, world: int = 1, rank: int = 0, accum: int = 1, seed: int = 0,
                 shuffle: bool = True) -> None:
        self.n, self.batch, self.world, self.rank, self.accum = n, batch, world, rank, accum
        self.seed, self.shuffle, self.epoch, self.start_step = seed, shuffle, 0, 0
        self.steps_per_epoch = n // (batch * world * accum)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set has {n} samples, fewer than one global batch of {batch * world * accum} "
                f"(data.batch_size {batch} x {world} processes x optim.grad_accum {accum}); lower data.batch_size"
            )

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Use the order of ``epoch`` and start at step ``start_step``."""
        self.epoch, self.start_step = epoch, start_step

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        global_batch = self.batch * self.world * self.accum
        for step in range(self.start_step, self.steps_per_epoch):
            base = step * global_batch
            for a in range(self.accum):
                lo = base + (a * self.world + self.rank) * self.batch
                yield from perm[lo:lo + self.batch].tolist()

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum * self.batch


def data_protocol(cfg: DataCfg, model: nn.Module, base: Protocol | None = None) -> Protocol:
    """The protocol a recipe trains and tests ``model`` with: ``data.protocol`` (``auto``: ``base`` when given --
    the protocol a checkpoint was trained with -- else the zoo model's official one,
    :func:`posetokens.registry.default_protocol`), then the ``data.aug`` preset, ``data.protocol_overrides`` (so
    they refine a preset too) and ``data.flip_test`` when set. The protocol must fit the model's output."""
    if cfg.protocol == "auto" and base is not None:
        proto = base
    else:
        default = default_protocol(model.zoo_name) if hasattr(model, "zoo_name") else None
        try:
            proto = resolve_protocol(cfg.protocol, default=default, where="config: data.protocol")
        except KeyError as e:
            raise ValueError(f"config: data.protocol: {e.args[0]}") from None
    if cfg.aug != "protocol":
        try:
            proto = dataclasses.replace(proto, aug=aug_preset(cfg.aug))
        except ValueError as e:
            raise ValueError(f"config: data.aug: {e}") from None
    proto = proto.replace(cfg.protocol_overrides, "config: data.protocol_overrides")
    if cfg.flip_test is not None:
        proto = proto.replace({"test": {"flip_test": cfg.flip_test}})
    check_model_protocol(model, proto)
    return proto


def model_codec(protocol: Protocol, model: nn.Module) -> BaseKeypointCodec:
    """The codec of a built top-down model under ``protocol``: its input and heatmap sizes."""
    mcfg = model.cfg
    return build_codec(protocol, mcfg.image_size, getattr(mcfg, "heatmap_size", None))


@contextlib.contextmanager
def fields_named(files: Mapping[str, str | None]) -> Iterator[None]:
    """A ``ValueError`` about one of ``files`` (its message starts with the path: malformed JSON, a bad entry) is
    raised again with the config field that named the file in front (``data.val_ann /a/val.json: ...``)."""
    try:
        yield
    except ValueError as e:
        for field, path in files.items():
            if path and str(e).startswith(f"{path}:"):
                raise ValueError(f"{field} {e}") from None
        raise


def build_dataset(cfg: DataCfg, split: str, protocol: Protocol) -> Dataset:
    """The raw dataset of ``split`` (train uses GT boxes cleaned by the protocol's rule; val uses detections
    when ``val_det`` is set)."""
    metainfo = get_metainfo(cfg.dataset)
    ann, img_dir = (cfg.train_ann, cfg.train_img_dir) if split == "train" else (cfg.val_ann, cfg.val_img_dir)
    if not ann:
        raise ValueError(f"config: data.{split}_ann is empty; set it in the recipe or with --set data.{split}_ann=...")
    require_file(ann, f"data.{split}_ann")  # named by its field ("annotation file not found" named the file only)
    mode = "train" if split == "train" else "test"
    if cfg.format not in ("coco", "mpii"):
        raise ValueError(f"config: data.format must be 'coco' or 'mpii', got {cfg.format!r}")
    if img_dir and not Path(img_dir).is_dir():  # else one warning per image, then "none could be read"
        raise FileNotFoundError(f"data.{split}_img_dir {img_dir} is not a folder")
    det = cfg.val_det if split != "train" and cfg.format != "mpii" else None
    with fields_named({f"data.{split}_ann": ann, "data.val_det": det}):
        if cfg.format == "mpii":
            ds: Dataset = MpiiDataset(ann, img_dir, metainfo, mode=mode, skip_bad_images=cfg.skip_bad_images,
                                      exif_orientation=protocol.exif_orientation)
        else:
            ds = CocoStyleDataset(ann, img_dir, metainfo, mode=mode, det_file=det, det_score_thr=cfg.det_score_thr,
                                  skip_bad_images=cfg.skip_bad_images, gt_clean=protocol.box.gt_clean,
                                  exif_orientation=protocol.exif_orientation)
    if split == "train" and len(ds) == 0:  # was "fewer than one global batch; lower data.batch_size"
        raise ValueError(f"data.train_ann {ann}: no person to train on (skipped: {dict(getattr(ds, 'skipped', {})) or 'none'}"
                         "; an empty 'annotations' list, or every annotation left out as counted)")
    if split == "train":
        _check_train_images(ds, ann, img_dir)
        if cfg.val_ann and os.path.isfile(cfg.val_ann) and os.path.samefile(ann, cfg.val_ann):
            logger.warning("data.val_ann %s is data.train_ann: the run is evaluated on the people it trains on, so "
                           "its metrics (and best.pth) measure fit, not accuracy on unseen people", cfg.val_ann)
    return ds


def _check_train_images(ds: Dataset, ann: str, img_dir: str) -> None:
    """The training pictures the annotations name, looked for before the run: none there is refused in one line
    naming both fields (it was found after the first epoch's reads, as "could not be read at its annotated size");
    some missing is said once with the count of people they hold (each epoch then skips them as ``bad_image``)."""
    items = getattr(ds, "data_list", None)
    if not items or "img_path" not in items[0]:
        return
    paths = dict.fromkeys(d["img_path"] for d in items)
    missing = [p for p in paths if not os.path.isfile(p)]
    if not missing:
        return
    gone = set(missing)
    people = sum(d["img_path"] in gone for d in items)
    if len(missing) == len(paths):
        raise FileNotFoundError(f"data.train_img_dir {img_dir} holds none of the {len(paths)} pictures data.train_ann "
                                f"{ann} names (first: {missing[0]})")
    logger.warning("data.train_img_dir %s lacks %d of the %d pictures data.train_ann %s names (first: %s): their %d of "
                   "%d people are skipped as bad images", img_dir, len(missing), len(paths), ann, missing[0], people,
                   len(items))


def build_samples(cfg: DataCfg, split: str, input_size_hw: tuple[int, int], protocol: Protocol,
                  codec: BaseKeypointCodec | None, seed: int = 0, poses_only: bool = False) -> TopDownSamples:
    """Dataset + the protocol's pipeline for ``split`` (random augmentation only for train); ``poses_only``
    skips images."""
    train = split == "train"
    metainfo: PoseMetaInfo = get_metainfo(cfg.dataset)
    pipeline = build_pipeline(protocol, input_size_hw, metainfo, codec=codec if train else None, train=train)
    return TopDownSamples(build_dataset(cfg, split, protocol), pipeline, seed, poses_only)


def make_loader(samples: TopDownSamples, batch: int, sampler: Sampler | None, num_workers: int) -> DataLoader:
    """A DataLoader with the default collate (tensors stacked, numbers batched)."""
    return DataLoader(samples, batch_size=batch, sampler=sampler, shuffle=False, num_workers=num_workers,
                      drop_last=False, persistent_workers=False)
