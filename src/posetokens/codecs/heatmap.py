"""Gaussian heatmap codec (MSRA / DARK / UDP / TokenPose variants in one object).

Coordinate mapping input crop -> heatmap (``mapping``), used by both ``encode`` and ``decode``:

- ``stride``: ``x / (W / w)`` per axis (HRNet/MSRA, MMPose ``MSRAHeatmap``);
- ``per_axis_size_minus_one``: ``x (w-1)/(W-1)``, ``y (h-1)/(H-1)`` (MMPose UDP; ``udp=True``);
- ``isotropic_size_minus_one``: TokenPose/PPT's separate heatmap affine, the ratio ``r = (w-1)/(W-1)`` on BOTH
  axes about the centres, ``x_h = (x - (W-1)/2) r + (w-1)/2`` and likewise y (192x256 -> 48x64:
  ``x 47/191`` and ``(y - 127.5) 47/191 + 31.5``).

Targets (``encode``), all unnormalised (peak 1 at the mean):

- ``unbiased`` (``full_gaussian``): the sub-pixel mean, evaluated on the whole grid (TokenPose, DARK). It is drawn
  whenever the weight is positive, also when the mean lies off the map.
- otherwise a patch: ``weight_rule='msra'`` centres it on ``int(mu + 0.5)`` (truncation toward zero) and fills
  ``[int(c - 3 sigma), int(c + 3 sigma + 1))`` per axis (HRNet ``generate_target``); else the sub-pixel mean
  (non-``stride`` mappings) or ``floor(mu + 0.5)`` (``stride``), truncated to ``|p - floor(mu + 0.5)| <= 3 sigma``.

``keypoint_weights`` = visibility clipped to [0, 1], set to 0 by ``weight_rule`` (``r = 3 sigma``, map px):

- ``int_box``: the official ``adjust_target_weight``: 0 when ``int(mu - r) >= w`` or ``int(mu + r + 1) < 0``
  (either axis; ``int()`` truncates toward zero): for an integer r, weight 1 iff ``mu in (-r - 2, w + r)``: ``(-8, 54)`` for
  sigma 2 on a 48-wide map;
- ``floor_box``: the same box around ``floor(mu + 0.5)`` (``[-7.5, 53.5)``; the old default);
- ``float_box``: the box around the sub-pixel mean itself, 0 when ``mu - r >= w`` or ``mu + r + 1 < 0``
  (``[-7, 54)``): MMPose 1.x's ``generate_unbiased_gaussian_heatmaps`` (the DARK target);
- ``msra``: the box around ``int(mu + 0.5)``;
- ``visibility``: no box test.

Decoding: integer argmax (scores are the raw map maxima), then a quarter-pixel step toward the higher neighbour
(``'argmax_quarter'``, ``quarter_rule`` ``inside``/``hrnet``) or DARK (``'dark'``: blur keeping the max, log, one
Newton step inside the 2-pixel border), then the inverse mapping. Where the maximum is <= 0 the keypoint is
``invalid='minus_one'`` (-1 in input px, MMPose 1.x) or ``'zero'`` (heatmap (0, 0) before refinement and mapping,
the official ``get_max_preds``).

Flip test (:meth:`merge_flip`): the mirrored crop's maps are flipped back (``flip_shift``: HRNet's one-pixel shift;
TokenPose/PPT: none) and averaged with the plain ones, ``(a + b) * 0.5`` in the outputs' dtype (float32).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .base import BaseKeypointCodec
from .utils import (
    check_keypoints,
    flip_heatmaps,
    get_heatmap_maximum,
    refine_keypoints_dark,
    refine_keypoints_quarter,
    to_numpy,
)

__all__ = ["HeatmapCodec"]

DecodeMode = Literal["argmax", "argmax_quarter", "dark"]
MAPPINGS = ("stride", "per_axis_size_minus_one", "isotropic_size_minus_one")
WEIGHT_RULES = ("floor_box", "float_box", "int_box", "msra", "visibility")
INVALID_MODES = ("minus_one", "zero")
QUARTER_RULES = ("inside", "hrnet")


def _pair(v: Any, name: str) -> tuple[int, int]:
    t = tuple(int(x) for x in v)
    if len(t) != 2 or min(t) < 2:
        raise ValueError(f"{name} must be (w, h) with both >= 2, got {v!r}")
    return t  # type: ignore[return-value]


def _choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"HeatmapCodec: {name} must be one of {list(allowed)}, got {value!r}")
    return value


class HeatmapCodec(BaseKeypointCodec):
    """Gaussian heatmap targets and heatmap decoding (see the module docstring for every rule).

    Args:
        input_size: crop size ``(w, h)``, e.g. ``(192, 256)``.
        heatmap_size: map size ``(w, h)``, e.g. ``(48, 64)``.
        sigma: Gaussian std in heatmap pixels.
        unbiased: sub-pixel Gaussian on the whole grid (TokenPose / DARK).
        udp: shorthand for ``mapping='per_axis_size_minus_one'`` (kept for old callers).
        decode: ``'argmax_quarter'``, ``'dark'`` or ``'argmax'``; default
            ``'dark'`` when ``unbiased`` else ``'argmax_quarter'``.
        blur_kernel_size: DARK blur kernel (odd), 11 for sigma 2.
        mapping: input -> heatmap mapping (``stride``, ``per_axis_size_minus_one``, ``isotropic_size_minus_one``);
            None: from ``udp``. Used by both ``encode`` and ``decode``.
        weight_rule: ``floor_box`` (default), ``float_box``, ``int_box``, ``msra`` or ``visibility``.
        invalid: decoded position where the map maximum is <= 0: ``minus_one`` (default) or ``zero``.
        quarter_rule: border rule of ``argmax_quarter``: ``inside`` (default) or ``hrnet``.
        flip_shift: :meth:`merge_flip` shifts the flipped-back maps one pixel right (HRNet ``SHIFT_HEATMAP``).

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
        *,
        mapping: str | None = None,
        weight_rule: str = "floor_box",
        invalid: str = "minus_one",
        quarter_rule: str = "inside",
        flip_shift: bool = False,
    ) -> None:
        self.input_size = _pair(input_size, "input_size")
        self.heatmap_size = _pair(heatmap_size, "heatmap_size")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        if mapping is None:
            mapping = "per_axis_size_minus_one" if udp else "stride"
        elif udp and mapping != "per_axis_size_minus_one":
            raise ValueError(f"HeatmapCodec: udp=True means mapping='per_axis_size_minus_one', got mapping={mapping!r}")
        self.mapping = _choice(mapping, MAPPINGS, "mapping")
        self.udp = self.mapping == "per_axis_size_minus_one"
        self.weight_rule = _choice(weight_rule, WEIGHT_RULES, "weight_rule")
        self.invalid = _choice(invalid, INVALID_MODES, "invalid")
        self.quarter_rule = _choice(quarter_rule, QUARTER_RULES, "quarter_rule")
        self.flip_shift = bool(flip_shift)
        mode = decode if decode is not None else ("dark" if unbiased else "argmax_quarter")
        if mode not in ("argmax", "argmax_quarter", "dark"):
            raise ValueError(f"decode must be 'argmax', 'argmax_quarter' or 'dark', got {decode!r}")
        self.decode_mode: DecodeMode = mode
        if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")
        self.blur_kernel_size = int(blur_kernel_size)
        iw, ih = self.input_size
        hw, hh = self.heatmap_size
        # x_h = (x - in_c) * ratio + hm_c, per axis
        if self.mapping == "stride":
            self._stride = np.array([iw / hw, ih / hh])  # the official feat_stride = image_size / heatmap_size
            self._in_c, self._hm_c = np.zeros(2), np.zeros(2)
        elif self.mapping == "per_axis_size_minus_one":
            self._stride = np.array([(iw - 1) / (hw - 1), (ih - 1) / (hh - 1)])
            self._in_c, self._hm_c = np.zeros(2), np.zeros(2)
        else:  # isotropic_size_minus_one: TokenPose's heatmap affine, (w-1)/(W-1) on both axes about the centres
            self._stride = np.full(2, (iw - 1) / (hw - 1))
            self._in_c = np.array([(iw - 1) / 2, (ih - 1) / 2])
            self._hm_c = np.array([(hw - 1) / 2, (hh - 1) / 2])

    def _repr_fields(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, heatmap_size=self.heatmap_size, sigma=self.sigma,
                    unbiased=self.unbiased, mapping=self.mapping, weight_rule=self.weight_rule,
                    decode=self.decode_mode, invalid=self.invalid, flip_shift=self.flip_shift)

    # ----------------------------------------------------------- coordinates
    def input_to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        """Map (..., 2) input-crop pixels to heatmap pixels (this codec's ``mapping``)."""
        return (np.asarray(keypoints, dtype=np.float64) - self._in_c) / self._stride + self._hm_c

    def heatmap_to_input(self, keypoints: np.ndarray) -> np.ndarray:
        """Map (..., 2) heatmap pixels to input-crop pixels (inverse of :meth:`input_to_heatmap`)."""
        return (np.asarray(keypoints, dtype=np.float64) - self._hm_c) * self._stride + self._in_c

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
        return self._encode_map_px(self.input_to_heatmap(kps), vis)

    def encode_heatmap_px(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """:meth:`encode` for joints already in heatmap pixels (what the official TokenPose ``generate_target``
        receives from its heatmap affine)."""
        kps, vis = check_keypoints(keypoints, keypoints_visible, where="HeatmapCodec.encode_heatmap_px")
        return self._encode_map_px(kps, vis)

    def _encode_map_px(self, mu: np.ndarray, vis: np.ndarray) -> dict[str, np.ndarray]:
        w, h = self.heatmap_size
        radius = self.sigma * 3
        finite = np.isfinite(mu).all(axis=-1)
        mu = np.where(finite[..., None], mu, 0.0)
        rounded = np.floor(mu + 0.5)
        if self.weight_rule == "int_box":
            ul, br = np.trunc(mu - radius), np.trunc(mu + radius + 1)
        elif self.weight_rule == "msra":
            rounded = np.trunc(mu + 0.5)  # int(x / stride + 0.5): toward zero
            ul, br = np.trunc(rounded - radius), np.trunc(rounded + radius + 1)
        elif self.weight_rule == "float_box":
            ul, br = mu - radius, mu + radius + 1
        else:  # floor_box (and the patch of visibility)
            ul, br = rounded - radius, rounded + radius + 1
        outside = (ul[..., 0] >= w) | (ul[..., 1] >= h) | (br[..., 0] < 0) | (br[..., 1] < 0)
        if self.weight_rule == "visibility":
            outside = np.zeros_like(outside)
        weights = np.where((vis > 0) & ~outside & finite, np.minimum(vis, 1.0), 0.0).astype(np.float32)

        xs = np.arange(w, dtype=np.float64)
        ys = np.arange(h, dtype=np.float64)
        if self.unbiased or (self.mapping != "stride" and self.weight_rule != "msra"):
            center = mu  # sub-pixel mean
        else:
            center = rounded
        gx = np.exp(-((xs - center[..., 0:1]) ** 2) / (2 * self.sigma**2))  # (N, K, W)
        gy = np.exp(-((ys - center[..., 1:2]) ** 2) / (2 * self.sigma**2))  # (N, K, H)
        if not self.unbiased:  # the patch
            if self.weight_rule == "msra":  # HRNet pastes [ul, br) of a patch centred on int(mu + 0.5)
                gx = gx * ((xs >= ul[..., 0:1]) & (xs < br[..., 0:1]))
                gy = gy * ((ys >= ul[..., 1:2]) & (ys < br[..., 1:2]))
            else:
                gx = gx * (np.abs(xs - rounded[..., 0:1]) <= radius)
                gy = gy * (np.abs(ys - rounded[..., 1:2]) <= radius)
        heatmaps = gy[..., :, None] * gx[..., None, :]
        heatmaps *= (weights > 0)[..., None, None]
        return {"heatmaps": heatmaps.astype(np.float32), "keypoint_weights": weights}

    # ------------------------------------------------------------------ flip
    def merge_flip(self, outputs: Any, flipped_outputs: Any, flip_indices: Sequence[int]) -> Any:
        """The flip test's merge: ``(outputs + flip_back(flipped_outputs)) * 0.5``, where ``flip_back`` reverses W,
        swaps the left/right maps and, with ``flip_shift``, shifts one pixel right. ``flipped_outputs`` is the
        network's output on the mirrored crop, as returned. numpy or torch (N, K, H, W); the dtype is kept."""
        return (outputs + flip_heatmaps(flipped_outputs, flip_indices, shift=self.flip_shift)) * 0.5

    # ---------------------------------------------------------------- decode
    def decode(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Decode heatmaps to keypoints.

        Args:
            outputs: heatmaps (N, K, H, W) or (K, H, W), numpy or torch, or a dict
                with key ``"heatmaps"``.
        Returns:
            ``(keypoints (N, K, 2) float32 in input-crop pixels, scores (N, K) float32)``.
            Keypoints whose map maximum is <= 0 follow ``invalid`` (-1, or heatmap (0, 0) mapped).
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
        if self.invalid == "zero":
            locs[invalid] = 0.0  # get_max_preds: coordinates * (maxval > 0), before refinement
        if self.decode_mode == "argmax_quarter":
            locs = refine_keypoints_quarter(locs, hm, self.quarter_rule)
        elif self.decode_mode == "dark":
            locs = refine_keypoints_dark(locs, hm, self.blur_kernel_size)
        kps = self.heatmap_to_input(locs)
        if self.invalid == "minus_one":
            kps[invalid] = -1
        return kps.astype(np.float32), vals.astype(np.float32)
