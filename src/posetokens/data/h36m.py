"""Human3.6M for 2D->3D lifting: cameras, loaders, input preparation, windows and a Dataset.

Conventions (see ``shared/specs/hot.md`` sections 3-4)
-----------------------------------------------------
* **Joints.** 17 joints in the MMPose ``h36m`` order (:data:`posetokens.data.metainfo.H36M`);
  VideoPose3D's 32-joint arrays are cut with :data:`H36M32_TO_17`.
* **Cameras.** :class:`Camera` stores ``R`` as the *camera->world* rotation and ``T`` as the camera
  centre in world metres, so ``X_cam = (X_world - T) @ R`` and ``X_world = X_cam @ R.T + T``. This is
  both MMPose's ``cameras.pkl`` layout and VideoPose3D's (orientation quaternion = ``R``,
  translation = ``T`` in millimetres). ``p`` holds the tangential coefficients in ``cameras.pkl``
  order; VideoPose3D's ``tangential_distortion`` lists the same two numbers reversed.
* **Projection.** :func:`project_points` is a pinhole projection with optional distortion using the
  polynomial VideoPose3D (and the original H36M code) use. On the real sample it reproduces the
  stored 2D joints to float precision; without distortion the error is a few pixels.
* **Inputs.** 2D is normalised by the image width, ``u/w*2-1, v/w*2-h/w``
  (:func:`normalize_screen_coordinates`); 3D targets are camera-space, root-relative, metres, with the
  root kept at 0 (:func:`root_relative`).
* **Splits.** train S1, S5, S6, S7, S8; test S9, S11. The action class is the text before the first
  space (:func:`action_class`).
* **Windows.** seq2seq: ``ceil(L/F)`` non-overlapping windows of F frames, centred on the sequence and
  edge-padded at both ends (HoT's ``generator_stride``); seq2frame: one edge-padded window of F (odd)
  frames centred on every frame; clips: MotionBERT's ``split_clips`` (F consecutive frames from the start of
  each sequence at a stride, the trailing remainder dropped, :func:`split_clips`). Padding is index clipping,
  no per-frame Python loops.

Files holding pickled objects (VideoPose3D npz, ``cameras.pkl``) are read with pickle enabled:
load only files you trust.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from posetokens.runtime import UserKeyError, warn

from .metainfo import H36M, PoseMetaInfo

__all__ = [
    "ACTION_ALIASES",
    "H36M32_TO_17",
    "H36M_ACTIONS",
    "H36M_CAMERA_IDS",
    "H36M_CAMERA_RESOLUTION",
    "NUM_JOINTS",
    "SPLITS",
    "TEST_SUBJECTS",
    "TRAIN_SUBJECTS",
    "Camera",
    "H36MClip",
    "H36MLiftingDataset",
    "action_class",
    "camera_to_world",
    "check_finite",
    "filter_clips",
    "flip_keypoints",
    "image_coordinates",
    "load_cameras",
    "load_mmpose_cameras",
    "load_mmpose_h36m",
    "load_videopose3d",
    "load_videopose3d_cameras",
    "matrix_to_quaternion",
    "normalize_screen_coordinates",
    "prepare_clip",
    "project_points",
    "quaternion_to_matrix",
    "root_relative",
    "save_videopose3d_cameras",
    "seq2frame_indices",
    "seq2seq_indices",
    "seq2seq_starts",
    "split_clips",
    "subjects_for",
    "world_to_camera",
]

NUM_JOINTS = 17
#: VideoPose3D keeps these 17 of the 32 H36M joints (the 15 static ones are dropped).
H36M32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: The four H36M cameras in dataset order (the order of VideoPose3D's per-camera 2D lists).
H36M_CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
#: Image size (w, h) per H36M camera id.
H36M_CAMERA_RESOLUTION: dict[str, tuple[int, int]] = {
    "54138969": (1000, 1002),
    "55011271": (1000, 1000),
    "58860488": (1000, 1000),
    "60457274": (1000, 1002),
}
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
SPLITS: dict[str, tuple[str, ...]] = {"train": TRAIN_SUBJECTS, "test": TEST_SUBJECTS}
#: The 15 action classes as named in the test subjects (S9, S11).
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
#: S1 spells two actions differently; :func:`action_class` maps them onto the 15 classes.
ACTION_ALIASES: dict[str, str] = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


# ============================================================================ geometry
def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def world_to_camera(points: Any, R: Any, T: Any) -> np.ndarray:
    """World -> camera coordinates, ``(X - T) @ R`` for R camera->world and T the centre. (..., 3)."""
    return (_f64(points) - _f64(T).reshape(3)) @ _f64(R)


def camera_to_world(points: Any, R: Any, T: Any) -> np.ndarray:
    """Camera -> world coordinates, ``X @ R.T + T``. (..., 3)."""
    return _f64(points) @ _f64(R).T + _f64(T).reshape(3)


def project_points(
    points_cam: Any,
    f: Any,
    c: Any,
    k: Any | None = None,
    p: Any | None = None,
) -> np.ndarray:
    """Project camera-space points (..., 3) to pixels (..., 2).

    Pinhole ``f * X/Z + c``. With ``k`` (3 radial) and/or ``p`` (2 tangential, ``cameras.pkl``
    order) the VideoPose3D / original-H36M distortion is applied: ``xy`` clamped to [-1, 1],
    ``r2 = |xy|^2``, ``radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3``, with ``q = (p2, p1)``:
    ``xy' = xy * (radial + q.xy) + q * r2``. Points with ``Z <= 0`` give meaningless values.
    """
    X = _f64(points_cam)
    if X.shape[-1] != 3:
        raise ValueError(f"project_points expects (..., 3) points, got shape {X.shape}")
    xy = X[..., :2] / X[..., 2:3]
    if k is not None or p is not None:
        kk = np.zeros(3) if k is None else _f64(k).reshape(3)
        q = np.zeros(2) if p is None else _f64(p).reshape(2)[::-1]
        xy = np.clip(xy, -1.0, 1.0)
        r2 = np.sum(xy * xy, axis=-1, keepdims=True)
        radial = 1.0 + r2 * (kk[0] + r2 * (kk[1] + r2 * kk[2]))
        tan = np.sum(q * xy, axis=-1, keepdims=True)
        xy = xy * (radial + tan) + q * r2
    return xy * _f64(f).reshape(2) + _f64(c).reshape(2)


def quaternion_to_matrix(q: Any) -> np.ndarray:
    """Unit quaternion(s) (..., 4) in (w, x, y, z) order -> rotation matrices (..., 3, 3)."""
    q = _f64(q)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def matrix_to_quaternion(R: Any) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4), (w, x, y, z) with w >= 0.

    Picks, per matrix, the best-conditioned of the four standard formulas (largest component).
    """
    m = _f64(R)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    cands = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], -1),
            np.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            np.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
            np.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )  # (..., 4, 4); row i is proportional to q when component i is the largest
    diag = np.diagonal(cands, axis1=-2, axis2=-1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


@dataclass(frozen=True, eq=False)
class Camera:
    """One calibrated camera.

    Args:
        R: (3, 3) rotation camera -> world.
        T: (3,) camera centre in world coordinates, metres.
        f: (2,) focal lengths (px). c: (2,) principal point (px).
        k: (3,) radial distortion. p: (2,) tangential distortion, ``cameras.pkl`` order.
        w, h: image size (px). id: camera serial. name: e.g. ``"camera1"``.
        azimuth: VideoPose3D's visualisation azimuth (degrees), if known.
    """

    R: np.ndarray
    T: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray = field(default_factory=lambda: np.zeros(3))
    p: np.ndarray = field(default_factory=lambda: np.zeros(2))
    w: int = 1000
    h: int = 1000
    id: str = ""
    name: str = ""
    azimuth: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for attr, n in (("R", 9), ("T", 3), ("f", 2), ("c", 2), ("k", 3), ("p", 2)):
            v = _f64(getattr(self, attr))
            if v.size != n:
                raise ValueError(f"Camera {self.id or self.name!r}: {attr} must have {n} values, got shape {v.shape}")
            set_(self, attr, v.reshape(3, 3) if attr == "R" else v.reshape(n))
        set_(self, "w", int(self.w))
        set_(self, "h", int(self.h))
        set_(self, "id", str(self.id))
        set_(self, "name", str(self.name))

    def world_to_camera(self, points: Any) -> np.ndarray:
        """World -> camera coordinates (..., 3)."""
        return world_to_camera(points, self.R, self.T)

    def camera_to_world(self, points: Any) -> np.ndarray:
        """Camera -> world coordinates (..., 3)."""
        return camera_to_world(points, self.R, self.T)

    def project(self, points_cam: Any, distort: bool = True) -> np.ndarray:
        """Camera-space points (..., 3) -> pixels (..., 2), with or without lens distortion."""
        if distort:
            return project_points(points_cam, self.f, self.c, self.k, self.p)
        return project_points(points_cam, self.f, self.c)

    def project_world(self, points: Any, distort: bool = True) -> np.ndarray:
        """World points (..., 3) -> pixels (..., 2)."""
        return self.project(self.world_to_camera(points), distort=distort)

    @property
    def quaternion(self) -> np.ndarray:
        """Orientation (camera -> world) as (w, x, y, z), VideoPose3D's ``orientation``."""
        return matrix_to_quaternion(self.R)

    def to_videopose3d(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """VideoPose3D-style ``(intrinsic, extrinsic)`` dicts (translation in mm, p reversed)."""
        intr: dict[str, Any] = {
            "id": self.id,
            "center": self.c.tolist(),
            "focal_length": self.f.tolist(),
            "radial_distortion": self.k.tolist(),
            "tangential_distortion": self.p[::-1].tolist(),
            "res_w": self.w,
            "res_h": self.h,
        }
        if self.azimuth is not None:
            intr["azimuth"] = self.azimuth
        extr = {"orientation": self.quaternion.tolist(), "translation": (self.T * 1000.0).tolist()}
        return intr, extr

    @classmethod
    def from_videopose3d(
        cls, intrinsic: Mapping[str, Any], extrinsic: Mapping[str, Any], *, source: str = "", name: str = ""
    ) -> Camera:
        """Build from VideoPose3D's intrinsic and extrinsic dicts (quaternion, translation in mm)."""
        where = f"{source}: " if source else ""
        for key in ("center", "focal_length", "res_w", "res_h"):
            if key not in intrinsic:
                raise UserKeyError(f"{where}camera intrinsics {intrinsic.get('id', '?')!r} miss key {key!r}")
        for key in ("orientation", "translation"):
            if key not in extrinsic:
                raise UserKeyError(f"{where}camera extrinsics for {intrinsic.get('id', '?')!r} miss key {key!r}")
        return cls(
            R=quaternion_to_matrix(extrinsic["orientation"]),
            T=_f64(extrinsic["translation"]) / 1000.0,
            f=intrinsic["focal_length"],
            c=intrinsic["center"],
            k=intrinsic.get("radial_distortion", np.zeros(3)),
            p=_f64(intrinsic.get("tangential_distortion", np.zeros(2)))[::-1],
            w=intrinsic["res_w"],
            h=intrinsic["res_h"],
            id=str(intrinsic.get("id", "")),
            name=name,
            azimuth=intrinsic.get("azimuth"),
        )


_CameraSet = dict[str, tuple[Camera, ...]]


def _camera_order(cam: Camera) -> tuple[int, str]:
    m = re.search(r"(\d+)$", cam.name)
    if m:
        return int(m.group(1)), cam.id
    if cam.id in H36M_CAMERA_IDS:
        return H36M_CAMERA_IDS.index(cam.id) + 1, cam.id
    return 10**6, cam.id


def load_mmpose_cameras(path: str | Path) -> _CameraSet:
    """Read MMPose's ``cameras.pkl``: ``{(subject, camera_id): {R, T, f, c, k, p, w, h, name, id}}``.

    Returns subject -> cameras in dataset order (``camera1`` .. ``camera4``).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            raw = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, IndexError) as e:
            raise ValueError(f"{path}: not a readable cameras.pkl (truncated or corrupt? "
                             f"{type(e).__name__}: {e})") from None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a dict keyed by (subject, camera_id), got {type(raw).__name__}")
    out: dict[str, list[Camera]] = {}
    for key, d in raw.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"{path}: expected (subject, camera_id) keys, got {key!r}")
        subject, cam_id = str(key[0]), str(key[1])
        for fld in ("R", "T", "f", "c"):
            if fld not in d:
                raise UserKeyError(f"{path}: camera {key!r} misses field {fld!r}")
        w, h = H36M_CAMERA_RESOLUTION.get(cam_id, (None, None))
        w, h = d.get("w", w), d.get("h", h)
        if w is None or h is None:
            raise UserKeyError(f"{path}: camera {key!r} misses field 'w'/'h' (image size)")
        cam = Camera(
            R=d["R"], T=d["T"], f=d["f"], c=d["c"], k=d.get("k", np.zeros(3)), p=d.get("p", np.zeros(2)),
            w=int(np.asarray(w)), h=int(np.asarray(h)), id=str(np.asarray(d.get("id", cam_id))),
            name=str(np.asarray(d.get("name", ""))),
        )
        out.setdefault(subject, []).append(cam)
    return {s: tuple(sorted(cams, key=_camera_order)) for s, cams in out.items()}


def load_videopose3d_cameras(path: str | Path) -> _CameraSet:
    """Read a VideoPose3D-style camera json: ``{"intrinsics": [...], "extrinsics": {subject: [...]}}``.

    ``intrinsics`` is the ordered list of VideoPose3D intrinsic dicts; ``extrinsics[subject][i]`` holds
    ``orientation`` (w, x, y, z quaternion, camera->world) and ``translation`` (mm) for camera i.
    """
    path = Path(path)
    data = json.loads(path.read_text())
    for key in ("intrinsics", "extrinsics"):
        if key not in data:
            raise UserKeyError(f"{path}: missing key {key!r}")
    intr = data["intrinsics"]
    out: _CameraSet = {}
    for subject, extr in data["extrinsics"].items():
        if len(extr) != len(intr):
            raise ValueError(
                f"{path}: extrinsics[{subject!r}] has {len(extr)} cameras but intrinsics has {len(intr)}"
            )
        out[str(subject)] = tuple(
            Camera.from_videopose3d(i, e, source=str(path), name=f"camera{n + 1}")
            for n, (i, e) in enumerate(zip(intr, extr))
        )
    return out


def save_videopose3d_cameras(path: str | Path, cameras: Mapping[str, Sequence[Camera]]) -> Path:
    """Write cameras as a VideoPose3D-style json (intrinsics from the first subject, in order)."""
    path = Path(path)
    subjects = list(cameras)
    if not subjects:
        raise ValueError("no cameras to save")
    intr = [c.to_videopose3d()[0] for c in cameras[subjects[0]]]
    extr = {s: [c.to_videopose3d()[1] for c in cameras[s]] for s in subjects}
    path.write_text(json.dumps({"intrinsics": intr, "extrinsics": extr}, indent=1))
    return path


def load_cameras(path: str | Path) -> _CameraSet:
    """Read cameras from ``cameras.pkl`` (MMPose) or a VideoPose3D-style ``.json``: subject -> cameras."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera file not found: {path}")
    if path.suffix.lower() == ".json":
        return load_videopose3d_cameras(path)
    return load_mmpose_cameras(path)


def _as_camera_set(cameras: str | Path | Mapping[str, Sequence[Camera]]) -> tuple[_CameraSet, str]:
    if isinstance(cameras, (str, Path)):
        return load_cameras(cameras), str(cameras)
    return {str(s): tuple(c) for s, c in cameras.items()}, "<cameras>"


# ============================================================================ checks
def check_finite(
    array: np.ndarray,
    file: str,
    subject: str,
    action: str,
    camera: int | str | None = None,
    frames: np.ndarray | None = None,
) -> None:
    """Raise ``ValueError`` naming file, subject, action (camera) and the first frame with NaN/inf."""
    a = np.asarray(array)
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1) if a.size else np.zeros(0, bool)
    if bad.any():
        i = int(np.argmax(bad))
        frame = f"frame {i}" + (f" (original frame {int(frames[i])})" if frames is not None else "")
        cam = f", camera {camera}" if camera is not None else ""
        raise ValueError(
            f"{file}: NaN/inf keypoints in subject {subject!r}, action {action!r}{cam}, {frame} "
            f"({int(bad.sum())} bad frame(s) of {a.shape[0]})"
        )


