"""COCO keypoint evaluation: parity with pycocotools called directly, OKS/OKS-NMS/rescoring by hand,
and validation errors."""

from __future__ import annotations

import contextlib
import dataclasses
import copy
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posetokens.evaluation import (
    COCO_KEYPOINT_METRICS,
    CROWDPOSE_METRICS,
    CocoMetric,
    compute_oks,
    evaluate_coco,
    load_coco_results,
    oks_matrix,
    oks_nms,
    oks_nms_arrays,
    prepare_coco_results,
    rescore,
    to_coco_results,
    validate_coco_results,
    write_coco_results,
)
from posetokens.runtime import one_run

GT_COCO = DATA / "coco" / "test_coco.json"
GT_CROWD = DATA / "crowdpose" / "test_crowdpose.json"
COCO_SIGMAS = np.array(
    [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089]
)
CROWD_SIGMAS = np.array([.079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089, .079, .079])


def _gt_annotations(path: Path = GT_COCO) -> list[dict]:
    return json.loads(path.read_text())["annotations"]


def _direct_cocoeval(results: list[dict], sigmas: np.ndarray, gt_path: Path = GT_COCO) -> np.ndarray:
    """pycocotools, called the textbook way (loadRes mutates its input, hence the deep copy)."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats, dtype=np.float64)


def test_files_written_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    """A ground truth and predictions saved with a UTF-8 byte-order mark (Windows tools write one) were refused as
    malformed JSON; they score as their plain copies do (pycocotools on the plain files)."""
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in _gt_annotations()]
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_bytes(b"\xef\xbb\xbf" + GT_COCO.read_bytes())
    pred.write_text("\ufeff" + json.dumps(preds), encoding="utf-8")
    ours = evaluate_coco(gt, pred, COCO_SIGMAS, rescore=False, nms_thr=None)
    np.testing.assert_allclose([ours[k] for k in COCO_KEYPOINT_METRICS], _direct_cocoeval(preds, COCO_SIGMAS),
                               rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------- (a) GT as preds
def test_gt_as_predictions_matches_direct_pycocotools() -> None:
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in _gt_annotations()
    ]
    ours = evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    direct = _direct_cocoeval(preds, COCO_SIGMAS)
    assert list(ours) == list(COCO_KEYPOINT_METRICS)
    np.testing.assert_allclose([ours[k] for k in COCO_KEYPOINT_METRICS], direct, rtol=0, atol=1e-12)
    # Sanity bound, not a golden: pycocotools keeps the two all-zero predictions made for the two
    # 0-keypoint GT annotations (xtcocotools drops them and reports 1.0). They match nothing (their GT is
    # ignored) and, with score 1, they rank among the true positives, so AP drops to ~0.894 while AR
    # stays 1.0.
    assert 0.85 < ours["AP"] < 0.95
    assert ours["AR"] == pytest.approx(1.0)


def test_gt_as_predictions_accepts_coco_object_and_leaves_it_untouched() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(GT_COCO))
    before = copy.deepcopy(gt.dataset)
    preds = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in _gt_annotations()
        if a["num_keypoints"] > 0
    ]
    ours = evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    assert ours["AP"] == pytest.approx(1.0)  # without the two all-zero predictions, pycocotools gives 1.0
    assert gt.dataset == before


# ------------------------------------------------------------------------- (b) perturbed + NMS
def _perturbed_predictions() -> tuple[list[dict], int]:
    """x*0.98, y*1.02, score v*0.8, box score 0.98 (MMPose's golden-test recipe), plus a near-duplicate
    (+0.5 px, box score 0.5) of every third instance so that OKS-NMS has something to remove."""
    preds, n_dup = [], 0
    for i, a in enumerate(_gt_annotations()):
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        k[:, 0] *= 0.98
        k[:, 1] *= 1.02
        k[:, 2] *= 0.8
        preds.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(),
                      "score": 0.98, "bbox": a["bbox"]})
        if i % 3 == 0 and a["num_keypoints"] > 0:
            d = k.copy()
            d[:, :2] += 0.5
            preds.append({"image_id": a["image_id"], "category_id": 1, "keypoints": d.ravel().tolist(),
                          "score": 0.5, "bbox": a["bbox"]})
            n_dup += 1
    return preds, n_dup


def _reference_rescore_nms(preds: list[dict], sigmas: np.ndarray, thr: float = 0.9) -> list[dict]:
    """Plain-loop re-implementation of bbox_keypoint rescoring + greedy OKS-NMS (MMPose semantics)."""
    per_image: dict[int, list[dict]] = defaultdict(list)
    for p in preds:
        per_image[p["image_id"]].append(p)
    out = []
    for iid, insts in per_image.items():
        scored = []
        for p in insts:
            k = np.asarray(p["keypoints"]).reshape(-1, 3)
            good = [s for s in k[:, 2] if s > 0.2]
            kpt_score = sum(good) / len(good) if good else 0.0
            scored.append((p["score"] * kpt_score, k, p["bbox"][2] * p["bbox"][3]))
        order = sorted(range(len(scored)), key=lambda j: -scored[j][0])  # stable for ties
        kept: list[int] = []
        removed: set[int] = set()
        for j in order:
            if j in removed:
                continue
            kept.append(j)
            for m in order:
                if m in removed or m in kept:
                    continue
                kj, km = scored[j][1], scored[m][1]
                area = (scored[j][2] + scored[m][2]) / 2
                oks = 0.0
                for t in range(len(sigmas)):
                    d2 = (kj[t, 0] - km[t, 0]) ** 2 + (kj[t, 1] - km[t, 1]) ** 2
                    oks += math.exp(-d2 / (2 * sigmas[t]) ** 2 / (area + np.spacing(1)) / 2)
                if oks / len(sigmas) > thr:
                    removed.add(m)
        for j in kept:
            out.append({"image_id": iid, "category_id": 1, "keypoints": scored[j][1].ravel().tolist(),
                        "score": scored[j][0]})
    return out


def test_perturbed_with_rescoring_and_nms_matches_direct_pycocotools() -> None:
    preds, n_dup = _perturbed_predictions()
    reference = _reference_rescore_nms(preds, COCO_SIGMAS, 0.9)
    assert n_dup > 0 and len(reference) == len(preds) - n_dup  # every duplicate, and only those, removed

    ours_prepared = prepare_coco_results(preds, COCO_SIGMAS, rescore=True, nms_thr=0.9)
    assert len(ours_prepared) == len(reference)
    # scores may differ in the last bit (different summation order), so sort on rounded scores
    key = lambda r: (r["image_id"], -round(r["score"], 9), tuple(r["keypoints"]))  # noqa: E731
    for a, b in zip(sorted(ours_prepared, key=key), sorted(reference, key=key)):
        assert a["image_id"] == b["image_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-15)
        np.testing.assert_array_equal(a["keypoints"], b["keypoints"])

    ours = evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=True, nms_thr=0.9)
    direct = _direct_cocoeval(ours_prepared, COCO_SIGMAS)
    np.testing.assert_allclose([ours[k] for k in COCO_KEYPOINT_METRICS], direct, rtol=0, atol=1e-12)
    # Most instances get the SAME rescored score (0.98 x 1.6), so AP/AP75/APL depend on how those ties
    # are ranked, down to the last bit of the rescored mean (numpy's pairwise sum vs the plain loop
    # above). The reference list scores AP 0.5301 through pycocotools, ours 0.5320. Recall does not
    # depend on the ranking, so the AR numbers must agree whatever the tie order; AP50 and APM happen to
    # be tie-insensitive on this data too.
    ref = dict(zip(COCO_KEYPOINT_METRICS, _direct_cocoeval(reference, COCO_SIGMAS)))
    for k in ("AP50", "APM", "AR", "AR50", "AR75", "ARM", "ARL"):
        assert ours[k] == pytest.approx(ref[k], abs=1e-12), k
    # MMPose's (xtcocotools) golden for this recipe: AP50 0.90429, AR 0.58333; those two agree here.
    assert ours["AP50"] == pytest.approx(0.90429, abs=1e-5)
    assert ours["AR"] == pytest.approx(0.58333, abs=1e-5)

    # Without NMS the duplicates stay and are false positives: AP must not go up.
    no_nms = evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=True, nms_thr=None)
    assert no_nms["AP"] <= ours["AP"]


def test_coco_metric_accumulates_and_writes(tmp_path: Path) -> None:
    preds, _ = _perturbed_predictions()
    metric = CocoMetric(GT_COCO, COCO_SIGMAS, outfile=tmp_path / "res.json")
    metric.update(preds[:7])
    metric.update(preds[7:])
    assert metric.compute() == evaluate_coco(GT_COCO, preds, COCO_SIGMAS)
    assert len(load_coco_results(tmp_path / "res.json", 17)) == len(preds)
    metric.reset()
    assert metric.results == []


def test_to_coco_results_round_trip() -> None:
    anns = [a for a in _gt_annotations() if a["num_keypoints"] > 0]
    k = np.stack([np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in anns])
    res = to_coco_results([a["image_id"] for a in anns], k[..., :2], k[..., 2], np.ones(len(anns)))
    validate_coco_results(res, 17)
    np.testing.assert_array_equal(res[0]["keypoints"], anns[0]["keypoints"])


def test_crowdpose_emulation() -> None:
    anns = _gt_annotations(GT_CROWD)
    preds = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0} for a in anns]
    out = evaluate_coco(GT_CROWD, preds, CROWD_SIGMAS, iou_type="keypoints_crowd", use_area=False,
                        rescore=False, nms_thr=None)
    assert list(out) == list(CROWDPOSE_METRICS)
    assert out["AR"] == pytest.approx(1.0)
    # both images have crowdIndex in [0.2, 0.8): only the medium split has data
    assert out["APE"] == -1.0 and out["APH"] == -1.0
    assert out["APM"] == pytest.approx(out["AP"], abs=1e-4)
    with pytest.raises(ValueError, match="'area'"):  # CrowdPose has no area: use_area=True must fail clearly
        evaluate_coco(GT_CROWD, preds, CROWD_SIGMAS, use_area=True)


# ---------------------------------------------------------------------------- (c) hand-computed
def test_oks_hand_computed() -> None:
    gt = np.array([[0.0, 0.0, 2], [10.0, 0.0, 2], [0.0, 10.0, 0]])  # third joint unlabelled
    pred = np.array([[1.0, 0.0], [10.0, 2.0], [50.0, 50.0]])
    # e = d^2 / (2σ)^2 / area / 2 with σ = 0.1, area = 50 -> d^2 / 4: e1 = 1/4, e2 = 4/4
    # OKS = (exp(-0.25) + exp(-1)) / 2 = (0.7788007831 + 0.3678794412) / 2 = 0.5733401121
    oks = compute_oks(pred, gt, 50.0, [0.1, 0.1, 0.1])
    assert oks == pytest.approx(0.5733401121, abs=1e-10)
    batched = compute_oks(np.stack([pred, gt[:, :2]]), gt, 50.0, [0.1, 0.1, 0.1])
    np.testing.assert_allclose(batched, [0.5733401121, 1.0], atol=1e-10)
    assert compute_oks(pred, np.zeros((3, 3)), 50.0, [0.1, 0.1, 0.1]) == 0.0  # nothing labelled


def test_oks_nms_hand_computed() -> None:
    base = np.array([[0.0, 0.0, 1.0], [10.0, 10.0, 1.0]])
    shift = lambda dx: base + [dx, 0.0, 0.0]  # noqa: E731
    insts = [
        {"keypoints": base, "score": 0.9, "area": 100.0},                  # 0: kept (best)
        {"keypoints": shift(0.1), "score": 0.8, "area": 100.0},            # 1: dup of 0, suppressed
        {"keypoints": shift(0.2).ravel(), "score": 0.85, "area": 100.0},   # 2: dup of 0, suppressed
        {"keypoints": base + [100.0, 100.0, 0.0], "score": 0.7, "area": 100.0},  # 3: far away, kept
        {"keypoints": shift(1.1), "score": 0.6, "area": 100.0},            # 4: just below thr, kept
    ]
    # σ = 0.1, mean area 100: e = d^2 / (0.04 * 100 * 2) = d^2 / 8 for both joints.
    # OKS(0,1) = exp(-0.01/8) = 0.99875; OKS(0,2) = exp(-0.04/8) = 0.99501  -> > 0.9, suppressed
    # OKS(0,4) = exp(-1.21/8) = 0.85963 -> <= 0.9, kept; OKS(0,3) ~ 0 -> kept
    keep = oks_nms(insts, sigmas=[0.1, 0.1], thr=0.9)
    np.testing.assert_array_equal(keep, [0, 3, 4])
    m = oks_matrix(np.stack([np.asarray(i["keypoints"]).reshape(-1, 3) for i in insts]), [100.0] * 5, [0.1, 0.1])
    assert m[0, 1] == pytest.approx(math.exp(-0.01 / 8))
    assert m[0, 4] == pytest.approx(math.exp(-1.21 / 8))
    np.testing.assert_allclose(m, m.T)
    assert oks_nms_arrays(np.zeros((0, 2, 3)), [], [], [0.1, 0.1]).size == 0


def test_oks_nms_memory_grows_with_one_row() -> None:
    """OKS-NMS built the whole N x N x K OKS tensor of an image: a results file of 42,000 duplicates was killed at
    23 GB. The official loop takes one row at a time. 1,500 copies of one 17-joint pose (tied scores) and one
    distant person (OKS ~0 with them): one copy is kept, the first of the official order (``np.argsort(scores)
    [::-1]``, numpy's unstable sort), and the far person, in a few MB where the full tensor of the pairwise
    differences alone needs 600 MB."""
    import tracemalloc

    pose = np.concatenate([np.random.default_rng(0).uniform(0, 100, (17, 2)), np.ones((17, 1))], axis=1)
    kps = np.concatenate([np.repeat(pose[None], 1500, axis=0), (pose + [500.0, 500.0, 0.0])[None]])
    scores = np.r_[np.full(1500, 0.9), 0.5]
    tracemalloc.start()
    try:
        keep = oks_nms_arrays(kps, scores, np.full(1501, 1e4), np.full(17, 0.07), thr=0.9)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(keep, [np.argsort(scores)[::-1][0], 1500])
    assert peak < 50e6, f"{peak / 1e6:.0f} MB"


def test_rescore_hand_computed() -> None:
    # joints above 0.2: 0.5 and 0.9 -> mean 0.7; × box 0.5 = 0.35. A joint at exactly 0.2 is left out.
    assert rescore([0.1, 0.5, 0.9, 0.2], 0.5) == pytest.approx(0.35)
    np.testing.assert_allclose(rescore([[0.1, 0.5, 0.9, 0.2], [0.1, 0.1, 0.0, 0.2]], [0.5, 1.0]), [0.35, 0.0])


# ---------------------------------------------------------------------------- (d) validation
def _valid_pred(**overrides: object) -> dict:
    a = _gt_annotations()[0]
    p = {"image_id": a["image_id"], "category_id": 1, "keypoints": list(a["keypoints"]), "score": 0.9}
    p.update(overrides)
    return p


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_valid_pred(keypoints=[float("nan")] + _valid_pred()["keypoints"][1:]), "'keypoints'"),
        (_valid_pred(keypoints=_valid_pred()["keypoints"][:-3]), "'keypoints'"),
        (_valid_pred(image_id=123456789), "'image_id'"),
        ({k: v for k, v in _valid_pred().items() if k != "image_id"}, "'image_id'"),
        (_valid_pred(score=float("inf")), "'score'"),
        ({k: v for k, v in _valid_pred().items() if k != "score"}, "'score'"),
        (_valid_pred(category_id=2), r"'category_id' = 2 is not a category of the ground truth .*\[1\]"),
        # null scores raised TypeError from float() (score under --no-rescore, bbox_score when rescoring) or passed
        (_valid_pred(score=None), r"field 'score' must be a finite number, got None$"),
        (_valid_pred(bbox_score="0.9"), r"field 'bbox_score' must be a finite number, got '0\.9'$"),
        (_valid_pred(area=-1.0), r"field 'area' must be >= 0, got -1\.0$"),
        (_valid_pred(bbox=[0, 0, -1, 5]), r"field 'bbox' must be \[x, y, w, h\] with sizes >= 0, got \[0, 0, -1, 5\]$"),
        # read as numbers: AP 0.5087 against 0.5480 in a review's case of booleans
        (_valid_pred(keypoints=[True] * 51), r"field 'keypoints' is not a numeric array \(values of type bool\)$"),
        (_valid_pred(keypoints=[str(v) for v in _valid_pred()["keypoints"]]), r"field 'keypoints' is not a numeric "
         r"array \(values of type <U"),
    ],
)
def test_validation_errors_name_the_field(bad: dict, field: str, tmp_path: Path) -> None:
    preds = [_valid_pred(), bad]
    with pytest.raises(ValueError, match=field) as e:
        evaluate_coco(GT_COCO, preds, COCO_SIGMAS)
    assert "entry [1]" in str(e.value)
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(preds))  # json writes NaN/Infinity literals, which json.load reads back
    with pytest.raises(ValueError, match=field) as e:
        evaluate_coco(GT_COCO, path, COCO_SIGMAS)
    assert str(path) in str(e.value) and "entry [1]" in str(e.value)


def _gt_with(change) -> dict:
    data = json.loads(GT_COCO.read_text())
    change(data["annotations"][1])
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.pop("num_keypoints"), r"annotations\[1\] \(id=\d+\): missing field 'num_keypoints'$"),
    (lambda a: a.pop("id"), r"annotations\[1\] \(id=None\): missing field 'id'$"),
    (lambda a: a.update(bbox=[1.0, 2.0, 3.0]), r"annotations\[1\] \(id=\d+\): field 'bbox' must be 4 finite numbers "
     r"\[x, y, w, h\], got \[1\.0, 2\.0, 3\.0\]$"),
    # each of these raised from inside numpy or pycocotools, or changed the AP without a word
    (lambda a: a.update(keypoints=None), r"annotations\[1\] \(id=\d+\): field 'keypoints' must be a flat list of "
     r"finite numbers \[x, y, v, \.\.\.\] \(3 per keypoint\), got None$"),
    (lambda a: a["keypoints"].__setitem__(3, "7"), r"annotations\[1\] \(id=\d+\): "
     r"field 'keypoints' must be a flat list of finite numbers"),
    (lambda a: a["keypoints"].__setitem__(5, float("nan")), r"annotations\[1\] \(id=\d+\): "
     r"field 'keypoints' must be a flat list of finite"),
    (lambda a: a["keypoints"].append(1.0), r"annotations\[1\] \(id=\d+\): "
     r"field 'keypoints' must be a flat list .* \(3 per keypoint\)"),
    (lambda a: a.update(area="x"), r"annotations\[1\] \(id=\d+\): field 'area' must be a finite number >= 0, "
     r"got 'x'$"),
    (lambda a: a.update(area=float("nan")), r"annotations\[1\] \(id=\d+\): "
     r"field 'area' must be a finite number >= 0, got nan$"),
    (lambda a: a.update(area=-5.0), r"annotations\[1\] \(id=\d+\): "
     r"field 'area' must be a finite number >= 0, got -5\.0$"),
    (lambda a: a.update(category_id=3), r"annotations\[1\] \(id=\d+\): field 'category_id' = 3 is not one of its "
     r"'categories' \(\[1\]\)$"),
    (lambda a: a.update(category_id="person"), r"annotations\[1\] \(id=\d+\): field 'category_id' = 'person' is not "
     r"one of its 'categories'"),
    # a TypeError from inside pycocotools, or an int() message without the file
    (lambda a: a.update(iscrowd=None), r"annotations\[1\] \(id=\d+\): field 'iscrowd' must be 0 or 1, got None$"),
    (lambda a: a.update(iscrowd="yes"), r"annotations\[1\] \(id=\d+\): field 'iscrowd' must be 0 or 1, got 'yes'$"),
])
def test_ground_truth_errors_name_the_field(change, message: str) -> None:
    """What COCOeval reads of each GT annotation is checked first: it raised KeyError/IndexError from inside
    pycocotools, or (another category) silently dropped the person."""
    preds = [_valid_pred()]
    with pytest.raises(ValueError, match=r"<GT dict>: " + message):
        evaluate_coco(_gt_with(change), preds, COCO_SIGMAS)


def test_ground_truth_lists_and_ids() -> None:
    """``categories: null`` raised a TypeError; a repeated annotation id made COCO's index keep one of the two people
    without a word (AP 0.5404 against 0.5480 in a review's case)."""
    data = json.loads(GT_COCO.read_text())
    with pytest.raises(ValueError, match=r"^<GT dict>: top-level 'categories' must be a list of objects, got "
                                         r"NoneType$"):
        evaluate_coco({**data, "categories": None}, [_valid_pred()], COCO_SIGMAS)
    with pytest.raises(ValueError, match=r"^<GT dict>: categories\[0\]: expected an object with an integer 'id', "
                                         r"got \{'name': 'person'\}$"):
        evaluate_coco({**data, "categories": [{"name": "person"}]}, [_valid_pred()], COCO_SIGMAS)
    twice = copy.deepcopy(data)
    twice["annotations"][2]["id"] = twice["annotations"][1]["id"]
    with pytest.raises(ValueError, match=r"^<GT dict>: annotations\[2\]: field 'id' = \d+ repeats annotations\[1\]'s; "
                                         r"expected one id per annotation"):
        evaluate_coco(twice, [_valid_pred()], COCO_SIGMAS)


def test_crowd_index_is_checked() -> None:
    data = json.loads(GT_CROWD.read_text())
    preds = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0} for a in data["annotations"]]
    for value, shown in ((None, r"None"), ("0.3", r"'0\.3'")):  # a TypeError; a string read as a number
        bad = copy.deepcopy(data)
        bad["images"][1]["crowdIndex"] = value
        with pytest.raises(ValueError, match=r"^<GT dict>: images\[1\] \(id=\d+\): field 'crowdIndex' must be a finite "
                                             rf"number >= 0 \(CrowdPose's easy/medium/hard splits\); got {shown}$"):
            evaluate_coco(bad, preds, CROWD_SIGMAS, iou_type="keypoints_crowd", use_area=False)


def _one_person(ann_id: int, num_keypoints: int | None = None) -> tuple[dict, list[dict]]:
    """One image, one person of COCO's sample (its id and num_keypoints as given), and that person predicted exactly."""
    data = json.loads(GT_COCO.read_text())
    ann = next(a for a in data["annotations"] if a["num_keypoints"] > 5)
    img = next(i for i in data["images"] if i["id"] == ann["image_id"])
    ann = dict(ann, id=ann_id, num_keypoints=ann["num_keypoints"] if num_keypoints is None else num_keypoints)
    pred = {"image_id": ann["image_id"], "category_id": 1, "keypoints": ann["keypoints"], "score": 1.0}
    return {**data, "images": [img], "annotations": [ann]}, [pred]


def test_the_two_cocoevals_on_an_id_0_and_a_num_keypoints_that_disagrees(caplog: pytest.LogCaptureFixture) -> None:
    """Hand cases on pycocotools' and xtcocotools' COCOeval code. One person, predicted exactly:
    * annotation id 0: pycocotools stores a match as the annotation id and reads 0 as none (dtm), so the
      prediction is a false positive and AP is 0; xtcocotools marks none with -1: AP 1 (a review measured 0.5480 with
      the real xtcocotools where the emulation gave pycocotools' 0.4897);
    * num_keypoints 0 with labelled keypoints: pycocotools ignores the person (no GT left: AP -1); xtcocotools counts
      the flags (v > 0): AP 1.
    pycocotools' readings are the official ones for its protocols, each said once a run."""
    gt, preds = _one_person(0)
    with caplog.at_level("WARNING"), one_run():  # as in a training: said at the first evaluation only
        assert evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)["AP"] == 0.0
        evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    assert caplog.text.count("annotations[0] has id 0: pycocotools' COCOeval stores a match as the annotation") == 1
    caplog.clear()
    with caplog.at_level("WARNING"):  # outside a run (a notebook's calls): every time
        evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
        evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    assert caplog.text.count("has id 0") == 2
    xt = evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None, coco_backend="xtcocotools")
    assert xt["AP"] == pytest.approx(1.0)
    assert evaluate_coco(*_one_person(7), COCO_SIGMAS, rescore=False, nms_thr=None)["AP"] == pytest.approx(1.0)
    gt, preds = _one_person(7, num_keypoints=0)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None)["AP"] == -1.0
    assert "1 annotation(s) whose 'num_keypoints' disagrees with their visibility flags" in caplog.text
    xt = evaluate_coco(gt, preds, COCO_SIGMAS, rescore=False, nms_thr=None, coco_backend="xtcocotools")
    assert xt["AP"] == pytest.approx(1.0)


