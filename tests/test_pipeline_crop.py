"""The top-down training crop per protocol: the official crop_target fixtures (TokenPose, GTPT), planted bugs, the
official draw order with a scripted generator, and a two-sample KS test of our training draws against the official
formulas (spec §1.4)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ks_2samp

from conftest import PARITY
from posetokens.data.metainfo import get_metainfo
from posetokens.data.transforms import AugDraws, draw_augmentation
from posetokens.parity import run_parity
from posetokens.parity.pipeline_crop import crop_target_comparisons
from posetokens.protocols import get_protocol
from posetokens.protocols.topdown import build_pipeline

PIPE = PARITY / "pipeline"


def _fixture(name: str) -> tuple[Path, dict]:
    folder = PIPE / name
    assert (folder / "inputs.json").is_file(), f"pipeline fixture folder {folder} is missing (inputs.json)"
    assert (folder / "outputs.npz").is_file(), f"pipeline fixture folder {folder} is missing (outputs.npz)"
    return folder, json.loads((folder / "inputs.json").read_text())


def _failed(comps) -> set[str]:
    return {c.name for c in comps if not c.ok}


# ------------------------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("name", ["crop_target_tokenpose", "crop_target_gtpt"])
def test_crop_target_fixture_passes(name: str) -> None:
    folder, _ = _fixture(name)
    report = run_parity(folder)
    assert report.passed, report.table()
    names = {c.name for c in report.comparisons}
    assert {"box_center", "box_scale", "center", "scale", "rotation", "input", "joints (visible)", "joints_vis",
            "target_weight", "kept_annotations"} <= names, report.table()
    assert any(n.startswith("target") and "both weights" in n for n in names), report.table()


def test_planted_udp_warp_fails_tokenpose() -> None:
    """MMPose's UDP warp (per-axis (out-1)/size) instead of TokenPose's isotropic size-1 affine (spec §1.3)."""
    folder, spec = _fixture("crop_target_tokenpose")
    bad = get_protocol("tokenpose").replace({"warp": "udp"})
    failed = _failed(crop_target_comparisons(folder, spec, bad))
    assert {"joints (visible)", "input_mean_abs_worst_sample"} <= failed, failed


def test_planted_half_body_without_plus_one_fails_tokenpose() -> None:
    """TokenPose/PPT add +1 to the half-body extent (spec §1.4); GTPT's rule (no +1) on the TokenPose fixture."""
    folder, spec = _fixture("crop_target_tokenpose")
    assert any(s["half_body"] for s in spec["samples"]), "the fixture has no half-body sample"
    bad = get_protocol("tokenpose").replace({"aug": {"half_body_extent_offset": 0.0}})
    failed = _failed(crop_target_comparisons(folder, spec, bad))
    assert "scale" in failed and "box_scale" not in failed, failed


def test_planted_gt_clean_w_fails_gtpt() -> None:
    """GTPT's cleaned GT box is w-1 (spec §1.2); TokenPose's w on the GTPT fixture."""
    folder, spec = _fixture("crop_target_gtpt")
    bad = get_protocol("gtpt").replace({"box": {"gt_clean": "hrnet"}})
    failed = _failed(crop_target_comparisons(folder, spec, bad))
    assert {"box_center", "box_scale"} <= failed, failed


# --------------------------------------------------------------------------------- scripted draws
class ScriptedRng:
    """Returns scripted values and records which kind of draw the code asked for."""

    def __init__(self, values: list[tuple[str, object]]) -> None:
        self.values, self.calls = list(values), []

    def _next(self, kind: str) -> object:
        assert self.values, f"unexpected extra draw {kind!r}; calls so far {self.calls}"
        want, v = self.values.pop(0)
        assert want == kind, f"draw {len(self.calls)}: code asked for {kind!r}, script has {want!r}"
        self.calls.append(kind)
        return v

    def random(self):
        return self._next("rand")

    def standard_normal(self, size=None):
        v = self._next("randn")
        return v if size is None else np.full(size, v)

    def uniform(self, low, high, size=None):
        return np.asarray(self._next("uniform"))


