"""MPII Human Pose in the HRNet-style json (a list of ``image, center, scale, joints, joints_vis``).

Box convention (MMPose ``MpiiDataset``; the json stores 1-based Matlab pixels and ``scale`` = person
height / 200):

* ``centre_y += 15 / 200 × (scale × 200)`` = ``15 × scale`` px (moved down so the feet are not cut off;
  skipped when ``centre_x == -1``), then ``centre -= 1`` (1-based → 0-based);
* the box is a square of side ``scale × 200`` px around that centre: ``bbox`` (xywh) and
  ``bbox_center`` / ``bbox_scale`` (``(2,)`` px, **unpadded**, float64 as the official loader). The usual top-down
  transform pads it by 1.25, so the crop side is ``scale × 200 × 1.25`` as in HRNet/TokenPose and MMPose (spec
  §1.1). Crop with :meth:`~posetokens.data.transforms.TopdownPipeline.run_item`, which takes ``bbox_center`` as
  is: re-deriving the centre from ``bbox`` with TokenPose's ``x + (w - 1) / 2`` would move it by 0.5 px.
* The joints are shifted by -1 as well, so keypoints and box share 0-based pixel coordinates (HRNet /
  MMPose 0.x do this; MMPose 1.x leaves the joints 1-based). To compare with MPII's 1-based
  ``gt_valid.mat`` add 1 to predictions. Unlabelled joints (``[-1, -1]``, vis 0) keep their (meaningless)
  shifted coordinates with ``keypoints_visible = 0``.

Train mode skips (counted in ``skipped``): non-positive ``scale`` (``'zero_area_bbox'``) and samples with
no labelled joint (``'no_visible_keypoints'``). The json has no image size, so joints outside the image
are not checked here. Test mode keeps every sample (joints, when present, are kept for PCKh).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posetokens.data.transforms import PIXEL_STD

from .coco_style import PathLike, TopDownDataset, _numeric, _require, _resolve_metainfo, read_json

__all__ = ["MPII_PIXEL_STD", "MpiiDataset"]

MPII_PIXEL_STD = PIXEL_STD  # the official scale unit (scale = box size / 200)


class MpiiDataset(TopDownDataset):
    """Top-down MPII samples (item dict as in :mod:`.coco_style`, plus ``bbox_center``/``bbox_scale``).

    Args:
        ann_file: HRNet-style MPII json.
        img_dir: folder of the images.
        metainfo: defaults to ``get_metainfo('mpii')``.
        mode: ``'train'`` or ``'test'``.
        transform: callable applied to each item dict.
        skip_bad_images: count-and-skip unreadable images instead of raising.
        exif_orientation: images turned by their EXIF orientation tag, or read as stored (a protocol's
            ``exif_orientation``; :func:`~posetokens.data.datasets.coco_style.load_image`).

    Raises:
        FileNotFoundError / ValueError naming the file, the entry and the field for bad input.
    """

    def __init__(
        self,
        ann_file: PathLike,
        img_dir: PathLike,
        metainfo: Any = "mpii",
        mode: str = "train",
        transform: Callable[[dict[str, Any]], Any] | None = None,
        skip_bad_images: bool = False,
        exif_orientation: bool = True,
    ) -> None:
        super().__init__(transform, skip_bad_images, exif_orientation)
        if mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        self.ann_file = str(ann_file)
        self.img_dir = str(img_dir)
        self.metainfo = _resolve_metainfo(metainfo)
        self.mode = mode
        self.num_keypoints = int(self.metainfo.num_keypoints)
        self._load(read_json(self.ann_file))
        self._finish(self.ann_file)

    def _load(self, anns: Any) -> None:
        src = self.ann_file
        if not isinstance(anns, list):
            raise ValueError(f"{src}: expected a JSON list of MPII samples, got {type(anns).__name__}")
        k = self.num_keypoints
        train = self.mode == "train"
        for i, ann in enumerate(anns):
            where = f"{src}: entry [{i}]"
            _require(ann, ("image", "center", "scale") + (("joints", "joints_vis") if train else ()), where)
            center = _numeric(ann["center"], where, "center", 2)
            scale = float(_numeric(ann["scale"], where, "scale", 1)[0])
            if "joints" in ann:
                joints = _numeric(ann["joints"], where, "joints", 2 * k).reshape(k, 2) - 1.0
                vis = _numeric(ann.get("joints_vis", np.ones(k)), where, "joints_vis", k)
                visible = np.minimum(1.0, np.maximum(vis, 0.0))
            else:
                joints, visible = np.zeros((k, 2)), np.zeros(k)
            if scale <= 0:
                if train:
                    self._count(self._skipped, "zero_area_bbox")
                    continue
            if train and not (visible > 0).any():
                self._count(self._skipped, "no_visible_keypoints")
                continue
            side = scale * MPII_PIXEL_STD
            c = center.copy()
            if c[0] != -1:
                c[1] += 15.0 / MPII_PIXEL_STD * side
            c -= 1.0
            stem = Path(str(ann["image"])).stem
            self.data_list.append(
                {
                    "img_path": os.path.join(self.img_dir, str(ann["image"])),
                    "img_id": int(stem) if stem.isdigit() else i,
                    "id": i,
                    "category_id": 1,
                    "bbox": np.array([c[0] - side / 2, c[1] - side / 2, side, side], dtype=np.float64),
                    "bbox_center": c.astype(np.float64),
                    "bbox_scale": np.array([side, side], dtype=np.float64),
                    "bbox_score": 1.0,
                    "keypoints": joints.astype(np.float64),
                    "keypoints_visible": visible.astype(np.float32),
                    "area": float(side * side),
                    "num_keypoints": int((visible > 0).sum()),
                    "ori_shape": None,
                }
            )
