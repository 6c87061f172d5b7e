"""Parity handler for GTPT fixtures (official haonanwang0522/GTPT, COCO and COCO-WholeBody).

The deployed outputs come from the checkpoint's EMA copy; ``student_*`` outputs from its training copy.
Kept indices are compared as sets (the official transition / block-9 ``topk(sorted=False)`` order is
arbitrary); the whole-body transition order is compared on the part each group keeps.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from posetokens.convert import strict_load, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.models.backbones.shufflenet import ShuffleStemCfg
from posetokens.models.gtpt import (
    COCO_GROUPS,
    GTPT,
    WHOLEBODY_DENSE_RUNS,
    WHOLEBODY_GROUPS,
    GroupSpec,
    GTPTCfg,
    GTPTOutput,
    checkpoint_filter_fn,
)
from posetokens.parity import Comparison, index_set_mismatch, max_abs_diff, register_handler, weights_mismatch


def _is_gtpt(config: dict) -> bool:
    return "GTPT" in str(config.get("official_repo", "")) or str(config.get("model", "")).startswith("GTPT")


def cfg_from_fixture(config: dict) -> GTPTCfg:
    """A :class:`GTPTCfg` from a fixture's ``config.json`` (sizes from the config only)."""
    stem = config["stem"]
    chans = stem.get("stage_channels") or [stem["stage_out_channels"]]
    stem_cfg = ShuffleStemCfg(
        stem_channels=int(stem["conv1"]["out"]),
        stage_channels=tuple(int(c) for c in chans),
        blocks_per_stage=int(stem.get("stage_num_blocks", 4)),
        up_blocks=int(stem.get("up_blocks", 2)),
    )
    dim, heads = int(config["embed_dim"]), int(config["heads"] if "heads" in config else config["num_heads"])
    scale_txt = str(config.get("attention_scale", "embed_dim"))
    members = config["groups"]["members"]
    groups = tuple(
        GroupSpec(base.name, tuple(int(m) for m in row if not str(m).startswith("copy")), base.parts, base.dense)
        for base, row in zip(COCO_GROUPS if "wholebody" not in config else WHOLEBODY_GROUPS, members)
    )
    kw: dict = {}
    if "wholebody" in config:
        wb = config["wholebody"]
        if int(wb["part_tokens"]) != 5 or int(wb["fine_keypoint_token"][1]) != sum(n for _, n in WHOLEBODY_DENSE_RUNS):
            raise ValueError("config.json: only the COCO-WholeBody part/dense layout (5 parts, 116 dense) is supported")
        kw = dict(num_parts=5, dense_runs=WHOLEBODY_DENSE_RUNS, dense_output_order=(3, 4, 0, 1, 2))
    h, w = config["image_size_hw"]
    cfg = GTPTCfg(
        num_body=sum(len(g.sparse) for g in groups),
        image_size=(int(h), int(w)),
        stem=stem_cfg,
        patch_size=tuple(int(p) for p in config["patch_embed"]["patch_size_hw"]),
        dim=dim,
        heads=heads,
        mlp_ratio=int(config["mlp_hidden_dim"]) / dim,
        scale_with_head=not scale_txt.startswith("embed_dim"),
        num_coarse=int(config["num_coarse_blocks"]),
        num_group_blocks=int(config["num_group_blocks"]),
        expand_after=int(config["keypoint_injection_after_block_attention"]),
        keep_rate=tuple(float(r) for r in config["keep_rate_per_block"]),
        groups=groups,
        split_ratio=float(config["simcc"]["split_ratio"]),
        **kw,
    )
    if cfg.num_keypoints != int(config["num_keypoints"]):
        raise ValueError(f"config.json: num_keypoints {config['num_keypoints']} vs the group spec's {cfg.num_keypoints}")
    return cfg


def _load(cfg: GTPTCfg, sd: dict, branch: str) -> tuple[GTPT, float]:
    model = GTPT(cfg).eval()
    converted = checkpoint_filter_fn(sd, model, branch=branch)
    strict_load(model, converted, f"official GTPT checkpoint ({branch} copy)")
    return model, weights_mismatch(model, converted)


def _logits(model: GTPT, img: torch.Tensor, prune: bool) -> tuple[torch.Tensor, torch.Tensor]:
    model.set_pruning(prune)
    try:
        return model(img)
    finally:
        model.set_pruning(True)


_WB_KEY = re.compile(r"^(kept_patches_2|prune3_scores|prune3_idx|kept_patches_3)_g(\d+)$")


def _align(values: torch.Tensor, patches: torch.Tensor, ref_patches: torch.Tensor, name: str) -> torch.Tensor:
    """Reorder our per-token ``values`` (B, K) into the official token order given by patch ids."""
    if tuple(patches.shape) != tuple(ref_patches.shape):
        raise ValueError(f"output {name!r}: {tuple(patches.shape)} tokens vs official {tuple(ref_patches.shape)}")
    match = ref_patches[..., :, None] == patches[..., None, :]
    if not bool(match.any(-1).all()):
        return torch.full_like(values, float("nan"))  # different token sets: fails (and kept_patches_2 says why)
    return values.gather(-1, match.int().argmax(-1))


