"""Datasets on the real samples (counts after the documented cleaning) and every bad-input case."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA
from posetokens.data.datasets import CocoStyleDataset, MpiiDataset, clean_gt_bbox, load_image

COCO_JSON = DATA / "coco" / "test_coco.json"
COCO_DET = DATA / "coco" / "test_coco_det_AP_H_56.json"
CROWD_JSON = DATA / "crowdpose" / "test_crowdpose.json"
CROWD_DET = DATA / "crowdpose" / "test_crowdpose_det_AP_40.json"
MPII_JSON = DATA / "mpii" / "test_mpii.json"


def _coco() -> dict:
    return json.loads(COCO_JSON.read_text())


def _write(tmp_path: Path, obj: object, name: str = "ann.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(obj))  # NaN is written as the NaN literal, which json.load accepts
    return p



def _image_785_as(tmp_path: Path, file_name: str) -> Path:
    """The sample json cut to image 785 (640 x 425) and its people, the image read from ``file_name``."""
    d = _coco()
    d["images"] = [img for img in d["images"] if img["id"] == 785]
    d["images"][0]["file_name"] = file_name
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] == 785]
    return _write(tmp_path, d)

# ------------------------------------------------------------------------------------ real samples
def test_coco_train_counts_and_item() -> None:
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco")
    # 14 annotations, none crowd, all boxes positive; the two with 0 labelled keypoints are skipped
    assert len(ds) == 12
    assert ds.skipped == {"no_visible_keypoints": 2}
    assert ds.marked == {}
    ids = {ds.get_data_info(i)["id"] for i in range(len(ds))}
    assert not ids & {1202706, 508900}
    info = ds.get_data_info(0)
    assert info["id"] == 442619 and info["img_id"] == 785
    assert info["bbox"].dtype == np.float64 and info["bbox"].shape == (4,)  # full json precision
    np.testing.assert_allclose(info["bbox"], [280.79, 44.73, 218.7, 346.68], rtol=1e-6)
    assert info["keypoints"].shape == (17, 2) and info["keypoints_visible"].shape == (17,)
    assert info["area"] == pytest.approx(27789.11055) and info["bbox_score"] == 1.0
    assert info["ori_shape"] == (425, 640)


def test_getitem_loads_rgb_and_applies_transform() -> None:
    seen = []
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", transform=lambda d: seen.append(d) or "done")
    assert ds[0] == "done"
    item = seen[0]
    bgr = cv2.imread(str(DATA / "coco" / "000000000785.jpg"))
    np.testing.assert_array_equal(item["img"], bgr[..., ::-1])
    assert item["img_shape"] == (425, 640)


def test_coco_test_mode_counts() -> None:
    assert len(CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", mode="test")) == 14  # GT boxes, no skips
    dets = json.loads(COCO_DET.read_text())
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", mode="test", det_file=COCO_DET)
    assert len(ds) == 118 and ds.skipped == {}
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", mode="test", det_file=COCO_DET, det_score_thr=0.5)
    n_keep = sum(d["score"] >= 0.5 for d in dets)
    assert n_keep == 18 and len(ds) == 18 and ds.skipped == {"low_score_detection": 100}
    info = ds.get_data_info(0)
    assert info["bbox_score"] >= 0.5 and info["keypoints_visible"].sum() == 0


def test_coco_wholebody_concatenates_parts() -> None:
    ds = CocoStyleDataset(DATA / "coco" / "test_coco_wholebody.json", DATA / "coco", "coco_wholebody")
    assert len(ds) == 12
    assert ds.get_data_info(0)["keypoints"].shape == (133, 2)


def test_crowdpose_loads() -> None:
    ds = CocoStyleDataset(CROWD_JSON, DATA / "crowdpose", "crowdpose")
    assert len(ds) == 4 and ds.skipped == {"no_visible_keypoints": 1}  # annotation 131039 has none
    info = ds.get_data_info(0)
    assert info["keypoints"].shape == (14, 2)
    assert info["crowd_index"] == pytest.approx(0.33)
    assert info["area"] == pytest.approx(float(info["bbox"][2]) * float(info["bbox"][3]), rel=1e-6)  # no 'area'
    det = CocoStyleDataset(CROWD_JSON, DATA / "crowdpose", "crowdpose", mode="test", det_file=CROWD_DET)
    assert len(det) == 6


def test_mpii_centre_convention() -> None:
    raw = json.loads(MPII_JSON.read_text())
    ds = MpiiDataset(MPII_JSON, DATA / "mpii")
    assert len(ds) == 5 and ds.skipped == {}
    for i, r in enumerate(raw):
        info = ds.get_data_info(i)
        s = r["scale"]
        # centre: 1-based -> -1; y moved down by 15/200 * (s*200) = 15*s px; square box of side 200*s
        centre = np.array([r["center"][0] - 1, r["center"][1] + 15 * s - 1])
        np.testing.assert_allclose(info["bbox_center"], centre, rtol=1e-6)
        np.testing.assert_allclose(info["bbox"][:2] + info["bbox"][2:] / 2, centre, rtol=1e-5)
        np.testing.assert_allclose(info["bbox"][2:], [200 * s, 200 * s], rtol=1e-6)
        np.testing.assert_allclose(info["bbox_scale"], [200 * s, 200 * s], rtol=1e-6)
        np.testing.assert_allclose(info["keypoints"], np.asarray(r["joints"]) - 1, rtol=1e-6)
        np.testing.assert_array_equal(info["keypoints_visible"], r["joints_vis"])
        assert info["img_id"] == int(r["image"].split(".")[0])
    # the two samples with unlabelled ankles keep them, invisible
    assert ds.get_data_info(2)["keypoints_visible"][[0, 5]].tolist() == [0.0, 0.0]


def test_mpii_centre_shift_tests_the_1_based_centre(tmp_path: Path) -> None:
    """HRNet's ``mpii.py`` moves the centre down only when ``c[0] != -1``, tested on the json's 1-based centre
    before ``c -= 1``: a centre x of -1 keeps its y, one of 0 (or 1) is moved. Hand-computed with s = 2."""
    raw = json.loads(MPII_JSON.read_text())[:3]
    for r, x in zip(raw, (-1.0, 0.0, 1.0)):
        r["center"], r["scale"] = [x, 100.0], 2.0
    ds = MpiiDataset(_write(tmp_path, raw), DATA / "mpii")
    got = np.stack([ds.get_data_info(i)["bbox_center"] for i in range(3)])
    np.testing.assert_array_equal(got, [[-2.0, 99.0], [-1.0, 129.0], [0.0, 129.0]])


# ------------------------------------------------------------------------------------- bad input
def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoStyleDataset(tmp_path / "nope.json", tmp_path, "coco")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match="bad.json.*malformed"):
        CocoStyleDataset(bad, tmp_path, "coco")
    with pytest.raises(FileNotFoundError, match="nodet.json"):
        CocoStyleDataset(COCO_JSON, tmp_path, "coco", mode="test", det_file=tmp_path / "nodet.json")
    with pytest.raises(ValueError, match="bad.json.*malformed"):
        MpiiDataset(bad, tmp_path)


def _mutate_first_annotation(**changes: object) -> dict:
    d = _coco()
    for k, v in changes.items():
        if v is None:
            del d["annotations"][0][k]
        else:
            d["annotations"][0][k] = v
    return d


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({k: v for k, v in _coco().items() if k != "annotations"}, "'annotations'"),
        ({k: v for k, v in _coco().items() if k != "images"}, "'images'"),
        (_mutate_first_annotation(keypoints=None), "'keypoints'"),
        (_mutate_first_annotation(bbox=None), "'bbox'"),
        (_mutate_first_annotation(image_id=None), "'image_id'"),
        (_mutate_first_annotation(keypoints=[0.0] * 50), "'keypoints' has 50 values, expected 51"),
        (_mutate_first_annotation(keypoints=[float("nan")] + [0.0] * 50), "'keypoints' contains NaN"),
        (_mutate_first_annotation(bbox=[1.0, 2.0, float("nan"), 4.0]), "'bbox' contains NaN"),
        (_mutate_first_annotation(bbox=[1.0, 2.0, 3.0]), "'bbox' has 3 values"),
    ],
)
def test_bad_annotation_names_file_and_field(tmp_path: Path, data: dict, field: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=field) as e:
        CocoStyleDataset(path, tmp_path, "coco")
    assert str(path) in str(e.value)


def test_an_annotation_of_an_unlisted_image_is_a_counted_skip(tmp_path: Path) -> None:
    """A subset cut by its ``images`` keeps annotations of the images it dropped: they cannot be loaded (no file
    name) and COCOeval leaves them out, so they are skipped and counted, not refused (they were refused here while
    the evaluation scored the same file)."""
    whole = CocoStyleDataset(_write(tmp_path, _coco()), tmp_path, "coco")
    path = _write(tmp_path, _mutate_first_annotation(image_id=999))
    ds = CocoStyleDataset(path, tmp_path, "coco")
    assert ds.skipped.get("image_not_listed") == 1 and len(ds) == len(whole) - 1


def test_annotations_of_a_category_without_keypoints_are_no_people(tmp_path: Path) -> None:
    """A json with a second category that lists no keypoints (a 'dog') and one person moved into it: the official
    HRNet loader keeps only the person category; that annotation trained as a person without a word. It is a
    counted skip; the ground-truth check a training runs before it starts refuses such a val set (COCOeval would
    average its AP over both categories, the dog's 0) rather than after the first epoch."""
    from posetokens.evaluation.coco import check_coco_ground_truth

    whole = CocoStyleDataset(_write(tmp_path, _coco()), tmp_path, "coco")
    data = _coco()
    data["categories"].append({"id": 2, "name": "dog"})
    moved = next(a for a in data["annotations"] if a["num_keypoints"] > 0)
    moved["category_id"] = 2
    path = _write(tmp_path, data, "dog.json")
    ds = CocoStyleDataset(path, tmp_path, "coco")
    assert ds.skipped.get("other_category") == 1 and len(ds) == len(whole) - 1
    with pytest.raises(ValueError, match=r"dog\.json: annotated people of category \[2\] and no prediction of it in "
                                         r"the model's predictions \(COCOeval averages"):
        check_coco_ground_truth(path, "coco", predicted_categories={1}, source="the model's predictions")
    check_coco_ground_truth(COCO_JSON, "coco", predicted_categories={1})  # a person file passes


def test_detections_of_the_asked_category_only(tmp_path: Path) -> None:
    """``det_category_id`` keeps the detections of that category; one without ``category_id`` is taken to be of it
    (a detector that writes people only); ``None`` keeps all. Hand-counted on three boxes."""
    box = {"image_id": 785, "bbox": [10, 20, 30, 40], "score": 0.9}
    path = _write(tmp_path, [{**box, "category_id": 3}, {**box, "category_id": 1}, box], "dets.json")
    ds = CocoStyleDataset(COCO_JSON, tmp_path, "coco", mode="test", det_file=path, det_category_id=3)
    assert len(ds) == 2 and ds.skipped == {"other_category": 1}
    assert [ds.get_data_info(i)["category_id"] for i in range(2)] == [3, 3]
    ds = CocoStyleDataset(COCO_JSON, tmp_path, "coco", mode="test", det_file=path)  # the default: people (1)
    assert len(ds) == 2 and [ds.get_data_info(i)["category_id"] for i in range(2)] == [1, 1]
    assert len(CocoStyleDataset(COCO_JSON, tmp_path, "coco", mode="test", det_file=path, det_category_id=None)) == 3


def test_wrong_metainfo_is_a_length_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'keypoints' has 51 values, expected 42.*crowdpose"):
        CocoStyleDataset(COCO_JSON, tmp_path, "crowdpose")


@pytest.mark.parametrize(
    ("det", "field"),
    [
        ({"image_id": 12345, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}, "'image_id'"),
        ({"category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}, "'image_id'"),
        ({"image_id": 785, "category_id": 1, "bbox": [0, 0, 10, 10]}, "'score'"),
        ({"image_id": 785, "category_id": 1, "bbox": [0, 0, float("nan"), 10], "score": 0.9}, "'bbox'"),
    ],
)
def test_bad_detection_names_file_and_field(tmp_path: Path, det: dict, field: str) -> None:
    ok = {"image_id": 785, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}
    path = _write(tmp_path, [ok, det], "dets.json")
    with pytest.raises(ValueError, match=field) as e:
        CocoStyleDataset(COCO_JSON, tmp_path, "coco", mode="test", det_file=path)
    assert str(path) in str(e.value) and "entry [1]" in str(e.value)


def test_counted_skips_and_out_of_image_marking(tmp_path: Path) -> None:
    d = _coco()
    anns = d["annotations"]
    anns[0]["iscrowd"] = 1                      # 785: crowd -> skipped
    anns[1]["bbox"] = [600.0, 20.0, 0.0, 30.0]  # zero width -> skipped
    anns[2]["bbox"] = [-50.0, -50.0, 10.0, 10.0]  # entirely left/above the image: zero after clipping
    k = np.asarray(anns[4]["keypoints"], dtype=np.float64).reshape(-1, 3)
    labelled = np.flatnonzero(k[:, 2] > 0)
    k[labelled[0], 0] = 5000.0                  # labelled joint outside the 640-px-wide image
    anns[4]["keypoints"] = k.ravel().tolist()
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")
    assert ds.skipped == {"crowd": 1, "zero_area_bbox": 2, "no_visible_keypoints": 2}
    assert ds.marked == {"keypoints_outside_image": 1}
    assert len(ds) == 14 - 5
    info = next(ds.get_data_info(i) for i in range(len(ds)) if ds.get_data_info(i)["id"] == anns[4]["id"])
    assert info["keypoints_visible"][labelled[0]] == 0.0      # marked invisible...
    assert info["keypoints"][labelled[0], 0] == 5000.0        # ...but kept
    assert info["num_keypoints"] == len(labelled) - 1
    # test mode with GT boxes keeps the no-keypoint annotations
    assert CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco", mode="test").skipped == {
        "crowd": 1, "zero_area_bbox": 2}


def test_bad_images(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        load_image(tmp_path / "missing.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(ValueError, match="corrupt.jpg"):
        load_image(tmp_path / "corrupt.jpg")

    shutil.copy(DATA / "coco" / "000000000785.jpg", tmp_path / "good.jpg")
    d = _coco()
    d["images"] = d["images"][:2]
    d["images"][0]["file_name"] = "corrupt.jpg"   # image 785
    d["images"][1].update(file_name="good.jpg", width=640, height=425)  # image 40083, given 785's picture and size
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in (785, 40083)]
    ann = _write(tmp_path, d)
    strict = CocoStyleDataset(ann, tmp_path, "coco")
    with pytest.raises(ValueError, match="corrupt.jpg"):
        strict[0]
    lenient = CocoStyleDataset(ann, tmp_path, "coco", skip_bad_images=True)
    item = lenient[0]
    assert item["img_path"].endswith("good.jpg") and item["img"].shape == (425, 640, 3)
    lenient[0]
    assert lenient.skipped["bad_image"] == 1  # counted once per file
    # an evaluation never puts a neighbour in an unreadable image's place (its prediction would be scored against
    # the other person's ground truth): it stops, naming the file
    evaluated = CocoStyleDataset(ann, tmp_path, "coco", mode="test", skip_bad_images=True)
    with pytest.raises(ValueError, match="corrupt.jpg.*an evaluation scores every image"):
        evaluated[0]
    (tmp_path / "good.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of the .* items' images could be read .*data.train_img_dir"):
        lenient[1]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"joints": [[1.0, 2.0]] * 15}, "'joints' has 30 values, expected 32"),
        ({"center": [float("nan"), 3.0]}, "'center' contains NaN"),
        ({"scale": None}, "'scale'"),
        ({"joints_vis": [1] * 10}, "'joints_vis' has 10 values"),
    ],
)
def test_bad_mpii_names_file_and_field(tmp_path: Path, change: dict, field: str) -> None:
    raw = json.loads(MPII_JSON.read_text())
    for k, v in change.items():
        if v is None:
            del raw[1][k]
        else:
            raw[1][k] = v
    path = _write(tmp_path, raw)
    with pytest.raises(ValueError, match=field) as e:
        MpiiDataset(path, DATA / "mpii")
    assert str(path) in str(e.value) and "entry [1]" in str(e.value)


