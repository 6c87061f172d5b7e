"""Codecs: round trips, hand-computed targets, weights, flips (numpy and torch)."""

import math

import cv2
import numpy as np
import pytest
import torch

from posetokens.codecs import (
    HeatmapCodec,
    SimCCCodec,
    flip_heatmaps,
    flip_keypoints,
    flip_simcc,
    gaussian_blur_keep_max,
)
from posetokens.data.metainfo import COCO

IN, HM = (192, 256), (48, 64)


def _points(rng, n=3, k=17, margin=24.0, size=IN):
    """Random sub-pixel points at least `margin` input px from the border."""
    x = rng.uniform(margin, size[0] - 1 - margin, (n, k))
    y = rng.uniform(margin, size[1] - 1 - margin, (n, k))
    return np.stack([x, y], axis=-1)


@pytest.mark.parametrize("unbiased,udp", [(True, False), (True, True), (False, True)],
                         ids=["msra-unbiased+dark", "udp-unbiased+dark", "udp-patch+dark"])
def test_heatmap_dark_round_trip(unbiased, udp):
    rng = np.random.default_rng(0)
    codec = HeatmapCodec(IN, HM, sigma=2.0, unbiased=unbiased, udp=udp, decode="dark")
    kps = _points(rng)
    enc = codec.encode(kps, np.ones(kps.shape[:2]))
    assert enc["heatmaps"].shape == (3, 17, 64, 48) and enc["heatmaps"].dtype == np.float32
    assert enc["keypoint_weights"].shape == (3, 17)
    dec, scores = codec.decode(enc["heatmaps"])
    assert dec.shape == (3, 17, 2) and scores.shape == (3, 17)
    assert np.abs(dec - kps).max() < 0.1
    assert (scores > 0.9).all()


@pytest.mark.parametrize("udp", [False, True])
def test_heatmap_argmax_quarter_bound(udp):
    rng = np.random.default_rng(1)
    codec = HeatmapCodec(IN, HM, sigma=2.0, unbiased=True, udp=udp, decode="argmax_quarter")
    kps = _points(rng)
    dec, _ = codec.decode(codec.encode(kps)["heatmaps"])
    stride = (IN[0] - 1) / (HM[0] - 1) if udp else IN[0] / HM[0]
    assert np.abs(dec - kps).max() <= 0.25 * stride + 1e-6


def test_classic_msra_target_is_rounded_patch():
    codec = HeatmapCodec(IN, HM, sigma=2.0, unbiased=False, udp=False)
    assert codec.decode_mode == "argmax_quarter"
    hm = codec.encode(np.array([[[41.2, 80.0]]]))["heatmaps"][0, 0]  # heatmap (10.3, 20)
    assert hm[20, 10] == pytest.approx(1.0)
    assert hm[20, 16] == pytest.approx(math.exp(-36 / 8), rel=1e-6)  # on the 3-sigma edge
    assert hm[20, 17] == 0.0 and hm[27, 10] == 0.0  # outside the patch


def test_hand_computed_gaussian_value():
    codec = HeatmapCodec(IN, HM, sigma=2.0, unbiased=True)
    hm = codec.encode(np.array([[41.2, 80.0]]))["heatmaps"][0, 0]  # (K, 2) input is batched
    # mean at heatmap (10.3, 20.0); grid point (12, 21): d^2 = 1.7^2 + 1
    d2 = 1.7**2 + 1.0
    assert hm[21, 12] == pytest.approx(math.exp(-d2 / (2 * 2.0**2)), rel=1e-6)
    assert hm.max() < 1.0 and hm[0, 0] > 0  # whole grid, peak 1 only at the mean
    udp = HeatmapCodec(IN, HM, sigma=2.0, unbiased=True, udp=True)
    s = (HM[0] - 1) / (IN[0] - 1)
    hm = udp.encode(np.array([[10.0 / s, 20.0 / ((HM[1] - 1) / (IN[1] - 1))]]))["heatmaps"][0, 0]
    assert hm[20, 10] == pytest.approx(1.0, abs=1e-6)
    assert hm[20, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)


