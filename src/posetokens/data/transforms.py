"""Top-down geometry and augmentation (numpy + OpenCV).

Conventions:

* sizes are ``(w, h)`` in code; boxes are ``[x, y, w, h]`` in pixels;
* ``center`` is ``(x, y)`` and ``scale`` is the box size ``(w, h)`` in **pixels**
  (MMPose 1.x; the legacy "/200" unit belongs to the MPII/H36M files only);
* pixel centres sit at integer coordinates (OpenCV), so a horizontal flip of an
  image of width ``W`` maps ``x -> W - 1 - x``;
* a positive rotation ``rot`` (degrees) turns the image content counter-clockwise
  in the crop, for both the standard and the UDP warp (note: MMPose's own UDP
  matrix rotates the other way; for symmetric random rotations this is immaterial);
* every random function takes a ``numpy.random.Generator``; nothing touches the
  global RNG.

Train order (MMPose / ecosystem spec): box -> centre/scale, random flip, half-body,
random box shift/scale/rotation, affine warp, target encoding.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from ..codecs import BaseKeypointCodec, flip_keypoints
from .metainfo import PoseMetaInfo, get_metainfo

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TopdownAugConfig",
    "TopdownPipeline",
    "affine_keypoints",
    "bbox_xywh_to_center_scale",
    "fix_aspect_ratio",
    "get_affine_transform",
    "get_udp_warp_matrix",
    "half_body_transform",
    "invert_affine",
    "normalize_image",
    "random_bbox_transform",
    "random_flip",
    "truncated_normal",
    "warp_crop",
]

IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)  # RGB, 0-255
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)


def _vec2(v: Any, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.shape != (2,):
        raise ValueError(f"{name} must have 2 values (x, y) / (w, h), got shape {np.shape(v)}")
    return a


# ----------------------------------------------------------------------- boxes
def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow ``scale`` (..., 2) = (w, h) so that ``w / h == aspect_ratio``."""
    s = np.asarray(scale, dtype=np.float64)
    w, h = s[..., 0], s[..., 1]
    wide = w > aspect_ratio * h
    return np.stack([np.where(wide, w, h * aspect_ratio), np.where(wide, w / aspect_ratio, h)], axis=-1)


