"""Codec interface: one object both builds training targets and decodes outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BaseKeypointCodec"]


class BaseKeypointCodec(ABC):
    """Pairs ``encode`` (keypoints -> targets) with ``decode`` (outputs -> keypoints).

    Coordinates on both ends are in *input-crop* pixels (the codec owns the
    mapping to its own target space). Subclasses list the keys ``encode`` returns
    in :attr:`label_keys`.
    """

    label_keys: tuple[str, ...] = ()

    @abstractmethod
    def encode(self, keypoints: np.ndarray, keypoints_visible: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Encode (N, K, 2) keypoints and (N, K) visibility into named target arrays."""

    @abstractmethod
    def decode(self, outputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Decode network outputs into ``(keypoints (N, K, 2), scores (N, K))``."""

    def merge_flip(self, outputs: Any, flipped_outputs: Any, flip_indices: Sequence[int]) -> Any:
        """The flip test's merge of the outputs on a crop with those on its mirror image (as the network returns
        them), in the codec's own output space; ``decode`` takes the result. Heatmap and SimCC codecs implement
        it; a coordinate model flips inside its own ``predict``."""
        raise NotImplementedError(f"{type(self).__name__} has no flip-test merge (the model's predict does it)")

    @property
    def score_scale(self) -> float:
        """The keypoint score of a confident, exact prediction (1.0 for a heatmap maximum); drawing
        thresholds are fractions of it, so one default suits every codec."""
        return 1.0

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._repr_fields().items())
        return f"{type(self).__name__}({fields})"

    def _repr_fields(self) -> dict[str, Any]:
        return {}