def test_ground_truth_without_an_annotated_person_is_said(caplog: pytest.LogCaptureFixture) -> None:
    """COCOeval has nothing to recall: every metric is -1, now said."""
    data = json.loads(GT_COCO.read_text())
    with caplog.at_level("WARNING"):
        out = evaluate_coco({**data, "annotations": []}, [_valid_pred()], COCO_SIGMAS)
    assert set(out.values()) == {-1.0}
    assert "<GT dict>: no annotated person in its listed images" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # nothing to score at all: 0.0, said as such (not -1)
        assert set(evaluate_coco({**data, "annotations": []}, [], COCO_SIGMAS).values()) == {0.0}
    assert "every metric is -1" not in caplog.text and "every metric is 0.0" in caplog.text


def test_a_coco_metric_outfile_over_its_ground_truth_is_refused(tmp_path: Path) -> None:
    """It wrote the predictions over the ground truth, then failed reading it: the ground truth was lost."""
    gt = tmp_path / "gt.json"
    gt.write_text(GT_COCO.read_text())
    with pytest.raises(ValueError, match=r"outfile \S+gt\.json would overwrite the ground truth"):
        CocoMetric(gt, COCO_SIGMAS, outfile=tmp_path / "." / "gt.json")
    assert gt.read_text() == GT_COCO.read_text()


