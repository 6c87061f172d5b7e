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

Train order: ``TopdownAugConfig.order`` -- ``mmpose`` (MMPose 1.x: flip, half body, shift/scale/rotation),
``hrnet`` (TokenPose/PPT/GTPT ``JointsDataset``: half body, scale, rotation, flip) or ``mmpose0`` (mmpose 0.x, PCT:
shift, flip, half body, scale/rotation); then the affine warp and target encoding. :func:`draw_augmentation`
draws one instance's values (:class:`AugDraws`) in that order; :class:`TopdownPipeline` applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Sequence

import cv2
import numpy as np

from ..codecs import BaseKeypointCodec, flip_keypoints
from .metainfo import PoseMetaInfo, get_metainfo

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugDraws",
    "TopdownAugConfig",
    "TopdownPipeline",
    "affine_keypoints",
    "bbox_xywh_to_center_scale",
    "check_aug_config",
    "draw_augmentation",
    "fix_aspect_ratio",
    "get_affine_transform",
    "get_udp_warp_matrix",
    "get_warp_matrix",
    "half_body_box",
    "half_body_part_ids",
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
PIXEL_STD = 200.0  # the official HRNet-era scale unit (scale = box size / 200)


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
    return b + np.array([-d[1], d[0]], dtype=a.dtype)


def get_affine_transform(
    center: Any,
    scale: Any,
    rot: float,
    output_size: Sequence[int],
    shift: Sequence[float] = (0.0, 0.0),
    inv: bool = False,
    size_minus_one: bool = False,
    float32_points: bool = True,
) -> np.ndarray:
    """The standard HRNet 3-point affine from a box to an output crop.

    With ``size_minus_one`` it is TokenPose/PPT's variant instead: the centre maps to ``((w-1)/2, (h-1)/2)``
    and both axes scale by ``(w-1)/(scale[0]-1)`` (isotropic, from the width).

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
        float32_points: build the three point pairs in float32, as the official ``get_affine_transform`` does
            (a float32 box width, ``np.float32`` point arrays and third points into ``cv2.getAffineTransform``,
            which solves in double); the matrix then matches the official one to ~1e-12 instead of ~1e-5 px.
    Returns:
        (2, 3) float64 matrix.
    """
    c = _vec2(center, "center")
    s = _vec2(scale, "scale")
    out_w, out_h = (float(v) for v in output_size)
    sh = _vec2(shift, "shift")
    off = 1.0 if size_minus_one else 0.0
    src_w = float(np.float32(np.float32(s[0]) - np.float32(off))) if float32_points else s[0] - off
    if src_w <= 0:
        raise ValueError(f"scale width must be > {off:g}, got {s[0]}")
    rad = math.pi * rot / 180  # as the official code writes it
    src_dir = _rotate(np.array([0.0, -0.5 * src_w]), rad)
    dst_dir = np.array([0.0, -0.5 * (out_w - off)])
    dt = np.float32 if float32_points else np.float64
    src = np.zeros((3, 2), dt)
    dst = np.zeros((3, 2), dt)
    src[0] = c + s * sh
    src[1] = c + src_dir + s * sh
    dst[0] = (0.5 * (out_w - off), 0.5 * (out_h - off))
    dst[1] = dst[0].astype(np.float64) + dst_dir
    # the third points from the (rounded) first two, in the arrays' precision, as the official get_3rd_point
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    src, dst = src.astype(np.float64), dst.astype(np.float64)
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


WARP_KINDS = ("standard", "size_minus_one", "udp")


