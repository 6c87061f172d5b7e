"""Gaussian heatmap codec (MSRA / DARK / UDP variants in one object).

Targets (``encode``):

============  =====  ==========================================================
unbiased      udp    Gaussian
============  =====  ==========================================================
True          any    sub-pixel mean, evaluated on the whole grid (DARK/TokenPose)
False         False  mean rounded to the nearest pixel, 3-sigma patch (HRNet/MSRA)
False         True   sub-pixel mean, 3-sigma patch around the rounded mean (UDP)
============  =====  ==========================================================

All are unnormalised (peak 1 at the mean). Coordinate mapping input -> heatmap:
``x * heatmap/input`` (``udp=False``) or ``x * (heatmap-1)/(input-1)``
(``udp=True``; this is also what TokenPose's "(size-1)" affine amounts to).

``keypoint_weights`` = visibility clipped to [0, 1], set to 0 when the 3-sigma
box around the rounded mean lies entirely outside the map (HRNet rule).

Decoding: integer argmax, then either a quarter-pixel step toward the higher
neighbour (``'argmax_quarter'``) or DARK (``'dark'``: blur keeping the max, log,
one Newton step inside the 2-pixel border). Scores are the raw map maxima.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from .base import BaseKeypointCodec
from .utils import (
    check_keypoints,
    get_heatmap_maximum,
    refine_keypoints_dark,
    refine_keypoints_quarter,
    to_numpy,
)

__all__ = ["HeatmapCodec"]

DecodeMode = Literal["argmax", "argmax_quarter", "dark"]


def _pair(v: Any, name: str) -> tuple[int, int]:
    t = tuple(int(x) for x in v)
    if len(t) != 2 or min(t) < 2:
        raise ValueError(f"{name} must be (w, h) with both >= 2, got {v!r}")
    return t  # type: ignore[return-value]


class HeatmapCodec(BaseKeypointCodec):
    """Gaussian heatmap targets and heatmap decoding.

    Args:
        input_size: crop size ``(w, h)``, e.g. ``(192, 256)``.
        heatmap_size: map size ``(w, h)``, e.g. ``(48, 64)``.
        sigma: Gaussian std in heatmap pixels.
        unbiased: sub-pixel Gaussian on the whole grid (see module table).
        udp: use the ``(size-1)`` coordinate mapping of UDP / TokenPose.
        decode: ``'argmax_quarter'``, ``'dark'`` or ``'argmax'``; default
            ``'dark'`` when ``unbiased`` else ``'argmax_quarter'``.
        blur_kernel_size: DARK blur kernel (odd), 11 for sigma 2.

    ``encode`` returns ``heatmaps`` (N, K, H, W) float32 and ``keypoint_weights``
    (N, K) float32. ``decode`` takes heatmaps (N, K, H, W) or (K, H, W) (numpy or
    torch) and returns keypoints (N, K, 2) in input pixels and scores (N, K).
    """

    label_keys = ("heatmaps", "keypoint_weights")

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        unbiased: bool = False,
        udp: bool = False,
        decode: DecodeMode | None = None,
        blur_kernel_size: int = 11,
    ) -> None:
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.udp = bool(udp)
        mode = decode if decode is not None else ("dark" if unbiased else "argmax_quarter")
        if mode not in ("argmax", "argmax_quarter", "dark"):
            raise ValueError(f"decode must be 'argmax', 'argmax_quarter' or 'dark', got {decode!r}")
        self.decode_mode: DecodeMode = mode
        if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")
        self.blur_kernel_size = int(blur_kernel_size)
        iw, ih = self.input_size
        hw, hh = self.heatmap_size
        if self.udp:
            self._scale = np.array([(hw - 1) / (iw - 1), (hh - 1) / (ih - 1)])
        else:
            self._scale = np.array([hw / iw, hh / ih])

    def _repr_fields(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, heatmap_size=self.heatmap_size, sigma=self.sigma,
                    unbiased=self.unbiased, udp=self.udp, decode=self.decode_mode)

    # ----------------------------------------------------------- coordinates
    def input_to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        """Map (..., 2) input-crop pixels to heatmap pixels."""
        return np.asarray(keypoints, dtype=np.float64) * self._scale

    def heatmap_to_input(self, keypoints: np.ndarray) -> np.ndarray:
        """Map (..., 2) heatmap pixels to input-crop pixels."""
        return np.asarray(keypoints, dtype=np.float64) / self._scale

    # ---------------------------------------------------------------- encode
    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Build Gaussian heatmaps.

        Args:
            keypoints: (N, K, 2) or (K, 2) in input-crop pixels.
            keypoints_visible: (N, K) or (K,); None = all visible. Values <= 0
                mean unlabelled (zero map, zero weight); weights are clipped to 1,
                so raw COCO flags (v = 2) give weight 1.
        Returns:
            ``{"heatmaps": (N, K, H, W) float32, "keypoint_weights": (N, K) float32}``.
        """
        kps, vis = check_keypoints(keypoints, keypoints_visible, where="HeatmapCodec.encode")
        w, h = self.heatmap_size
        mu = self.input_to_heatmap(kps)  # (N, K, 2) heatmap pixels
        radius = self.sigma * 3
        mu_int = np.floor(mu + 0.5)
        # HRNet: box [mu-r, mu+r+1) must overlap the map
        ul = mu_int - radius
        br = mu_int + radius + 1
        outside = (ul[..., 0] >= w) | (ul[..., 1] >= h) | (br[..., 0] < 0) | (br[..., 1] < 0)
        finite = np.isfinite(mu).all(axis=-1)
        weights = np.where((vis > 0) & ~outside & finite, np.minimum(vis, 1.0), 0.0).astype(np.float32)

        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)
        mu = np.where(finite[..., None], mu, 0.0)
        mu_int = np.where(finite[..., None], mu_int, 0.0)
        center = mu if (self.unbiased or self.udp) else mu_int
        dx = xs - center[..., 0:1]  # (N, K, W)
        dy = ys - center[..., 1:2]  # (N, K, H)
        gx = np.exp(-(dx**2) / (2 * self.sigma**2))
        gy = np.exp(-(dy**2) / (2 * self.sigma**2))
        if not self.unbiased:
            # truncate to the 3-sigma patch around the rounded mean
            gx = gx * (np.abs(xs - mu_int[..., 0:1]) <= radius)
            gy = gy * (np.abs(ys - mu_int[..., 1:2]) <= radius)
        heatmaps = gy[..., :, None] * gx[..., None, :]
        heatmaps *= (weights > 0)[..., None, None]
        return {"heatmaps": heatmaps.astype(np.float32), "keypoint_weights": weights}

    # ---------------------------------------------------------------- decode
    def decode(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Decode heatmaps to keypoints.

        Args:
            outputs: heatmaps (N, K, H, W) or (K, H, W), numpy or torch, or a dict
                with key ``"heatmaps"``.
        Returns:
            ``(keypoints (N, K, 2) float32 in input-crop pixels, scores (N, K) float32)``.
            Keypoints whose map maximum is <= 0 are set to -1.
        """
        if isinstance(outputs, dict):
            outputs = outputs["heatmaps"]
        hm = np.asarray(to_numpy(outputs), dtype=np.float64)
        if hm.ndim == 3:
            hm = hm[None]
        w, h = self.heatmap_size
        if hm.ndim != 4 or hm.shape[-2:] != (h, w):
            raise ValueError(
                f"HeatmapCodec.decode: expected heatmaps of shape (N, K, {h}, {w}) "
                f"(heatmap_size=(w, h)={self.heatmap_size}), got {tuple(hm.shape)}"
            )
        locs, vals = get_heatmap_maximum(hm)
        invalid = vals <= 0
        if self.decode_mode == "argmax_quarter":
            locs = refine_keypoints_quarter(locs, hm)
        elif self.decode_mode == "dark":
            locs = refine_keypoints_dark(locs, hm, self.blur_kernel_size)
        kps = self.heatmap_to_input(locs)
        kps[invalid] = -1
        return kps.astype(np.float32), vals.astype(np.float32)
