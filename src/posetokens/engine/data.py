"""Glue between the datasets, the top-down pipeline and torch: samples, sampler and loaders.

Augmentation draws from ``numpy.random.default_rng([seed, epoch, index])``, so every sample of every
epoch is the same whatever the worker count, process count or resume point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from posetokens.codecs import HeatmapCodec
from posetokens.data.datasets import CocoStyleDataset, MpiiDataset
from posetokens.data.metainfo import PoseMetaInfo, get_metainfo
from posetokens.data.transforms import TopdownAugConfig, TopdownPipeline
from posetokens.engine.config import DataCfg

_AUG = {
    "tokenpose_coco": TopdownAugConfig.tokenpose_coco,
    "tokenpose_mpii": TopdownAugConfig.tokenpose_mpii,
    "mmpose": TopdownAugConfig,
}


class TopDownSamples(Dataset):
    """Top-down crops with targets: one dict of tensors and metadata per instance."""

    def __init__(self, base: Dataset, pipeline: TopdownPipeline, seed: int = 0) -> None:
        self.base, self.pipeline, self.seed, self.epoch = base, pipeline, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        item = self.base[idx]
        rng = np.random.default_rng([self.seed, self.epoch, idx]) if self.pipeline.train else None
        out = self.pipeline(item["img"], item["bbox"], item.get("keypoints"), item.get("keypoints_visible"), rng)
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(out["image"], dtype=np.float32)),
            "warp_matrix": torch.from_numpy(np.asarray(out["warp_matrix"], dtype=np.float64)),
            "img_id": int(item.get("img_id", -1)),
            "bbox_score": float(item.get("bbox_score", 1.0)),
            "index": idx,
        }
        if "heatmaps" in out:
            sample["heatmaps"] = torch.from_numpy(np.asarray(out["heatmaps"], dtype=np.float32))
            sample["keypoint_weights"] = torch.from_numpy(np.asarray(out["keypoint_weights"], dtype=np.float32))
        return sample


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
                f"dataset of {n} samples is smaller than one global batch ({batch} x {world} processes x {accum})"
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


def build_codec(cfg: DataCfg, input_size_hw: tuple[int, int], heatmap_size_hw: tuple[int, int]) -> HeatmapCodec:
    """The heatmap codec of a recipe (sizes given as (h, w), the codec takes (w, h))."""
    return HeatmapCodec(
        input_size=(input_size_hw[1], input_size_hw[0]), heatmap_size=(heatmap_size_hw[1], heatmap_size_hw[0]),
        sigma=cfg.sigma, unbiased=cfg.unbiased, udp=cfg.udp, decode=cfg.decode,
    )


def build_dataset(cfg: DataCfg, split: str) -> Dataset:
    """The raw dataset of ``split`` (train uses GT boxes; val uses detections when ``val_det`` is set)."""
    metainfo = get_metainfo(cfg.dataset)
    ann, img_dir = (cfg.train_ann, cfg.train_img_dir) if split == "train" else (cfg.val_ann, cfg.val_img_dir)
    if not ann:
        raise ValueError(f"config: data.{split}_ann is empty; set it in the recipe or with --set data.{split}_ann=...")
    if cfg.format == "mpii":
        return MpiiDataset(ann, img_dir, metainfo, mode="train" if split == "train" else "test",
                           skip_bad_images=cfg.skip_bad_images)
    if cfg.format != "coco":
        raise ValueError(f"config: data.format must be 'coco' or 'mpii', got {cfg.format!r}")
    det = cfg.val_det if split != "train" else None
    return CocoStyleDataset(ann, img_dir, metainfo, mode="train" if split == "train" else "test", det_file=det,
                            det_score_thr=cfg.det_score_thr, skip_bad_images=cfg.skip_bad_images)


def build_samples(cfg: DataCfg, split: str, input_size_hw: tuple[int, int], codec: HeatmapCodec,
                  seed: int = 0) -> TopDownSamples:
    """Dataset + pipeline for ``split`` (random augmentation only for train)."""
    train = split == "train"
    metainfo: PoseMetaInfo = get_metainfo(cfg.dataset)
    if train and cfg.aug not in _AUG and cfg.aug != "none":
        raise ValueError(f"config: data.aug must be one of {sorted(_AUG) + ['none']}, got {cfg.aug!r}")
    aug = _AUG[cfg.aug]() if train and cfg.aug in _AUG else None
    pipeline = TopdownPipeline(
        (input_size_hw[1], input_size_hw[0]), metainfo, codec=codec if train else None, train=train and aug is not None,
        aug=aug, use_udp=cfg.udp, pixel_aligned_box=cfg.udp,
    )
    return TopDownSamples(build_dataset(cfg, split), pipeline, seed)


def make_loader(samples: TopDownSamples, batch: int, sampler: Sampler | None, num_workers: int) -> DataLoader:
    """A DataLoader with the default collate (tensors stacked, numbers batched)."""
    return DataLoader(samples, batch_size=batch, sampler=sampler, shuffle=False, num_workers=num_workers,
                      drop_last=False, persistent_workers=False)
