"""Parity handler for PCT fixtures (Gengzigang/PCT): the stage-1 tokenizer and the stage-2 head.

Sizes come from ``config.json`` (a tokenizer-only fixture has no ``classifier_head``); the head fixture
gives the backbone's stride-32 map directly (``backbone_feature``), so the model is built without one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from posetokens.convert import strict_load, unwrap_state_dict
from posetokens.checkpoint import load_file
from posetokens.models.pct import PCT, HeadCfg, MixerCfg, PCTCfg, TokenizerCfg, TokenizerOutput, checkpoint_filter_fn

from . import Comparison, max_abs_diff, register_handler, weights_mismatch


def _is_pct(config: dict) -> bool:
    return str(config.get("model", "")).startswith("PCT") and "tokenizer" in config


def _mixer(d: dict) -> MixerCfg:
    return MixerCfg(num_blocks=int(d["num_blocks"]), hidden=int(d["hidden_dim"]),
                    token_inter=int(d["token_inter_dim"]), hidden_inter=int(d["hidden_inter_dim"]))


def cfg_from_fixture(config: dict) -> PCTCfg:
    """A :class:`PCTCfg` (no backbone) from a PCT fixture's ``config.json``."""
    t = config["tokenizer"]
    cb = t["codebook"]
    for part in ("encoder", "decoder"):
        if float(t[part].get("dropout", 0.0)) != 0.0:
            raise ValueError(f"config.json: tokenizer.{part}.dropout must be 0 (eval parity), got {t[part]['dropout']}")
    loss = t.get("loss", {})
    head = config.get("classifier_head")
    tok = TokenizerCfg(
        num_joints=int(t["num_joints"]), num_tokens=int(cb["token_num"]), token_dim=int(cb["token_dim"]),
        codebook_size=int(cb["token_class_num"]), encoder=_mixer(t["encoder"]), decoder=_mixer(t["decoder"]),
        guide_ratio=float(t["guide_ratio"]), drop_rate=float(t.get("train_random_drop_rate", 0.2)),
        ema_decay=float(cb.get("ema_decay", 0.9)), joint_loss_weight=float(loss.get("joint_loss_w", 1.0)),
        commitment_weight=float(loss.get("e_loss_w", 15.0)), smooth_l1_beta=float(loss.get("smooth_l1_beta", 0.05)),
    )
    image_size = tuple(int(s) for s in config["image_size"])
    if head is None:
        return PCTCfg(stage="tokenizer", image_size=image_size, backbone=None, tokenizer=tok,
                      in_channels=int(t.get("guide_channels", 1024)))
    if int(head.get("dilation", 1)) != 1 or float(head.get("dropout", 0.0)) != 0.0:
        raise ValueError("config.json: classifier_head.dilation must be 1 and dropout 0")
    if int(head["token_num"]) != tok.num_tokens or int(head["token_class_num"]) != tok.codebook_size:
        raise ValueError(f"config.json: classifier_head token_num/token_class_num {head['token_num']}/"
                         f"{head['token_class_num']} differ from the tokenizer's {tok.num_tokens}/{tok.codebook_size}")
    fh, fw = (int(s) for s in head.get("backbone_feature_hw", (image_size[0] // 32, image_size[1] // 32)))
    if (fh, fw) != (image_size[0] // 32, image_size[1] // 32):
        raise ValueError(f"config.json: backbone_feature_hw {(fh, fw)} is not image_size / 32")
    hcfg = HeadCfg(
        conv_channels=int(head["conv_channels"]), conv_blocks=int(head["conv_num_blocks"]),
        mixer=MixerCfg(num_blocks=int(head["num_blocks"]), hidden=int(head["hidden_dim"]),
                       token_inter=int(head["token_inter_dim"]), hidden_inter=int(head["hidden_inter_dim"])),
    )
    return PCTCfg(stage="classifier", image_size=image_size, backbone=None, in_channels=int(head["in_channels"]),
                  tokenizer=tok, head=hcfg)


_GUIDE_KEYS = ("extra_backbone_feature", "backbone_feature")


def _tokenize(model: PCT, inputs: dict) -> TokenizerOutput:
    """The tokenizer on the fixture joints; a guided one takes its joint features from the given map."""
    joints = inputs["joints"]
    if not model.cfg.tokenizer.guided:
        return model.tokenize(joints)
    if "joints_feature" in inputs:
        return model.tokenizer(joints, inputs["joints_feature"])
    key = next((k for k in _GUIDE_KEYS if k in inputs), None)
    if key is None:
        raise ValueError(f"inputs.pt: an image-guided PCT fixture needs one of {list(_GUIDE_KEYS)} or joints_feature")
    return model.tokenize(joints, feat=inputs[key])


@register_handler(_is_pct)
def pct_parity(folder: Path, config: dict, inputs: dict, outputs: dict, atol: float) -> tuple[str, list[Comparison]]:
    """Compare every official output of a PCT tokenizer or head fixture; fail on unknown output keys."""
    cfg = cfg_from_fixture(config)
    sd = unwrap_state_dict(load_file(folder / "checkpoint.pth"), str(folder / "checkpoint.pth"))
    model = PCT(cfg).eval()
    converted = checkpoint_filter_fn(sd, model)
    strict_load(model, converted, "official PCT checkpoint")
    comps = [Comparison("weights", weights_mismatch(model, converted), 0.0, "mismatched_tensors")]
    ours: dict[str, torch.Tensor] = {}
    captured: list[torch.Tensor] = []
    hook = model.tokenizer.feature_embed.register_forward_hook(lambda m, a, o: captured.append(o))
    with torch.no_grad():
        tok = _tokenize(model, inputs)
        if cfg.stage == "tokenizer":
            ours.update(recovered_joints=tok.joints, encoding_indices=tok.indices.flatten(),
                        encoder_features=captured[-1])
        else:
            ours.update(gt_token_labels=tok.indices.flatten(), gt_encoder_features=captured[-1])
            logits = model.logits(inputs["backbone_feature"])
            score = model.pose_score(logits)
            ours.update(cls_logits=logits, encoding_scores=logits.max(dim=-1, keepdim=True).values,
                        pose_score=score[:, None, None].expand(-1, cfg.num_keypoints, 1),
                        pred_joints=model.tokenizer.decode_logits(logits))
    hook.remove()
    for key, ref in outputs.items():
        if key not in ours:
            raise ValueError(f"outputs.pt: unknown PCT output {key!r}")
        if ref.dtype in (torch.int64, torch.int32):
            bad = float((ours[key].to(ref.dtype) != ref).sum()) if ours[key].shape == ref.shape else float(ref.numel())
            comps.append(Comparison(key, bad, 0.0, "mismatched_indices"))
        else:
            comps.append(Comparison(key, max_abs_diff(ours[key], ref, key), atol))
    return "pct", comps
