"""Multi-view Human3.6M: synchronised frames of one instant from every camera, with their cameras.

Annotation layout: the H36M-Toolbox pickle the official multi-view code reads (``h36m_{train,validation}.pkl``),
a list with one dict per (frame, camera)::

    subject, action, subaction, image_id   ints; the four identify the instant
    camera_id                              int 0..3
    image                                  str, path relative to the image root
    joints_2d (17, 2) px, joints_vis (17, 3) or (17,)
    joints_3d_camera (17, 3) mm in the record's camera frame (the toolbox's Poses_D3_Positions_mono; its
                     joints_3d, the "universal" skeleton, is not read)
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

__all__ = ["DAMAGED_S9", "TOOLBOX_ACTIONS", "MultiViewH36M", "crop_view", "group_records", "load_toolbox_pickle"]

#: The toolbox's action ids (2-16) and their H36M names (S9's damaged Greeting-2 is action 5, SittingDown-2 10,
#: Waiting-1 13).
TOOLBOX_ACTIONS: dict[int, str] = dict(enumerate((
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting", "SittingDown",
    "Smoking", "Photo", "Waiting", "Walking", "WalkDog", "WalkTogether"), start=2))
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


def crop_view(image_rgb: np.ndarray, center: Any, box_size: Any, K: Any, R: Any,
              image_size: tuple[int, int] = (256, 256), patch_grid: tuple[int, int] = (16, 16),
              patch_stride: tuple[int, int] = (16, 16)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One view's model inputs, as the multi-view recipe makes them: the normalised (3, H, W) float32 crop of the
    box (``center`` and ``box_size`` (w, h) in pixels; HRNet's standard warp, no rotation), the camera rays (N, 3)
    float32 through the patch centres (``K``, ``R`` world -> camera), and the crop -> image affine (2, 3) that
    :func:`posetokens.engine.multiview.decode_views` maps the keypoints back with. ``image_rgb``: (H, W, 3) uint8."""
    h, w = image_size
    center, box = np.asarray(center, np.float64).reshape(2), np.asarray(box_size, np.float64).reshape(2)
    crop, _ = warp_crop(image_rgb, center, box, 0.0, (w, h))
    inv = get_affine_transform(center, box, 0.0, (w, h), inv=True)
    rays = patch_rays(K, R, inv, image_size, patch_grid, patch_stride).astype(np.float32)
    return normalize_image(crop, bgr_to_rgb=False), rays, inv


