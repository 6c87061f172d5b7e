"""Tests for the synthetic COCO-17 people generator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from posetokens.data import synthetic as syn

SIZE = (256, 256)


def _limb(k: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(k[a, :2] - k[b, :2]))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    ann_file = syn.generate_dataset(root, 40, seed=11, image_size=SIZE, split_name="train")
    return ann_file, json.loads(ann_file.read_text())


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = syn.generate_dataset(tmp_path / "a", 6, seed=5, image_size=(160, 128))
    b = syn.generate_dataset(tmp_path / "b", 6, seed=5, image_size=(160, 128))
    c = syn.generate_dataset(tmp_path / "c", 6, seed=6, image_size=(160, 128))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    for name in sorted(p.name for p in (tmp_path / "a" / "train").iterdir()):
        ia = cv2.imread(str(tmp_path / "a" / "train" / name))
        ib = cv2.imread(str(tmp_path / "b" / "train" / name))
        ic = cv2.imread(str(tmp_path / "c" / "train" / name))
        assert ia.shape == (128, 160, 3)
        assert np.array_equal(ia, ib)
        assert not np.array_equal(ia, ic)
    # in-memory rendering is independent of the order images are produced in
    img1, anns1 = syn.generate_image(5, 3, (160, 128))
    syn.generate_image(5, 0, (160, 128))
    img2, anns2 = syn.generate_image(5, 3, (160, 128))
    assert np.array_equal(img1, img2) and anns1 == anns2
    # splits with the same seed differ
    img3, _ = syn.generate_image(5, 3, (160, 128), split_name="val")
    assert not np.array_equal(img1, img3)


def test_coco_json_is_sane(dataset: tuple[Path, dict]) -> None:
    ann_file, data = dataset
    coco = COCO(str(ann_file))
    assert len(coco.getImgIds()) == 40
    cat = coco.loadCats(1)[0]
    assert cat["name"] == "person"
    assert cat["keypoints"] == list(syn.COCO_KEYPOINT_NAMES) and len(cat["keypoints"]) == 17
    assert cat["skeleton"] == syn.COCO_SKELETON and len(cat["skeleton"]) == 19
    assert min(min(e) for e in cat["skeleton"]) == 1 and max(max(e) for e in cat["skeleton"]) == 17
    ids = [a["id"] for a in data["annotations"]]
    assert len(set(ids)) == len(ids)
    for img in data["images"]:
        assert (ann_file.parent / "train" / img["file_name"]).is_file()
        assert (img["width"], img["height"]) == SIZE
    for a in data["annotations"]:
        assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["area"] > 0
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= SIZE[0] + 1e-6 and y + h <= SIZE[1] + 1e-6
        k = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        assert set(np.unique(k[:, 2])) <= {0, 1, 2}
        assert a["num_keypoints"] == int((k[:, 2] > 0).sum()) > 0
        lab = k[k[:, 2] > 0]
        assert np.all(lab[:, 0] >= 0) and np.all(lab[:, 0] < SIZE[0])
        assert np.all(lab[:, 1] >= 0) and np.all(lab[:, 1] < SIZE[1])
        # labelled keypoints lie inside the person box; unlabelled ones are [0, 0]
        assert np.all(lab[:, 0] >= x - 1) and np.all(lab[:, 0] <= x + w + 1)
        assert np.all(lab[:, 1] >= y - 1) and np.all(lab[:, 1] <= y + h + 1)
        assert np.all(k[k[:, 2] == 0, :2] == 0)


def test_dataset_variety(dataset: tuple[Path, dict]) -> None:
    _, data = dataset
    per_image = np.bincount([a["image_id"] for a in data["annotations"]])
    assert per_image.max() >= 2, "several people per image should occur"
    assert per_image.max() <= 3
    k = np.asarray([a["keypoints"] for a in data["annotations"]], dtype=float).reshape(-1, 17, 3)
    assert (k[:, :, 2] == 1).sum() > 10, "occluded (v=1) keypoints should occur"
    assert (k[:, :, 2] == 2).mean() > 0.5, "most keypoints should be visible"
    heights = [a["bbox"][3] for a in data["annotations"]]
    assert min(heights) < 100 and max(heights) > 160


def test_standing_frontal_proportions() -> None:
    k = syn.person_keypoints(syn.standing_pose(), syn.BodyShape(), height=200.0, yaw=0.0)
    for side in (0, 1):  # 0 = left, 1 = right
        upper, lower = _limb(k, 5 + side, 7 + side), _limb(k, 7 + side, 9 + side)
        thigh, shin = _limb(k, 11 + side, 13 + side), _limb(k, 13 + side, 15 + side)
        assert 1.1 < upper / lower < 1.45
        assert 0.85 < thigh / shin < 1.15
        assert 0.16 < upper / 200 < 0.21 and 0.22 < thigh / 200 < 0.27
    assert _limb(k, 5, 7) == pytest.approx(_limb(k, 6, 8))  # left/right symmetric
    assert _limb(k, 13, 15) == pytest.approx(_limb(k, 14, 16))
    shoulder_w, hip_w = _limb(k, 5, 6), _limb(k, 11, 12)
    assert 0.17 < shoulder_w / 200 < 0.26
    assert 0.35 < hip_w / shoulder_w < 0.75
    torso = np.linalg.norm(k[5:7, :2].mean(0) - k[11:13, :2].mean(0))
    assert 0.26 < torso / 200 < 0.32
    # vertical order: eyes above nose above shoulders above hips above knees above ankles
    y = k[:, 1]
    assert y[1] < y[0] < y[5] < y[11] < y[13] < y[15]
    # facing the camera, the person's left is on the image right; from behind it flips
    assert k[5, 0] > k[6, 0] and k[11, 0] > k[12, 0] and k[1, 0] > k[2, 0]
    back = syn.person_keypoints(syn.standing_pose(), height=200.0, yaw=180.0)
    assert back[5, 0] < back[6, 0] and back[11, 0] < back[12, 0]


def test_sampled_bodies_keep_human_ratios() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = syn.person_keypoints(syn.standing_pose(), syn.BodyShape.sample(rng), height=150.0)
        for side in (0, 1):
            assert 1.0 < _limb(k, 5 + side, 7 + side) / _limb(k, 7 + side, 9 + side) < 1.6
            assert 0.8 < _limb(k, 11 + side, 13 + side) / _limb(k, 13 + side, 15 + side) < 1.25


def test_joint_limits_and_flex_direction() -> None:
    rng = np.random.default_rng(1)
    for kind in syn.POSE_KINDS:
        for _ in range(10):
            p = syn.sample_pose(rng, kind)
            for name, (lo, hi) in syn.JOINT_LIMITS.items():
                vals = np.atleast_1d(getattr(p, name))
                assert np.all(vals >= lo) and np.all(vals <= hi), (kind, name)
    # a bent elbow brings the wrist forward (toward the camera), a bent knee sends the ankle back
    pose = syn.standing_pose()
    pose.elbow = [90.0, 90.0]
    pose.knee = [90.0, 90.0]
    k = syn.person_keypoints(pose, height=100.0, yaw=0.0)
    assert np.all(k[9:11, 2] - k[7:9, 2] > 10)
    assert np.all(k[15:17, 2] - k[13:15, 2] < -10)


def test_bone_ratios_across_dataset(dataset: tuple[Path, dict]) -> None:
    _, data = dataset
    thigh_shin, upper_lower = [], []
    for a in data["annotations"]:
        k = np.asarray(a["keypoints"], dtype=float).reshape(17, 3)
        for side in (0, 1):
            if np.all(k[[11 + side, 13 + side, 15 + side], 2] > 0):
                shin = _limb(k, 13 + side, 15 + side)
                if shin > 5:
                    thigh_shin.append(_limb(k, 11 + side, 13 + side) / shin)
            if np.all(k[[5 + side, 7 + side, 9 + side], 2] > 0):
                lower = _limb(k, 7 + side, 9 + side)
                if lower > 5:
                    upper_lower.append(_limb(k, 5 + side, 7 + side) / lower)
    assert len(thigh_shin) > 20 and len(upper_lower) > 20
    assert 0.8 < np.median(thigh_shin) < 1.25
    assert 1.0 < np.median(upper_lower) < 1.6


def test_generate_splits_and_cli(tmp_path: Path) -> None:
    paths = syn.generate_splits(tmp_path / "d", num_train=4, num_val=3, seed=2, image_size=(128, 128))
    images = json.loads(paths["train_ann"].read_text())["images"]
    assert images[0]["file_name"] == "000001.jpg"
    # COCO's convention, which infer's image_id_from_name relies on: a file's digits are its image id
    assert all(int(Path(im["file_name"]).stem) == im["id"] for im in images)
    assert len(list(paths["train_img_dir"].glob("*.jpg"))) == 4
    assert len(list(paths["val_img_dir"].glob("*.jpg"))) == 3
    gt = COCO(str(paths["val_ann"]))
    dets = json.loads(paths["val_det"].read_text())
    assert len(dets) == len(gt.getAnnIds()) > 0
    assert all(d["score"] == 1.0 and d["category_id"] == 1 for d in dets)
    for d in dets:
        box = np.asarray(d["bbox"])
        ref = np.asarray([a["bbox"] for a in gt.loadAnns(gt.getAnnIds(imgIds=d["image_id"]))])
        assert np.abs(ref - box).max(axis=1).min() < 0.2 * max(box[2], box[3]) + 2
    res = gt.loadRes(str(paths["val_det"]))  # COCO results format
    assert len(res.getAnnIds()) == len(dets)
    assert syn.main([str(tmp_path / "cli"), "--num-train", "2", "--num-val", "3", "--seed", "2",
                     "--image-size", "128", "128"]) == 0  # fmt: skip
    assert (tmp_path / "cli" / "val.json").read_bytes() == paths["val_ann"].read_bytes()


def test_generation_speed(tmp_path: Path) -> None:
    syn.generate_image(0, 0, SIZE)  # warm-up
    t0 = time.perf_counter()
    syn.generate_dataset(tmp_path, 50, seed=0, image_size=SIZE)
    assert time.perf_counter() - t0 < 5.0


def test_parallel_generation_matches_serial(tmp_path: Path) -> None:
    a = syn.generate_dataset(tmp_path / "serial", 4, seed=9, image_size=(128, 128), workers=1)
    b = syn.generate_dataset(tmp_path / "parallel", 4, seed=9, image_size=(128, 128), workers=2)
    assert a.read_bytes() == b.read_bytes()
    for name in ("000001.jpg", "000004.jpg"):
        serial = (tmp_path / "serial" / "train" / name).read_bytes()
        assert serial == (tmp_path / "parallel" / "train" / name).read_bytes()


def test_infer_gives_each_synthetic_image_its_own_boxes(tmp_path: Path) -> None:
    """``infer --boxes`` on the synthetic val split: the boxes drawn on each image file are the ones the
    detections file gives to that file's ``image_id`` in the ground truth (a file named from 0 while ids count
    from 1 gave each image the next one's boxes)."""
    from posetokens.cli import main as cli

    paths = syn.generate_splits(tmp_path / "d", num_train=1, num_val=4, seed=3, image_size=(128, 128))
    dets = json.loads(paths["val_det"].read_text())
    by_image: dict[int, list[list[float]]] = {}
    for d in dets:
        by_image.setdefault(d["image_id"], []).append(d["bbox"])
    out = tmp_path / "out"
    assert cli(["infer", str(paths["val_img_dir"]), "--model", "tokenpose_s_coco_256x192", "--boxes",
                str(paths["val_det"]), "--bbox-thr", "0", "--out", str(out), "--no-draw"]) == 0
    for im in json.loads(paths["val_ann"].read_text())["images"]:
        rec = json.loads((out / f"{Path(im['file_name']).stem}.json").read_text())
        got = sorted(tuple(np.round(i["bbox"], 2)) for i in rec["instances"])
        want = sorted(tuple(np.round([x, y, x + w, y + h], 2)) for x, y, w, h in by_image.get(im["id"], []))
        assert len(got) == len(want) and np.allclose(got, want, atol=0.02), im["file_name"]
