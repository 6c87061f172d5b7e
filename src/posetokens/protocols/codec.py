"""A protocol's targets, flip test and decoding as one codec: the only place a :class:`TargetRule` and a
:class:`TestRule` become a :class:`~posetokens.codecs.BaseKeypointCodec` (spec §1.5-1.6, §2-3, §9).

- :func:`build_codec` makes the codec; training (``encode``), testing, inference and export (``merge_flip`` +
  ``decode``) all take it from here.
- :func:`flip_merge` is the flip test's merge under a :class:`TestRule` (heatmaps: flip back, optional one-pixel
  shift, average; SimCC: flip back, optional one-bin x shift, average the LOGITS; the softmax is ``decode``'s).
- :func:`keypoints_to_image` maps decoded input-crop keypoints back to the image with the inverse of the
  protocol's input warp (``get_warp_matrix(..., protocol.warp, inv=True)``).

For TokenPose/PPT the codec's heatmap -> input step is the isotropic ``(w-1)/(W-1)`` mapping, so heatmap ->
input -> image is exactly the official inverse "size-1" heatmap affine
``x_img = c_x + (x_h - (w-1)/2)(sw-1)/(w-1)``, ``y_img = c_y + (y_h - (h-1)/2)(sw-1)/(w-1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posetokens.codecs import BaseKeypointCodec, CoordinateCodec, HeatmapCodec, SimCCCodec
from posetokens.codecs.utils import flip_heatmaps, flip_simcc
from posetokens.data.transforms import affine_keypoints, get_warp_matrix
from posetokens.protocols import Protocol, TestRule

__all__ = ["build_codec", "flip_merge", "keypoints_to_image"]

_HEATMAP_DECODES = {"dark": "dark", "argmax_quarter": "argmax_quarter"}


def _hw(size: Any, name: str, where: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} must be (h, w), got {size!r}") from None
    return h, w


def build_codec(protocol: Protocol, input_size_hw: Sequence[int],
                heatmap_size_hw: Sequence[int] | None = None) -> BaseKeypointCodec:
    """The codec of ``protocol`` for a model with input ``input_size_hw`` and (heatmap models) output
    ``heatmap_size_hw``, both ``(h, w)``.

    - ``target.codec == 'heatmap'``: :class:`HeatmapCodec` with ``target.sigma``, ``target.full_gaussian``,
      ``target.heatmap_mapping`` (encode AND decode), ``target.weight_rule``, ``test.decode`` (``dark`` /
      ``argmax_quarter``), ``test.blur_kernel`` and ``test.flip_shift``. ``test.decode_convention`` ``hrnet`` (every
      official protocol) zeroes the coordinates of a map whose maximum is <= 0 before refinement and use HRNet's quarter
      border (``1 < x < w-1``); MMPose 1.x sets them to -1.
    - ``'simcc'``: :class:`SimCCCodec` with ``target.simcc_split``, ``target.simcc_sigma`` (bins), normalised
      labels at the unrounded sub-bin centre, ``target.weight_rule`` (GTPT: ``int_box_input_px``), softmax-peak
      scores when ``test.decode == 'simcc_softmax'`` and ``test.flip_shift``.
    - ``'coords'``: :class:`CoordinateCodec` (PCT: crop-pixel joints; the model flips and decodes itself).

    Raises ``ValueError`` for a protocol without a 2D codec (``'none'``: lifting) or a missing heatmap size.
    """
    where = f"build_codec(protocol {protocol.name!r})"
    ih, iw = _hw(input_size_hw, "input_size_hw", where)
    t, test = protocol.target, protocol.test
    if t.codec == "coords":
        return CoordinateCodec((iw, ih))
    if t.codec == "simcc":
        if t.weight_rule == "msra":
            raise ValueError(f"{where}: target.weight_rule 'msra' is a heatmap rule, not a SimCC one")
        return SimCCCodec((iw, ih), split_ratio=t.simcc_split, sigma=t.simcc_sigma, normalize=True,
                          round_labels=False, softmax_scores=test.decode == "simcc_softmax",
                          weight_rule=t.weight_rule, flip_shift=test.flip_shift)
    if t.codec != "heatmap":
        raise ValueError(f"{where}: target.codec {t.codec!r} has no top-down 2D codec")
    if heatmap_size_hw is None:
        raise ValueError(f"{where}: a heatmap codec needs the model's heatmap_size_hw")
    hh, hw = _hw(heatmap_size_hw, "heatmap_size_hw", where)
    if test.decode not in _HEATMAP_DECODES:
        raise ValueError(f"{where}: test.decode {test.decode!r} cannot decode heatmaps; "
                         f"expected one of {sorted(_HEATMAP_DECODES)}")
    if t.weight_rule == "int_box_input_px":
        raise ValueError(f"{where}: target.weight_rule 'int_box_input_px' is GTPT's SimCC rule, not a heatmap one")
    hrnet_era = test.decode_convention == "hrnet"
    return HeatmapCodec(
        input_size=(iw, ih), heatmap_size=(hw, hh), sigma=t.sigma, unbiased=t.full_gaussian,
        decode=_HEATMAP_DECODES[test.decode], blur_kernel_size=test.blur_kernel,
        mapping=t.heatmap_mapping, weight_rule=t.weight_rule,
        invalid="zero" if hrnet_era else "minus_one", quarter_rule="hrnet" if hrnet_era else "inside",
        flip_shift=test.flip_shift,
    )


def flip_merge(rule: TestRule | Protocol, outputs: Any, flipped_outputs: Any, flip_indices: Sequence[int]) -> Any:
    """Merge a crop's network output with the output on its mirror image (as the network returns it).

    Heatmaps (an array/tensor (N, K, H, W)): ``(a + flip_back(b)) * 0.5`` with ``flip_back`` reversing W and
    swapping pairs, plus HRNet's one-pixel right shift when ``rule.flip_shift``. SimCC (a ``(x, y)`` pair): the x
    bins reversed, pairs swapped on both axes, with ``rule.flip_shift`` the one-bin left shift
    ``x[..., :-1] = x[..., 1:]`` (last bin kept), then the LOGITS averaged per axis; softmax is left to ``decode``.
    numpy or torch; the dtype is kept (float32 model outputs average in float32, as the official code).
    Equals ``build_codec(protocol, ...).merge_flip(...)``.
    """
    rule = rule.test if isinstance(rule, Protocol) else rule
    if isinstance(outputs, (tuple, list)):
        x, y = outputs
        fx, fy = flip_simcc(flipped_outputs[0], flipped_outputs[1], flip_indices, shift=rule.flip_shift)
        return (x + fx) * 0.5, (y + fy) * 0.5
    return (outputs + flip_heatmaps(flipped_outputs, flip_indices, shift=rule.flip_shift)) * 0.5


def keypoints_to_image(keypoints: Any, center: Any, scale_px: Any, input_size_hw: Sequence[int],
                       protocol: Protocol, rot: Any = 0.0) -> np.ndarray:
    """Input-crop keypoints (N, K, 2) -> image pixels with the inverse of the protocol's input warp.

    ``center`` (N, 2) and ``scale_px`` (N, 2) are the boxes' centre and size in pixels (the official ``s * 200``);
    ``rot`` a scalar or (N,) degrees. Uses ``get_warp_matrix(c, s, rot, (W, H), protocol.warp, inv=True)``:
    ``standard`` is ``x_img = c_x + (x - W/2) sw/W``, ``size_minus_one`` ``c_x + (x - (W-1)/2)(sw-1)/(W-1)``
    (y with the same width-derived factor).
    """
    ih, iw = _hw(input_size_hw, "input_size_hw", "keypoints_to_image")
    kps = np.asarray(keypoints, np.float64)
    c = np.asarray(center, np.float64).reshape(-1, 2)
    s = np.asarray(scale_px, np.float64).reshape(-1, 2)
    if kps.ndim != 3 or kps.shape[-1] != 2 or len(c) != len(kps) or len(s) != len(kps):
        raise ValueError(f"keypoints_to_image: expected keypoints (N, K, 2) with center and scale_px (N, 2); got "
                         f"{kps.shape}, {c.shape}, {s.shape}")
    r = np.broadcast_to(np.asarray(rot, np.float64), (len(kps),))
    inv = np.stack([get_warp_matrix(c[i], s[i], float(r[i]), (iw, ih), protocol.warp, inv=True)
                    for i in range(len(kps))]) if len(kps) else np.zeros((0, 2, 3))
    return affine_keypoints(kps, inv)
