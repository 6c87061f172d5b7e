"""Shared maths for the codecs: input checks, Gaussians, maxima, refinement, flips.

Everything here is numpy and vectorised over instances and keypoints. The flip
helpers use only operations that numpy arrays and torch tensors share, so the
model's torch outputs can be flipped without a round trip through numpy.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "check_keypoints",
    "dark_derivatives",
    "flip_heatmaps",
    "flip_indices_from_pairs",
    "flip_keypoints",
    "flip_simcc",
    "gaussian_blur_keep_max",
    "gaussian_kernel_1d",
    "get_heatmap_maximum",
    "get_simcc_maximum",
    "refine_keypoints_dark",
    "refine_keypoints_quarter",
    "softmax",
    "to_numpy",
]


# --------------------------------------------------------------------- inputs
def to_numpy(x: Any) -> np.ndarray:
    """Convert an array-like (numpy, torch tensor on any device, list) to numpy."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach()
        if hasattr(x, "float") and str(getattr(x, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def check_keypoints(
    keypoints: Any, keypoints_visible: Any | None = None, *, where: str = "encode"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and batch keypoints.

    Args:
        keypoints: (N, K, 2) or (K, 2) coordinates.
        keypoints_visible: (N, K) or (K,) visibility; None means all visible.
        where: caller name used in error messages.

    Returns:
        ``(keypoints (N, K, 2) float64, visible (N, K) float32)``.
    """
    kps = np.asarray(to_numpy(keypoints), dtype=np.float64)
    if kps.ndim == 2:
        kps = kps[None]
    if kps.ndim != 3 or kps.shape[-1] < 2:
        raise ValueError(f"{where}: expected keypoints of shape (N, K, 2) or (K, 2), got {kps.shape}")
    kps = kps[..., :2]
    n, k = kps.shape[:2]
    if keypoints_visible is None:
        vis = np.ones((n, k), dtype=np.float32)
    else:
        vis = np.asarray(to_numpy(keypoints_visible), dtype=np.float32)
        if vis.ndim == 1:
            vis = vis[None]
        if vis.ndim == 3 and vis.shape[-1] == 1:
            vis = vis[..., 0]
        if vis.shape != (n, k):
            raise ValueError(
                f"{where}: expected keypoints_visible of shape ({n}, {k}) to match keypoints "
                f"{kps.shape}, got {vis.shape}"
            )
    return kps, vis


# ------------------------------------------------------------------ gaussians
def gaussian_kernel_1d(ksize: int, sigma: float = 0.0) -> np.ndarray:
    """Normalised 1-D Gaussian kernel; ``sigma <= 0`` uses OpenCV's rule
    ``0.3 * ((ksize - 1) * 0.5 - 1) + 0.8`` (2.0 for ksize 11)."""
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd integer, got {ksize}")
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8
    r = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    k = np.exp(-(r**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur_keep_max(heatmaps: np.ndarray, ksize: int = 11) -> np.ndarray:
    """Blur each (H, W) map with a zero-padded Gaussian, then rescale it so its
    maximum equals the original maximum (DARK's modulation step).

    Equivalent to padding by ``(ksize-1)//2`` zeros, ``cv2.GaussianBlur(.., (k, k), 0)``
    and cropping, but vectorised over all leading dims.

    Args:
        heatmaps: (..., H, W) array.
    Returns:
        float64 array, same shape.
    """
    hm = np.asarray(heatmaps, dtype=np.float64)
    k = gaussian_kernel_1d(ksize)
    r = (ksize - 1) // 2
    h, w = hm.shape[-2:]
    orig_max = hm.max(axis=(-2, -1), keepdims=True)
    # separable convolution with zero padding
    pad = [(0, 0)] * (hm.ndim - 1) + [(r, r)]
    p = np.pad(hm, pad)
    tmp = sum(k[i] * p[..., i : i + w] for i in range(ksize))
    pad = [(0, 0)] * (hm.ndim - 2) + [(r, r), (0, 0)]
    p = np.pad(tmp, pad)
    out = sum(k[i] * p[..., i : i + h, :] for i in range(ksize))
    new_max = out.max(axis=(-2, -1), keepdims=True)
    safe = np.where(new_max > 0, new_max, 1.0)
    return np.where(new_max > 0, out * (orig_max / safe), out)


# -------------------------------------------------------------------- maxima
def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax of each map.

    Args:
        heatmaps: (N, K, H, W).
    Returns:
        ``(locs (N, K, 2) float64 as (x, y), vals (N, K))``; locations whose
        maximum is <= 0 are set to -1 (MMPose convention).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=-1)
    vals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    locs = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    locs[vals <= 0] = -1
    return locs, vals


def get_simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of 1-D x/y distributions.

    Args:
        simcc_x: (N, K, Wx); simcc_y: (N, K, Wy).
    Returns:
        ``(locs (N, K, 2) in bins, vals (N, K))`` where ``vals = min(max_x, max_y)``
        (as MMPose and GTPT); locations with ``vals <= 0`` are set to -1.
    """
    x_idx = simcc_x.argmax(axis=-1)
    y_idx = simcc_y.argmax(axis=-1)
    max_x = np.take_along_axis(simcc_x, x_idx[..., None], axis=-1)[..., 0]
    max_y = np.take_along_axis(simcc_y, y_idx[..., None], axis=-1)[..., 0]
    vals = np.minimum(max_x, max_y)
    locs = np.stack([x_idx, y_idx], axis=-1).astype(np.float64)
    locs[vals <= 0] = -1
    return locs, vals


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---------------------------------------------------------------- refinement
def _gather(hm: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """hm (N, K, H, W); x, y (N, K) integer (clipped) -> (N, K)."""
    h, w = hm.shape[-2:]
    xi = np.clip(x, 0, w - 1)
    yi = np.clip(y, 0, h - 1)
    flat = hm.reshape(hm.shape[0], hm.shape[1], h * w)
    return np.take_along_axis(flat, (yi * w + xi)[..., None], axis=-1)[..., 0]


def refine_keypoints_quarter(keypoints: np.ndarray, heatmaps: np.ndarray, rule: str = "inside") -> np.ndarray:
    """Move integer maxima a quarter pixel toward the higher neighbour, on both axes at once.

    ``rule`` says where the step applies: ``"inside"`` where ``0 < x < W-1`` and ``0 < y < H-1``;
    ``"hrnet"`` where ``1 < x < W-1`` and ``1 < y < H-1`` (HRNet ``get_final_preds``: ``1 < floor(x + 0.5) < W-1``,
    used by GTPT's heatmap baselines and multi-view PPT). ``np.sign`` of a zero difference gives no step.

    Args:
        keypoints: (N, K, 2) integer maxima in heatmap pixels.
        heatmaps: (N, K, H, W).
        rule: ``"inside"`` or ``"hrnet"``.
    Returns:
        refined (N, K, 2) float64.
    """
    if rule not in ("inside", "hrnet"):
        raise ValueError(f"refine_keypoints_quarter: rule must be 'inside' or 'hrnet', got {rule!r}")
    h, w = heatmaps.shape[-2:]
    out = keypoints.astype(np.float64).copy()
    x = np.floor(keypoints[..., 0] + 0.5).astype(np.int64)
    y = np.floor(keypoints[..., 1] + 0.5).astype(np.int64)
    lo = 1 if rule == "hrnet" else 0
    inside = (x > lo) & (x < w - 1) & (y > lo) & (y < h - 1)
    dx = _gather(heatmaps, x + 1, y) - _gather(heatmaps, x - 1, y)
    dy = _gather(heatmaps, x, y + 1) - _gather(heatmaps, x, y - 1)
    out[..., 0] += np.where(inside, np.sign(dx) * 0.25, 0.0)
    out[..., 1] += np.where(inside, np.sign(dy) * 0.25, 0.0)
    return out


def dark_derivatives(
    keypoints: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int = 11
) -> dict[str, np.ndarray]:
    """The derivatives DARK's Newton step uses, at the integer maxima ``(int(x), int(y))``.

    The maps are blurred keeping the max (:func:`gaussian_blur_keep_max`) and logged with the floor
    ``log(max(hm, 1e-10))``. First derivatives are central +-1 differences, the second and mixed ones +-2
    differences with factor 0.25 (the official ``taylor``).

    Returns:
        ``gx, gy, hxx, hyy, hxy`` (N, K) and ``inside`` (N, K) bool: ``1 < x < W-2`` and ``1 < y < H-2``.
    """
    h, w = heatmaps.shape[-2:]
    hm = gaussian_blur_keep_max(heatmaps, blur_kernel_size)
    hm = np.log(np.maximum(hm, 1e-10))
    x = keypoints[..., 0].astype(np.int64)
    y = keypoints[..., 1].astype(np.int64)

    def g(dx: int, dy: int) -> np.ndarray:
        return _gather(hm, x + dx, y + dy)

    c = g(0, 0)
    return {
        "gx": 0.5 * (g(1, 0) - g(-1, 0)),
        "gy": 0.5 * (g(0, 1) - g(0, -1)),
        "hxx": 0.25 * (g(2, 0) - 2 * c + g(-2, 0)),
        "hyy": 0.25 * (g(0, 2) - 2 * c + g(0, -2)),
        "hxy": 0.25 * (g(1, 1) - g(-1, 1) - g(1, -1) + g(-1, -1)),
        "inside": (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2),
    }


def refine_keypoints_dark(
    keypoints: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int = 11
) -> np.ndarray:
    """DARK refinement (Zhang et al., CVPR 2020): blur keeping the max, take the
    log, then one Newton step ``-H^{-1} g`` from the integer maximum.

    As the official ``taylor`` (TokenPose/PPT ``lib/core/inference.py``; spec 1.6): derivatives from
    :func:`dark_derivatives`; the step is applied only where ``1 < x < W-2`` and ``1 < y < H-2``
    and the Hessian determinant is nonzero (no threshold: a near-singular Hessian takes its step).

    Args:
        keypoints: (N, K, 2) integer maxima in heatmap pixels.
        heatmaps: (N, K, H, W) raw heatmaps.
        blur_kernel_size: odd Gaussian kernel size (11 for 64x48 maps with sigma 2).
    Returns:
        refined (N, K, 2) float64.
    """
    d = dark_derivatives(keypoints, heatmaps, blur_kernel_size)
    gx, gy, hxx, hyy, hxy = d["gx"], d["gy"], d["hxx"], d["hyy"], d["hxy"]
    det = hxx * hyy - hxy**2
    ok = d["inside"] & (det != 0)
    safe = np.where(ok, det, 1.0)
    # offset = -H^{-1} g with H^{-1} = [[hyy, -hxy], [-hxy, hxx]] / det
    ox = -(hyy * gx - hxy * gy) / safe
    oy = -(-hxy * gx + hxx * gy) / safe
    out = keypoints.astype(np.float64).copy()
    out[..., 0] += np.where(ok, ox, 0.0)
    out[..., 1] += np.where(ok, oy, 0.0)
    return out


# --------------------------------------------------------------------- flips
def _clone(x: Any) -> Any:
    return x.copy() if isinstance(x, np.ndarray) else x.clone()


def _reverse_last(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x[..., ::-1]
    return x.flip(-1)  # torch.Tensor


def _check_flip_indices(flip_indices: Sequence[int], k: int, where: str) -> list[int]:
    idx = [int(i) for i in flip_indices]
    if len(idx) != k:
        raise ValueError(f"{where}: flip_indices has {len(idx)} entries but the input has {k} keypoints")
    return idx


def flip_indices_from_pairs(pairs: Sequence[Sequence[int]], num_keypoints: int) -> list[int]:
    """Partner index of each of ``num_keypoints`` joints from left/right ``pairs`` (joints in no pair map to
    themselves), e.g. the official ``flip_pairs`` ``[[1, 2], [3, 4], ...]``."""
    idx = list(range(int(num_keypoints)))
    for pair in pairs:
        a, b = (int(v) for v in pair)
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f"flip pair {list(pair)} is out of range for {num_keypoints} keypoints")
        idx[a], idx[b] = b, a
    return idx


def flip_heatmaps(heatmaps: Any, flip_indices: Sequence[int], shift: bool = False) -> Any:
    """Map the heatmaps predicted on a horizontally flipped crop back to the original.

    Reverses the W axis, swaps left/right channels, and with ``shift=True``
    moves the result one pixel right (HRNet ``SHIFT_HEATMAP``; compensates the
    half-stride misalignment of the non-UDP mapping). TokenPose/PPT use no shift;
    with UDP no shift is needed. Without shift, applying it twice is the identity.

    Args:
        heatmaps: (..., K, H, W) numpy array or torch tensor.
        flip_indices: K partner indices (``PoseMetaInfo.flip_indices``).
    Returns:
        Same type and shape.
    """
    k = heatmaps.shape[-3]
    idx = _check_flip_indices(flip_indices, k, "flip_heatmaps")
    out = _reverse_last(heatmaps)[..., idx, :, :]
    if shift:
        shifted = _clone(out)
        shifted[..., 1:] = out[..., :-1]
        out = shifted
    return out


def flip_simcc(
    simcc_x: Any, simcc_y: Any, flip_indices: Sequence[int], shift: bool = False
) -> tuple[Any, Any]:
    """Map SimCC x/y outputs predicted on a flipped crop back to the original.

    Reverses the x bins, swaps left/right keypoints on both axes and, with
    ``shift=True``, moves the x bins one bin left (GTPT/SimCC ``SHIFT_HEATMAP``):
    with split ratio 2 a pixel flip ``x -> W-1-x`` is bin ``b -> 2W-2-b`` while
    reversal gives ``2W-1-b``, so the shift makes the flip exact.

    Args:
        simcc_x: (..., K, Wx); simcc_y: (..., K, Wy); numpy arrays or torch tensors.
        flip_indices: K partner indices.
    Returns:
        ``(simcc_x, simcc_y)`` flipped back, same types and shapes.
    """
    k = simcc_x.shape[-2]
    if simcc_y.shape[-2] != k:
        raise ValueError(f"flip_simcc: simcc_x has {k} keypoints but simcc_y has {simcc_y.shape[-2]}")
    idx = _check_flip_indices(flip_indices, k, "flip_simcc")
    x = _reverse_last(simcc_x)[..., idx, :]
    y = simcc_y[..., idx, :]
    if shift:
        shifted = _clone(x)
        shifted[..., :-1] = x[..., 1:]
        x = shifted
    return x, y


def flip_keypoints(
    keypoints: Any,
    keypoints_visible: Any | None,
    image_width: float,
    flip_indices: Sequence[int],
) -> tuple[Any, Any | None]:
    """Horizontally flip keypoints in an image of width ``image_width``.

    ``x -> image_width - 1 - x`` (pixel centres at integers) and left/right
    keypoints are swapped. Applying it twice is the identity.

    Args:
        keypoints: (..., K, 2) numpy array or torch tensor.
        keypoints_visible: (..., K) or None.
        image_width: width of the image (or crop) in pixels.
        flip_indices: K partner indices.
    Returns:
        ``(keypoints, keypoints_visible)`` flipped (new arrays).
    """
    k = keypoints.shape[-2]
    idx = _check_flip_indices(flip_indices, k, "flip_keypoints")
    out = _clone(keypoints[..., idx, :])
    out[..., 0] = image_width - 1 - out[..., 0]
    vis = None if keypoints_visible is None else _clone(keypoints_visible[..., idx])
    return out, vis
