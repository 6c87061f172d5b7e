"""Pipeline parity of targets, target weights and test-time decoding (fixtures ``target_weight_rules``,
``decode_tokenpose``, ``decode_gtpt``; spec §1.5-1.6).

Every codec is :func:`posetokens.protocols.codec.build_codec` of the method's protocol, with the sizes, sigmas and
flip pairs read from the fixture. The ``run_*`` functions take the protocol as an argument so that tests can plant a
wrong rule (``protocol.replace(...)``) and see the report fail.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from posetokens.codecs import HeatmapCodec, SimCCCodec, flip_indices_from_pairs
from posetokens.codecs.utils import dark_derivatives, get_heatmap_maximum
from posetokens.parity import Comparison
from posetokens.parity.pipeline import load_arrays, max_abs, mismatches, register_pipeline_handler
from posetokens.protocols import Protocol, get_protocol
from posetokens.protocols.codec import build_codec, flip_merge, keypoints_to_image

__all__ = ["near_singular_dark", "run_decode", "run_target_weight_rules"]

NEAR_SINGULAR_COND = 100.0  # a DARK Hessian with |lambda_max / lambda_min| above this counts as near-singular


# ------------------------------------------------------------------------------------------- helpers
def _need(arrays: dict[str, np.ndarray], key: str, path: Path, ndim: int | None = None) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"{path}: missing array {key!r} (has {sorted(arrays)})")
    a = arrays[key]
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{path}: array {key!r} must have {ndim} dims, got shape {a.shape}")
    return a


def _number(text: str, pattern: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def _size_wh(text: str, pattern: str) -> tuple[int, int] | None:
    m = re.search(pattern, text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _setting(protocol: Protocol, rule_values: dict[str, Any]) -> Protocol:
    """``protocol`` with the target values the fixture states (a fixture made with other sigmas or splits)."""
    changes = {k: v for k, v in rule_values.items() if v is not None and getattr(protocol.target, k) != v}
    return protocol.replace({"target": changes}) if changes else protocol


def _flip_indices(config: dict[str, Any], k: int, where: str) -> list[int]:
    pairs = config.get("flip_pairs")
    if not isinstance(pairs, list):
        raise ValueError(f"{where}: official_config.flip_pairs must be a list of [left, right] pairs, got {pairs!r}")
    return flip_indices_from_pairs(pairs, k)


def _config_size(config: dict[str, Any], key: str, where: str) -> tuple[int, int]:
    v = config.get(key)
    if not (isinstance(v, list) and len(v) == 2):
        raise ValueError(f"{where}: official_config.{key} must be [w, h], got {v!r}")
    return int(v[0]), int(v[1])


# ------------------------------------------------------------------------------- target_weight_rules
def run_target_weight_rules(folder: Path, spec: dict[str, Any], protocols: dict[str, Protocol]) -> list[Comparison]:
    """Weights (exact) and targets (1e-5 where the weight is 1) of the TokenPose, GTPT SimCC and MSRA builders.

    ``protocols`` maps ``tokenpose``, ``gtpt_simcc`` and ``msra`` to the protocol whose codec plays that builder.
    """
    inp_path, out_path = folder / "inputs.npz", folder / "outputs.npz"
    inp, out = load_arrays(inp_path), load_arrays(out_path)
    funcs = spec.get("official_functions") or {}
    if not isinstance(funcs, dict):
        raise ValueError(f"{folder / 'inputs.json'}: official_functions must be an object")
    hm_joints = _need(inp, "heatmap_joints", inp_path, 3)
    in_joints = _need(inp, "input_joints", inp_path, 3)
    vis = _need(inp, "visible", inp_path, 2)
    comps: list[Comparison] = []

    # TokenPose generate_target: joints given in heatmap px; full-grid Gaussian, int() box in map px.
    tp_w = _need(out, "tokenpose_weight", out_path, 2)
    tp_t = _need(out, "tokenpose_target_first4", out_path, 4)
    hh, hw = tp_t.shape[-2:]
    text = str(funcs.get("tokenpose", ""))
    if (stated := _size_wh(text, r"heatmap\s+(\d+)x(\d+)")) is not None and stated != (hw, hh):
        raise ValueError(f"{folder / 'inputs.json'}: official_functions.tokenpose says heatmap {stated}, "
                         f"tokenpose_target_first4 is {(hw, hh)}")
    proto = _setting(protocols["tokenpose"], {"sigma": _number(text, r"SIGMA\s+([\d.]+)")})
    # the input size only matters for the input<->heatmap mapping, which these heatmap-px joints skip
    codec = build_codec(proto, (4 * hh, 4 * hw), (hh, hw))
    assert isinstance(codec, HeatmapCodec)
    enc = codec.encode_heatmap_px(hm_joints, vis)
    comps += _weights_and_targets("tokenpose", enc["keypoint_weights"], tp_w,
                                  [(enc["heatmaps"], tp_t, "target_first4")])

    # GTPT generate_sa_simdr: input-px joints; labels over int(W*split) bins; int() box in INPUT px, r = 3 sigma(bins)
    sx, sy = _need(out, "gtpt_simcc_x", out_path, 3), _need(out, "gtpt_simcc_y", out_path, 3)
    text = str(funcs.get("gtpt_simcc", ""))
    split = _number(text, r"SPLIT_RATIO\s+([\d.]+)") or protocols["gtpt_simcc"].target.simcc_split
    in_wh = _size_wh(text, r"IMAGE_SIZE\s+(\d+)x(\d+)") or (int(round(sx.shape[-1] / split)),
                                                          int(round(sy.shape[-1] / split)))
    proto = _setting(protocols["gtpt_simcc"], {"simcc_split": split, "simcc_sigma": _number(text, r"SIGMA\s+([\d.]+)")})
    codec = build_codec(proto, (in_wh[1], in_wh[0]))
    assert isinstance(codec, SimCCCodec)
    if codec.num_bins != (sx.shape[-1], sy.shape[-1]):
        raise ValueError(f"{out_path}: gtpt_simcc_x/y have {sx.shape[-1]}/{sy.shape[-1]} bins, but input "
                         f"{in_wh} at split {split} gives {codec.num_bins}")
    enc = codec.encode(in_joints, vis)
    comps += _weights_and_targets("gtpt_simcc", enc["keypoint_weights"], _need(out, "gtpt_simcc_weight", out_path, 2),
                                  [(enc["keypoint_x_labels"], sx, "x"), (enc["keypoint_y_labels"], sy, "y")])

    # HRNet/MSRA generate_target: input-px joints / feat_stride, int(mu + 0.5), 13x13 integer-centred patch
    ms_t = _need(out, "msra_target_first4", out_path, 4)
    text = str(funcs.get("msra", ""))
    mh, mw = ms_t.shape[-2:]
    if (stated := _size_wh(text, r"heatmap\s+(\d+)x(\d+)")) is not None and stated != (mw, mh):
        raise ValueError(f"{folder / 'inputs.json'}: official_functions.msra says heatmap {stated}, "
                         f"msra_target_first4 is {(mw, mh)}")
    ms_in = _size_wh(text, r"IMAGE_SIZE\s+(\d+)x(\d+)") or in_wh  # the same input_joints as the SimCC builder
    proto = _setting(protocols["msra"], {"sigma": _number(text, r"SIGMA\s+([\d.]+)")})
    codec = build_codec(proto, (ms_in[1], ms_in[0]), (mh, mw))
    enc = codec.encode(in_joints, vis)
    comps += _weights_and_targets("msra", enc["keypoint_weights"], _need(out, "msra_weight", out_path, 2),
                                  [(enc["heatmaps"], ms_t, "target_first4")])
    return comps


def _weights_and_targets(name: str, weights: np.ndarray, official_w: np.ndarray,
                         targets: list[tuple[np.ndarray, np.ndarray, str]]) -> list[Comparison]:
    # README "Tolerance": "Weights: exact." / "Targets: 1e-5 where the weight is 1."
    comps = [Comparison(f"{name}_weight", mismatches(weights, official_w.astype(weights.dtype), f"{name}_weight"),
                        0.0, "mismatched_elements")]
    for ours, official, tname in targets:
        n = official.shape[0]
        keep = official_w[:n] == 1
        comps.append(Comparison(f"{name}_{tname}", max_abs(ours[:n][keep], official[keep], f"{name}_{tname}"), 1e-5))
    return comps


@register_pipeline_handler("target_weight_rules", "all")
def _target_weight_rules(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    """TokenPose and GTPT with their own protocols; MSRA (GTPT heatmap baselines, multi-view PPT) with the
    ``multiview_ppt`` protocol, whose target rule is HRNet's."""
    return run_target_weight_rules(folder, spec, {"tokenpose": get_protocol("tokenpose"),
                                                  "gtpt_simcc": get_protocol("gtpt"),
                                                  "msra": get_protocol("multiview_ppt")})


