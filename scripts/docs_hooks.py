"""MkDocs hooks (mkdocs.yml ``hooks:``): the model-zoo tables are rendered from the registry at build time.

A page writes ``<!-- zoo:table FAMILY [FAMILY ...] -->`` (or ``all``, or ``lifting``: every family but the
image ones) where a table goes and ``<!-- zoo:conventions -->``
where the list of counting conventions goes. The names, the paper rows, the official figures and each family's
counting convention come from ``posetokens.registry``; our measured params / GMACs / paper-convention GFLOPs come
from ``docs/zoo_figures.json`` (``python scripts/docs_zoo.py``). A registered model without measured figures, or
figures of a model that is no longer registered, stops the build with the command that fixes it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "zoo_figures.json"
MARKER = re.compile(r"<!--\s*zoo:(table|conventions)\s*([^>]*?)\s*-->")

# official code base of each model, by name prefix (first match wins); a model without one shows "—"
OFFICIAL_REPOS: list[tuple[str, str]] = [
    ("tokenpose_multiview", "HowieMa/PPT"), ("ppt_", "HowieMa/PPT"), ("tokenpose_", "leeyegy/TokenPose"),
    ("gtpt_", "haonanwang0522/GTPT"), ("pct_", "Gengzigang/PCT"),
    ("hot_", "NationalGAILab/HoT"), ("tpc_", "NationalGAILab/HoT"),
    ("mixste_", "JinluZhang1126/MixSTE"), ("motionbert_", "Walter0807/MotionBERT"),
    ("mhformer_", "Vegetebird/MHFormer"), ("motionagformer_", "TaatiTeam/MotionAGFormer"),
]
IMAGE_FAMILIES = {"tokenpose", "gtpt", "pct", "tokenpose_mv"}
DATASETS = {"coco": "2D, COCO", "wholebody": "2D, COCO-WholeBody", "mpii": "2D, MPII"}


FAMILY_ORDER = ["tokenpose", "gtpt", "pct", "tokenpose_mv", "mixste", "motionbert", "mhformer", "motionagformer"]


def ordered_names() -> list[str]:
    """Zoo names grouped by family (the order above, others after), then by name."""
    import posetokens
    from posetokens.registry import get_entry

    def key(name: str) -> tuple[int, str]:
        fam = get_entry(name).family.removeprefix("hot_")
        return (FAMILY_ORDER.index(fam) if fam in FAMILY_ORDER else len(FAMILY_ORDER), name)

    return sorted(posetokens.list_models(), key=key)


class ZooDocsError(RuntimeError):
    """The zoo tables cannot be rendered (missing or stale figures, unknown family)."""


def official_repo(name: str) -> str:
    """The GitHub repository of a model's official code, as a Markdown link, or an em dash."""
    for prefix, repo in OFFICIAL_REPOS:
        if name.startswith(prefix):
            return f"[{repo}](https://github.com/{repo})"
    return "—"


def task(name: str, family: str) -> str:
    """A short task label from the zoo name."""
    if "multiview" in name:
        return "multi-view 2D/3D, H36M"
    if family in ("tokenpose", "gtpt", "pct"):
        if name.startswith("pct_tokenizer"):
            return "PCT stage 1 (tokenizer)"
        for key, label in DATASETS.items():
            if f"_{key}_" in name:
                return label
        return "2D"
    frames = name.rsplit("_", 1)[-1]
    return f"2D→3D lifting, H36M, {frames} frames" if frames.isdigit() else "2D→3D lifting, H36M"


def load_figures() -> dict[str, dict[str, Any]]:
    """Our measured figures, checked against the registry."""
    import posetokens

    names = set(posetokens.list_models())
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    missing, stale = sorted(names - set(figures)), sorted(set(figures) - names)
    if missing or stale:
        raise ZooDocsError(
            f"{FIGURES.relative_to(ROOT)} does not match the registry (no figures for {missing}, figures of "
            f"unregistered models {stale}): run `python scripts/docs_zoo.py --only {' '.join(missing) or '...'}`")
    return figures


def _fmt(v: float | None) -> str:
    from posetokens.engine.zoo import paper_figure

    return paper_figure(v)


def zoo_table(families: list[str]) -> str:
    """The Markdown table of the given families' models (``all``: every model)."""
    import posetokens
    from posetokens.registry import get_entry

    figures = load_figures()
    rows = [("| model | task | params (M) | paper params | GMACs (all) | GFLOPs, paper convention | paper GFLOPs "
            "| official code's figures (params / GFLOPs) | official code |"),
            "|---|---|---|---|---|---|---|---|---|"]
    known = {get_entry(n).family for n in posetokens.list_models()}
    if "lifting" in families:  # every family that is not a 2D or multi-view one
        families = [f for f in families if f != "lifting"] + sorted(known - IMAGE_FAMILIES)
    unknown = [f for f in families if f != "all" and f not in known]
    if unknown:
        raise ZooDocsError(f"zoo:table names unknown families {unknown}; known: {sorted(known)}")
    for name in ordered_names():
        entry = get_entry(name)
        if "all" not in families and entry.family not in families:
            continue
        f, p = figures[name], entry.paper
        official = "—" if p.official_params_m is None and p.official_gflops is None else \
            f"{_fmt(p.official_params_m)} / {_fmt(p.official_gflops)}"
        rows.append(f"| `{name}` | {task(name, entry.family)} | {f['params_m']:.3f} | {_fmt(p.params_m)} | "
                    f"{f['gmacs']:.3f} | {f['paper_gflops']:.3f} | {_fmt(p.gflops)} | {official} | "
                    f"{official_repo(name)} |")
    return "\n".join(rows)


def conventions() -> str:
    """One bullet per family: how its paper counted GFLOPs and params (``Family.convention``)."""
    import posetokens
    from posetokens.registry import get_entry, get_family

    out = []
    for fam in sorted({get_entry(n).family for n in posetokens.list_models()}):
        f = get_family(fam)
        text = f.convention or "no convention recorded"
        out.append(f"- **{fam}** (counter `{f.paper_counter}`, params `{f.param_counter}`): {text}")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the zoo markers of a page with the rendered tables."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "conventions":
            return conventions()
        return zoo_table(m.group(2).split() or ["all"])

    return MARKER.sub(sub, markdown)


README_START, README_END = "<!-- zoo:readme -->", "<!-- /zoo:readme -->"


def readme_table() -> str:
    """The README's compact zoo table: name, task, params, paper GFLOPs, official code (from the registry)."""
    from posetokens.registry import get_entry

    figures = load_figures()
    rows = ["| model | task | params (M) | paper GFLOPs | official code |", "|---|---|---|---|---|"]
    for name in ordered_names():
        entry = get_entry(name)
        rows.append(f"| `{name}` | {task(name, entry.family)} | {figures[name]['params_m']:.1f} | "
                    f"{_fmt(entry.paper.gflops)} | {official_repo(name)} |")
    return "\n".join(rows)


def update_readme(path: Path = ROOT / "README.md", check: bool = False) -> bool:
    """Rewrite the table between the README's zoo markers; returns whether it changed (``check``: write nothing)."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ZooDocsError(f"{path}: no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{readme_table()}\n{README_END}{tail}"
    if new != text and not check:
        path.write_text(new)
    return new != text


SPHINX_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj):(?=<code)")


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Drop the Sphinx roles (``:func:`x```) that some docstrings use; the code span stays."""
    return SPHINX_ROLE.sub("", html)
