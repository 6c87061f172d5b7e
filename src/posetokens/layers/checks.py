"""Input checks shared by the image models (torch only)."""

from __future__ import annotations

from torch import Tensor


def check_image_batch(img: Tensor, size_hw: tuple[int, int], owner: str, why: str = "RGB") -> None:
    """Raise ``ValueError`` naming ``owner`` and the expected shape unless ``img`` is (B, 3, H, W) at ``size_hw``."""
    h, w = size_hw
    if img.dim() != 4 or img.shape[1] != 3 or tuple(img.shape[2:]) != (h, w):
        raise ValueError(f"{owner} expects images of shape (B, 3, {h}, {w}) ({why}, height {h}, width {w}); "
                         f"got {tuple(img.shape)}")
