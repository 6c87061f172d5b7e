"""3D metrics (MPJPE, P-MPJPE, N-MPJPE, MPJVE, per-action protocol), the lifting flip merge and the HoT
lifting losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetokens.engine.losses import (
    H36M_LIFTING_JOINT_WEIGHTS,
    hot_lifting_loss,
    joints_mse,
    mpjve_loss,
    temporal_consistency,
    weighted_mpjpe,
)
from posetokens.evaluation.h36m_protocol import flip_indices_from_pairs, flip_merge
from posetokens.evaluation.pose3d import (
    ActionErrorAccumulator,
    action_average,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    procrustes_align,
)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# ----------------------------------------------------------------------------- MPJPE
def test_mpjpe_known_offset_metres_to_mm() -> None:
    gt = np.random.default_rng(0).normal(size=(5, 17, 3))
    pred = gt + np.array([0.003, 0.004, 0.0])  # every joint 5 mm off
    assert mpjpe(pred, gt) == pytest.approx(5.0, abs=1e-9)
    assert mpjpe(pred, gt, scale=1.0) == pytest.approx(0.005, abs=1e-12)


def test_mpjpe_hand_computed_and_per_frame() -> None:
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[1.0, 0, 0], [0, 3.0, 0]], [[0, 0, 2.0], [0, 0, 0]]])
    # frame 0: (1 + 3) / 2 = 2; frame 1: (2 + 0) / 2 = 1; mean 1.5
    assert mpjpe(pred, gt, scale=1) == pytest.approx(1.5)
    np.testing.assert_allclose(mpjpe(pred, gt, scale=1, reduction="none"), [2.0, 1.0])
    # torch tensors are accepted
    assert mpjpe(torch.tensor(pred), torch.tensor(gt), scale=1) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="shapes differ"):
        mpjpe(pred, gt[:1])


# ----------------------------------------------------------------------------- P-MPJPE
def test_p_mpjpe_similarity_copy_is_zero() -> None:
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(6, 17, 3))
    pred = np.empty_like(gt)
    for i in range(len(gt)):  # a different rotation, scale and shift per frame
        pred[i] = rng.uniform(0.3, 3.0) * gt[i] @ _random_rotation(rng) + rng.normal(size=3)
    assert mpjpe(pred, gt) > 100.0
    assert p_mpjpe(pred, gt) < 1e-6
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)


def test_p_mpjpe_two_joint_hand_case() -> None:
    gt = np.array([[[-1.0, 0, 0], [1.0, 0, 0]]])
    pred = np.array([[[5.0, -2.0, 1.0], [5.0, 2.0, 1.0]]])  # rotated 90 deg, scaled x2, shifted
    assert p_mpjpe(pred, gt, scale=1) == pytest.approx(0.0, abs=1e-12)


def test_p_mpjpe_reflection_is_not_allowed() -> None:
    gt = np.array([[[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])  # non-planar
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    err = p_mpjpe(mirrored, gt, scale=1)
    assert err > 0.05  # only a reflection could align it
    assert err <= mpjpe(mirrored, gt, scale=1) + 1e-12


def _videopose3d_p_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """VideoPose3D's ``p_mpjpe`` (common/loss.py, the one MixSTE, MotionBERT and HoT call), retyped for one
    frame: rows normalised, ``R = V U^T`` with the last column of V and the last singular value negated when
    ``det R < 0``, scale ``tr(s) |X0| / |Y0|``."""
    mu_x, mu_y = target.mean(0), predicted.mean(0)
    x0, y0 = target - mu_x, predicted - mu_y
    norm_x, norm_y = np.sqrt((x0 ** 2).sum()), np.sqrt((y0 ** 2).sum())
    x0, y0 = x0 / norm_x, y0 / norm_y
    u, s, vt = np.linalg.svd(x0.T @ y0)
    v = vt.T
    sign = np.sign(np.linalg.det(v @ u.T))
    v[:, -1] *= sign
    s[-1] *= sign
    r = v @ u.T
    a = s.sum() * norm_x / norm_y
    aligned = a * predicted @ r + (mu_x - a * mu_y @ r)
    return float(np.linalg.norm(aligned - target, axis=-1).mean())


def test_p_mpjpe_of_a_mirrored_pose_equals_videopose3d() -> None:
    """Where only a reflection would align the poses, the reflection fix changes the rotation and the scale
    (its singular value is negated too): the official formula's value, to float rounding."""
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.3, 0.2, 0.6]])
    mirrored = gt * np.array([-1.0, 1.0, 1.0]) + np.array([0.1, -0.2, 0.05])
    assert p_mpjpe(mirrored[None], gt[None], scale=1) == pytest.approx(_videopose3d_p_mpjpe(mirrored, gt), rel=1e-9)


