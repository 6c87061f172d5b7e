"""SimCC codec: 1-D x/y classification targets (SimDR / SA-SimDR, RTMPose, GTPT).

The input axis of length ``w`` is split into ``round(w * split_ratio)`` bins;
a keypoint at input pixel ``x`` sits at bin ``x * split_ratio`` (no half-pixel
offset). Labels are 1-D Gaussians with std ``sigma`` *in bins* (GTPT: 4),
optionally scaled by ``1 / (sigma * sqrt(2 pi))`` (``normalize``; GTPT/MMPose
default) and never renormalised. GTPT/SimDR place the Gaussian at the sub-bin
position; MMPose rounds it to an integer bin (``round_labels=True``).

Weights (``weight_rule``; visibility clipped to [0, 1], set to 0 when the box misses the range):

- ``bins`` (alias ``floor_box``; the default): ``[mu - 3 sigma, mu + 3 sigma + 1)`` in bins must overlap
  ``[0, Wx)`` (MMPose ``SimCCLabel``); for 192 px, split 2, sigma 4 this is ``x in [-6.5, 198)`` px;
- ``int_box``: the official ``adjust_target_weight`` in bins, ``int(mu - r) >= Wx or int(mu + r + 1) < 0``;
- ``int_box_input_px``: GTPT's ``generate_sa_simdr``: the same ``int()`` test done on the INPUT-pixel joint
  against the input size, with the radius ``r = 3 sigma`` taken from the sigma in bins: weight 1 iff
  ``x in (-r - 2, W + r)`` px, ``(-14, 204) x (-14, 268)`` for 192x256 and sigma 4;
- ``visibility``: no box test.

Decoding: argmax bin / split_ratio; score = ``min(max_x, max_y)`` (MMPose and
GTPT), optionally of the softmax of the logits (``softmax_scores=True``, GTPT).

Flip test (:meth:`merge_flip`): the mirrored crop's logits are flipped back (x bins reversed, pairs swapped on both
axes; ``flip_shift``: GTPT's one-bin left shift ``x[..., :-1] = x[..., 1:]``, the last bin keeping its value) and
averaged with the plain ones AS LOGITS; ``decode`` then softmaxes (``softmax_scores``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import BaseKeypointCodec
from .utils import check_keypoints, flip_simcc, get_simcc_maximum, softmax, to_numpy

WEIGHT_RULES = ("bins", "floor_box", "int_box", "int_box_input_px", "visibility")

__all__ = ["SimCCCodec"]


class SimCCCodec(BaseKeypointCodec):
    """SimCC (coordinate classification) targets and decoding.

    Args:
        input_size: crop size ``(w, h)``.
        split_ratio: bins per pixel (2.0 -> 384 x 512 bins for 192 x 256).
        sigma: Gaussian std in bins, one float or ``(sigma_x, sigma_y)``.
        normalize: divide labels by ``sigma * sqrt(2 pi)``.
        round_labels: centre the Gaussian on the rounded bin (MMPose) instead of
            the exact sub-bin position (SimDR/GTPT).
        softmax_scores: in ``decode``, softmax each axis before taking maxima
            (GTPT: scores are softmax peaks). Argmax is unaffected.
        weight_rule: ``bins`` (default), ``int_box``, ``int_box_input_px`` (GTPT) or ``visibility``
            (module docstring).
        flip_shift: :meth:`merge_flip` shifts the flipped-back x logits one bin left (GTPT ``SHIFT_HEATMAP``).

    ``encode`` returns ``keypoint_x_labels`` (N, K, Wx), ``keypoint_y_labels``
    (N, K, Wy) float32 and ``keypoint_weights`` (N, K) float32 (visibility clipped
    to [0, 1], 0 by ``weight_rule``); labels are zero where the weight is 0.
    """

    label_keys = ("keypoint_x_labels", "keypoint_y_labels", "keypoint_weights")

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        split_ratio: float = 2.0,
        sigma: float | tuple[float, float] = (4.0, 4.0),
        normalize: bool = True,
        round_labels: bool = False,
        softmax_scores: bool = False,
        *,
        weight_rule: str = "bins",
        flip_shift: bool = False,
    ) -> None:
        iw, ih = (int(v) for v in input_size)
        if iw < 1 or ih < 1:
            raise ValueError(f"input_size must be (w, h) positive, got {input_size!r}")
        self.input_size = (iw, ih)
        if not split_ratio > 0:
            raise ValueError(f"split_ratio must be positive, got {split_ratio}")
        self.split_ratio = float(split_ratio)
        s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (2,)).copy()
        if not (s > 0).all():
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        self.sigma = s
        self.normalize = bool(normalize)
        self.round_labels = bool(round_labels)
        self.softmax_scores = bool(softmax_scores)
        if weight_rule not in WEIGHT_RULES:
            raise ValueError(f"SimCCCodec: weight_rule must be one of {list(WEIGHT_RULES)}, got {weight_rule!r}")
        self.weight_rule = "bins" if weight_rule == "floor_box" else weight_rule
        self.flip_shift = bool(flip_shift)
        self.num_bins = (int(round(iw * self.split_ratio)), int(round(ih * self.split_ratio)))

    @property
    def score_scale(self) -> float:
        """With ``softmax_scores``, the peak of the normalised label, ``1 / (sigma sqrt(2 pi))`` on the wider axis
        (0.0997 for sigma 4 bins): a model that matches its labels reaches it, so softmax-peak scores stay far below
        1 (GTPT spec, section 5). Otherwise 1.0 (raw logits have no fixed scale)."""
        if not self.softmax_scores:
            return 1.0
        return float(1.0 / (self.sigma.max() * np.sqrt(2 * np.pi)))

    def _repr_fields(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, split_ratio=self.split_ratio,
                    sigma=tuple(self.sigma.tolist()), normalize=self.normalize,
                    round_labels=self.round_labels, softmax_scores=self.softmax_scores,
                    weight_rule=self.weight_rule, flip_shift=self.flip_shift)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Build 1-D Gaussian x/y labels.

        Args:
            keypoints: (N, K, 2) or (K, 2) in input-crop pixels.
            keypoints_visible: (N, K) or (K,); None = all visible.
        Returns:
            dict with ``keypoint_x_labels`` (N, K, Wx), ``keypoint_y_labels``
            (N, K, Wy) and ``keypoint_weights`` (N, K), all float32.
        """
        kps, vis = check_keypoints(keypoints, keypoints_visible, where="SimCCCodec.encode")
        wx, wy = self.num_bins
        finite = np.isfinite(kps).all(axis=-1)
        kps = np.where(finite[..., None], kps, 0.0)
        mu = kps * self.split_ratio
        if self.round_labels:
            mu = np.round(mu)
        radius = 3 * self.sigma
        if self.weight_rule == "int_box_input_px":  # GTPT: input px against the input size, radius from bins
            lo, hi, size = np.trunc(kps - radius), np.trunc(kps + radius + 1), self.input_size
        elif self.weight_rule == "int_box":
            lo, hi, size = np.trunc(mu - radius), np.trunc(mu + radius + 1), self.num_bins
        else:
            lo, hi, size = mu - radius, mu + radius + 1, self.num_bins
        outside = (lo[..., 0] >= size[0]) | (lo[..., 1] >= size[1]) | (hi[..., 0] < 0) | (hi[..., 1] < 0)
        if self.weight_rule == "visibility":
            outside = np.zeros_like(outside)
        weights = np.where((vis > 0) & ~outside & finite, np.minimum(vis, 1.0), 0.0).astype(np.float32)
        bx = np.arange(wx, dtype=np.float64)
        by = np.arange(wy, dtype=np.float64)
        lx = np.exp(-((bx - mu[..., 0:1]) ** 2) / (2 * self.sigma[0] ** 2))
        ly = np.exp(-((by - mu[..., 1:2]) ** 2) / (2 * self.sigma[1] ** 2))
        if self.normalize:
            lx /= self.sigma[0] * np.sqrt(2 * np.pi)
            ly /= self.sigma[1] * np.sqrt(2 * np.pi)
        keep = (weights > 0)[..., None]
        return {
            "keypoint_x_labels": (lx * keep).astype(np.float32),
            "keypoint_y_labels": (ly * keep).astype(np.float32),
            "keypoint_weights": weights,
        }

    def merge_flip(self, outputs: Any, flipped_outputs: Any, flip_indices: Sequence[int]) -> tuple[Any, Any]:
        """The flip test's merge of ``(simcc_x, simcc_y)`` logits with those of the mirrored crop (as the network
        returns them): flip back (``flip_simcc`` with ``flip_shift``) and average, ``(a + b) * 0.5`` per axis, in
        the outputs' dtype. The softmax comes after, in :meth:`decode`. numpy or torch."""
        x, y = outputs
        fx, fy = flip_simcc(flipped_outputs[0], flipped_outputs[1], flip_indices, shift=self.flip_shift)
        return (x + fx) * 0.5, (y + fy) * 0.5

    def decode(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Decode SimCC outputs to keypoints.

        Args:
            outputs: ``(simcc_x, simcc_y)`` with shapes (N, K, Wx) and (N, K, Wy)
                (or without N), numpy or torch; or a dict with keys
                ``simcc_x``/``simcc_y`` (or ``keypoint_x_labels``/``keypoint_y_labels``).
        Returns:
            ``(keypoints (N, K, 2) float32 in input-crop pixels, scores (N, K) float32)``;
            ``scores = min(max_x, max_y)``; keypoints with score <= 0 are -1.
        """
        if isinstance(outputs, dict):
            if "simcc_x" in outputs:
                sx, sy = outputs["simcc_x"], outputs["simcc_y"]
            else:
                sx, sy = outputs["keypoint_x_labels"], outputs["keypoint_y_labels"]
        else:
            try:
                sx, sy = outputs
            except (TypeError, ValueError):
                raise ValueError("SimCCCodec.decode expects (simcc_x, simcc_y) or a dict of them") from None
        x = np.asarray(to_numpy(sx), dtype=np.float64)
        y = np.asarray(to_numpy(sy), dtype=np.float64)
        if x.ndim == 2:
            x, y = x[None], y[None]
        wx, wy = self.num_bins
        if x.ndim != 3 or y.ndim != 3 or x.shape[-1] != wx or y.shape[-1] != wy or x.shape[:2] != y.shape[:2]:
            raise ValueError(
                f"SimCCCodec.decode: expected simcc_x (N, K, {wx}) and simcc_y (N, K, {wy}) "
                f"for input_size={self.input_size}, split_ratio={self.split_ratio}; "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if self.softmax_scores:
            x, y = softmax(x), softmax(y)
        locs, vals = get_simcc_maximum(x, y)
        invalid = vals <= 0
        kps = locs / self.split_ratio
        kps[invalid] = -1
        return kps.astype(np.float32), vals.astype(np.float32)
