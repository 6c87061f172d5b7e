"""Small file helpers shared by data loading and evaluation (standard library only)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike


def read_json(path: PathLike, what: str = "annotation") -> Any:
    """Load a json file; a missing file gives ``FileNotFoundError``, bad JSON a ``ValueError`` naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: malformed JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not a UTF-8 text/JSON file ({e})") from e
