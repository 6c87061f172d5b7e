"""Parity handler for MotionBERT (DSTformer) and HoT w. MotionBERT fixtures (NationalGAILab/HoT).

Recipe (fixture README): HoT's cluster breaks density ties with random noise and is sensitive to float
rounding, so (1) the token pruning cluster is checked alone on the saved tokens and noise, (2) the model
runs end to end with the saved noise injected (kept frames exact, output within tolerance), and (3) the
saved kept frames are forced into the model. Converted weights are also compared tensor by tensor, because
some (the recovery's q/k projections) cannot be seen in the output.
"""

from __future__ import annotations

from pathlib import Path


from posetokens.convert import load_weights, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.layers import FramePruneCfg, choose_frames
from posetokens.models.motionbert import DSTformer, DSTformerCfg, checkpoint_filter_fn

from . import Comparison, index_set_mismatch, max_abs_diff, official_tensors_missing, register_handler, weights_mismatch

_VARIANTS = ("motionbert", "hot_motionbert")
_README_ATOL = 1e-5  # the fixtures' suggested tolerance for a re-implementation
_HOT_OUTPUTS = {"out", "index", "tpc_tokens", "tpc_noise", "tpc_topk_unsorted"}


def cfg_from_fixture(config: dict) -> DSTformerCfg:
    """Build a :class:`DSTformerCfg` from a fixture's ``config.json`` (sizes from the config only)."""
    variant = config.get("variant")
    if variant not in _VARIANTS:
        raise ValueError(f"config.json: unknown motionbert variant {variant!r}; known: {list(_VARIANTS)}")
    dim, heads = int(config["dim_feat"]), int(config["num_heads"])
    scale = float(config.get("attn_scale", (dim // heads) ** -0.5))
    if abs(scale - (dim // heads) ** -0.5) > 1e-9:
        raise ValueError(f"config.json: attn_scale {scale} is not head_dim**-0.5 = {(dim // heads) ** -0.5}")
    maxlen = int(config["maxlen"])
    prune = FramePruneCfg()
    if variant == "hot_motionbert":
        tpc = config.get("tpc", {})
        recover = int(config.get("recover_num", maxlen))
        if recover != maxlen:
            raise ValueError(f"config.json: recover_num {recover} differs from maxlen {maxlen}")
        prune = FramePruneCfg(
            strategy="cluster",
            keep=int(config["token_num"]),
            layer=int(config["layer_index"]),
            k=int(tpc.get("k", 2)),
            recovery="attention",
            pos_embed=bool(tpc.get("pos_embed_token", True)),
        )
    return DSTformerCfg(
        num_frames=maxlen,
        num_joints=int(config["num_joints"]),
        in_channels=int(config["in_channels"]),
        out_channels=int(config.get("out_channels", 3)),
        dim=dim,
        depth=int(config["depth"]),
        heads=heads,
        mlp_hidden=int(config["mlp_hidden_dim"]),
        dim_rep=int(config["dim_rep"]),
        qkv_bias=bool(config.get("qkv_bias", True)),
        drop_path=float(config.get("drop_path_rate", 0.0)),
        att_fuse=bool(config.get("att_fuse", True)),
        norm_eps=float(config.get("norm_eps", 1e-6)),
        prune=prune,
    )




@register_handler(lambda c: c.get("family") == "motionbert")
def motionbert_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare the DSTformer (and HoT-MotionBERT) with the official outputs of one fixture."""
    cfg = cfg_from_fixture(config)
    unknown_in = set(inputs) - {"x"}
    if unknown_in or "x" not in inputs:
        raise ValueError(f"inputs.pt: expected exactly {{'x'}}, got {sorted(inputs)}")
    allowed = _HOT_OUTPUTS if cfg.prune.active else {"out"}
    unknown = set(outputs) - allowed
    if unknown:
        raise ValueError(f"outputs.pt: unknown {config['variant']} output(s) {sorted(unknown)}; known: {sorted(allowed)}")
    if "out" not in outputs:
        raise ValueError("outputs.pt: no 'out' to compare")
    tol = min(atol, _README_ATOL)
    model = DSTformer(cfg).eval()
    ckpt_path = folder / "checkpoint.pth"
    ckpt = load_file(ckpt_path)
    load_weights(model, ckpt, "motionbert", source=str(ckpt_path))
    official = unwrap_state_dict(ckpt, str(ckpt_path))
    converted = checkpoint_filter_fn(official, model)
    comps = [Comparison("weights", weights_mismatch(model, converted), 0.0, "mismatched_tensors"),
             Comparison("weights[official tensors found]", official_tensors_missing(model, official), 0.0,
                        "missing_tensors")]
    x = inputs["x"].float()

    if not cfg.prune.active:
        comps.append(Comparison("out", max_abs_diff(model(x), outputs["out"], "out"), tol))
        return "motionbert", comps

    missing = {"out", "index", "tpc_noise"} - set(outputs)
    if missing:
        raise ValueError(f"outputs.pt: a HoT fixture needs {sorted(missing)} (the official noise and selection)")
    noise, ref_index = outputs["tpc_noise"], outputs["index"]
    idx_kind = "mismatched_indices"
    # both index tensors are ascending, so the set comparison is the exact one
    # (1) the token pruning cluster alone, on the saved tokens and noise
    if "tpc_tokens" in outputs:
        unit = choose_frames(cfg.prune, outputs["tpc_tokens"].float(), noise=noise)
        comps.append(Comparison("tpc/index", index_set_mismatch(unit, ref_index, "index"), 0.0, idx_kind))
        if "tpc_topk_unsorted" in outputs:  # official topk order is arbitrary: compare as sets
            comps.append(
                Comparison("tpc/topk_unsorted", index_set_mismatch(unit, outputs["tpc_topk_unsorted"], "tpc_topk_unsorted"), 0.0, idx_kind)
            )
    # (2) end to end with the official noise injected
    trace = model.forward_trace(x, noise=noise)
    if "tpc_tokens" in outputs:
        comps.append(Comparison("tpc_tokens", max_abs_diff(trace.tokens, outputs["tpc_tokens"], "tpc_tokens"), tol))
    comps.append(Comparison("index", index_set_mismatch(trace.index, ref_index, "index"), 0.0, idx_kind))
    comps.append(Comparison("out", max_abs_diff(trace.out, outputs["out"], "out"), tol))
    # (3) the official selection forced into the model
    forced = model(x, keep_index=ref_index)
    comps.append(Comparison("forced_index/out", max_abs_diff(forced, outputs["out"], "out"), tol))
    return "motionbert", comps