def test_mpii_counted_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = json.loads(MPII_JSON.read_text())
    raw[0]["joints_vis"] = [0] * 16
    raw[1]["scale"] = 0.0
    path = _write(tmp_path, raw)
    with caplog.at_level("WARNING"):
        ds = MpiiDataset(path, DATA / "mpii")
    assert len(ds) == 3 and ds.skipped == {"no_visible_keypoints": 1, "zero_area_bbox": 1}
    # said once, in one line, without an empty "marked {}"
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: 3 items; skipped {{'no_visible_keypoints': 1, 'zero_area_bbox': 1}}"]
    assert len(MpiiDataset(_write(tmp_path, raw), DATA / "mpii", mode="test")) == 5


# ------------------------------------------------------------------------- protocol GT cleaning (spec §1.2)
@pytest.mark.parametrize(
    ("rule", "bbox", "want"),
    [
        # a box past the right edge of a 640 x 425 image (x2 = min(639, x1 + w - 1) for the HRNet rules)
        ("hrnet", [600.5, 10.0, 50.0, 30.0], [600.5, 10.0, 39.5, 30.0]),
        ("hrnet_w_minus_1", [600.5, 10.0, 50.0, 30.0], [600.5, 10.0, 38.5, 29.0]),
        ("mmpose0", [600.5, 10.0, 50.0, 30.0], [600.5, 10.0, 38.5, 30.0]),
        ("mmpose", [600.5, 10.0, 50.0, 30.0], [600.5, 10.0, 38.5, 30.0]),
        ("none", [600.5, 10.0, 50.0, 30.0], [600.5, 10.0, 50.0, 30.0]),
        # left of the image: the official rules move x1 to 0 and keep w (x2 from the clipped x1); MMPose 1.x cuts
        ("hrnet", [-5.0, 10.0, 20.0, 30.0], [0.0, 10.0, 20.0, 30.0]),
        ("hrnet_w_minus_1", [-5.0, 10.0, 20.0, 30.0], [0.0, 10.0, 19.0, 29.0]),
        ("mmpose0", [-5.0, 10.0, 20.0, 30.0], [0.0, 10.0, 20.0, 30.0]),
        ("mmpose", [-5.0, 10.0, 20.0, 30.0], [0.0, 10.0, 15.0, 30.0]),
        # zero width: HRNet keeps it (x2 = x1, so w = 1 / 0), mmpose 0.x and 1.x need x2 > x1
        ("hrnet", [5.0, 10.0, 0.0, 30.0], [5.0, 10.0, 1.0, 30.0]),
        ("hrnet_w_minus_1", [5.0, 10.0, 0.0, 30.0], [5.0, 10.0, 0.0, 29.0]),
        ("mmpose0", [5.0, 10.0, 0.0, 30.0], None),
        ("mmpose", [5.0, 10.0, 0.0, 30.0], None),
    ],
)
def test_clean_gt_bbox_hand_computed(rule: str, bbox: list, want: list | None) -> None:
    got = clean_gt_bbox(bbox, (425, 640), rule, area=100.0)
    if want is None:
        assert got is None
    else:
        np.testing.assert_allclose(got, want)


