"""Coordinate codec: joints carried as crop-pixel coordinates (PCT's tokenizer input and targets).

``encode`` returns ``joints`` (N, K, 3): x, y in input-crop pixels and the 0/1 visibility; ``decode``
takes a coordinate-output model's ``(keypoints (N, K, 2), scores (N, K))`` and returns them as numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import BaseKeypointCodec

__all__ = ["CoordinateCodec"]


class CoordinateCodec(BaseKeypointCodec):
    """Joints in crop pixels plus visibility (no heatmaps): for models that regress or decode coordinates."""

    label_keys = ("joints",)

    def __init__(self, input_size: tuple[int, int]) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))  # (w, h)

    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """(N, K, 2) crop keypoints and (N, K) visibility -> ``joints`` (N, K, 3) float32, v in {0, 1}."""
        kps = np.asarray(keypoints, np.float32)
        if kps.ndim != 3 or kps.shape[-1] < 2:
            raise ValueError(f"CoordinateCodec.encode: keypoints must be (N, K, 2), got {kps.shape}")
        vis = np.ones(kps.shape[:2], np.float32) if keypoints_visible is None else np.asarray(keypoints_visible, np.float32)
        return {"joints": np.concatenate((kps[..., :2], (vis > 0).astype(np.float32)[..., None]), axis=-1)}

    def decode(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(keypoints (N, K, 2), scores (N, K))`` from the model, as float arrays."""
        kpts, scores = outputs
        return np.asarray(kpts, np.float64), np.asarray(scores, np.float64)

    def _repr_fields(self) -> dict[str, Any]:
        return {"input_size": self.input_size}
