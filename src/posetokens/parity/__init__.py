"""Parity against fixtures made with the official code (``shared/parity/<name>/``).

A model fixture folder holds ``config.json``, ``checkpoint.pth`` (official layout), ``inputs.pt`` and
``outputs.pt``. :func:`run_parity` picks the family handler that recognises the config, builds the model
the config describes (sizes come from the config, never from the folder name), converts the checkpoint,
runs the inputs in eval mode and compares every saved output. A pipeline fixture (``inputs.json`` with
``kind`` and ``method``; :mod:`posetokens.parity.pipeline`) is dispatched to the handler of its kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from posetokens.checkpoint import load_file
from posetokens.fileio import read_json
from posetokens.runtime import UserKeyError


@dataclass
class Comparison:
    """One compared output: the max abs difference (or mismatch count for indices) and its tolerance."""

    name: str
    value: float
    tol: float
    kind: str = "max_abs_diff"  # or "mismatched_indices"
    note: str = ""  # what was not compared because of this value, and why

    @property
    def ok(self) -> bool:
        """Whether the value is within tolerance (NaN never is)."""
        return bool(self.value <= self.tol)


@dataclass
class ParityReport:
    """All comparisons of one fixture."""

    fixture: str
    family: str
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def compared_values(self) -> bool:
        """Whether some output's values were compared (not only kept indices)."""
        return any(c.kind != "mismatched_indices" for c in self.comparisons)

    @property
    def passed(self) -> bool:
        """True when every comparison is within tolerance and some output's values were compared: a fixture whose
        outputs hold only kept indices (or nothing this family checks) does not pass."""
        return self.compared_values and all(c.ok for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "fixture": self.fixture,
            "family": self.family,
            "passed": self.passed,
            "results": {c.name: {c.kind: c.value, "tol": c.tol, "ok": c.ok, **({"note": c.note} if c.note else {})}
                        for c in self.comparisons},
        }

    def table(self) -> str:
        """Human-readable summary."""
        w = max(len(c.name) for c in self.comparisons) if self.comparisons else 10
        lines = [f"parity {self.fixture} ({self.family})"]
        for c in self.comparisons:
            note = f"  ({c.note})" if c.note else ""
            lines.append(f"  {c.name:<{w}}  {c.kind}={c.value:.3g}  tol={c.tol:g}  {'ok' if c.ok else 'FAIL'}{note}")
        if not self.compared_values:
            lines.append("  no output's values were compared: the fixture holds none of the outputs this family checks"
                         + (" besides kept indices" if self.comparisons else ""))
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


def max_abs_diff(a: Tensor, b: Tensor, name: str) -> float:
    """Max abs difference of two tensors of the same shape; NaN anywhere gives NaN."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"output {name!r}: shape {tuple(a.shape)} vs official {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def index_set_mismatch(a: Tensor, b: Tensor, name: str) -> float:
    """Number of elements by which two (B, K) index tensors differ when each row is compared as a set."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"output {name!r}: shape {tuple(a.shape)} vs official {tuple(b.shape)}")
    return float((a.sort(dim=-1).values != b.sort(dim=-1).values).sum())


def weights_mismatch(model: torch.nn.Module, converted: dict[str, Tensor]) -> float:
    """Number of converted official tensors not bitwise equal to the model tensor of the same name.

    Output comparisons cannot see every tensor (a key bias cancels in softmax), so handlers also compare
    the loaded weights tensor by tensor.
    """
    own = model.state_dict()
    return float(sum(k not in own or not torch.equal(own[k], v.to(own[k].dtype)) for k, v in converted.items()))


def official_tensors_missing(model: torch.nn.Module, official: Mapping[str, Any]) -> float:
    """Number of the official file's floating-point tensors found nowhere in ``model``, bitwise: as a whole model
    tensor, or as one of the equal pieces a model tensor splits into along one dimension (MHFormer's three
    positional tables concatenated into one). It does not go through the converter, so a tensor the converter
    dropped, altered or zeroed counts, which :func:`weights_mismatch` (the converted dict against the loaded
    model) cannot see: a key bias, say, which cancels in softmax and so in the outputs. (Two same-shape tensors
    swapped are found; the outputs show those.)"""
    own = [t.detach().float() for t in model.state_dict().values()]

    def found(v: Tensor) -> bool:
        for t in own:
            if t.dim() != v.dim():
                continue
            if t.shape == v.shape:
                if torch.equal(t, v):
                    return True
                continue
            for d in range(t.dim()):
                rest = [i for i in range(t.dim()) if i != d]
                if v.shape[d] and t.shape[d] % v.shape[d] == 0 and all(t.shape[i] == v.shape[i] for i in rest) and \
                        any(torch.equal(piece, v) for piece in t.split(v.shape[d], dim=d)):
                    return True
        return False

    return float(sum(not found(v.detach().float()) for v in official.values()
                     if isinstance(v, Tensor) and v.is_floating_point()))


