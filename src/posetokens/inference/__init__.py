"""Inference helpers: drawing of predictions and of PPT's kept tokens."""

from .visualize import default_kpt_thr, denormalize_image, draw_kept_tokens, draw_skeleton, put_caption, tile_images

__all__ = ["default_kpt_thr", "denormalize_image", "draw_kept_tokens", "draw_skeleton", "put_caption", "tile_images"]