def test_clean_gt_bbox_needs_positive_area_for_official_rules() -> None:
    for rule in ("hrnet", "hrnet_w_minus_1", "mmpose0"):
        assert clean_gt_bbox([5, 10, 20, 30], (425, 640), rule, area=0.0) is None
    assert clean_gt_bbox([5, 10, 20, 30], (425, 640), "mmpose", area=0.0) is not None
    with pytest.raises(ValueError, match="gt_clean rule must be one of"):
        clean_gt_bbox([5, 10, 20, 30], (425, 640), "hrnet2")


@pytest.mark.parametrize(("rule", "dw"), [("hrnet", 0.0), ("hrnet_w_minus_1", -1.0), ("mmpose0", 0.0)])
def test_coco_official_rules_on_the_sample(rule: str, dw: float) -> None:
    """12 of 14 annotations kept (the two with all-zero keypoints skipped, spec §1.2); boxes inside the image keep
    w (TokenPose, PCT) or get w - 1 (GTPT)."""
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", gt_clean=rule)
    assert len(ds) == 12 and ds.skipped == {"no_visible_keypoints": 2}
    info = ds.get_data_info(0)
    assert info["id"] == 442619
    np.testing.assert_allclose(info["bbox"], [280.79, 44.73, 218.7 + dw, 346.68 + dw], rtol=1e-12)