def test_annotations_of_unlisted_images_are_said_and_not_scored(caplog: pytest.LogCaptureFixture) -> None:
    """A val subset cut by its ``images`` keeps annotations of the images it dropped: COCOeval scores the listed
    images only (pycocotools: the same AP with or without them), said once; nor are they counted as images
    without a prediction."""
    data = json.loads(GT_COCO.read_text())
    preds = [_valid_pred()]
    stray = dict(data["annotations"][0], id=999999, image_id=424242)
    cut = {**data, "annotations": data["annotations"] + [stray]}
    with caplog.at_level("WARNING"):
        ours = evaluate_coco(cut, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    said = [r.getMessage() for r in caplog.records]
    assert sum(m == "<GT dict>: annotations of 1 image id(s) not in its 'images' (424242) are not scored"
               for m in said) == 1, said
    assert not any("424242" in m and "have no prediction" in m for m in said), said
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = cut
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes([dict(p, category_id=1) for p in preds]), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ours["AP"] == pytest.approx(ev.stats[0], abs=1e-12)


def test_a_null_bbox_score_is_none() -> None:
    """``bbox_score: null`` (other tools' json) rescoring takes ``score``, as when it is left out."""
    with_null = [_valid_pred(bbox_score=None, score=0.7)]
    without = [_valid_pred(score=0.7)]
    assert evaluate_coco(GT_COCO, with_null, COCO_SIGMAS) == evaluate_coco(GT_COCO, without, COCO_SIGMAS)


def test_ground_truth_lists_must_be_lists() -> None:
    """``images`` as an object: its keys would be iterated, and the predictions blamed for ids it lacks."""
    data = json.loads(GT_COCO.read_text())
    data["images"] = {}
    with pytest.raises(ValueError, match=r"^<GT dict>: top-level 'images' must be a list of objects, got dict$"):
        evaluate_coco(data, [_valid_pred()], COCO_SIGMAS)


def test_results_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco_results(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 785,')
    with pytest.raises(ValueError, match="broken.json"):
        load_coco_results(broken)
    with pytest.raises(ValueError, match="'keypoints'"):
        write_coco_results(tmp_path / "w.json", [_valid_pred(keypoints=[1.0, 2.0])])
    out = write_coco_results(tmp_path / "sub" / "w.json", [_valid_pred(keypoints=np.zeros((17, 3)))], 17)
    assert load_coco_results(out, 17)[0]["keypoints"] == [0.0] * 51


# ------------------------------------------------------------------------ (e) the protocol entry point
def test_evaluate_keypoints_dispatch_and_keys() -> None:
    """evaluate_keypoints takes every setting from the rule and the metainfo: COCO -> evaluate_coco with
    the rule's threshold/NMS/area/backend; CrowdPose -> keypoints_crowd without area; MPII -> an error."""
    from posetokens.evaluation import evaluate_keypoints
    from posetokens.protocols import EvalRule, get_protocol

    preds, _ = _perturbed_predictions()
    for p in preds:
        p["area"] = 1.25 ** 2 * p["bbox"][2] * p["bbox"][3]  # a padded-box area for the official NMS rule
    rule = get_protocol("tokenpose").eval
    got = evaluate_keypoints(GT_COCO, preds, "coco", rule)
    assert list(got) == list(COCO_KEYPOINT_METRICS)
    assert got == evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore_thr=0.2, nms_thr=0.9, nms_area="box")
    assert evaluate_keypoints(GT_COCO, preds, "coco", get_protocol("tokenpose")) == got  # a Protocol works too
    # no rescoring (rescore_thr None) keeps the given scores
    assert evaluate_keypoints(GT_COCO, preds, "coco", dataclasses.replace(rule, rescore_thr=None)) == \
        evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=False, nms_thr=0.9, nms_area="box")

    crowd = [{"image_id": a["image_id"], "keypoints": a["keypoints"], "score": 1.0} for a in _gt_annotations(GT_CROWD)]
    out = evaluate_keypoints(GT_CROWD, crowd, "crowdpose", EvalRule(nms_thr=None))
    assert list(out) == list(CROWDPOSE_METRICS) and out["AR"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="16 sigmas"):  # MPII's OKS sigmas do not fit 17-keypoint COCO GT
        evaluate_keypoints(GT_COCO, preds, "mpii", rule)
    with pytest.raises(TypeError, match="EvalRule"):
        evaluate_keypoints(GT_COCO, preds, "coco", {"rescore_thr": 0.2})