def test_target_weight_outside_and_invisible():
    codec = HeatmapCodec(IN, HM, sigma=2.0, unbiased=True)
    kps = np.array([[[96.0, 128.0], [-40.0, 128.0], [96.0, 400.0], [96.0, 128.0], [-20.0, 128.0]]])
    vis = np.array([[2.0, 1.0, 1.0, 0.0, 1.0]])  # raw COCO flag 2 -> weight 1
    enc = codec.encode(kps, vis)
    # -40 px -> heatmap -10: box [-10-6, -10+7) is left of the map; -20 -> -5: box reaches 2
    np.testing.assert_array_equal(enc["keypoint_weights"], [[1, 0, 0, 0, 1]])
    assert enc["heatmaps"][0, 1:4].max() == 0.0 and enc["heatmaps"][0, 0].max() > 0.99
    sim = SimCCCodec(IN, split_ratio=2.0, sigma=4.0)
    enc = sim.encode(kps, vis)
    # SimCC window is mu +- 3 sigma bins: -20 px = bin -40 -> [-52, -27) is outside
    np.testing.assert_array_equal(enc["keypoint_weights"], [[1, 0, 0, 0, 0]])
    assert sim.encode(np.array([[-5.0, 128.0]]))["keypoint_weights"][0, 0] == 1.0  # bin -10 reaches 2
    assert enc["keypoint_x_labels"][0, 1].max() == 0.0


@pytest.mark.parametrize("round_labels", [False, True])
def test_simcc_round_trip(round_labels):
    rng = np.random.default_rng(2)
    codec = SimCCCodec(IN, split_ratio=2.0, sigma=(4.0, 4.0), normalize=True, round_labels=round_labels)
    kps = _points(rng, margin=0.0)
    enc = codec.encode(kps)
    assert enc["keypoint_x_labels"].shape == (3, 17, 384) and enc["keypoint_y_labels"].shape == (3, 17, 512)
    dec, scores = codec.decode((enc["keypoint_x_labels"], enc["keypoint_y_labels"]))
    assert np.abs(dec - kps).max() <= 1 / 2.0 + 1e-9
    peak = 1 / (4.0 * math.sqrt(2 * math.pi))
    assert (scores <= peak + 1e-6).all() and (scores > 0.9 * peak).all()
    # torch tensors and the dict form decode identically
    dec_t, _ = codec.decode({"simcc_x": torch.from_numpy(enc["keypoint_x_labels"]),
                             "simcc_y": torch.from_numpy(enc["keypoint_y_labels"])})
    np.testing.assert_array_equal(dec, dec_t)


def test_simcc_scores_min_and_softmax():
    codec = SimCCCodec((4, 4), split_ratio=1.0, softmax_scores=False)
    x = np.array([[[0.1, 0.9, 0.0, 0.0]]])
    y = np.array([[[0.0, 0.0, 0.3, 0.1]]])
    kps, s = codec.decode((x, y))
    np.testing.assert_allclose(kps, [[[1.0, 2.0]]])
    np.testing.assert_allclose(s, [[0.3]])
    _, s2 = SimCCCodec((4, 4), split_ratio=1.0, softmax_scores=True).decode((x, y))
    sy = np.exp(y[0, 0]) / np.exp(y[0, 0]).sum()
    np.testing.assert_allclose(s2, [[sy.max()]], rtol=1e-6)


def test_decode_shape_errors():
    with pytest.raises(ValueError, match=r"\(N, K, 64, 48\)"):
        HeatmapCodec(IN, HM).decode(np.zeros((1, 17, 48, 64)))
    with pytest.raises(ValueError, match="384"):
        SimCCCodec(IN).decode((np.zeros((1, 17, 100)), np.zeros((1, 17, 512))))
    with pytest.raises(ValueError, match="keypoints_visible"):
        HeatmapCodec(IN, HM).encode(np.zeros((2, 17, 2)), np.ones((2, 16)))


def test_dark_blur_matches_opencv():
    rng = np.random.default_rng(3)
    hm = rng.random((2, 64, 48))
    ours = gaussian_blur_keep_max(hm, 11)
    for k in range(2):
        ref = cv2.GaussianBlur(np.pad(hm[k], 5), (11, 11), 0)[5:-5, 5:-5]
        ref *= hm[k].max() / ref.max()
        np.testing.assert_allclose(ours[k], ref, atol=1e-12)


