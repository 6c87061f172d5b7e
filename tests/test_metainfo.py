"""Metainfo: counts, flips, sigmas, skeletons, part ranges, validation."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from posetokens.data.metainfo import (
    COCO,
    COCO_WHOLEBODY,
    CROWDPOSE,
    H36M,
    MPII,
    PoseMetaInfo,
    available_metainfo,
    from_coco_categories,
    get_metainfo,
)
from posetokens.data.transforms import half_body_part_ids
from posetokens.protocols import get_protocol

ALL = [COCO, COCO_WHOLEBODY, MPII, CROWDPOSE, H36M]


@pytest.mark.parametrize("name,k", [("coco", 17), ("coco_wholebody", 133), ("mpii", 16),
                                    ("crowdpose", 14), ("h36m", 17)])
def test_counts(name, k):
    m = get_metainfo(name)
    assert m.num_keypoints == k == len(m.keypoint_names) == len(m.flip_indices)
    assert len(m.joint_weights) == k
    assert m.sigmas is None or len(m.sigmas) == k


@pytest.mark.parametrize("m", ALL, ids=lambda m: m.name)
def test_flip_indices_are_involutions(m):
    fi = np.array(m.flip_indices)
    np.testing.assert_array_equal(fi[fi], np.arange(m.num_keypoints))
    for i, j in m.flip_pairs:
        assert i < j and fi[i] == j


def test_coco_values():
    sig = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062,
           .107, .107, .087, .087, .089, .089]
    np.testing.assert_allclose(COCO.sigmas_array, sig, rtol=0, atol=0)
    assert COCO.flip_pairs == [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
    links = {(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
             (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)}
    assert len(COCO.skeleton) == 19 and set(COCO.skeleton) == links
    assert COCO.upper_body_ids == list(range(11)) and COCO.lower_body_ids == list(range(11, 17))
    w = np.asarray(COCO.joint_weights)
    assert w[[7, 8, 13, 14]].tolist() == [1.2] * 4 and w[[9, 10, 15, 16]].tolist() == [1.5] * 4


def test_other_datasets_values():
    np.testing.assert_allclose(MPII.sigmas_array[:6], [.089, .083, .107, .107, .083, .089])
    assert MPII.flip_pairs == [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]
    np.testing.assert_allclose(CROWDPOSE.sigmas_array[12:], [.079, .079])
    np.testing.assert_allclose(CROWDPOSE.sigmas_array[:12], COCO.sigmas_array[5:])
    assert CROWDPOSE.eval_iou_type == "keypoints_crowd" and not CROWDPOSE.eval_use_area
    assert H36M.sigmas is None and H36M.sigmas_array is None
    assert H36M.flip_pairs == [(1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)]
    assert len(H36M.skeleton) == 16 and (0, 4) in H36M.skeleton
    assert H36M.bbox_center == (528.0, 427.0) and H36M.bbox_scale == 400.0


def test_wholebody():
    m = COCO_WHOLEBODY
    assert len(m.skeleton) == 65
    assert len(m.flip_pairs) == 61
    assert m.parts == {"body": slice(0, 17), "foot": slice(17, 23), "face": slice(23, 91),
                       "left_hand": slice(91, 112), "right_hand": slice(112, 133)}
    sig = m.sigmas_array
    np.testing.assert_array_equal(sig[:17], COCO.sigmas_array)
    np.testing.assert_allclose(sig[17:23], [.068, .066, .066, .092, .094, .094])
    face = sig[m.parts["face"]]
    assert face.min() == pytest.approx(0.007) and face.max() == pytest.approx(0.045)
    np.testing.assert_array_equal(sig[m.parts["left_hand"]], sig[m.parts["right_hand"]])
    np.testing.assert_allclose(sig[91:97], [.029, .022, .035, .037, .047, .026])
    fi = m.flip_indices
    assert fi[91] == 112 and fi[23] == 39 and fi[23 + 8] == 23 + 8  # hand roots, jaw ends, chin
    # half-body sets: MMPose 1.x's lists (upper = body 0-10); the HRNet-era order GTPT trains with puts the face
    # and hands in the upper half (specs/gtpt.md: "upper = body 0-10 + face + hands, lower = hips/legs + feet")
    assert m.upper_body_ids == list(range(11)) and m.lower_body_ids == list(range(11, 23))
    upper, lower = half_body_part_ids(m, "hrnet")
    assert upper.tolist() == list(range(11)) + list(range(23, 133)) and lower.tolist() == list(range(11, 23))
    upper, lower = half_body_part_ids(m, "mmpose")
    assert upper.tolist() == list(range(11)) and lower.tolist() == list(range(11, 23))
    assert get_protocol("gtpt").aug.order == "hrnet"


def test_colors_and_frozen():
    assert len(COCO.keypoint_colors) == 17 and len(COCO.link_colors) == 19
    with pytest.raises(dataclasses.FrozenInstanceError):
        COCO.name = "x"
    assert hash(COCO) == hash(COCO)
    assert COCO.flip_indices is not COCO.flip_indices  # callers get fresh lists


def test_lookup_typo_suggests():
    assert set(available_metainfo()) == {"coco", "coco_wholebody", "mpii", "crowdpose", "h36m"}
    assert get_metainfo("COCO") is COCO and get_metainfo(COCO) is COCO
    with pytest.raises(ValueError, match="coco_wholebody"):
        get_metainfo("coco_wholbody")


def test_validation_errors():
    base = dict(name="t", keypoint_names=("a", "left_x", "right_x"),
                flip_partners=("", "right_x", "left_x"), skeleton_links=(("a", "left_x"),),
                sigmas=(0.1, 0.1, 0.1))
    PoseMetaInfo(**base)
    with pytest.raises(ValueError, match="unknown keypoint 'lft_x'.*left_x"):
        PoseMetaInfo(**{**base, "skeleton_links": (("a", "lft_x"),)})
    with pytest.raises(ValueError, match="not symmetric"):
        PoseMetaInfo(**{**base, "flip_partners": ("", "right_x", "")})
    with pytest.raises(ValueError, match="expected 3 sigmas"):
        PoseMetaInfo(**{**base, "sigmas": (0.1, 0.1)})
    with pytest.raises(ValueError, match="duplicate"):
        PoseMetaInfo(**{**base, "keypoint_names": ("a", "a", "right_x")})


def test_from_coco_categories():
    cat = {"name": "person", "keypoints": list(COCO.keypoint_names),
           "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton]}
    m = from_coco_categories(cat)
    assert m.flip_indices == COCO.flip_indices and m.skeleton == COCO.skeleton
    assert m.sigmas == COCO.sigmas  # borrowed from the matching built-in layout
    custom = from_coco_categories({"name": "hand3", "keypoints": ["l_tip", "root", "r_tip"],
                                   "skeleton": [[1, 2], [2, 3]]}, sigmas=[0.1, 0.2, 0.1])
    assert custom.flip_indices == [2, 1, 0] and custom.skeleton == [(0, 1), (1, 2)]
    # CrowdPose json ships the COCO-17 skeleton: out of range -> clear error
    with pytest.raises(ValueError, match="out of range"):
        from_coco_categories({"keypoints": list(CROWDPOSE.keypoint_names),
                              "skeleton": [[16, 14], [17, 15]]})


_HAND = {"name": "hand5", "keypoints": ["wrist", "left_tip", "right_tip", "mid", "top"],
         "sigmas": [0.05, 0.02, 0.02, 0.04, 0.03], "skeleton": [[1, 2], [1, 3], [1, 4], [4, 5]]}


def test_a_skeleton_file_gives_the_layout_of_ones_own_dataset(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A COCO ``categories`` entry with ``sigmas``, written by hand: 1-based links become 0-based, left/right
    partners are found in the names (or given), and the layout survives a checkpoint's ``to_dict``."""
    path = tmp_path / "hand5.json"
    path.write_text(json.dumps(_HAND))
    monkeypatch.chdir(tmp_path)
    m = get_metainfo("hand5.json")  # relative to the current folder, as a recipe's path
    assert m.name == "hand5" and m.keypoint_names == tuple(_HAND["keypoints"])
    assert m.skeleton == [(0, 1), (0, 2), (0, 3), (3, 4)]
    assert m.flip_indices == [0, 2, 1, 3, 4]  # left_tip <-> right_tip
    assert m.sigmas == (0.05, 0.02, 0.02, 0.04, 0.03)
    assert m.upper_body_ids == [] and m.lower_body_ids == [] and m.joint_weights == (1.0,) * 5
    given = {**_HAND, "name": "hand5b", "flip_pairs": [["mid", "top"]], "upper_body": ["wrist", "mid"],
             "lower_body": ["top"]}
    (tmp_path / "b.json").write_text(json.dumps(given))
    b = get_metainfo(str(tmp_path / "b.json"))
    assert b.flip_indices == [0, 1, 2, 4, 3]  # as given: no partner found from the names
    assert b.upper_body_ids == [0, 3] and b.lower_body_ids == [4]
    for layout in (m, b, COCO, CROWDPOSE, get_metainfo("mpii"), get_metainfo("coco_wholebody")):
        back = PoseMetaInfo.from_dict(json.loads(json.dumps(layout.to_dict())))
        assert (back.keypoint_names, back.flip_indices, back.skeleton, back.sigmas, back.joint_weights,
                back.upper_body_ids, back.lower_body_ids, back.parts, back.eval_iou_type, back.eval_use_area) == (
                layout.keypoint_names, layout.flip_indices, layout.skeleton, layout.sigmas, layout.joint_weights,
                layout.upper_body_ids, layout.lower_body_ids, layout.parts, layout.eval_iou_type,
                layout.eval_use_area)