def test_xtcocotools_backend_drops_zero_score_predictions() -> None:
    """xtcocotools' COCOeval skips detections without a positive keypoint score (pycocotools counts them):
    the GT fed back as predictions scores AP 1.0 with the emulated xtcocotools, 0.894 with pycocotools."""
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in _gt_annotations()]
    xt = evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=False, nms_thr=None, coco_backend="xtcocotools")
    assert xt["AP"] == pytest.approx(1.0) and xt["AR"] == pytest.approx(1.0)
    assert evaluate_coco(GT_COCO, preds, COCO_SIGMAS, rescore=False, nms_thr=None)["AP"] < 0.95
    with pytest.raises(ValueError, match="coco_backend"):
        evaluate_coco(GT_COCO, preds, COCO_SIGMAS, coco_backend="nope")
    with pytest.raises(ValueError, match="nms_area"):
        evaluate_coco(GT_COCO, preds, COCO_SIGMAS, nms_area="nope")


def test_results_carry_area_center_scale(tmp_path: Path) -> None:
    """The prediction-writing path carries the OKS-NMS 'area' and the official 'center'/'scale'; the
    validator checks them; results handed to COCOeval drop them (no bbox/area, as the official writes)."""
    anns = [a for a in _gt_annotations() if a["num_keypoints"] > 0]
    k = np.stack([np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in anns])
    n = len(anns)
    centers, scales = np.full((n, 2), 100.0), np.tile([150.0, 200.0], (n, 1))
    res = to_coco_results([a["image_id"] for a in anns], k[..., :2], k[..., 2], np.ones(n),
                          areas=scales.prod(1), centers=centers, scales=scales)
    assert res[0]["area"] == 30000.0 and res[0]["center"] == [100.0, 100.0] and res[0]["scale"] == [150.0, 200.0]
    path = write_coco_results(tmp_path / "r.json", res, 17)
    assert load_coco_results(path, 17) == res
    with pytest.raises(ValueError, match=r"entry \[0\]: field 'center' must be 2 finite numbers"):
        validate_coco_results([{**res[0], "center": [1.0, float("nan")]}], 17)
    with pytest.raises(ValueError, match=r"entry \[0\]: field 'scale' must be 2 finite numbers"):
        validate_coco_results([{**res[0], "scale": [1.0, 2.0, 3.0]}], 17)
    prepared = prepare_coco_results(res, COCO_SIGMAS, nms_area="box")
    assert all(set(r) == {"image_id", "category_id", "keypoints", "score"} for r in prepared)


