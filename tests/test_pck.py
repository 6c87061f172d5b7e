"""PCK / PCKh on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from posetokens.evaluation import (
    MpiiPCKh,
    PCKAccuracy,
    bbox_size_norm,
    head_size_from_boxes,
    pck_accuracy,
    pckh,
    pckh_per_joint,
)

# 2 samples x 4 joints, GT at the origin, errors along x so every distance is exact in floating point.
#   sample 0: head size 10; errors 3, 5, 6, (joint 3 unlabelled) -> normalised 0.3, 0.5, 0.6, -
#   sample 1: head size 20; errors 12, 8, 2, 30                   -> normalised 0.6, 0.4, 0.1, 1.5
_ERR = np.array([[3.0, 5.0, 6.0, 0.0], [12.0, 8.0, 2.0, 30.0]])
PRED = np.stack([_ERR, np.zeros_like(_ERR)], axis=-1)
GT = np.zeros((2, 4, 2))
MASK = np.array([[True, True, True, False], [True, True, True, True]])
HEAD = np.array([10.0, 20.0])


def test_pckh_per_joint_hand_computed() -> None:
    # PCKh@0.5 counts d/h <= 0.5 (MPII script):
    #   joint 0: 0.3 yes, 0.6 no -> 1/2 = 50 %
    #   joint 1: 0.5 yes (boundary included), 0.4 yes -> 2/2 = 100 %
    #   joint 2: 0.6 no, 0.1 yes -> 1/2 = 50 %
    #   joint 3: (unlabelled), 1.5 no -> 0/1 = 0 %
    pck, count = pckh_per_joint(PRED, GT, MASK, HEAD, thr=0.5)
    np.testing.assert_allclose(pck, [50.0, 100.0, 50.0, 0.0])
    np.testing.assert_array_equal(count, [2, 2, 2, 1])
    # @0.1: only joint 2 of sample 1 (0.1 <= 0.1) -> [0, 0, 50, 0]
    np.testing.assert_allclose(pckh_per_joint(PRED, GT, MASK, HEAD, thr=0.1)[0], [0.0, 0.0, 50.0, 0.0])


def test_pck_accuracy_is_strict_and_uses_minus_one() -> None:
    # MMPose PCK counts d/norm < thr: joint 1 of sample 0 (exactly 0.5) is now wrong -> [.5, .5, .5, 0]
    acc, mean, cnt = pck_accuracy(PRED, GT, MASK, 0.5, HEAD)
    np.testing.assert_allclose(acc, [0.5, 0.5, 0.5, 0.0])
    assert mean == pytest.approx(0.375) and cnt == 4
    # A joint with no valid sample gets -1 and is left out of the mean; a zero normaliser drops a sample.
    mask = MASK.copy()
    mask[:, 3] = False
    acc, mean, cnt = pck_accuracy(PRED, GT, mask, 0.5, np.array([[10.0, 10.0], [0.0, 20.0]]))
    np.testing.assert_allclose(acc, [1.0, 0.0, 0.0, -1.0])  # only sample 0 left: 0.3 yes, 0.5 no, 0.6 no
    assert mean == pytest.approx(1 / 3) and cnt == 3


def test_head_size_and_bbox_norm() -> None:
    # 3-4-5 triangles: diagonals 50 and 100 -> 0.6 x diag = 30, 60; same for the (N, 2, 2) layout
    np.testing.assert_allclose(head_size_from_boxes([[0, 0, 30, 40], [10, 10, 70, 90]]), [30.0, 60.0])
    np.testing.assert_allclose(head_size_from_boxes([[[0, 0], [30, 40]]]), [30.0])
    np.testing.assert_allclose(bbox_size_norm([[0, 0, 30, 40]]), [[40.0, 40.0]])


def _mpii_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2 samples, 16 MPII joints, head size 10; GT at 0; predictions exact unless listed:
    sample 0: r_wrist (10) off by 8 (0.8, wrong); head_top (9) off by 3 (0.3: right @0.5, wrong @0.1)
    sample 1: l_knee (4) off by 8 (wrong); both ankles (0, 5) unlabelled
    both:     pelvis (6) and thorax (7) off by 20 (wrong, but not part of the MPII Mean)
    """
    pred = np.zeros((2, 16, 2))
    pred[0, 10, 0] = 8.0
    pred[0, 9, 0] = 3.0
    pred[1, 4, 0] = 8.0
    pred[:, 6, 0] = 20.0
    pred[:, 7, 0] = 20.0
    mask = np.ones((2, 16), dtype=bool)
    mask[1, [0, 5]] = False
    return pred, np.zeros((2, 16, 2)), mask, np.array([10.0, 10.0])


