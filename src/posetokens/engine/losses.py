"""Training losses (torch, vectorised)."""

from __future__ import annotations

from torch import Tensor


def joints_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """TokenPose/HRNet JointsMSELoss with target weight.

    Per joint ``0.5 * MSE(pred * w, target * w)`` over batch and pixels, then the mean over joints;
    zero-weight joints stay in the denominator. ``pred``/``target`` (B, K, H, W), ``weight`` (B, K).
    """
    w = weight[..., None, None].to(pred.dtype)
    return 0.5 * ((pred - target) * w).square().mean()
