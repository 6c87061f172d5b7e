"""Human3.6M lifting data: cameras on the real sample, loaders, windows, flips and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posetokens.data.h36m import (
    H36M32_TO_17,
    Camera,
    H36MClip,
    H36MLiftingDataset,
    action_class,
    flip_keypoints,
    image_coordinates,
    load_cameras,
    load_mmpose_h36m,
    load_videopose3d,
    matrix_to_quaternion,
    normalize_screen_coordinates,
    quaternion_to_matrix,
    save_videopose3d_cameras,
    seq2frame_indices,
    seq2seq_indices,
    seq2seq_starts,
    split_clips,
)
from posetokens.data.metainfo import H36M
from posetokens.runtime import UserKeyError

SYMMETRY = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]


def _camera_of(cams: dict, imgname: str) -> Camera:
    subject, folder = imgname.split("/")[:2]
    cam_id = folder.split(".")[1]
    return next(c for c in cams[subject] if c.id == cam_id)


# ----------------------------------------------------------------------------- real sample
def test_real_projection_matches_stored_2d(shared_data: Path) -> None:
    h36m = shared_data / "h36m"
    cams = load_cameras(h36m / "cameras.pkl")
    z = np.load(h36m / "test_h36m_body3d.npz")
    coco = json.loads((h36m / "h36m_coco.json").read_text())
    world_by_file = {
        im["file_name"]: np.array(a["keypoints_3d"]).reshape(17, 4)[:, :3]
        for im in coco["images"] for a in coco["annotations"] if a["image_id"] == im["id"]
    }
    for name, S, part in zip(z["imgname"], z["S"], z["part"]):
        cam = _camera_of(cams, str(name))
        xyz, uv = S[:, :3], part[:, :2]
        # The stored 2D was made with the VideoPose3D/H36M distortion polynomial; the residual (~3e-5
        # px) is the rounding of the stored values, so 1e-3 px leaves a wide margin.
        assert np.abs(cam.project(xyz) - uv).max() < 1e-3
        # Plain pinhole ignores distortion: the shift is ~ f * r * |k1| * r^2 with f ~ 1145 px, the
        # joints within r = |xy| <= 0.26 (r^2 <= 0.07) and k1 ~ -0.2, i.e. <= ~4 px (data README:
        # "within ~2.4 px" on average; we measure at most 3.4 px, at most 1.25 px averaged per frame).
        err = np.linalg.norm(cam.project(xyz, distort=False) - uv, axis=-1)
        assert err.max() < 4.0 and err.mean() < 1.5
        # camera -> world reproduces the json's world joints (stored at float precision)
        world = cam.camera_to_world(xyz)
        np.testing.assert_allclose(world, world_by_file[str(name).split("/")[-1]], atol=1e-6)
        np.testing.assert_allclose(cam.world_to_camera(world), xyz, atol=1e-9)
        assert np.abs(cam.project_world(world) - uv).max() < 1e-3


def test_cameras_pkl_matches_videopose3d_convention(shared_data: Path) -> None:
    cams = load_cameras(shared_data / "h36m" / "cameras.pkl")
    assert len(cams) == 11 and all(len(c) == 4 for c in cams.values())
    cam = cams["S1"][0]
    assert (cam.id, cam.name, cam.w, cam.h) == ("54138969", "camera1", 1000, 1002)
    # VideoPose3D's hard-coded S1 / camera 54138969 extrinsics (float32 values): the quaternion is our
    # camera->world R, the translation our centre T in millimetres.
    vp3d_q = [0.1407056450843811, -0.1500701755285263, -0.755240797996521, 0.6223280429840088]
    np.testing.assert_allclose(cam.quaternion, vp3d_q, atol=1e-6)
    np.testing.assert_allclose(cam.T * 1000, [1841.1070556640625, 4955.28466796875, 1563.4454345703125], atol=1e-3)
    # VideoPose3D stores the tangential coefficients reversed
    intr, _ = cam.to_videopose3d()
    np.testing.assert_allclose(intr["tangential_distortion"], [-0.0009756988729350269, -0.00142447161488235], atol=1e-9)


def test_videopose3d_camera_json_round_trip(shared_data: Path, tmp_path: Path) -> None:
    cams = load_cameras(shared_data / "h36m" / "cameras.pkl")
    path = save_videopose3d_cameras(tmp_path / "cams.json", cams)
    back = load_cameras(path)
    assert sorted(back) == sorted(cams)
    for s in cams:
        for a, b in zip(cams[s], back[s]):
            for f in ("R", "T", "f", "c", "k", "p"):
                np.testing.assert_allclose(getattr(b, f), getattr(a, f), atol=1e-12)
            assert (a.id, a.w, a.h) == (b.id, b.w, b.h)


def test_quaternion_round_trip_including_half_turns() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    q[:4] = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1e-9, 0.6, 0.8, 0]]  # w ~ 0: 180-degree turns
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.sign(q[:, :1] + 1e-30)
    R = quaternion_to_matrix(q)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.einsum("ni,ni->n", matrix_to_quaternion(R), q)), 1.0, atol=1e-9)


def test_load_mmpose_layout(shared_data: Path) -> None:
    h36m = shared_data / "h36m"
    clips = load_mmpose_h36m(h36m / "test_h36m_body3d.npz")
    got = sorted((c.subject, c.action, c.camera, c.width, c.height, c.length) for c in clips)
    assert got == [
        ("S1", "Directions 1", 0, 1000, 1002, 1),
        ("S5", "SittingDown", 0, 1000, 1002, 1),
        ("S7", "Greeting", 1, 1000, 1000, 1),
        ("S8", "WalkDog 1", 1, 1000, 1000, 1),
    ]
    det = load_mmpose_h36m(h36m / "test_h36m_body3d.npz", keypoints_2d=h36m / "test_h36m_2d_detection.npy")
    gap = [np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=-1).mean() for a, b in zip(clips, det)]
    assert 0 < min(gap) and max(gap) < 10  # README: detections are 2.0-7.9 px off on average
    assert [c.subject for c in load_mmpose_h36m(h36m / "test_h36m_body3d.npz", subjects=["S7", "S8"])] == ["S7", "S8"]
    ds = H36MLiftingDataset(clips, frames=3, mode="seq2frame")
    assert len(ds) == 4 and ds[0]["input_2d"].shape == (3, 17, 2)


# ----------------------------------------------------------------------------- windows
def test_seq2seq_windows_hand_made() -> None:
    np.testing.assert_array_equal(seq2seq_indices(5, 3), [[0, 1, 2], [3, 4, 4]])
    np.testing.assert_array_equal(seq2seq_indices(7, 3), [[0, 0, 1], [2, 3, 4], [5, 6, 6]])
    np.testing.assert_array_equal(seq2seq_indices(2, 5), [[0, 0, 1, 1, 1]])  # window longer than clip
    np.testing.assert_array_equal(seq2seq_indices(6, 3), [[0, 1, 2], [3, 4, 5]])
    for length in (1, 5, 242, 243, 244, 486, 1000):
        assert len(seq2seq_starts(length, 243)) == int(np.ceil((length - 243) / 243 + 1))
    rng = np.random.default_rng(0)
    for _ in range(50):  # every frame is scored exactly once outside the padding
        length, f = int(rng.integers(1, 300)), int(rng.integers(1, 50))
        raw = seq2seq_starts(length, f)[:, None] + np.arange(f)
        inside = raw[(raw >= 0) & (raw < length)]
        np.testing.assert_array_equal(np.sort(inside), np.arange(length))
        assert abs(-raw.min() - (raw.max() - length + 1)) <= 1  # centred: pads differ by <= 1
    with pytest.raises(ValueError, match=">= 1"):
        seq2seq_indices(0, 3)


def test_seq2seq_windows_with_a_stride() -> None:
    """HoT's generator_stride: n = ceil((L - F)/stride + 1), start_k = k*stride - ((n-1)*stride + F - L)//2."""
    np.testing.assert_array_equal(seq2seq_starts(10, 4, 2), [0, 2, 4, 6])
    np.testing.assert_array_equal(seq2seq_starts(11, 4, 3), [-1, 2, 5, 8])
    np.testing.assert_array_equal(seq2seq_indices(11, 4, 2)[-1], [8, 9, 10, 10])
    np.testing.assert_array_equal(seq2seq_starts(251, 243, 243), [-117, 126])  # the HoT fixture's first sequence
    for length in (1, 100, 243, 500):  # stride F is the default
        np.testing.assert_array_equal(seq2seq_starts(length, 243, 243), seq2seq_starts(length, 243))
    with pytest.raises(ValueError, match="stride"):
        seq2seq_starts(10, 4, 0)