@pytest.mark.parametrize(("change", "said"), [
    ({"sigmas": None}, r"missing field 'sigmas': 5 OKS sigmas"),
    ({"sigmas": [0.05] * 4}, r"field 'sigmas' must be 5 finite numbers > 0 \(one per keypoint\), got \[0.05"),
    ({"sigmas": [0.05, 0.0, 0.02, 0.04, 0.03]}, r"field 'sigmas' must be 5 finite numbers > 0"),
    ({"keypoints": "wrist"}, r"field 'keypoints' must be a list of keypoint names"),
    ({"skeleton": [[0, 1]]}, r"field 'skeleton' must be a list of \[i, j\] links, 1-based keypoint indices from 1 "
                             r"to 5"),
    ({"flip_pairs": [["left_tip", "thumb"]]}, r"field 'flip_pairs' names 'thumb', which is not one of its 'keypoints'"),
    ({"name": "coco"}, r"field 'name' is 'coco', a built-in layout's name"),
    ({"sigma": [0.1] * 5}, r"unknown field 'sigma'; expected some of name, keypoints, sigmas"),
    ({"keypoints": ["wrist", "wrist", "right_tip", "mid", "top"]}, r"hand5: duplicate keypoint names \['wrist'\]"),
    ({"joint_weights": [1, 1, 2, 1, 1]}, r"unknown field 'joint_weights'; expected some of"),  # no loss reads them
    ({"upper_body": "wrist"}, r"field 'upper_body' must be a list of keypoint names \(strings\), got 'wrist'$"),
    ({"annotations": [], "images": []}, r"this is an annotation json; a skeleton file is one of its 'categories'"),
])
def test_a_bad_skeleton_file_is_one_line_naming_the_file_and_the_field(change: dict, said: str,
                                                                      tmp_path: Path) -> None:
    bad = {k: v for k, v in {**_HAND, **change}.items() if v is not None}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=re.escape(str(path.resolve())) + ": " + said) as err:
        get_metainfo(str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"skeleton file /\S+missing.json does not exist"):
        get_metainfo(str(tmp_path / "missing.json"))
    stem = tmp_path / "mpii.json"  # no 'name': the stem, a built-in name
    stem.write_text(json.dumps({k: v for k, v in _HAND.items() if k != "name"}))
    with pytest.raises(ValueError, match=r"mpii.json: its name \(the file's stem; no 'name' field\) is 'mpii'"):
        get_metainfo(str(stem))
