"""Multi-view Human3.6M: synchronised frames of one instant from every camera, with their cameras.

Annotation layout: the H36M-Toolbox pickle the official multi-view code reads (``h36m_{train,validation}.pkl``),
a list with one dict per (frame, camera)::

    subject, action, subaction, image_id   ints; the four identify the instant
    camera_id                              int 0..3
    image                                  str, path relative to the image root
    joints_2d (17, 2) px, joints_vis (17, 3) or (17,), joints_3d (17, 3) world, mm
    center (2,) px, scale (2,) box / 200   the ground-truth crop box
    camera: {R (3, 3) world->camera, T (3, 1) camera centre (mm), fx, fy, cx, cy, k, p}

Records with the same (subject, action, subaction, image_id) form one sample; only instants seen by every
requested camera are kept. The record's ``camera`` may be left out when a ``cameras.pkl`` (MMPose layout,
``shared/data/h36m``: camera->world R, centre in metres) is given: the camera of ``(f"S{subject}", serial)``
is used, converted to the toolbox convention and millimetres. Joints are in the 17-joint H36M order.

A sample (``__getitem__``) holds, per view v: the 256x256 ground-truth-box crop (no augmentation, as the
official recipe), HRNet rounded Gaussian targets (sigma 2), the camera rays through the patch centres
(the model's 3-D PE input), the original-image projection matrix and the crop->image affine.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posetokens.codecs.heatmap import HeatmapCodec
from posetokens.data.datasets.coco_style import load_image
from posetokens.data.h36m import H36M_CAMERA_IDS, load_mmpose_cameras
from posetokens.data.transforms import PIXEL_STD, get_affine_transform, normalize_image, warp_crop
from posetokens.geometry import intrinsic_matrix, patch_rays, projection_matrix
from posetokens.runtime import UserKeyError

__all__ = ["DAMAGED_S9", "MultiViewH36M", "group_records", "load_toolbox_pickle"]

#: (action, subaction) of S9 whose ground truth is damaged (Epipolar Transformers' list), left out by default.
DAMAGED_S9 = frozenset({(5, 2), (10, 2), (13, 1)})
_KEYS = ("subject", "action", "subaction", "image_id", "camera_id", "image", "joints_2d", "center", "scale")


def load_toolbox_pickle(path: str | Path) -> list[dict[str, Any]]:
    """Read an H36M-Toolbox annotation pickle (a list of per-camera frame dicts). Load only trusted files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"multi-view H36M annotation file not found: {path}")
    with open(path, "rb") as fh:
        try:
            db = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as e:
            raise ValueError(f"{path}: not a readable H36M-Toolbox pickle (truncated or corrupt? "
                             f"{type(e).__name__}: {e})") from None
    if not isinstance(db, list) or not all(isinstance(r, Mapping) for r in db):
        raise ValueError(f"{path}: expected a list of per-camera frame dicts, got {type(db).__name__}")
    for i, rec in enumerate(db):
        missing = [k for k in _KEYS if k not in rec]
        if missing:
            raise UserKeyError(f"{path}: record {i} misses field(s) {missing}; expected {list(_KEYS)}")
    return db


def group_records(db: Sequence[Mapping[str, Any]], cameras: Sequence[int], drop_damaged: bool = True) -> list[list[int]]:
    """Indices of the records of each instant, in ``cameras`` order; instants missing a camera are left out."""
    groups: dict[tuple[int, int, int, int], dict[int, int]] = {}
    for i, r in enumerate(db):
        key = (int(r["subject"]), int(r["action"]), int(r["subaction"]), int(r["image_id"]))
        if drop_damaged and key[0] == 9 and (key[1], key[2]) in DAMAGED_S9:
            continue
        groups.setdefault(key, {})[int(r["camera_id"])] = i
    return [[g[c] for c in cameras] for _, g in sorted(groups.items()) if all(c in g for c in cameras)]


