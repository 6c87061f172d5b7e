"""Inference helpers: drawing of predictions and of PPT's kept tokens."""

from .visualize import denormalize_image, draw_kept_tokens, draw_skeleton, put_caption, tile_images

__all__ = ["denormalize_image", "draw_kept_tokens", "draw_skeleton", "put_caption", "tile_images"]