def test_mpii_report_hand_computed() -> None:
    pred, gt, mask, hs = _mpii_case()
    out = pckh(pred, gt, mask, head_size=hs)
    # Head 2/2; Wrist = (r 1/2 + l 2/2) / 2 = 75; Knee = (r 2/2 + l 1/2) / 2 = 75; Ankle = (1/1 + 1/1) / 2
    expected = {"Head": 100.0, "Shoulder": 100.0, "Elbow": 100.0, "Wrist": 75.0, "Hip": 100.0,
                "Knee": 75.0, "Ankle": 100.0}
    for k, v in expected.items():
        assert out[k] == pytest.approx(v), k
    # Mean: joints 0-15 without 6, 7 -> counts 12 joints x 2 + 2 ankles x 1 = 26; wrong: r_wrist(s0),
    # l_knee(s1) -> 24 / 26. At 0.1 the head_top of sample 0 also fails -> 23 / 26.
    assert out["Mean"] == pytest.approx(100 * 24 / 26)
    assert out["PCKh"] == out["Mean"]
    # the exact 0.1 reading, under its own key and (by default) as Mean@0.1
    assert out["Mean@0.10"] == pytest.approx(100 * 23 / 26)
    assert out["Mean@0.1"] == out["Mean@0.10"]
    # the head_top error 0.3 fails at 0.11 too: both readings agree on this case
    assert out["Mean@0.11"] == pytest.approx(100 * 23 / 26)
    # head boxes give the same report: a 3-4-5 box with diagonal d = 10 / 0.6 -> head size 10
    d = 10 / 0.6
    boxes = np.array([[0.0, 0.0, 0.6 * d, 0.8 * d]] * 2)
    np.testing.assert_allclose(head_size_from_boxes(boxes), [10.0, 10.0])
    assert pckh(pred, gt, mask, head_boxes=boxes) == pytest.approx(out)
    with pytest.raises(ValueError, match="16"):
        pckh(pred[:, :4], gt[:, :4], mask[:, :4], head_size=hs)


def test_stateful_metrics_match_one_shot() -> None:
    pred, gt, mask, hs = _mpii_case()
    m = MpiiPCKh()
    m.update(pred[:1], gt[:1], mask[:1], head_size=hs[:1])
    m.update(pred[1:], gt[1:], mask[1:], head_size=hs[1:])
    assert m.compute() == pytest.approx(pckh(pred, gt, mask, head_size=hs))
    m.reset()
    with pytest.raises(RuntimeError):
        m.compute()

    p = PCKAccuracy(thr=0.5)
    p.update(PRED[:1], GT[:1], MASK[:1], HEAD[:1])
    p.update(PRED[1:], GT[1:], MASK[1:], HEAD[1:])
    out = p.compute()
    assert out["PCK"] == pytest.approx(0.375)
    np.testing.assert_allclose(out["per_joint"], [0.5, 0.5, 0.5, 0.0])


def test_mpii_mean01_both_readings() -> None:
    """The official HRNet/TokenPose/PPT "Mean@0.1" is pckAll[11] of arange(0, 0.51, 0.01), i.e. threshold
    0.11; GTPT and MMPose read 0.10. A joint at 0.105 head sizes separates the two readings."""
    pred, gt, mask, hs = _mpii_case()
    pred[1, 12, 0] = 1.05  # sample 1 r_shoulder: 1.05 / 10 = 0.105 -> wrong at 0.10, right at 0.11
    pred[1, 13, 0] = 1.15  # sample 1 l_shoulder: 0.115 -> wrong at both
    # Mean over 26 counted joints: @0.5 still 24 right; @0.10: 24 - head_top(s0) - 2 shoulders(s1) = 21;
    # @0.11: only the l_shoulder and head_top fail on top of the two @0.5 misses -> 22
    out = pckh(pred, gt, mask, head_size=hs)
    assert out["Mean"] == pytest.approx(100 * 24 / 26)
    assert out["Mean@0.10"] == pytest.approx(100 * 21 / 26)
    assert out["Mean@0.11"] == pytest.approx(100 * 22 / 26)
    assert out["Mean@0.1"] == out["Mean@0.10"]  # default: exact 0.1
    official = pckh(pred, gt, mask, head_size=hs, mean01_thr=0.11)
    assert official["Mean@0.1"] == official["Mean@0.11"] == out["Mean@0.11"]
    assert {k: v for k, v in official.items() if k != "Mean@0.1"} == {k: v for k, v in out.items() if k != "Mean@0.1"}
    # any other threshold is computed on the spot: at 0.2 only head_top (0.3) fails on top of the two misses
    assert pckh(pred, gt, mask, head_size=hs, mean01_thr=0.2)["Mean@0.1"] == pytest.approx(100 * 23 / 26)
    # the protocols choose: TokenPose (official script) 0.11, GTPT 0.10
    from posetokens.protocols import get_protocol

    assert get_protocol("tokenpose").eval.pckh_mean01_thr == 0.11
    assert get_protocol("gtpt").eval.pckh_mean01_thr == 0.10
    m = MpiiPCKh(mean01_thr=0.11)
    m.update(pred, gt, mask, head_size=hs)
    assert m.compute() == pytest.approx(official)
    m.reset()
    assert m.mean01_thr == 0.11  # reset keeps the settings


