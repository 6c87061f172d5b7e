"""Protocols end to end: the GTPT evaluation path on the official fixtures' predictions, ``posetokens test`` of a
GTPT model on the real COCO sample, and a checkpoint trained from the quickstart recipe used by every command with
``--weights`` alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA, PARITY

from posetokens.checkpoint import atomic_save, describe, read_description
from posetokens.cli import main as cli
from posetokens.data.metainfo import get_metainfo
from posetokens.engine.evaluate import coco_metrics
from posetokens.protocols import get_protocol
from posetokens.registry import create_model

REPO = Path(__file__).resolve().parents[1]


def _fixture_results(name: str) -> tuple[list[dict], dict, dict]:
    """The fixture's per-box predictions as COCO results carrying the padded-box area, its inputs.json and its
    official outputs."""
    folder = PARITY / "pipeline" / name
    assert folder.is_dir(), f"pipeline fixture missing: {folder}"
    spec = json.loads((folder / "inputs.json").read_text())
    z = np.load(folder / "inputs.npz")
    out = json.loads((folder / "outputs.json").read_text())
    kp = np.concatenate([z["keypoints"], z["keypoint_scores"][..., None]], axis=-1).reshape(len(z["image_id"]), -1)
    results = [{"image_id": int(i), "category_id": 1, "keypoints": k.tolist(), "score": float(s),
                "bbox_score": float(s), "area": float(a)}
               for i, k, s, a in zip(z["image_id"], kp.astype(np.float64), z["bbox_score"], z["area"])]
    return results, spec, out


@pytest.mark.parametrize("name", ["coco_eval_gtpt", "wholebody_eval_gtpt", "coco_eval_tokenpose"])
def test_evaluate_and_training_path_give_the_official_numbers(name: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    results, spec, official = _fixture_results(name)
    wholebody = spec["kind"] == "wholebody_eval"
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps(results))
    gt = str(DATA.parent / spec["gt"])
    assert cli(["evaluate", "--gt", gt, "--pred", str(pred), "--protocol", spec["method"], "--json",
                "--dataset", "wholebody" if wholebody else "coco"]) == 0
    cli_stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metainfo = get_metainfo("coco_wholebody" if wholebody else "coco")
    train_stats = coco_metrics(gt, results, metainfo, get_protocol(spec["method"]).eval)  # test/training's path
    expected = official["stats"] if wholebody else {"": official["stats"]}
    for part, stats in expected.items():
        for key, value in stats.items():
            flat = f"{part}_{key}" if part else key
            assert abs(cli_stats[flat] - value) <= 1e-6, (flat, cli_stats[flat], value)  # README tolerance 1e-6
            assert abs(train_stats[flat] - value) <= 1e-6, (flat, train_stats[flat], value)
    if spec["method"] == "gtpt":  # the old rule (0.2 for every method) zeroes every SimCC-scale instance
        wrong = coco_metrics(gt, results, metainfo, get_protocol("tokenpose").eval)
        assert wrong["AP" if not wholebody else "wholebody_AP"] < expected["" if not wholebody else "wholebody"]["AP"] - 0.1


def _gtpt_at_trained_scale() -> torch.nn.Module:
    """GTPT-T whose SimCC softmax peaks sit where a trained GTPT's do (0.05-0.07, below the 0.0997 label peak):
    random weights with the two output layers scaled by 3."""
    torch.manual_seed(0)
    model = create_model("gtpt_t_coco_256x192").eval()
    with torch.no_grad():
        for layer in (model.head_x[1], model.head_y[1]):
            layer.weight.mul_(3.0)
            layer.bias.mul_(3.0)
    return model


def test_posetokens_test_on_gtpt_with_real_detections(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``posetokens test`` of a GTPT checkpoint on the real COCO sample with its 118 detection boxes: the GTPT
    protocol (threshold 0.01) keeps instance scores; the predictions carry the padded box area."""
    model = _gtpt_at_trained_scale()
    ckpt = atomic_save({**describe("gtpt_t_coco_256x192", {}, get_protocol("gtpt"), get_metainfo("coco")),
                        "state_dict": model.state_dict()}, tmp_path / "gtpt.pth")
    cfg = tmp_path / "gtpt_test.yaml"
    cfg.write_text(
        "model: {name: gtpt_t_coco_256x192}\n"
        f"data: {{dataset: coco, val_ann: {DATA / 'coco' / 'test_coco.json'}, val_img_dir: {DATA / 'coco'}, "
        f"val_det: {DATA / 'coco' / 'test_coco_det_AP_H_56.json'}, val_batch_size: 32}}\n"
        f"work_dir: {tmp_path / 'work'}\nthreads: 2\n")
    out = tmp_path / "pred.json"
    assert cli(["test", str(cfg), "--weights", str(ckpt), "--out", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(metrics) >= {"AP", "AR"}
    pred = json.loads(out.read_text())
    assert len(pred) == 118  # every detection box, none dropped (IMAGE_THRE 0.0)
    kp_scores = np.array([p["keypoints"][2::3] for p in pred])
    assert 0.01 < kp_scores.max() < 0.0997  # SimCC-scale scores
    # the padded box area OKS-NMS uses: x + w/2 centre, aspect 0.75, padding 1.25 (spec section 1.1)
    dets = json.loads((DATA / "coco" / "test_coco_det_AP_H_56.json").read_text())
    w, h = dets[0]["bbox"][2], dets[0]["bbox"][3]
    w, h = (w, w / 0.75) if w > 0.75 * h else (0.75 * h, h)
    assert pred[0]["area"] == pytest.approx(w * h * 1.25 ** 2, rel=1e-6)
    from posetokens.evaluation.coco import select_instances

    rescored, keep = select_instances(pred, get_metainfo("coco").sigmas_array, rescore_thr=0.01, nms_area="box")
    assert (rescored > 0).sum() > 100, "GTPT rescoring at 0.01 keeps the instance scores"
    zeroed, _ = select_instances(pred, get_metainfo("coco").sigmas_array, rescore_thr=0.2, nms_area="box")
    assert (zeroed == 0).all()  # what the old single threshold did to every GTPT instance


@pytest.fixture(scope="module")
def quickstart_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``posetokens train configs/quickstart_ppt.yaml`` on a small synthetic set, one short epoch."""
    from posetokens.data.synthetic import generate_splits

    root = tmp_path_factory.mktemp("qs")
    data = generate_splits(root / "data", num_train=16, num_val=4, seed=5, image_size=(128, 128))
    work = root / "work"
    assert cli(["train", str(REPO / "configs" / "quickstart_ppt.yaml"), "--work-dir", str(work),
                "--set", f"data.train_ann={data['train_ann']}", "--set", f"data.train_img_dir={data['train_img_dir']}",
                "--set", f"data.val_ann={data['val_ann']}", "--set", f"data.val_img_dir={data['val_img_dir']}",
                "--set", "schedule.epochs=1", "--set", "schedule.warmup_iters=1", "--set", "eval_interval=0"]) == 0
    return work / "final.pth"


def test_quickstart_checkpoint_describes_itself(quickstart_checkpoint: Path) -> None:
    meta = read_description(quickstart_checkpoint)
    assert meta["zoo_name"] == "tokenpose_s_coco_256x192"
    assert meta["model_overrides"]["image_size"] == [128, 96] and meta["model_overrides"]["depth"] == 6
    assert meta["protocol"]["name"] == "tokenpose" and meta["protocol"]["test"]["flip_test"] is False
    assert meta["metainfo"]["name"] == "coco" and meta["posetokens_version"]


def test_quickstart_checkpoint_runs_test_infer_lift_export(quickstart_checkpoint: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    w = str(quickstart_checkpoint)
    assert cli(["test", "--weights", w, "--out", str(tmp_path / "pred.json"), "--json"]) == 0
    assert "AP" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    img = sorted((quickstart_checkpoint.parents[1] / "data").rglob("*.jpg"))[0]
    assert cli(["infer", str(img), "--weights", w, "--out", str(tmp_path / "infer"), "--no-draw",
                "--coco-results", str(tmp_path / "coco.json")]) == 0
    rec = json.loads((tmp_path / "infer" / f"{img.stem}.json").read_text())
    assert np.asarray(rec["instances"][0]["keypoints"]).shape == (17, 2)
    assert len(json.loads((tmp_path / "coco.json").read_text())[0]["keypoints"]) == 51
    assert "random weights" not in capsys.readouterr().err
    # infer writes COCO results that evaluate scores: the real sample with its 118 detection boxes
    coco_dir, results = DATA / "coco", tmp_path / "coco_sample.json"
    assert cli(["infer", str(coco_dir), "--weights", w, "--out", str(tmp_path / "infer_coco"), "--no-draw",
                "--boxes", str(coco_dir / "test_coco_det_AP_H_56.json"), "--bbox-thr", "0",
                "--coco-results", str(results)]) == 0
    written = json.loads(results.read_text())
    assert len(written) == 118 and all(r["area"] > r["bbox"][2] * r["bbox"][3] for r in written)  # padded box
    capsys.readouterr()
    assert cli(["evaluate", "--gt", str(coco_dir / "test_coco.json"), "--pred", str(results), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out.strip().splitlines()[-1])["AP"] <= 1.0
    # lift: the quickstart model is the 2D stage of a video (the lifting model itself keeps random weights)
    video = DATA / "video" / "sample_video.mp4"
    assert cli(["lift", str(video), "--model", "hot_mixste_h36m_243", "--pose2d-weights", w,
                "--out", str(tmp_path / "lift"), "--no-draw"]) == 0
    assert (tmp_path / "lift" / "sample_video_3d.json").is_file()
    onnx = tmp_path / "qs.onnx"
    assert cli(["export", "--weights", w, "--onnx", str(onnx), "--no-check"]) == 0
    import onnx as onnx_lib

    props = {p.key: json.loads(p.value) for p in onnx_lib.load(str(onnx)).metadata_props}
    assert props["posetokens.zoo_name"] == "tokenpose_s_coco_256x192"
    assert props["posetokens.protocol"]["name"] == "tokenpose"


def test_lifting_checkpoint_lifts_with_weights_alone(tmp_path: Path) -> None:
    overrides = {"num_frames": 27, "depth": 2, "dim": 32, "prune": {"keep": 9, "layer": 1}}
    model = create_model("hot_mixste_h36m_243", **overrides)
    ckpt = atomic_save({**describe("hot_mixste_h36m_243", overrides, get_protocol("hot")),
                        "state_dict": model.state_dict()}, tmp_path / "lift.pth")
    records = [{"frame_id": i, "width": 640, "height": 480, "instances": [
        {"keypoints": (np.random.default_rng(i).random((17, 2)) * 300 + 100).tolist(), "keypoint_scores": [0.9] * 17,
         "bbox": [0, 0, 640, 480], "bbox_score": 1.0}]} for i in range(30)]
    src = tmp_path / "walk.json"
    src.write_text(json.dumps(records))
    assert cli(["lift", str(src), "--weights", str(ckpt), "--out", str(tmp_path / "out"), "--no-draw"]) == 0
    res = json.loads((tmp_path / "out" / "walk_3d.json").read_text())
    assert len(res["frames"]) == 30 and res["model"] == "hot_mixste_h36m_243"
