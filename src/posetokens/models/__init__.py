"""Model families. Importing this package registers every family and zoo variant."""

from . import tokenpose  # noqa: F401