def get_warp_matrix(center: Any, scale: Any, rot: float, output_size: Sequence[int], kind: str = "standard",
                    inv: bool = False) -> np.ndarray:
    """The image -> crop affine (or crop -> image with ``inv``) of a protocol's warp ``kind``: ``standard``
    (HRNet; GTPT, PCT, multi-view PPT), ``size_minus_one`` (TokenPose/PPT, isotropic) or ``udp`` (MMPose UDP)."""
    if kind == "standard":
        return get_affine_transform(center, scale, rot, output_size, inv=inv)
    if kind == "size_minus_one":
        return get_affine_transform(center, scale, rot, output_size, inv=inv, size_minus_one=True)
    if kind == "udp":
        return get_udp_warp_matrix(center, scale, rot, output_size, inv=inv)
    raise ValueError(f"warp kind must be one of {list(WARP_KINDS)}, got {kind!r}")


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
    warp: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop (and rotate) a box out of an image with bilinear interpolation (``cv2.warpAffine``, constant border).

    Args:
        image: (H, W) or (H, W, C) array.
        center, scale: box centre and size in pixels (fix the aspect ratio first).
        rot: degrees; output_size: ``(w, h)``; use_udp: UDP matrix.
        warp: a :func:`get_warp_matrix` kind; overrides ``use_udp``.
    Returns:
        ``(crop (h, w[, C]), matrix (2, 3) image -> crop)``.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got {image.shape}")
    w, h = (int(v) for v in output_size)
    m = get_warp_matrix(center, scale, rot, (w, h), warp if warp is not None else ("udp" if use_udp else "standard"))
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
    rotate_std=45`` (the ``tokenpose`` protocol's ``aug``, :mod:`posetokens.protocols`).

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
    """Random top-down augmentation settings (defaults: MMPose COCO).

    ``order``: ``mmpose`` (flip, half body, shift/scale/rotation; MMPose 1.x), ``hrnet`` (half body, scale,
    rotation, then flip; TokenPose/PPT/GTPT ``JointsDataset``), ``mmpose0`` (shift, flip, half body,
    scale/rotation; mmpose 0.x, PCT). ``sampler``: ``truncated`` normals (MMPose 1.x, resampled) or
    ``clipped`` normals (``clip(randn * std, lo, hi)``, the official HRNet-era code). ``shift_sampler``:
    ``truncated`` normal or ``uniform`` in [-1, 1] (mmpose 0.x). ``half_body_extent_offset`` is added to the
    half-body joints' extent (TokenPose/PPT: +1). A half needs ``half_body_min_part_keypoints`` visible joints
    (the HRNet-era ``> 2``; MMPose 1.x's ``min_lower_keypoints``), the upper one ``half_body_min_upper_keypoints``
    where that differs (MMPose 1.x's ``min_upper_keypoints``, 2; ``None``: the same).
    """

    order: str = "mmpose"
    sampler: str = "truncated"
    shift_sampler: str = "truncated"
    half_body_extent_offset: float = 0.0
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 9
    half_body_min_part_keypoints: int = 3
    half_body_min_upper_keypoints: int | None = 2
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
    def synthetic(cls) -> "TopdownAugConfig":
        """The synthetic people (quickstart): no flip (their left/right cues would contradict mirrored labels),
        no half body, no rotation (it slows a few-epoch run down); a small shift and scale, so the model
        tolerates detected boxes."""
        return cls(flip_prob=0.0, half_body_prob=0.0, shift_factor=0.05, shift_prob=1.0, scale_range=(0.85, 1.15),
                   scale_std=0.1, rotate_prob=0.0)


AUG_ORDERS = ("mmpose", "hrnet", "mmpose0")
AUG_SAMPLERS = ("truncated", "clipped")
SHIFT_SAMPLERS = ("truncated", "uniform")


def check_aug_config(aug: TopdownAugConfig) -> TopdownAugConfig:
    """``aug`` itself, after checking its ``order`` / ``sampler`` / ``shift_sampler`` names (``ValueError`` naming the
    field and the allowed values otherwise)."""
    for value, allowed, what in ((aug.order, AUG_ORDERS, "order"), (aug.sampler, AUG_SAMPLERS, "sampler"),
                                 (aug.shift_sampler, SHIFT_SAMPLERS, "shift_sampler")):
        if value not in allowed:
            raise ValueError(f"TopdownAugConfig.{what} must be one of {list(allowed)}, got {value!r}")
    lo, hi = aug.scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"TopdownAugConfig.scale_range must satisfy 0 < low <= high, got {aug.scale_range}")
    return aug


@dataclass(frozen=True)
class AugDraws:
    """One instance's augmentation values: what the random draws decided, or what a caller fixes.

    ``half_body``: ``None``, ``"upper"`` or ``"lower"`` (the part selected; fewer than 2 visible joints in it
    leaves the box unchanged); ``scale_factor`` multiplies the box size; ``rotation`` in degrees (positive turns
    the content counter-clockwise in the crop); ``flip`` mirrors the image; ``shift`` moves the box centre by
    ``shift * box size`` (per axis; MMPose's and mmpose 0.x's random centre shift).
    """

    half_body: str | None = None
    scale_factor: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.half_body not in (None, "upper", "lower"):
            raise ValueError(f"AugDraws.half_body must be None, 'upper' or 'lower', got {self.half_body!r}")
        if not self.scale_factor > 0:
            raise ValueError(f"AugDraws.scale_factor must be positive, got {self.scale_factor}")


