"""The 2D evaluation protocol against the official pipeline fixtures (``shared/parity/pipeline/``):
COCO and COCO-WholeBody evaluation (rescoring, OKS-NMS, COCOeval) and MPII PCKh, plus planted bugs that the
comparisons must catch and hand-computed OKS-NMS cases (area, tie order, results order)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import PARITY

from posetokens.data.metainfo import get_metainfo
from posetokens.evaluation import oks_matrix, select_instances, to_coco_results
from posetokens.parity import run_parity
from posetokens.parity.pipeline_eval import compare_coco_eval, compare_mpii_pckh
from posetokens.protocols import get_protocol

PIPELINE = PARITY / "pipeline"


def _fixture(name: str) -> Path:
    folder = PIPELINE / name
    assert (folder / "inputs.json").is_file(), f"pipeline fixture folder missing: {folder}"
    return folder


def _spec(folder: Path) -> dict:
    return json.loads((folder / "inputs.json").read_text())


def _rule(folder: Path, **changes: object):
    return dataclasses.replace(get_protocol(_spec(folder)["method"]).eval, **changes)


def _failed(comps) -> set[str]:
    return {c.name for c in comps if not c.ok}


def _fixture_results(folder: Path) -> list[dict]:
    z = np.load(folder / "inputs.npz")
    return to_coco_results(z["image_id"], z["keypoints"], z["keypoint_scores"], z["bbox_score"], areas=z["area"],
                           centers=z["center"], scales=z["scale"])


# ------------------------------------------------------------------------------ the official fixtures
@pytest.mark.parametrize("name", ["coco_eval_tokenpose", "coco_eval_gtpt", "wholebody_eval_gtpt", "mpii_pckh"])
def test_fixture_passes(name: str) -> None:
    report = run_parity(_fixture(name))
    assert report.passed, report.table()
    names = {c.name for c in report.comparisons}
    if name.startswith("mpii"):
        expected = {f"name_value/{k}" for k in json.loads((PIPELINE / name / "outputs.json").read_text())["name_value"]}
        assert expected <= names
    else:
        assert {"rescored_score", "kept_index/set", "kept_index/order_within_image", "config/IN_VIS_THRE",
                "config/OKS_THRE"} <= names
        assert any(n.startswith("stats") for n in names)


def test_kept_rows_and_scores_are_the_official_ones() -> None:
    """Directly from the outputs: the kept rows in the official written order, the rescored scores."""
    for name in ("coco_eval_tokenpose", "coco_eval_gtpt", "wholebody_eval_gtpt"):
        folder = _fixture(name)
        out = json.loads((folder / "outputs.json").read_text())
        meta = get_metainfo("coco_wholebody" if name.startswith("wholebody") else "coco")
        rule = _rule(folder)
        scores, keep = select_instances(_fixture_results(folder), meta.sigmas_array, rescore_thr=rule.rescore_thr,
                                        nms_thr=rule.nms_thr, nms_area=rule.nms_area)
        np.testing.assert_allclose(scores, out["rescored_score"], rtol=1e-6, atol=0)
        assert keep.tolist() == out["kept_index"], name


# ------------------------------------------------------------------------------------- planted bugs
def test_mmpose_threshold_on_gtpt_scores_fails() -> None:
    """GTPT's SimCC scores stay below 0.1: at 0.2 every instance is rescored to 0 and the report fails."""
    for name in ("coco_eval_gtpt", "wholebody_eval_gtpt"):
        folder = _fixture(name)
        rule = _rule(folder, rescore_thr=0.2)
        meta = get_metainfo("coco_wholebody" if name.startswith("wholebody") else "coco")
        scores, _ = select_instances(_fixture_results(folder), meta.sigmas_array, rescore_thr=0.2,
                                     nms_thr=rule.nms_thr, nms_area=rule.nms_area)
        assert np.all(scores == 0.0), name
        failed = _failed(compare_coco_eval(folder, rule=rule))
        assert {"config/IN_VIS_THRE", "rescored_score"} <= failed, name
        assert any(n.startswith("stats") for n in failed), name