def test_official_rules_skip_only_all_zero_keypoints(tmp_path: Path) -> None:
    """HRNet's loader skips a person when ``max(obj['keypoints']) == 0`` (spec section 1.2): every value, not only v.
    A person with coordinates but v = 0 everywhere is kept by the HRNet rules (as in the official code); mmpose 0.x
    also skips ``num_keypoints == 0``; posetokens' default rule skips it for training (nothing visible)."""
    d = _coco()
    d["annotations"] = [a for a in d["annotations"] if a["id"] == 442619]
    a = d["annotations"][0]
    k = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
    k[:, :2] = [300.0, 200.0]
    k[:, 2] = 0.0
    a["keypoints"] = k.ravel().tolist()
    a["num_keypoints"] = 0
    path = _write(tmp_path, d)
    for rule in ("hrnet", "hrnet_w_minus_1"):
        ds = CocoStyleDataset(path, DATA / "coco", "coco", gt_clean=rule)
        assert len(ds) == 1 and ds.skipped == {}, rule
        assert not ds.get_data_info(0)["keypoints_visible"].any()
    for rule in ("mmpose0", "mmpose"):
        ds = CocoStyleDataset(path, DATA / "coco", "coco", gt_clean=rule)
        assert len(ds) == 0 and ds.skipped == {"no_visible_keypoints": 1}, rule
    k[:, :2] = 0.0  # now every value is 0: skipped by every rule
    a["keypoints"] = k.ravel().tolist()
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco", gt_clean="hrnet")
    assert len(ds) == 0 and ds.skipped == {"no_visible_keypoints": 1}


