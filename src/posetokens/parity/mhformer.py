"""Parity handler for MHFormer and TPC w. MHFormer fixtures (NationalGAILab/HoT, model/mhformer).

Recipe (fixture README): the TPC selection is decided by the density noise and by float rounding in
``cdist``, so (1) the token pruning cluster is checked alone on the saved tokens and noise (kept frames
exact), (2) the model runs end to end with the saved noise injected, on the explicit-softmax attention
path the official code uses: its tokens are then bitwise the official ones and so must be the selection
(with other tokens, e.g. under another thread count, the official code itself selects differently, so the
end-to-end selection is then not compared), and (3) the saved selection is forced into the model (``out``,
``out_center``, and the flip pass ``out_flip_given_index``). Converted weights are also compared tensor by tensor, because some (key biases,
the key LayerNorms' biases, the BatchNorm counter) cannot be seen in any output.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from posetokens.convert import load_weights, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.layers import FramePruneCfg, choose_frames, dpc_knn_score, use_fused_attn
from posetokens.models.mhformer import NUM_HYPOTHESES, MHFormer, MHFormerCfg, checkpoint_filter_fn

from . import Comparison, index_set_mismatch, max_abs_diff, official_tensors_missing, register_handler, weights_mismatch

_VARIANTS = ("mhformer", "tpc_mhformer")
_PLAIN_OUTPUTS = {"out", "out_center", "out_flip"}
_TPC_OUTPUTS = {"out", "index", "tpc_tokens", "tpc_noise", "tpc_topk_unsorted", "out_center", "out_flip_given_index"}
_INPUTS = {"x", "x_flip"}


def _int(config: dict, key: str, section: dict | None = None) -> int:
    src = config if section is None else section
    if key not in src:
        raise ValueError(f"config.json: missing {key!r}")
    return int(src[key])


def _check_scale(scale: float | None, dim: int, heads: int, where: str) -> None:
    if scale is not None and abs(float(scale) - (dim // heads) ** -0.5) > 1e-9:
        raise ValueError(f"config.json: {where}.attn_scale {scale} is not head_dim**-0.5 = {(dim // heads) ** -0.5}")


def cfg_from_fixture(config: dict) -> MHFormerCfg:
    """Build an :class:`MHFormerCfg` from a fixture's ``config.json`` (sizes from the config only)."""
    variant = config.get("variant")
    if variant not in _VARIANTS:
        raise ValueError(f"config.json: unknown mhformer variant {variant!r}; known: {list(_VARIANTS)}")
    if int(config.get("in_channels", 2)) != 2 or int(config.get("out_channels", 3)) != 3:
        raise ValueError("config.json: MHFormer lifts 2D (x, y) to 3D; in_channels must be 2 and out_channels 3")
    frames, joints = _int(config, "frames"), _int(config, "num_joints")
    mhg, hyp = config.get("mhg", {}), config.get("hypothesis", {})
    if int(mhg.get("num_encoders", NUM_HYPOTHESES)) != NUM_HYPOTHESES or int(hyp.get("depth", 3)) != (
        int(hyp.get("shr_blocks", 2)) + int(hyp.get("chi_blocks", 1))
    ):
        raise ValueError("config.json: MHFormer has 3 hypotheses and depth = shr_blocks + chi_blocks")
    if "dim" in mhg and int(mhg["dim"]) != frames:
        raise ValueError(f"config.json: mhg.dim {mhg['dim']} must equal frames {frames}")
    mhg_heads = int(mhg.get("num_heads", 9))
    _check_scale(mhg.get("attn_scale"), frames, mhg_heads, "mhg")
    channel = _int(config, "channel")
    if "dim" in hyp and int(hyp["dim"]) != channel:
        raise ValueError(f"config.json: hypothesis.dim {hyp['dim']} must equal channel {channel}")
    heads = int(hyp.get("num_heads", 8))
    _check_scale(hyp.get("attn_scale"), channel, heads, "hypothesis")
    d_hid = int(config.get("d_hid", hyp.get("mlp_hidden_dim", 0)))
    shr = int(hyp.get("shr_blocks", 2))
    prune = FramePruneCfg(strategy="none", recovery="none")
    if variant == "tpc_mhformer":
        layer = _int(config, "layer_index")
        if layer < shr:  # the official loop never reaches a larger index: no pruning at all
            tpc = config.get("tpc", {})
            prune = FramePruneCfg(
                strategy="cluster", keep=_int(config, "token_num"), layer=layer, k=int(tpc.get("k", 2)),
                recovery="none", pos_embed=False,
            )
    return MHFormerCfg(
        num_frames=frames,
        num_joints=joints,
        out_joints=int(config.get("out_joints", joints)),
        channel=channel,
        d_hid=d_hid,
        mhg_depth=int(mhg.get("depth", 4)),
        mhg_heads=mhg_heads,
        mhg_mlp_ratio=int(mhg.get("mlp_hidden_dim", 2 * frames)) / frames,
        heads=heads,
        shr_depth=shr,
        chi_depth=int(hyp.get("chi_blocks", 1)),
        embed_norm=frames <= 27,  # the official constructor's rule
        drop_rate=float(mhg.get("drop_rate", 0.1)),
        prune=prune,
    )




