"""Protocols: the official values each method family declares, and self-describing checkpoints.

Expected values are literals from shared/specs/pipeline.md (section 9's table and the sections it cites), not read
from src.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetokens.checkpoint import atomic_save, describe, load_trained, read_description
from posetokens.data.metainfo import get_metainfo
from posetokens.protocols import Protocol, get_protocol, list_protocols, resolve_protocol
from posetokens.registry import create_model, default_protocol, list_models
from posetokens.runtime import UserKeyError

# pipeline.md section 9: box centre offset, GT clean, paddings, warp, rescore thr, NMS area, flip shift
SPEC = {
    "tokenpose": dict(center_offset=1.0, gt_clean="hrnet", padding=(1.25, 1.25), warp="size_minus_one",
                      rescore_thr=0.2, flip_shift=False, decode="dark", half_body_extent=1.0, mean01=0.11),
    "gtpt": dict(center_offset=0.0, gt_clean="hrnet_w_minus_1", padding=(1.25, 1.25), warp="standard",
                 rescore_thr=0.01, flip_shift=True, decode="simcc_softmax", half_body_extent=0.0, mean01=0.10),
    "pct": dict(center_offset=0.0, gt_clean="mmpose0", padding=(1.25, 1.12), warp="standard",
                rescore_thr=0.2, flip_shift=False, decode="coords", half_body_extent=0.0, mean01=0.11),
}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_official_topdown_values(name: str) -> None:
    p, s = get_protocol(name), SPEC[name]
    assert p.box.center_offset == s["center_offset"]
    assert p.box.gt_clean == s["gt_clean"]
    assert (p.box.padding, p.box.test_padding) == s["padding"]
    assert p.warp == s["warp"]
    assert p.eval.rescore_thr == s["rescore_thr"]
    assert p.eval.nms_thr == 0.9 and p.eval.nms_area == "box"  # section 1.7: OKS 0.9 on prod(s*200)
    assert p.test.flip_shift is s["flip_shift"] and p.test.decode == s["decode"]
    assert p.aug.half_body_extent_offset == s["half_body_extent"]
    assert p.aug.sampler == "clipped" and p.aug.rotate_prob == 0.6 and p.aug.flip_prob == 0.5
    assert p.aug.half_body_prob == 0.3 and p.aug.half_body_upper_prob == pytest.approx(0.6915, abs=1e-4)
    assert p.eval.pckh_mean01_thr == s["mean01"]


def test_hrnet_draws_and_pct_draws() -> None:
    tp, pct = get_protocol("tokenpose").aug, get_protocol("pct").aug
    # section 1.4: clip(randn * 0.35 + 1, 0.65, 1.35); clip(randn * 45, -90, 90) @ 0.6; HRNet order
    assert (tp.scale_range, tp.scale_std, tp.rotate_std, tp.rotate_limit, tp.order) == ((0.65, 1.35), 0.35, 45.0, 90.0, "hrnet")
    assert tp.shift_prob == 0.0
    # section 4: shift U(-1,1)*0.16 @ 0.3, scale clip(randn*0.5+1, 0.5, 1.5), rotation clip(randn*40, -80, 80) @ 0.6
    assert (pct.shift_factor, pct.shift_prob, pct.shift_sampler) == (0.16, 0.3, "uniform")
    assert (pct.scale_range, pct.scale_std, pct.rotate_std, pct.rotate_limit, pct.order) == ((0.5, 1.5), 0.5, 40.0, 80.0, "mmpose0")


def test_mpii_and_mmpose_values() -> None:
    """The TokenPose/PPT MPII yamls: ROT 30, SCALE 0.25, no half body, drawn as HRNet draws them
    (``clip(randn * 30, -60, 60)``, ``clip(randn * 0.25 + 1, 0.75, 1.25)``; pipeline.md section 1.4). MMPose 1.x
    reads PCKh Mean@0.1 at 0.1 exactly, the HRNet-era code at 0.11 (sections 2 and 8)."""
    from posetokens.protocols import aug_preset

    mpii = aug_preset("tokenpose_mpii")
    assert (mpii.rotate_std, mpii.rotate_limit, mpii.scale_std, mpii.scale_range, mpii.half_body_prob) == (
        30.0, 60.0, 0.25, (0.75, 1.25), 0.0)
    assert mpii.order == "hrnet" and mpii.sampler == "clipped"
    assert get_protocol("mmpose").eval.pckh_mean01_thr == 0.10 and get_protocol("tokenpose").eval.pckh_mean01_thr == 0.11
    # MMPose's DARK configs: MSRAHeatmap(unbiased=True), weighted by the box about the sub-pixel mean
    mm = get_protocol("mmpose").target
    assert (mm.full_gaussian, mm.weight_rule, mm.heatmap_mapping, mm.sigma) == (True, "float_box", "stride", 2.0)


def test_targets_and_lifting_rules() -> None:
    tp, gt, mv = get_protocol("tokenpose").target, get_protocol("gtpt").target, get_protocol("multiview_ppt")
    assert (tp.codec, tp.heatmap_mapping, tp.sigma, tp.weight_rule) == ("heatmap", "isotropic_size_minus_one", 2.0, "int_box")
    assert (gt.codec, gt.simcc_split, gt.simcc_sigma, gt.weight_rule) == ("simcc", 2.0, 4.0, "int_box_input_px")
    assert (mv.aug, mv.test.flip_test, mv.test.decode, mv.target.weight_rule) == (None, False, "argmax_quarter", "msra")
    assert get_protocol("hot").lift.h36m == "hot" and get_protocol("hot").lift.train_flip == "copies"
    assert get_protocol("motionbert").lift.h36m == "motionbert" and get_protocol("motionbert").lift.train_flip == "random"


def test_every_zoo_model_has_its_official_protocol() -> None:
    expected = {"tokenpose": "tokenpose", "ppt": "tokenpose", "gtpt": "gtpt", "pct": "pct", "mixste": "hot",
                "hot": "hot", "tpc": "hot", "mhformer": "hot", "motionbert": "motionbert",
                "motionagformer": "motionbert"}  # MotionAGFormer's train.py evaluates as MotionBERT does (spec §1.10)
    for name in list_models():
        got = default_protocol(name)
        if "multiview" in name:
            assert got == "multiview_ppt", name
        else:
            assert got == expected[name.split("_")[0]], name
    # section 6: HoT w. MotionBERT is tested with the HoT repo's protocol, MotionBERT with its own (section 7)
    assert default_protocol("hot_motionbert_h36m_243") == "hot"
    assert default_protocol("motionbert_h36m_243") == "motionbert"


@pytest.mark.parametrize("name", list_protocols())
def test_round_trip_through_a_dict(name: str) -> None:
    p = get_protocol(name)
    assert Protocol.from_dict(p.to_dict()) == p


def test_overrides_and_bad_keys() -> None:
    p = resolve_protocol("auto", default="gtpt", overrides={"eval": {"rescore_thr": 0.2}})
    assert p.eval.rescore_thr == 0.2 and p.name == "gtpt"
    with pytest.raises(ValueError, match="rescore_threshold"):
        get_protocol("gtpt").replace({"eval": {"rescore_threshold": 0.1}})
    with pytest.raises(ValueError, match="nms_area"):
        get_protocol("gtpt").replace({"eval": {"nms_area": "bbox"}})
    with pytest.raises(UserKeyError, match="known"):
        get_protocol("hrnet")


def test_checkpoint_describes_itself(tmp_path: Path) -> None:
    """A checkpoint we write rebuilds its reduced model, protocol and metainfo from the file alone."""
    overrides = {"image_size": [128, 96], "dim": 48, "depth": 2, "heads": 2, "patch_size": [4, 3]}
    model = create_model("tokenpose_s_coco_256x192", **overrides).eval()
    proto = get_protocol("tokenpose").replace({"eval": {"rescore_thr": 0.3}})
    path = atomic_save({**describe("tokenpose_s_coco_256x192", overrides, proto, get_metainfo("coco")),
                        "state_dict": model.state_dict()}, tmp_path / "w.pth")
    trained = load_trained(path)
    assert trained.protocol == proto and trained.metainfo.name == "coco"
    x = torch.randn(1, 3, 128, 96)
    torch.testing.assert_close(trained.model.eval()(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="holds 'tokenpose_s_coco_256x192'"):
        load_trained(path, name="ppt_s_coco_256x192")


def test_a_checkpoint_refuses_a_conflicting_override_and_a_reordered_builtin_layout(tmp_path: Path) -> None:
    """An override that contradicts what the checkpoint was built with would rebuild another model around its
    weights; a stored built-in layout whose keypoint order is not the built-in one would mislabel every joint."""
    overrides = {"image_size": [128, 96], "dim": 48, "depth": 2, "heads": 2, "patch_size": [4, 3]}
    model = create_model("tokenpose_s_coco_256x192", **overrides)
    desc = describe("tokenpose_s_coco_256x192", overrides, get_protocol("tokenpose"), get_metainfo("coco"))
    path = atomic_save({**desc, "state_dict": model.state_dict()}, tmp_path / "w.pth")
    load_trained(path, overrides={"dim": 48})  # agreeing is fine
    with pytest.raises(ValueError, match=r"model override dim=64 differs from the checkpoint's 48"):
        load_trained(path, overrides={"dim": 64})
    meta = dict(desc["metainfo"])
    meta["keypoint_names"] = list(reversed(meta["keypoint_names"]))
    path = atomic_save({**desc, "metainfo": meta, "state_dict": model.state_dict()}, tmp_path / "r.pth")
    with pytest.raises(ValueError, match=r"stored metainfo 'coco' has other keypoints than the built-in one"):
        load_trained(path)


def test_converted_official_files_record_their_own_protocol(tmp_path: Path) -> None:
    """``convert`` stores the zoo model's official protocol (GTPT's crop, padding and decoding for a GTPT file)."""
    from conftest import PARITY
    from posetokens.convert import convert_checkpoint, unwrap_state_dict

    out = convert_checkpoint("gtpt_t_coco_256x192", PARITY / "gtpt_t_coco_256x192" / "checkpoint.pth", tmp_path / "g.pth")
    assert read_description(out)["protocol"]["name"] == "gtpt"
    # a file holding both copies: the EMA one is the deployable one (GTPT, MMPose's EMA hook)
    w = torch.zeros(1)
    assert unwrap_state_dict({"state_dict": {"w": w}, "state_dict_ema": {"w": w + 1}})["w"].item() == 1.0
    assert unwrap_state_dict({"model": {"w": w}, "ema": {"w": w + 1}})["w"].item() == 1.0


def test_bare_state_dict_needs_a_name(tmp_path: Path) -> None:
    model = create_model("tokenpose_s_coco_256x192", dim=48, depth=1, heads=2)
    path = atomic_save(model.state_dict(), tmp_path / "bare.pth")
    assert read_description(path) is None
    with pytest.raises(ValueError, match="does not name its model"):
        load_trained(path)
    trained = load_trained(path, name="tokenpose_s_coco_256x192", overrides={"dim": 48, "depth": 1, "heads": 2})
    assert trained.protocol == get_protocol("tokenpose")  # an official release gets the zoo model's protocol


def test_override_values_are_type_checked() -> None:
    with pytest.raises(ValueError, match=r"eval.rescore_thr: expected float \| None, got 'abc'"):
        get_protocol("gtpt").replace({"eval": {"rescore_thr": "abc"}})
    with pytest.raises(ValueError, match=r"eval.rescore_thr: expected float \| None, got True"):  # bool is no number
        get_protocol("gtpt").replace({"eval": {"rescore_thr": True}})
    with pytest.raises(ValueError, match="target.sigma"):
        get_protocol("tokenpose").replace({"target": {"sigma": [1, 2]}})


def test_protocol_must_fit_the_model() -> None:
    from posetokens.protocols import check_model_protocol

    ppt = create_model("tokenpose_s_coco_256x192", dim=48, depth=1, heads=2)
    with pytest.raises(ValueError, match="decodes simcc outputs, but tokenpose_s_coco_256x192 outputs heatmap"):
        check_model_protocol(ppt, get_protocol("gtpt"))
    with pytest.raises(ValueError, match="lifting protocol"):
        check_model_protocol(ppt, get_protocol("hot"))
    check_model_protocol(ppt, get_protocol("mmpose"))  # another heatmap protocol is fine


def test_recipe_overrides_refine_an_aug_preset_and_a_checkpoint_protocol() -> None:
    from posetokens.engine.config import load_config
    from posetokens.engine.data import data_protocol

    model = create_model("tokenpose_s_coco_256x192", dim=48, depth=1, heads=2)
    cfg = load_config(None, ["data.aug=synthetic", "data.protocol_overrides={aug: {flip_prob: 0.25}}"])
    p = data_protocol(cfg.data, model)
    assert p.aug.flip_prob == 0.25 and p.aug.scale_range == (0.85, 1.15)  # the preset, refined
    trained = get_protocol("tokenpose").replace({"box": {"test_padding": 1.5}})
    cfg = load_config(None, ["data.protocol_overrides={eval: {nms_thr: 0.95}}"])
    p = data_protocol(cfg.data, model, base=trained)
    assert p.box.test_padding == 1.5 and p.eval.nms_thr == 0.95  # the checkpoint's protocol is kept and refined
    with pytest.raises(ValueError, match="config: data.protocol: unknown protocol 'tokenpos'"):
        data_protocol(load_config(None, ["data.protocol=tokenpos"]).data, model)


def test_initial_weight_files_are_not_needed_to_rebuild(tmp_path: Path) -> None:
    """PCT's tokenizer_ckpt / backbone_ckpt name files the saved state dict already holds."""
    meta = describe("tokenpose_s_coco_256x192", {"dim": 48, "tokenizer_ckpt": "gone.pth"}, get_protocol("tokenpose"))
    assert meta["model_overrides"] == {"dim": 48}