def test_a_ground_truth_category_without_predictions_is_refused(tmp_path: Path) -> None:
    """COCOeval averages the AP over the categories with people: a person file with a second category (half its
    people marked 'dog') scored the ground truth itself, as predictions of category 1, at AP 0.5 (pycocotools,
    below) without a word. It is refused naming the category; a ground truth of the predicted category passes."""
    gt = json.loads(GT_COCO.read_text())
    gt["categories"].append({"id": 2, "name": "dog"})
    for a in gt["annotations"][::2]:
        a["category_id"] = 2
    path = tmp_path / "two_categories.json"
    path.write_text(json.dumps(gt))
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"] if a["category_id"] == 1]
    stats = _direct_cocoeval(preds, COCO_SIGMAS, path)
    assert stats[0] <= 0.5  # what COCOeval itself reports for this input
    with pytest.raises(ValueError, match=r"two_categories.json: annotated people of category \[2\] and no "
                                         r"prediction of it"):
        evaluate_coco(path, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    # a category whose only people COCOeval does not score (a crowd region; an image not listed) is no reason
    gt = json.loads(GT_COCO.read_text())
    gt["categories"].append({"id": 2, "name": "dog"})
    crowd, unlisted = copy.deepcopy(gt["annotations"][0]), copy.deepcopy(gt["annotations"][1])
    crowd.update(id=900001, category_id=2, iscrowd=1)
    unlisted.update(id=900002, category_id=2, image_id=123456789)
    gt["annotations"] += [crowd, unlisted]
    path.write_text(json.dumps(gt))
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in _gt_annotations()]
    ours = evaluate_coco(path, preds, COCO_SIGMAS, rescore=False, nms_thr=None)
    assert ours["AP"] == pytest.approx(_direct_cocoeval(preds, COCO_SIGMAS, path)[0], abs=1e-12)


