"""The ``posetokens`` command line: models, flops, convert, parity."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_models(args: argparse.Namespace) -> int:
    from posetokens.registry import get_entry, list_models

    for name in list_models(args.filter or ""):
        print(f"{name:32s} {get_entry(name).family}")
    return 0


def _cmd_flops(args: argparse.Namespace) -> int:
    from posetokens.engine.zoo import efficiency_table, model_figures

    if args.json:
        print(json.dumps(model_figures(args.name)))
    else:
        print(efficiency_table([args.name]))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from posetokens.convert import convert_checkpoint

    out = convert_checkpoint(args.model, args.official, args.out)
    print(f"converted {args.official} -> {out} ({args.model})")
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from posetokens.parity import run_parity

    report = run_parity(args.dir, atol=args.atol)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.table())
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``posetokens`` command."""
    p = argparse.ArgumentParser(prog="posetokens", description="Efficient token-based human pose estimation.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("models", help="list the zoo model names")
    s.add_argument("filter", nargs="?", help="only names containing this text")
    s.set_defaults(fn=_cmd_models)

    s = sub.add_parser("flops", help="params, true GMACs and paper-convention GFLOPs of a zoo model")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help='print {"model", "params_m", "gmacs", "paper_gflops"}')
    s.set_defaults(fn=_cmd_flops)

    s = sub.add_parser("convert", help="convert an official checkpoint to ours")
    s.add_argument("--model", required=True, help="zoo model name")
    s.add_argument("--official", required=True, help="official checkpoint (.pth)")
    s.add_argument("--out", required=True, help="output file")
    s.set_defaults(fn=_cmd_convert)

    s = sub.add_parser("parity", help="compare against a fixture made with the official code")
    s.add_argument("dir", help="fixture folder with config.json, checkpoint.pth, inputs.pt, outputs.pt")
    s.add_argument("--json", action="store_true")
    s.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    s.set_defaults(fn=_cmd_parity)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (KeyError, ValueError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"posetokens {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