def bbox_xywh_to_center_scale(
    bbox: Any, aspect_ratio: float, padding: float = 1.25, pixel_aligned: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``[x, y, w, h]`` boxes to centre and pixel scale.

    The box is grown to ``aspect_ratio`` (input ``w / h``, e.g. 192/256) and then
    multiplied by ``padding``.

    Args:
        bbox: (4,) or (N, 4) boxes.
        aspect_ratio: target ``w / h``.
        padding: scale multiplier (1.25 for top-down).
        pixel_aligned: use TokenPose/DARK's centre ``x + (w - 1) / 2`` instead of
            MMPose's ``x + w / 2``.
    Returns:
        ``(center, scale)``, each (2,) or (N, 2) float64.
    """
    b = np.asarray(bbox, dtype=np.float64)
    if b.shape[-1] != 4 or b.ndim not in (1, 2):
        raise ValueError(f"bbox must have shape (4,) or (N, 4) as [x, y, w, h], got {b.shape}")
    if aspect_ratio <= 0:
        raise ValueError(f"aspect_ratio must be positive, got {aspect_ratio}")
    off = 1.0 if pixel_aligned else 0.0
    center = b[..., :2] + (b[..., 2:] - off) * 0.5
    scale = fix_aspect_ratio(b[..., 2:], aspect_ratio) * padding
    return center, scale


# ---------------------------------------------------------------------- affine
def _rotate(pt: np.ndarray, rad: float) -> np.ndarray:
    c, s = math.cos(rad), math.sin(rad)
    return np.array([pt[0] * c - pt[1] * s, pt[0] * s + pt[1] * c])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a - b
    return b + np.array([-d[1], d[0]])


def get_affine_transform(
    center: Any,
    scale: Any,
    rot: float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
) -> np.ndarray:
    """The standard HRNet 3-point affine from a box to an output crop.

    The box centre (plus ``shift * scale``) maps to ``output_size / 2`` and the box
    width ``scale[0]`` maps to the output width (isotropic; fix the aspect ratio
    first). ``rot`` rotates the content counter-clockwise by that many degrees.

    Args:
        center: (2,) box centre, pixels.
        scale: (2,) box size (w, h), pixels.
        rot: rotation in degrees.
        output_size: ``(w, h)`` of the crop.
        shift: centre shift as a fraction of the box size.
        inv: return the crop -> image matrix instead.
    Returns:
        (2, 3) float64 matrix.
    """
    c = _vec2(center, "center")
    s = _vec2(scale, "scale")
    out_w, out_h = (float(v) for v in output_size)
    sh = _vec2(shift, "shift")
    src_w = s[0]
    rad = math.radians(rot)
    src_dir = _rotate(np.array([0.0, -0.5 * src_w]), rad)
    dst_dir = np.array([0.0, -0.5 * out_w])
    src = np.zeros((3, 2))
    dst = np.zeros((3, 2))
    src[0] = c + s * sh
    src[1] = src[0] + src_dir
    dst[0] = (0.5 * out_w, 0.5 * out_h)
    dst[1] = dst[0] + dst_dir
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        src, dst = dst, src
    return _solve_affine(src, dst)


def _solve_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Exact (float64) affine mapping 3 src points onto 3 dst points."""
    a = np.concatenate([src, np.ones((3, 1))], axis=1)  # (3, 3)
    return np.linalg.solve(a, dst).T  # (2, 3)


def get_udp_warp_matrix(
    center: Any,
    scale: Any,
    rot: float,
    output_size: Sequence[int],
    inv: bool = False,
    src_minus_one: bool = False,
) -> np.ndarray:
    """UDP ("size - 1") affine from a box to an output crop.

    Maps ``center`` to ``((out_w - 1) / 2, (out_h - 1) / 2)`` and scales each
    axis by ``(out - 1) / scale`` (MMPose UDP), or by ``(out - 1) / (scale - 1)``
    with ``src_minus_one=True`` (the TokenPose/DARK affine: source width
    ``s*200 - 1`` maps to ``width - 1``). Rotation direction as
    :func:`get_affine_transform`.

    Args:
        center, scale: (2,) pixels; rot: degrees; output_size: ``(w, h)``.
        inv: return the crop -> image matrix.
    Returns:
        (2, 3) float64 matrix.
    """
    c = _vec2(center, "center")
    s = _vec2(scale, "scale")
    out = np.asarray(output_size, dtype=np.float64)
    denom = s - 1.0 if src_minus_one else s
    if (denom <= 0).any():
        raise ValueError(f"scale must be > {1 if src_minus_one else 0}, got {s}")
    k = (out - 1.0) / denom
    rad = math.radians(rot)
    cs, sn = math.cos(rad), math.sin(rad)
    # R(-rot): content turns counter-clockwise for positive rot (y axis down)
    lin = np.array([[cs * k[0], sn * k[0]], [-sn * k[1], cs * k[1]]])
    t = (out - 1.0) * 0.5 - lin @ c
    m = np.concatenate([lin, t[:, None]], axis=1)
    return invert_affine(m) if inv else m


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix, or of each in a batch (..., 2, 3)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (2, 3):
        raise ValueError(f"expected a (2, 3) affine matrix, got {m.shape}")
    lin_inv = np.linalg.inv(m[..., :2])
    return np.concatenate([lin_inv, -(lin_inv @ m[..., 2:])], axis=-1)


def affine_keypoints(keypoints: Any, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine, or a batch (..., 2, 3) of them, to points (..., N, 2) (or (N, 2) shared by the
    batch); returns float64."""
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape[-1] != 2:
        raise ValueError(f"keypoints must have shape (..., 2), got {kps.shape}")
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape[-2:] != (2, 3):
        raise ValueError(f"affine matrix must have shape (..., 2, 3), got {m.shape}")
    if m.ndim == 2:  # one matrix: any point shape, a single (2,) point included
        return kps @ m[:, :2].T + m[:, 2]
    return kps @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def warp_crop(
    image: np.ndarray,
    center: Any,
    scale: Any,
    rot: float,
    output_size: Sequence[int],
    use_udp: bool = False,
    border_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (and rotate) a box out of an image with bilinear interpolation.

    Args:
        image: (H, W) or (H, W, C) array.
        center, scale: box centre and size in pixels (fix the aspect ratio first).
        rot: degrees; output_size: ``(w, h)``; use_udp: UDP matrix.
    Returns:
        ``(crop (h, w[, C]), matrix (2, 3) image -> crop)``.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got {image.shape}")
    w, h = (int(v) for v in output_size)
    if use_udp:
        m = get_udp_warp_matrix(center, scale, rot, (w, h))
    else:
        m = get_affine_transform(center, scale, rot, (w, h))
    crop = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
    return crop, m


# ---------------------------------------------------------------- augmentation
def truncated_normal(rng: np.random.Generator, size: Any = None, bound: float = 1.0) -> np.ndarray:
    """Standard normal samples restricted to ``[-bound, bound]`` (by resampling)."""
    out = rng.standard_normal(size)
    out = np.atleast_1d(np.asarray(out, dtype=np.float64))
    bad = np.abs(out) > bound
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > bound
    return out if size is not None else out.reshape(())


def random_flip(
    image: np.ndarray | None,
    center: Any,
    keypoints: np.ndarray | None,
    keypoints_visible: np.ndarray | None,
    flip_indices: Sequence[int],
    rng: np.random.Generator,
    prob: float = 0.5,
    image_width: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    """Horizontally flip the image, box centre and keypoints with probability ``prob``.

    ``x -> W - 1 - x`` for the centre and keypoints; left/right keypoints swap
    via ``flip_indices``.

    Args:
        image: (H, W[, C]) or None (then ``image_width`` is required).
        center: (2,) box centre.
        keypoints: (K, 2) / (N, K, 2) or None; keypoints_visible: matching (K,) / (N, K).
    Returns:
        ``(image, center, keypoints, keypoints_visible, flipped)``.
    """
    c = _vec2(center, "center")
    if not rng.random() < prob:
        return image, c, keypoints, keypoints_visible, False
    width = image.shape[1] if image is not None else image_width
    if width is None:
        raise ValueError("random_flip needs an image or image_width")
    if image is not None:
        image = np.ascontiguousarray(image[:, ::-1])
    c = np.array([width - 1 - c[0], c[1]])
    if keypoints is not None:
        keypoints, keypoints_visible = flip_keypoints(
            np.asarray(keypoints, dtype=np.float64),
            None if keypoints_visible is None else np.asarray(keypoints_visible),
            width, flip_indices,
        )
    return image, c, keypoints, keypoints_visible, True


def half_body_transform(
    keypoints: np.ndarray,
    keypoints_visible: np.ndarray,
    upper_body_ids: Sequence[int],
    lower_body_ids: Sequence[int],
    aspect_ratio: float,
    rng: np.random.Generator,
    prob: float = 0.3,
    min_total_keypoints: int = 9,
    min_part_keypoints: int = 3,
    upper_prob: float = 0.7,
    padding: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Replace the box by a tight box around the upper or lower body.

    Triggers (with probability ``prob``) only when at least ``min_total_keypoints``
    keypoints are visible (HRNet: "> 8"). The upper half is chosen with
    probability ``upper_prob`` (HRNet's ``randn < 0.5`` is 0.69; MMPose 0.7); a
    half with fewer than ``min_part_keypoints`` visible keypoints (HRNet: "> 2")
    is replaced by the other. The new centre is the mean of the chosen keypoints,
    the box their extent fixed to ``aspect_ratio`` times ``padding`` (1.5).

    Args:
        keypoints: (K, 2); keypoints_visible: (K,).
    Returns:
        ``(center, scale)`` of the half-body box, or None when not applied.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(keypoints_visible).reshape(-1) > 0
    if kps.ndim != 2 or kps.shape[1] != 2 or vis.shape[0] != kps.shape[0]:
        raise ValueError(
            f"half_body_transform expects keypoints (K, 2) and visibility (K,), got {kps.shape} and {vis.shape}"
        )
    if vis.sum() < min_total_keypoints or not rng.random() < prob:
        return None
    upper = [i for i in upper_body_ids if vis[i]]
    lower = [i for i in lower_body_ids if vis[i]]
    pick_upper = rng.random() < upper_prob
    if pick_upper and len(upper) < min_part_keypoints:
        pick_upper = False
    elif not pick_upper and len(lower) < min_part_keypoints:
        pick_upper = True
    sel = upper if pick_upper else lower
    if len(sel) < 2:
        return None
    pts = kps[sel]
    center = pts.mean(axis=0)
    size = pts.max(axis=0) - pts.min(axis=0)
    scale = fix_aspect_ratio(size, aspect_ratio) * padding
    return center, scale


def random_bbox_transform(
    center: Any,
    scale: Any,
    rng: np.random.Generator,
    shift_factor: float = 0.16,
    shift_prob: float = 0.3,
    scale_range: tuple[float, float] = (0.5, 1.5),
    scale_std: float | None = None,
    scale_prob: float = 1.0,
    rotate_limit: float = 80.0,
    rotate_std: float | None = None,
    rotate_prob: float = 0.6,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Randomly shift, rescale and rotate a box (truncated normals).

    * shift: ``center += N_t(0,1; |.|<=1) * shift_factor * scale`` with prob ``shift_prob``;
    * scale: ``scale *= mid + N(0, std) truncated to scale_range`` with prob
      ``scale_prob``; ``std`` defaults to the half range (MMPose);
    * rotation: ``N(0, rotate_std)`` truncated to ``+-rotate_limit`` with prob
      ``rotate_prob``; ``rotate_std`` defaults to ``rotate_limit`` (MMPose).

    Defaults are MMPose's (shift 0.16 @ 0.3, scale 0.5-1.5, rotation +-80 @ 0.6).
    TokenPose/HRNet (clipped rather than truncated normals) corresponds to
    ``shift_prob=0, scale_range=(0.65, 1.35), scale_std=0.35, rotate_limit=90,
    rotate_std=45`` (see :meth:`TopdownAugConfig.tokenpose_coco`).

    Returns:
        ``(center, scale, rotation_degrees)``.
    """
    c = _vec2(center, "center").copy()
    s = _vec2(scale, "scale").copy()
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
    if rng.random() < shift_prob:
        c = c + truncated_normal(rng, 2) * shift_factor * s
    if rng.random() < scale_prob:
        mid, half = (lo + hi) * 0.5, (hi - lo) * 0.5
        std = half if scale_std is None else scale_std
        bound = half / std if std > 0 else 0.0
        s = s * (mid + float(truncated_normal(rng, 1, bound)[0]) * std)
    rot = 0.0
    if rng.random() < rotate_prob:
        std = rotate_limit if rotate_std is None else rotate_std
        bound = rotate_limit / std if std > 0 else 0.0
        rot = float(truncated_normal(rng, 1, bound)[0]) * std
    return c, s, rot


def normalize_image(
    image: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    bgr_to_rgb: bool = True,
    chw: bool = True,
) -> np.ndarray:
    """Normalise an (H, W, 3) uint8/float image with ImageNet mean/std (0-255 scale).

    Args:
        image: (H, W, 3), BGR as read by OpenCV unless ``bgr_to_rgb=False``.
        mean, std: RGB statistics on the 0-255 scale.
        chw: return (3, H, W) instead of (H, W, 3).
    Returns:
        float32 array.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalize_image expects an (H, W, 3) image, got {image.shape}")
    img = image[..., ::-1] if bgr_to_rgb else image
    out = (img.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1) if chw else out)


# ------------------------------------------------------------------- pipeline
@dataclass(frozen=True)
class TopdownAugConfig:
    """Random top-down augmentation settings (defaults: MMPose COCO)."""

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 9
    half_body_min_part_keypoints: int = 3
    half_body_upper_prob: float = 0.7
    half_body_padding: float = 1.5
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.5, 1.5)
    scale_std: float | None = None
    scale_prob: float = 1.0
    rotate_limit: float = 80.0
    rotate_std: float | None = None
    rotate_prob: float = 0.6

    @classmethod
    def tokenpose_coco(cls) -> "TopdownAugConfig":
        """TokenPose/PPT/GTPT COCO recipe (HRNet pipeline)."""
        return cls(half_body_upper_prob=0.6915, shift_prob=0.0, scale_range=(0.65, 1.35),
                   scale_std=0.35, rotate_limit=90.0, rotate_std=45.0, rotate_prob=0.6)

    @classmethod
    def synthetic(cls) -> "TopdownAugConfig":
        """The synthetic people (quickstart): no flip (their left/right cues would contradict mirrored labels),
        no half body, no rotation (it slows a few-epoch run down); a small shift and scale, so the model
        tolerates detected boxes."""
        return cls(flip_prob=0.0, half_body_prob=0.0, shift_factor=0.05, shift_prob=1.0, scale_range=(0.85, 1.15),
                   scale_std=0.1, rotate_prob=0.0)

    @classmethod
    def tokenpose_mpii(cls) -> "TopdownAugConfig":
        """TokenPose MPII recipe: rotation 30, scale 0.25, no half-body."""
        return dataclasses.replace(cls.tokenpose_coco(), half_body_prob=0.0, scale_range=(0.75, 1.25),
                                   scale_std=0.25, rotate_limit=60.0, rotate_std=30.0)


class TopdownPipeline:
    """Box -> (augmented) affine crop -> normalised image and codec targets.

    Args:
        input_size: crop ``(w, h)``.
        metainfo: a :class:`PoseMetaInfo` or a built-in name.
        codec: optional codec; its ``encode`` outputs are merged into the result.
        train: apply the random augmentations of ``aug``.
        aug: augmentation settings.
        use_udp: UDP warp matrix (pair it with a ``udp=True`` heatmap codec).
        bbox_padding: box padding (1.25).
        pixel_aligned_box: TokenPose's ``x + (w-1)/2`` box centre.
        normalize: return a normalised float (3, H, W) image; else the uint8 crop.

    Call with ``(image, bbox_xywh, keypoints=None, keypoints_visible=None, rng=None)``, ``image`` an
    (H, W, 3) uint8 **RGB** array as the datasets load it; ``rng`` is required when ``train``. Returns a dict with ``image``, ``center``,
    ``scale``, ``rotation``, ``flipped``, ``warp_matrix`` (image -> crop) and, when
    keypoints are given, crop-space ``keypoints`` (K, 2), ``keypoints_visible`` (K,)
    plus the codec's targets (leading N=1 squeezed).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        metainfo: PoseMetaInfo | str,
        codec: BaseKeypointCodec | None = None,
        train: bool = False,
        aug: TopdownAugConfig | None = None,
        use_udp: bool = False,
        bbox_padding: float = 1.25,
        pixel_aligned_box: bool = False,
        normalize: bool = True,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.metainfo = get_metainfo(metainfo)
        self.codec = codec
        self.train = bool(train)
        self.aug = aug or TopdownAugConfig()
        self.use_udp = bool(use_udp)
        self.bbox_padding = float(bbox_padding)
        self.pixel_aligned_box = bool(pixel_aligned_box)
        self.normalize = bool(normalize)

    @property
    def aspect_ratio(self) -> float:
        """Crop ``w / h``."""
        return self.input_size[0] / self.input_size[1]

    def __call__(
        self,
        image: np.ndarray,
        bbox_xywh: Any,
        keypoints: np.ndarray | None = None,
        keypoints_visible: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> dict[str, Any]:
        """Run the pipeline on one instance (see class docstring)."""
        if self.train and rng is None:
            raise ValueError("TopdownPipeline(train=True) needs rng=np.random.Generator")
        center, scale = bbox_xywh_to_center_scale(
            bbox_xywh, self.aspect_ratio, self.bbox_padding, self.pixel_aligned_box)
        kps = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)[..., :2]
        vis = None
        if kps is not None:
            vis = (np.ones(kps.shape[0], np.float32) if keypoints_visible is None
                   else np.asarray(keypoints_visible, np.float32).reshape(-1))
        rot, flipped = 0.0, False
        if self.train:
            assert rng is not None
            a = self.aug
            image, center, kps, vis, flipped = random_flip(
                image, center, kps, vis, self.metainfo.flip_indices, rng, a.flip_prob)
            if kps is not None and a.half_body_prob > 0:
                hb = half_body_transform(
                    kps, vis, self.metainfo.upper_body_ids, self.metainfo.lower_body_ids,
                    self.aspect_ratio, rng, a.half_body_prob, a.half_body_min_keypoints,
                    a.half_body_min_part_keypoints, a.half_body_upper_prob, a.half_body_padding)
                if hb is not None:
                    center, scale = hb
            center, scale, rot = random_bbox_transform(
                center, scale, rng, a.shift_factor, a.shift_prob, a.scale_range, a.scale_std,
                a.scale_prob, a.rotate_limit, a.rotate_std, a.rotate_prob)
        scale = fix_aspect_ratio(scale, self.aspect_ratio)
        crop, m = warp_crop(image, center, scale, rot, self.input_size, self.use_udp)
        out: dict[str, Any] = {
            "image": normalize_image(crop, bgr_to_rgb=False) if self.normalize else crop,  # input is RGB already
            "center": center, "scale": scale, "rotation": rot, "flipped": flipped,
            "warp_matrix": m,
        }
        if kps is not None:
            crop_kps = affine_keypoints(kps, m)
            out["keypoints"] = crop_kps.astype(np.float32)
            out["keypoints_visible"] = vis
            if self.codec is not None:
                enc = self.codec.encode(crop_kps[None], vis[None])
                out.update({k: v[0] for k, v in enc.items()})
        return out