class MultiViewH36M(Dataset):
    """Synchronised multi-view H36M samples for multi-view PPT (see the module docstring).

    Args:
        ann_file: H36M-Toolbox pickle. image_root: folder the records' ``image`` paths are relative to.
        cameras: camera ids (0-3) that make a sample, in view order.
        cameras_pkl: MMPose ``cameras.pkl`` for records without a ``camera`` dict.
        image_size: crop (height, width); patch_grid / patch_stride: the model's patch grid and patch size in
            input pixels (16 for PPT-S), for the rays. heatmap_size: (height, width). every: keep every n-th
            instant (the official code keeps every 5th for training, every 64th for validation).
    """

    def __init__(
        self,
        ann_file: str | Path,
        image_root: str | Path,
        cameras: Sequence[int] = (0, 1, 2, 3),
        cameras_pkl: str | Path | None = None,
        image_size: tuple[int, int] = (256, 256),
        heatmap_size: tuple[int, int] = (64, 64),
        patch_grid: tuple[int, int] = (16, 16),
        patch_stride: tuple[int, int] = (16, 16),
        sigma: float = 2.0,
        every: int = 1,
        drop_damaged: bool = True,
        max_rows: int | None = 1000,
        codec: HeatmapCodec | None = None,
        exif_orientation: bool = False,
    ) -> None:
        self.ann_file = str(ann_file)
        self.image_root = Path(image_root)
        self.exif_orientation = exif_orientation  # the official loader reads as stored (IMREAD_IGNORE_ORIENTATION)
        self.db = load_toolbox_pickle(ann_file)
        self.cameras = tuple(int(c) for c in cameras)
        if not self.cameras:
            raise ValueError(f"{self.ann_file}: at least one camera is needed")
        self.groups = group_records(self.db, self.cameras, drop_damaged)[:: max(1, int(every))]
        if not self.groups:
            raise ValueError(f"{self.ann_file}: no instant is seen by all cameras {list(self.cameras)}")
        self._mmpose = load_mmpose_cameras(cameras_pkl) if cameras_pkl is not None else None
        self.image_size, self.heatmap_size = tuple(image_size), tuple(heatmap_size)
        self.patch_grid, self.patch_stride = tuple(patch_grid), tuple(patch_stride)
        self.max_rows = max_rows
        # the multi-view PPT protocol's codec (engine passes build_codec(protocol, ...)): MSRA targets, HRNet decoding
        self.codec = codec if codec is not None else HeatmapCodec(
            (image_size[1], image_size[0]), (heatmap_size[1], heatmap_size[0]), sigma=sigma, unbiased=False,
            decode="argmax_quarter", weight_rule="msra", invalid="zero", quarter_rule="hrnet")

    def __len__(self) -> int:
        return len(self.groups)

    @property
    def num_views(self) -> int:
        """Views per sample."""
        return len(self.cameras)

    def camera(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(K, R world->camera, C mm)`` of record ``index``, from the record or ``cameras.pkl``."""
        rec = self.db[index]
        where = f"{self.ann_file}: record {index} (subject {rec['subject']}, camera {rec['camera_id']})"
        cam = rec.get("camera")
        if cam is not None:
            for k in ("R", "T", "fx", "fy", "cx", "cy"):
                if k not in cam:
                    raise UserKeyError(f"{where}: camera misses field {k!r}")
            f = np.array([np.ravel(cam["fx"])[0], np.ravel(cam["fy"])[0]], dtype=np.float64)
            c = np.array([np.ravel(cam["cx"])[0], np.ravel(cam["cy"])[0]], dtype=np.float64)
            return intrinsic_matrix(f, c, where), np.asarray(cam["R"], np.float64).reshape(3, 3), np.asarray(cam["T"], np.float64).reshape(3)
        if self._mmpose is None:
            raise UserKeyError(f"{where}: no 'camera' in the record and no cameras_pkl given: missing camera")
        subject, serial = f"S{int(rec['subject'])}", H36M_CAMERA_IDS[int(rec["camera_id"])]
        cams = {c.id: c for c in self._mmpose.get(subject, ())}
        if serial not in cams:
            raise UserKeyError(f"{where}: cameras_pkl has no camera {serial} for subject {subject}: missing camera")
        cam = cams[serial]
        return intrinsic_matrix(cam.f, cam.c, where), cam.R.T, cam.T * 1000.0

    def _view(self, index: int) -> dict[str, np.ndarray]:
        rec = self.db[index]
        K, R, C = self.camera(index)
        image = load_image(self.image_root / rec["image"], self.exif_orientation)
        if self.max_rows is not None:
            image = image[: self.max_rows]  # H36M frames of cameras 1 and 4 have 1002 rows (official: cut to 1000)
        center = np.asarray(rec["center"], np.float64).reshape(2)
        scale = np.asarray(rec["scale"], np.float64).reshape(-1)[:2] * PIXEL_STD
        h, w = self.image_size
        crop, trans = warp_crop(image, center, scale, 0.0, (w, h))
        inv = get_affine_transform(center, scale, 0.0, (w, h), inv=True)
        joints = np.asarray(rec["joints_2d"], np.float64).reshape(-1, 2)
        vis = np.asarray(rec.get("joints_vis", np.ones(len(joints))), np.float64).reshape(len(joints), -1)[:, 0]
        in_crop = joints @ trans[:, :2].T + trans[:, 2]
        inside = (in_crop >= 0).all(-1) & (in_crop[:, 0] < w) & (in_crop[:, 1] < h)
        target = self.codec.encode(in_crop[None], (vis * inside)[None])
        return {
            "image": normalize_image(crop, bgr_to_rgb=False),
            "heatmaps": target["heatmaps"][0],
            "target_weight": target["keypoint_weights"][0],
            "rays": patch_rays(K, R, inv, self.image_size, self.patch_grid, self.patch_stride).astype(np.float32),
            "P": projection_matrix(K, R, C),
            "crop_to_image": inv,
            "joints_2d": joints,
            "joints_vis": vis,
            "image_hw": np.array(image.shape[:2]),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One instant: per-view ``images`` (V, 3, H, W), ``heatmaps`` (V, J, h, w), ``target_weight`` (V, J),
        ``rays`` (V, N, 3), ``P`` (V, 3, 4), ``crop_to_image`` (V, 2, 3), ``joints_2d`` (V, J, 2) original
        pixels, ``joints_vis`` (V, J), ``joints_3d`` (J, 3) world mm (zeros when absent)."""
        recs = self.groups[index]
        views = [self._view(i) for i in recs]  # V views: a handful of image reads, not a hot loop
        sizes = {tuple(v["image_hw"]) for v in views}
        if len(sizes) > 1:
            names = [self.db[i]["image"] for i in recs]
            raise ValueError(
                f"{self.ann_file}: views of one instant have different image sizes {[tuple(v['image_hw']) for v in views]} "
                f"({names}); expected one size (set max_rows to cut H36M frames to 1000 rows)"
            )
        out = {k: torch.from_numpy(np.stack([v[k] for v in views])) for k in views[0] if k != "image_hw"}
        out["images"] = out.pop("image")
        j3d = self.db[recs[0]].get("joints_3d")
        if j3d is not None:  # absent: no triangulation error can be reported (evaluate_multiview leaves it out)
            out["joints_3d"] = torch.from_numpy(np.asarray(j3d, np.float64).reshape(-1, 3))
        return out