def test_pckh_threshold_ring_counts_as_official() -> None:
    """On a threshold ring the last bit decides. The official script takes the error norm, then divides by
    the head size: here that gives 0.5000000000000001 (> 0.5, wrong), while dividing each component first
    would give exactly 0.5 (right). PCKh must follow the official order."""
    hs = np.array([6.0])
    pred = np.array([[[1.0, 2.8284271247461903]]])  # (1, sqrt(8)) in float64: |pred| = 3 up to the last bit
    gt = np.zeros((1, 1, 2))
    assert np.linalg.norm(pred[0, 0]) / hs[0] > 0.5 and np.linalg.norm(pred[0, 0] / hs[0]) <= 0.5
    pck, count = pckh_per_joint(pred, gt, np.ones((1, 1), bool), hs, thr=0.5)
    assert pck[0] == 0.0 and count[0] == 1


def test_a_zero_head_size_counts_its_joints_as_wrong(caplog: pytest.LogCaptureFixture) -> None:
    # The official MPII script divides by the head size: 0 gives inf (or 0/0 = NaN), never <= a threshold, while the
    # joints still count. Sample 1 (errors 12, 8, 2, 30) with head size 0 instead of 20: joint 0 was 1/2 -> 1/2,
    # joint 1 2/2 -> 1/2, joint 2 1/2 -> 0/2 (its 0.1 no longer counts), joint 3 0/1 -> 0/1.
    pck, count = pckh_per_joint(PRED, GT, MASK, [10.0, 0.0])
    np.testing.assert_allclose(pck, [50.0, 50.0, 0.0, 0.0])
    np.testing.assert_array_equal(count, [2, 2, 2, 1])  # the sample is not left out
    exact = np.zeros_like(PRED)  # a perfect prediction of that sample: 0 / 0 in the official script, wrong too
    assert pckh_per_joint(exact, GT, MASK, [10.0, 0.0])[0].tolist() == [50.0, 50.0, 50.0, 0.0]
    with pytest.raises(ValueError, match=r"^pckh: head size -1\.0 of sample 1 is negative or not finite"):
        pckh_per_joint(PRED, GT, MASK, [10.0, -1.0])
    boxes = np.zeros((2, 2, 2))
    boxes[0, 1] = [30.0, 40.0]  # sample 1's box has zero size
    with caplog.at_level("WARNING", logger="posetokens"):
        pckh(np.zeros((2, 16, 2)), np.zeros((2, 16, 2)), np.ones((2, 16), bool), head_boxes=boxes)
    assert "1 sample(s) with a head size of 0 (the first: sample 1" in caplog.text


def test_pck_with_a_per_axis_normaliser_divides_x_by_width_and_y_by_height() -> None:
    """``norm`` (N, 2) is per axis (MMPose's bbox normaliser: w for x, h for y): an error of 5 px in x against a
    10 x 40 box is 0.5 (wrong at 0.2); the same error in y is 0.125 (right)."""
    gt = np.zeros((2, 1, 2))
    pred = np.array([[[5.0, 0.0]], [[0.0, 5.0]]])
    acc, _, _ = pck_accuracy(pred[:1], gt[:1], np.ones((1, 1), bool), 0.2, [[10.0, 40.0]])
    assert acc.tolist() == [0.0]
    acc, _, _ = pck_accuracy(pred[1:], gt[1:], np.ones((1, 1), bool), 0.2, [[10.0, 40.0]])
    assert acc.tolist() == [1.0]


def test_mpii_groups_are_the_plain_mean_of_left_and_right() -> None:
    """HRNet's ``mpii.py``: ``('Wrist', 0.5 * (PCKh[lwri] + PCKh[rwri]))``, not weighted by how many joints each
    side has: right wrist 1 of 2 (50), left wrist 1 of 1 (100) give 75, not 2 / 3."""
    pred, gt = np.zeros((2, 16, 2)), np.zeros((2, 16, 2))
    mask = np.zeros((2, 16), bool)
    mask[:, 10] = True  # r_wrist in both samples; sample 1's is 20 px off (head size 10: wrong)
    mask[0, 15] = True  # l_wrist in sample 0 only, right
    pred[1, 10, 0] = 20.0
    out = pckh(pred, gt, mask, head_size=np.array([10.0, 10.0]))
    assert out["Wrist"] == pytest.approx(75.0)
