"""Protocol codecs against the official pipeline fixtures (target_weight_rules, decode_tokenpose, decode_gtpt),
planted-bug checks, and hand-computed cases of the rules in spec §1.3, §1.5, §1.6."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PARITY
from posetokens.codecs import HeatmapCodec, SimCCCodec
from posetokens.parity import run_parity
from posetokens.parity import pipeline_codec as pc
from posetokens.protocols import TestRule as _TestRule, get_protocol
from posetokens.protocols.codec import build_codec, flip_merge, keypoints_to_image

PIPE = PARITY / "pipeline"


def _fixture(name: str) -> tuple[Path, dict]:
    folder = PIPE / name
    assert (folder / "inputs.json").is_file(), f"pipeline fixture folder {folder} is missing (inputs.json)"
    return folder, json.loads((folder / "inputs.json").read_text())


def _failed(comps) -> set[str]:
    return {c.name for c in comps if not c.ok}


# ------------------------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("name", ["target_weight_rules", "decode_tokenpose", "decode_gtpt"])
def test_fixture_passes(name: str) -> None:
    folder, _ = _fixture(name)
    report = run_parity(folder)
    assert report.passed, report.table()


def _twr(tokenpose=None, gtpt=None, msra=None):
    folder, spec = _fixture("target_weight_rules")
    return pc.run_target_weight_rules(folder, spec, {"tokenpose": tokenpose or get_protocol("tokenpose"),
                                                     "gtpt_simcc": gtpt or get_protocol("gtpt"),
                                                     "msra": msra or get_protocol("multiview_ppt")})


def test_planted_floor_rule_fails_target_weight_rules() -> None:
    """The rounding rule floor(mu + 0.5) in place of int() truncation (spec §1.5) changes TokenPose weights."""
    assert not _failed(_twr())
    bad = get_protocol("tokenpose").replace({"target": {"weight_rule": "floor_box"}})
    assert "tokenpose_weight" in _failed(_twr(tokenpose=bad))


@pytest.mark.parametrize("rule", ["floor_box", "int_box"])  # the box tested in bins (float / int()) instead of px
def test_planted_bin_weight_check_fails_simcc(rule: str) -> None:
    bad = get_protocol("gtpt").replace({"target": {"weight_rule": rule}})
    assert "gtpt_simcc_weight" in _failed(_twr(gtpt=bad))


def test_planted_rounded_msra_centre_fails() -> None:
    """MSRA centres on int(x/stride + 0.5) (toward zero), not floor: the floor rule moves edge targets."""
    bad = get_protocol("multiview_ppt").replace({"target": {"weight_rule": "floor_box"}})
    assert "msra_target_first4" in _failed(_twr(msra=bad))


def test_planted_per_axis_mapping_fails_decode_tokenpose() -> None:
    """MMPose UDP's per-axis 63/255 y ratio in place of TokenPose's 47/191 on both axes (spec §1.3)."""
    folder, spec = _fixture("decode_tokenpose")
    bad = get_protocol("tokenpose").replace({"target": {"heatmap_mapping": "per_axis_size_minus_one"}})
    assert "preds_px" in _failed(pc.run_decode(folder, spec, bad))


@pytest.mark.parametrize("name", ["decode_tokenpose", "decode_gtpt"])
def test_planted_flip_without_flipping_back_fails(name: str, monkeypatch) -> None:
    """Averaging the mirrored crop's output as returned (no flip back) must fail on values."""
    folder, spec = _fixture(name)

    def no_flip_back(rule, outputs, flipped, flip_indices):
        if isinstance(outputs, tuple):
            return (outputs[0] + flipped[0]) * 0.5, (outputs[1] + flipped[1]) * 0.5
        return (outputs + flipped) * 0.5

    monkeypatch.setattr(pc, "flip_merge", no_flip_back)
    failed = _failed(pc.run_decode(folder, spec, get_protocol(spec["method"])))
    assert "preds_px" in failed
    assert ("heatmaps_averaged" in failed) if name == "decode_tokenpose" else ("crop_coords" in failed)


def test_planted_flip_shift_fails_both_ways() -> None:
    folder, spec = _fixture("decode_gtpt")
    assert "crop_coords" in _failed(pc.run_decode(folder, spec, get_protocol("gtpt").replace({"test": {"flip_shift": False}})))
    folder, spec = _fixture("decode_tokenpose")
    assert "heatmaps_averaged" in _failed(pc.run_decode(folder, spec, get_protocol("tokenpose").replace({"test": {"flip_shift": True}})))


# ------------------------------------------------------------------------------ hand-computed flip test
FLIP = [0, 2, 1]  # joints 1 and 2 are a left/right pair