def test_flip_twice_identity_numpy_and_torch():
    rng = np.random.default_rng(4)
    fi = COCO.flip_indices
    hm = rng.random((2, 17, 8, 6)).astype(np.float32)
    np.testing.assert_array_equal(flip_heatmaps(flip_heatmaps(hm, fi), fi), hm)
    t = torch.from_numpy(hm)
    assert torch.equal(flip_heatmaps(flip_heatmaps(t, fi), fi), t)
    np.testing.assert_array_equal(flip_heatmaps(t, fi).numpy(), flip_heatmaps(hm, fi))
    np.testing.assert_array_equal(flip_heatmaps(t, fi, shift=True).numpy(), flip_heatmaps(hm, fi, shift=True))
    x, y = rng.random((2, 17, 12)), rng.random((2, 17, 16))
    x2, y2 = flip_simcc(*flip_simcc(x, y, fi), fi)
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)
    xt, yt = flip_simcc(torch.from_numpy(x), torch.from_numpy(y), fi, shift=True)
    xn, yn = flip_simcc(x, y, fi, shift=True)
    np.testing.assert_array_equal(xt.numpy(), xn)
    np.testing.assert_array_equal(yt.numpy(), yn)
    kps, vis = rng.random((2, 17, 2)) * 100, rng.random((2, 17))
    k1, v1 = flip_keypoints(kps, vis, 192, fi)
    assert k1[0, 1, 0] == pytest.approx(191 - kps[0, 2, 0]) and v1[0, 1] == vis[0, 2]
    k2, v2 = flip_keypoints(k1, v1, 192, fi)
    np.testing.assert_allclose(k2, kps)
    np.testing.assert_array_equal(v2, vis)


def test_flip_test_consistency():
    """Targets of the flipped crop, flipped back, decode to the original points."""
    rng = np.random.default_rng(5)
    fi = COCO.flip_indices
    kps = _points(rng, n=2)
    fk, _ = flip_keypoints(kps, None, IN[0], fi)
    # UDP heatmaps: the pixel flip is an exact reversal, no shift needed
    udp = HeatmapCodec(IN, HM, unbiased=True, udp=True)
    back = flip_heatmaps(udp.encode(fk)["heatmaps"], fi)
    np.testing.assert_allclose(back, udp.encode(kps)["heatmaps"], atol=1e-5)
    # SimCC split 2: reversal is one bin off; shift=True makes it exact
    sim = SimCCCodec(IN, split_ratio=2.0, sigma=4.0)
    enc = sim.encode(fk)
    bx, by = flip_simcc(enc["keypoint_x_labels"], enc["keypoint_y_labels"], fi, shift=True)
    ref = sim.encode(kps)
    np.testing.assert_allclose(bx[..., :-1], ref["keypoint_x_labels"][..., :-1], atol=1e-6)
    np.testing.assert_allclose(by, ref["keypoint_y_labels"], atol=1e-6)


def test_score_scale_is_the_best_reachable_score() -> None:
    """Drawing thresholds are fractions of ``score_scale``: 1 for heatmap maxima; for SimCC softmax peaks the
    label's own peak, 1 / (4 sqrt(2 pi)) = 0.099736 for sigma 4 bins (hand-computed), which a model that
    outputs the log of its label reaches exactly."""
    hm = HeatmapCodec(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)
    assert hm.score_scale == 1.0
    sc = SimCCCodec((192, 256), split_ratio=2.0, sigma=4.0, softmax_scores=True)
    assert sc.score_scale == pytest.approx(0.099736, abs=1e-6)
    lab = sc.encode(np.array([[[96.0, 128.0]]]))  # on a bin centre: the Gaussian peaks on one bin
    _, scores = sc.decode((np.log(lab["keypoint_x_labels"] + 1e-30), np.log(lab["keypoint_y_labels"] + 1e-30)))
    assert scores[0, 0] == pytest.approx(sc.score_scale, rel=1e-3)
    assert SimCCCodec((192, 256), sigma=(4.0, 6.0), softmax_scores=True).score_scale == pytest.approx(
        1 / (6 * math.sqrt(2 * math.pi)))
    assert SimCCCodec((192, 256), softmax_scores=False).score_scale == 1.0  # raw logits: no fixed scale


def test_heatmap_codec_mapping_and_rule_arguments() -> None:
    """``udp=True`` is the per-axis (size-1) mapping; the new keyword rules are checked by name."""
    assert HeatmapCodec(IN, HM, udp=True).mapping == "per_axis_size_minus_one"
    assert HeatmapCodec(IN, HM).mapping == "stride" and HeatmapCodec(IN, HM).weight_rule == "floor_box"
    with pytest.raises(ValueError, match="mapping"):
        HeatmapCodec(IN, HM, udp=True, mapping="isotropic_size_minus_one")
    with pytest.raises(ValueError, match="weight_rule"):
        HeatmapCodec(IN, HM, weight_rule="int_box_input_px")
    with pytest.raises(ValueError, match="weight_rule"):
        SimCCCodec(IN, weight_rule="msra")
    # the isotropic mapping: ratio (w-1)/(W-1) = 47/191 on both axes about the centres
    iso = HeatmapCodec(IN, HM, mapping="isotropic_size_minus_one")
    np.testing.assert_allclose(iso.input_to_heatmap([95.5, 127.5]), [23.5, 31.5])
    np.testing.assert_allclose(iso.input_to_heatmap([191.0, 0.0]), [47.0, 31.5 - 127.5 * 47 / 191])