def test_official_rules_keep_labelled_joints_outside_the_image(tmp_path: Path) -> None:
    """The official loaders take min(v, 1) and never mark joints outside the image (MMPose-1.x-style marking is
    posetokens' default rule only)."""
    d = _coco()
    k = np.asarray(d["annotations"][4]["keypoints"], dtype=np.float64).reshape(-1, 3)
    j = int(np.flatnonzero(k[:, 2] > 0)[0])
    k[j, 0] = 5000.0
    d["annotations"][4]["keypoints"] = k.ravel().tolist()
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco", gt_clean="hrnet")
    assert ds.marked == {}
    info = next(ds.get_data_info(i) for i in range(len(ds)) if ds.get_data_info(i)["id"] == d["annotations"][4]["id"])
    assert info["keypoints_visible"][j] == 1.0 and info["keypoints"][j, 0] == 5000.0
    with pytest.raises(ValueError, match="gt_clean must be one of"):
        CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", gt_clean="bogus")


@pytest.mark.parametrize("proto", ["tokenpose", "gtpt", "mmpose"])
def test_mpii_box_centre_through_the_protocol_pipeline(proto: str) -> None:
    """Spec §1.1: c_y += 15 s, then s x 1.25, then c -= 1, square box -- whatever the protocol's centre offset for
    [x, y, w, h] boxes (the stored centre is used as is)."""
    from posetokens.protocols import get_protocol
    from posetokens.protocols.topdown import build_pipeline

    raw = json.loads(MPII_JSON.read_text())
    ds = MpiiDataset(MPII_JSON, DATA / "mpii")
    pipe = build_pipeline(get_protocol(proto), (256, 256), "mpii")
    blank = np.zeros((8, 8, 3), np.uint8)
    for i, r in enumerate(raw):
        out = pipe.run_item(ds.get_data_info(i), image=blank)
        s = r["scale"]
        np.testing.assert_allclose(out["box_center"], [r["center"][0] - 1, r["center"][1] + 15 * s - 1], atol=1e-9)
        np.testing.assert_allclose(out["box_scale"], [200 * s * 1.25] * 2, rtol=1e-12)


# ------------------------------------------------------------------ a user's own dataset (session 27's review)
def test_image_ids_are_integers_given_once(tmp_path: Path) -> None:
    """A repeated image id paired one image's people with another picture (counted as 'image not listed'); a
    string id gave ``int()``'s bare message. Both are refused naming the file, the item and the field."""
    d = _coco()
    d["images"][1]["id"] = d["images"][0]["id"]
    path = _write(tmp_path, d)
    with pytest.raises(ValueError, match=r"images\[1\]: field 'id' = 785 repeats images\[0\]'s") as e:
        CocoStyleDataset(path, DATA / "coco", "coco")
    assert str(path) in str(e.value)
    d = _coco()
    d["images"][0]["id"] = "img1"
    with pytest.raises(ValueError, match=r"images\[0\]: field 'id' must be an integer, got 'img1'"):
        CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id=.*\): field 'image_id' must be an integer"):
        CocoStyleDataset(_write(tmp_path, _mutate_first_annotation(image_id="img1")), DATA / "coco", "coco")


def test_a_category_not_listed_is_refused_in_training_as_in_evaluation(tmp_path: Path) -> None:
    d = _mutate_first_annotation(category_id=0)
    with pytest.raises(ValueError, match=r"annotations\[0\] .*field 'category_id' = 0 is not one of its "
                                         r"'categories' \(\[1\]\)"):
        CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")
    d = _mutate_first_annotation(category_id=None)
    d["categories"][0]["id"] = 0
    with pytest.raises(ValueError, match=r"field 'category_id' missing \(read as 1\) is not one of"):
        CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")


def test_boxes_beyond_their_image_are_counted(tmp_path: Path) -> None:
    """Boxes written as [x1, y1, x2, y2] read as [x, y, w, h] reach past the image and were clipped without a
    word: each is counted (the image is 640 x 425; hand-made boxes)."""
    base = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco")
    assert "bbox_beyond_image" not in base.marked  # the real sample: every box inside its image
    d = _coco()
    i785 = [i for i, a in enumerate(d["annotations"]) if a["image_id"] == 785][0]
    x, y, w, h = d["annotations"][i785]["bbox"]
    d["annotations"][i785]["bbox"] = [x, y, x + w, y + h]  # x + (x + w) > 640 for this person
    assert x + x + w > 640
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")
    assert ds.marked.get("bbox_beyond_image") == 1
    d["annotations"][i785]["keypoints"] = [0] * 51  # then left out (no labelled joint): not counted as beyond
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco")
    assert "bbox_beyond_image" not in ds.marked and ds.skipped["no_visible_keypoints"] >= 1


