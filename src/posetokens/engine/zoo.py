"""Efficiency figures of zoo models: params, true GMACs and the paper-convention GFLOPs."""

from __future__ import annotations

from typing import Any

from posetokens.engine.flops import paper_gflops, paper_params, true_macs
from posetokens.registry import create_model, get_entry, get_family


def model_figures(name: str) -> dict[str, Any]:
    """``{"model", "params_m", "gmacs", "paper_gflops"}`` for one zoo model at its input size (batch 1).

    ``params_m`` counts parameters the way the family's paper did (``Family.param_counter``; the fixed
    sine PE is a buffer, as the papers count); ``gmacs`` counts
    every multiply-accumulate; ``paper_gflops`` is counted the way the family's paper table counted.
    """
    model = create_model(name).eval()
    entry = get_entry(name)
    family = get_family(entry.family)
    out: dict[str, Any] = {
        "model": name,
        "params_m": round(paper_params(model, family.param_counter) / 1e6, 6),  # 6 decimals: printed to 3 without
        "gmacs": round(true_macs(model, model.dummy_inputs(1)) / 1e9, 6),  # a second rounding (9.0645 -> 9.065
        "paper_gflops": round(paper_gflops(model, family.paper_counter), 6),  # for TokenPose-L/D6's 9.06446)
    }
    views = model.cfg.num_views if model.task == "multiview" else None
    if views:  # multi-view models: gmacs / paper_gflops above are for one sample of all views together
        out |= {
            "num_views": views,
            "gmacs_per_view": round(out["gmacs"] / views, 6),
            "paper_gflops_per_view": round(out["paper_gflops"] / views, 6),
            "per_view_note": f"gmacs and paper_gflops count one sample of all {views} views; *_per_view divide by {views}",
        }
    return out


def efficiency_table(names: list[str]) -> str:
    """A Markdown table of our figures beside the paper's."""
    rows = [
        "| model | params (M) | paper params | GMACs (all) | GFLOPs, paper convention | paper GFLOPs |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        f, p = model_figures(name), get_entry(name).paper
        rows.append(f"| {name} | {f['params_m']:.3f} | {paper_figure(p.params_m)} | {f['gmacs']:.3f} | "
                    f"{f['paper_gflops']:.3f} | {paper_figure(p.gflops)} |")
    return "\n".join(rows)


def paper_figure(v: float | None) -> str:
    """A paper's printed figure as the tables show it: a whole number keeps one decimal (1.0, 35.0, as printed),
    others as stored; an em dash for none."""
    return "—" if v is None else f"{v:.1f}" if float(v).is_integer() else f"{v:g}"