# --------------------------------------------------------------------------------------------- decode
def near_singular_dark(heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """(N, K) bool: joints whose DARK Taylor step runs (inside the border, nonzero determinant) on a Hessian with
    condition number above :data:`NEAR_SINGULAR_COND`, where float32-vs-float64 blur differences are amplified
    (the README's 1e-2 px band)."""
    hm = np.asarray(heatmaps, np.float64)
    locs, vals = get_heatmap_maximum(hm)
    locs[vals <= 0] = 0.0
    d = dark_derivatives(locs, hm, blur_kernel_size)
    hxx, hyy, hxy = d["hxx"], d["hyy"], d["hxy"]
    det = hxx * hyy - hxy**2
    mean, root = 0.5 * (hxx + hyy), np.sqrt(0.25 * (hxx - hyy) ** 2 + hxy**2)
    lam_max, lam_min = np.abs(mean) + root, np.abs(np.abs(mean) - root)
    return d["inside"] & (det != 0) & (lam_max > NEAR_SINGULAR_COND * lam_min)


def run_decode(folder: Path, spec: dict[str, Any], protocol: Protocol) -> list[Comparison]:
    """The official flip test + decoding + mapping to the image, through ``protocol``'s codec and warp."""
    inp_path, out_path, js = folder / "inputs.npz", folder / "outputs.npz", folder / "inputs.json"
    inp, out = load_arrays(inp_path), load_arrays(out_path)
    config = spec.get("official_config")
    if not isinstance(config, dict):
        raise ValueError(f"{js}: expected an 'official_config' object")
    iw, ih = _config_size(config, "IMAGE_SIZE", str(js))
    # settings the official run states win over the protocol's defaults (a fixture made with other values)
    if isinstance(config.get("SIMDR_SPLIT_RATIO"), (int, float)):
        protocol = _setting(protocol, {"simcc_split": float(config["SIMDR_SPLIT_RATIO"])})
    if isinstance(config.get("BLUR_KERNEL"), int) and config["BLUR_KERNEL"] != protocol.test.blur_kernel:
        protocol = protocol.replace({"test": {"blur_kernel": int(config["BLUR_KERNEL"])}})
    center = _need(inp, "center", inp_path, 2)
    scale_px = _need(inp, "scale", inp_path, 2).astype(np.float64) * 200.0  # official /200 units
    flip_test = bool(config.get("FLIP_TEST", protocol.test.flip_test)) and protocol.test.flip_test
    comps: list[Comparison] = []
    loose = None  # joints held to the README's looser band

    if protocol.target.codec == "heatmap":
        hm = _need(inp, "heatmaps", inp_path, 4)
        hw, hh = _config_size(config, "HEATMAP_SIZE", str(js)) if "HEATMAP_SIZE" in config else hm.shape[:-3:-1]
        codec = build_codec(protocol, (ih, iw), (hh, hw))
        merged = hm
        if flip_test:
            flip = _flip_indices(config, hm.shape[1], str(js))
            merged = flip_merge(protocol.test, hm, _need(inp, "heatmaps_flipped", inp_path, 4), flip)
            # README "Tolerance": "heatmaps_averaged: 1e-6"
            official_avg = _need(out, "heatmaps_averaged", out_path, 4)
            comps.append(Comparison("heatmaps_averaged", max_abs(merged, official_avg, "heatmaps_averaged"), 1e-6))
        crop, scores = codec.decode(merged)
        if codec.decode_mode == "dark":
            loose = near_singular_dark(merged, codec.blur_kernel_size)
        # README: "maxvals: 1e-6"
        comps.append(Comparison("maxvals", max_abs(scores, _need(out, "maxvals", out_path, 2), "maxvals"), 1e-6))
    elif protocol.target.codec == "simcc":
        x, y = _need(inp, "simcc_x", inp_path, 3), _need(inp, "simcc_y", inp_path, 3)
        codec = build_codec(protocol, (ih, iw))
        merged = (x, y)
        if flip_test:
            flip = _flip_indices(config, x.shape[1], str(js))
            merged = flip_merge(protocol.test, merged, (_need(inp, "simcc_x_flipped", inp_path, 3),
                                                        _need(inp, "simcc_y_flipped", inp_path, 3)), flip)
        crop, scores = codec.decode(merged)
        # README "Tolerance": "crop_coords: exact (argmax)." / "scores: 1e-6."
        comps.append(Comparison("crop_coords", mismatches(crop, _need(out, "crop_coords", out_path, 3).astype(crop.dtype),
                                                          "crop_coords"), 0.0, "mismatched_elements"))
        comps.append(Comparison("scores", max_abs(scores, _need(out, "scores", out_path, 2), "scores"), 1e-6))
    else:
        raise ValueError(f"{js}: protocol {protocol.name!r} has target.codec {protocol.target.codec!r}; "
                         f"decode fixtures cover heatmap and simcc")

    preds = keypoints_to_image(crop, center, scale_px, (ih, iw), protocol)
    official = _need(out, "preds", out_path, 3)
    if preds.shape != official.shape:
        raise ValueError(f"{out_path}: preds has shape {official.shape}, ours {preds.shape}")
    # README "Tolerance": "preds: 1e-3 px" and, TokenPose, "(1e-2 px where the Taylor step runs on a
    # near-singular Hessian)"
    loose = np.zeros(preds.shape[:2], bool) if loose is None else loose
    comps.append(Comparison("preds_px", max_abs(preds[~loose], official[~loose], "preds"), 1e-3))
    if loose.any():
        comps.append(Comparison("preds_px_near_singular_hessian", max_abs(preds[loose], official[loose], "preds"), 1e-2))
    return comps


@register_pipeline_handler("decode", "tokenpose", "gtpt")
def _decode(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    """``decode`` fixtures of TokenPose/PPT (flip without shift, DARK, size-1 inverse) and GTPT (one-bin
    shift, logit average, softmax, standard inverse), each through its own protocol."""
    return run_decode(folder, spec, get_protocol(str(spec["method"])))