def test_flip_merge_heatmap_values_by_hand() -> None:
    a = np.array([[[[1, 2, 3]], [[4, 5, 6]], [[7, 8, 9]]]], np.float32)  # (1, 3, 1, 3)
    b = np.array([[[[10, 20, 30]], [[40, 50, 60]], [[70, 80, 90]]]], np.float32)  # mirrored crop's output
    tp = get_protocol("tokenpose")
    # no shift: out[k] = (a[k] + reversed(b[partner(k)])) / 2
    want = np.array([[[[15.5, 11, 6.5]], [[47, 42.5, 38]], [[33.5, 29, 24.5]]]], np.float32)
    got = flip_merge(tp.test, a, b, FLIP)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(flip_merge(tp.test, torch.from_numpy(a), torch.from_numpy(b), FLIP).numpy(), want)
    codec = build_codec(tp, (8, 12), (2, 3))
    np.testing.assert_array_equal(codec.merge_flip(a, b, FLIP), want)  # the codec's merge is the same rule
    # HRNet SHIFT_HEATMAP: flipped back then moved one pixel right, column 0 kept: [30, 20, 10] -> [30, 30, 20]
    shifted = flip_merge(_TestRule(flip_shift=True), a, b, FLIP)
    np.testing.assert_array_equal(shifted[0, 0, 0], [15.5, 16, 11.5])


def test_mmpose_flip_test_geometry_by_hand() -> None:
    """MMPose 1.x's MSRA/DARK heatmap configs flip-test with ``shift_heatmap=True`` (pipeline.md section 8;
    td-hm_hrnet-w32_dark-8xb64-210e_coco-256x192.py). By hand, for its stride mapping (crop x -> x / 4) on a
    192-wide crop: the mirrored crop puts a joint at 191 - x, so its map peaks at (191 - x) / 4; reversed over the
    48 columns that is x / 4 - 0.75, and the one-pixel right shift makes it x / 4 + 0.25. The average of that and
    x / 4 peaks at x / 4 + 0.125 heatmap px: +0.5 crop px (without the shift, -1.5). The network here is ideal:
    its outputs are the codec's own targets for the crop and its mirror image."""
    codec = build_codec(get_protocol("mmpose"), (256, 192), (64, 48))
    kps = np.array([[[90.0, 120.0], [60.0, 100.0], [130.0, 140.0]]])  # joints 1 and 2 are a left/right pair
    mirror = kps[:, FLIP].copy()
    mirror[..., 0] = 191 - mirror[..., 0]
    out, out_mirror = codec.encode(kps)["heatmaps"], codec.encode(mirror)["heatmaps"]
    np.testing.assert_allclose(codec.decode(out)[0], kps, atol=0.01)  # DARK on an ideal map is exact
    got = codec.decode(codec.merge_flip(out, out_mirror, FLIP))[0]
    np.testing.assert_allclose(got - kps, np.broadcast_to([0.5, 0.0], kps.shape), atol=0.01)


def test_flip_merge_simcc_values_by_hand() -> None:
    gt = get_protocol("gtpt")
    ax = np.array([[[0, 1, 2, 3], [4, 5, 6, 7], [0, 0, 0, 0]]], np.float32)
    bx = np.array([[[10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]]], np.float32)
    ay = np.zeros((1, 3, 4), np.float32)
    by = np.array([[[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 4, 0]]], np.float32)
    mx, my = flip_merge(gt.test, (ax, ay), (bx, by), FLIP)
    # joint 0: reversed [13, 12, 11, 10], one-bin left shift (last bin kept) [12, 11, 10, 10]
    np.testing.assert_array_equal(mx[0, 0], [6, 6, 6, 6.5])
    # joint 1 takes joint 2's reversed logits [33, 32, 31, 30] -> [32, 31, 30, 30]
    np.testing.assert_array_equal(mx[0, 1], [18, 18, 18, 18.5])
    np.testing.assert_array_equal(my[0], [[0.5, 0, 0, 0], [0, 0, 2, 0], [0, 1, 0, 0]])  # y: swapped, not reversed
    # decode: softmax of the AVERAGED logits, argmax / split, score = min of the two peaks
    codec = build_codec(gt, (2, 2))  # 4 bins per axis at split 2
    kps, scores = codec.decode((mx, my))
    np.testing.assert_allclose(kps[0, 0], [1.5, 0.0])
    peak_x = math.exp(0.5) / (3 + math.exp(0.5))
    peak_y = math.exp(0.5) / (3 + math.exp(0.5))
    assert scores[0, 0] == pytest.approx(min(peak_x, peak_y), rel=1e-6)
    peak_y1 = math.exp(2) / (3 + math.exp(2))  # joint 1: y logits [0, 0, 2, 0]
    assert scores[0, 1] == pytest.approx(min(peak_x, peak_y1), rel=1e-6)
    cx, cy = codec.merge_flip((ax, ay), (bx, by), FLIP)
    np.testing.assert_array_equal(cx, mx)
    np.testing.assert_array_equal(cy, my)