def test_repeated_image_ids_in_the_ground_truth_are_refused(tmp_path: Path) -> None:
    gt = json.loads(GT_COCO.read_text())
    gt["images"][1]["id"] = gt["images"][0]["id"]
    path = tmp_path / "repeated.json"
    path.write_text(json.dumps(gt))
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"]]
    with pytest.raises(ValueError, match=r"repeated.json: images\[1\]: field 'id' = 785 repeats images\[0\]'s"):
        evaluate_coco(path, preds, COCO_SIGMAS, rescore=False, nms_thr=None)


# ------------------------------------------------------------ OKS and NMS details, hand-computed (mutation hunt)
def test_oks_with_vis_thr_reads_the_scores_of_both_sides() -> None:
    """With ``vis_thr`` a joint counts only where both sides score above it. Joint 0 (score 0.1) drops out; joint 1
    is 2 px off: e = 4 / (2 x 0.1)^2 / 50 / 2 = 1, OKS exp(-1), not (1 + exp(-1)) / 2."""
    pred = np.array([[0.0, 0.0, 0.1], [12.0, 0.0, 0.9]])
    gt = np.array([[0.0, 0.0, 2.0], [10.0, 0.0, 2.0]])
    assert compute_oks(pred, gt, 50.0, [0.1, 0.1], vis_thr=0.5) == pytest.approx(math.exp(-1))
    inst = np.stack([np.array([[0.0, 0.0, 0.9], [10.0, 0.0, 0.9]]), pred])  # NMS: the mean of the two areas
    m = oks_matrix(inst, [50.0, 50.0], [0.1, 0.1], vis_thr=0.5)
    assert m[0, 1] == pytest.approx(math.exp(-1)) and m[1, 0] == pytest.approx(math.exp(-1))


