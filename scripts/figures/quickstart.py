"""Regenerate the quickstart pictures of the docs from trained models (not random weights).

``python scripts/figures/quickstart.py [--model ppt|gtpt_t] [--out DIR]`` runs the quickstart (it trains the
pair on synthetic people: about 13 minutes for ``ppt``, 78 for ``gtpt_t`` on 2 cores), then copies its two
pictures into ``docs/``: ``quickstart_skeletons.png`` / ``quickstart_kept_tokens.png`` (PPT) or
``quickstart_gtpt_skeletons.png`` / ``quickstart_gtpt_kept_tokens.png`` (GTPT-T). ``--reuse`` copies the
pictures of an earlier run in ``--out`` without training again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"ppt": ("quickstart_skeletons.png", "quickstart_kept_tokens.png"),
           "gtpt_t": ("quickstart_gtpt_skeletons.png", "quickstart_gtpt_kept_tokens.png")}


def main(argv: list[str] | None = None) -> int:
    """Run the quickstart (unless ``--reuse``) and copy its pictures into docs/."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ppt", choices=sorted(TARGETS))
    ap.add_argument("--out", default=None, help="quickstart output folder (default outputs/quickstart[_gtpt_t])")
    ap.add_argument("--reuse", action="store_true", help="copy the pictures of an earlier run, do not train")
    args = ap.parse_args(argv)
    out = Path(args.out or ("outputs/quickstart" if args.model == "ppt" else f"outputs/quickstart_{args.model}"))
    if not args.reuse:
        from posetokens.quickstart import run

        run(args.model, out)
    skeletons, tokens = TARGETS[args.model]
    for src, dst in ((out / "skeletons.png", skeletons), (out / "kept_tokens.png", tokens)):
        if not src.exists():
            sys.exit(f"{src}: not found; run without --reuse (or give the quickstart's --out)")
        shutil.copy(src, ROOT / "docs" / dst)
        print(f"{src} -> docs/{dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
