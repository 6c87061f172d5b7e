"""2D inference end to end on the real sample data (random weights): ``PoseEstimator`` and ``posetokens infer``.

Expected numbers come from outside the code under test: detection counts and boxes from the detections
file itself, frame counts from decoding the video with OpenCV, token counts from the PPT paper (256 ->
180 -> 126 -> 89 at keep ratio 0.7), letterbox geometry computed by hand.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils._pytree import tree_leaves

from posetokens.cli import main as cli
from posetokens.convert import CheckpointMismatchError
from posetokens.inference.api import DetectionsFile, PoseEstimator, draw_frame, image_id_from_name, open_input
from posetokens.protocols import get_protocol
from posetokens.inference.detector import DetectorContractError, ONNXDetector
from posetokens.registry import create_model, get_entry, list_models

from conftest import video_frames

# a PPT with TokenPose-S geometry (256x192 input, 16x16 patches) and a short, narrow transformer
SMALL_PPT = dict(dim=64, depth=4, heads=4, prune={"layers": (1, 2, 3), "keep_ratio": 0.7})
# a tiny input for the long video: 64x48 crops, 4x4 patches
TINY = dict(image_size=(64, 48), dim=32, depth=2, heads=4)


def _check_record(rec: dict, k: int = 17) -> None:
    assert set(rec) >= {"frame_id", "img_path", "width", "height", "instances"}
    for inst in rec["instances"]:
        assert set(inst) - {"track_id"} == {"keypoints", "keypoint_scores", "bbox", "bbox_score"}  # videos: tracked
        kp, sc = np.asarray(inst["keypoints"]), np.asarray(inst["keypoint_scores"])
        assert kp.shape == (k, 2) and sc.shape == (k,) and len(inst["bbox"]) == 4
        assert np.isfinite(kp).all() and np.isfinite(sc).all() and np.isfinite(inst["bbox_score"])


def _not_blank(img: np.ndarray) -> bool:
    return img is not None and img.size > 0 and float(img.std()) > 5.0


# ------------------------------------------------------------------------------------------- COCO images
def test_cli_infer_coco_images_with_detections(shared_data: Path, tmp_path: Path) -> None:
    coco = shared_data / "coco"
    dets = json.loads((coco / "test_coco_det_AP_H_56.json").read_text())
    thr = 0.5
    out = tmp_path / "out"
    torch.manual_seed(0)  # random weights: fixed, so the keypoint-range check below is deterministic
    rc = cli(["infer", str(coco), "--model", "ppt_s_coco_256x192", "--out", str(out),
              "--boxes", str(coco / "test_coco_det_AP_H_56.json"), "--bbox-thr", str(thr), "--kpt-thr", "0"])
    assert rc == 0
    images = sorted(coco.glob("*.jpg"))
    assert len(images) == 4
    total = 0
    for img_path in images:
        rec = json.loads((out / f"{img_path.stem}.json").read_text())
        _check_record(rec)
        src = cv2.imread(str(img_path))
        assert (rec["height"], rec["width"]) == src.shape[:2]
        want = [d for d in dets if d["image_id"] == int(img_path.stem) and d["score"] >= thr]
        assert len(rec["instances"]) == len(want)
        total += len(want)
        got = sorted(tuple(np.round(i["bbox"], 2)) for i in rec["instances"])
        expect = sorted(tuple(np.round([x, y, x + w, y + h], 2)) for x, y, w, h in (d["bbox"] for d in want))
        np.testing.assert_allclose(got, expect, atol=1e-2)
        for inst in rec["instances"]:  # keypoints of a crop stay near its box (crop = box x 1.25, aspect-fixed)
            x1, y1, x2, y2 = inst["bbox"]
            kp = np.asarray(inst["keypoints"])
            pad = 0.5 * max(x2 - x1, (y2 - y1) * 0.75) * 1.25 + 2
            assert (kp[:, 0] >= (x1 + x2) / 2 - pad).all() and (kp[:, 0] <= (x1 + x2) / 2 + pad).all()
        drawn = cv2.imread(str(out / f"{img_path.stem}.png"))
        assert drawn.shape == src.shape and _not_blank(drawn)
        if want:
            assert np.abs(drawn.astype(int) - src.astype(int)).sum() > 0  # the overlay is there
    assert total == 18  # the data README: 18 of the 118 boxes score above 0.5


def test_show_tokens_counts_follow_ppt(shared_data: Path, tmp_path: Path) -> None:
    est = PoseEstimator("ppt_s_coco_256x192", **SMALL_PPT)
    img = cv2.imread(str(shared_data / "coco" / "000000000785.jpg"))
    calls = []
    est.net.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    boxes = np.array([[280.0, 40.0, 500.0, 400.0]])
    res = est.predict(img, bboxes=boxes, show_tokens=True)
    assert calls == [] and res.keypoints.shape == (1, 17, 2) and np.isfinite(res.keypoints).all()
    np.testing.assert_allclose(res.keypoints, est.predict(img, bboxes=boxes).keypoints)  # same pass, same answer
    assert calls == [1]  # the record came from forward_tokens, not from a second forward
    assert [len(k) for k in res.kept_tokens[0]] == [180, 126, 89]  # PPT paper, 256 tokens at keep 0.7
    assert all(set(a) >= set(b) for a, b in zip(res.kept_tokens[0], res.kept_tokens[0][1:]))  # nested
    fig = est.tokens_figure(res)
    assert fig.ndim == 3 and _not_blank(fig)
    with pytest.raises(ValueError, match=r"^tokens_figure: max_people must be a whole number >= 1, got 0$"):
        est.tokens_figure(res, max_people=0)  # was an IndexError from tiling no rows
    summary = est.infer(shared_data / "coco" / "000000000785.jpg", tmp_path, show_tokens=True)
    assert (tmp_path / "000000000785_tokens.png").is_file() and summary["instances"] == 1


def _mirrored(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image mirrored left-right and its boxes (x1, y1, x2, y2) mirrored so that each box's centre
    ``x1 + (w - 1) / 2`` (TokenPose) lands on the mirror pixel ``W - 1 - c``: x1' = W - x2, x2' = W - x1."""
    w = img.shape[1]
    mb = boxes.copy()
    mb[:, 0], mb[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
    return np.ascontiguousarray(img[:, ::-1]), mb


def test_flip_test_values_and_batching(shared_data: Path) -> None:
    img = cv2.imread(str(shared_data / "coco" / "000000040083.jpg"))
    boxes = np.array([[10.0, 20.0, 200.0, 320.0], [150.0, 30.0, 400.0, 330.0], [0.0, 0.0, 500.0, 333.0]])
    torch.manual_seed(0)
    a = PoseEstimator("tokenpose_s_coco_256x192", batch_size=1, **TINY)
    b = PoseEstimator(a.model, batch_size=8)
    ra, rb = a.predict(img, boxes), b.predict(img, boxes)
    np.testing.assert_allclose(ra.keypoints, rb.keypoints, atol=1e-4)  # batch size must not matter
    f = PoseEstimator(a.model, flip_test=True)
    rf = f.predict(img, boxes)
    assert rf.keypoints.shape == (3, 17, 2) and np.isfinite(rf.keypoints).all()
    # The flip test's values, by hand: it merges H(crop) with flip_back(H(mirrored crop)); flip_back (reverse W,
    # swap the COCO left/right pairs) is its own inverse, so the merged map of the mirrored image is exactly the
    # flip_back of the merged map of the image, and its keypoints are the mirrored keypoints (x -> W - 1 - x)
    # with left and right swapped. A flip test that averages without flipping back gives the SAME crop
    # keypoints for both images instead; the network alone (random weights) is nowhere near mirror-symmetric.
    swap = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]  # COCO: nose, then (left, right) pairs
    mimg, mboxes = _mirrored(img, boxes)
    rgb = np.ascontiguousarray(img[..., ::-1])
    crops, warps = f.crops(rgb, boxes)
    mcrops, mwarps = f.crops(np.ascontiguousarray(rgb[:, ::-1]), mboxes)
    # The crop of the mirrored image is the mirrored crop up to OpenCV's bilinear rounding (one grey level: its
    # SIMD paths differ between CPUs). The keypoint check below feeds the exactly mirrored crop instead: with random
    # weights the heatmaps have near-ties, and one grey level moved a keypoint by 127 px on an Intel Xeon.
    assert np.abs(mcrops.astype(int) - crops[:, :, ::-1].astype(int)).max() <= 1
    exact = np.ascontiguousarray(crops[:, :, ::-1])

    from posetokens.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from posetokens.protocols.predict import predict_outputs

    def maps(est: PoseEstimator, c: np.ndarray) -> np.ndarray:
        """The heatmaps ``est`` decodes for the crops ``c`` (the flip test's merged maps when it has one)."""
        x = torch.from_numpy(c).permute(0, 3, 1, 2).float()
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            flip = swap if est.protocol.test.flip_test else None
            return np.asarray(predict_outputs(est.net, x, est.protocol.test, flip))

    def mirror_gap(est: PoseEstimator) -> tuple[float, float, int]:
        """(largest gap of the mirrored crops' maps from the mirrored maps, relative to the largest value; largest
        keypoint gap in pixels over the keypoints whose map has one clear maximum; how many those are). A map with
        two equal maxima (seen with random weights on an Intel Xeon: two bitwise-equal values) decodes at its first,
        which is not the mirror of the other's first: those keypoints are left out of the pixel check."""
        m, mm = maps(est, crops), maps(est, exact)
        want_maps = m[:, swap, :, ::-1]
        map_gap = float(np.abs(mm - want_maps).max() / np.abs(m).max())
        top2 = np.sort(m.reshape(*m.shape[:2], -1), axis=-1)[..., -2:]
        clear = top2[..., 1] - top2[..., 0] > 1e-6 * np.abs(m).max()
        plain, mirrored = est.predict_crops(crops, warps)[0], est.predict_crops(exact, mwarps)[0]
        want = plain[:, swap].copy()
        want[..., 0] = img.shape[1] - 1 - want[..., 0]
        gaps = np.abs(mirrored - want).max(-1)[clear[:, swap]]
        return map_gap, float(gaps.max()), int(clear.sum())

    map_gap, px_gap, clear = mirror_gap(f)
    assert map_gap < 1e-6  # the merged maps are mirror-equivariant (bitwise on the hosts measured)
    assert px_gap < 1e-3 and clear >= 40  # measured 2.5e-5 px (float rounding of the decode and the inverse warp)
    map_gap, px_gap, _ = mirror_gap(a)
    assert map_gap > 0.1 and px_gap > 10.0  # without the flip test: not mirror-equivariant (the check has teeth)
    np.testing.assert_allclose(f.predict_crops(exact, mwarps)[1], f.predict_crops(crops, warps)[1][:, swap], atol=1e-6)
    # a view that runs backwards (channels reversed as BGR <-> RGB by slicing) is read as its copy (torch refused it)
    np.testing.assert_array_equal(a.predict_crops(crops[..., ::-1], warps)[0],
                                  a.predict_crops(np.ascontiguousarray(crops[..., ::-1]), warps)[0])