def _official_topk(tokens: Tensor, noise: Tensor, cfg: MHFormerCfg) -> Tensor:
    """The cluster's top ``keep - 1`` frames in its own (descending score) order, centre excluded."""
    score = dpc_knn_score(tokens, cfg.prune.k, noise).clone()
    score[:, cfg.center] = float("-inf")
    return score.topk(cfg.prune.keep - 1, dim=-1).indices


@register_handler(lambda c: c.get("family") == "mhformer")
def mhformer_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare MHFormer (or TPC-MHFormer) with the official outputs of one fixture."""
    cfg = cfg_from_fixture(config)
    if "x" not in inputs or set(inputs) - _INPUTS:
        raise ValueError(f"inputs.pt: expected 'x' (and optionally 'x_flip'), got {sorted(inputs)}")
    tpc = cfg.prune.active
    allowed = _TPC_OUTPUTS if tpc else _PLAIN_OUTPUTS
    unknown = set(outputs) - allowed
    if unknown:
        raise ValueError(f"outputs.pt: unknown {config['variant']} output(s) {sorted(unknown)}; known: {sorted(allowed)}")
    if "out" not in outputs:
        raise ValueError("outputs.pt: no 'out' to compare")
    needs_flip = {"out_flip", "out_flip_given_index"} & set(outputs)
    if needs_flip and "x_flip" not in inputs:
        raise ValueError(f"outputs.pt has {sorted(needs_flip)} but inputs.pt has no 'x_flip'")

    model = MHFormer(cfg).eval()
    ckpt_path = folder / "checkpoint.pth"
    ckpt = load_file(ckpt_path)
    load_weights(model, ckpt, "mhformer", source=str(ckpt_path))
    official = unwrap_state_dict(ckpt, str(ckpt_path))
    converted = checkpoint_filter_fn(official, model)
    comps = [Comparison("weights", weights_mismatch(model, converted), 0.0, "mismatched_tensors"),
             Comparison("weights[official tensors found]", official_tensors_missing(model, official), 0.0,
                        "missing_tensors")]
    x = inputs["x"].float()

    if not tpc:
        comps.append(Comparison("out", max_abs_diff(model.forward_frames(x).out, outputs["out"], "out"), atol))
        if "out_center" in outputs:
            comps.append(Comparison("out_center", max_abs_diff(model(x), outputs["out_center"], "out_center"), atol))
        if "out_flip" in outputs:
            flip = model.forward_frames(inputs["x_flip"].float()).out
            comps.append(Comparison("out_flip", max_abs_diff(flip, outputs["out_flip"], "out_flip"), atol))
        return "mhformer", comps

    missing = {"index", "tpc_noise"} - set(outputs)
    if missing:
        raise ValueError(f"outputs.pt: a TPC fixture needs {sorted(missing)} (the official noise and selection)")
    noise, ref_index = outputs["tpc_noise"].float(), outputs["index"]
    kind = "mismatched_indices"
    # (1) the token pruning cluster alone, on the saved tokens and noise; both index tensors are
    # ascending, so the set comparison is the exact one
    if "tpc_tokens" in outputs:
        tokens = outputs["tpc_tokens"].float()
        unit = choose_frames(cfg.prune, tokens, noise=noise, center=cfg.center)
        comps.append(Comparison("tpc/index", index_set_mismatch(unit, ref_index, "index"), 0.0, kind))
        if "tpc_topk_unsorted" in outputs:
            ref_topk = outputs["tpc_topk_unsorted"]
            ours = _official_topk(tokens, noise, cfg)
            if tuple(ours.shape) != tuple(ref_topk.shape):
                raise ValueError(f"output 'tpc_topk_unsorted': shape {tuple(ours.shape)} vs official {tuple(ref_topk.shape)}")
            comps.append(Comparison("tpc/topk_unsorted", float((ours != ref_topk).sum()), 0.0, kind))
    # (2) end to end with the official noise, on the official (explicit softmax) attention arithmetic
    with use_fused_attn(False):
        trace = model.forward_trace(x, noise=noise)
    same_tokens = "tpc_tokens" in outputs and torch.equal(trace.tokens, outputs["tpc_tokens"].float())
    if "tpc_tokens" in outputs:
        note = "" if same_tokens else ("not bitwise the official tokens on this CPU, so e2e/index and e2e/out are not "
                                       "compared: the official selection is decided by float rounding (fixture README)")
        comps.append(Comparison("e2e/tpc_tokens", max_abs_diff(trace.tokens, outputs["tpc_tokens"], "tpc_tokens"), atol,
                                note=note))
    if same_tokens:  # bitwise the official tokens: the selection must be the official one
        comps.append(Comparison("e2e/index", index_set_mismatch(trace.index, ref_index, "index"), 0.0, kind))
        comps.append(Comparison("e2e/out", max_abs_diff(trace.out, outputs["out"], "out"), atol))
    # (3) the official selection forced into the model (fused attention)
    comps.append(Comparison("out", max_abs_diff(model.forward_frames(x, ref_index).out, outputs["out"], "out"), atol))
    if "out_center" in outputs:
        center = model.forward_center(x, ref_index)
        comps.append(Comparison("out_center", max_abs_diff(center, outputs["out_center"], "out_center"), atol))
    if "out_flip_given_index" in outputs:
        flip = model(inputs["x_flip"].float(), ref_index)
        comps.append(Comparison("out_flip_given_index", max_abs_diff(flip, outputs["out_flip_given_index"], "out_flip_given_index"), atol))
    return "mhformer", comps