def _normal_factor(rng: np.random.Generator, sampler: str, mean: float, std: float, lo: float, hi: float) -> float:
    """``mean + N(0, 1) * std`` restricted to ``[lo, hi]``: ``clipped`` (one draw, mass at the bounds; the official
    HRNet-era / mmpose 0.x code) or ``truncated`` (resampled, MMPose 1.x)."""
    if sampler == "clipped":
        return float(np.clip(rng.standard_normal() * std + mean, lo, hi))
    bound = max(hi - mean, mean - lo) / std if std > 0 else 0.0
    if std <= 0:
        return float(np.clip(mean, lo, hi))
    return float(np.clip(mean + float(truncated_normal(rng, 1, bound)[0]) * std, lo, hi))


def _scale_params(aug: TopdownAugConfig) -> tuple[float, float, float, float]:
    lo, hi = aug.scale_range
    mid = (lo + hi) * 0.5
    std = (hi - lo) * 0.5 if aug.scale_std is None else aug.scale_std
    return mid, std, lo, hi


def _draw_rotation(rng: np.random.Generator, aug: TopdownAugConfig) -> float:
    std = aug.rotate_limit if aug.rotate_std is None else aug.rotate_std
    return _normal_factor(rng, aug.sampler, 0.0, std, -aug.rotate_limit, aug.rotate_limit)


def _upper_threshold(upper_prob: float) -> float:
    """The ``randn < t`` threshold with ``P = upper_prob`` (the official ``randn < 0.5`` is P 0.6915)."""
    if not 0.0 < upper_prob < 1.0:
        return math.inf if upper_prob >= 1.0 else -math.inf
    return NormalDist().inv_cdf(upper_prob)


def half_body_part_ids(metainfo: PoseMetaInfo, order: str) -> tuple[np.ndarray, np.ndarray]:
    """``(upper, lower)`` joint indices of the half-body augmentation. The official HRNet-era and mmpose 0.x code
    (orders ``hrnet`` / ``mmpose0``) puts every joint that is not a lower-body joint in the upper body (whole-body:
    0-10 and 23-132); MMPose 1.x (``mmpose``) uses the metainfo's two lists."""
    k = metainfo.num_keypoints
    lower = np.asarray(metainfo.lower_body_ids, dtype=np.int64)
    if order == "mmpose":
        upper = np.asarray(metainfo.upper_body_ids, dtype=np.int64)
    else:
        upper = np.setdiff1d(np.arange(k), lower)
    return upper, lower


