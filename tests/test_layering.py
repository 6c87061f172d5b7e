"""Dependencies point down (the brief; docs/contributing.md "Layout"): models know no data or engine, inference needs
no trainer, the data and evaluation packages know no model. Read from the source with ``ast``: every import of a
``posetokens`` module, at module level or inside a function (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:`` (annotations only)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ALL = {"checkpoint", "cli", "codecs", "convert", "data", "engine", "evaluation", "export", "fileio", "geometry",
       "inference", "layers", "media", "models", "parity", "protocols", "quickstart", "registry", "runtime"}
TOP = {"cli", "quickstart", "parity"}  # the commands and the parity harness: nothing of the library imports them

# what each package may import besides itself (a whitelist for the lowest layers, where every import is a smell)
MAY_IMPORT = {
    "runtime": set(),
    "fileio": {"runtime"},
    "media": {"fileio", "runtime"},
    "layers": {"runtime"},
    "codecs": {"runtime"},
    "models": {"layers", "registry", "runtime"},
}
# what the others must not import
MUST_NOT = {
    "data": {"models", "registry", "checkpoint", "convert", "engine", "evaluation", "inference", "export", "protocols"},
    "evaluation": {"models", "registry", "checkpoint", "convert", "engine", "inference", "export", "protocols"},
    "protocols": {"models", "checkpoint", "convert", "engine", "inference", "export"},
    "inference": {"engine"},  # inference needs no trainer
    "export": {"engine"},
    "registry": {"data", "engine", "inference", "export", "evaluation", "protocols"},
    "geometry": {"models", "registry", "checkpoint", "convert", "engine", "inference", "export", "evaluation",
                 "protocols"},
    "checkpoint": {"models", "engine", "inference", "export", "evaluation"},
    "convert": {"engine", "inference", "export", "evaluation"},
}
# known exceptions, each with its reason; one that no longer occurs fails too (remove it from here)
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _imports(src: Path = SRC) -> list[tuple[str, str, int]]:
    """(importing module, imported posetokens package, line) for every import in ``src/posetokens``."""
    found = []
    for path in sorted((src / "posetokens").rglob("*.py")):
        mod = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for node in tree.body
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    names = [".".join(parts + ([node.module] if node.module else []))]
                else:
                    names = [node.module or ""]
                if names[0] == "posetokens":  # from posetokens import runtime (a module), __version__ (not one)
                    names = [f"posetokens.{a.name}" for a in node.names if a.name in ALL]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            found += [(mod, n.split(".")[1], node.lineno) for n in names if n.startswith("posetokens.")]
    return found


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_packages_are_the_ones_the_rules_name() -> None:
    """A new top-level module or package gets its place in the rules here."""
    on_disk = {p.stem for p in (SRC / "posetokens").iterdir()
               if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()}
    assert on_disk == ALL


def test_dependencies_point_down() -> None:
    """No package imports what its layer must not know; the exceptions are the listed ones, each still needed."""
    bad, used = [], set()
    for mod, target, line in _imports():
        own = _package(mod)
        if target == own or own in TOP or own in ("", "__main__"):
            continue
        allowed = MAY_IMPORT[own] if own in MAY_IMPORT else ALL - MUST_NOT.get(own, set()) - TOP
        if target in allowed:
            continue
        if (mod, target) in EXCEPTIONS:
            used.add((mod, target))
            continue
        bad.append(f"{mod}:{line} imports posetokens.{target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)
    assert used == set(EXCEPTIONS), f"exceptions that no longer occur: {sorted(set(EXCEPTIONS) - used)}"


def test_the_reader_finds_lazy_and_relative_imports_and_skips_annotations(tmp_path: Path) -> None:
    """A planted package, by hand: a relative import inside a function, an absolute one, ``from posetokens import``
    of a module, and one under ``if TYPE_CHECKING:`` (left out)."""
    models = tmp_path / "posetokens" / "models"
    models.mkdir(parents=True)
    (tmp_path / "posetokens" / "__init__.py").write_text("")
    (models / "__init__.py").write_text("from .tiny import Tiny\n")
    (models / "tiny.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from posetokens import runtime\n"
        "if TYPE_CHECKING:\n"
        "    from posetokens.data import metainfo\n"
        "def f():\n"
        "    from ..engine import trainer\n"
        "    import posetokens.inference.api\n")
    assert sorted(_imports(tmp_path)) == [("posetokens.models", "models", 1), ("posetokens.models.tiny", "engine", 6),
                                          ("posetokens.models.tiny", "inference", 7),
                                          ("posetokens.models.tiny", "runtime", 2)]
