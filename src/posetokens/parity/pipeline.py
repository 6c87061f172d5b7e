"""Pipeline parity: fixtures made by running the official pipeline functions (``shared/parity/pipeline/``).

A pipeline fixture is a folder with ``inputs.json`` (which begins with ``kind`` and ``method``), optional
``inputs.npz``, ``outputs.json`` / ``outputs.npz`` and a README that states the tolerance. Handlers register
for a ``kind`` and the ``method`` values they serve, and are chosen from those two fields only: sizes,
settings and seeds are read from the fixture, never from the folder name. Data the fixture references
(``data/coco/test_coco.json``) is relative to the ``shared/`` folder the fixture lives under
(:func:`shared_path`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from posetokens.fileio import read_json
from posetokens.parity import Comparison

PipelineHandler = Callable[[Path, dict[str, Any]], list[Comparison]]
_PIPELINE_HANDLERS: dict[tuple[str, str], PipelineHandler] = {}

__all__ = [
    "is_pipeline_fixture",
    "load_arrays",
    "load_json",
    "register_pipeline_handler",
    "shared_path",
]


def register_pipeline_handler(kind: str, *methods: str) -> Callable[[PipelineHandler], PipelineHandler]:
    """Register ``fn(folder, inputs_json) -> comparisons`` for fixtures of ``kind`` and each of ``methods``."""

    def deco(fn: PipelineHandler) -> PipelineHandler:
        for m in methods:
            if (kind, m) in _PIPELINE_HANDLERS:
                raise ValueError(f"pipeline handler for kind={kind!r}, method={m!r} is registered twice")
            _PIPELINE_HANDLERS[(kind, m)] = fn
        return fn

    return deco


def is_pipeline_fixture(folder: Path) -> bool:
    """A folder with ``inputs.json`` and no model ``config.json``."""
    return (folder / "inputs.json").is_file() and not (folder / "config.json").is_file()


def load_json(path: Path) -> Any:
    """A fixture's JSON file, with an error that names it."""
    if not path.is_file():
        raise FileNotFoundError(f"pipeline fixture: missing {path}")
    return read_json(path, "pipeline fixture")


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """A fixture's ``.npz`` as a dict of arrays (no pickles), with an error that names it."""
    if not path.is_file():
        raise FileNotFoundError(f"pipeline fixture: missing {path}")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def shared_path(folder: Path, relative: str) -> Path:
    """Resolve a path a fixture gives relative to ``shared/`` (e.g. ``data/coco/test_coco.json``).

    The fixture's own ancestors are tried first (a fixture set kept elsewhere carries its own ``data/``),
    then ``$POSETOKENS_SHARED``, then the ``shared/`` folder beside a source checkout. A missing file raises
    ``FileNotFoundError`` naming the fixture and the path.
    """
    candidates = [p / relative for p in Path(folder).resolve().parents]
    env = os.environ.get("POSETOKENS_SHARED")
    if env:
        candidates.append(Path(env) / relative)
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / relative)  # repo/../shared
    for c in candidates:
        if c.exists():
            return c
    raise FileNotFoundError(
        f"pipeline fixture {folder}: referenced file {relative!r} not found under any parent folder"
        + (f" or under POSETOKENS_SHARED={env}" if env else " (set POSETOKENS_SHARED to the shared folder)")
    )


def handler_for(folder: Path) -> tuple[str, PipelineHandler, dict[str, Any]]:
    """The handler serving this fixture's ``kind``/``method``, and its parsed ``inputs.json``."""
    import importlib
    import pkgutil

    import posetokens.parity as pkg

    for info in pkgutil.iter_modules(pkg.__path__):  # the pipeline_* modules register their handlers on import
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    spec = load_json(folder / "inputs.json")
    if not isinstance(spec, dict) or "kind" not in spec or "method" not in spec:
        raise ValueError(f"{folder / 'inputs.json'}: expected an object beginning with 'kind' and 'method'")
    key = (str(spec["kind"]), str(spec["method"]))
    if key not in _PIPELINE_HANDLERS:
        known = sorted(f"{k}/{m}" for k, m in _PIPELINE_HANDLERS)
        raise ValueError(f"{folder / 'inputs.json'}: no pipeline handler for kind={key[0]!r}, method={key[1]!r}; "
                         f"known: {known}")
    return f"pipeline:{key[0]}/{key[1]}", _PIPELINE_HANDLERS[key], spec


def max_abs(a: Any, b: Any, name: str) -> float:
    """Max abs difference of two arrays of the same shape (NaN anywhere gives NaN; empty gives 0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output {name!r}: shape {a.shape} vs official {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0


def max_rel(a: Any, b: Any, name: str, floor: float = 1e-12) -> float:
    """Max relative difference ``|a - b| / max(|b|, floor)``; two zeros count as equal."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output {name!r}: shape {a.shape} vs official {b.shape}")
    if not a.size:
        return 0.0
    return float((np.abs(a - b) / np.maximum(np.abs(b), floor)).max())


def mismatches(a: Any, b: Any, name: str) -> float:
    """Number of elements that differ exactly (shapes must match)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"output {name!r}: shape {a.shape} vs official {b.shape}")
    return float((a != b).sum())