def test_nms_areas_and_the_threshold_by_hand() -> None:
    """The keypoints' extent is ``ptp(x) * ptp(y)`` (pycocotools' ``loadRes`` area of a result without a box);
    ``auto`` takes ``area`` first, then the box, then that extent; ``box`` refuses an area of 0 (it would divide
    the OKS by nothing); an OKS exactly at the threshold is kept (the official ``oks <= thr``)."""
    from posetokens.evaluation.functional import instance_area, keypoint_extent_area, nms_areas

    k = np.array([[0.0, 0.0, 1.0], [6.0, 8.0, 1.0]])
    assert keypoint_extent_area(k) == 48.0
    assert instance_area({"area": 400.0, "bbox": [0, 0, 5, 5], "keypoints": k}) == 400.0
    assert instance_area({"bbox": [0, 0, 5, 5], "keypoints": k}) == 25.0
    assert instance_area({"keypoints": k}) == 48.0
    with pytest.raises(ValueError, match=r"instance \[0\]: field 'area' is 0.0; "):
        nms_areas([{"area": 0.0}], k[None], "box")
    same = np.stack([k, k])
    assert oks_nms_arrays(same, [0.9, 0.8], [48.0, 48.0], [0.1, 0.1], thr=1.0).tolist() == [0, 1]  # OKS 1 <= 1
    assert oks_nms_arrays(same, [0.9, 0.8], [48.0, 48.0], [0.1, 0.1], thr=0.9).tolist() == [0]