def test_estimator_predicts_with_an_optimized_copy(shared_data: Path) -> None:
    torch.manual_seed(0)
    model = create_model("tokenpose_s_coco_256x192", **TINY).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # real statistics, so folding them changes the conv weights
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    fast, plain = PoseEstimator(model), PoseEstimator(model, optimize=False)
    assert fast.model is model and plain.net is model and fast.net is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(fast.net(x), model(x), rtol=1e-4, atol=1e-5)
    img = cv2.imread(str(shared_data / "coco" / "000000040083.jpg"))
    boxes = np.array([[10.0, 20.0, 200.0, 320.0], [150.0, 30.0, 400.0, 330.0]])
    # the decoder's sub-pixel step turns the heatmaps' float rounding into ~1e-5 relative keypoint differences
    np.testing.assert_allclose(fast.predict(img, boxes).keypoints, plain.predict(img, boxes).keypoints, rtol=1e-4)


def test_optimize_false_runs_the_model_itself_as_its_weights_change(shared_data: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``optimize=False`` predicts with the model itself in float32 PyTorch, also for a trained model whose default
    would be a cached onnxruntime copy (and under ``POSETOKENS_RUNTIME=onnxruntime``): after its weights change
    (a check during training), the next prediction is that of the changed model, which a fresh eager estimator of
    a copy gives bit for bit. A precision or runtime that would run a copy is refused in one line."""
    monkeypatch.setenv("POSETOKENS_RUNTIME", "onnxruntime")
    torch.manual_seed(0)
    model = create_model("tokenpose_s_coco_256x192", **TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # no longer create_model's initialisation: counts as trained
    est = PoseEstimator(model, optimize=False)
    assert est.net is model and str(est.choice) == "fp32/torch"
    img = cv2.imread(str(shared_data / "coco" / "000000040083.jpg"))
    box = np.array([[10.0, 20.0, 200.0, 320.0]])
    before = est.predict(img, box).keypoints
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(-1.3)
    after = est.predict(img, box).keypoints
    fresh = PoseEstimator(copy.deepcopy(model), optimize=False).predict(img, box).keypoints
    np.testing.assert_array_equal(after, fresh)
    assert np.abs(after - before).max() > 1.0
    for kw in ({"runtime": "onnxruntime"}, {"precision": "bf16"}, {"runtime": "auto"}):
        with pytest.raises(ValueError, match=r"^PoseEstimator: optimize=False runs the model itself, in float32 "):
            PoseEstimator(model, optimize=False, **kw)
    assert str(PoseEstimator(model, optimize=False, precision="float32", runtime="eager").choice) == "fp32/torch"


def test_the_estimator_leaves_the_callers_model_in_its_mode(shared_data: Path) -> None:
    """A model being trained, handed to PoseEstimator: it stays in training mode (every module as it was: a frozen
    part in eval stays there) through building and predicting, and the prediction is the eval-mode one."""
    m = create_model("ppt_s_coco_256x192", **TINY, prune={"layers": (0,), "keep_ratio": 0.7})
    m.backbone.eval()  # a frozen stem
    modes = [mod.training for mod in m.modules()]
    img = cv2.imread(str(shared_data / "coco" / "000000196141.jpg"))
    box = np.array([[100.0, 50.0, 300.0, 400.0]])
    est = PoseEstimator(m, precision="fp32", runtime="torch")
    res = est.predict(img, box)
    assert [mod.training for mod in m.modules()] == modes
    ref = PoseEstimator(copy.deepcopy(m).eval(), precision="fp32", runtime="torch")
    np.testing.assert_allclose(res.keypoints, ref.predict(img, box).keypoints, atol=1e-4)


def test_gtpt_simcc_model_runs(shared_data: Path) -> None:
    est = PoseEstimator("gtpt_t_coco_256x192", dim=64, heads=4)
    img = cv2.imread(str(shared_data / "coco" / "000000196141.jpg"))
    res = est.predict(img, np.array([[100.0, 50.0, 300.0, 400.0]]), show_tokens=True)
    assert res.keypoints.shape == (1, 17, 2) and np.isfinite(res.keypoints).all()
    assert ((res.keypoint_scores >= 0) & (res.keypoint_scores <= 1)).all()  # softmax peaks
    assert len(res.kept_tokens[0]) >= 1
    # softmax peaks top out near 0.1 (GTPT spec): the default drawing threshold is 0.3 of that, not 0.3
    assert est.default_kpt_thr == pytest.approx(0.3 / (4 * np.sqrt(2 * np.pi)), rel=1e-6)
    assert PoseEstimator("tokenpose_s_coco_256x192", dim=64, depth=1, heads=4).default_kpt_thr == 0.3
    # and the result carries it, so draw_frame without a threshold draws GTPT people (0.3 drew none of them)
    assert res.kpt_thr == est.default_kpt_thr
    res.keypoint_scores[:] = 0.09  # a confident GTPT keypoint: near the 0.0997 peak of a 4-bin sigma
    drawn, none = draw_frame(res, est.metainfo, boxes=False), draw_frame(res, est.metainfo, kpt_thr=0.3, boxes=False)
    assert (none == img).all() and (drawn != img).any()
    np.testing.assert_array_equal(drawn, draw_frame(res, est.metainfo, kpt_thr=est.default_kpt_thr, boxes=False))


def test_flip_test_none_is_the_protocols_own_setting() -> None:
    """flip_test=None takes the protocol's test rule (every official protocol flips); the default stays off."""
    kw = dict(dim=32, depth=1, heads=4, image_size=(64, 48))
    assert PoseEstimator("tokenpose_s_coco_256x192", flip_test=None, **kw).flip_test is True  # pipeline.md section 9
    assert PoseEstimator("tokenpose_s_coco_256x192", **kw).flip_test is False
    off = PoseEstimator("tokenpose_s_coco_256x192", flip_test=None, protocol=get_protocol("tokenpose").replace(
        {"test": {"flip_test": False}}), **kw)
    assert off.flip_test is False
    # a 17-keypoint model without a checkpoint of ours (fine-tuned on H36M 2D, say): the user's metainfo stands
    assert PoseEstimator("tokenpose_s_coco_256x192", metainfo="h36m", **kw).metainfo.name == "h36m"


# ------------------------------------------------------------------------------------------------- video
def test_video_whole_frame(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "video" / "sample_video.mp4"
    n_frames = len(video_frames(video))
    assert n_frames == 185  # the data README: OpenCV decodes 185 of the 207 frames the container claims
    est = PoseEstimator("tokenpose_s_coco_256x192", batch_size=32, **TINY)
    summary = est.infer(video, tmp_path, kpt_thr=0.0, progress=False)
    records = json.loads((tmp_path / "sample_video.json").read_text())
    assert summary["frames"] == len(records) == n_frames
    assert [r["frame_id"] for r in records] == list(range(n_frames))
    for r in records[:: 20]:
        _check_record(r)
        assert (r["width"], r["height"]) == (1280, 720) and len(r["instances"]) == 1
        assert r["instances"][0]["bbox"] == [0.0, 0.0, 1280.0, 720.0]
        assert r["instances"][0]["track_id"] == 1  # the whole frame: one person, one track
    results = est(video)  # tracked as infer tracks it (its results carried no track ids)
    assert [next(results).track_ids.tolist() for _ in range(2)] == [[1], [1]]
    results.close()
    drawn = video_frames(tmp_path / "sample_video.mp4")
    assert len(drawn) == n_frames and drawn[0].shape == (720, 1280, 3) and _not_blank(drawn[n_frames // 2])


def test_h36m_frames_with_gt_boxes(shared_data: Path) -> None:
    h36m = shared_data / "h36m"
    coco_style = json.loads((h36m / "h36m_coco.json").read_text())
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    for img_info, ann in zip(coco_style["images"], coco_style["annotations"]):
        assert img_info["id"] == ann["image_id"]
        path = next(h36m.rglob(Path(img_info["file_name"]).name))
        img = cv2.imread(str(path))
        assert img.shape[:2] == (img_info["height"], img_info["width"])
        x, y, w, h = ann["bbox"]
        res = est.predict(img, np.array([[x, y, x + w, y + h]]))
        _check_record(res.to_dict())
        assert len(res.to_dict()["instances"]) == 1


# ------------------------------------------------------------------------------------------------ errors
def test_missing_image_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        open_input(tmp_path / "nope.jpg")
    assert cli(["infer", str(tmp_path / "nope.jpg"), "--model", "tokenpose_s_coco_256x192", "--out", str(tmp_path)]) == 2


def test_unreadable_video_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 this is not a video" * 100)
    with pytest.raises(ValueError, match="broken.mp4: cannot decode"):
        open_input(bad)
    assert cli(["infer", str(bad), "--model", "tokenpose_s_coco_256x192", "--out", str(tmp_path / "o")]) == 2
    assert "broken.mp4" in capsys.readouterr().err


def test_corrupt_image_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "000000000001.jpg"
    bad.write_bytes(b"not a jpeg")
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    with pytest.raises(ValueError, match="cannot read image"):
        list(est(bad))


def test_detections_for_other_image_ids(shared_data: Path, tmp_path: Path) -> None:
    other = tmp_path / "dets.json"
    other.write_text(json.dumps([{"image_id": 12345, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]))
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    with pytest.raises(ValueError, match=r"dets.json: no detection matches.*'image_id'.*\[12345\].*785"):
        list(est(shared_data / "coco", boxes=other))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"image_id": 785, "bbox": [0, 0, 10], "score": 0.9}]))
    with pytest.raises(ValueError, match=r"bad.json: item 0 'bbox' must be \[x, y, w, h\]"):
        DetectionsFile(bad)
    assert image_id_from_name("000000000785.jpg") == 785


def test_weights_for_a_different_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import posetokens

    # a checkpoint of ours names its model: asking for another one is refused by name
    ckpt = tmp_path / "gtpt.pth"
    torch.save({"model": "gtpt_t_coco_256x192", "state_dict": posetokens.create_model("gtpt_t_coco_256x192").state_dict()}, ckpt)
    with pytest.raises(ValueError, match="holds 'gtpt_t_coco_256x192' but 'tokenpose_s_coco_256x192'"):
        PoseEstimator("tokenpose_s_coco_256x192", weights=ckpt)
    # a bare state dict of another model (as an official release would be) fails the strict load, by key
    bare = tmp_path / "bare.pth"
    torch.save(posetokens.create_model("gtpt_t_coco_256x192").state_dict(), bare)
    with pytest.raises(CheckpointMismatchError, match="does not fit model tokenpose_s_coco_256x192"):
        PoseEstimator("tokenpose_s_coco_256x192", weights=bare)
    img = tmp_path / "000000000001.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "out"  # not the picture's folder, whose overlay would be refused first (before the model)
    assert cli(["infer", str(img), "--model", "tokenpose_s_coco_256x192", "--weights", str(bare), "--out", str(out)]) == 2
    assert "missing keys" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- detector
def _onnx_detector(path: Path, outputs: dict[str, np.ndarray], size: int = 640) -> Path:
    """A constant ONNX 'detector': input images (1, 3, size, size), the given outputs (times 1 + 0 * mean)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_c"))
        nodes.append(helper.make_node("Add", [f"{name}_c", "z"], [name]))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_detector_contract(shared_data: Path, tmp_path: Path) -> None:
    # (1, N, 5): a person, a low score, and a confident box smaller than a pixel (which the crop cannot take)
    det_out = np.array([[[64.0, 32.0, 320.0, 384.0, 0.9], [0.0, 0.0, 5.0, 5.0, 0.1], [20.0, 20.0, 20.6, 20.5, 0.95]]])
    det = ONNXDetector(_onnx_detector(tmp_path / "det.onnx", {"dets": det_out}), score_thr=0.3)
    img = cv2.imread(str(shared_data / "coco" / "000000040083.jpg"))  # 500 x 333: letterbox scale 640 / 500
    boxes, scores = det(img)
    r = 640 / 500
    np.testing.assert_allclose(boxes, [[64 / r, 32 / r, 320 / r, min(384 / r, 333)]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9], atol=1e-6)
    two = ONNXDetector(_onnx_detector(tmp_path / "det2.onnx", {"boxes": det_out[0, :, :4], "scores": det_out[0, :, 4]}))
    np.testing.assert_allclose(two(img)[0], boxes, atol=1e-4)
    # its threads follow --threads (PyTorch's), like the pose models'; it once took every core
    assert det.session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    assert ONNXDetector(tmp_path / "det.onnx", threads=1).session.get_session_options().intra_op_num_threads == 1
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    res = next(iter(est(shared_data / "coco" / "000000040083.jpg", boxes=det)))
    assert len(res.bboxes) == 1
    assert cli(["infer", str(shared_data / "coco" / "000000040083.jpg"), "--model", "tokenpose_s_coco_256x192",
                "--detector", str(tmp_path / "det.onnx"), "--out", str(tmp_path / "o")]) == 0
    rec = json.loads((tmp_path / "o" / "000000040083.json").read_text())
    np.testing.assert_allclose(rec["instances"][0]["bbox"], boxes[0], atol=1e-2)


def test_onnx_detector_with_unexpected_outputs(tmp_path: Path) -> None:
    bad = _onnx_detector(tmp_path / "bad.onnx", {"heat": np.zeros((1, 7, 3))})
    det = ONNXDetector(bad)
    with pytest.raises(DetectorContractError, match=r"bad.onnx: output shapes \[\[1, 7, 3\]\]; expected one float32 input"):
        det(np.zeros((100, 100, 3), np.uint8))
    three = _onnx_detector(tmp_path / "three.onnx", {"a": np.zeros((1, 4)), "b": np.zeros((1,)), "c": np.zeros((1,))})
    with pytest.raises(DetectorContractError, match="three.onnx: outputs are"):
        ONNXDetector(three)
    not_onnx = tmp_path / "x.onnx"
    not_onnx.write_bytes(b"garbage")
    with pytest.raises(DetectorContractError, match="x.onnx: onnxruntime cannot load it"):
        ONNXDetector(not_onnx)


def _one_per_class() -> list[str]:
    """One zoo name per model class and pruning form (family, name prefix, tokenizer, image guidance): the other
    names are the same code at other sizes. The shortest name of each group, for a cheap build."""
    groups: dict[tuple, str] = {}
    for n in sorted(list_models(), key=lambda n: (len(n), n)):
        groups.setdefault((get_entry(n).family, n.split("_")[0], "tokenizer" in n, "woimgguide" in n), n)
    return sorted(groups.values())


@pytest.mark.parametrize("name", _one_per_class())
def test_every_model_takes_an_empty_batch(name: str) -> None:
    """A batch of no people or no clips gives outputs of the one-item shapes with 0 rows (a reshape with -1
    once failed on them in HoT-MixSTE, HoT-MotionAGFormer, MHFormer and Swin V2)."""
    torch.manual_seed(0)
    model = create_model(name).eval()
    inputs = model.dummy_inputs(1)
    with torch.no_grad():
        none = tree_leaves(model(*(t[:0] if torch.is_tensor(t) else t for t in inputs)))
        # the one-item shapes from shape propagation alone (the meta device: no arithmetic, a fraction of the time)
        one = tree_leaves(model.to("meta")(*(t.to("meta") if torch.is_tensor(t) else t for t in inputs)))
    assert [tuple(t.shape) for t in none] == [(0, *t.shape[1:]) for t in one]


def test_cli_threads_sets_the_models_threads(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    asked: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", asked.append)
    img = shared_data / "coco" / "000000000785.jpg"
    args = ["infer", str(img), "--model", "tokenpose_s_coco_256x192", "--no-draw", "--out"]
    assert cli([*args, str(tmp_path / "a"), "--threads", "1"]) == 0 and asked == [1]
    assert cli([*args, str(tmp_path / "b"), "--threads", "0"]) == 2 and asked == [1]
    assert "argument --threads: expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_results_of_a_folder_skip_an_unreadable_image_as_infer_does(shared_data: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """``est(folder)`` ended at the first unreadable image (the generator raised, the images after it never
    reached), where ``est.infer`` skips it and says so. ``strict=True`` keeps the error; a given model's
    config overrides are refused (they were ignored)."""
    data = (shared_data / "coco" / "000000000785.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])  # truncated: sorted first
    (tmp_path / "b.jpg").write_bytes(data)
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    results = list(est(tmp_path))
    assert [r.img_path for r in results] == ["b.jpg"]
    assert "posetokens: warning: skipped " in capsys.readouterr().err
    assert len(list(est(tmp_path, progress=True))) == 1
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    assert any(" 2/2 " in line for line in bar), bar  # the skipped image counts as done: the bar ends at its total
    with pytest.raises(ValueError, match=r"a.jpg: truncated JPEG"):
        list(est(tmp_path, strict=True))
    with pytest.raises(ValueError, match=r"PoseEstimator: model config overrides \(depth\) apply to a zoo name"):
        PoseEstimator(est.model, depth=3)


def test_infer_takes_a_filter_name_and_python_messages_name_python_arguments(
        shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``infer(..., smooth="one_euro")`` failed with "'str' object has no attribute 'is_off'"; messages reached
    from Python named the command line's flags (``--det-every``, ``--device``): they name the argument, and the
    command line still its flag."""
    from posetokens.inference.filters import make_filter
    from posetokens.runtime import check_device, command_line

    video = shared_data / "video" / "sample_video.mp4"
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    named = est.infer(video, tmp_path / "a", draw=False, max_frames=6, smooth="one_euro", progress=False)
    config = est.infer(video, tmp_path / "b", draw=False, max_frames=6, smooth=make_filter("one_euro"), progress=False)
    assert named["frames"] == config["frames"] == 6
    assert (tmp_path / "a" / "sample_video.json").read_text() == (tmp_path / "b" / "sample_video.json").read_text()
    with pytest.raises(ValueError, match=r"^det_every applies to videos and streams"):
        est.infer(shared_data / "coco" / "000000000785.jpg", tmp_path / "c", det_every=2)
    with pytest.raises(ValueError, match=r"^device='gpu' is not a device"):
        check_device("gpu")
    with command_line(), pytest.raises(ValueError, match=r"^--device gpu is not a device"):
        check_device("gpu")
    capsys.readouterr()
    assert cli(["infer", str(shared_data / "coco" / "000000000785.jpg"), "--out", str(tmp_path / "d"), "--model",
                "tokenpose_s_coco_256x192", "--det-every", "2"]) == 2
    assert "error: --det-every applies to videos and streams" in capsys.readouterr().err


def test_boxes_as_a_tensor_with_a_gradient_are_read() -> None:
    """A detector's boxes straight from a torch model (a tensor that requires grad) were refused as "not an array of
    numbers (N, 4)"; their values are read, as a plain tensor's are."""
    from posetokens.inference.api import check_boxes

    boxes = torch.tensor([[10.0, 10.0, 60.0, 90.0]], requires_grad=True)
    b, s = check_boxes(boxes * 1, torch.tensor([0.5], requires_grad=True), "predict: bboxes")
    assert b.tolist() == [[10.0, 10.0, 60.0, 90.0]] and s.tolist() == [0.5] and b.dtype == np.float64


def test_images_with_a_detections_json_are_read_as_the_protocol_reads_them(shared_data: Path, tmp_path: Path) -> None:
    """COCO's detections, like its annotations, are on the stored pixels, and the HRNet loader of TokenPose, PPT
    and GTPT ignores an EXIF orientation tag: with a detections json, a tagged picture is read as stored under those
    protocols (the boxes land where they were found), turned under MMPose's (mmcv's 'color' flag, as PCT's);
    without one it is read turned, as a viewer shows it."""
    from PIL import Image

    src = Image.open(shared_data / "coco" / "000000000785.jpg")  # 640 x 425
    exif = src.getexif()
    exif[0x0112] = 6  # turned 90 degrees: 425 x 640 as shown
    (tmp_path / "img").mkdir()
    src.save(tmp_path / "img" / "000000000785.jpg", exif=exif.tobytes(), quality=95)
    dets = shared_data / "coco" / "test_coco_det_AP_H_56.json"
    for protocol, stored in (("tokenpose", True), ("mmpose", False)):
        est = PoseEstimator("tokenpose_s_coco_256x192", protocol=protocol, **TINY)
        (res,) = est(tmp_path / "img", boxes=dets)
        assert (res.width, res.height) == ((640, 425) if stored else (425, 640)), protocol
        (res,) = est(tmp_path / "img")  # no detections: as shown
        assert (res.width, res.height) == (425, 640)
    # one source, two calls: each reads as its own call says (the first once set it on the shared source, and a
    # second call before the first was read changed how the first read its images)
    source, est = open_input(tmp_path / "img"), PoseEstimator("tokenpose_s_coco_256x192", protocol="tokenpose", **TINY)
    with_dets, without = est(source, boxes=dets), est(source)
    assert [(r.width, r.height) for r in with_dets] == [(640, 425)]
    assert [(r.width, r.height) for r in without] == [(425, 640)]


def test_number_array_reads_tensors_and_refuses_a_meta_tensor_in_one_line() -> None:
    from posetokens.runtime import check_device, number_array

    assert number_array(torch.ones(2, requires_grad=True) * 2, "x", "numbers").tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match=r"^boxes: expected \(N, 4\), got a Tensor NumPy cannot read") as e:
        number_array(torch.ones(1, 4, device="meta"), "boxes", "(N, 4)")  # was NotImplementedError from .cpu()
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"^device=-1 is not a device"):  # the value as given, not '-1'
        check_device(-1)
    with pytest.raises(ValueError, match=r"^device=None is not a device"):
        check_device(None)