# ----------------------------------------------------------------------------- hand-computed rules
def test_tokenpose_int_box_weights_and_full_gaussian() -> None:
    """int() toward zero: weight 1 iff mu in (-8, 54) x (-8, 70) heatmap px for sigma 2 on 48x64."""
    codec = build_codec(get_protocol("tokenpose"), (256, 192), (64, 48))
    mu = np.array([[[-8.0, 30], [-7.99, 30], [-7.6, 30], [53.99, 30], [54.0, 30],
                    [20, -8.0], [20, -7.99], [20, 69.99], [20, 70.0]]])
    enc = codec.encode_heatmap_px(mu)
    np.testing.assert_array_equal(enc["keypoint_weights"][0], [0, 1, 1, 1, 0, 0, 1, 1, 0])
    # the Gaussian is drawn on the whole grid even with its centre off the map
    hm = enc["heatmaps"][0, 1]
    assert hm[30, 0] == pytest.approx(math.exp(-(7.99**2) / 8), rel=1e-5)
    floor = HeatmapCodec((192, 256), (48, 64), 2.0, unbiased=True, weight_rule="floor_box")
    assert floor.encode_heatmap_px(mu)["keypoint_weights"][0, 2] == 0  # [-7.5, 53.5) under floor(mu + 0.5)


def test_isotropic_heatmap_mapping_by_hand() -> None:
    """TokenPose 192x256 -> 48x64: x_h = x 47/191, y_h = (y - 127.5) 47/191 + 31.5 (spec §1.3)."""
    codec = build_codec(get_protocol("tokenpose"), (256, 192), (64, 48))
    pts = np.array([[0.0, 0.0], [191.0, 255.0], [100.0, 40.0]])
    want = np.stack([pts[:, 0] * 47 / 191, (pts[:, 1] - 127.5) * 47 / 191 + 31.5], -1)
    np.testing.assert_allclose(codec.input_to_heatmap(pts), want, atol=1e-12)
    np.testing.assert_allclose(codec.heatmap_to_input(want), pts, atol=1e-12)
    # heatmap -> input -> image is the official inverse size-1 heatmap affine
    c, sw = np.array([[300.0, 200.0]]), 180.0
    hm_pts = np.array([[[10.0, 20.0], [47.0, 0.0]]])
    img = keypoints_to_image(codec.heatmap_to_input(hm_pts), c, np.array([[sw, sw * 4 / 3]]), (256, 192),
                             get_protocol("tokenpose"))
    want = np.stack([c[0, 0] + (hm_pts[..., 0] - 23.5) * (sw - 1) / 47,
                     c[0, 1] + (hm_pts[..., 1] - 31.5) * (sw - 1) / 47], -1)
    np.testing.assert_allclose(img, want, atol=1e-9)
    # GTPT's standard inverse: c + (x - W/2) sw / W on both axes
    img = keypoints_to_image(np.array([[[40.0, 200.0]]]), c, np.array([[sw, sw * 4 / 3]]), (256, 192),
                             get_protocol("gtpt"))
    np.testing.assert_allclose(img[0, 0], [300 + (40 - 96) * sw / 192, 200 + (200 - 128) * sw / 192], atol=1e-9)
    # with a rotation r (HRNet get_affine_transform turns the source direction by r): image = c + R(r) (p - (W/2,
    # H/2)) sw / W, R(r) = [[cos r, -sin r], [sin r, cos r]]; at r = 90 the crop's (96, 64), 64 px above its
    # centre, lands 64 px right of the box centre (c = (300, 200), sw = W = 192)
    pts = np.array([[[96.0, 64.0], [40.0, 200.0]]])
    img = keypoints_to_image(pts, c, np.array([[192.0, 256.0]]), (256, 192), get_protocol("gtpt"), rot=90.0)
    np.testing.assert_allclose(img[0, 0], [364.0, 200.0], atol=1e-9)
    r = math.radians(30.0)
    img = keypoints_to_image(pts, c, np.array([[sw, sw * 4 / 3]]), (256, 192), get_protocol("gtpt"), rot=30.0)
    d = (pts[0] - [96.0, 128.0]) * sw / 192
    want = c[0] + d @ np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]).T
    np.testing.assert_allclose(img[0], want, atol=1e-9)