def _crowdpose_reference(gt: dict, preds: list[dict], img_ids: list[int] | None = None) -> dict[str, float]:
    """CrowdPose's rules run through pycocotools directly: the object scale 0.53 w h (no area), one area range,
    at most 20 detections per image; AP/AP75/AR as COCOeval's summarize reads them."""
    data = copy.deepcopy(gt)
    for a in data["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3] * 0.53
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(preds)), "keypoints")
        ev.params.kpt_oks_sigmas = CROWD_SIGMAS
        ev.params.areaRng, ev.params.areaRngLbl, ev.params.maxDets = [[0, 1e10]], ["all"], [20]
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
    p, r = ev.eval["precision"][:, :, 0, 0, 0], ev.eval["recall"][:, 0, 0, 0]
    return {"AP": p[p > -1].mean(), "AP75": p[5][p[5] > -1].mean(), "AR": r[r > -1].mean()}


def test_crowdpose_numbers_against_pycocotools_with_its_rules() -> None:
    """Noisy predictions (so the object scale matters), 25 confident false people on one image (so the cap of 20
    detections matters), and the two images put in the easy and the hard split: AP, AP75, AR, APE and APH equal
    pycocotools run with CrowdPose's rules on the same data."""
    gt = json.loads(GT_CROWD.read_text())
    easy, hard = (img["id"] for img in gt["images"])
    gt["images"][0]["crowdIndex"], gt["images"][1]["crowdIndex"] = 0.1, 0.9
    rng = np.random.default_rng(0)
    preds = []
    for a in gt["annotations"]:
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        k[:, :2] += rng.normal(0, 12.0, k[:, :2].shape)
        k[:, 2] = 1.0
        preds.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.ravel().tolist(), "score": 0.9})
    for _ in range(25):
        k = np.c_[rng.uniform(0, 50, (14, 2)), np.ones(14)]
        preds.append({"image_id": easy, "category_id": 1, "keypoints": k.ravel().tolist(), "score": 0.95})
    out = evaluate_coco(gt, preds, CROWD_SIGMAS, iou_type="keypoints_crowd", use_area=False, rescore=False,
                        nms_thr=None)
    ref = _crowdpose_reference(gt, preds)
    for m in ("AP", "AP75", "AR"):
        assert out[m] == pytest.approx(ref[m], abs=1e-12), m
    assert out["AP75"] != pytest.approx(out["AP50"])
    assert out["APE"] == pytest.approx(_crowdpose_reference(gt, preds, [easy])["AP"], abs=1e-4)
    assert out["APH"] == pytest.approx(_crowdpose_reference(gt, preds, [hard])["AP"], abs=1e-4)
    assert out["APM"] == -1.0 and out["APE"] != pytest.approx(out["APH"])


def test_protocol_backends_categories_and_the_xtcocotools_flags() -> None:
    """Three rules only a changed input shows. (1) PCT and MMPose score with xtcocotools, which matches an
    annotation of id 0 (pycocotools' "no match" is 0): the GT fed back scores AP 1. (2) OKS-NMS runs per image and
    category: the same pose predicted for two categories keeps both. (3) xtcocotools counts a person whose joints
    are all flagged 1 (labelled, not visible): missing them halves the recall."""
    from posetokens.evaluation import evaluate_keypoints
    from posetokens.protocols import get_protocol

    gt = json.loads(GT_COCO.read_text())
    gt["images"] = [img for img in gt["images"] if img["id"] == 40083]  # two labelled people
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] == gt["images"][0]["id"]
                         and a["num_keypoints"] > 0 and not a["iscrowd"]][:2]
    assert len(gt["annotations"]) == 2
    gt["annotations"][0]["id"] = 0
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0,
              "area": a["bbox"][2] * a["bbox"][3]} for a in gt["annotations"]]
    for name in ("pct", "mmpose"):
        rule = dataclasses.replace(get_protocol(name).eval, rescore_thr=None, nms_thr=None)
        assert rule.coco_backend == "xtcocotools"
        assert evaluate_keypoints(gt, preds, "coco", rule)["AP"] == pytest.approx(1.0), name
    two = copy.deepcopy(gt)
    two["annotations"][0]["id"] = 101
    two["categories"].append({**two["categories"][0], "id": 2, "name": "person2"})
    twin = {**copy.deepcopy(two["annotations"][0]), "id": 102, "category_id": 2}
    two["annotations"].append(twin)
    both = [{**preds[0], "category_id": 1}, {**preds[0], "category_id": 2}, preds[1]]
    rule = dataclasses.replace(get_protocol("tokenpose").eval, rescore_thr=None, nms_thr=0.9)
    assert evaluate_keypoints(two, both, "coco", rule)["AP"] == pytest.approx(1.0)
    flagged = copy.deepcopy(gt)
    flagged["annotations"][0]["id"] = 101
    k = np.asarray(flagged["annotations"][1]["keypoints"], np.float64).reshape(-1, 3)
    k[k[:, 2] > 0, 2] = 1
    flagged["annotations"][1]["keypoints"] = k.ravel().tolist()
    out = evaluate_coco(flagged, preds[:1], COCO_SIGMAS, rescore=False, nms_thr=None, coco_backend="xtcocotools")
    assert out["AR"] == pytest.approx(0.5)