def test_split_clips_hand_made() -> None:
    """MotionBERT's split_clips: clips from each video's start, trailing remainder dropped; a short video in
    the middle is resampled, the last one is not; a video id that already gave a clip gets no resampled one."""
    src = ["a"] * 7 + ["b"] * 3 + ["c"] * 5 + ["d"] * 2
    np.testing.assert_array_equal(split_clips(src, 3, 3), [[0, 1, 2], [3, 4, 5], [7, 8, 9], [10, 11, 12]])
    np.testing.assert_array_equal(split_clips(src, 3, 2), [[0, 1, 2], [2, 3, 4], [4, 5, 6], [7, 8, 9],
                                                           [10, 11, 12], [12, 13, 14]])
    np.testing.assert_array_equal(split_clips(["a"] * 7, 3, 3, tail="end"), [[0, 1, 2], [3, 4, 5], [4, 5, 6]])
    # a 2-frame video before another: resampled to linspace(0, 2, 3, endpoint=False) = [0, 0.67, 1.33] -> [0, 0, 1]
    np.testing.assert_array_equal(split_clips(["a"] * 2 + ["b"] * 3, 3, 3), [[0, 0, 1], [2, 3, 4]])
    np.testing.assert_array_equal(split_clips(["a"] * 4 + ["b"] + ["a"] * 2 + ["c"] * 3, 3, 3),
                                  [[0, 1, 2], [4, 4, 4], [7, 8, 9]])
    jitter = split_clips(["a"] * 5 + ["b"] * 9, 9, 9, rng=np.random.default_rng(0))
    assert jitter.shape == (2, 9) and np.all(np.diff(jitter[0]) >= 0) and jitter[0].max() <= 4
    assert np.all(np.abs(jitter[0] - np.linspace(0, 5, 9, endpoint=False)) < 1)
    assert split_clips([], 3, 3).shape == (0, 3)
    with pytest.raises(ValueError, match="tail"):
        split_clips(src, 3, 3, tail="pad")


