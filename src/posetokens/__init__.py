"""posetokens: efficient token-based human pose estimation (TokenPose/PPT, GTPT, PCT, HoT) in PyTorch."""

from posetokens.registry import create_model, get_entry, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "get_entry", "list_models", "__version__"]
