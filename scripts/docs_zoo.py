"""Measure every zoo model's params, true GMACs and paper-convention GFLOPs into docs/zoo_figures.json.

``python scripts/docs_zoo.py`` builds each registered model (random weights, batch 1) and stores
``posetokens.engine.zoo.model_figures`` for it; ``--only NAME ...`` re-measures some and keeps the rest. The docs
build renders the model-zoo tables from the registry (names, paper rows, counting conventions) plus this file
(scripts/docs_hooks.py), and refuses to build when a registered model has no row here, so the zoo page cannot
drift from the registry; the README's compact zoo table is rewritten from the same figures (``--readme`` does
only that). All models take about 100 s on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "zoo_figures.json"


def main(argv: list[str] | None = None) -> int:
    """Measure and write the figures."""
    import torch

    import posetokens
    from posetokens.engine.zoo import model_figures

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME", help="re-measure these models only")
    ap.add_argument("--readme", action="store_true", help="only rewrite the README's zoo table from the figures")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "scripts"))
    from docs_hooks import update_readme

    if args.readme:
        print("README.md zoo table", "updated" if update_readme() else "unchanged")
        return 0
    torch.set_num_threads(1)
    names = posetokens.list_models()
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures = {k: v for k, v in figures.items() if k in names}  # models gone from the registry drop out
    for name in args.only or names:
        figures[name] = {k: v for k, v in model_figures(name).items() if k != "model"}
        print(name, figures[name], flush=True)
    tmp = FIGURES.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(figures.items())), indent=1) + "\n")
    tmp.replace(FIGURES)
    print("README.md zoo table", "updated" if update_readme() else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
