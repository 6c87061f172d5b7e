"""2D->3D lifting of videos and 2D-keypoint json (random weights): joint mapping, windows, ``posetokens lift``.

Independent expectations: the COCO->H36M mapping checked on hand-made joints against the documented rules
(MMPose's conversion), the windows with a stub model that echoes its input frame (so every output frame
must carry its own input), frame counts from OpenCV decoding, the H36M sample's own 2D detections.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from posetokens.cli import main as cli
from posetokens.data.h36m import normalize_screen_coordinates
from posetokens.inference.lifting import coco_to_h36m, fill_missing, lift, lift_sequence, main_person

from conftest import video_frames

TINY_2D = dict(image_size=(64, 48), dim=32, depth=2, heads=4)


# ---------------------------------------------------------------------------------------- joint mapping
def test_coco_to_h36m_follows_the_documented_rules() -> None:
    rng = np.random.default_rng(0)
    coco = rng.uniform(0, 500, (17, 2))
    scores = rng.uniform(0, 1, 17)
    h, s = coco_to_h36m(coco, scores)
    names = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri",
             "l_hip", "r_hip", "l_knee", "r_knee", "l_ank", "r_ank"]
    c = {n: coco[i] for i, n in enumerate(names)}
    pelvis = (c["l_hip"] + c["r_hip"]) / 2
    thorax = (c["l_sho"] + c["r_sho"]) / 2
    expect = [pelvis, c["r_hip"], c["r_knee"], c["r_ank"], c["l_hip"], c["l_knee"], c["l_ank"],
              (pelvis + thorax) / 2, thorax, c["nose"], (c["l_eye"] + c["r_eye"]) / 2,
              c["l_sho"], c["l_elb"], c["l_wri"], c["r_sho"], c["r_elb"], c["r_wri"]]
    np.testing.assert_allclose(h, np.stack(expect), atol=1e-9)
    assert s[0] == pytest.approx((scores[11] + scores[12]) / 2) and s[9] == pytest.approx(scores[0])
    batch, _ = coco_to_h36m(np.stack([coco, coco + 1]), np.stack([scores, scores]))
    np.testing.assert_allclose(batch[1], h + 1, atol=1e-9)
    with pytest.raises(ValueError, match=r"COCO-17 keypoints \(\.\.\., 17, 2\)"):
        coco_to_h36m(np.zeros((16, 2)))
    with pytest.raises(ValueError, match=r"^coco_to_h36m: scores must be \(17,\) like the keypoints .* got \(5,\)$"):
        coco_to_h36m(coco, scores[:5])  # was numpy's broadcast error
    with pytest.raises(ValueError, match=r"^coco_to_h36m: expected COCO-17 keypoints .* as numbers, got text$"):
        coco_to_h36m(coco.astype(str))
    np.testing.assert_array_equal(coco_to_h36m(coco, scores[:, None])[1], s)  # (17, 1), as the lifters take them


def test_fill_missing_and_main_person() -> None:
    v = np.array([[0.0], [np.nan], [np.nan], [3.0], [np.nan]])
    ok = np.array([True, False, False, True, False])
    np.testing.assert_allclose(fill_missing(v, ok)[:, 0], [0, 1, 2, 3, 3])
    with pytest.raises(ValueError, match="no person found in any frame"):
        fill_missing(v, np.zeros(5, bool))
    inst = lambda x, s, b: {"keypoints": [[x, x]] * 17, "keypoint_scores": [s] * 17, "bbox_score": b}  # noqa: E731
    kp, sc, valid = main_person([{"instances": [inst(1, 0.9, 0.5), inst(2, 0.5, 1.0)]}, {"instances": []}])
    assert valid.tolist() == [True, False] and kp[0, 0, 0] == 2.0  # box x keypoint score: 0.5 x 1.0 > 0.9 x 0.5


# -------------------------------------------------------------------------------------------- windowing
class EchoLifter(nn.Module):
    """A stand-in lifter whose 3D output is its own 2D input (z = 0): each output frame shows what it saw."""

    task = "lifting"

    def __init__(self, frames: int, seq2frame: bool) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(num_frames=frames, in_channels=2)
        self.is_seq2frame = seq2frame

    def forward_frames(self, x: torch.Tensor, keep_index: torch.Tensor | None = None):
        return torch.cat((x[..., :2], torch.zeros_like(x[..., :1])), dim=-1), None


@pytest.mark.parametrize("seq2frame,frames,length", [(False, 5, 12), (False, 7, 3), (True, 5, 12), (True, 9, 4)])
def test_windows_put_every_frame_back_in_place(seq2frame: bool, frames: int, length: int) -> None:
    rng = np.random.default_rng(frames + length)
    kp = rng.uniform(0, 640, (length, 17, 2))
    out = lift_sequence(EchoLifter(frames, seq2frame), kp, np.ones((length, 17)), 640, 480)
    expect = normalize_screen_coordinates(kp, 640, 480)
    assert out.shape == (length, 17, 3)
    np.testing.assert_allclose(out[:, 1:, :2], expect[:, 1:], atol=1e-5)  # root zeroed by the lifting head
    assert (out[:, 0] == 0).all()


def test_lift_sequence_runs_a_model_in_training_mode_as_in_eval_and_restores_it() -> None:
    """A model fresh from create_model is in training mode (MixSTE's drop-path on): lift_sequence
    gives what the same model gives in eval mode, the same on every call, and leaves each module's mode as it
    was (a submodule the user froze in eval stays in eval)."""
    from posetokens import create_model

    torch.manual_seed(0)
    model = create_model("mixste_h36m_243", num_frames=27, depth=2, drop_path=0.5)
    frozen = next(m for m in model.modules() if m is not model)
    frozen.eval()
    kp = np.random.default_rng(0).uniform(0, 640, (30, 17, 2))
    a, b = (lift_sequence(model, kp, None, 640, 480) for _ in range(2))
    assert model.training and not frozen.training
    assert all(m.training for m in model.modules() if m is not frozen and not any(m is c for c in frozen.modules()))
    model.eval()
    want = lift_sequence(model, kp, None, 640, 480)
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)
    frozen.train()  # the top module in eval, one submodule left in training mode: still predicted in eval mode
    np.testing.assert_array_equal(lift_sequence(model, kp, None, 640.0, 480.0), want)  # cv2 gives float sizes
    assert frozen.training and not model.training


def _lift_mistakes() -> list:
    from posetokens import create_model

    lifter = create_model("mixste_h36m_243", num_frames=9, depth=1, dim=16, heads=2, mlp_hidden=32)
    mbert = create_model("motionbert_h36m_243", num_frames=9, depth=1, dim=16, heads=2, dim_rep=16, mlp_hidden=32)
    pose2d = create_model("tokenpose_s_coco_256x192", **TINY_2D)
    kp = np.random.default_rng(1).uniform(0, 640, (12, 17, 2))
    return [
        ((("mixste_h36m_243", kp, None, 640, 480), {}), r"lift_sequence: model must be a lifting model .* got "
         r"'mixste_h36m_243'; build one with posetokens.create_model\('mixste_h36m_243', weights=\.\.\.\)$"),
        (((pose2d, kp, None, 640, 480), {}), r"model must be a lifting model .* got TokenPose \(task 'topdown'\)$"),
        (((lifter, kp, None, 0, 480), {}), r"lift_sequence: width must be a positive whole number .* got 0$"),
        (((lifter, kp, None, 640, 480.5), {}), r"lift_sequence: height must be a positive whole number .* got 480\.5$"),
        (((lifter, kp, None, 640, 480), {"device": "tpu"}), r"lift_sequence: device='tpu' is not a device"),
        (((lifter, kp, None, 640, 480), {"device": "meta"}),
         r"lift_sequence: device='meta': unsupported device type 'meta'"),
        (((lifter, kp, None, 640, 480), {"batch_size": 0}), r"batch_size must be a whole number >= 1, got 0$"),
        (((lifter, kp, None, 640, 480), {"batch_size": "4"}), r"batch_size must be a whole number >= 1, got '4'$"),
        (((lifter, kp, None, 640, 480), {"flip_test": "no"}), r"flip_test must be True or False, got 'no'$"),
        (((lifter, kp.astype(str), None, 640, 480), {}), r"lift_sequence: expected H36M-17 keypoints \(L, 17, 2\) as "
         r"numbers, got text$"),  # numpy would have read the digits
        (((lifter, (k for k in kp), None, 640, 480), {}), r"lift_sequence: expected .* as numbers, got a generator$"),
        (((lifter, [kp[0], kp[1][:3]], None, 640, 480), {}), r"got nested lists of unequal lengths$"),
        (((lifter, kp, "junk", 640, 480), {}), r"lift_sequence: scores: expected .* as numbers, got text$"),  # unused
        (((lifter, kp, np.where(np.arange(17) == 3, np.nan, 0.9)[None].repeat(12, 0), 640, 480), {}),
         r"lift_sequence: scores\[0, 3\] = nan is not finite; expected finite scores"),  # unused too: as MotionBERT
        (((mbert, kp, np.full((12, 17), np.inf), 640, 480), {}), r"scores\[0, 0\] = inf is not finite"),

        (((mbert, kp, [[None] * 17] * 12, 640, 480), {}), r"lift_sequence: scores: expected \(L, 17\) = \(12, 17\) "
         r"scores as numbers, got Python objects \(None, or values of mixed types\)$"),
        (((mbert, kp, np.ones(12), 640, 480), {}), r"scores must be \(L, 17\) = \(12, 17\) like the keypoints, got "
         r"\(12,\)$"),
    ]


def test_lift_sequence_says_what_is_wrong_in_one_line() -> None:
    """A user's mistakes are one-line ValueErrors naming the argument (they were AttributeError,
    ZeroDivisionError and numpy's concatenate errors); a 3-channel model without scores gets ones."""
    from posetokens import create_model

    for (args, kwargs), message in _lift_mistakes():
        with pytest.raises(ValueError, match=message) as e:
            lift_sequence(*args, **kwargs)
        assert "\n" not in str(e.value)
    torch.manual_seed(0)
    mbert = create_model("motionbert_h36m_243", num_frames=9, depth=1, dim=16, heads=2, dim_rep=16, mlp_hidden=32)
    kp = np.random.default_rng(1).uniform(0, 640, (12, 17, 2))
    np.testing.assert_array_equal(lift_sequence(mbert, kp, None, 640, 480), lift_sequence(mbert, kp, np.ones((12, 17)), 640, 480))
    sc = np.random.default_rng(2).uniform(0, 1, (12, 17))  # (L, 17, 1), as the online lifter takes them
    np.testing.assert_array_equal(lift_sequence(mbert, kp, sc, 640, 480),
                                  lift_sequence(mbert, kp, sc[..., None], 640, 480))


# -------------------------------------------------------------------------------------------- end to end
def test_lift_sample_video(shared_data: Path, tmp_path: Path) -> None:
    video = shared_data / "video" / "sample_video.mp4"
    summary = lift(video, "hot_mixste_h36m_243", tmp_path, pose2d="tokenpose_s_coco_256x192",
                   pose2d_overrides=TINY_2D, kpt_thr=0.0, progress=False)
    n = len(video_frames(video))
    res = json.loads((tmp_path / "sample_video_3d.json").read_text())
    assert summary["frames"] == len(res["frames"]) == n == 185
    assert res["units"] == "metres" and res["root_relative"] and len(res["joint_names"]) == 17
    assert res["weights"] is None and res["random_weights"] is True  # where the poses came from
    assert json.loads((tmp_path / "sample_video.json").read_text())[0]["random_weights"] is True  # the 2D model's
    p3 = np.asarray([f["keypoints_3d"] for f in res["frames"]])
    assert p3.shape == (n, 17, 3) and np.isfinite(p3).all()
    assert (p3[:, 0] == 0).all() and np.abs(p3).max() > 0
    two_d = json.loads((tmp_path / "sample_video.json").read_text())
    assert len(two_d) == n  # the 2D results, each instance with the track id the 3D json uses
    ids_2d = {inst["track_id"] for r in two_d for inst in r["instances"]}
    assert {q["track_id"] for f in res["frames"] for q in f["people"]} <= ids_2d
    assert all(isinstance(inst["track_id"], int) for r in two_d for inst in r["instances"])
    side = video_frames(tmp_path / "sample_video_3d.mp4")
    assert len(side) == n
    assert side[0].shape[:2] == (480, 854 + 480)  # the 2D panel (1280x720 scaled to 480 high) beside a square 3D one
    right = side[n // 2][:, 854:]
    assert float(right.std()) > 5.0 and float(side[n // 2][:, :854].std()) > 5.0  # neither panel is blank


def test_lift_json_with_frames_without_person(shared_data: Path, tmp_path: Path) -> None:
    det = np.load(shared_data / "h36m" / "test_h36m_2d_detection.npy")  # (4, 17, 3) H36M layout
    records = [{"frame_id": i, "width": 1000, "height": 1002,
                "instances": [] if i == 2 else [{"keypoints": d[:, :2].tolist(), "keypoint_scores": d[:, 2].tolist(),
                                                 "bbox": [0, 0, 1000, 1002], "bbox_score": 1.0}]}
               for i, d in enumerate(det)]
    src = tmp_path / "h36m_2d.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out"
    assert cli(["lift", str(src), "--model", "hot_motionbert_h36m_243", "--layout", "h36m", "--out", str(out)]) == 0
    res = json.loads((out / "h36m_2d_3d.json").read_text())
    assert [f["person"] for f in res["frames"]] == [True, True, False, True]
    assert res["frames"][2]["keypoints_3d"] is None
    for f in (res["frames"][i] for i in (0, 1, 3)):
        p = np.asarray(f["keypoints_3d"])
        assert p.shape == (17, 3) and np.isfinite(p).all() and (p[0] == 0).all()
    np.testing.assert_allclose(res["frames"][0]["keypoints_2d"], det[0, :, :2], atol=0.01)
    assert len(video_frames(out / "h36m_2d_3d.mp4")) == 4


def test_lift_seq2frame_model_on_coco_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(1)
    records = [{"frame_id": i, "instances": [{"keypoints": rng.uniform(100, 300, (17, 2)).tolist(),
                                              "keypoint_scores": [0.9] * 17, "bbox": [0, 0, 400, 400], "bbox_score": 0.9}]}
               for i in range(6)]
    src = tmp_path / "coco_2d.json"
    src.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"give the frame size \(image_size\)"):
        lift(src, "tpc_mixste_h36m_243", tmp_path, num_frames=27, dim=32, depth=4, heads=4, mlp_hidden=64,
             prune={"keep": 9, "layer": 2})
    summary = lift(src, "tpc_mixste_h36m_243", tmp_path, image_size=(400, 400), draw=False, num_frames=27, dim=32,
                   depth=4, heads=4, mlp_hidden=64, prune={"keep": 9, "layer": 2})
    res = json.loads((tmp_path / "coco_2d_3d.json").read_text())
    assert summary["frames"] == 6 and all(np.isfinite(f["keypoints_3d"]).all() for f in res["frames"])
    # Python's mistakes, each one line naming the argument, before anything is written
    for size, shown in ((640, "640"), ("640x480", "'640x480'"), ((640, 0), r"\(640, 0\)")):
        with pytest.raises(ValueError, match=rf"^image_size {shown}: expected \(width, height\) in whole pixels >= 1, "
                                             r"e.g. \(1280, 720\)$"):
            lift(src, "tpc_mixste_h36m_243", tmp_path / "bad", image_size=size)
    with pytest.raises(ValueError, match=r"^lift: source must be a video or 2D-keypoint json path, a webcam index or "
                                         r"a stream URL, got ndarray .*lift_sequence\)$"):
        lift(np.zeros((10, 17, 2)), "tpc_mixste_h36m_243", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    # a size given for a json whose records carry theirs: used, and the difference said (it was silent)
    sized = tmp_path / "sized.json"
    sized.write_text(json.dumps([{**r, "width": 400, "height": 400} for r in records]))
    capsys.readouterr()
    lift(sized, "tpc_mixste_h36m_243", tmp_path / "sized", image_size=(800, 400), draw=False, num_frames=27, dim=32,
         depth=4, heads=4, mlp_hidden=64, prune={"keep": 9, "layer": 2})
    assert (f"{sized}: the records say the frames are 400x400; image_size 800x400 given is used (the 2D is normalised "
            "by it)") in capsys.readouterr().err
    assert json.loads((tmp_path / "sized" / "sized_3d.json").read_text())["width"] == 800


def test_lift_of_an_infer_json_keeps_the_clips_frame_rate(shared_data: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """mmpose_demo.mp4 plays at 5 fps (OpenCV reads it so): lifting infer's json of it runs the One-Euro filter and
    writes the 3D json and video at 5, as lifting the video does (it once assumed 25 for every json)."""
    import cv2

    video = shared_data / "video" / "mmpose_demo.mp4"
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    assert fps == 5.0
    assert cli(["infer", str(video), "--model", "tokenpose_s_coco_256x192", "--out", str(tmp_path / "2d"),
                "--no-draw"]) == 0
    src = tmp_path / "2d" / "mmpose_demo.json"
    assert {r["fps"] for r in json.loads(src.read_text())} == {5.0}
    lifter = ["--model", "hot_mixste_h36m_243", "--no-draw", "--min-track-frames", "2"]
    assert cli(["lift", str(src), *lifter, "--out", str(tmp_path / "a")]) == 0
    res = json.loads((tmp_path / "a" / "mmpose_demo_3d.json").read_text())
    assert res["fps"] == 5.0 and res["filter"]["name"] == "one_euro" and res["filter"]["fps"] == 5.0
    assert cli(["lift", str(src), *lifter, "--fps", "30", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "mmpose_demo_3d.json").read_text())["fps"] == 30.0
    records = json.loads(src.read_text())
    for r in records:
        del r["fps"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(records))
    capsys.readouterr()
    assert cli(["lift", str(bare), *lifter, "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "bare_3d.json").read_text())["fps"] == 25.0
    assert f"posetokens: warning: {bare}: the records carry no 'fps'; 25 frames per second assumed" in \
        capsys.readouterr().err
    assert cli(["lift", str(video), *lifter, "--fps", "30", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "--fps applies to a 2D-keypoint json" in err and "random weights" not in err  # before any model
    assert cli(["lift", str(src), *lifter, "--fps", "-5", "--out", str(tmp_path / "e")]) == 2
    assert "frame rate -5.0: expected a positive number of frames per second" in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()


def test_lift_errors(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        lift(tmp_path / "missing.mp4", "hot_mixste_h36m_243", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"frame_id": 0}]))
    monkeypatch.delenv("POSETOKENS_PRECISION")  # the default, auto, which says what it runs on a bfloat16 CPU
    capsys.readouterr()
    assert cli(["lift", str(bad), "--model", "hot_mixste_h36m_243", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    # the json is read and checked first: its one line is all that is said, and no --out folder is made
    assert err.strip().splitlines() == [f"posetokens lift: error: {bad}: record 0 has no 'instances' list (expected "
                                        "{frame_id, instances: [...]})"], err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="no 'instances' list"):
        lift(bad, "hot_mixste_h36m_243", tmp_path)
    nobody = tmp_path / "nobody.json"  # well formed, and nobody to lift: also before --out and any model
    nobody.write_text(json.dumps([{"frame_id": 0, "width": 100, "height": 100, "fps": 25, "instances": []}]))
    assert cli(["lift", str(nobody), "--model", "hot_mixste_h36m_243", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"posetokens lift: error: {nobody}: no person found in any frame: nothing "
                                        "to lift"], err
    assert not (tmp_path / "out").exists()
    person = {"keypoints": [[50.0, 50.0]] * 17, "keypoint_scores": [0.9] * 17, "bbox": [0, 0, 100, 100],
              "bbox_score": 0.9}
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"frame_id": i, "width": 100, "height": 100, "fps": 25, "instances": [person]}
                                for i in range(3)]))
    with pytest.raises(ValueError, match="not a 2D->3D lifting model"):
        lift(good, "tokenpose_s_coco_256x192", tmp_path, min_track_frames=1)


def _random_coco_json(path: Path, frames: int, seed: int) -> Path:
    """An infer-style 2D json of one person at random COCO-17 pixels in a 400 x 400 frame, ``frames`` records."""
    rng = np.random.default_rng(seed)
    records = [{"frame_id": i, "width": 400, "height": 400,
                "instances": [{"keypoints": rng.uniform(100, 300, (17, 2)).tolist(), "keypoint_scores": [0.9] * 17,
                               "bbox": [0, 0, 400, 400], "bbox_score": 0.9}]} for i in range(frames)]
    path.write_text(json.dumps(records))
    return path


def test_an_interrupt_before_the_first_drawn_frame_names_no_video(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while drawing the first frame: the 3D json is kept and said; no mp4 was written, and none is named
    (it once said the missing mp4 'holds the frames drawn')."""
    from posetokens.inference import lifting
    from posetokens.runtime import Interrupted

    src = _random_coco_json(tmp_path / "clip_2d.json", frames=6, seed=1)

    def interrupted(self, i, img):
        raise KeyboardInterrupt

    monkeypatch.setattr(lifting.TrackPanels, "render", interrupted)
    with pytest.raises(Interrupted) as e:
        lift(src, "hot_mixste_h36m_243", tmp_path / "out", num_frames=27, dim=32, depth=2,
             prune={"keep": 9, "layer": 1}, min_track_frames=2)
    assert str(e.value).endswith("; no frame of the video was drawn")
    assert (tmp_path / "out" / "clip_2d_3d.json").is_file() and not (tmp_path / "out" / "clip_2d_3d.mp4").exists()


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt) for the test, as a process started from a terminal has: one
    started in the background by a non-interactive shell (a CI script's ``cmd &``) inherits SIGINT ignored, where
    a real Ctrl-C rightly does nothing and a test that sends one would prove nothing."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("python_sigint")
def test_an_interrupt_while_lifting_keeps_the_finished_tracks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while lifting the second of two tracks: the 3D json is written with the first track, marked
    ``"complete": false`` with the other track under ``tracks_not_lifted``, and the message says so; no video."""
    from posetokens.inference import lifting
    from posetokens.runtime import Interrupted

    rng = np.random.default_rng(2)
    people = [(60, 7), (260, 9)]  # (x offset, track id): two people far apart, each with its own id
    records = [{"frame_id": i, "width": 400, "height": 400,
                "instances": [{"keypoints": (rng.uniform(0, 80, (17, 2)) + [x, 150]).tolist(),
                               "keypoint_scores": [0.9] * 17, "bbox": [x, 150, x + 80, 230], "bbox_score": 0.9,
                               "track_id": tid} for x, tid in people]} for i in range(6)]
    src = tmp_path / "two.json"
    src.write_text(json.dumps(records))
    before = src.read_bytes()
    real, calls = lifting.lift_sequence, []

    def second_interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(lifting, "lift_sequence", second_interrupted)
    kw = dict(num_frames=27, dim=32, depth=2, prune={"keep": 9, "layer": 1}, min_track_frames=2)
    with pytest.raises(Interrupted) as e:
        lift(src, "hot_mixste_h36m_243", tmp_path / "out", **kw)
    out = tmp_path / "out" / "two_3d.json"
    assert str(e.value) == (f'interrupted by SIGINT while lifting: the 3D of the 1 finished track(s) of 2 is in {out} '
                            '("complete": false)')
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and doc["tracks_not_lifted"] == [9] and doc["video_panels"] == []
    assert [t["track_id"] for t in doc["tracks"]] == [7] and doc["main_track"] == 7
    assert all([p["track_id"] for p in f["people"]] == [7] for f in doc["frames"])
    assert not (tmp_path / "out" / "two_3d.mp4").exists() and src.read_bytes() == before
    # a second Ctrl-C while the finished tracks are being written waits for the file, and is dropped
    from posetokens.inference.filters import FilterConfig

    calls.clear()
    describe = FilterConfig.describe

    def second_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)
        return describe(self)

    monkeypatch.setattr(FilterConfig, "describe", second_ctrl_c)
    try:
        lift(src, "hot_mixste_h36m_243", tmp_path / "again", **kw)
    except Interrupted as e2:
        assert str(e2).startswith("interrupted by SIGINT while lifting: the 3D of the 1 finished track(s) of 2")
    except KeyboardInterrupt:
        pytest.fail("a second Ctrl-C cut the writing of the finished tracks short")
    else:
        pytest.fail("lift was not interrupted")
    assert json.loads((tmp_path / "again" / "two_3d.json").read_text())["complete"] is False
    monkeypatch.setattr(FilterConfig, "describe", describe)

    # a Ctrl-C while a complete run writes its file: the file is finished and complete, and the message says so
    monkeypatch.setattr(lifting, "lift_sequence", real)
    from posetokens import fileio

    write = fileio.atomic_write_json  # lift's json writer (a json input writes only the 3D file)

    def ctrl_c_while_writing(path, obj):
        os.kill(os.getpid(), signal.SIGINT)
        return write(path, obj)

    monkeypatch.setattr(fileio, "atomic_write_json", ctrl_c_while_writing)
    with pytest.raises(Interrupted) as e3:
        lift(src, "hot_mixste_h36m_243", tmp_path / "whole", **kw)
    whole = tmp_path / "whole" / "two_3d.json"
    assert str(e3.value) == (f"interrupted by SIGINT after the 3D of all 2 track(s) was written to {whole}; the 3D "
                             "video was not drawn")
    assert json.loads(whole.read_text())["complete"] is True and not (tmp_path / "whole" / "two_3d.mp4").exists()
    monkeypatch.setattr(fileio, "atomic_write_json", write)

    def first_interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lifting, "lift_sequence", first_interrupted)  # nothing finished: no 3D file
    with pytest.raises(Interrupted, match=r"while lifting, before any track was finished$"):
        lift(src, "hot_mixste_h36m_243", tmp_path / "out2", draw=False, **kw)
    assert not (tmp_path / "out2" / "two_3d.json").exists()
    monkeypatch.setattr(lifting, "lift_sequence", real)
    lift(src, "hot_mixste_h36m_243", tmp_path / "out3", draw=False, **kw)
    doc = json.loads((tmp_path / "out3" / "two_3d.json").read_text())
    assert doc["complete"] is True and doc["tracks_not_lifted"] == [] and len(doc["tracks"]) == 2


@pytest.mark.parametrize("read", [0, 20])
def test_ctrl_c_in_the_2d_pass_lifts_this_runs_frames_only(read: int, shared_data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C in lift's 2D pass lifts the frames this run finished: with none finished it stops (it lifted the
    ``<stem>.json`` an earlier run had left in --out and called those 'the frames read', rewriting that json);
    after 20 frames read, the 16 of the first batch were finished (the estimator's batch of 16 crops), and those
    are lifted, replacing the earlier json."""
    from posetokens.inference import api
    from posetokens.runtime import Interrupted

    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "sample_video.json"
    earlier.write_text(json.dumps([{"frame_id": i, "width": 64, "height": 64, "model": "an earlier run",
                                    "instances": [{"keypoints": [[30.0, 30.0]] * 17, "keypoint_scores": [0.9] * 17,
                                                   "bbox": [0, 0, 64, 64], "bbox_score": 1.0}]} for i in range(12)]))
    before = earlier.read_bytes()
    frames = api.VideoReader.__iter__

    def cut(self):  # the video's first `read` frames, then Ctrl-C
        for i, frame in enumerate(frames(self)):
            if i == read:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(api.VideoReader, "__iter__", cut)
    with pytest.raises(Interrupted) as e:
        lift(shared_data / "video" / "sample_video.mp4", "hot_mixste_h36m_243", out, pose2d="tokenpose_s_coco_256x192",
             pose2d_overrides=TINY_2D, num_frames=27, dim=32, depth=2, prune={"keep": 9, "layer": 1},
             min_track_frames=1, draw=False, progress=False)
    if not read:
        assert str(e.value) == "interrupted by SIGINT: no frame was finished"
        assert earlier.read_bytes() == before and not (out / "sample_video_3d.json").exists()
        return
    assert str(e.value) == (f"interrupted by SIGINT in the 2D pass: the 3D of the 16 frame(s) read is in "
                            f"{out / 'sample_video_3d.json'}")
    assert len(json.loads((out / "sample_video_3d.json").read_text())["frames"]) == 16
    assert [r["model"] for r in json.loads(earlier.read_text())] == ["tokenpose_s_coco_256x192"] * 16


def test_lift_of_a_given_module_takes_no_weights_and_leaves_its_mode(tmp_path: Path) -> None:
    """``lift(src, module, out, weights=path)`` ran the given module's random weights and said no weights were
    given; overrides were ignored the same way; and lift left the caller's module in eval mode (docs/inference.md:
    each prediction restores each module's mode)."""
    from posetokens.registry import create_model

    src = _random_coco_json(tmp_path / "coco_2d.json", frames=4, seed=2)
    model = create_model("mixste_h36m_243", num_frames=9, dim=32, depth=2, heads=2, mlp_hidden=64)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    with pytest.raises(ValueError, match="lift: pass weights with a zoo name, or load them into the model yourself"):
        lift(src, model, tmp_path / "a", weights=tmp_path / "w.pth", draw=False)
    with pytest.raises(ValueError, match=r"lift: model config overrides \(depth\) apply to a zoo name"):
        lift(src, model, tmp_path / "b", draw=False, depth=4)
    assert model.training
    lift(src, model, tmp_path / "c", draw=False)
    assert model.training and (tmp_path / "c" / "coco_2d_3d.json").is_file()


def test_default_min_track_frames_is_half_the_clip_rounded_up() -> None:
    from posetokens.inference.lifting import default_min_track_frames

    assert [default_min_track_frames(n) for n in (1, 2, 7, 8, 59, 60, 61, 1000)] == [1, 1, 4, 4, 30, 30, 30, 30]


def test_lift_keeps_the_jsons_frame_ids_and_filters_2d_in_half_widths(tmp_path: Path) -> None:
    """A 2D json whose frames start at 5 (a cut of a longer run) gives 3D frames 5..: the 3D stays on the 2D's
    timeline. Its 2D One-Euro measures speed in half widths of the (not square) frame: the 3D json's 2D is the
    H36M 2D filtered with ``scale = width / 2``."""
    from posetokens.inference.filters import make_filter
    from posetokens.registry import create_model

    rng = np.random.default_rng(3)
    n, w, h = 12, 400, 200
    t = np.arange(n)[:, None, None]
    kp = rng.uniform(150, 250, (1, 17, 2)) * [1.0, 0.5] + 8 * np.sin(t / 2.0) + rng.normal(0, 1, (n, 17, 2))
    records = [{"frame_id": 5 + i, "width": w, "height": h, "fps": 25,
                "instances": [{"keypoints": kp[i].tolist(), "keypoint_scores": [0.9] * 17,
                               "bbox": [100, 50, 300, 150], "bbox_score": 0.9}]} for i in range(n)]
    src = tmp_path / "cut.json"
    src.write_text(json.dumps(records))
    torch.manual_seed(0)
    model = create_model("mixste_h36m_243", num_frames=9, dim=32, depth=2, heads=2, mlp_hidden=64)
    lift(src, model, tmp_path / "out", draw=False, smooth="one_euro")
    res = json.loads((tmp_path / "out" / "cut_3d.json").read_text())
    assert [f["frame_id"] for f in res["frames"]] == list(range(5, 5 + n))
    assert (res["tracks"][0]["first_frame"], res["tracks"][0]["last_frame"]) == (5, 4 + n)
    h36m, _ = coco_to_h36m(kp, np.full((n, 17), 0.9))
    want = make_filter("one_euro")(h36m, fps=25.0, scale=w / 2)
    np.testing.assert_allclose([f["keypoints_2d"] for f in res["frames"]], want, atol=0.0051)


def test_lift_filters_the_3d_with_the_tracks_gaps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 3D filter gets the track's validity mask, so under ``gap="restart"`` a run after a gap starts afresh
    instead of being smoothed into the interpolated frames (the 2D filter gets it too)."""
    from posetokens.inference.filters import FilterConfig
    from posetokens.registry import create_model

    seen: list[tuple[int, object]] = []
    call = FilterConfig.__call__
    monkeypatch.setattr(FilterConfig, "__call__",
                        lambda self, x, valid=None, fps=None, scale=1.0: (seen.append((x.shape[-1], valid)),
                                                                           call(self, x, valid, fps, scale))[1])
    rng = np.random.default_rng(5)
    person = lambda: [{"keypoints": rng.uniform(150, 250, (17, 2)).tolist(), "keypoint_scores": [0.9] * 17,  # noqa: E731
                       "bbox": [100, 100, 300, 300], "bbox_score": 0.9}]
    gone = {3, 4}
    records = [{"frame_id": i, "width": 400, "height": 400, "fps": 25, "instances": [] if i in gone else person()}
               for i in range(10)]
    src = tmp_path / "gap.json"
    src.write_text(json.dumps(records))
    torch.manual_seed(0)
    model = create_model("mixste_h36m_243", num_frames=9, dim=32, depth=2, heads=2, mlp_hidden=64)
    lift(src, model, tmp_path / "out", draw=False, smooth="one_euro")
    want = [i not in gone for i in range(10)]
    assert [d for d, _ in seen] == [2, 3]
    assert all(np.asarray(v).tolist() == want for _, v in seen)