def test_a_truncated_jpeg_is_unreadable_for_training_and_evaluation(tmp_path: Path) -> None:
    """OpenCV decodes a JPEG cut in half without an error (its lower half grey): train used it as it was and test
    scored it, where infer skipped it. ``load_image`` refuses it as infer does (one check, ``image_problem``)."""
    data = (DATA / "coco" / "000000000785.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # what OpenCV alone would use
    with pytest.raises(ValueError, match=r"cut.jpg: truncated JPEG"):
        load_image(tmp_path / "cut.jpg")
    ann = _image_785_as(tmp_path, "cut.jpg")
    train = CocoStyleDataset(ann, tmp_path, "coco", skip_bad_images=True)
    with pytest.raises(ValueError, match="none of the 1 items' images could be read"):
        train[0]
    assert train.skipped["bad_image"] == 1
    with pytest.raises(ValueError, match="cut.jpg: truncated JPEG.*an evaluation scores every image"):
        CocoStyleDataset(ann, tmp_path, "coco", mode="test")[0]



def test_a_picture_of_another_size_than_its_json_entry_is_refused_or_skipped(tmp_path: Path) -> None:
    """The json's width/height (COCO's ``images[].width/height``) are the pixels its boxes and keypoints sit on.
    A picture resized since (here 785's at half size: 320 x 213) would be cropped where the boxes no longer are; it
    is a bad image: one line naming the file, the json, the fields and both sizes; skipped and counted under
    ``skip_bad_images``; an evaluation stops on it."""
    img = cv2.imread(str(DATA / "coco" / "000000000785.jpg"))
    (tmp_path / "small.jpg").write_bytes(cv2.imencode(".jpg", cv2.resize(img, (320, 213)))[1].tobytes())
    shutil.copy(DATA / "coco" / "000000000785.jpg", tmp_path / "good.jpg")
    d = _coco()
    d["images"] = [i for i in d["images"] if i["id"] in (785, 40083)]
    d["images"][0]["file_name"] = "small.jpg"  # image 785: width 640, height 425 in the json
    d["images"][1].update(file_name="good.jpg", width=640, height=425)
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] in (785, 40083)]
    ann = _write(tmp_path, d)
    assert d["images"][0]["width"] == 640 and d["images"][0]["height"] == 425
    want = r"small.jpg: 320x213 pixels \(width x height\), but .*ann.json gives width 640, height 425 for image id 785"
    with pytest.raises(ValueError, match=want) as err:
        CocoStyleDataset(ann, tmp_path, "coco")[0]
    assert "\n" not in str(err.value)
    lenient = CocoStyleDataset(ann, tmp_path, "coco", skip_bad_images=True)
    assert lenient[0]["img_path"].endswith("good.jpg")
    lenient[0]
    assert lenient.skipped["image_size_mismatch"] == 1 and "bad_image" not in lenient.skipped  # once per file
    with pytest.raises(ValueError, match=want + ".*an image of another size than its annotations stops it"):
        CocoStyleDataset(ann, tmp_path, "coco", mode="test", skip_bad_images=True)[0]
    # swapped in the json, with no EXIF tag to explain it: refused under either reading
    d["images"][1].update(width=425, height=640)
    swapped = _write(tmp_path, d, "swapped.json")
    for exif_orientation in (True, False):
        with pytest.raises(ValueError, match=r"good.jpg: 640x425 pixels .* gives width 425, height 640 for image id"):
            CocoStyleDataset(swapped, tmp_path, "coco", exif_orientation=exif_orientation)[1]
    d["images"][0]["height"] = "425"
    with pytest.raises(ValueError, match=r"ann.json: images\[0\].height \(pixels\) must be .*got '425'"):
        CocoStyleDataset(_write(tmp_path, d), tmp_path, "coco")


def test_an_exif_turned_picture_is_read_as_the_official_loader_reads_it_and_marked(tmp_path: Path) -> None:
    """A picture its EXIF tag turns (6: 90 degrees) has the json's size only as stored. The HRNet loader
    (TokenPose) reads it as stored: nothing to say. MMPose (PCT) reads it turned, 425 x 640 against the json's
    640 x 425: that is the official reading, so it is neither refused nor skipped, but marked once per file."""
    from PIL import Image

    src = Image.open(DATA / "coco" / "000000000785.jpg")
    exif = src.getexif()
    exif[0x0112] = 6
    src.save(tmp_path / "t.jpg", exif=exif.tobytes(), quality=95)
    ann = _image_785_as(tmp_path, "t.jpg")
    stored = CocoStyleDataset(ann, tmp_path, "coco", exif_orientation=False)
    assert stored[0]["img"].shape == (425, 640, 3) and stored.marked == {}
    turned = CocoStyleDataset(ann, tmp_path, "coco", mode="test", exif_orientation=True)
    assert turned[0]["img"].shape == (640, 425, 3)
    turned[0]
    assert turned.marked == {"exif_turned_image": 1} and turned.skipped == {}
    # annotations made on the turned picture (width 425, height 640): the stored reading says why they do not fit
    d = json.loads(ann.read_text())
    d["images"][0].update(width=425, height=640)
    on_turned = _write(tmp_path, d, "on_turned.json")
    assert CocoStyleDataset(on_turned, tmp_path, "coco", exif_orientation=True)[0]["img"].shape == (640, 425, 3)
    with pytest.raises(ValueError, match=r"t.jpg: 640x425 pixels .* image id 785 \(its EXIF orientation tag turns "
                                         r"it to that size, but this protocol reads pictures as stored"):
        CocoStyleDataset(on_turned, tmp_path, "coco", exif_orientation=False)[0]