def test_procrustes_is_optimal_under_perturbation() -> None:
    rng = np.random.default_rng(2)
    gt, pred = rng.normal(size=(1, 17, 3)), rng.normal(size=(1, 17, 3))
    aligned = procrustes_align(pred, gt)[0]
    base = np.sum((aligned - gt[0]) ** 2)
    mu = aligned.mean(0)
    for _ in range(50):  # any nearby similarity transform of the aligned pose is no better
        w = 0.02 * rng.normal(size=3)
        theta = np.linalg.norm(w)
        k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]) / theta
        rot = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * k @ k  # Rodrigues
        moved = (1 + 0.02 * rng.normal()) * (aligned - mu) @ rot + mu + 0.01 * rng.normal(size=3)
        assert np.sum((moved - gt[0]) ** 2) >= base - 1e-12


# ----------------------------------------------------------------------------- N-MPJPE, MPJVE
def test_n_mpjpe_hand_computed() -> None:
    gt = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    pred = np.array([[[1.0, 0, 0], [0, 0, 0]]])  # s = <p,t>/<p,p> = 1 -> errors 0 and 1
    assert n_mpjpe(pred, gt, scale=1) == pytest.approx(0.5)
    assert n_mpjpe(2.5 * gt, gt, scale=1) == pytest.approx(0.0, abs=1e-12)


def test_mpjve_hand_computed() -> None:
    gt = np.zeros((3, 1, 3))
    gt[:, 0, 0] = [0, 1, 2]
    pred = np.zeros((3, 1, 3))
    pred[:, 0, 0] = [0, 2, 4]
    assert mpjve(pred, gt, scale=1) == pytest.approx(1.0)
    assert mpjve(gt + 7.0, gt) == pytest.approx(0.0)  # constant offsets have no velocity error
    # (B, T, J, 3) with time on axis -3
    assert mpjve(pred[None].repeat(2, 0), gt[None].repeat(2, 0), scale=1) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- per-action protocol