def _check_joints(array: np.ndarray, dims: int, file: str, subject: str, action: str, what: str,
                  allowed: tuple[int, ...] = (NUM_JOINTS,)) -> None:
    a = np.asarray(array)
    if a.ndim != 3 or a.shape[1] not in allowed or a.shape[2] != dims:
        want = " or ".join(f"(L, {j}, {dims})" for j in allowed)
        raise ValueError(
            f"{file}: {what} for subject {subject!r}, action {action!r} has shape {a.shape}; expected {want} "
            f"(H36M has {NUM_JOINTS} joints)"
        )


# ============================================================================ clips
def action_class(action: str) -> str:
    """Action class: the text before the first space (``"Walking 1" -> "Walking"``), with S1's
    spellings ``TakingPhoto``/``WalkingDog`` mapped to ``Photo``/``WalkDog``."""
    name = str(action).split(" ", 1)[0]
    return ACTION_ALIASES.get(name, name)


@dataclass
class H36MClip:
    """One (subject, action, camera) sequence.

    Attributes:
        subject: e.g. ``"S9"``. action: full action name, e.g. ``"Walking 1"``.
        camera: camera index in the subject's camera list (0-3).
        keypoints_2d: (L, 17, 2) pixels. keypoints_3d: (L, 17, 3) camera coordinates, metres, absolute.
        width, height: image size in pixels (for the 2D normalisation).
        camera_id: camera serial. source: file(s) the clip came from.
        frames: (L,) original frame numbers when known (MMPose layout), else None.
    """

    subject: str
    action: str
    camera: int
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    width: int
    height: int
    camera_id: str = ""
    source: str = ""
    frames: np.ndarray | None = None

    def __post_init__(self) -> None:
        src = self.source or "<clip>"
        _check_joints(self.keypoints_2d, 2, src, self.subject, self.action, "2D keypoints")
        _check_joints(self.keypoints_3d, 3, src, self.subject, self.action, "3D keypoints")
        if len(self.keypoints_2d) != len(self.keypoints_3d):
            raise ValueError(
                f"{src}: subject {self.subject!r}, action {self.action!r}, camera {self.camera}: "
                f"{len(self.keypoints_2d)} 2D frames but {len(self.keypoints_3d)} 3D frames"
            )
        if len(self.keypoints_2d) == 0:
            raise ValueError(f"{src}: subject {self.subject!r}, action {self.action!r} has no frames")
        for a in (self.keypoints_2d, self.keypoints_3d):
            check_finite(a, src, self.subject, self.action, self.camera, self.frames)

    @property
    def length(self) -> int:
        """Number of frames L."""
        return int(len(self.keypoints_3d))

    @property
    def action_class(self) -> str:
        """Action class (text before the first space)."""
        return action_class(self.action)


