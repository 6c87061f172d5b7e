"""Parity handler for MixSTE / HoT-MixSTE / TPC-MixSTE fixtures (NationalGAILab/HoT, ``model/mixste/``).

The recipe of the fixture READMEs:

1. TPC unit check: ``choose_frames`` on the saved ``tpc_tokens`` with the saved ``tpc_noise`` must give the
   official ``index`` exactly, and our tokens at the pruning step must equal ``tpc_tokens``.
2. End to end with the noise injected: ``index`` exactly, ``out`` within tolerance. For pruning models
   this pass runs the explicit-softmax attention (the official op order): the official selection can flip
   on a 1e-7 change of the tokens, which the fused kernel's rounding may cause. Plain MixSTE runs the
   default (fused) path here.
3. The saved ``index`` forced into the model on the default (fused) path: the flip pass that reuses the
   un-flipped index where the fixture has one (TPC), ``out`` otherwise.

Every official tensor must be found, bitwise, in the loaded model (a key bias cancels in softmax, so the outputs
cannot show it), and the TRA is also computed directly from the official tensors (the effect of some of them on
``out`` is below the tolerance, per the README).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor

from posetokens.convert import load_weights, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.layers import FramePruneCfg, choose_frames, read_center_frame, use_fused_attn
from posetokens.models.mixste import MixSTE, MixSTECfg

from . import Comparison, index_set_mismatch, max_abs_diff, official_tensors_missing, register_handler

README_ATOL = 1e-5  # the fixture READMEs' suggested tolerance for a re-implementation
_VARIANTS = {"mixste": "none", "hot_mixste": "attention", "tpc_mixste": "none"}
_KNOWN_OUTPUTS = {
    "out", "index", "tpc_tokens", "tpc_noise", "tpc_topk_unsorted", "out_center", "out_flip_given_index",
}


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(f"config.json: {msg}")


def cfg_from_fixture(config: dict) -> MixSTECfg:
    """Build a :class:`MixSTECfg` from a HoT MixSTE fixture's ``config.json`` (sizes from the config only)."""
    variant = config.get("variant")
    _require(variant in _VARIANTS, f"unknown MixSTE variant {variant!r}; known: {sorted(_VARIANTS)}")
    dim, heads = int(config["embed_dim"]), int(config["num_heads"])
    _require(dim % heads == 0, f"embed_dim {dim} not divisible by num_heads {heads}")
    _require(int(config.get("out_channels", 3)) == 3, f"out_channels must be 3, got {config.get('out_channels')}")
    scale = float(config.get("attn_scale", (dim // heads) ** -0.5))
    _require(abs(scale - (dim // heads) ** -0.5) < 1e-9, f"attn_scale {scale} is not head_dim**-0.5")
    _require(float(config.get("norm_eps", 1e-6)) == 1e-6, f"norm_eps must be 1e-6, got {config.get('norm_eps')}")
    _require(float(config.get("head_norm_eps", 1e-5)) == 1e-5, f"head_norm_eps must be 1e-5, got {config.get('head_norm_eps')}")
    _require(
        list(config.get("blocks_per_depth", ["spatial", "temporal"])) == ["spatial", "temporal"],
        f"blocks_per_depth must be ['spatial', 'temporal'], got {config.get('blocks_per_depth')}",
    )
    frames = int(config["frames"])
    prune = FramePruneCfg()
    if config.get("token_num") is not None:
        _require(variant != "mixste", "variant 'mixste' must not set token_num")
        tpc = config.get("tpc") or {}
        recovery = "attention" if config.get("tra") else "none"
        _require(recovery == _VARIANTS[variant], f"variant {variant!r} with tra={config.get('tra')!r}")
        prune = FramePruneCfg(
            strategy="cluster",
            keep=int(config["token_num"]),
            layer=int(config["layer_index"]),
            k=int(tpc.get("k", 2)),
            recovery=recovery,
            pos_embed=tpc.get("pos_embed_token") is not None,
        )
        if "recover_num" in config:
            _require(int(config["recover_num"]) == frames, f"recover_num {config['recover_num']} != frames {frames}")
        if "center" in config:
            _require(int(config["center"]) == (frames - 1) // 2, f"center {config['center']} != (frames-1)//2")
    else:
        _require(variant == "mixste", f"variant {variant!r} needs token_num and layer_index")
    return MixSTECfg(
        num_frames=frames,
        num_joints=int(config["num_joints"]),
        in_channels=int(config["in_channels"]),
        dim=dim,
        depth=int(config["depth"]),
        heads=heads,
        mlp_hidden=int(config["mlp_hidden_dim"]),
        qkv_bias=bool(config["qkv_bias"]),
        drop_path=float(config.get("drop_path_rate", 0.0)),
        prune=prune,
    )


def _official_tra(sd: dict[str, Tensor], x: Tensor, heads: int) -> Tensor:
    """HoT's token recovering attention computed straight from the official tensors: (B', T, C) -> (B', F, C)."""

    def lin(name: str, t: Tensor) -> Tensor:
        bias = sd.get(f"cross_attention.{name}.bias")
        return torch.nn.functional.linear(t, sd[f"cross_attention.{name}.weight"], bias)

    def split(t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

    queries = sd["x_token"].expand(x.shape[0], -1, -1)
    q, k, v = split(lin("linear_q", queries)), split(lin("linear_k", x)), split(lin("linear_v", x))
    attn = ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(queries.shape)
    return queries + lin("proj", out)


@register_handler(lambda c: c.get("family") == "mixste")
def mixste_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare a MixSTE-family model built from ``config.json`` with the official outputs (module doc)."""
    unknown = sorted(set(outputs) - _KNOWN_OUTPUTS)
    if unknown:
        raise ValueError(f"outputs.pt: unknown MixSTE output(s) {unknown}; known: {sorted(_KNOWN_OUTPUTS)}")
    if "x" not in inputs:
        raise ValueError(f"inputs.pt: expected the clip 'x', got {sorted(inputs)}")
    tol = min(atol, README_ATOL)
    model = MixSTE(cfg_from_fixture(config)).eval()
    ckpt_path = folder / "checkpoint.pth"
    sd = unwrap_state_dict(load_file(ckpt_path), str(ckpt_path))
    load_weights(model, sd, "mixste", source=str(ckpt_path))
    pruned, x = model.cfg.prune.active, inputs["x"]
    noise, ref_index = outputs.get("tpc_noise"), outputs.get("index")
    if pruned and ref_index is None:
        raise ValueError("outputs.pt: a pruning MixSTE fixture must hold the official 'index'")
    center = model.center if model.is_seq2frame else None
    comps = [Comparison("weights[official tensors found]", official_tensors_missing(model, sd), 0.0, "missing_tensors")]

    with use_fused_attn(False) if pruned else nullcontext():  # (2) end to end, noise injected
        e2e = model.forward_trace(x, noise=noise)
    fused_out = pruned and "out_flip_given_index" not in outputs  # (3) else the flip pass is the fused check

    unit = None
    if "tpc_tokens" in outputs:
        if not pruned or noise is None:
            raise ValueError("outputs.pt: tpc_tokens needs a pruning config and the saved tpc_noise")
        unit = choose_frames(model.cfg.prune, outputs["tpc_tokens"], noise=noise, center=center)  # (1)
        comps.append(Comparison("index[unit: tpc_tokens+tpc_noise]", index_set_mismatch(unit, ref_index, "index"), 0.0, "mismatched_indices"))
        comps.append(Comparison("tpc_tokens", max_abs_diff(e2e.tokens, outputs["tpc_tokens"], "tpc_tokens"), tol))
    for key, ref in outputs.items():
        if key == "out":
            comps.append(Comparison("out", max_abs_diff(e2e.out, ref, key), tol))
            if fused_out:
                comps.append(Comparison("out[fused, index given]", max_abs_diff(model(x, keep_index=ref_index), ref, key), tol))
        elif key == "index":
            if e2e.index is None:
                raise ValueError("outputs.pt: 'index' given, but the config prunes no frames")
            mism = float((e2e.index != ref).sum()) if e2e.index.shape == ref.shape else index_set_mismatch(e2e.index, ref, key)
            comps.append(Comparison("index", mism, 0.0, "mismatched_indices"))
        elif key == "tpc_topk_unsorted":
            if unit is None:
                raise ValueError("outputs.pt: tpc_topk_unsorted needs tpc_tokens and tpc_noise")
            ours = unit if center is None else unit[unit != center].reshape(unit.shape[0], -1)
            comps.append(Comparison(key, index_set_mismatch(ours, ref, key), 0.0, "mismatched_indices"))
        elif key == "out_center":
            if center is None:
                raise ValueError("outputs.pt: out_center is only defined for the seq2frame (TPC) variant")
            comps.append(Comparison(key, max_abs_diff(read_center_frame(e2e.out, e2e.index, center), ref, key), tol))
        elif key == "out_flip_given_index":
            if "x_flip" not in inputs:
                raise ValueError("inputs.pt: out_flip_given_index needs the flipped clip 'x_flip'")
            comps.append(Comparison(key, max_abs_diff(model(inputs["x_flip"], keep_index=ref_index), ref, key), tol))
        # tpc_tokens: compared above; tpc_noise: the official random draw, injected above
    if model.recovery is not None:
        probe = torch.randn(3, model.cfg.prune.keep, model.cfg.dim, generator=torch.Generator().manual_seed(0))
        direct = max_abs_diff(model.recovery(probe), _official_tra(sd, probe, model.cfg.heads), "tra")
        comps.append(Comparison("tra[direct, official tensors]", direct, tol))
    return "mixste", comps