def _clip(err: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((1, frames, 1, 3))
    pred = gt.copy()
    pred[..., 0] = err
    return pred, gt


def test_action_accumulator_hand_computed() -> None:
    acc = ActionErrorAccumulator(metrics=("mpjpe",), scale=1.0, zero_root=False)
    acc.update(*_clip(1.0, 1), ["Walking 1"])
    acc.update(*_clip(3.0, 1), ["Walking 2"])
    acc.update(*_clip(10.0, 3), ["Eating"])
    out = acc.compute()
    assert out["mpjpe/Walking"] == pytest.approx(2.0)  # (1 + 3) / 2 clips
    assert out["mpjpe/Eating"] == pytest.approx(10.0)
    assert out["mpjpe"] == pytest.approx(6.0)  # (2 + 10) / 2 actions, equal weight
    assert out["mpjpe_frames"] == pytest.approx((1 + 3 + 3 * 10) / 5)  # frame average
    assert acc.num_clips == 3
    acc.reset()
    assert acc.compute() == {}


def test_action_average_and_zero_root() -> None:
    mean, per = action_average([1.0, 2.0, 6.0], ["A 1", "A 2", "B"])
    assert per == {"A": 1.5, "B": 6.0} and mean == pytest.approx(3.75)
    gt = np.random.default_rng(3).normal(size=(2, 4, 17, 3))
    gt[..., 0, :] = 0.0
    pred = gt.copy()
    pred[..., 0, :] = 5.0  # only the predicted root is off: HoT zeroes it before scoring
    acc = ActionErrorAccumulator(metrics=("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"))
    acc.update(pred, gt, ["Sitting 1", "Sitting 2"])
    out = acc.compute()
    for m in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve"):
        assert out[m] == pytest.approx(0.0, abs=1e-6), m
    with pytest.raises(ValueError, match="unknown metrics"):
        ActionErrorAccumulator(metrics=("pck",))
    # a target whose root is not at the origin: zeroed too, so only the other joints are scored
    target = gt.copy()
    target[..., 0, :] = 0.3
    acc = ActionErrorAccumulator(metrics=("mpjpe",))
    acc.update(gt, target, ["Sitting 1", "Sitting 2"])
    assert acc.compute()["mpjpe"] == pytest.approx(0.0, abs=1e-9)


def test_mpjve_of_a_clip_is_the_mean_over_its_frame_differences() -> None:
    """A 3-frame clip has 2 velocities: a constant velocity error of 1 is 1 per clip, not 2 / 3."""
    pred, gt = _clip(0.0, 3)
    pred[0, :, 0, 0] = [0.0, 1.0, 2.0]
    acc = ActionErrorAccumulator(metrics=("mpjve",), scale=1.0, zero_root=False)
    acc.update(pred, gt, ["Walking"])
    out = acc.compute()
    assert out["mpjve"] == pytest.approx(1.0) and out["mpjve_frames"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- flip merge
def test_flip_merge_hand_computed() -> None:
    """Only the flipped output's r_hip (joint 1) is (2, 3, 4): flipped back it lands on l_hip (joint 4) with
    x negated, and the average halves it. The plain output's root (7, 7, 7) is zeroed."""
    out = np.zeros((1, 2, 17, 3))
    out[..., 0, :] = 7.0
    out_f = np.zeros_like(out)
    out_f[..., 1, :] = [2.0, 3.0, 4.0]
    want = np.zeros_like(out)
    want[..., 4, :] = [-1.0, 1.5, 2.0]
    np.testing.assert_array_equal(flip_merge(out, out_f), want)
    got = flip_merge(torch.tensor(out, dtype=torch.float32), torch.tensor(out_f, dtype=torch.float32))
    np.testing.assert_array_equal(got.numpy(), want)
    # the official pairs give the same permutation as the H36M metainfo
    perm = flip_indices_from_pairs([4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16])
    assert perm == [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    np.testing.assert_array_equal(flip_merge(out, out_f, perm), want)
    kept = flip_merge(out, out_f, root=None)
    assert np.all(kept[..., 0, :] == 3.5)  # root=None keeps the averaged root
    with pytest.raises(ValueError, match="differ"):
        flip_merge(out, out_f[:, :1])


# ----------------------------------------------------------------------------- losses
def test_lifting_losses_hand_computed() -> None:
    w = torch.tensor(H36M_LIFTING_JOINT_WEIGHTS)
    assert w.shape == (17,) and float(w.sum()) == pytest.approx(36.5)
    target = torch.zeros(2, 4, 17, 3)
    pred = target + torch.tensor([0.3, 0.4, 0.0])
    assert float(weighted_mpjpe(pred, target)) == pytest.approx(0.5 * 36.5 / 17)
    assert float(temporal_consistency(pred)) == pytest.approx(0.0)
    assert float(mpjve_loss(pred, target)) == pytest.approx(0.0)
    # joint 12 moves 0.1 m in x per frame: tc = w12 * 0.01 / (3 * 17 * 3) per element mean
    moving = target.clone()
    moving[:, :, 12, 0] = 0.1 * torch.arange(4.0)
    assert float(temporal_consistency(moving)) == pytest.approx(4.0 * 0.01 / (17 * 3))
    assert float(mpjve_loss(moving, target)) == pytest.approx(0.1 / 17)
    total = hot_lifting_loss(moving, target)
    expect = weighted_mpjpe(moving, target) + 0.5 * temporal_consistency(moving) + 2.0 * mpjve_loss(moving, target)
    assert float(total) == pytest.approx(float(expect))
    single = hot_lifting_loss(pred[:, :1], target[:, :1])  # one frame: no temporal terms, no NaN
    assert torch.isfinite(single) and float(single) == pytest.approx(0.5 * 36.5 / 17)


def test_motionbert_loss_hand_computed() -> None:
    """MotionBERT's ``loss_3d_scale`` takes one least-squares scale per pose (its means over joints and coordinates):
    ground truth (1, 0, 0), (0, 1, 0) and prediction (2, 0, 0), (0, 1, 0) give s = 3 / 5 and errors 0.2 and 0.4,
    N-MPJPE 0.3 (one scale per joint would give 0). Two frames, the second moved 0.1 in x: MPJVE 0.1, and the loss
    MPJPE + 0.5 N-MPJPE + 20 MPJVE (its config's weights)."""
    from posetokens.engine.losses import motionbert_lifting_loss, n_mpjpe_loss

    gt = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    pred = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert float(n_mpjpe_loss(pred, gt)) == pytest.approx(0.3)
    pred2 = torch.stack((pred[0], pred[0] + torch.tensor([0.1, 0.0, 0.0])))[None]  # (1, 2 frames, 2, 3)
    gt2 = torch.stack((gt[0], gt[0]))[None]
    assert float(mpjve_loss(pred2, gt2)) == pytest.approx(0.1)  # two frames: one step, its velocity counted
    mpjpe_ = (1.0 + 0.0 + 1.1 + 0.1) / 4  # frame 1: 1 and 0; frame 2: |(2.1, 0, 0) - (1, 0, 0)| and 0.1
    n2 = float(n_mpjpe_loss(pred2, gt2))
    assert float(motionbert_lifting_loss(pred2, gt2)) == pytest.approx(mpjpe_ + 0.5 * n2 + 20 * 0.1)


def test_hot_loss_backward_and_joints_mse_unchanged() -> None:
    pred = torch.randn(2, 5, 17, 3, requires_grad=True)
    hot_lifting_loss(pred, torch.randn(2, 5, 17, 3)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    with pytest.raises(ValueError, match="joint weights"):
        weighted_mpjpe(torch.zeros(1, 16, 3), torch.zeros(1, 16, 3))
    h = torch.ones(1, 2, 3, 3)
    assert float(joints_mse(h, torch.zeros_like(h), torch.tensor([[1.0, 0.0]]))) == pytest.approx(0.25)


def test_evaluate_hot_zeroes_the_predicted_root_and_averages_p2_over_batches_of_four() -> None:
    """HoT's ``test``: joint 0 of the output is set to 0 (a root 5 cm off costs nothing in P1), and P2 credits each
    window with the mean of its test batch of 4 (spec pipeline.md, HoT P2; its README tests with batch 4)."""
    from posetokens.evaluation.h36m_protocol import evaluate_hot

    rng = np.random.default_rng(4)
    target = rng.normal(size=(2, 3, 17, 3)) * 0.2
    target[..., 0, :] = 0.0
    pred = target.copy()
    pred[..., 0, :] = 0.05
    res = evaluate_hot(pred, target, ["Eating 1", "Walking 1"], all_actions=None)
    assert res.p1 == pytest.approx(0.0, abs=1e-9)
    pred = target + rng.normal(size=target.shape) * np.array([0.01, 0.05])[:, None, None, None]
    pred[..., 0, :] = 0.0
    own = [p_mpjpe(pred[i], target[i]) for i in range(2)]  # each window's own mean P-MPJPE
    res = evaluate_hot(pred, target, ["Eating 1", "Walking 1"], all_actions=None)
    assert res.per_action_p2["Eating"] == pytest.approx(np.mean(own)) == res.per_action_p2["Walking"]
    per_window = evaluate_hot(pred, target, ["Eating 1", "Walking 1"], all_actions=None, p2_batch_size=0)
    assert per_window.per_action_p2 == pytest.approx({"Eating": own[0], "Walking": own[1]})