# ------------------------------------------------------------------ hand-checked edges (mutation hunt)
def test_detections_keep_a_box_at_the_threshold_and_only_people(tmp_path: Path) -> None:
    """Boxes "below score_thr" are dropped (so one scored exactly at it is kept), and boxes of another category."""
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "score": 0.3},
        {"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 20], "score": 0.29},
        {"image_id": 1, "category_id": 2, "bbox": [9, 9, 10, 20], "score": 0.9}]))
    assert DetectionsFile(path, score_thr=0.3).boxes == {1: [([0.0, 0.0, 10.0, 20.0], 0.3)]}


def test_box_edges_by_hand() -> None:
    """A box at least a pixel long on one side is a box (a thin, tall person); a box that ends on the image's
    left or top edge has no pixel inside it."""
    from posetokens.inference.api import boxes_outside, check_boxes

    b, _ = check_boxes([[0.0, 0.0, 0.5, 100.0]], None)
    assert b.shape == (1, 4)
    got = boxes_outside(np.array([[-10.0, -10.0, 0.0, 0.0], [-10.0, -10.0, 1.0, 1.0], [-10.0, 5.0, 0.0, 9.0]]), 100, 80)
    assert got.tolist() == [True, False, True]


def test_a_folder_run_names_the_keypoints_in_every_record_and_an_empty_run_writes_its_coco_results(
        shared_data: Path, tmp_path: Path) -> None:
    """Every image's json carries ``keypoint_names`` (not only the first); a run that finds nobody still writes
    its ``--coco-results`` file, as an empty list, so ``evaluate`` never scores an older run's file."""
    coco = shared_data / "coco"
    est = PoseEstimator("tokenpose_s_coco_256x192", **TINY)
    est.infer(coco, tmp_path / "a", draw=False)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "a").glob("*.json"))]
    assert len(records) == 4 and all(r["keypoint_names"] == list(est.metainfo.keypoint_names) for r in records)
    assert all(r["weights"] is None and r["random_weights"] is True for r in records)  # where the poses came from
    assert est.provenance == {"model": "tokenpose_s_coco_256x192", "keypoint_layout": "coco", "weights": None,
                              "random_weights": True}  # what the API's own records take (docs/inference.md)
    assert all({k: r[k] for k in est.provenance} == est.provenance for r in records)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.1}]))
    est.infer(coco / "000000000785.jpg", tmp_path / "b", boxes=dets, bbox_thr=0.3, draw=False,
              coco_results=tmp_path / "b" / "coco.json")
    assert json.loads((tmp_path / "b" / "coco.json").read_text()) == []
    # a rerun replaces an earlier run's results (a keypoint results file), the empty list and a list of people
    for _ in range(2):
        est.infer(coco / "000000000785.jpg", tmp_path / "b", boxes=dets, bbox_thr=0.05, draw=False,
                  coco_results=tmp_path / "b" / "coco.json")
        assert len(json.loads((tmp_path / "b" / "coco.json").read_text())) == 1


