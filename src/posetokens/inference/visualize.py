"""The library's one home for drawing: skeletons over images and PPT-style kept-token figures (numpy + cv2).

* :func:`draw_skeleton`: predicted (or ground-truth) people drawn with the dataset's links and colours.
* :func:`draw_kept_tokens`: the PPT paper's figure for one example: the input crop, then the crop at each
  pruning layer with the kept visual tokens (patches) at full brightness and the pruned ones dimmed.
* :func:`tile_images` and :func:`put_caption`: small helpers to compose pictures into one file.
* :func:`default_kpt_thr`: the least keypoint score drawn when none is given, relative to the codec's scores.
* :func:`track_colour` and :func:`draw_track_label`: one colour per tracked person (its 2D skeleton, its id and
  its 3D panel share it).

Colours in metainfo are RGB; every function takes the image's channel order (``"bgr"``, OpenCV's, or
``"rgb"``) and returns an image in that same order. Inputs are never modified. Images are uint8; another dtype is
accepted only when its values are plainly 0-255 levels, and refused (``ValueError``) when ambiguous, e.g. floats in
[0, 1] or 16-bit levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posetokens.data.metainfo import PoseMetaInfo, get_metainfo
from posetokens.data.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "TRACK_COLOURS",
    "default_kpt_thr",
    "denormalize_image",
    "draw_kept_tokens",
    "draw_skeleton",
    "draw_track_label",
    "put_caption",
    "tile_images",
    "track_colour",
]

#: RGB colours of tracked people (Tableau 10, well apart from each other); id ``i`` gets ``TRACK_COLOURS[(i - 1) % 10]``.
TRACK_COLOURS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def track_colour(track_id: int, channel_order: str = "rgb") -> tuple[int, int, int]:
    """The colour of track ``track_id`` (ids from 1), in ``channel_order``."""
    _check_order(channel_order)
    return _colour(TRACK_COLOURS[(int(track_id) - 1) % len(TRACK_COLOURS)], channel_order)


def draw_track_label(image: np.ndarray, keypoints: np.ndarray, text: str, colour: tuple[int, int, int],
                     scores: np.ndarray | None = None, kpt_thr: float = 0.0) -> np.ndarray:
    """``image`` (a copy) with ``text`` on a ``colour`` tag just above the top of a pose's confident keypoints
    (K, 2); ``colour`` in the image's channel order."""
    img = _as_uint8_rgb3(image).copy()
    kp = np.asarray(keypoints, np.float64).reshape(-1, 2)
    ok = np.isfinite(kp).all(axis=1) & (np.ones(len(kp), bool) if scores is None
                                       else np.asarray(scores, np.float64).reshape(-1) >= kpt_thr)
    if not ok.any():
        return img
    h, w = img.shape[:2]
    scale = max(0.4, min(h, w) / 900)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(kp[ok, 0].mean() - tw / 2, 0, max(0, w - tw - 4)))
    y = int(np.clip(kp[ok, 1].min() - 8, th + base + 2, h - 2))
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 4, y + 2), tuple(int(c) for c in colour), -1)
    cv2.putText(img, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def default_kpt_thr(score_scale: float = 1.0) -> float:
    """The default drawing threshold: 0.3 of the best score a codec gives (``codec.score_scale``), so 0.3 for
    heatmap maxima and about 0.03 for GTPT's SimCC softmax peaks (whose best is about 0.1)."""
    return 0.3 * score_scale


def _as_uint8_rgb3(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = _to_uint8(img)
    return np.ascontiguousarray(img)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """A non-uint8 image whose values are unambiguous 0-255 levels (integers or floats within [0, 255], above 1
    somewhere), rounded to uint8; anything else (floats in [0, 1], 16-bit levels, NaN) is refused: clipping it
    would draw a black or white picture without a word."""
    if img.dtype == bool or not np.issubdtype(img.dtype, np.number):
        raise ValueError(f"expected a uint8 image with values 0-255, got dtype {img.dtype}")
    if img.size == 0:
        return img.astype(np.uint8)
    lo, hi = float(np.min(img)), float(np.max(img))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 255:
        raise ValueError(f"expected a uint8 image with values 0-255, got dtype {img.dtype} with values in "
                         f"[{lo:g}, {hi:g}] (16-bit levels: img // 257)")
    if np.issubdtype(img.dtype, np.floating) and hi <= 1.0:
        raise ValueError(f"expected a uint8 image with values 0-255, got dtype {img.dtype} with values in "
                         f"[{lo:g}, {hi:g}]: convert an image in [0, 1] with (img * 255).round().astype(np.uint8)")
    return np.rint(img).astype(np.uint8)


def _colour(rgb: Sequence[int], channel_order: str) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rgb)
    return (b, g, r) if channel_order == "bgr" else (r, g, b)


def _check_order(channel_order: str) -> None:
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")


def denormalize_image(chw: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                      std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """A model input (3, H, W), normalised with ImageNet statistics, back to an (H, W, 3) uint8 image
    in the same channel order (RGB for the library's pipeline)."""
    x = np.asarray(chw, np.float32).transpose(1, 2, 0) * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def draw_skeleton(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    metainfo: PoseMetaInfo | str,
    kpt_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
    channel_order: str = "bgr",
    colour: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Draw people's keypoints and skeleton links on a copy of ``image``.

    Args:
        image: (H, W, 3) uint8 image (``channel_order``), or (H, W) grey.
        keypoints: (N, K, 2) pixel coordinates (a single (K, 2) person is accepted).
        scores: (N, K) confidences; a keypoint (and any link touching it) is drawn only when its score is
            at least ``kpt_thr``. ``None`` draws everything.
        metainfo: the keypoint definition (its ``skeleton``, ``keypoint_colors`` and ``link_colors``).
        kpt_thr: score threshold.
        radius, thickness: keypoint radius and link width in pixels (default: from the image size).
        channel_order: ``"bgr"`` or ``"rgb"``, the order of ``image`` and of the result.
        colour: one RGB colour for every link and keypoint (a tracked person's), instead of the metainfo's.
    Returns:
        The (H, W, 3) uint8 image with anti-aliased drawings.
    """
    _check_order(channel_order)
    meta = get_metainfo(metainfo)
    canvas = _as_uint8_rgb3(image).copy()
    kpts = np.asarray(keypoints, np.float64)
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[-1] < 2 or kpts.shape[1] != meta.num_keypoints:
        raise ValueError(f"keypoints must be (N, {meta.num_keypoints}, 2), got {np.shape(keypoints)}")
    if scores is not None and np.size(scores) != kpts.shape[0] * kpts.shape[1]:  # was numpy's reshape message
        raise ValueError(f"scores must be (N, {meta.num_keypoints}) for keypoints {tuple(kpts.shape)}, got "
                         f"{np.shape(scores)}")
    sc = np.ones(kpts.shape[:2]) if scores is None else np.asarray(scores, np.float64).reshape(kpts.shape[:2])
    h, w = canvas.shape[:2]
    unit = max(1.0, min(h, w) / 160.0)
    radius = int(radius if radius is not None else max(2, round(2 * unit)))
    thickness = int(thickness if thickness is not None else max(1, round(1.5 * unit)))
    shift = 4  # sub-pixel precision for cv2's anti-aliased primitives
    mult = 1 << shift
    kcol = [_colour(c, channel_order) for c in meta.keypoint_colors]
    lcol = [_colour(c, channel_order) for c in meta.link_colors]
    if colour is not None:
        kcol = [_colour(colour, channel_order)] * len(kcol)
        lcol = [_colour(colour, channel_order)] * len(lcol)
    # Points far off the image (a wild prediction at 3e9 px) overflowed cv2's int coordinates: segments are clipped
    # to a box 4 image sizes around it, where nothing drawn is visible; nearer ones are drawn as given. Beyond 1e12
    # px a point is left out (with its links): there the clipping would round off the image's scale
    pad = radius + thickness + 2 + 4 * max(h, w)
    lo, hi = np.array([-pad, -pad], np.float64), np.array([w + pad, h + pad], np.float64)

    def fixed(p: np.ndarray) -> tuple[int, int]:  # cv2's sub-pixel integers (bounded: p lies within lo..hi)
        return int(round(p[0] * mult)), int(round(p[1] * mult))

    for person, conf in zip(kpts, sc):
        pts = person[:, :2]
        ok = (np.abs(pts) <= 1e12).all(axis=1) & (conf >= kpt_thr)  # finite, and clipped within 1e-4 px beyond
        near = ok & (pts >= lo).all(axis=1) & (pts <= hi).all(axis=1)
        ints = np.round(np.where(near[:, None], pts, 0.0) * mult).astype(np.int64).tolist()  # cv2's sub-pixel ints
        for (a, b), col in zip(meta.skeleton, lcol):
            if near[a] and near[b]:
                cv2.line(canvas, ints[a], ints[b], col, thickness, cv2.LINE_AA, shift)
            elif ok[a] and ok[b] and (seg := _clip_segment(pts[a], pts[b], lo, hi)) is not None:
                cv2.line(canvas, fixed(seg[0]), fixed(seg[1]), col, thickness, cv2.LINE_AA, shift)
        for k in np.flatnonzero(near):
            cv2.circle(canvas, ints[k], radius * mult, kcol[k], -1, cv2.LINE_AA, shift)
            cv2.circle(canvas, ints[k], radius * mult, (255, 255, 255), 1, cv2.LINE_AA, shift)
    return canvas


def _clip_segment(p: np.ndarray, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the segment ``p``-``q`` inside the box ``lo``..``hi`` (Liang-Barsky), or None when none is."""
    d = q - p
    t0, t1 = 0.0, 1.0
    for i in range(2):
        for num, den in ((p[i] - lo[i], -d[i]), (hi[i] - p[i], d[i])):  # inside: den * t <= num
            if den == 0:
                if num < 0:
                    return None
            elif den > 0:
                t1 = min(t1, num / den)
            else:
                t0 = max(t0, num / den)
    if t0 > t1:
        return None
    return (p if t0 == 0 else p + t0 * d), (q if t1 == 1 else p + t1 * d)  # an end inside stays as it was


def _patch_box(pid: int, grid: tuple[int, int], size_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    gh, gw = grid
    h, w = size_hw
    r, c = divmod(int(pid), gw)
    return (round(c * w / gw), round(r * h / gh), round((c + 1) * w / gw), round((r + 1) * h / gh))


def draw_kept_tokens(
    crop: np.ndarray,
    patch_grid: tuple[int, int],
    kept_patch_ids: Sequence[np.ndarray],
    layer_names: Sequence[str] | None = None,
    scale: int = 2,
    dim: float = 0.3,
    outline: bool = False,
    grid_colour: tuple[int, int, int] = (255, 255, 255),
    pad: int = 4,
    caption: bool = True,
) -> np.ndarray:
    """PPT's kept-token figure for one example, as one row of panels.

    The first panel is the input crop; panel ``i + 1`` shows the crop with the patches kept after
    pruning layer ``i`` as they are and the pruned ones dimmed and greyed.

    Args:
        crop: (H, W, 3) uint8 model input crop (any channel order; returned in the same order).
        patch_grid: (rows, cols) of visual tokens; patch ``p`` covers row ``p // cols``, column ``p % cols``.
        kept_patch_ids: one 1-D array of original patch ids per pruning layer (e.g. ``pruned[i].patch_idx[b]``).
        layer_names: captions of the pruned panels (default ``"prune 1"``, ``"prune 2"``, ...).
        scale: integer upscaling of every panel (model crops are small).
        dim: brightness factor of pruned patches (0 black, 1 unchanged).
        outline: also outline every kept patch, in ``grid_colour`` (the image's channel order).
        pad: white gap between panels, pixels.
        caption: write a caption (token count) under every panel.
    Returns:
        (H * scale [+ caption band], n_panels * W * scale + gaps, 3) uint8 image.
    """
    base = _as_uint8_rgb3(crop)
    if scale > 1:
        base = cv2.resize(base, (base.shape[1] * scale, base.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    gh, gw = (int(v) for v in patch_grid)
    n = gh * gw
    h, w = base.shape[:2]
    names = list(layer_names) if layer_names is not None else [f"prune {i + 1}" for i in range(len(kept_patch_ids))]
    if len(names) != len(kept_patch_ids):
        raise ValueError(f"{len(names)} layer names for {len(kept_patch_ids)} pruning layers")
    panels = [put_caption(base, f"input ({n} tokens)") if caption else base]
    grey = base.astype(np.float32).mean(axis=2, keepdims=True)
    dimmed = ((0.5 * base + 0.5 * grey) * dim + 255.0 * 0.1 * (1 - dim)).clip(0, 255).astype(np.uint8)
    for ids, name in zip(kept_patch_ids, names):
        ids = np.asarray(ids).reshape(-1).astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"patch ids must be in [0, {n}), got range [{ids.min()}, {ids.max()}]")
        mask = np.zeros((gh, gw), bool)
        mask.flat[ids] = True
        full = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        panel = np.where(full[..., None], base, dimmed)
        for pid in ids if outline else ():
            x0, y0, x1, y1 = _patch_box(int(pid), (gh, gw), (h, w))
            cv2.rectangle(panel, (x0, y0), (x1 - 1, y1 - 1), grid_colour, 1, cv2.LINE_4)
        panels.append(put_caption(panel, f"{name}: {ids.size}") if caption else panel)
    return tile_images(panels, cols=len(panels), pad=pad)


def put_caption(image: np.ndarray, text: str, height: int = 18,
                colour: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """``image`` with a white band of ``height`` pixels below it holding ``text`` (anti-aliased)."""
    img = _as_uint8_rgb3(image)
    band = np.full((height, img.shape[1], 3), 255, np.uint8)
    font_scale = 0.4 * height / 18
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    while tw > img.shape[1] - 4 and font_scale > 0.2:
        font_scale *= 0.9
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    cv2.putText(band, text, (max(2, (img.shape[1] - tw) // 2), int(height * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, colour, 1, cv2.LINE_AA)
    return np.concatenate([img, band], axis=0)


def tile_images(images: Sequence[np.ndarray], cols: int, pad: int = 4, background: int = 255) -> np.ndarray:
    """Tile (H, W, 3) uint8 images row-major into a grid with ``pad`` pixels between cells.

    Cells are as large as the largest image; smaller images sit at the cell's top-left.
    """
    if not images:
        raise ValueError("tile_images needs at least one image")
    imgs = [_as_uint8_rgb3(i) for i in images]
    cols = max(1, min(int(cols), len(imgs)))
    rows = -(-len(imgs) // cols)
    ch = max(i.shape[0] for i in imgs)
    cw = max(i.shape[1] for i in imgs)
    out = np.full((rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad, 3), background, np.uint8)
    for k, img in enumerate(imgs):
        r, c = divmod(k, cols)
        y, x = r * (ch + pad), c * (cw + pad)
        out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out