def test_refine_quarter_border_rules() -> None:
    """``inside``: 0 < x < W-1; ``hrnet`` (get_final_preds): 1 < x < W-1, both axes at once."""
    from posetokens.codecs.utils import refine_keypoints_quarter

    hm = np.zeros((1, 2, 6, 6))
    hm[0, 0, 3, 1], hm[0, 0, 3, 2] = 1.0, 0.5  # peak at x = 1
    hm[0, 1, 3, 3], hm[0, 1, 3, 2], hm[0, 1, 2, 3] = 1.0, 0.5, 0.25  # peak at (3, 3): -0.25 x, -0.25 y
    locs = np.array([[[1.0, 3.0], [3.0, 3.0]]])
    np.testing.assert_allclose(refine_keypoints_quarter(locs, hm, "inside"), [[[1.25, 3.0], [2.75, 2.75]]])
    np.testing.assert_allclose(refine_keypoints_quarter(locs, hm, "hrnet"), [[[1.0, 3.0], [2.75, 2.75]]])


def test_refine_quarter_borders_on_both_axes_and_the_far_edges() -> None:
    """The quarter step's border rule holds on y as on x, and at the last row and column too (HRNet
    ``get_final_preds``: ``1 < px < W-1 and 1 < py < H-1``; ``inside``: ``0 < . < size-1``). Each peak below has a
    higher neighbour that would pull it a quarter pixel."""
    from posetokens.codecs.utils import refine_keypoints_quarter

    hm = np.zeros((1, 4, 6, 6))
    peaks = [(3, 0), (5, 3), (3, 1), (3, 5)]  # (x, y): top row, last column, second row, last row
    pulls = [(3, 1), (4, 3), (3, 2), (3, 4)]  # the higher neighbour of each
    for k, ((x, y), (px, py)) in enumerate(zip(peaks, pulls)):
        hm[0, k, y, x], hm[0, k, py, px] = 1.0, 0.5
    locs = np.array([peaks], np.float64)
    np.testing.assert_allclose(refine_keypoints_quarter(locs, hm, "inside"),
                               [[[3, 0], [5, 3], [3, 1.25], [3, 5]]])  # only the second row is inside
    np.testing.assert_allclose(refine_keypoints_quarter(locs, hm, "hrnet"), locs)  # 1 < y is false on row 1


def test_flip_pairs_out_of_range_are_refused_negative_ones_too() -> None:
    from posetokens.codecs import flip_indices_from_pairs

    assert flip_indices_from_pairs([[1, 2]], 3) == [0, 2, 1]
    for bad in ([[1, -1]], [[-3, 1]], [[1, 3]]):  # Python would read -1 as the last joint and swap the wrong one
        with pytest.raises(ValueError, match=r"flip pair \[.*\] is out of range for 3 keypoints"):
            flip_indices_from_pairs(bad, 3)


