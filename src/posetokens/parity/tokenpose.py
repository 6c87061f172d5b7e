"""Parity handler for TokenPose / PPT fixtures (HowieMa/PPT and leeyegy/TokenPose)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from posetokens.convert import load_weights, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.layers import PruneCfg
from posetokens.models.backbones.hrnet import HRNetCfg, hrnet_stem
from posetokens.models.tokenpose import TokenPose, TokenPoseCfg

from . import Comparison, index_set_mismatch, max_abs_diff, register_handler

_OUTPUT_KEY = re.compile(r"^ppt_(keep_idx|keep_patch_idx|token_score)_layer(\d+)$")


def cfg_from_fixture(config: dict) -> TokenPoseCfg:
    """Build a :class:`TokenPoseCfg` from a fixture's ``config.json`` (neutral hyperparameter names)."""
    dim, heads = int(config["dim"]), int(config["heads"])
    scale = float(config["attention_scale_value"])
    if abs(scale - (dim // heads) ** -0.5) < 1e-9:
        scale_with_head = True
    elif abs(scale - dim**-0.5) < 1e-9:
        scale_with_head = False
    else:
        raise ValueError(f"config.json: attention_scale_value {scale} is neither head_dim**-0.5 nor dim**-0.5")
    stages = config.get("hrnet_stage_channels")
    if stages:
        names = sorted(stages)  # "stage2", "stage3", ...
        blocks_per_stage = []
        for k in names:
            per_branch = {int(n) for n in config["hrnet_num_blocks"][k]}
            if len(per_branch) != 1:
                raise ValueError(f"config.json: hrnet_num_blocks.{k} must be equal across branches, got {per_branch}")
            blocks_per_stage.append(per_branch.pop())
        backbone = HRNetCfg(
            width=int(stages["stage2"][0]),
            num_stages=1 + len(names),
            num_modules=(1, *(int(config["hrnet_num_modules"][k]) for k in names)),
            num_blocks=(4, *blocks_per_stage),
            multi_scale_output=False,
        )
    else:
        backbone = hrnet_stem()
    blocks = int(config.get("num_blocks", 3 if config.get("official_model_name") == "pose_tokenpose_l" else 1))
    ppt = config.get("ppt") or {}
    return TokenPoseCfg(
        num_keypoints=int(config["num_keypoints"]),
        image_size=tuple(config["image_size_hw"]),
        backbone=backbone,
        patch_size=tuple(config["patch_size_hw"]),
        dim=dim,
        depth=int(config["depth"]) // blocks,
        num_blocks=blocks,
        heads=heads,
        mlp_ratio=int(config["mlp_hidden_dim"]) / dim,
        scale_with_head=scale_with_head,
        head_hidden=int(config["head_hidden_dim"]),
        prune=PruneCfg(tuple(ppt.get("pruning_layers_0based", ())), float(ppt.get("keep_ratio", 1.0))),
        feature_stride=int(config.get("feature_stride", 4)),
    )


def _compare(model: TokenPose, inputs: dict, outputs: dict, atol: float, tag: str) -> list[Comparison]:
    images = inputs["images"]
    comps: list[Comparison] = []
    ppt = model.forward_tokens(images)
    model.set_keep_ratio(1.0)
    tokenpose = model(images)
    model.set_keep_ratio(model.cfg.prune.keep_ratio)
    by_layer = {p.layer: p for p in ppt.pruned}
    for key, ref in outputs.items():
        name = f"{tag}{key}"
        if key == "ppt_heatmaps":
            comps.append(Comparison(name, max_abs_diff(ppt.heatmaps, ref, key), atol))
        elif key == "tokenpose_heatmaps":
            comps.append(Comparison(name, max_abs_diff(tokenpose, ref, key), atol))
        elif m := _OUTPUT_KEY.match(key):
            what, layer = m.group(1), int(m.group(2))
            if layer not in by_layer:
                raise ValueError(f"outputs.pt: {key} names layer {layer}, but the model pruned at {sorted(by_layer)}")
            rec = by_layer[layer]
            if what == "token_score":
                comps.append(Comparison(name, max_abs_diff(rec.score, ref, key), atol))
            else:
                ours = rec.keep_idx if what == "keep_idx" else rec.patch_idx
                comps.append(Comparison(name, index_set_mismatch(ours, ref, key), 0.0, "mismatched_indices"))
        else:
            raise ValueError(f"outputs.pt: unknown TokenPose/PPT output {key!r}")
    return comps


@register_handler(lambda c: str(c.get("official_model_name", "")).startswith("pose_tokenpose"))
def tokenpose_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare both official key layouts (PPT repo, and TokenPose repo when its key map is given)."""
    model = TokenPose(cfg_from_fixture(config)).eval()
    ckpt = load_file(folder / "checkpoint.pth")
    load_weights(model, ckpt, "tokenpose", source=str(folder / "checkpoint.pth"))
    comps = _compare(model, inputs, outputs, atol, "")
    key_map_file = folder / "tokenpose_repo_key_map.json"
    if key_map_file.is_file():
        key_map = json.loads(key_map_file.read_text())
        sd = unwrap_state_dict(ckpt, str(folder / "checkpoint.pth"))
        model = TokenPose(model.cfg).eval()
        load_weights(model, {key_map.get(k, k): v for k, v in sd.items()}, "tokenpose", "TokenPose-repo layout")
        comps += _compare(model, inputs, {"tokenpose_heatmaps": outputs["tokenpose_heatmaps"]}, atol, "tokenpose_repo_layout/")
    return "tokenpose", comps