def _compare_tokens(out: GTPTOutput, key: str, ref: torch.Tensor, outputs: dict, atol: float) -> Comparison:
    coarse, trans, group = out.pruned[0], out.pruned[1], out.pruned[2]

    def idx_cmp(ours: torch.Tensor, theirs: torch.Tensor = ref) -> Comparison:
        return Comparison(key, index_set_mismatch(ours, theirs, key), 0.0, "mismatched_indices")

    def slot_patches(g: int | None) -> torch.Tensor:
        """Official slot order of the group stage: patch ids kept at the transition."""
        k = "kept_patches_2" if g is None else f"kept_patches_2_g{g}"
        if k not in outputs:
            raise ValueError(f"outputs.pt: {key} needs {k} (the official slot order)")
        return outputs[k]

    if key == "prune1_scores":
        return Comparison(key, max_abs_diff(coarse.score, ref, key), atol)
    if key in ("prune1_idx", "kept_patches_1"):
        return idx_cmp(coarse.keep_idx if key == "prune1_idx" else coarse.patch_idx)
    if key == "prune2_scores":
        return Comparison(key, max_abs_diff(trans.score, ref, key), atol)
    if key == "prune2_idx":
        return idx_cmp(trans.keep_idx)
    if key == "kept_patches_2":
        return idx_cmp(trans.patch_idx)
    if key == "prune2_order":  # official argsort over all; group g keeps its first counts[g]
        bad = sum(
            index_set_mismatch(trans.keep_idx[:, g, :n], ref[:, g, :n], key) for g, n in enumerate(trans.counts)
        )
        return Comparison(key, float(bad), 0.0, "mismatched_indices")
    m = _WB_KEY.match(key)
    what, g = (m.group(1), int(m.group(2))) if m else (key, None)
    if what not in ("prune3_scores", "prune3_idx", "kept_patches_3", "kept_patches_2"):
        raise ValueError(f"outputs.pt: unknown GTPT output {key!r}")
    if what == "kept_patches_2":  # whole-body, per group
        return idx_cmp(trans.patch_idx[:, g, : trans.counts[g]])
    gs = slice(None) if g is None else g
    n_img = slot_patches(g).shape[-1]
    counts = group.counts[g] if g is not None else group.counts[0]
    fixed = group.score.shape[-1] - n_img
    # our group-stage slots: dense first, then image tokens in our (sorted) transition order
    our_slot_patches = (trans.patch_idx if fixed == 0 else None)
    if what == "prune3_scores":
        ours = group.score[:, gs, fixed:] if g is not None else group.score
        mine = trans.patch_idx[:, gs, : trans.counts[g]] if g is not None else our_slot_patches
        return Comparison(key, max_abs_diff(_align(ours, mine, slot_patches(g), key), ref, key), atol)
    if what == "kept_patches_3":
        return idx_cmp(group.patch_idx[:, gs, :counts] if g is not None else group.patch_idx)
    # prune3_idx: indices into the official slot order -> patch ids, compared as sets with ours
    ref_patches = slot_patches(g).gather(-1, ref)
    return idx_cmp(group.patch_idx[:, gs, :counts] if g is not None else group.patch_idx, ref_patches)


@register_handler(_is_gtpt)
def gtpt_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare every official output of a GTPT fixture; fail on unknown output keys."""
    cfg = cfg_from_fixture(config)
    sd = unwrap_state_dict(load_file(folder / "checkpoint.pth"), str(folder / "checkpoint.pth"))
    img = inputs["img"]
    model, bad_w = _load(cfg, sd, "ema")
    comps = [Comparison("weights_ema", bad_w, 0.0, "mismatched_tensors")]
    tokens = model.forward_tokens(img)
    expected_steps = 3
    if len(tokens.pruned) != expected_steps:
        raise ValueError(f"GTPT parity: expected {expected_steps} pruning steps, the model made {len(tokens.pruned)}")
    full = _logits(model, img, prune=False)
    student = student_full = None
    if any(k.startswith("student_") for k in outputs):
        smodel, bad_s = _load(cfg, sd, "train")
        comps.append(Comparison("weights_train", bad_s, 0.0, "mismatched_tensors"))
        student, student_full = _logits(smodel, img, True), _logits(smodel, img, False)
    direct = {
        "pred_x": tokens.simcc_x, "pred_y": tokens.simcc_y,
        "embed_tokens": model.embed(img),
        "unpruned_pred_x": full[0], "unpruned_pred_y": full[1],
    }
    if student is not None and student_full is not None:
        direct.update({
            "student_pred_x": student[0], "student_pred_y": student[1],
            "student_unpruned_pred_x": student_full[0], "student_unpruned_pred_y": student_full[1],
        })
    for key, ref in outputs.items():
        if key in direct:
            comps.append(Comparison(key, max_abs_diff(direct[key], ref, key), atol))
        else:
            comps.append(_compare_tokens(tokens, key, ref, outputs, atol))
    return "gtpt", comps
