"""Synthetic H36M-skeleton motion: determinism, rigid bones, limits, and the real loaders reading it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from posetokens.data.h36m import H36M32_TO_17, H36MLiftingDataset, load_cameras, load_videopose3d
from posetokens.data.synthetic_motion import (
    ACTIONS,
    JOINT_LIMITS,
    bone_lengths,
    generate_dataset,
    generate_subject,
    main,
)

SUBJECTS = ["S1", "S9"]
FRAMES = 80


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_dataset(tmp_path_factory.mktemp("synth"), SUBJECTS, seed=3, frames=FRAMES, sequences_per_action=1)


def _positions_3d(path: Path) -> dict:
    return np.load(path, allow_pickle=True)["positions_3d"].item()


def test_deterministic_by_seed_and_subject_independent(synth: dict[str, Path], tmp_path: Path) -> None:
    a = generate_subject("S5", seed=1, frames=40, sequences_per_action=1)[1]
    b = generate_subject("S5", seed=1, frames=40, sequences_per_action=1)[1]
    c = generate_subject("S5", seed=2, frames=40, sequences_per_action=1)[1]
    assert list(a) == [f"{x} 1" for x in ACTIONS]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.allclose(a["Walking 1"][: len(c["Walking 1"])][:10], c["Walking 1"][:10])
    only_s1 = generate_dataset(tmp_path, ["S1"], seed=3, frames=FRAMES, sequences_per_action=1)
    full, alone = _positions_3d(synth["3d"])["S1"], _positions_3d(only_s1["3d"])["S1"]
    assert all(np.array_equal(full[k], alone[k]) for k in full)
    assert load_cameras(only_s1["cameras"])["S1"][2].R.tolist() == load_cameras(synth["cameras"])["S1"][2].R.tolist()


def test_bone_lengths_constant_per_subject(synth: dict[str, Path]) -> None:
    pos = _positions_3d(synth["3d"])
    per_subject = []
    for subject, seqs in pos.items():
        lengths = np.concatenate([bone_lengths(v[:, H36M32_TO_17]) for v in seqs.values()])
        assert lengths.shape[1] == 16
        assert np.abs(lengths - lengths[0]).max() < 1e-6, subject  # across every frame and sequence
        per_subject.append(lengths[0])
    assert not np.allclose(per_subject[0], per_subject[1])  # subjects differ


def test_motion_is_smooth_grounded_and_within_limits() -> None:
    body, seqs = generate_subject("S7", seed=0, frames=150, sequences_per_action=1)
    for name, p in seqs.items():
        speed = np.linalg.norm(np.diff(p, axis=0), axis=-1) * 50  # m/s at 50 fps
        assert speed.max() < 7.5, name
        feet_z = np.minimum(p[:, 3, 2], p[:, 6, 2])
        assert np.all(np.abs(feet_z - body.ankle_height) < 0.01), name  # a foot on the floor
        assert np.all(p[:, 10, 2] > p[:, 0, 2]), name  # head above pelvis
        for hip, knee, foot in ((1, 2, 3), (4, 5, 6)):
            thigh, shin = p[:, knee] - p[:, hip], p[:, foot] - p[:, knee]
            cos = np.sum(thigh * shin, -1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shin, axis=-1)
            assert np.arccos(np.clip(cos, -1, 1)).max() <= JOINT_LIMITS["knee"][1] + 1e-6
        for sh, el, wr in ((11, 12, 13), (14, 15, 16)):
            upper, fore = p[:, el] - p[:, sh], p[:, wr] - p[:, el]
            cos = np.sum(upper * fore, -1) / np.linalg.norm(upper, axis=-1) / np.linalg.norm(fore, axis=-1)
            assert np.arccos(np.clip(cos, -1, 1)).max() <= JOINT_LIMITS["elbow"][1] + 1e-6
    crouch = seqs["Crouching 1"][:, 0, 2]
    assert crouch.max() - crouch.min() > 0.2  # the pelvis really goes down


def test_loaders_read_it_and_projection_is_consistent(synth: dict[str, Path]) -> None:
    clips = load_videopose3d(synth["3d"], synth["2d"], synth["cameras"])
    assert len(clips) == len(SUBJECTS) * len(ACTIONS) * 4
    cams = load_cameras(synth["cameras"])
    world = _positions_3d(synth["3d"])
    for c in clips:
        cam = cams[c.subject][c.camera]
        # stored 2D = same camera model applied to the loader's camera-space 3D (float32 storage)
        assert np.abs(cam.project(c.keypoints_3d) - c.keypoints_2d).max() < 1e-2
        expect = world[c.subject][c.action][:, H36M32_TO_17]
        np.testing.assert_allclose(cam.camera_to_world(c.keypoints_3d), expect, atol=1e-5)
        assert (c.width, c.height) == (cam.w, cam.h) and c.keypoints_3d[..., 2].min() > 2.0
        uv = c.keypoints_2d
        inside = (uv >= 0).all(-1) & (uv[..., 0] < c.width) & (uv[..., 1] < c.height)
        assert inside.mean() > 0.95
    train = load_videopose3d(synth["3d"], synth["2d"], synth["cameras"], subjects="train")
    assert {c.subject for c in train} == {"S1"}
    ds = H36MLiftingDataset(clips, frames=27, subjects="test", flip_augment=True)
    item = ds[0]
    assert item["subject"] == "S9" and item["action"] in ACTIONS and item["input_2d"].shape == (27, 17, 2)
    assert float(item["input_2d"].abs().max()) < 1.5


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path), "--subjects", "S11", "--seed", "4", "--frames", "20", "--sequences-per-action", "1",
          "--actions", "Walking", "Turning"])
    assert "wrote 2 sequences" in capsys.readouterr().out
    clips = load_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz", tmp_path / "cameras.json")
    assert sorted({c.action for c in clips}) == ["Turning 1", "Walking 1"]


def test_the_generators_never_replace_files_without_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The motion generator writes the real VideoPose3D names: over an existing file (maybe real Human3.6M data)
    it refuses in argparse's one line, as the image generator does over an earlier train.json; bad counts too."""
    from posetokens.data import synthetic, synthetic_motion

    real = tmp_path / "h36m" / "data_3d_h36m.npz"
    real.parent.mkdir()
    real.write_bytes(b"real data")
    for argv in ([str(real.parent), "--subjects", "S1"], [str(tmp_path / "new"), "--frames", "-5"],
                 [str(tmp_path / "new"), "--sequences-per-action", "0"], [str(tmp_path / "new"), "--subjects", "X9"]):
        with pytest.raises(SystemExit) as e:
            synthetic_motion.main(argv)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {real} exists; it may be real Human3.6M data; choose another OUT, or pass --overwrite" in err
    assert "argument --frames: expected an integer >= 2, got '-5'" in err
    assert real.read_bytes() == b"real data" and not (tmp_path / "new").exists()
    synthetic_motion.main([str(real.parent), "--subjects", "S1", "--frames", "20", "--sequences-per-action", "1",
                           "--actions", "Walking", "--overwrite"])
    assert real.read_bytes() != b"real data"

    mine = tmp_path / "coco" / "train.json"
    mine.parent.mkdir()
    mine.write_text('{"mine": 1}')
    with pytest.raises(SystemExit):
        synthetic.main([str(mine.parent), "--num-train", "2", "--num-val", "1"])
    assert f"error: {mine} exists; choose another OUT_DIR, or pass --overwrite" in capsys.readouterr().err
    assert mine.read_text() == '{"mine": 1}'


def test_a_partial_file_says_which_split_subjects_it_lacks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The recipe's split names S1 S5 S6 S7 S8: a file with only S1 trains on S1 and says so (scores from it are
    not the full split's), instead of dropping the others silently."""
    from posetokens.data.synthetic_motion import generate_dataset

    paths = generate_dataset(tmp_path, subjects=("S1", "S9"), seed=0, frames=20, sequences_per_action=1)
    clips = load_videopose3d(paths["3d"], paths["2d"], paths["cameras"], subjects="train")
    assert {c.subject for c in clips} == {"S1"}
    assert (f"posetokens: warning: {paths['3d']}: the train split has no S5, S6, S7, S8 in this file; using S1 only"
            in capsys.readouterr().err)
