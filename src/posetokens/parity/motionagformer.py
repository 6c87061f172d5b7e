"""Parity handler for MotionAGFormer and HoT w. MotionAGFormer fixtures (TaatiTeam/MotionAGFormer, NationalGAILab/HoT).

Recipe (fixture READMEs): the temporal graph keeps each frame's top-k most similar frames, and near-ties flip
under float rounding; HoT's cluster is sensitive to float rounding too. So:

1. (HoT) the token pruning cluster alone on the saved tokens and noise must return the saved kept frames;
2. every layer's own temporal neighbour sets, computed on the way through the run of step 3, must equal the
   saved ones on every row whose relative similarity gap exceeds ``GAP_TOL`` (rows below may legitimately flip);
3. end to end with the saved kept frames and neighbour sets forced, the output within the README tolerance.

Converted weights are also compared tensor by tensor (BatchNorm counters are invisible in eval outputs).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from posetokens.checkpoint import load_file
from posetokens.convert import load_weights, unwrap_state_dict
from posetokens.layers import FramePruneCfg, choose_frames
from posetokens.models.motionagformer import (
    MotionAGFormer,
    MotionAGFormerCfg,
    checkpoint_filter_fn,
    neighbours_to_adjacency,
)

from . import (
    Comparison,
    index_set_mismatch,
    max_abs_diff,
    official_tensors_missing,
    register_handler,
    weights_mismatch,
)

_VARIANTS = ("motionagformer", "hot_motionagformer")
_README_ATOL = 1e-5  # both fixtures' suggested tolerance with the kept frames and neighbour sets forced
GAP_TOL = 1e-5  # rows with a smaller relative gap between the k-th and (k+1)-th similarity are near-ties
_HOT_OUTPUTS = {"index", "tpc_tokens", "tpc_noise", "tpc_topk_unsorted"}


def cfg_from_fixture(config: dict) -> MotionAGFormerCfg:
    """Build a :class:`MotionAGFormerCfg` from a fixture's ``config.json`` (sizes from the config only)."""
    variant = config.get("variant", "")
    base = "hot_motionagformer" if variant.startswith("hot_") else "motionagformer"
    if not variant.startswith(base) or base not in _VARIANTS:
        raise ValueError(f"config.json: unknown motionagformer variant {variant!r}; known: {list(_VARIANTS)}")
    dim, heads = int(config["embed_dim"]), int(config["num_heads"])
    scale = float(config.get("attn_scale", (dim // heads) ** -0.5))
    if abs(scale - (dim // heads) ** -0.5) > 1e-9:
        raise ValueError(f"config.json: attn_scale {scale} is not head_dim**-0.5 = {(dim // heads) ** -0.5}")
    released = {"hierarchical": False, "use_tcn": False, "graph_only": False, "use_temporal_similarity": True,
                "use_adaptive_fusion": True}  # what every release uses; the rest is not built here
    unused = {k: v for k, v in config.get("unused_options", {}).items() if k in released and v != released[k]}
    if unused:
        raise ValueError(f"config.json: unsupported MotionAGFormer options {unused}")
    graph = config.get("gcn", {}).get("spatial_graph", {}).get("row_i_receives_from")
    joints = int(config["num_joints"])
    joint_graph = tuple(tuple(int(j) for j in graph[str(i)]) for i in range(joints)) if graph else None
    frames = int(config.get("maxlen", config["frames"]))
    prune = FramePruneCfg()
    if base == "hot_motionagformer":
        recover = int(config.get("recover_num", frames))
        if recover != frames or int(config["frames"]) != frames:
            raise ValueError(f"config.json: frames {config['frames']} / recover_num {recover} differ from maxlen {frames}")
        prune = FramePruneCfg(strategy="cluster", keep=int(config["token_num"]), layer=int(config["layer_index"]),
                              k=int(config.get("tpc", {}).get("k", 2)), recovery="attention", pos_embed=True)
    ls = config.get("layer_scale_init", 1e-5)
    return MotionAGFormerCfg(
        num_frames=frames,
        num_joints=joints,
        in_channels=int(config["in_channels"]),
        out_channels=int(config.get("out_channels", 3)),
        dim=dim,
        depth=int(config["depth"]),
        heads=heads,
        neighbours=int(config["neighbour_num"]),
        mlp_hidden=int(config["mlp_hidden_dim"]),
        dim_rep=int(config["dim_rep"]),
        qkv_bias=bool(config.get("attention", {}).get("qkv_bias", False)),
        layer_scale_init=None if ls is None else float(ls),
        joint_graph=joint_graph,
        prune=prune,
    )


def graph_row_mismatch(own: list[Tensor], outputs: dict, gap_tol: float = GAP_TOL) -> float:
    """Rows (over all layers) whose computed temporal neighbour set differs from the saved ``gcn_t_nbr.{i}``
    although the saved gap ``gcn_t_gap.{i}`` exceeds ``gap_tol`` (a clear decision, not a near-tie)."""
    bad = 0
    for i, adj in enumerate(own):
        ref = neighbours_to_adjacency(outputs[f"gcn_t_nbr.{i}"], adj.shape[1])
        if ref.shape != adj.shape:
            raise ValueError(f"output 'gcn_t_nbr.{i}': graphs {tuple(ref.shape)} vs model {tuple(adj.shape)}")
        clear = outputs[f"gcn_t_gap.{i}"] > gap_tol
        bad += int(((adj != ref).any(dim=-1) & clear).sum())
    return float(bad)


@register_handler(lambda c: c.get("family") == "motionagformer")
def motionagformer_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare MotionAGFormer (and HoT-MotionAGFormer) with the official outputs of one fixture."""
    cfg = cfg_from_fixture(config)
    if set(inputs) != {"x"}:
        raise ValueError(f"inputs.pt: expected exactly {{'x'}}, got {sorted(inputs)}")
    graph_keys = {f"gcn_t{kind}.{i}" for kind in ("_nbr", "_gap") for i in range(cfg.depth)}
    allowed = {"out"} | graph_keys | (_HOT_OUTPUTS if cfg.prune.active else set())
    unknown = set(outputs) - allowed
    if unknown:
        raise ValueError(f"outputs.pt: unknown {config['variant']} output(s) {sorted(unknown)}; known: {sorted(allowed)}")
    need = {"out"} | graph_keys | ({"index", "tpc_noise", "tpc_tokens"} if cfg.prune.active else set())
    missing = need - set(outputs)
    if missing:
        raise ValueError(f"outputs.pt: this fixture needs {sorted(missing)} (the forced parity recipe)")
    tol = min(atol, _README_ATOL)
    model = MotionAGFormer(cfg).eval()
    ckpt_path = folder / "checkpoint.pth"
    ckpt = load_file(ckpt_path)
    family = "hot_motionagformer" if cfg.prune.active else "motionagformer"
    load_weights(model, ckpt, family, source=str(ckpt_path))
    official = unwrap_state_dict(ckpt, str(ckpt_path))
    converted = checkpoint_filter_fn(official, model)
    comps = [Comparison("weights", weights_mismatch(model, converted), 0.0, "mismatched_tensors"),
             Comparison("weights[official tensors found]", official_tensors_missing(model, official), 0.0,
                        "missing_tensors")]
    x = inputs["x"].float()
    neighbours = [outputs[f"gcn_t_nbr.{i}"] for i in range(cfg.depth)]
    keep = None
    if cfg.prune.active:
        idx_kind = "mismatched_indices"
        # (1) the token pruning cluster alone, on the saved tokens and noise (both index tensors ascending)
        unit = choose_frames(cfg.prune, outputs["tpc_tokens"].float(), noise=outputs["tpc_noise"])
        comps.append(Comparison("tpc/index", index_set_mismatch(unit, outputs["index"], "index"), 0.0, idx_kind))
        if "tpc_topk_unsorted" in outputs:  # the official top-k order is arbitrary: compare as sets
            comps.append(Comparison("tpc/topk_unsorted",
                                    index_set_mismatch(unit, outputs["tpc_topk_unsorted"], "tpc_topk_unsorted"), 0.0, idx_kind))
        keep = outputs["index"]
    # (2) + (3): one run with the kept frames and neighbour sets forced, recording every layer's own graph
    trace = model.forward_trace(x, keep_index=keep, neighbours=neighbours)
    if cfg.prune.active:
        comps.append(Comparison("tpc_tokens", max_abs_diff(trace.tokens, outputs["tpc_tokens"], "tpc_tokens"), tol))
    comps.append(Comparison(f"gcn_t_nbr (gap > {GAP_TOL:g})", graph_row_mismatch(trace.adjacency, outputs), 0.0,
                            "mismatched_rows"))
    comps.append(Comparison("forced/out", max_abs_diff(trace.out, outputs["out"], "out"), tol))
    return family, comps