def test_gtpt_simcc_weights_in_input_px_and_labels() -> None:
    """GTPT: int() box in INPUT px with r = 3 * 4 = 12: weight 1 iff x in (-14, 204), y in (-14, 268)."""
    codec = build_codec(get_protocol("gtpt"), (256, 192))
    assert isinstance(codec, SimCCCodec) and codec.num_bins == (384, 512)
    kps = np.array([[[-14.0, 100], [-13.99, 100], [-10.0, 100], [203.99, 100], [204.0, 100],
                     [50, -14.0], [50, 267.99], [50, 268.0], [10.3, 100]]])
    enc = codec.encode(kps)
    np.testing.assert_array_equal(enc["keypoint_weights"][0], [0, 1, 1, 1, 0, 0, 1, 0, 1])
    lab = enc["keypoint_x_labels"][0, 8]
    b = np.array([15, 20, 21, 30])  # exp(-(b - 20.6)^2 / 32) / (4 sqrt(2 pi)), centre 2 * 10.3 unrounded
    np.testing.assert_allclose(lab[b], np.exp(-((b - 20.6) ** 2) / 32) / (4 * math.sqrt(2 * math.pi)), rtol=1e-6)
    assert enc["keypoint_x_labels"][0, 4].max() == 0 and enc["keypoint_y_labels"][0, 7].max() == 0
    bins = SimCCCodec((192, 256), 2.0, 4.0, weight_rule="bins")  # the bin check drops x = -10 px (bin -20)
    assert bins.encode(kps)["keypoint_weights"][0, 2] == 0


def test_msra_truncated_centre_and_patch() -> None:
    """MSRA: mu = int(x/4 + 0.5) toward zero; 13x13 patch; weight 0 when the patch misses the map."""
    codec = build_codec(get_protocol("multiview_ppt"), (256, 192), (64, 48))
    kps = np.array([[[-3.0, 100.0], [213.9, 100], [214.0, 100], [-33.9, 100], [-34.0, 100], [41.0, 80.0]]])
    enc = codec.encode(kps)
    np.testing.assert_array_equal(enc["keypoint_weights"][0], [1, 1, 0, 1, 0, 1])
    hm = enc["heatmaps"][0]
    # x = -3 -> -0.75 + 0.5 = -0.25 -> int 0 (floor would give -1): the peak sits on column 0
    assert hm[0, 25, 0] == pytest.approx(1.0)
    # x = 41 -> 10.25 + 0.5 -> 10; y = 80 -> 20: integer centre, patch |d| <= 6
    assert hm[5, 20, 10] == pytest.approx(1.0) and hm[5, 20, 16] == pytest.approx(math.exp(-36 / 8), rel=1e-6)
    assert hm[5, 20, 17] == 0 and hm[5, 27, 10] == 0


def test_hrnet_decode_zeroes_nonpositive_maxima_and_quarter_rule() -> None:
    """get_max_preds zeroes coords where max <= 0; HRNet's quarter step needs 1 < x < w-1 (spec §1.6)."""
    codec = build_codec(get_protocol("multiview_ppt"), (256, 192), (64, 48))
    hm = np.zeros((1, 3, 64, 48), np.float32)
    hm[0, 0] = -1.0  # max <= 0
    hm[0, 1, 30, 1], hm[0, 1, 30, 2] = 1.0, 0.5  # x = 1: no quarter step under HRNet's rule
    hm[0, 2, 30, 10], hm[0, 2, 30, 11], hm[0, 2, 31, 10] = 1.0, 0.5, 0.2  # +0.25 x, +0.25 y
    kps, scores = codec.decode(hm)
    np.testing.assert_allclose(kps[0], [[0, 0], [4, 120], [41, 121]])
    np.testing.assert_allclose(scores[0], [-1, 1, 1])


def test_build_codec_rejects_mismatched_rules() -> None:
    with pytest.raises(ValueError, match="heatmap_size_hw"):
        build_codec(get_protocol("tokenpose"), (256, 192))
    with pytest.raises(ValueError, match="no top-down 2D codec"):
        build_codec(get_protocol("hot"), (256, 192))
    with pytest.raises(ValueError, match="int_box_input_px"):
        build_codec(get_protocol("gtpt").replace({"target": {"codec": "heatmap"}, "test": {"decode": "dark"}}),
                    (256, 192), (64, 48))


def test_near_singular_dark_flags_a_ridge_only() -> None:
    """The README's 1e-2 px band is for Taylor steps on near-singular Hessians: a long ridge (sigma_x 40,
    sigma_y 2) is flagged, a round Gaussian and a map too close to the border for DARK are not."""
    ys, xs = np.mgrid[0:64, 0:48]
    hm = np.zeros((1, 3, 64, 48))
    hm[0, 0] = np.exp(-((xs - 20.3) ** 2) / (2 * 40.0**2) - (ys - 30.2) ** 2 / 8)
    hm[0, 1] = np.exp(-((xs - 20.3) ** 2 + (ys - 30.2) ** 2) / 8)
    hm[0, 2] = np.exp(-((xs - 0.7) ** 2 + (ys - 30.2) ** 2) / 8)  # argmax at x = 1: no Taylor step
    np.testing.assert_array_equal(pc.near_singular_dark(hm, 11), [[True, False, False]])