def test_heatmap_decode_of_a_map_without_a_positive_maximum() -> None:
    """A map whose maximum is <= 0 has no keypoint: MMPose 1.x's ``get_heatmap_maximum`` gives -1 and score 0
    (``invalid='minus_one'``), HRNet's ``get_max_preds`` heatmap (0, 0), which the stride mapping takes to input
    pixel (0, 0) (``invalid='zero'``). A zero map and a negative one alike, beside a real peak at (10, 20)."""
    hm = np.zeros((1, 3, 64, 48))
    hm[0, 1] = -0.5
    hm[0, 2, 20, 10] = 1.0
    kps, scores = HeatmapCodec(IN, HM).decode(hm)
    np.testing.assert_array_equal(kps[0, :2], [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(scores[0], [0.0, -0.5, 1.0])
    np.testing.assert_array_equal(kps[0, 2], [40.0, 80.0])  # 4 input px per heatmap px, no neighbour to step to
    kps, _ = HeatmapCodec(IN, HM, invalid="zero").decode(hm)
    np.testing.assert_array_equal(kps[0, :2], [[0, 0], [0, 0]])


def test_a_keypoint_that_is_not_a_number_gets_no_target() -> None:
    """A labelled joint with NaN coordinates (a broken annotation) gets weight 0 and an empty target in both
    codecs, not a peak at (0, 0) that would teach the model the crop's corner."""
    kps = np.array([[[np.nan, 100.0], [50.0, 60.0]]])
    vis = np.ones((1, 2))
    enc = HeatmapCodec(IN, HM).encode(kps, vis)
    np.testing.assert_array_equal(enc["keypoint_weights"], [[0, 1]])
    assert enc["heatmaps"][0, 0].max() == 0 and enc["heatmaps"][0, 1].max() == 1
    enc = SimCCCodec(IN, split_ratio=2.0, sigma=4.0).encode(kps, vis)
    np.testing.assert_array_equal(enc["keypoint_weights"], [[0, 1]])
    assert enc["keypoint_x_labels"][0, 0].max() == 0 and enc["keypoint_y_labels"][0, 0].max() == 0


def test_simcc_weight_box_edges_labels_and_rounding_by_hand() -> None:
    """MMPose ``SimCCLabel``: the box ``[mu - 3 sigma, mu + 3 sigma + 1)`` in bins must overlap ``[0, W)``: at split
    2 and sigma 4, x in [-6.5, 198) px of 192 (y: [-6.5, 262) of 256). Normalised labels peak at
    ``1 / (sigma sqrt(2 pi))`` per axis, with each axis's own sigma. ``round_labels`` centres the label on
    ``np.around(x * split)`` (MMPose's ``_map_coordinates``; half to even)."""
    codec = SimCCCodec(IN, split_ratio=2.0, sigma=4.0)
    xs = [-6.75, -6.25, 197.75, 198.25]
    enc = codec.encode(np.array([[[x, 100.0] for x in xs] + [[100.0, y] for y in (-6.75, -6.25, 261.75, 262.25)]]))
    np.testing.assert_array_equal(enc["keypoint_weights"], [[0, 1, 1, 0, 0, 1, 1, 0]])
    enc = SimCCCodec(IN, split_ratio=2.0, sigma=(4.0, 6.0), normalize=True).encode(np.array([[[50.0, 60.0]]]))
    assert enc["keypoint_x_labels"][0, 0, 100] == pytest.approx(1 / (4 * math.sqrt(2 * math.pi)), rel=1e-6)
    assert enc["keypoint_y_labels"][0, 0, 120] == pytest.approx(1 / (6 * math.sqrt(2 * math.pi)), rel=1e-6)
    rounded = SimCCCodec(IN, split_ratio=2.0, sigma=4.0, round_labels=True)
    enc = rounded.encode(np.array([[[10.4, 10.25]]]))  # bins 20.8 -> 21, 20.5 -> 20
    peak = 1 / (4 * math.sqrt(2 * math.pi))  # the label sits on the bin itself
    assert enc["keypoint_x_labels"][0, 0].argmax() == 21 and enc["keypoint_x_labels"][0, 0, 21] == pytest.approx(peak)
    assert enc["keypoint_y_labels"][0, 0].argmax() == 20 and enc["keypoint_y_labels"][0, 0, 20] == pytest.approx(peak)
    kps, _ = rounded.decode((enc["keypoint_x_labels"], enc["keypoint_y_labels"]))
    np.testing.assert_array_equal(kps[0, 0], [10.5, 10.0])


def test_float_box_weights_are_mmposes_dark_target_rule() -> None:
    """MMPose 1.x ``generate_unbiased_gaussian_heatmaps``: weight 0 when ``mu - 3 sigma >= W`` or
    ``mu + 3 sigma + 1 < 0`` with the sub-pixel mean itself (sigma 2 on a 48-wide map: mu in [-7, 54)); the
    rounding rule keeps -7.2 (``floor(-6.7) + 7 = 0``) and drops 53.9 (``floor(54.4) - 6 = 48``)."""
    mu = np.array([[[-7.2, 30.0], [-6.8, 30.0], [53.9, 30.0], [54.0, 30.0]]])
    float_box = HeatmapCodec(IN, HM, 2.0, unbiased=True, weight_rule="float_box")
    np.testing.assert_array_equal(float_box.encode_heatmap_px(mu)["keypoint_weights"], [[0, 1, 1, 0]])
    floor_box = HeatmapCodec(IN, HM, 2.0, unbiased=True, weight_rule="floor_box")
    np.testing.assert_array_equal(floor_box.encode_heatmap_px(mu)["keypoint_weights"], [[1, 1, 0, 0]])  # [-7.5, 53.5)
