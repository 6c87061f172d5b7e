"""COCO-WholeBody evaluation vs a plain pycocotools reference built here from the raw json."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA

from posetokens.cli import main
from posetokens.data.metainfo import get_metainfo
from posetokens.evaluation.coco import COCO_KEYPOINT_METRICS, prepare_coco_results
from posetokens.evaluation.wholebody import evaluate_wholebody

GT_PATH = DATA / "coco" / "test_coco_wholebody.json"
pytestmark = pytest.mark.skipif(not GT_PATH.exists(), reason="shared COCO-WholeBody sample missing")

FIELDS = ["keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"]
# part -> (fields concatenated for the GT, [start, stop) in the 133-keypoint order)
REF_PARTS = {
    "body": (["keypoints"], 0, 17),
    "foot": (["foot_kpts"], 17, 23),
    "face": (["face_kpts"], 23, 91),
    "lefthand": (["lefthand_kpts"], 91, 112),
    "righthand": (["righthand_kpts"], 112, 133),
    "wholebody": (FIELDS, 0, 133),
}


def _raw() -> dict:
    return json.loads(GT_PATH.read_text())


def _gt_as_predictions(raw: dict) -> list[dict]:
    preds = []
    for ann in raw["annotations"]:
        kp = []
        for f in FIELDS:
            kp += ann[f]
        preds.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": kp, "score": 1.0})
    return preds


def _perturbed_predictions(raw: dict) -> list[dict]:
    """Noisy copies of the GT with distinct random scores, some zero-score parts and false positives."""
    rng = np.random.default_rng(0)
    preds = []
    for n, p in enumerate(_gt_as_predictions(raw)):
        k = np.asarray(p["keypoints"], dtype=np.float64).reshape(133, 3)
        size = np.sqrt(raw["annotations"][n]["area"])
        k[:, :2] += rng.normal(0.0, 0.03 * size, (133, 2))
        k[:, 2] = rng.uniform(0.05, 1.0, 133)
        if n % 3 == 0:
            k[91:112, 2] = 0.0  # left hand "not predicted": dropped from the left-hand evaluation only
        if n % 4 == 1:
            k[23:91, 2] = 0.0  # same for the face
        preds.append({"image_id": p["image_id"], "category_id": 1, "keypoints": k.reshape(-1).tolist(),
                      "score": float(rng.uniform(0.1, 1.0))})
    for n in (0, 3, 7, 11):  # shifted duplicates (false positives, and smaller/larger body extents)
        k = np.asarray(preds[n]["keypoints"]).reshape(133, 3).copy()
        k[:, :2] = k[:, :2] * rng.uniform(0.6, 1.3) + rng.uniform(-40, 40, 2)
        preds.append({"image_id": preds[n]["image_id"], "category_id": 1, "keypoints": k.reshape(-1).tolist(),
                      "score": float(rng.uniform(0.1, 1.0))})
    return preds


def _reference(tmp_path: Path, preds: list[dict]) -> dict[str, dict[str, float]]:
    """pycocotools COCOeval, once per part, on per-part GT/result files written here."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sigmas = np.asarray(get_metainfo("coco_wholebody").sigmas, dtype=np.float64)
    raw = _raw()
    out = {}
    for part, (fields, a, b) in REF_PARTS.items():
        gt = copy.deepcopy(raw)
        for ann in gt["annotations"]:
            kp = []
            for f in fields:
                kp += ann[f]
            ann["keypoints"] = kp
            ann["num_keypoints"] = sum(1 for v in kp[2::3] if v > 0)
        gt_file = tmp_path / f"gt_{part}.json"
        gt_file.write_text(json.dumps(gt))
        dets, body_areas = [], []
        for p in preds:
            kp = p["keypoints"][3 * a:3 * b]
            if not any(v > 0 for v in kp[2::3]):
                continue  # xtcocotools skips predictions without a positive part score
            dets.append({"image_id": p["image_id"], "category_id": 1, "keypoints": kp, "score": p["score"]})
            bx, by = p["keypoints"][0:51:3], p["keypoints"][1:51:3]
            body_areas.append((max(bx) - min(bx)) * (max(by) - min(by)))
        res_file = tmp_path / f"res_{part}.json"
        res_file.write_text(json.dumps(dets))
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(gt_file))
            coco_dt = coco_gt.loadRes(str(res_file))
            for j, area in enumerate(body_areas):  # xtcocotools: area from the body keypoints
                coco_dt.anns[j + 1]["area"] = area
            ev = COCOeval(coco_gt, coco_dt, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas[a:b]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        out[part] = dict(zip(COCO_KEYPOINT_METRICS, (float(s) for s in ev.stats)))
    return out


def _assert_equal(got: dict, ref: dict) -> None:
    for part in REF_PARTS:
        for m in COCO_KEYPOINT_METRICS:
            assert abs(got[part][m] - ref[part][m]) <= 1e-12, (part, m, got[part][m], ref[part][m])


def _xtcocotools_ok() -> bool:
    try:
        import xtcocotools.cocoeval  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.parametrize("kind", ["gt", "perturbed"])
def test_matches_pycocotools_reference(tmp_path: Path, kind: str) -> None:
    raw = _raw()
    preds = _gt_as_predictions(raw) if kind == "gt" else _perturbed_predictions(raw)
    got = evaluate_wholebody(raw, preds, rescore=False, nms_thr=None, backend="pycocotools")
    ref = _reference(tmp_path, preds)
    _assert_equal(got, ref)
    if kind == "perturbed":  # the perturbation is not trivial
        assert 0.0 < got["wholebody"]["AP"] < 1.0 and got["body"]["AP"] > got["wholebody"]["AP"]


@pytest.mark.skipif(not _xtcocotools_ok(), reason="xtcocotools does not import (e.g. numpy 2)")
@pytest.mark.parametrize("kind", ["gt", "perturbed"])
def test_matches_xtcocotools(tmp_path: Path, kind: str) -> None:
    raw = _raw()
    preds = _gt_as_predictions(raw) if kind == "gt" else _perturbed_predictions(raw)
    got = evaluate_wholebody(raw, preds, rescore=False, nms_thr=None, backend="xtcocotools")
    _assert_equal(got, _reference(tmp_path, preds))


def test_gt_as_prediction_defaults() -> None:
    """Rescoring + OKS-NMS (133 sigmas) on the GT: every defined number is 1; no medium faces (-1)."""
    res = evaluate_wholebody(str(GT_PATH), _gt_as_predictions(_raw()))
    assert list(res) == ["body", "foot", "face", "lefthand", "righthand", "hand", "wholebody"]
    for part, m in res.items():
        for name, v in m.items():
            expected = -1.0 if (part == "face" and name in ("APM", "ARM")) else 1.0
            assert v == pytest.approx(expected, abs=1e-12), (part, name, v)


def test_rescore_and_nms_use_133_sigmas() -> None:
    raw = _raw()
    preds = _perturbed_predictions(raw)
    sig = np.asarray(get_metainfo("coco_wholebody").sigmas, dtype=np.float64)
    prepared = prepare_coco_results(preds, sig, rescore=True, nms_thr=0.5)
    assert len(prepared) < len(preds)  # NMS removed something
    a = evaluate_wholebody(raw, preds, nms_thr=0.5, backend="pycocotools")
    b = evaluate_wholebody(raw, prepared, rescore=False, nms_thr=None, backend="pycocotools")
    assert a == b


def test_hand_is_mean_of_left_and_right() -> None:
    res = evaluate_wholebody(_raw(), _perturbed_predictions(_raw()), rescore=False, nms_thr=None)
    assert res["lefthand"]["AP"] != res["righthand"]["AP"]
    for m in COCO_KEYPOINT_METRICS:
        left, right = res["lefthand"][m], res["righthand"][m]
        if left > -1 and right > -1:
            assert res["hand"][m] == pytest.approx((left + right) / 2, abs=1e-15)


def test_hand_leaves_out_an_undefined_side() -> None:
    """A side that is -1 (no GT in that area range) is left out of the hand mean; both -1 gives -1 (module doc)."""
    from posetokens.evaluation.wholebody import _hand_mean

    assert _hand_mean({"APM": -1.0, "AP": 0.2, "APL": -1.0}, {"APM": 0.5, "AP": 0.4, "APL": -1.0}) == {
        "APM": 0.5, "AP": pytest.approx(0.3), "APL": -1.0}


def test_split_format_same_as_flat() -> None:
    raw = _raw()
    preds = _perturbed_predictions(raw)
    split = []
    for p in preds:
        k, d, start = p["keypoints"], dict(p), 0
        for f, n in zip(FIELDS, (17, 6, 68, 21, 21)):
            d[f] = k[3 * start:3 * (start + n)]
            start += n
        split.append(d)
    assert evaluate_wholebody(raw, split) == evaluate_wholebody(raw, preds)


def test_malformed_predictions() -> None:
    raw = _raw()
    preds = _gt_as_predictions(raw)
    bad = copy.deepcopy(preds)
    bad[2]["keypoints"] = bad[2]["keypoints"][:51]
    with pytest.raises(ValueError, match=r"entry \[2\].*'keypoints' has 51 values, expected 399"):
        evaluate_wholebody(raw, bad)
    bad = copy.deepcopy(preds)
    bad[0]["keypoints"] = bad[0]["keypoints"][:51]
    bad[0]["foot_kpts"], bad[0]["face_kpts"] = [0.0] * 18, [0.0] * 200
    bad[0]["lefthand_kpts"] = bad[0]["righthand_kpts"] = [0.0] * 63
    with pytest.raises(ValueError, match=r"entry \[0\].*'face_kpts' has 200 values, expected 204"):
        evaluate_wholebody(raw, bad)
    bad = copy.deepcopy(preds)
    del bad[1]["score"]
    with pytest.raises(ValueError, match=r"entry \[1\].*'score'"):
        evaluate_wholebody(raw, bad)
    gt = copy.deepcopy(raw)
    del gt["annotations"][3]["lefthand_kpts"]
    with pytest.raises(ValueError, match=r"annotations\[3\].*'lefthand_kpts'"):
        evaluate_wholebody(gt, preds)
    with pytest.raises(ValueError, match="backend"):
        evaluate_wholebody(raw, preds, backend="nope")


def test_cli_wholebody(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`posetokens evaluate --dataset wholebody` scores through evaluate_keypoints with the protocol's rule
    (here with the keypoint-extent NMS area, as these results carry no 'area')."""
    from posetokens.evaluation import evaluate_keypoints
    from posetokens.protocols import get_protocol

    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(_perturbed_predictions(_raw())))
    args = ["evaluate", "--gt", str(GT_PATH), "--pred", str(pred), "--dataset", "wholebody", "--nms-area", "keypoints"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rule = dataclasses.replace(get_protocol("mmpose").eval, nms_area="keypoints")  # the CLI's default protocol
    assert out == evaluate_keypoints(str(GT_PATH), str(pred), "coco_wholebody", rule)
    assert main(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| part | AP | AP50") and len(table) == 2 + 7
    assert any(row.startswith("| hand |") for row in table)


def test_protocol_evaluation_reports_every_part() -> None:
    """The protocol entry point (evaluate_keypoints, what training/test/evaluate call) on a whole-body
    metainfo reports the whole-body AP/AR and every part as {part}_{metric}: on the GT every part's AP and
    AR is 1 (pycocotools), and on noisy predictions it equals evaluate_wholebody with the rule's settings."""
    from posetokens.evaluation import evaluate_keypoints
    from posetokens.protocols import EvalRule

    raw = _raw()
    preds = _perturbed_predictions(raw)  # no 'area': the keypoint-extent NMS area must be asked for
    rule = EvalRule(rescore_thr=0.2, nms_thr=0.9, nms_area="keypoints")
    got = evaluate_keypoints(str(GT_PATH), preds, "coco_wholebody", rule)
    ref = evaluate_wholebody(str(GT_PATH), preds, rescore=True, nms_thr=0.9, nms_area="keypoints")
    assert {k: got[k] for k in COCO_KEYPOINT_METRICS} == ref["wholebody"]
    assert got == {**ref["wholebody"], **{f"{p}_{m}": v for p, d in ref.items() for m, v in d.items()}}
    assert 0.0 < got["AP"] < got["body_AP"] < 1.0  # the perturbation shows in the figures
    perfect = evaluate_keypoints(str(GT_PATH), _gt_as_predictions(raw), get_metainfo("coco_wholebody"), rule)
    for part in ("body", "foot", "face", "lefthand", "righthand", "hand", "wholebody"):
        assert perfect[f"{part}_AP"] == pytest.approx(1.0, abs=1e-12), part
        assert perfect[f"{part}_AR"] == pytest.approx(1.0, abs=1e-12), part
    assert perfect["AP"] == 1.0
    # the official rule reads each result's padded-box 'area'; results without one are refused
    with pytest.raises(ValueError, match=r"entry \[0\]: field 'area' is missing.*nms_area='keypoints'"):
        evaluate_keypoints(str(GT_PATH), preds, "coco_wholebody", EvalRule(rescore_thr=0.01, nms_area="box"))


def test_predictions_without_a_positive_score_are_said(caplog: pytest.LogCaptureFixture) -> None:
    """xtcocotools' rule drops a prediction with no keypoint score > 0: all such, every metric is 0.0, now said
    (the COCO path said it already)."""
    preds = _gt_as_predictions(_raw())
    for p in preds:
        p["keypoints"] = [0.0 if i % 3 == 2 else v for i, v in enumerate(p["keypoints"])]
    with caplog.at_level("WARNING"):
        res = evaluate_wholebody(str(GT_PATH), preds, rescore=False)
    assert {v for m in res.values() for v in m.values()} == {0.0, -1.0}  # -1: no medium faces in the ground truth
    assert "no prediction has a keypoint score > 0" in caplog.text