def draw_augmentation(
    aug: TopdownAugConfig,
    rng: np.random.Generator,
    metainfo: PoseMetaInfo | str,
    keypoints_visible: np.ndarray | None = None,
) -> AugDraws:
    """Draw one instance's augmentation in the order and with the samplers of ``aug`` (what a training
    :class:`TopdownPipeline` uses; the draws depend on the instance only through which joints are visible).

    ``aug.order``:

    * ``hrnet`` (TokenPose / PPT / GTPT ``JointsDataset.__getitem__``): half body (a ``rand < prob`` only when at
      least ``half_body_min_keypoints`` joints are visible, then ``randn < Phi^-1(upper_prob)``: upper if it has
      enough visible joints, else lower if that has, else upper); scale ``randn``; rotation
      ``rand <= rotate_prob`` then ``randn``; flip ``rand <= flip_prob``.
    * ``mmpose0`` (mmpose 0.x, PCT): shift ``rand < shift_prob`` then ``uniform(-1, 1, 2) * shift_factor``; flip
      ``rand <= flip_prob``; half body as above (on the flipped joints); scale ``randn``; rotation ``randn`` then
      ``rand <= rotate_prob``.
    * ``mmpose`` (MMPose 1.x; posetokens' former default): flip ``rand < flip_prob``; half body (``rand < prob`` then
      ``rand < upper_prob`` picks the preferred half; a half without enough visible joints gives way to the other,
      and neither having enough means none); shift, scale and rotation each behind a ``rand < prob``.

    ``aug.sampler``: ``clipped`` is ``clip(randn * std + mean, lo, hi)`` (the official HRNet-era code, mass at the
    bounds), ``truncated`` resamples out-of-range draws (MMPose 1.x).

    Args:
        aug: the settings; rng: the generator (a scripted object with ``random``, ``standard_normal`` and
            ``uniform`` works too); metainfo: joint layout; keypoints_visible: (K,), ``None`` skips the half body
            (so does a layout that names no lower body joints under the HRNet-era orders, whose upper half is
            every other joint, or neither half under ``mmpose``: a skeleton file without them).
    """
    check_aug_config(aug)
    meta = get_metainfo(metainfo)
    vis = None if keypoints_visible is None else np.asarray(keypoints_visible, np.float64).reshape(-1) > 0
    upper_ids, lower_ids = half_body_part_ids(meta, aug.order)
    mid, sstd, lo, hi = _scale_params(aug)

    # a layout of one's own may name no body parts: off (with no lower body the HRNet-era "upper" is every joint)
    parts = bool(len(lower_ids)) if aug.order != "mmpose" else bool(len(upper_ids) or len(lower_ids))

    def half_body(v: np.ndarray | None) -> str | None:
        if v is None or not parts or v.sum() < aug.half_body_min_keypoints:
            return None
        if not rng.random() < aug.half_body_prob:
            return None
        n_up, n_lo = int(v[upper_ids].sum()), int(v[lower_ids].sum())
        need = aug.half_body_min_part_keypoints
        up_ok = n_up >= (need if aug.half_body_min_upper_keypoints is None else aug.half_body_min_upper_keypoints)
        if aug.order == "mmpose":  # RandomHalfBody: the preferred half where both have enough, none where neither
            prefer_upper = rng.random() < aug.half_body_upper_prob
            if not (up_ok or n_lo >= need):
                return None
            return "upper" if n_lo < need or (up_ok and prefer_upper) else "lower"
        if rng.standard_normal() < _upper_threshold(aug.half_body_upper_prob) and up_ok:
            return "upper"
        return "lower" if n_lo >= need else "upper"

    if aug.order == "hrnet":
        hb = half_body(vis)
        scale = 1.0 if aug.scale_prob < 1.0 and not rng.random() < aug.scale_prob else \
            _normal_factor(rng, aug.sampler, mid, sstd, lo, hi)
        rot = _draw_rotation(rng, aug) if rng.random() <= aug.rotate_prob else 0.0
        flip = bool(aug.flip_prob > 0 and rng.random() <= aug.flip_prob)
        return AugDraws(hb, scale, rot, flip)
    if aug.order == "mmpose0":
        shift = (0.0, 0.0)
        if aug.shift_prob > 0 and rng.random() < aug.shift_prob:
            u = (rng.uniform(-1.0, 1.0, 2) if aug.shift_sampler == "uniform" else truncated_normal(rng, 2))
            shift = (float(u[0] * aug.shift_factor), float(u[1] * aug.shift_factor))
        flip = bool(aug.flip_prob > 0 and rng.random() <= aug.flip_prob)
        v = None if vis is None else (vis[np.asarray(meta.flip_indices)] if flip else vis)
        hb = half_body(v)
        scale = 1.0 if aug.scale_prob < 1.0 and not rng.random() < aug.scale_prob else \
            _normal_factor(rng, aug.sampler, mid, sstd, lo, hi)
        r = _draw_rotation(rng, aug)
        rot = r if rng.random() <= aug.rotate_prob else 0.0
        return AugDraws(hb, scale, rot, flip, shift)
    # mmpose (1.x): the draws of posetokens' former pipeline, one for one
    flip = bool(rng.random() < aug.flip_prob)
    v = None if vis is None else (vis[np.asarray(meta.flip_indices)] if flip else vis)
    hb = half_body(v) if aug.half_body_prob > 0 else None
    shift = (0.0, 0.0)
    if rng.random() < aug.shift_prob:
        t = (rng.uniform(-1.0, 1.0, 2) if aug.shift_sampler == "uniform" else truncated_normal(rng, 2))
        shift = (float(t[0] * aug.shift_factor), float(t[1] * aug.shift_factor))
    scale = _normal_factor(rng, aug.sampler, mid, sstd, lo, hi) if rng.random() < aug.scale_prob else 1.0
    rot = _draw_rotation(rng, aug) if rng.random() < aug.rotate_prob else 0.0
    return AugDraws(hb, scale, rot, flip, shift)