def test_dataset_clips_mode() -> None:
    clips = [_clip(7), _clip(5, action="Eating 2", seed=1)]
    ds = H36MLiftingDataset(clips, frames=3, mode="clips")
    assert len(ds) == 3
    got = [(ds[i]["clip"], ds[i]["frame_indices"].tolist()) for i in range(3)]
    assert got == [(0, [0, 1, 2]), (0, [3, 4, 5]), (1, [0, 1, 2])]
    np.testing.assert_allclose(ds[1]["target_3d"][0, 1], clips[0].keypoints_3d[3, 1] - clips[0].keypoints_3d[3, 0],
                               atol=1e-6)
    assert len(H36MLiftingDataset(clips, frames=3, mode="clips", stride=1)) == 5 + 3


def test_seq2frame_windows_hand_made() -> None:
    np.testing.assert_array_equal(seq2frame_indices(4, 3), [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]])
    idx = seq2frame_indices(10, 7)
    np.testing.assert_array_equal(idx[:, 3], np.arange(10))
    np.testing.assert_array_equal(seq2frame_indices(1, 5), [[0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="odd"):
        seq2frame_indices(10, 4)


# ----------------------------------------------------------------------------- dataset
def _clip(length: int, subject: str = "S9", action: str = "Walking 1", seed: int = 0, **kw) -> H36MClip:
    rng = np.random.default_rng(seed)
    k3 = rng.normal(size=(length, 17, 3)) * 0.3 + np.array([0.0, 0.0, 5.0])
    k2 = rng.uniform(0, 1000, size=(length, 17, 2))
    return H36MClip(subject=subject, action=action, camera=kw.pop("camera", 2), keypoints_2d=k2,
                    keypoints_3d=k3, width=1000, height=1002, **kw)


def test_dataset_seq2seq_items_and_flip() -> None:
    clips = [_clip(5), _clip(7, action="Eating 2", seed=1), _clip(4, subject="S1", seed=2)]
    ds = H36MLiftingDataset(clips, frames=3, mode="seq2seq", subjects="test")
    assert ds.num_windows == 2 + 3 and len(ds) == 5
    item = ds[1]
    assert item["input_2d"].shape == (3, 17, 2) and item["input_2d"].dtype == torch.float32
    assert item["target_3d"].shape == (3, 17, 3) and item["target_3d"].dtype == torch.float32
    assert (item["action"], item["subject"], item["camera"], item["flipped"]) == ("Walking", "S9", 2, False)
    np.testing.assert_array_equal(item["frame_indices"], [3, 4, 4])
    assert torch.all(item["target_3d"][:, 0] == 0)  # root-relative, root at 0
    np.testing.assert_allclose(item["target_3d"][0], clips[0].keypoints_3d[3] - clips[0].keypoints_3d[3, :1], atol=1e-6)
    expect_2d = clips[0].keypoints_2d[3] / 1000 * 2 - [1.0, 1.002]
    np.testing.assert_allclose(item["input_2d"][0], expect_2d, atol=1e-6)
    assert torch.equal(item["input_2d"][1], item["input_2d"][2])  # edge padding

    aug = H36MLiftingDataset(clips, frames=3, flip_augment=True, subjects=["S9"])
    assert len(aug) == 2 * aug.num_windows
    plain, flipped = aug[1], aug[1 + aug.num_windows]
    assert flipped["flipped"]
    for key in ("input_2d", "target_3d"):
        x, y = plain[key], flipped[key]
        assert torch.allclose(y[:, 4, 0], -x[:, 1, 0]) and torch.allclose(y[:, 4, 1:], x[:, 1, 1:])  # l_hip <- r_hip
        assert torch.allclose(y[:, 7, 0], -x[:, 7, 0])  # centre joint: x negated only
        assert torch.equal(flip_keypoints(y), x)  # flip twice = identity
    again = aug[1 + aug.num_windows]
    assert all(torch.equal(again[k], flipped[k]) for k in ("input_2d", "target_3d"))  # deterministic
    # the copies are windows num_windows.. exactly: the last plain window is plain, the first copy flipped
    assert [aug[i]["flipped"] for i in range(len(aug))] == [False] * aug.num_windows + [True] * aug.num_windows


def test_camera_resolutions_are_videopose3ds() -> None:
    """VideoPose3D's ``h36m_cameras_intrinsic_params``: cameras 54138969 and 60457274 are 1000 x 1002, the other
    two 1000 x 1000 (the 2D normalisation divides by them)."""
    from posetokens.data.h36m import H36M_CAMERA_RESOLUTION

    assert H36M_CAMERA_RESOLUTION == {"54138969": (1000, 1002), "55011271": (1000, 1000),
                                      "58860488": (1000, 1000), "60457274": (1000, 1002)}


def test_a_recipe_can_turn_the_lifting_flip_test_off() -> None:
    from posetokens.engine.config import DataCfg
    from posetokens.engine.lifting import lifting_protocol
    from posetokens.protocols import get_protocol

    assert lifting_protocol(get_protocol("hot"), DataCfg())[1] is True
    assert lifting_protocol(get_protocol("hot"), DataCfg(flip_test=False))[1] is False


def test_dataset_seq2frame_centre_and_padding() -> None:
    clip = _clip(4)
    ds = H36MLiftingDataset([clip], frames=5, mode="seq2frame")
    assert len(ds) == 4
    for t in range(4):
        item = ds[t]
        assert item["centre"] == 2
        np.testing.assert_array_equal(item["frame_indices"], np.clip(np.arange(t - 2, t + 3), 0, 3))
        expect = normalize_screen_coordinates(clip.keypoints_2d[t], 1000, 1002)
        np.testing.assert_allclose(item["input_2d"][2], expect, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        H36MLiftingDataset([clip], frames=4, mode="seq2frame")


def test_flip_twice_identity_and_normalisation_inverse() -> None:
    x = np.random.default_rng(0).normal(size=(2, 6, 17, 3))
    np.testing.assert_array_equal(flip_keypoints(flip_keypoints(x)), x)
    t = torch.tensor(x)
    assert torch.equal(flip_keypoints(flip_keypoints(t)), t)
    assert H36M.flip_indices[1] == 4 and H36M.flip_indices[14] == 11
    uv = np.random.default_rng(1).uniform(0, 1000, (5, 17, 2))
    np.testing.assert_allclose(image_coordinates(normalize_screen_coordinates(uv, 1000, 1002), 1000, 1002), uv)
    np.testing.assert_allclose(normalize_screen_coordinates([500.0, 501.0], 1000, 1002), [0.0, 0.0])
    assert action_class("Walking 1") == "Walking" and action_class("TakingPhoto 1") == "Photo"


# ----------------------------------------------------------------------------- errors
def test_clip_errors_wrong_joints_and_nan() -> None:
    with pytest.raises(ValueError, match=r"17"):
        H36MClip("S1", "Walking", 0, np.zeros((4, 16, 2)), np.zeros((4, 16, 3)), 1000, 1000, source="x.npz")
    bad = np.zeros((4, 17, 3))
    bad[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"x\.npz.*'S1'.*'Walking'.*frame 2"):
        H36MClip("S1", "Walking", 0, np.zeros((4, 17, 2)), bad, 1000, 1000, source="x.npz")


def _write_vp3d(tmp: Path, world: dict, pos2d: dict, metadata: dict | None = None) -> tuple[Path, Path]:
    p3, p2 = tmp / "data_3d_h36m.npz", tmp / "data_2d_h36m_gt.npz"
    np.savez(p3, positions_3d=np.array(world, dtype=object))
    extra = {} if metadata is None else {"metadata": np.array(metadata, dtype=object)}
    np.savez(p2, positions_2d=np.array(pos2d, dtype=object), **extra)
    return p3, p2


@pytest.fixture
def vp3d_files(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, dict]:
    cams = load_cameras(shared_data / "h36m" / "cameras.pkl")
    rng = np.random.default_rng(0)
    world32 = rng.normal(size=(6, 32, 3)) * 0.3 + np.array([0, 0, 1.0])
    w17 = world32[:, H36M32_TO_17]
    pos2d = [np.concatenate([c.project_world(w17), np.zeros((2, 17, 2))]).astype(np.float32) for c in cams["S1"]]
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking 1": world32}},
                         {"S1": {"Walking 1": pos2d}}, {"keypoints_symmetry": SYMMETRY, "num_joints": 17})
    return p3, p2, cams


def test_videopose3d_loader(vp3d_files: tuple[Path, Path, dict]) -> None:
    p3, p2, cams = vp3d_files
    clips = load_videopose3d(p3, p2, cams)
    assert [(c.subject, c.action, c.camera, c.length) for c in clips] == [("S1", "Walking 1", i, 6) for i in range(4)]
    world = np.load(p3, allow_pickle=True)["positions_3d"].item()["S1"]["Walking 1"][:, H36M32_TO_17]
    for c in clips:  # 32 -> 17 joints, world -> camera, 2D cut to the 3D length
        cam = cams["S1"][c.camera]
        np.testing.assert_allclose(c.keypoints_3d, cam.world_to_camera(world), atol=1e-5)
        assert np.abs(cam.project(c.keypoints_3d) - c.keypoints_2d).max() < 1e-2
    assert load_videopose3d(p3, p2, cams, subjects="train")[0].subject == "S1"


def test_videopose3d_missing_keys_name_file_and_key(vp3d_files: tuple[Path, Path, dict], tmp_path: Path) -> None:
    p3, p2, cams = vp3d_files
    np.savez(tmp_path / "empty.npz", other=np.zeros(1))
    with pytest.raises(UserKeyError, match=r"empty\.npz.*'positions_3d'"):
        load_videopose3d(tmp_path / "empty.npz", p2, cams)
    with pytest.raises(UserKeyError, match=r"empty\.npz.*'positions_2d'"):
        load_videopose3d(p3, tmp_path / "empty.npz", cams)
    sub = tmp_path / "nometa"
    sub.mkdir()
    world = {"S1": {"Walking 1": np.zeros((3, 17, 3))}}
    a3, a2 = _write_vp3d(sub, world, {"S1": {"Walking 1": [np.zeros((3, 17, 2))] * 4}})
    with pytest.raises(UserKeyError, match=r"data_2d_h36m_gt\.npz.*'metadata'"):
        load_videopose3d(a3, a2, cams)
    meta = {"keypoints_symmetry": SYMMETRY}
    a3, a2 = _write_vp3d(sub, world, {"S1": {"Eating": [np.zeros((3, 17, 2))] * 4}}, meta)
    with pytest.raises(UserKeyError, match=r"data_2d_h36m_gt\.npz.*positions_2d\['S1'\]\['Walking 1'\]"):
        load_videopose3d(a3, a2, cams)
    with pytest.raises(UserKeyError, match=r"data_3d_h36m\.npz.*positions_3d\['S9'\]"):
        load_videopose3d(a3, a2, cams, subjects=["S9"])
    with pytest.raises(UserKeyError, match=r"'keypoints_symmetry'"):
        load_videopose3d(*_write_vp3d(sub, world, {"S1": {"Walking 1": [np.zeros((3, 17, 2))] * 4}}, {"x": 1}), cams)


def test_videopose3d_bad_shapes_and_nan(shared_data: Path, tmp_path: Path) -> None:
    cams = load_cameras(shared_data / "h36m" / "cameras.pkl")
    meta = {"keypoints_symmetry": SYMMETRY}
    ok2d = [np.zeros((5, 17, 2))] * 4
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking": np.zeros((5, 20, 3))}}, {"S1": {"Walking": ok2d}}, meta)
    with pytest.raises(ValueError, match=r"data_3d_h36m\.npz.*'S1'.*'Walking'.*\(5, 20, 3\)"):
        load_videopose3d(p3, p2, cams)
    world = np.ones((5, 17, 3))
    world[3, 2, 0] = np.nan
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking": world}}, {"S1": {"Walking": ok2d}}, meta)
    with pytest.raises(ValueError, match=r"data_3d_h36m\.npz.*NaN.*'S1'.*'Walking'.*frame 3"):
        load_videopose3d(p3, p2, cams)
    nan2d = [np.zeros((5, 17, 2)) for _ in range(4)]
    nan2d[1][4] = np.nan
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking": np.ones((5, 17, 3))}}, {"S1": {"Walking": nan2d}}, meta)
    with pytest.raises(ValueError, match=r"data_2d_h36m_gt\.npz.*NaN.*'S1'.*'Walking'.*camera 1.*frame 4"):
        load_videopose3d(p3, p2, cams)
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking": np.ones((5, 17, 3))}},
                         {"S1": {"Walking": [np.zeros((4, 17, 2))] * 4}}, meta)
    with pytest.raises(ValueError, match="fewer than the 5 3D frames"):
        load_videopose3d(p3, p2, cams)
    p3, p2 = _write_vp3d(tmp_path, {"S1": {"Walking": np.ones((5, 17, 3))}},
                         {"S1": {"Walking": [np.zeros((5, 16, 2))] * 4}}, meta)
    with pytest.raises(ValueError, match=r"\(5, 16, 2\)"):
        load_videopose3d(p3, p2, cams)


def test_mmpose_rows_in_any_order_make_clips_in_frame_order(tmp_path: Path) -> None:
    """MMPose's npz rows need not be sorted: each (subject, action, camera) clip takes its rows in frame-number
    order. Two clips of four frames each, rows shuffled, every value of a row its frame number."""
    frames = [9, 100, 2, 10]
    names = [f"S1/S1_{a}.54138969/S1_{a}.54138969_{f:06d}.jpg" for a in ("Directions_1", "Greeting") for f in frames]
    rows = np.random.default_rng(0).permutation(len(names))
    f = np.array([int(names[i][-10:-4]) for i in rows], dtype=np.float64)
    np.savez(tmp_path / "shuffled.npz", imgname=np.array(names)[rows],
             S=np.broadcast_to(f[:, None, None], (8, 17, 4)).copy(),
             part=np.broadcast_to(f[:, None, None], (8, 17, 3)).copy())
    clips = load_mmpose_h36m(tmp_path / "shuffled.npz")
    assert [c.action for c in clips] == ["Directions 1", "Greeting"]
    for c in clips:
        np.testing.assert_array_equal(c.frames, [2, 9, 10, 100])
        np.testing.assert_array_equal(c.keypoints_3d[:, 5, 1], [2, 9, 10, 100])
        np.testing.assert_array_equal(c.keypoints_2d[:, 5, 0], [2, 9, 10, 100])


def test_mmpose_missing_key_and_nan(shared_data: Path, tmp_path: Path) -> None:
    z = dict(np.load(shared_data / "h36m" / "test_h36m_body3d.npz"))
    np.savez(tmp_path / "noS.npz", **{k: v for k, v in z.items() if k != "S"})
    with pytest.raises(UserKeyError, match=r"noS\.npz.*'S'"):
        load_mmpose_h36m(tmp_path / "noS.npz")
    z["S"] = z["S"].copy()
    z["S"][2, 3, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **z)
    with pytest.raises(ValueError, match=r"nan\.npz.*NaN.*'S7'.*'Greeting'.*frame 0 \(original frame 396\)"):
        load_mmpose_h36m(tmp_path / "nan.npz")


def test_random_flip_mode_is_motionberts_and_reproducible() -> None:
    """MotionBERT flips each training clip with p 0.5 (spec pipeline.md section 7); the draw is a function of
    (seed, epoch, index), so a resumed run sees the same flips; HoT's copies keep every window twice."""
    clips = [_clip(400, seed=s) for s in range(3)]
    ds = H36MLiftingDataset(clips, frames=9, mode="clips", flip_augment=True, flip_mode="random", seed=5)
    assert len(ds) == ds.num_windows  # no copies
    flips = np.array([ds[i]["flipped"] for i in range(len(ds))])
    assert 0.35 < flips.mean() < 0.65  # 132 clips, p 0.5
    again = H36MLiftingDataset(clips, frames=9, mode="clips", flip_augment=True, flip_mode="random", seed=5)
    assert [again[i]["flipped"] for i in range(len(ds))] == flips.tolist()
    ds.set_epoch(1)
    assert [ds[i]["flipped"] for i in range(len(ds))] != flips.tolist()
    i = int(np.argmax(flips))
    ds.set_epoch(0)
    plain = H36MLiftingDataset(clips, frames=9, mode="clips")[i]
    swap = [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]  # H36M left/right pairs
    np.testing.assert_allclose(ds[i]["input_2d"][:, :, 0], -plain["input_2d"][:, swap, 0])
    np.testing.assert_allclose(ds[i]["input_2d"][:, :, 1], plain["input_2d"][:, swap, 1])
    copies = H36MLiftingDataset(clips, frames=9, mode="clips", flip_augment=True)
    assert len(copies) == 2 * copies.num_windows


def test_motionbert_protocol_trains_on_clips_at_stride_81() -> None:
    from posetokens.protocols import get_protocol

    mb, hot = get_protocol("motionbert").lift, get_protocol("hot").lift
    assert (mb.train_windows, mb.train_stride, mb.train_flip) == ("clips", 81, "random")  # spec section 7
    assert (hot.train_windows, hot.train_flip) == ("seq2seq", "copies")  # spec section 6


def test_a_file_without_the_splits_subjects_names_them_and_the_field(shared_data: Path) -> None:
    """The shared sample holds S1, S5, S7 and S8: `test` on it (S9, S11) said "no clips left for subjects=None"."""
    from posetokens.engine.config import DataCfg
    from posetokens.engine.lifting import load_clips

    h36m = shared_data / "h36m"
    cfg = DataCfg(format="h36m_mmpose", keypoints_3d=str(h36m / "test_h36m_body3d.npz"),
                  cameras=str(h36m / "cameras.pkl"))
    with pytest.raises(ValueError, match=r"test_h36m_body3d\.npz: no clips of the test subjects \['S11', 'S9'\] "
                                         r"\(it holds \['S1', 'S5', 'S7', 'S8'\]\); set data\.test_subjects to some "
                                         r"of them$"):
        load_clips(cfg, "test")
    cfg.test_subjects = ["S5", "S8"]
    assert sorted({c.subject for c in load_clips(cfg, "test")}) == ["S5", "S8"]
