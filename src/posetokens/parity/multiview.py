"""Parity handler for multi-view PPT fixtures (HowieMa/PPT ``multi-view-PPT/lib/models/multiview_ppt.py``)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from posetokens.convert import load_weights
from posetokens.checkpoint import load_file
from posetokens.data.transforms import get_affine_transform
from posetokens.geometry import intrinsic_matrix, patch_rays
from posetokens.models.tokenpose_mv import MultiViewOutput, MultiViewPPT, MultiViewPPTCfg
from posetokens.parity.tokenpose import cfg_from_fixture

from . import Comparison, index_set_mismatch, max_abs_diff, register_handler

_OUTPUT_KEY = re.compile(r"^(fused|independent)_(keep_idx|keep_patch_idx|token_score)_layer(\d+)$")
# Our rays are computed in float64; the official ones are float32 world points ~5000 mm from the origin
# minus the camera centre, a difference of ~1 mm, so their direction carries ~1e-3 of rounding.
RAY_DIRECTION_TOL = 1e-3


def _is_multiview(config: dict) -> bool:
    return "multiview_ppt" in str(config.get("official_model", "")) or "pos_3d" in config


def mv_cfg_from_fixture(config: dict) -> MultiViewPPTCfg:
    """Build a :class:`MultiViewPPTCfg` from a multi-view fixture's ``config.json``."""
    base = cfg_from_fixture(config)
    depth = base.depth
    fusion = [int(i) for i in config.get("fusion_layers", ())]
    per_view = [int(i) for i in config.get("per_view_layers", range(depth - len(fusion)))]
    if fusion != list(range(depth - len(fusion), depth)) or per_view != list(range(depth - len(fusion))):
        raise ValueError(
            f"config.json: fusion_layers {fusion} must be the last layers and per_view_layers {per_view} the rest "
            f"of depth {depth}"
        )
    return MultiViewPPTCfg(**{f.name: getattr(base, f.name) for f in fields(base)},
                           num_views=int(config["num_views"]), num_fusion_layers=len(fusion), ray_pe=True)


def fixture_rays(inputs: dict) -> torch.Tensor:
    """The model's ray input from the fixture: ``rays - cam_centers`` as the official forward computes it."""
    return inputs["rays"] - inputs["cam_centers"]


def rays_from_cameras(inputs: dict, cfg: MultiViewPPTCfg) -> np.ndarray:
    """Unit world rays (B, V, N, 3) recomputed from the fixture's raw camera and crop parameters."""
    K = intrinsic_matrix(inputs["cam_f"].double().numpy(), inputs["cam_c"].double().numpy(), "inputs.pt cam_f/cam_c")
    centers, scales = inputs["crop_center"].double().numpy(), inputs["crop_scale"].double().numpy()
    h, w = cfg.image_size
    crop_to_image = np.stack([  # a few (sample, view) pairs: not a hot path
        get_affine_transform(c, s * 200.0, 0.0, (w, h), inv=True)
        for c, s in zip(centers.reshape(-1, 2), scales.reshape(-1, 2))
    ]).reshape(*centers.shape[:-1], 2, 3)
    stride = (cfg.feature_stride * cfg.patch_size[0], cfg.feature_stride * cfg.patch_size[1])
    return patch_rays(K, inputs["cam_R"].double().numpy(), crop_to_image, cfg.image_size, cfg.patch_grid, stride)


def _records(out: MultiViewOutput) -> dict[int, object]:
    return {p.layer: p for p in out.pruned}


@register_handler(_is_multiview)
def multiview_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Fused and independent heatmaps, kept-token sets and scores per view, and the rays recomputed from cameras."""
    cfg = mv_cfg_from_fixture(config)
    model = MultiViewPPT(cfg).eval()
    load_weights(model, load_file(folder / "checkpoint.pth"), "tokenpose_mv", source=str(folder / "checkpoint.pth"))
    images, rays = inputs["images"], fixture_rays(inputs)
    runs = {"fused": model.forward_tokens(images, rays), "independent": model.forward_independent(images)}
    recs = {k: _records(v) for k, v in runs.items()}
    comps: list[Comparison] = []
    for key, ref in outputs.items():
        if key in ("fused_heatmaps", "independent_heatmaps"):
            comps.append(Comparison(key, max_abs_diff(runs[key.split("_")[0]].heatmaps, ref, key), atol))
        elif m := _OUTPUT_KEY.match(key):
            run, what, layer = m.group(1), m.group(2), int(m.group(3))
            if layer not in recs[run]:
                raise ValueError(f"outputs.pt: {key} names layer {layer}, but the model pruned at {sorted(recs[run])}")
            rec = recs[run][layer]
            if what == "token_score":
                comps.append(Comparison(key, max_abs_diff(rec.score, ref, key), atol))
            else:
                ours = rec.keep_idx if what == "keep_idx" else rec.patch_idx
                comps.append(Comparison(key, index_set_mismatch(ours.flatten(0, 1), ref.flatten(0, 1), key), 0.0,
                                        "mismatched_indices"))
        else:
            raise ValueError(f"outputs.pt: unknown multi-view PPT output {key!r}")
    if all(k in inputs for k in ("cam_R", "cam_f", "cam_c", "crop_center", "crop_scale")):
        ours = torch.from_numpy(rays_from_cameras(inputs, cfg))
        ref = torch.nn.functional.normalize(rays.double(), dim=-1)
        comps.append(Comparison("ray_directions_from_cameras", max_abs_diff(ours, ref, "rays"), RAY_DIRECTION_TOL))
    return "tokenpose_mv", comps