Handler = Callable[[Path, dict, dict, dict, float], tuple[str, list[Comparison]]]
_HANDLERS: list[tuple[Callable[[dict], bool], Handler]] = []


def register_handler(matches: Callable[[dict], bool]) -> Callable[[Handler], Handler]:
    """Register a fixture handler for configs where ``matches(config)`` is true."""

    def deco(fn: Handler) -> Handler:
        _HANDLERS.append((matches, fn))
        return fn

    return deco


def _read_fixture(folder: Path) -> tuple[dict, dict, dict]:
    if not folder.is_dir():
        raise FileNotFoundError(f"parity fixture {folder}: " + ("is a file; expected a fixture folder" if folder.exists()
                                                               else "no such folder"))
    for name in ("config.json", "checkpoint.pth", "inputs.pt", "outputs.pt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"parity fixture {folder}: missing {name}")
    config = read_json(folder / "config.json", "parity fixture config")
    if not isinstance(config, dict):
        raise ValueError(f"{folder / 'config.json'}: expected a JSON object (the fixture's settings), got "
                         f"{type(config).__name__}")
    inputs, outputs = load_file(folder / "inputs.pt"), load_file(folder / "outputs.pt")
    for fname, d in (("inputs.pt", inputs), ("outputs.pt", outputs)):
        if not isinstance(d, dict):
            raise ValueError(f"{folder / fname}: expected a dict of tensors, got {type(d).__name__}")
    return config, inputs, outputs


def _load_handlers() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):  # every module here registers its family's handler
        importlib.import_module(f"{__name__}.{info.name}")


def has_handler(folder: str | Path) -> bool:
    """Whether some handler recognises the fixture in ``folder`` (model or pipeline), without running it."""
    _load_handlers()
    folder = Path(folder)
    from posetokens.parity.pipeline import handler_for, is_pipeline_fixture

    if is_pipeline_fixture(folder):
        try:
            handler_for(folder)
        except ValueError:
            return False
        return True
    if not (folder / "config.json").is_file():
        return False
    config = read_json(folder / "config.json", "parity fixture config")
    return any(matches(config) for matches, _ in _HANDLERS)


def run_parity(folder: str | Path, atol: float = 1e-4) -> ParityReport:
    """Run the official-output comparison of one fixture folder."""
    _load_handlers()
    folder = Path(folder)
    if not (math.isfinite(atol) and atol >= 0):
        raise ValueError(f"--atol must be a finite number >= 0, got {atol}")
    from posetokens.parity.pipeline import handler_for, is_pipeline_fixture

    try:  # the handlers read the fixture's own keys: one it misses is the fixture's fault, said in one line
        if is_pipeline_fixture(folder):  # shared/parity/pipeline/*: official pipeline functions, no model
            family, handler, spec = handler_for(folder)
            comps = handler(folder, spec)
            return ParityReport(folder.name, family, comps)
        config, inputs, outputs = _read_fixture(folder)
        for matches, handler in _HANDLERS:
            if matches(config):
                torch.manual_seed(0)
                with torch.no_grad():
                    family, comps = handler(folder, config, inputs, outputs, atol)
                name = config.get("fixture")  # some fixtures store a dict of generation settings there
                return ParityReport(name if isinstance(name, str) else folder.name, family, comps)
    except KeyError as e:
        if isinstance(e, UserKeyError):
            raise
        raise UserKeyError(f"{folder}: the fixture misses the key {e.args[0] if e.args else '?'!r} (in its "
                           "config.json, inputs or outputs)") from e
    raise ValueError(
        f"{folder / 'config.json'}: no parity handler recognises this fixture "
        f"(official_model_name={config.get('official_model_name')!r})"
    )