def test_gtpt_threshold_on_tokenpose_fails() -> None:
    folder = _fixture("coco_eval_tokenpose")
    failed = _failed(compare_coco_eval(folder, rule=_rule(folder, rescore_thr=0.01)))
    assert {"config/IN_VIS_THRE", "rescored_score", "stats"} <= failed


def test_keypoint_extent_nms_area_keeps_more_and_fails() -> None:
    """The keypoint extent is smaller than the padded box, so the OKS is lower and fewer duplicates are
    suppressed (spec §1.7: 8 more kept on the TokenPose fixture, 12 on GTPT's)."""
    extra = {}
    for name in ("coco_eval_tokenpose", "coco_eval_gtpt", "wholebody_eval_gtpt"):
        folder = _fixture(name)
        out = json.loads((folder / "outputs.json").read_text())
        meta = get_metainfo("coco_wholebody" if name.startswith("wholebody") else "coco")
        rule = _rule(folder, nms_area="keypoints")
        _, keep = select_instances(_fixture_results(folder), meta.sigmas_array, rescore_thr=rule.rescore_thr,
                                   nms_thr=rule.nms_thr, nms_area="keypoints")
        assert set(out["kept_index"]) <= set(keep.tolist()), name
        extra[name] = len(keep) - len(out["kept_index"])
        failed = _failed(compare_coco_eval(folder, rule=rule))
        assert "config/nms_area" in failed
        if extra[name]:
            assert "kept_index/set" in failed
    assert max(extra.values()) > 0, extra


def test_config_disagreement_fails() -> None:
    """The protocol is cross-checked against the fixture's official_config: a fixture made with another
    threshold fails on the config comparison even when the numbers agree."""
    folder = _fixture("coco_eval_tokenpose")
    spec = _spec(folder)
    spec["official_config"] = {**spec["official_config"], "IN_VIS_THRE": 0.3, "OKS_THRE": 0.8}
    failed = _failed(compare_coco_eval(folder, spec))
    assert failed == {"config/IN_VIS_THRE", "config/OKS_THRE"}
    spec["official_config"]["SOFT_NMS"] = True
    assert "config/SOFT_NMS" in _failed(compare_coco_eval(folder, spec))


def test_mpii_both_readings() -> None:
    """TokenPose's protocol reports the official pckAll[11] (0.11) reading and passes; GTPT's 0.10 reading
    is 3.26 points lower here and fails on Mean@0.1; both readings stay available under their own keys."""
    folder = _fixture("mpii_pckh")
    spec = _spec(folder)
    assert "pckAll[11]" in spec["official_config"]["Mean@0.1"]
    assert not _failed(compare_mpii_pckh(folder, rule=_rule(folder, pckh_mean01_thr=0.11)))
    failed = _failed(compare_mpii_pckh(folder, rule=_rule(folder, pckh_mean01_thr=0.10)))
    assert failed == {"config/Mean@0.1_threshold", "name_value/Mean@0.1"}

    from posetokens.evaluation import pckh

    z = np.load(folder / "inputs.npz")
    official = json.loads((folder / "outputs.json").read_text())["name_value"]
    pred = z["preds"][..., :2] + z["preds"].dtype.type(1)
    report = pckh(pred, z["gt_joints"], z["gt_joints_vis"] > 0, head_boxes=z["head_boxes"])
    assert report["Mean@0.11"] == pytest.approx(official["Mean@0.1"], abs=1e-6)
    assert report["Mean@0.10"] < report["Mean@0.11"]
    assert report["Mean@0.1"] == report["Mean@0.10"]  # pckh's own default is the exact 0.1 reading
    # the engine's convention (0-based predictions against 0-based GT) gives the same report here
    zero_based = pckh(z["preds"], z["gt_joints"] - 1, z["gt_joints_vis"] > 0, head_boxes=z["head_boxes"],
                      mean01_thr=0.11)
    for key, value in official.items():
        assert zero_based[key] == pytest.approx(value, abs=1e-6), key