def group_records(db: Sequence[Mapping[str, Any]], cameras: Sequence[int], drop_damaged: bool = True,
                  where: str = "annotations") -> list[list[int]]:
    """Indices of the records of each instant, in ``cameras`` order; instants missing a camera are left out. Two
    records of one (instant, camera) are refused, naming both."""
    groups: dict[tuple[int, int, int, int], dict[int, int]] = {}
    for i, r in enumerate(db):
        key = (int(r["subject"]), int(r["action"]), int(r["subaction"]), int(r["image_id"]))
        if drop_damaged and key[0] == 9 and (key[1], key[2]) in DAMAGED_S9:
            continue
        views = groups.setdefault(key, {})
        cam = int(r["camera_id"])
        if cam in views:
            raise ValueError(f"{where}: records {views[cam]} and {i} are both camera {cam} of subject {key[0]}, "
                             f"action {key[1]}, subaction {key[2]}, image_id {key[3]}; expected one record per camera "
                             "and instant")
        views[cam] = i
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
        num_joints: int = 17,
    ) -> None:
        self.ann_file = str(ann_file)
        self.image_root = Path(image_root)
        self.exif_orientation = exif_orientation  # the official loader reads as stored (IMREAD_IGNORE_ORIENTATION)
        self.db = load_toolbox_pickle(ann_file)
        self.cameras = tuple(int(c) for c in cameras)
        if not self.cameras:
            raise ValueError(f"{self.ann_file}: at least one camera is needed")
        self.groups = group_records(self.db, self.cameras, drop_damaged, self.ann_file)[:: max(1, int(every))]
        if not self.groups:
            seen = sorted({int(r["camera_id"]) for r in self.db})
            raise ValueError(f"{self.ann_file}: no instant is seen by all cameras {list(self.cameras)}; the file holds "
                             f"camera ids {seen}")
        without = [i for g in self.groups for i in g if self.db[i].get("camera") is None]
        self._mmpose = None
        if without:  # read only when a record needs it
            if not cameras_pkl:
                raise UserKeyError(f"{self.ann_file}: record {without[0]} (and {len(without) - 1} more) has no "
                                   "'camera' and no cameras_pkl (data.cameras) is given: missing camera")
            if not Path(cameras_pkl).is_file():
                raise FileNotFoundError(f"{self.ann_file}: {len(without)} record(s) have no 'camera' (record "
                                        f"{without[0]}), and the cameras file {cameras_pkl} (cameras_pkl; "
                                        "data.cameras) does not exist")
            self._mmpose = load_mmpose_cameras(cameras_pkl)
        self.num_joints = num_joints
        self._check_joints()
        self._check_geometry()
        self.image_size, self.heatmap_size = tuple(image_size), tuple(heatmap_size)
        self.patch_grid, self.patch_stride = tuple(patch_grid), tuple(patch_stride)
        self.max_rows = max_rows
        # the multi-view PPT protocol's codec (engine passes build_codec(protocol, ...)): MSRA targets, HRNet decoding
        self.codec = codec if codec is not None else HeatmapCodec(
            (image_size[1], image_size[0]), (heatmap_size[1], heatmap_size[0]), sigma=sigma, unbiased=False,
            decode="argmax_quarter", weight_rule="msra", invalid="zero", quarter_rule="hrnet")

    def _check_joints(self) -> None:
        """Every record of the samples has ``num_joints`` rows in ``joints_2d``, ``joints_vis`` and
        ``joints_3d_camera`` (a missing or None one is allowed for the 3D)."""
        j = self.num_joints
        shapes = {"joints_2d": [(j, 2)], "joints_vis": [(j,), (j, 1), (j, 3)], "joints_3d_camera": [(j, 3)]}
        for i in (i for g in self.groups for i in g):
            rec = self.db[i]
            for key, allowed in shapes.items():
                if rec.get(key) is None or np.shape(rec[key]) in allowed:
                    continue
                got = np.shape(rec[key])
                why = (f"the {j} joints of the model in the 17-joint H36M order (the official 20-slot union order must "
                       "be mapped back first)" if not got or got[0] != j else
                       "(x, y) per joint" if key == "joints_2d" else "(x, y, z) per joint" if key != "joints_vis" else
                       "one visibility per joint")
                raise ValueError(f"{self.ann_file}: record {i} ({rec['image']}): '{key}' has shape {got}; expected "
                                 f"{' or '.join(map(str, allowed))}: {why}")

    def world_joints(self, index: int) -> np.ndarray | None:
        """Record ``index``'s ``joints_3d_camera`` in world mm, ``R^T x + T`` with its camera (the official
        ``camera_to_world_frame``), or None when it has none."""
        cam3d = self.db[index].get("joints_3d_camera")
        if cam3d is None:
            return None
        _, R, C = self.camera(index)
        return np.asarray(cam3d, np.float64).reshape(-1, 3) @ R + C

    def _check_geometry(self, instants: int = 16, max_px: float = 40.0, max_mm: float = 50.0) -> None:
        """On up to ``instants`` instants spread over the file: each camera's ``R`` is a rotation;
        ``joints_3d_camera`` projected through the record's intrinsics lands within ``max_px`` (median over visible
        joints; lens distortion, which the projection leaves out, moves H36M's frame edges by up to about 20 px) of
        its ``joints_2d`` (the x/y order, the intrinsics); a pose spans 0.3-3 m in mm; and the views of an instant,
        taken to world coordinates with their cameras, agree within ``max_mm`` (median: R world -> camera, the
        camera centre T in mm)."""
        for g in self.groups[:: max(1, len(self.groups) // instants)][:instants]:
            worlds = []
            for i in g:
                rec = self.db[i]
                K, R, _ = self.camera(i)
                where = f"{self.ann_file}: record {i} ({rec['image']})"
                if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.isclose(np.linalg.det(R), 1.0, atol=1e-4):
                    raise ValueError(f"{where}: the camera's R is not a rotation (R R^T = I, det 1); expected the "
                                     "world -> camera rotation")
                world = self.world_joints(i)
                if world is None:
                    continue
                cam3d = np.asarray(rec["joints_3d_camera"], np.float64).reshape(-1, 3)
                span = float(np.linalg.norm(cam3d[:, None] - cam3d[None], axis=-1).max())
                if not 300.0 <= span <= 3000.0:
                    raise ValueError(f"{where}: 'joints_3d_camera' spans {span:.3g} between its farthest joints; "
                                     "expected a person in mm (0.3-3 m)")
                uv = cam3d @ K.T
                uv = uv[:, :2] / uv[:, 2:3]
                seen = np.asarray(rec.get("joints_vis", np.ones(self.num_joints)), np.float64)
                seen = seen.reshape(self.num_joints, -1)[:, 0] > 0
                err = np.linalg.norm(uv - np.asarray(rec["joints_2d"], np.float64), axis=-1)[seen]
                if err.size and not float(np.median(err)) <= max_px:
                    raise ValueError(f"{where}: 'joints_3d_camera' projected through the record's camera lands "
                                     f"{np.median(err):.0f} px (median over visible joints) from 'joints_2d'; expected "
                                     "a few px: joints_2d as (x, y) pixels, joints_3d_camera in the camera's frame")
                worlds.append((i, world))
            for i, world in worlds[1:]:
                apart = float(np.median(np.linalg.norm(world - worlds[0][1], axis=-1)))
                if not apart <= max_mm:
                    raise ValueError(f"{self.ann_file}: record {i} ({self.db[i]['image']}): its joints taken to world "
                                     f"coordinates with its camera lie {apart:.0f} mm (median) from record "
                                     f"{worlds[0][0]}'s; expected one pose: camera R world -> camera and T the camera "
                                     "centre, both in mm")

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
        crop, rays, inv = crop_view(image, center, scale, K, R, self.image_size, self.patch_grid, self.patch_stride)
        trans = get_affine_transform(center, scale, 0.0, (w, h))
        joints = np.asarray(rec["joints_2d"], np.float64).reshape(-1, 2)
        vis = np.asarray(rec.get("joints_vis", np.ones(len(joints))), np.float64).reshape(len(joints), -1)[:, 0]
        in_crop = joints @ trans[:, :2].T + trans[:, 2]
        inside = (in_crop >= 0).all(-1) & (in_crop[:, 0] < w) & (in_crop[:, 1] < h)
        target = self.codec.encode(in_crop[None], (vis * inside)[None])
        return {
            "image": crop,
            "heatmaps": target["heatmaps"][0],
            "target_weight": target["keypoint_weights"][0],
            "rays": rays,
            "P": projection_matrix(K, R, C),
            "crop_to_image": inv,
            "joints_2d": joints,
            "joints_vis": vis,
            "image_hw": np.array(image.shape[:2]),
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One instant: per-view ``images`` (V, 3, H, W), ``heatmaps`` (V, J, h, w), ``target_weight`` (V, J),
        ``rays`` (V, N, 3), ``P`` (V, 3, 4), ``crop_to_image`` (V, 2, 3), ``joints_2d`` (V, J, 2) original
        pixels, ``joints_vis`` (V, J), ``joints_3d`` (J, 3) world mm (the first view's ``joints_3d_camera`` taken
        to world with its camera, as the official ``estimate_tri``; when the records have it), ``action`` (the
        toolbox's action id, :data:`TOOLBOX_ACTIONS`)."""
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
        out["action"] = torch.tensor(int(self.db[recs[0]]["action"]))
        world = self.world_joints(recs[0])  # the official estimate_tri: the first view's, taken to world
        if world is not None:  # absent: no triangulation error can be reported (evaluate_multiview leaves it out)
            out["joints_3d"] = torch.from_numpy(world)
        return out