def test_infer_draws_at_the_models_own_keypoint_threshold(shared_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``kpt_thr`` the drawing uses the model's ``default_kpt_thr`` (GTPT's SimCC scores peak near 0.1, so
    a fixed 0.3 would hide most joints)."""
    import posetokens.inference.api as api

    est = PoseEstimator("gtpt_t_coco_256x192")
    assert est.default_kpt_thr < 0.1
    used = []
    draw = api.draw_frame
    monkeypatch.setattr(api, "draw_frame", lambda res, meta, kpt_thr=None, **k: (used.append(kpt_thr),
                                                                                    draw(res, meta, kpt_thr, **k))[1])
    est.infer(shared_data / "coco" / "000000000785.jpg", tmp_path, boxes=None)
    assert used and set(used) == {est.default_kpt_thr}


def test_a_video_shows_the_tokens_of_frame_zero_and_every_nth(shared_data: Path, tmp_path: Path) -> None:
    """``tokens_every=n``: frames 0, n, 2n ... (infer's docstring), the first frame included."""
    est = PoseEstimator("ppt_s_coco_256x192", **SMALL_PPT)
    est.infer(shared_data / "video" / "sample_video.mp4", tmp_path, show_tokens=True, tokens_every=4, max_frames=9,
              draw=False)
    got = sorted(p.name for p in (tmp_path / "sample_video_tokens").glob("*.png"))
    assert got == ["frame_000000.png", "frame_000004.png", "frame_000008.png"]