def test_a_stored_protocol_without_a_newer_field_takes_the_registered_value() -> None:
    """A checkpoint written before ``exif_orientation`` existed stores a tokenpose protocol without it: it read
    as True (pictures turned), where the official loader reads as stored. A missing field takes the registered
    protocol's value of the same name; an unregistered name takes the field's default."""
    from conftest import DATA
    from posetokens.protocols.topdown import build_coco_dataset

    for name, want in (("tokenpose", False), ("gtpt", False), ("pct", True)):
        old = get_protocol(name).to_dict()
        del old["exif_orientation"]
        assert Protocol.from_dict(old).exif_orientation is want
    old = get_protocol("tokenpose").to_dict()  # a nested field added later (63d366f): the registered value too
    del old["box"]["move_invisible_joints"]
    assert Protocol.from_dict(old).box.move_invisible_joints is False  # the dataclass default is True
    old = dict(get_protocol("tokenpose").to_dict(), aug=None)  # a value the dict has, None included, is kept
    assert Protocol.from_dict(old).aug is None
    mine = dict(get_protocol("tokenpose").to_dict(), name="mine")
    del mine["exif_orientation"]
    assert Protocol.from_dict(mine).exif_orientation is True
    ds = build_coco_dataset(get_protocol("tokenpose"), DATA / "coco" / "test_coco.json", DATA / "coco", "coco")
    assert ds.exif_orientation is False  # the protocol's, through the public builder