def _load_arrays(path: Path, keys: Sequence[str], allow_pickle: bool, what: str = "npz") -> dict[str, Any]:
    """``{key: value}`` of an ``.npz`` (``_npz_get`` per key; missing keys are a ``KeyError`` naming the file) or,
    with ``keys=()``, ``{"": array}`` of an ``.npy``. A truncated or corrupt file is a ``ValueError`` naming it;
    a missing or unreadable one keeps its ``OSError`` (which names it)."""
    try:
        if not keys:
            return {"": np.load(path, allow_pickle=allow_pickle)}
        z = np.load(path, allow_pickle=allow_pickle)
        if hasattr(z, "files"):
            with z:
                return {k: _npz_get(z, k, path) for k in keys}
    except (FileNotFoundError, PermissionError, IsADirectoryError, KeyError):
        raise
    except (zipfile.BadZipFile, EOFError, zlib.error, pickle.UnpicklingError, ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable {what} file (truncated or corrupt? "
                         f"{type(e).__name__}: {e})") from None
    raise ValueError(f"{path}: a single array (.npy), expected an .npz archive with keys {list(keys)}")


def _npz_get(data: Any, key: str, path: Path) -> Any:
    if key not in data:
        raise UserKeyError(f"{path}: missing key {key!r} (keys found: {sorted(data.keys())})")
    value = data[key]
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
    return value


def _sub(mapping: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        have = sorted(mapping) if isinstance(mapping, Mapping) else type(mapping).__name__
        raise UserKeyError(f"{path}: missing key {where}[{key!r}] (found: {have})")
    return mapping[key]


def subjects_for(split: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"train"``/``"test"`` -> the standard subject tuple; a sequence is returned as a tuple."""
    if split is None:
        return None
    if isinstance(split, str):
        if split in SPLITS:
            return SPLITS[split]
        return (split,)
    return tuple(str(s) for s in split)


def load_videopose3d(
    path_3d: str | Path,
    path_2d: str | Path,
    cameras: str | Path | Mapping[str, Sequence[Camera]],
    subjects: str | Sequence[str] | None = None,
    *,
    dtype: Any = np.float32,
) -> list[H36MClip]:
    """Load VideoPose3D-layout H36M into per-camera clips.

    Args:
        path_3d: ``data_3d_h36m.npz``; ``positions_3d``: subject -> action -> (L, 32 or 17, 3) world metres.
        path_2d: ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` or ``data_2d_h36m_gt.npz``; ``positions_2d``:
            subject -> action -> list (one per camera) of (L2 >= L, 17, 2) pixels, cut to L; ``metadata``.
        cameras: ``cameras.pkl``, a VideoPose3D-style json, or subject -> ordered cameras.
        subjects: ``"train"``/``"test"`` (the split's subjects present in the file), an explicit list
            (each must be present), or None for every subject of the 3D file.

    Raises:
        KeyError: a missing npz key / subject / action / camera, naming the file and the key.
        ValueError: wrong joint counts, 2D shorter than 3D, camera-count mismatch, NaN keypoints.
    """
    p3, p2 = Path(path_3d), Path(path_2d)
    pos3d = _load_arrays(p3, ["positions_3d"], allow_pickle=True)["positions_3d"]
    got = _load_arrays(p2, ["positions_2d", "metadata"], allow_pickle=True)
    pos2d, meta = got["positions_2d"], got["metadata"]
    sym = _sub(meta, "keypoints_symmetry", p2, "metadata")
    try:
        pairs = {frozenset((int(a), int(b))) for a, b in zip(sym[0], sym[1], strict=True)}
    except (TypeError, ValueError, IndexError):
        raise ValueError(
            f"{p2}: metadata['keypoints_symmetry'] must be [left joints, right joints], got {sym!r}"
        ) from None
    if pairs != {frozenset(p) for p in H36M.flip_pairs}:
        expect = [[j for _, j in H36M.flip_pairs], [i for i, _ in H36M.flip_pairs]]
        raise ValueError(f"{p2}: metadata['keypoints_symmetry'] = {sym!r} does not match H36M-17 {expect}")
    cams, cam_src = _as_camera_set(cameras)
    if not isinstance(pos3d, Mapping):
        raise ValueError(f"{p3}: 'positions_3d' must be a dict subject -> action -> array")

    wanted = subjects_for(subjects)
    subject_list = list(pos3d) if wanted is None else list(wanted)
    if isinstance(subjects, str) and subjects in SPLITS:  # a split name keeps the subjects present
        subject_list = [s for s in subject_list if s in pos3d]
        if not subject_list:
            raise UserKeyError(f"{p3}: no {subjects} subjects {SPLITS[subjects]} in positions_3d (found: {sorted(pos3d)})")
        missing = [s for s in wanted if s not in pos3d]
        if missing:  # a partial file: its scores are not the full split's
            warn(f"{p3}: the {subjects} split has no {', '.join(missing)} in this file; using "
                 f"{', '.join(subject_list)} only")
    clips: list[H36MClip] = []
    for subject in subject_list:
        acts3 = _sub(pos3d, subject, p3, "positions_3d")
        acts2 = _sub(pos2d, subject, p2, "positions_2d")
        if subject not in cams:
            raise UserKeyError(f"{cam_src}: no cameras for subject {subject!r} (found: {sorted(cams)})")
        subj_cams = cams[subject]
        for action, world in acts3.items():
            world = np.asarray(world)
            _check_joints(world, 3, str(p3), subject, action, "positions_3d", allowed=(NUM_JOINTS, 32))
            check_finite(world, str(p3), subject, action)
            if world.shape[1] == 32:
                world = world[:, H36M32_TO_17]
            per_cam = _sub(acts2, action, p2, f"positions_2d[{subject!r}]")
            if len(per_cam) != len(subj_cams):
                raise ValueError(
                    f"{p2}: positions_2d[{subject!r}][{action!r}] has {len(per_cam)} cameras but "
                    f"{cam_src} lists {len(subj_cams)} for {subject!r}"
                )
            length = world.shape[0]
            for ci, (kp2d, cam) in enumerate(zip(per_cam, subj_cams)):
                kp2d = np.asarray(kp2d)
                _check_joints(kp2d, 2, str(p2), subject, action, f"positions_2d camera {ci}")
                if kp2d.shape[0] < length:
                    raise ValueError(
                        f"{p2}: positions_2d[{subject!r}][{action!r}][{ci}] has {kp2d.shape[0]} frames, "
                        f"fewer than the {length} 3D frames in {p3}"
                    )
                kp2d = kp2d[:length]
                check_finite(kp2d, str(p2), subject, action, ci)
                clips.append(
                    H36MClip(
                        subject=subject, action=str(action), camera=ci,
                        keypoints_2d=kp2d.astype(dtype), keypoints_3d=cam.world_to_camera(world).astype(dtype),
                        width=cam.w, height=cam.h, camera_id=cam.id, source=f"{p3} + {p2}",
                    )
                )
    return clips


_IMGNAME = re.compile(r"^(S\d+)_(.+)\.([^._]+)_(\d+)\.\w+$")


def _parse_imgname(name: str, path: Path) -> tuple[str, str, str, int]:
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    m = _IMGNAME.match(base)
    if not m:
        raise ValueError(f"{path}: cannot parse imgname {name!r} (expected S<n>_<Action>.<camera>_<frame>.jpg)")
    subject, action, cam, frame = m.groups()
    return subject, action.replace("_", " "), cam, int(frame)


def load_mmpose_h36m(
    path: str | Path,
    cameras: str | Path | Mapping[str, Sequence[Camera]] | None = None,
    keypoints_2d: str | Path | np.ndarray | None = None,
    subjects: str | Sequence[str] | None = None,
    *,
    dtype: Any = np.float32,
) -> list[H36MClip]:
    """Load MMPose's H36M body-3D npz (``imgname``, ``part``, ``S``) into clips.

    Rows are grouped by (subject, action, camera) from ``imgname`` and ordered by frame number.
    Action names get spaces instead of underscores (``Directions_1 -> "Directions 1"``).

    Args:
        path: e.g. ``test_h36m_body3d.npz``; ``S`` is (N, 17, 3|4) camera metres, ``part`` (N, 17, 2|3) px.
        cameras: camera file or set used for the image size; None uses ``cameras.pkl`` beside ``path``
            if present, else the fixed H36M resolutions.
        keypoints_2d: detected 2D (N, 17, 2|3) (array or ``.npy``) replacing ``part``, same row order.
        subjects: ``"train"``, ``"test"``, a list, or None for all.
    """
    path = Path(path)
    got = _load_arrays(path, ["imgname", "S"] + (["part"] if keypoints_2d is None else []), allow_pickle=False)
    names, S = got["imgname"], np.asarray(got["S"])
    part = np.asarray(got["part"]) if keypoints_2d is None else None
    det_src = str(path)
    if keypoints_2d is not None:
        det_src = str(keypoints_2d) if isinstance(keypoints_2d, (str, Path)) else "<keypoints_2d>"
        part = (np.asarray(_load_arrays(Path(keypoints_2d), (), allow_pickle=False, what="npy")[""])
                if isinstance(keypoints_2d, (str, Path)) else np.asarray(keypoints_2d))
    assert part is not None
    n = len(names)
    if S.ndim != 3 or S.shape[0] != n or S.shape[1] != NUM_JOINTS or S.shape[2] not in (3, 4):
        raise ValueError(f"{path}: 'S' has shape {S.shape}; expected ({n}, {NUM_JOINTS}, 3 or 4)")
    if part.ndim != 3 or part.shape[0] != n or part.shape[1] != NUM_JOINTS or part.shape[2] not in (2, 3):
        raise ValueError(f"{det_src}: 2D keypoints have shape {part.shape}; expected ({n}, {NUM_JOINTS}, 2 or 3)")

    if cameras is None:
        beside = path.with_name("cameras.pkl")
        cams: _CameraSet = load_cameras(beside) if beside.is_file() else {}
    else:
        cams, _ = _as_camera_set(cameras)

    parsed = [_parse_imgname(s, path) for s in names]
    keys = np.array([f"{s}\0{a}\0{c}" for s, a, c, _ in parsed])
    frame_no = np.array([f for *_, f in parsed], dtype=np.int64)
    wanted = subjects_for(subjects)
    order = np.lexsort((frame_no, keys))
    uniq, first = np.unique(keys[order], return_index=True)
    bounds = np.append(first, len(order))
    clips: list[H36MClip] = []
    for gi, key in enumerate(uniq):
        subject, action, cam_id = str(key).split("\0")
        if wanted is not None and subject not in wanted:
            continue
        rows = order[bounds[gi]:bounds[gi + 1]]
        subj_cams = cams.get(subject, ())
        match = [i for i, c in enumerate(subj_cams) if c.id == cam_id]
        if match:
            ci, (w, h) = match[0], (subj_cams[match[0]].w, subj_cams[match[0]].h)
        elif cam_id in H36M_CAMERA_RESOLUTION:
            ci, (w, h) = H36M_CAMERA_IDS.index(cam_id), H36M_CAMERA_RESOLUTION[cam_id]
        else:
            raise UserKeyError(f"{path}: unknown camera {cam_id!r} for subject {subject!r}; pass cameras=...")
        check_finite(S[rows, :, :3], str(path), subject, action, cam_id, frame_no[rows])
        check_finite(part[rows, :, :2], det_src, subject, action, cam_id, frame_no[rows])
        clips.append(
            H36MClip(
                subject=subject, action=action, camera=ci,
                keypoints_2d=part[rows, :, :2].astype(dtype), keypoints_3d=S[rows, :, :3].astype(dtype),
                width=int(w), height=int(h), camera_id=cam_id, source=str(path), frames=frame_no[rows],
            )
        )
    return clips


def filter_clips(clips: Iterable[H36MClip], subjects: str | Sequence[str] | None) -> list[H36MClip]:
    """Keep the clips of ``subjects`` (``"train"``, ``"test"``, a list, or None for all)."""
    wanted = subjects_for(subjects)
    return [c for c in clips if wanted is None or c.subject in wanted]


# ============================================================================ input preparation
def normalize_screen_coordinates(uv: Any, w: int, h: int) -> np.ndarray:
    """Pixels -> ``u/w*2-1, v/w*2-h/w`` (both axes divided by the width). (..., 2)."""
    uv = np.asarray(uv)
    if uv.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) pixel coordinates, got {uv.shape}")
    return uv / w * 2 - np.array([1.0, h / w], dtype=uv.dtype if uv.dtype.kind == "f" else np.float64)


def image_coordinates(xy: Any, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`. (..., 2)."""
    xy = np.asarray(xy)
    return (xy + np.array([1.0, h / w], dtype=xy.dtype if xy.dtype.kind == "f" else np.float64)) * w / 2


def root_relative(points: Any, root: int = 0) -> np.ndarray:
    """Subtract the root joint from every joint; the root becomes exactly 0. (..., J, 3)."""
    x = np.asarray(points)
    return x - x[..., root:root + 1, :]


def prepare_clip(clip: H36MClip, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for one clip: width-normalised 2D (L, 17, 2) and root-relative camera 3D (L, 17, 3)."""
    x2d = normalize_screen_coordinates(np.asarray(clip.keypoints_2d, np.float64), clip.width, clip.height)
    x3d = root_relative(np.asarray(clip.keypoints_3d, np.float64))
    return x2d.astype(dtype), x3d.astype(dtype)


def flip_keypoints(x: Any, flip_indices: Sequence[int] | None = None) -> Any:
    """Horizontal flip of (..., J, C) keypoints: negate x and swap left/right joints.

    Works on numpy arrays and torch tensors (returns a new array/tensor); applying it twice is the
    identity. Default indices: the H36M metainfo's ``flip_indices``.
    """
    idx = list(H36M.flip_indices if flip_indices is None else flip_indices)
    out = x[..., idx, :]
    out[..., 0] = -out[..., 0]
    return out


# ============================================================================ windows
def _check_window_args(length: int, frames: int) -> None:
    if int(frames) < 1:
        raise ValueError(f"window length must be >= 1, got {frames}")
    if int(length) < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")


def seq2seq_starts(length: int, frames: int, stride: int | None = None) -> np.ndarray:
    """First (possibly negative) frame of each seq2seq window (HoT's ``generator_stride``), (n,) int64:
    ``n = ceil((L - F)/stride + 1)`` windows (at least 1), ``start_k = k*stride - ((n-1)*stride + F - L)//2``.
    With the default ``stride = F`` (HoT's test) this is ``ceil(L/F)`` windows centred on the sequence."""
    _check_window_args(length, frames)
    length, frames = int(length), int(frames)
    stride = frames if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"window stride must be >= 1, got {stride}")
    n = max(-((frames - length - stride) // stride), 1)  # ceil((L - F + stride) / stride)
    offset = ((n - 1) * stride + frames - length) // 2
    return np.arange(n, dtype=np.int64) * stride - offset


def seq2seq_indices(length: int, frames: int, stride: int | None = None) -> np.ndarray:
    """Frame indices (n, F) of the seq2seq windows, edge-padded (indices clipped to [0, L-1])."""
    starts = seq2seq_starts(length, frames, stride)
    return np.clip(starts[:, None] + np.arange(frames), 0, length - 1)


def _resample(length: int, target: int, rng: np.random.Generator | None) -> np.ndarray:
    """MotionBERT's ``resample`` of a ``length``-frame video to ``target`` frame indices: with ``rng``, its
    random jitter (each even position rounded down or up at random when upsampling, a uniform offset
    within the interval when downsampling); without, its deterministic ``linspace`` branch."""
    even = np.linspace(0, length, num=target, endpoint=False)
    if rng is None:
        return even.astype(np.int64)  # linspace(..., dtype=int): truncation
    if length < target:
        sel = rng.integers(2, size=even.shape)
        out = np.sort(sel * np.floor(even) + (1 - sel) * np.ceil(even))
    else:
        out = rng.random(even.shape) * (even[1] - even[0] if target > 1 else length) + even
    return np.clip(out, 0, length - 1).astype(np.int64)


def split_clips(sources: Sequence[Any] | np.ndarray, clip_len: int, stride: int, *, tail: str = "drop",
                rng: np.random.Generator | None = None) -> np.ndarray:
    """MotionBERT's ``split_clips`` (``lib/utils/utils_data.py``): global frame indices (N, clip_len) int64.

    ``sources`` is the per-frame video id; a video is a run of equal ids. Each video of ``L >= clip_len``
    frames gives clips ``[s, s + clip_len)`` for ``s = 0, stride, ...`` with ``s + clip_len <= L``: the
    trailing remainder is **dropped** (``tail="drop"``, official); ``tail="end"`` adds one more clip aligned
    to the video's end when a remainder is left (covers every frame; not official). A shorter video is
    resampled to ``clip_len`` indices (:func:`_resample`; ``rng=None`` takes the official code's
    deterministic branch instead of its random jitter), except, as in the official loop, the **last** video of
    the list and a video whose id already gave a clip.
    """
    if tail not in ("drop", "end"):
        raise ValueError(f"split_clips: tail must be 'drop' or 'end', got {tail!r}")
    clip_len, stride = int(clip_len), int(stride)
    if clip_len < 1 or stride < 1:
        raise ValueError(f"split_clips: clip_len and stride must be >= 1, got {clip_len} and {stride}")
    src = np.asarray(sources)
    if src.ndim != 1:
        raise ValueError(f"split_clips: sources must be one id per frame (F,), got shape {src.shape}")
    if not len(src):
        return np.zeros((0, clip_len), np.int64)
    change = np.flatnonzero(src[1:] != src[:-1]) + 1
    starts, ends = np.r_[0, change], np.r_[change, len(src)]
    window = np.arange(clip_len, dtype=np.int64)
    out: list[np.ndarray] = []
    saved: set[Any] = set()
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):  # a loop over videos
        length, name = e - s, src[s].item()
        if length >= clip_len:
            first = s + np.arange(0, length - clip_len + 1, stride, dtype=np.int64)
            if tail == "end" and first[-1] + clip_len < e:
                first = np.append(first, e - clip_len)
            out.append(first[:, None] + window)
            saved.add(name)
        elif k < len(starts) - 1 and name not in saved:
            out.append(s + _resample(length, clip_len, rng)[None])
            saved.add(name)
    return np.concatenate(out) if out else np.zeros((0, clip_len), np.int64)


def seq2frame_indices(length: int, frames: int) -> np.ndarray:
    """Frame indices (L, F) of the edge-padded window centred on every frame; F must be odd.
    Row t has frame t at column ``F // 2``."""
    _check_window_args(length, frames)
    if frames % 2 != 1:
        raise ValueError(f"seq2frame windows need an odd length (2*pad+1), got {frames}")
    pad = frames // 2
    return np.clip(np.arange(length)[:, None] + np.arange(-pad, pad + 1), 0, length - 1)


class H36MLiftingDataset(Dataset):
    """Windows of prepared H36M clips for 2D->3D lifting.

    Each item is a dict: ``input_2d`` (F, 17, 2) float32 (width-normalised), ``target_3d`` (F, 17, 3)
    float32 (camera metres, root at 0), ``action`` (class, e.g. ``"Walking"``), ``subject``, ``camera``
    (int index), ``clip`` (clip index), ``frame_indices`` (F,) int64 source frames (padding repeats
    the edge frames), ``flipped`` (bool), and for seq2frame ``centre`` (= F // 2).

    Args:
        clips: from :func:`load_videopose3d` / :func:`load_mmpose_h36m`.
        frames: window length F (odd for seq2frame).
        mode: ``"seq2seq"`` (centred, edge-padded windows, HoT), ``"seq2frame"`` (one per frame) or
            ``"clips"`` (MotionBERT's :func:`split_clips`: F consecutive frames, trailing remainder dropped).
        flip_augment: flip windows as training augmentation (x negated, left/right swapped in 2D and 3D).
        flip_mode: ``"copies"``: every window also appears flipped (indices ``[n, 2n)``), as HoT's training
            does, deterministic; ``"random"``: each window is flipped with probability 0.5 (MotionBERT), drawn
            from ``numpy.random.default_rng([seed, epoch, index])`` (:meth:`set_epoch`), so a resumed run sees
            the same draws.
        seed: the run's seed for ``flip_mode="random"``.
        subjects: optional filter (``"train"``, ``"test"`` or a list).
        metainfo: layout giving the flip indices (default H36M).
        stride: window step of ``seq2seq`` and ``clips`` (default F; MotionBERT trains on clips at 81).
        resample_seed: ``clips`` only: the seed of the random jitter with which a clip shorter than F is
            resampled (MotionBERT's ``resample``); None takes the deterministic even spacing.
    """

    def __init__(
        self,
        clips: Sequence[H36MClip],
        frames: int = 243,
        mode: str = "seq2seq",
        flip_augment: bool = False,
        subjects: str | Sequence[str] | None = None,
        metainfo: PoseMetaInfo = H36M,
        stride: int | None = None,
        resample_seed: int | None = None,
        flip_mode: str = "copies",
        seed: int = 0,
    ) -> None:
        if flip_mode not in ("copies", "random"):
            raise ValueError(f"flip_mode must be 'copies' or 'random', got {flip_mode!r}")
        if mode not in ("seq2seq", "seq2frame", "clips"):
            raise ValueError(f"mode must be 'seq2seq', 'seq2frame' or 'clips', got {mode!r}")
        if mode == "seq2frame" and frames % 2 != 1:
            raise ValueError(f"seq2frame windows need an odd length, got {frames}")
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.clips = filter_clips(clips, subjects)
        if not self.clips:
            raise ValueError(f"no clips left for subjects={subjects!r}")
        if metainfo.num_keypoints != NUM_JOINTS:
            raise ValueError(f"metainfo {metainfo.name!r} has {metainfo.num_keypoints} joints, expected {NUM_JOINTS}")
        self.frames = int(frames)
        self.mode = mode
        self.flip_augment = bool(flip_augment)
        self.flip_mode, self.seed, self.epoch = flip_mode, int(seed), 0
        self.flip_indices = metainfo.flip_indices
        prepared = [prepare_clip(c) for c in self.clips]
        self._x2d = [p[0] for p in prepared]
        self._x3d = [p[1] for p in prepared]
        self._lengths = np.array([c.length for c in self.clips], dtype=np.int64)
        self.stride = self.frames if stride is None else int(stride)
        self._index: np.ndarray | None = None  # clips mode: (N, F) frame indices within the sequence
        if mode == "seq2seq":
            starts = [seq2seq_starts(int(n), self.frames, self.stride) for n in self._lengths]
            counts = np.array([len(s) for s in starts], dtype=np.int64)
            self._start = np.concatenate(starts)
        elif mode == "clips":
            rng = None if resample_seed is None else np.random.default_rng(resample_seed)
            seq = np.repeat(np.arange(len(self.clips), dtype=np.int64), self._lengths)
            glob = split_clips(seq, self.frames, self.stride, rng=rng)
            offsets = np.cumsum(self._lengths) - self._lengths
            clip_of = seq[glob[:, 0]]
            self._index = glob - offsets[clip_of][:, None]
            self._start = self._index[:, 0].copy()
            counts = np.bincount(clip_of, minlength=len(self.clips)).astype(np.int64)
        else:
            counts = self._lengths
            offsets = np.repeat(np.cumsum(counts) - counts, counts)
            self._start = np.arange(int(counts.sum()), dtype=np.int64) - offsets - self.frames // 2
        self._clip = np.repeat(np.arange(len(self.clips), dtype=np.int64), counts)
        self._window = np.arange(self.frames, dtype=np.int64)

    @property
    def num_windows(self) -> int:
        """Windows before flip augmentation."""
        return int(len(self._start))

    def __len__(self) -> int:
        return self.num_windows * (2 if self.flip_augment and self.flip_mode == "copies" else 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the random flips of ``epoch`` (``flip_mode="random"``)."""
        self.epoch = int(epoch)

    def window_indices(self, index: int) -> tuple[int, np.ndarray]:
        """(clip index, (F,) source frame indices) of window ``index`` (flip copies included)."""
        j = int(index) % self.num_windows
        c = int(self._clip[j])
        if self._index is not None:
            return c, self._index[j]
        return c, np.clip(self._start[j] + self._window, 0, self._lengths[c] - 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        index = int(index) % len(self)
        if self.flip_augment and self.flip_mode == "random":
            flipped = bool(np.random.default_rng([self.seed, self.epoch, index]).random() < 0.5)
        else:
            flipped = index >= self.num_windows
        c, idx = self.window_indices(index)
        x2d, x3d = self._x2d[c][idx], self._x3d[c][idx]
        if flipped:
            x2d, x3d = flip_keypoints(x2d, self.flip_indices), flip_keypoints(x3d, self.flip_indices)
        clip = self.clips[c]
        item: dict[str, Any] = {
            "input_2d": torch.from_numpy(np.ascontiguousarray(x2d)),
            "target_3d": torch.from_numpy(np.ascontiguousarray(x3d)),
            "action": clip.action_class,
            "subject": clip.subject,
            "camera": int(clip.camera),
            "clip": c,
            "frame_indices": torch.from_numpy(idx),
            "flipped": flipped,
        }
        if self.mode == "seq2frame":
            item["centre"] = self.frames // 2
        return item