def test_hrnet_draw_order_and_boundaries() -> None:
    """JointsDataset order: half body rand (< 0.3) and randn (< 0.5 -> upper), scale randn, rotation rand (<= 0.6)
    then randn, flip rand (<= 0.5); values clipped, not resampled (spec §1.4)."""
    aug = get_protocol("tokenpose").aug
    vis = np.ones(17)
    rng = ScriptedRng([("rand", 0.29), ("randn", 0.49), ("randn", 2.0), ("rand", 0.6), ("randn", -2.5),
                       ("rand", 0.5)])
    d = draw_augmentation(aug, rng, "coco", vis)
    assert not rng.values
    assert d == AugDraws("upper", 1.35, -90.0, True)  # clip(2*0.35+1) = 1.35; clip(-2.5*45) = -90; <= at 0.6, 0.5
    rng = ScriptedRng([("rand", 0.3), ("randn", -0.5), ("rand", 0.61), ("rand", 0.51)])
    assert draw_augmentation(aug, rng, "coco", vis) == AugDraws(None, 1 - 0.5 * 0.35, 0.0, False)
    # randn >= 0.5 -> lower (6 visible); only 8 visible -> no half-body draw at all
    rng = ScriptedRng([("rand", 0.0), ("randn", 0.51), ("randn", 0.0), ("rand", 0.9), ("rand", 0.9)])
    assert draw_augmentation(aug, rng, "coco", vis).half_body == "lower"
    few = np.r_[np.ones(8), np.zeros(9)]
    rng = ScriptedRng([("randn", 0.0), ("rand", 0.9), ("rand", 0.9)])
    assert draw_augmentation(aug, rng, "coco", few).half_body is None
    # upper chosen but only 2 upper joints visible -> lower (MPII: lower 0-6, upper 7-15)
    two_upper = np.r_[np.ones(7), np.zeros(7), np.ones(2)]
    rng = ScriptedRng([("rand", 0.0), ("randn", -1.0), ("randn", 0.0), ("rand", 0.9), ("rand", 0.9)])
    assert draw_augmentation(aug, rng, "mpii", two_upper).half_body == "lower"
    # exactly 3 upper joints visible is enough (the official "len(upper_joints) > 2")
    three_upper = np.r_[np.ones(7), np.zeros(6), np.ones(3)]
    rng = ScriptedRng([("rand", 0.0), ("randn", -1.0), ("randn", 0.0), ("rand", 0.9), ("rand", 0.9)])
    assert draw_augmentation(aug, rng, "mpii", three_upper).half_body == "upper"


def test_mmpose_half_body_rules_and_defaults() -> None:
    """MMPose 1.x (spec pipeline.md section 8): flip rand, half body rand (< 0.3) then rand < 0.7 prefers the upper
    half; the upper needs 2 visible joints, the lower 3, a short half gives way to the other and neither means no
    half body; then shift, scale and rotation each behind a rand. ``TopdownAugConfig()`` holds these defaults."""
    from posetokens.data.metainfo import from_coco_categories
    from posetokens.data.transforms import TopdownAugConfig

    aug = TopdownAugConfig()
    assert (aug.order, aug.sampler, aug.flip_prob) == ("mmpose", "truncated", 0.5)
    assert (aug.half_body_prob, aug.half_body_min_keypoints, aug.half_body_min_upper_keypoints,
            aug.half_body_min_part_keypoints, aug.half_body_upper_prob, aug.half_body_padding) == (0.3, 9, 2, 3, 0.7, 1.5)
    assert (aug.shift_factor, aug.shift_prob, aug.scale_range, aug.scale_prob, aug.rotate_limit, aug.rotate_prob) == (
        0.16, 0.3, (0.5, 1.5), 1.0, 80.0, 0.6)

    def half(meta, vis, prefer: float) -> str | None:
        rng = ScriptedRng([("rand", 0.9), ("rand", 0.1), ("rand", prefer), ("rand", 0.9), ("rand", 0.5),
                           ("randn", 0.0), ("rand", 0.9)])
        d = draw_augmentation(aug, rng, meta, vis)
        assert not rng.values and d.scale_factor == 1.0 and d.rotation == 0.0 and not d.flip
        return d.half_body

    assert half("coco", np.ones(17), 0.69) == "upper" and half("coco", np.ones(17), 0.71) == "lower"
    names = [f"j{i}" for i in range(20)]
    meta = from_coco_categories({"keypoints": names}, sigmas=[0.05] * 20, upper_body=names[:10], lower_body=names[10:])
    two_upper = np.r_[np.ones(2), np.zeros(8), np.ones(10)]
    assert half(meta, two_upper, 0.1) == "upper"  # 2 upper joints are enough
    two_lower = np.r_[np.ones(10), np.zeros(8), np.ones(2)]
    assert half(meta, two_lower, 0.9) == "upper"  # 2 lower joints are not: the upper half instead
    # whole-body: the face is in neither half; 1 upper and 2 lower joints visible among 23: no half body
    some = np.zeros(133)
    some[[0, 11, 12]] = 1
    some[23:43] = 1
    rng = ScriptedRng([("rand", 0.9), ("rand", 0.1), ("rand", 0.1), ("rand", 0.9), ("rand", 0.5), ("randn", 0.0),
                       ("rand", 0.9)])
    assert draw_augmentation(aug, rng, "coco_wholebody", some).half_body is None and not rng.values