# -------------------------------------------------------------------------------- hand-computed NMS
def _inst(image_id: int, kpts: np.ndarray, score: float, area: float | None = None) -> dict:
    r = {"image_id": image_id, "category_id": 1, "keypoints": np.asarray(kpts, float).ravel().tolist(), "score": score}
    if area is not None:
        r["area"] = area
    return r


def test_nms_area_decides_suppression() -> None:
    """Two joints (0,0) and (6,8), sigma 0.1; B is A shifted by 1 px. e = d^2 / ((2 sigma)^2 * s * 2) = 1 / (0.08 s).
    Padded box s = 400: OKS = exp(-1/32) = 0.9692 > 0.9 -> B suppressed. Keypoint extent s = 6 * 8 = 48:
    OKS = exp(-1/3.84) = 0.7707 <= 0.9 -> B kept."""
    a = np.array([[0.0, 0.0, 1.0], [6.0, 8.0, 1.0]])
    b = a + [1.0, 0.0, 0.0]
    insts = [_inst(1, a, 0.9, area=400.0), _inst(1, b, 0.8, area=400.0)]
    sig = [0.1, 0.1]
    m = oks_matrix(np.stack([a, b]), [400.0, 400.0], sig)
    assert m[0, 1] == pytest.approx(math.exp(-1 / 32), abs=1e-12)
    assert oks_matrix(np.stack([a, b]), [48.0, 48.0], sig)[0, 1] == pytest.approx(math.exp(-1 / 3.84), abs=1e-12)
    _, keep_box = select_instances(insts, sig, rescore=False, nms_area="box")
    _, keep_kpt = select_instances(insts, sig, rescore=False, nms_area="keypoints")
    assert keep_box.tolist() == [0] and keep_kpt.tolist() == [0, 1]
    # the official rule needs the area: a result without one is an error naming the entry and the field
    with pytest.raises(ValueError, match=r"entry \[1\]: field 'area' is missing.*nms_area='keypoints'"):
        select_instances([insts[0], _inst(1, b, 0.8)], sig, rescore=False, nms_area="box")


def test_nms_tie_order_and_results_order() -> None:
    """Official order: np.argsort(score)[::-1], so of two tied scores the later row is visited first.
    Two identical instances with equal scores: the official code keeps the second (a stable sort would keep
    the first). Three far-apart instances scored 0.5, 0.7, 0.5: argsort = [0, 2, 1] -> reversed [1, 2, 0].
    Images are written in order of first appearance (7 before 3), each in its visiting order."""
    a = np.array([[0.0, 0.0, 1.0], [6.0, 8.0, 1.0]])
    sig = [0.1, 0.1]
    twins = [_inst(1, a, 0.5, 400.0), _inst(1, a, 0.5, 400.0)]
    assert select_instances(twins, sig, rescore=False)[1].tolist() == [1]
    far = [_inst(7, a, 0.5, 400.0), _inst(7, a + [100, 0, 0], 0.7, 400.0), _inst(3, a, 0.9, 400.0),
           _inst(7, a + [200, 0, 0], 0.5, 400.0)]
    assert select_instances(far, sig, rescore=False)[1].tolist() == [1, 3, 0, 2]


def test_rescoring_rule_hand_computed() -> None:
    """score = box x mean(joint scores > thr), 0 when none passes; the box score is 'bbox_score' if given."""
    k = np.array([[0.0, 0.0, 0.05], [6.0, 8.0, 0.3], [3.0, 3.0, 0.5]])
    r = _inst(1, k, 0.8)
    r["bbox_score"] = 0.5
    scores, _ = select_instances([r, _inst(2, k * [1, 1, 0.1], 0.8)], [0.1] * 3, rescore_thr=0.2, nms_thr=None)
    np.testing.assert_allclose(scores, [0.5 * (0.3 + 0.5) / 2, 0.0])
    scores, _ = select_instances([r], [0.1] * 3, rescore_thr=0.01, nms_thr=None)
    np.testing.assert_allclose(scores, [0.5 * (0.05 + 0.3 + 0.5) / 3])
