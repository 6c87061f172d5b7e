"""Training losses (torch, vectorised)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def joints_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """TokenPose/HRNet JointsMSELoss with target weight.

    Per joint ``0.5 * MSE(pred * w, target * w)`` over batch and pixels, then the mean over joints;
    zero-weight joints stay in the denominator. ``pred``/``target`` (B, K, H, W), ``weight`` (B, K).
    """
    w = weight[..., None, None].to(pred.dtype)
    return 0.5 * ((pred - target) * w).square().mean()



def _bin_mean_kl(log_q: Tensor, p: Tensor, weight: Tensor) -> Tensor:
    """``sum_k w_k * mean_bins p * (log p - log q)`` / K, averaged over the batch (0 * log 0 = 0)."""
    kl = torch.where(p > 0, p * (p.clamp_min(1e-30).log() - log_q), torch.zeros_like(p)).mean(-1)
    return (kl * weight).sum(-1).mean() / p.shape[-2]


def simcc_kl(pred: tuple[Tensor, Tensor], labels: tuple[Tensor, Tensor], weight: Tensor) -> Tensor:
    """GTPT's ``KLDiscretGlobalPerceivedLoss``: per joint and axis KL(label || softmax(logits)) averaged over
    bins, times the joint weight, summed over x and y, divided by K, averaged over the batch.

    ``pred``/``labels``: x (B, K, Wx) and y (B, K, Wy); ``weight`` (B, K).
    """
    w = weight.to(pred[0].dtype)
    return sum(_bin_mean_kl(q.float().log_softmax(-1), p.float(), w) for q, p in zip(pred, labels))


def simcc_distill(student: tuple[Tensor, Tensor], teacher: tuple[Tensor, Tensor], weight: Tensor) -> Tensor:
    """GTPT's distillation term: KL(softmax(teacher, stop-grad) || softmax(student)), temperature 1, the same
    bin mean and joint weighting as :func:`simcc_kl`."""
    w = weight.to(student[0].dtype)
    return sum(_bin_mean_kl(s.float().log_softmax(-1), t.detach().float().softmax(-1), w)
               for s, t in zip(student, teacher))


def gtpt_loss(pruned: tuple[Tensor, Tensor], unpruned: tuple[Tensor, Tensor], labels: tuple[Tensor, Tensor],
              weight: Tensor) -> Tensor:
    """GTPT's three terms, all weight 1: unpruned vs labels + pruned vs labels + unpruned -> pruned."""
    return simcc_kl(unpruned, labels, weight) + simcc_kl(pruned, labels, weight) + simcc_distill(pruned, unpruned, weight)

# ----------------------------------------------------------------------------- 2D -> 3D lifting
# The official HoT / MixSTE lifting objective (HoT ``main_mixste*.py``, following MixSTE's run.py):
# loss = weighted MPJPE + 0.5 * temporal consistency + 2.0 * MPJVE, with the H36M-17 joint weights
# below. Poses are (B, F, J, 3) with time on dim -3; the prediction's root is not zeroed here.

#: HoT/MixSTE per-joint weights for H36M-17 (MMPose joint order).
H36M_LIFTING_JOINT_WEIGHTS: tuple[float, ...] = (
    1.0, 1.0, 2.5, 2.5, 1.0, 2.5, 2.5, 1.0, 1.0, 1.0, 1.5, 1.5, 4.0, 4.0, 1.5, 4.0, 4.0,
)


def _joint_weights(weights: Tensor | Sequence[float] | None, ref: Tensor) -> Tensor:
    w = H36M_LIFTING_JOINT_WEIGHTS if weights is None else weights
    w = torch.as_tensor(w, dtype=ref.dtype, device=ref.device)
    if w.shape != (ref.shape[-2],):
        raise ValueError(f"expected {ref.shape[-2]} joint weights, got shape {tuple(w.shape)}")
    return w


def weighted_mpjpe(pred: Tensor, target: Tensor, weights: Tensor | Sequence[float] | None = None) -> Tensor:
    """``mean(w_j * ||pred - target||)`` over every frame and joint (not divided by ``sum(w)``).

    (..., J, 3); ``weights`` (J,) default :data:`H36M_LIFTING_JOINT_WEIGHTS`.
    """
    return (_joint_weights(weights, pred) * torch.linalg.vector_norm(pred - target, dim=-1)).mean()


def temporal_consistency(pred: Tensor, weights: Tensor | Sequence[float] | None = None) -> Tensor:
    """Weighted mean squared frame-to-frame difference of the *prediction only*.

    ``mean(w_j * (x[t+1] - x[t])**2)`` over batch, frames, joints and coordinates; (..., F, J, 3).
    Zero when there is a single frame.
    """
    if pred.shape[-3] < 2:
        return pred.sum() * 0.0
    diff = pred.diff(dim=-3)
    return (_joint_weights(weights, pred)[:, None] * diff.square()).mean()


def mpjve_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-joint velocity error: ``mean ||diff(pred) - diff(target)||`` along time (dim -3).

    Zero when there is a single frame.
    """
    if pred.shape[-3] < 2:
        return pred.sum() * 0.0
    return torch.linalg.vector_norm(pred.diff(dim=-3) - target.diff(dim=-3), dim=-1).mean()


def hot_lifting_loss(
    pred: Tensor,
    target: Tensor,
    weights: Tensor | Sequence[float] | None = None,
    *,
    tc_weight: float = 0.5,
    velocity_weight: float = 2.0,
) -> Tensor:
    """HoT's seq2seq training loss (``main_mixste*.py``): ``wmpjpe + 0.5 * tc + 2.0 * mpjve``.

    ``pred``/``target`` (B, F, J, 3) in metres; ``weights`` default :data:`H36M_LIFTING_JOINT_WEIGHTS`.
    """
    return (
        weighted_mpjpe(pred, target, weights)
        + tc_weight * temporal_consistency(pred, weights)
        + velocity_weight * mpjve_loss(pred, target)
    )


def n_mpjpe_loss(pred: Tensor, target: Tensor) -> Tensor:
    """MPJPE after the least-squares scale of ``pred`` per frame (MotionBERT's ``loss_3d_scale``). (..., J, 3)."""
    num = (pred * target).sum(dim=(-1, -2), keepdim=True)
    den = pred.square().sum(dim=(-1, -2), keepdim=True).clamp_min(1e-12)
    return torch.linalg.vector_norm(pred * (num / den) - target, dim=-1).mean()


def motionbert_lifting_loss(pred: Tensor, target: Tensor, *, scale_weight: float = 0.5,
                            velocity_weight: float = 20.0) -> Tensor:
    """MotionBERT's H36M lifting loss: MPJPE + 0.5 x scale-aligned MPJPE + 20 x MPJVE (its config)."""
    pos = torch.linalg.vector_norm(pred - target, dim=-1).mean()
    return pos + scale_weight * n_mpjpe_loss(pred, target) + velocity_weight * mpjve_loss(pred, target)