def half_body_box(
    keypoints: np.ndarray,
    keypoints_visible: np.ndarray,
    part_ids: Sequence[int] | np.ndarray,
    aspect_ratio: float,
    padding: float = 1.5,
    extent_offset: float = 0.0,
    float32: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The half-body box of the visible joints among ``part_ids``: centre = their mean, size = their extent
    ``+ extent_offset`` (TokenPose/PPT +1, GTPT/mmpose 0 none) grown to ``aspect_ratio``, times ``padding`` (1.5; the
    box padding is not applied again). ``None`` when fewer than 2 such joints are visible. ``float32``: the mean
    and the extent in float32, as the official ``half_body_transform`` (``np.array(selected, np.float32)``)."""
    kps = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(keypoints_visible).reshape(-1) > 0
    ids = np.asarray(part_ids, dtype=np.int64)
    sel = kps[ids[vis[ids]]]
    if len(sel) < 2:
        return None
    if float32:
        sel = sel.astype(np.float32)
    size = (sel.max(axis=0) - sel.min(axis=0)).astype(np.float64) + extent_offset
    return sel.mean(axis=0).astype(np.float64), fix_aspect_ratio(size, aspect_ratio) * padding


class TopdownPipeline:
    """Box -> (augmented) affine crop -> normalised image and codec targets.

    Args:
        input_size: crop ``(w, h)``.
        metainfo: a :class:`PoseMetaInfo` or a built-in name.
        codec: optional codec; its ``encode`` outputs are merged into the result.
        train: apply random augmentation drawn from ``aug`` (:func:`draw_augmentation`).
        aug: augmentation settings (order, samplers, probabilities).
        use_udp: UDP warp matrix (pair it with a ``udp=True`` heatmap codec); ``warp`` overrides it.
        bbox_padding: box padding (1.25).
        pixel_aligned_box: TokenPose's ``x + (w - 1) / 2`` box centre; ``center_offset`` overrides it.
        normalize: return a normalised float (3, H, W) image; else the uint8 crop.
        warp: ``standard``, ``size_minus_one`` (TokenPose/PPT) or ``udp`` (:func:`get_warp_matrix`).
        center_offset: box centre ``xy + (wh - center_offset) / 2`` (``BoxRule.center_offset``).
        transform_invisible: map invisible joints through the affine too (MMPose 1.x). ``False`` is the official
            HRNet-era / mmpose 0.x rule: only joints with visibility > 0 are transformed, the others keep their
            input coordinates (COCO's unlabelled (0, 0)), and a flip multiplies them by 0.
        float32_box: keep a box given as ``bbox_xywh`` the way the official HRNet-era ``JointsDataset`` does, in
            float32: the centre (until a half body replaces it, also through the flip) and the scale in units of
            200 px (padding, half body and scale factor applied in float32). Centres and scales stay exact
            multiples of those float32 values, so crops and targets match the official ones to ~1e-9 px instead
            of ~1e-4. A box given by ``center``/``scale`` (MPII, float64 officially) is not rounded.

    Build it from a :class:`~posetokens.protocols.Protocol` with :func:`posetokens.protocols.topdown.build_pipeline`.

    Call with ``(image, bbox_xywh, keypoints=None, keypoints_visible=None, rng=None)``, ``image`` an (H, W, 3) uint8
    **RGB** array as the datasets load it; ``rng`` is required when ``train`` and no ``draws`` are given. Keyword
    ``draws`` (:class:`AugDraws`) fixes the augmentation instead of drawing it (also with ``train=False``);
    ``center``/``scale`` give the box centre and its unpadded size in px instead of ``bbox_xywh`` (MPII's stored
    centre). Returns a dict with ``image``, ``box_center``/``box_scale`` (before augmentation, padded),
    ``center``, ``scale``, ``rotation``, ``flipped``, ``half_body`` (the part applied or None), ``warp_matrix``
    (image -> crop) and, when keypoints are given, crop-space ``keypoints`` (K, 2), ``keypoints_visible`` (K,) plus
    the codec's targets (leading N=1 squeezed). Centres and scales are in pixels.
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
        warp: str | None = None,
        center_offset: float | None = None,
        transform_invisible: bool = True,
        float32_box: bool = False,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.metainfo = get_metainfo(metainfo)
        self.codec = codec
        self.train = bool(train)
        self.aug = check_aug_config(aug or TopdownAugConfig())
        self.warp = warp if warp is not None else ("udp" if use_udp else "standard")
        if self.warp not in WARP_KINDS:
            raise ValueError(f"TopdownPipeline: warp must be one of {list(WARP_KINDS)}, got {self.warp!r}")
        self.use_udp = self.warp == "udp"
        self.bbox_padding = float(bbox_padding)
        self.center_offset = float(center_offset if center_offset is not None else (1.0 if pixel_aligned_box else 0.0))
        self.pixel_aligned_box = self.center_offset == 1.0
        self.normalize = bool(normalize)
        self.transform_invisible = bool(transform_invisible)
        self.float32_box = bool(float32_box)

    @property
    def aspect_ratio(self) -> float:
        """Crop ``w / h``."""
        return self.input_size[0] / self.input_size[1]

    def box_center_scale(self, bbox_xywh: Any = None, center: Any = None, scale: Any = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """The padded, aspect-fixed box (centre, size) in px, from ``[x, y, w, h]`` with this pipeline's centre
        offset, or from a given centre and unpadded size."""
        if center is not None:
            if scale is None:
                raise ValueError("TopdownPipeline: a box given by center also needs its scale (unpadded size, px)")
            return _vec2(center, "center").copy(), fix_aspect_ratio(_vec2(scale, "scale"), self.aspect_ratio) \
                * self.bbox_padding
        if bbox_xywh is None:
            raise ValueError("TopdownPipeline: give bbox_xywh or center/scale")
        b = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1)
        if b.shape != (4,):
            raise ValueError(f"bbox must be [x, y, w, h], got shape {np.shape(bbox_xywh)}")
        c = b[:2] + (b[2:] - self.center_offset) * 0.5
        if self.float32_box:
            c = c.astype(np.float32).astype(np.float64)
        return c, self._pad(fix_aspect_ratio(b[2:], self.aspect_ratio), self.bbox_padding)

    def _pad(self, size: np.ndarray, factor: float, rounded: bool | None = None) -> np.ndarray:
        """``size * factor`` (px); with ``float32_box`` in the official float32 /200 units."""
        if not (self.float32_box if rounded is None else rounded):
            return size * factor
        s200 = (np.asarray(size, np.float64) / PIXEL_STD).astype(np.float32)
        return (s200 * np.float32(factor)).astype(np.float64) * PIXEL_STD

    def draw(self, rng: np.random.Generator, keypoints_visible: np.ndarray | None = None) -> AugDraws:
        """One instance's random augmentation (:func:`draw_augmentation` with this pipeline's settings)."""
        return draw_augmentation(self.aug, rng, self.metainfo, keypoints_visible)

    def run_item(self, item: dict[str, Any], rng: np.random.Generator | None = None,
                 draws: AugDraws | None = None, image: np.ndarray | None = None) -> dict[str, Any]:
        """Run on a dataset item dict (``img``, ``bbox`` or ``bbox_center``/``bbox_scale``, ``keypoints``,
        ``keypoints_visible``); a stored ``bbox_center`` (MPII) is used as is, so no centre offset applies."""
        img = item["img"] if image is None else image
        if item.get("bbox_center") is not None:
            return self(img, None, item.get("keypoints"), item.get("keypoints_visible"), rng, draws=draws,
                        center=item["bbox_center"], scale=item["bbox_scale"])
        return self(img, item["bbox"], item.get("keypoints"), item.get("keypoints_visible"), rng, draws=draws)

    def _flip(self, image: np.ndarray, center: np.ndarray, kps: np.ndarray | None, vis: np.ndarray | None,
              center_f32: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        width = image.shape[1]
        image = np.ascontiguousarray(image[:, ::-1])
        cx = width - 1 - center[0]
        center = np.array([float(np.float32(cx)) if center_f32 else cx, center[1]])
        if kps is not None:
            kps, vis = flip_keypoints(kps, vis, width, self.metainfo.flip_indices)
            if not self.transform_invisible:  # official fliplr_joints: joints * joints_vis
                kps = kps * (vis > 0)[:, None]
        return image, center, kps, vis

    def _half_body(self, part: str | None, center: np.ndarray, scale: np.ndarray, kps: np.ndarray | None,
                   vis: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, str | None]:
        if part is None or kps is None or vis is None:
            return center, scale, None
        upper, lower = half_body_part_ids(self.metainfo, self.aug.order)
        hb = half_body_box(kps, vis, upper if part == "upper" else lower, self.aspect_ratio, 1.0,
                           self.aug.half_body_extent_offset, self.float32_box)
        if hb is None:
            return center, scale, None
        return hb[0], self._pad(hb[1], self.aug.half_body_padding), part

    def __call__(
        self,
        image: np.ndarray,
        bbox_xywh: Any,
        keypoints: np.ndarray | None = None,
        keypoints_visible: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        *,
        draws: AugDraws | None = None,
        center: Any = None,
        scale: Any = None,
    ) -> dict[str, Any]:
        """Run the pipeline on one instance (see class docstring)."""
        if self.train and draws is None and rng is None:
            raise ValueError("TopdownPipeline(train=True) needs rng=np.random.Generator (or fixed draws=AugDraws)")
        box_c, box_s = self.box_center_scale(bbox_xywh, center, scale)
        c, s = box_c.copy(), box_s.copy()
        kps = None if keypoints is None else np.asarray(keypoints, dtype=np.float64)[..., :2].copy()
        vis = None
        if kps is not None:
            vis = (np.ones(kps.shape[0], np.float32) if keypoints_visible is None
                   else np.asarray(keypoints_visible, np.float32).reshape(-1))
        if draws is None and self.train:
            assert rng is not None
            draws = self.draw(rng, vis)
        rot, flipped, part = 0.0, False, None
        f32 = self.float32_box and center is None  # the official float32 box (a given centre/scale is float64)
        if draws is not None:
            order = self.aug.order
            if order == "hrnet":  # half body, scale, rotation, then the flip (of the possibly half-body centre)
                c, s, part = self._half_body(draws.half_body, c, s, kps, vis)
                s = self._pad(s, draws.scale_factor, f32)
                if draws.flip:  # the official centre is a float32 array (db box or half body)
                    image, c, kps, vis = self._flip(image, c, kps, vis, f32)
            elif order == "mmpose0":  # shift, flip, half body, scale/rotation
                c = c + np.asarray(draws.shift, np.float64) * s
                if draws.flip:
                    image, c, kps, vis = self._flip(image, c, kps, vis)
                c, s, part = self._half_body(draws.half_body, c, s, kps, vis)
                s = s * draws.scale_factor
            else:  # mmpose 1.x: flip, half body, shift/scale/rotation
                if draws.flip:
                    image, c, kps, vis = self._flip(image, c, kps, vis)
                c, s, part = self._half_body(draws.half_body, c, s, kps, vis)
                c = c + np.asarray(draws.shift, np.float64) * s
                s = s * draws.scale_factor
            rot, flipped = float(draws.rotation), bool(draws.flip)
        s = fix_aspect_ratio(s, self.aspect_ratio) if not f32 else s  # (the official code does not refit it)
        crop, m = warp_crop(image, c, s, rot, self.input_size, warp=self.warp)
        out: dict[str, Any] = {
            "image": normalize_image(crop, bgr_to_rgb=False) if self.normalize else crop,  # input is RGB already
            "box_center": box_c, "box_scale": box_s,
            "center": c, "scale": s, "rotation": rot, "flipped": flipped, "half_body": part,
            "warp_matrix": m,
        }
        if kps is not None:
            assert vis is not None
            crop_kps = affine_keypoints(kps, m)
            if not self.transform_invisible:  # official: only joints with visibility > 0 are transformed
                crop_kps = np.where((vis > 0)[:, None], crop_kps, kps)
            out["keypoints"] = crop_kps.astype(np.float32)
            out["keypoints_visible"] = vis
            if self.codec is not None:
                enc = self.codec.encode(crop_kps[None], vis[None])
                out.update({k: v[0] for k, v in enc.items()})
        return out
