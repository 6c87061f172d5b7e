"""posetokens: efficient token-based human pose estimation (TokenPose/PPT, GTPT, PCT, HoT) in PyTorch."""

from posetokens.runtime import settle_vector_math

settle_vector_math()  # before anything computes a sine table or an exp (see its doc: an upstream first-call race)

from posetokens.registry import create_model, get_entry, list_models  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PoseEstimator", "create_model", "get_entry", "list_models", "__version__"]


def __getattr__(name: str):
    """Lazy ``posetokens.PoseEstimator`` (keeps ``import posetokens`` free of OpenCV)."""
    if name == "PoseEstimator":
        from posetokens.inference.api import PoseEstimator

        return PoseEstimator
    raise AttributeError(f"module 'posetokens' has no attribute {name!r}")