@pytest.mark.parametrize("protocol, turned", [("tokenpose", False), ("gtpt", False), ("pct", True), ("mmpose", True)])
def test_images_are_read_as_the_protocols_official_loader_reads_them(protocol: str, turned: bool,
                                                                     tmp_path: Path) -> None:
    """A picture with an EXIF orientation tag (6: turned 90 degrees): the HRNet loader of TokenPose, PPT and GTPT
    reads it as stored (``cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION``, their JointsDataset), mmcv's 'color'
    flag of PCT and MMPose turned (``cv2.IMREAD_COLOR``). Until 2026-12-06 every protocol read it turned, so the
    HRNet-family crops were cut from a rotated picture, away from COCO's boxes (made on the stored pixels)."""
    from PIL import Image

    from posetokens.engine.config import DataCfg
    from posetokens.engine.data import build_dataset
    from posetokens.protocols import get_protocol

    src = Image.open(DATA / "coco" / "000000000785.jpg")
    exif = src.getexif()
    exif[0x0112] = 6
    (tmp_path / "img").mkdir()
    src.save(tmp_path / "img" / "000000000785.jpg", exif=exif.tobytes(), quality=95)
    d = _coco()
    d["images"] = [i for i in d["images"] if i["id"] == 785]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] == 785]
    cfg = DataCfg(train_ann=str(_write(tmp_path, d)), train_img_dir=str(tmp_path / "img"))
    ds = build_dataset(cfg, "train", get_protocol(protocol))
    ds.transform = lambda item: item["img"]
    path = str(tmp_path / "img" / "000000000785.jpg")
    official = cv2.imread(path, cv2.IMREAD_COLOR if turned else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    img = ds[0]
    assert img.shape == ((640, 425, 3) if turned else (425, 640, 3))
    np.testing.assert_array_equal(img, official[..., ::-1])


def test_a_json_naming_other_keypoints_than_its_skeleton_file_is_said(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """With a skeleton file of one's own, the json's ``categories[].keypoints`` are compared with the file's names
    (with a built-in layout they are not: real files spell COCO's joints their own way)."""
    from posetokens.data.metainfo import COCO

    names = list(COCO.keypoint_names)
    skel = tmp_path / "mine.json"
    skel.write_text(json.dumps({"keypoints": names, "sigmas": list(COCO.sigmas)}))
    d = _coco()
    d["categories"][0]["keypoints"] = names[:5] + [names[6], names[5]] + names[7:]  # shoulders swapped
    ann = _write(tmp_path, d)
    with caplog.at_level("WARNING"):
        CocoStyleDataset(ann, DATA / "coco", str(skel))
    said = [r.getMessage() for r in caplog.records if "differ from the skeleton" in r.getMessage()]
    assert len(said) == 1 and "categories[0].keypoints differ from the skeleton 'mine' at index 5 ('right_shoulder' " \
        "against 'left_shoulder')" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING"):
        CocoStyleDataset(ann, DATA / "coco", "coco")  # the built-in layout: names not compared
        d["categories"][0]["keypoints"] = names
        CocoStyleDataset(_write(tmp_path, d, "same.json"), DATA / "coco", str(skel))
    assert not [r for r in caplog.records if "differ from the skeleton" in r.getMessage()]



@pytest.mark.parametrize("tag", range(1, 9))
def test_the_exif_orientation_tag_is_read_as_pil_writes_it(tag: int, tmp_path: Path) -> None:
    """The tag (1-8) PIL writes into a JPEG's EXIF segment, little- and big-endian, is the one read; a PNG, a JPEG
    without EXIF and a cut EXIF segment read 1. A turn that keeps the picture's size (180 degrees, the mirrors; a
    square picture) shows only in the tag: MMPose's reading marks every tagged picture, its size kept or swapped."""
    from PIL import Image

    from posetokens.data.datasets.coco_style import exif_orientation_tag

    src = Image.open(DATA / "coco" / "000000000785.jpg")
    exif = src.getexif()
    exif[0x0112] = tag
    src.save(tmp_path / "t.jpg", exif=exif.tobytes(), quality=90)
    data = (tmp_path / "t.jpg").read_bytes()
    assert exif_orientation_tag(data) == tag
    # the same IFD written in the other byte order (PIL writes big-endian: "MM")
    k = data.index(b"Exif") + 6
    mine, other = ("big", "little") if data[k:k + 2] == b"MM" else ("little", "big")
    ifd = int.from_bytes(data[k + 4:k + 8], mine)
    n = int.from_bytes(data[k + ifd:k + ifd + 2], mine)
    out = bytearray(data)
    out[k:k + 4] = b"II*\x00" if other == "little" else b"MM\x00*"
    out[k + 4:k + 8] = ifd.to_bytes(4, other)
    out[k + ifd:k + ifd + 2] = n.to_bytes(2, other)
    for e in range(k + ifd + 2, k + ifd + 2 + 12 * n, 12):  # tag, type, count, then a SHORT or LONG value
        for a, w in ((0, 2), (2, 2), (4, 4)):
            out[e + a:e + a + w] = int.from_bytes(data[e + a:e + a + w], mine).to_bytes(w, other)
        w = 2 if int.from_bytes(data[e + 2:e + 4], mine) == 3 else 4
        out[e + 8:e + 8 + w] = int.from_bytes(data[e + 8:e + 8 + w], mine).to_bytes(w, other)
    assert bytes(out) != data and exif_orientation_tag(bytes(out)) == tag
    k = data.index(b"Exif")
    assert exif_orientation_tag(data[:k + 10]) == 1  # cut inside the segment
    assert exif_orientation_tag((DATA / "coco" / "000000000785.jpg").read_bytes()) == 1
    assert exif_orientation_tag(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()) == 1
    ann = _image_785_as(tmp_path, "t.jpg")  # 640 x 425 as stored
    turned = CocoStyleDataset(ann, tmp_path, "coco", mode="test", exif_orientation=True)
    assert turned[0]["img"].shape == ((640, 425, 3) if tag >= 5 else (425, 640, 3))
    assert turned.marked == ({} if tag == 1 else {"exif_turned_image": 1})
    stored = CocoStyleDataset(ann, tmp_path, "coco", mode="test", exif_orientation=False)
    assert stored[0]["img"].shape == (425, 640, 3) and stored.marked == {}


def test_a_png_turned_by_its_exif_tag_is_read_as_the_decoder_reads_it(tmp_path: Path) -> None:
    """OpenCV turns a PNG by its eXIf chunk too, which the JPEG tag reader does not parse: a swapped size is then
    checked against the decoder's other reading (MMPose's reading uses and marks it; the stored reading refuses a
    json made on the turned picture, with the reason)."""
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (425, 640, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "t.png", exif=exif.tobytes())
    if cv2.imread(str(tmp_path / "t.png")).shape[:2] != (640, 425):
        pytest.skip("this OpenCV does not turn PNG pictures by their EXIF tag")
    ann = _image_785_as(tmp_path, "t.png")  # 640 x 425 as stored
    turned = CocoStyleDataset(ann, tmp_path, "coco", mode="test", exif_orientation=True)
    assert turned[0]["img"].shape == (640, 425, 3) and turned.marked == {"exif_turned_image": 1}
    stored = CocoStyleDataset(ann, tmp_path, "coco", mode="test", exif_orientation=False)
    assert stored[0]["img"].shape == (425, 640, 3) and stored.marked == {}
    d = json.loads(ann.read_text())
    d["images"][0].update(width=425, height=640)
    with pytest.raises(ValueError, match=r"t.png: 640x425 pixels .*\(its EXIF orientation tag turns it to that size"):
        CocoStyleDataset(_write(tmp_path, d, "on_turned.json"), tmp_path, "coco", exif_orientation=False)[0]


def test_items_changed_after_loading_get_a_table_of_their_own(tmp_path: Path) -> None:
    """A subclass that fills ``data_list`` itself, or a list filtered after loading, still reads and skips (the
    table of pictures is made again for the items there are)."""
    shutil.copy(DATA / "coco" / "000000000785.jpg", tmp_path / "good.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    ds = CocoStyleDataset(_image_785_as(tmp_path, "good.jpg"), tmp_path, "coco", skip_bad_images=True)
    ds.data_list = [dict(ds.data_list[0], img_path=str(tmp_path / "bad.jpg"))] + ds.data_list * 2
    assert ds[0]["img_path"].endswith("good.jpg") and ds.skipped["bad_image"] == 1

# ------------------------------------------------------------------ hand-checked edges (mutation hunt)
def test_detection_and_joint_edges_by_hand(tmp_path: Path) -> None:
    """A detection scored exactly ``det_score_thr`` is kept (``score >= thr``); one of zero height is skipped; under
    MMPose's rule a labelled joint at x = W (past the last pixel column) is marked invisible; under PCT's rule
    (``mmpose0``) a person whose json has no ``num_keypoints`` is kept (only an explicit 0 skips)."""
    dets = [{"image_id": 785, "category_id": 1, "bbox": [10, 10, 100, 200], "score": 0.5},
            {"image_id": 785, "category_id": 1, "bbox": [10, 10, 100, 0], "score": 0.9}]
    ds = CocoStyleDataset(COCO_JSON, DATA / "coco", "coco", mode="test", det_file=_write(tmp_path, dets, "d.json"),
                          det_score_thr=0.5)
    assert len(ds) == 1 and ds.skipped == {"zero_area_bbox": 1}
    d = _coco()
    d["images"] = [img for img in d["images"] if img["id"] == 785]  # 640 x 425
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] == 785][:1]
    k = np.asarray(d["annotations"][0]["keypoints"], np.float64).reshape(-1, 3)
    labelled = np.flatnonzero(k[:, 2] > 0)
    k[labelled[0], 0] = 640.0  # x = W
    k[labelled[1], 1] = 424.0  # y = H - 1: inside
    d["annotations"][0]["keypoints"] = k.ravel().tolist()
    ds = CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco", gt_clean="mmpose")
    assert ds.marked == {"keypoints_outside_image": 1}
    vis = ds.get_data_info(0)["keypoints_visible"]
    assert vis[labelled[0]] == 0 and vis[labelled[1]] == 1
    del d["annotations"][0]["num_keypoints"]
    assert len(CocoStyleDataset(_write(tmp_path, d), DATA / "coco", "coco", gt_clean="mmpose0")) == 1


def test_mpii_without_joints_vis_counts_every_joint(tmp_path: Path) -> None:
    raw = json.loads(MPII_JSON.read_text())[:1]
    raw[0].pop("joints_vis", None)
    ds = MpiiDataset(_write(tmp_path, raw), DATA / "mpii", mode="test")
    assert ds.get_data_info(0)["keypoints_visible"].tolist() == [1.0] * 16


def test_build_dataset_passes_the_protocols_box_rule_and_the_detection_threshold(tmp_path: Path) -> None:
    """``data.det_score_thr`` filters the val detections and the protocol's GT box rule cleans the boxes
    (TokenPose's ``x2 = min(W - 1, x1 + max(0, w - 1))``, ``w = x2 - x1 + 1``: a box [600, 20, 50, 60] in the
    640-wide image is 40 wide; MMPose's ``clip(x + w, 0, W - 1) - x1`` would make it 39)."""
    from posetokens.engine.config import DataCfg
    from posetokens.engine.data import build_dataset
    from posetokens.protocols import get_protocol

    dets = [{"image_id": 785, "category_id": 1, "bbox": [10, 10, 100, 200], "score": 0.5},
            {"image_id": 785, "category_id": 1, "bbox": [20, 10, 100, 200], "score": 0.7}]
    cfg = DataCfg(dataset="coco", val_ann=str(COCO_JSON), val_img_dir=str(DATA / "coco"),
                  val_det=str(_write(tmp_path, dets, "d.json")), det_score_thr=0.6)
    assert len(build_dataset(cfg, "val", get_protocol("tokenpose"))) == 1
    d = _coco()
    d["images"] = [img for img in d["images"] if img["id"] == 785]
    d["annotations"] = [a for a in d["annotations"] if a["image_id"] == 785][:1]
    d["annotations"][0]["bbox"] = [600.0, 20.0, 50.0, 60.0]
    cfg = DataCfg(dataset="coco", train_ann=str(_write(tmp_path, d)), train_img_dir=str(DATA / "coco"))
    box = build_dataset(cfg, "train", get_protocol("tokenpose")).get_data_info(0)["bbox"]
    np.testing.assert_allclose(box, [600.0, 20.0, 40.0, 60.0])