def test_mmpose0_draw_order() -> None:
    """mmpose 0.x (PCT): shift rand (< 0.3) + uniform, flip rand (<= 0.5), half body, scale randn, rotation randn
    then rand (<= 0.6) (spec §4)."""
    aug = get_protocol("pct").aug
    rng = ScriptedRng([("rand", 0.1), ("uniform", [0.5, -1.0]), ("rand", 0.4), ("rand", 0.2), ("randn", 0.0),
                       ("randn", 0.5), ("randn", 3.0), ("rand", 0.6)])
    d = draw_augmentation(aug, rng, "coco", np.ones(17))
    assert not rng.values
    assert d.shift == pytest.approx((0.08, -0.16)) and d.flip and d.half_body == "upper"
    assert d.scale_factor == pytest.approx(1.25) and d.rotation == 80.0


def test_pipeline_uses_its_own_draws() -> None:
    """A training pipeline's random output equals the same pipeline run with the draws of the same seed."""
    meta = get_metainfo("coco")
    pipe = build_pipeline(get_protocol("tokenpose"), (256, 192), meta, train=True)
    rng0 = np.random.default_rng(3)
    img = rng0.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    kps = np.stack([rng0.uniform(100, 300, 17), rng0.uniform(50, 250, 17)], -1)
    vis = np.ones(17, np.float32)
    for seed in range(20):
        a = pipe(img, [90, 40, 220, 230], kps, vis, rng=np.random.default_rng(seed))
        d = pipe.draw(np.random.default_rng(seed), vis)
        b = pipe(img, [90, 40, 220, 230], kps, vis, draws=d)
        for k in ("center", "scale", "warp_matrix", "keypoints", "image"):
            np.testing.assert_array_equal(a[k], b[k])
        assert a["rotation"] == d.rotation and a["flipped"] == d.flip


# ----------------------------------------------------------------------------------------- KS test
N = 10_000


def _official_draws(seed: int) -> dict[str, np.ndarray]:
    """The official JointsDataset draws (spec §1.4) for an instance with all 17 COCO joints visible, with numpy's
    RandomState as the official code (np.random and random share one stream here)."""
    rs = np.random.RandomState(seed)
    out = {k: np.zeros(N) for k in ("scale", "rotation", "flip", "half_body")}
    for i in range(N):
        if rs.rand() < 0.3:  # > 8 visible
            out["half_body"][i] = 1 if rs.randn() < 0.5 else 2  # 11 upper, 6 lower visible: both > 2
        out["scale"][i] = np.clip(rs.randn() * 0.35 + 1, 0.65, 1.35)
        out["rotation"][i] = np.clip(rs.randn() * 45, -90, 90) if rs.rand() <= 0.6 else 0.0
        out["flip"][i] = rs.rand() <= 0.5
    return out


def _our_draws(aug, seed: int) -> dict[str, np.ndarray]:
    pipe = build_pipeline(dataclasses.replace(get_protocol("tokenpose"), aug=aug), (256, 192), "coco", train=True)
    rng, vis = np.random.default_rng(seed), np.ones(17, np.float32)
    draws = [pipe.draw(rng, vis) for _ in range(N)]
    return {"scale": np.array([d.scale_factor for d in draws]), "rotation": np.array([d.rotation for d in draws]),
            "flip": np.array([float(d.flip) for d in draws]),
            "half_body": np.array([{None: 0, "upper": 1, "lower": 2}[d.half_body] for d in draws], float)}


def test_training_draws_match_official_distribution() -> None:
    official = _official_draws(12345)
    ours = _our_draws(get_protocol("tokenpose").aug, 2024)
    for key in ("scale", "rotation", "flip", "half_body"):
        p = ks_2samp(ours[key], official[key]).pvalue
        assert p > 0.01, f"{key}: KS p = {p:.3g}"
    # the clipped sampler puts the official ~31.8 % of the scale mass at the bounds
    assert 0.29 < np.mean((ours["scale"] == 0.65) | (ours["scale"] == 1.35)) < 0.345


def test_planted_truncated_sampler_fails_ks() -> None:
    """MMPose 1.x's resampled (truncated) normal instead of the official clip: no mass at the bounds."""
    aug = dataclasses.replace(get_protocol("tokenpose").aug, sampler="truncated")
    p = ks_2samp(_our_draws(aug, 2024)["scale"], _official_draws(12345)["scale"]).pvalue
    assert p < 0.01, p
