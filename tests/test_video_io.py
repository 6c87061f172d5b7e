"""Video in and out: H.264 outputs browsers play (PyAV), the mp4v fallback, and live-stream input.

A stream (a webcam index, a stream URL, or a video file read as a stream with ``--loop N``) has no known length,
is read frame by frame and runs until it ends or is interrupted; its frame ids count from 0. No test touches the
network: the URL path is fed by a fake ``cv2.VideoCapture`` that serves a local file for one made-up URL.
Small models throughout (a checkpoint of ours with 64x48 crops and one transformer layer).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA, REPO, interrupt_when, partial_lines

from posetokens.cli import main as cli
from posetokens import media
from posetokens.inference import api
from posetokens.inference.api import (
    InputSource,
    StreamReader,
    VideoWriter,
    is_stream,
    open_input,
    show_progress,
    stream_stem,
)
from posetokens.media import h264_unavailable

NAME_2D = "tokenpose_s_coco_256x192"
TINY_2D = {"image_size": [64, 48], "dim": 32, "depth": 1, "heads": 4}
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]
CLIP_FRAMES = 6
REAL_CAPTURE = cv2.VideoCapture  # the tests' own reading, whatever a test patches


def decoded_frames(path: Path) -> int:
    """How many frames OpenCV decodes from ``path``."""
    cap = REAL_CAPTURE(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def codec_of(path: Path) -> str:
    """The video stream's codec name, as PyAV reads the container."""
    import av

    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.name


def leftovers(folder: Path) -> list[Path]:
    """Temporary or partial files left in ``folder``."""
    return [p for p in folder.rglob("*") if ".partial" in p.name or p.name.startswith(".")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-frame 96x64 mp4 (each frame a different grey)."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for t in range(CLIP_FRAMES):
        w.write(np.full((64, 96, 3), 40 * t, np.uint8))
    w.release()
    assert decoded_frames(path) == CLIP_FRAMES
    return path


@pytest.fixture(scope="module")
def w2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TokenPose-S checkpoint of ours (it names its model, protocol and metainfo)."""
    from posetokens.checkpoint import atomic_save, describe
    from posetokens.data.metainfo import get_metainfo
    from posetokens.protocols import get_protocol
    from posetokens.registry import create_model, default_protocol

    torch.manual_seed(0)
    return atomic_save({**describe(NAME_2D, TINY_2D, get_protocol(default_protocol(NAME_2D)), get_metainfo("coco")),
                        "state_dict": create_model(NAME_2D, **TINY_2D).state_dict()},
                       tmp_path_factory.mktemp("w") / "tiny2d.pth")


@pytest.fixture
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget what this process learnt about H.264 (the probe result and the warnings already given)."""
    monkeypatch.setattr(media, "_H264_UNAVAILABLE", [])
    monkeypatch.setattr(media, "_WARNED_FALLBACK", set())


# ---------------------------------------------------------------------------------------------- writing
def test_writer_h264_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    w = VideoWriter(path, 29.97, (101, 75))  # odd sizes: made even
    assert w.size == (100, 74)
    rng = np.random.default_rng(0)
    for _ in range(23):
        w.write(rng.integers(0, 256, (75, 101, 3), dtype=np.uint8))
        assert not path.exists()  # written beside it, renamed on close
    w.close()
    w.close()  # twice is fine
    assert path.is_file() and not leftovers(tmp_path)
    assert decoded_frames(path) == 23
    cap = cv2.VideoCapture(str(path))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (100, 74)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, abs=0.01)
    cap.release()
    if h264_unavailable() is None:  # PyAV with an H.264 encoder is installed: what browsers play
        assert w.codec == "h264"
        assert codec_of(path) == "h264"
        import av

        with av.open(str(path)) as c:
            assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    else:
        assert w.codec == "mp4v"


def test_writer_shows_each_frame_at_its_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Frame times given to the H.264 writer (read back with PyAV): a constant 29.97 a second keeps one frame per
    1001/30000 s; a phone's 30-a-second frames in a file whose stated (average) rate is 22.7 are shown within a
    hundredth of a frame of their times, not pushed onto the average's grid; a repeated time takes the next tick
    and the frames after it are back on time; a jump of 11 days (a damaged stream) is said and closed up."""
    av = pytest.importorskip("av")
    if h264_unavailable() is not None:
        pytest.skip("no H.264 encoder in PyAV here")

    def shown(name: str, fps: float, times: list[float]) -> list[float]:
        w = VideoWriter(tmp_path / name, fps, (64, 48))
        for t in times:
            w.write(np.zeros((48, 64, 3), np.uint8), t)
        w.close()
        with av.open(str(tmp_path / name)) as c:
            return [float(f.time) for f in c.decode(video=0)]

    ntsc = [i * 1001 / 30000 for i in range(30)]
    np.testing.assert_allclose(shown("ntsc.mp4", 30000 / 1001, ntsc), ntsc, atol=1e-9)
    phone = [i / 30 for i in range(60)] + [2 + i * 2 / 30 for i in range(30)]  # 30 a second, then 15
    got = shown("phone.mp4", 22.727, phone)
    assert len(got) == 90 and np.abs(np.asarray(got) - phone).max() < 0.01 / 22.727
    np.testing.assert_allclose(shown("repeat.mp4", 10, [0, 0.1, 0.1, 0.1, 0.2, 0.3]),
                               [0, 0.1, 0.101, 0.102, 0.2, 0.3], atol=1e-9)
    capsys.readouterr()
    np.testing.assert_allclose(shown("jump.mp4", 10, [0, 0.1, 1e6, 1e6 + 0.1]), [0, 0.1, 0.2, 0.3], atol=1e-9)
    assert "jump.mp4: the frame times jump by 1000000 s after frame 2; the video goes on one frame later" in \
        capsys.readouterr().err


def test_writer_without_frames_leaves_nothing(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "none.mp4", 25, (64, 48))
    w.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_forced_h264_and_mp4v(tmp_path: Path) -> None:
    w = VideoWriter(tmp_path / "a.mp4", 10, (64, 48), codec="mp4v")
    w.write(np.zeros((48, 64, 3), np.uint8))
    w.close()
    assert w.codec == "mp4v" and decoded_frames(tmp_path / "a.mp4") == 1
    with pytest.raises(ValueError, match="video codec must be 'auto', 'h264' or 'mp4v', got 'vp9'"):
        VideoWriter(tmp_path / "b.mp4", 10, (64, 48), codec="vp9")
    assert not list(tmp_path.glob("b*")) and not leftovers(tmp_path)


def test_writer_falls_back_to_mp4v_and_says_so_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture, fresh_probe: None) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError: PyAV not installed
    for name in ("a.mp4", "b.mp4"):
        w = VideoWriter(tmp_path / name, 10, (64, 48))
        for t in range(4):
            w.write(np.full((48, 64, 3), 50 * t, np.uint8))
        w.close()
        assert w.codec == "mp4v" and decoded_frames(tmp_path / name) == 4
    err = capsys.readouterr().err
    assert err.count("H.264 unavailable:") == 1, err
    assert re.search(r"posetokens: warning: H\.264 unavailable: PyAV is not installed .*; writing mp4v", err), err
    with pytest.raises(ValueError, match=r"c\.mp4: H\.264 unavailable: PyAV is not installed"):
        VideoWriter(tmp_path / "c.mp4", 10, (64, 48), codec="h264")
    assert not (tmp_path / "c.mp4").exists() and not leftovers(tmp_path)


# ---------------------------------------------------------------------------------------------- sources
@pytest.mark.parametrize("source,stream", [
    (0, True), ("0", True), ("2", True), ("rtsp://cam.local:554/live/ch1", True), ("http://127.0.0.1:8080/v", True),
    ("HTTPS://example.org/a.m3u8", True), ("udp://@:1234", True), ("video.mp4", False), ("folder", False),
    (True, False), (-1, False), ("file:///tmp/a.mp4", False), (Path("0"), False),
])
def test_is_stream(source: object, stream: bool) -> None:
    assert is_stream(source) is stream


def test_a_folder_named_by_digits_is_the_folder_not_a_webcam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert is_stream("2024")
    (tmp_path / "2024").mkdir()
    cv2.imwrite(str(tmp_path / "2024" / "000000000001.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert not is_stream("2024") and open_input("2024").kind == "images"


def test_stream_stem() -> None:
    assert stream_stem("0") == "webcam0"
    assert stream_stem(1) == "webcam1"
    assert stream_stem("rtsp://user:secret@cam.local:554/live/ch1?x=1") == "stream_cam_local_ch1"
    assert stream_stem("http://127.0.0.1:8080/") == "stream_127_0_0_1"
    assert stream_stem(Path("/a/b/clip.mp4")) == "clip"
    assert api._redact("rtsp://user:secret@cam.local/live") == "rtsp://user:***@cam.local/live"


def test_file_read_as_a_stream(clip: Path) -> None:
    src = open_input(clip, loop=3)
    assert src.kind == "stream" and len(src) == 0 and src.stem == "clip"  # no known length
    assert (src.video.width, src.video.height, src.video.fps) == (96, 64, 10.0)
    ids = [f.frame_id for f in src.frames()]
    assert ids == list(range(3 * CLIP_FRAMES))  # counted from 0 across passes
    assert [f.frame_id for f in src.frames()] == ids  # a file (not a live source) can be read again
    with pytest.raises(ValueError, match="--loop reads a video file as a stream"):
        open_input(clip.parent, loop=2)
    with pytest.raises(ValueError, match="--loop applies to a video file, not to a live stream"):
        open_input("rtsp://cam.invalid/x", loop=2)
    with pytest.raises(ValueError, match="loop must be >= 0"):
        StreamReader(clip, loop=-1)


def fake_camera(monkeypatch: pytest.MonkeyPatch, url: str, clip: Path) -> list:
    """``cv2.VideoCapture(url)`` serves ``clip`` (no network); other cameras and URLs are unreachable, files open as
    usual. Returns the cameras and URLs opened."""
    real = REAL_CAPTURE
    opened: list = []

    def capture(source, *args):
        if not is_stream(source):
            return real(source, *args)
        opened.append(source)
        return real(str(clip)) if source == url else real("/nonexistent/unreachable.mp4")

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    return opened


def test_unreachable_stream_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, clip: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    fake_camera(monkeypatch, "rtsp://cam.invalid/live", clip)
    assert cli(["infer", "rtsp://user:pw@other.invalid/x", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("posetokens infer: error: rtsp://user:***@other.invalid/x: cannot read a frame (unreachable, not "
                   "a video stream, or an unsupported codec)")
    assert cli(["infer", "7", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == ("posetokens infer: error: webcam 7: cannot read a frame (no camera at "
                                               "that index, or it is busy)")
    assert not (tmp_path / "o").exists()


def check_video_outputs(out: Path, stem: str, n: int) -> list[dict]:
    """The per-frame json holds frames 0..n-1 (the first naming the keypoints), the mp4 the same n frames."""
    records = json.loads((out / f"{stem}.json").read_text())
    assert [r["frame_id"] for r in records] == list(range(n))
    assert all(r["model"] == NAME_2D and r["keypoint_layout"] == "coco" for r in records)
    assert records[0]["keypoint_names"] == COCO_NAMES
    assert all(len(inst["keypoints"]) == 17 for r in records for inst in r["instances"])
    assert decoded_frames(out / f"{stem}.mp4") == n
    if h264_unavailable() is None:
        assert codec_of(out / f"{stem}.mp4") == "h264"
    assert not leftovers(out)
    return records


def test_infer_on_a_looping_file_as_a_stream(clip: Path, w2d: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert cli(["infer", str(clip), "--loop", "3", "--weights", str(w2d), "--out", str(out), "--progress"]) == 0
    captured = capsys.readouterr()
    assert f"{3 * CLIP_FRAMES} frame(s), {3 * CLIP_FRAMES} person instance(s)" in captured.out
    # no boxes given: the whole frame was each frame's one person, said in the summary line
    assert "; no --boxes or --detector: each frame was taken as one person's box (a crowd gives one pose per " \
           "frame; docs/video.md)\n" in captured.out
    assert re.search(rf"clip\.mp4: {3 * CLIP_FRAMES}frame \[", captured.err), captured.err  # a bar without total
    check_video_outputs(out, "clip", 3 * CLIP_FRAMES)


def test_infer_on_a_stream_url(monkeypatch: pytest.MonkeyPatch, clip: Path, w2d: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:
    url = "rtsp://cam.invalid:554/live/ch1"
    opened = fake_camera(monkeypatch, url, clip)
    out = tmp_path / "out"
    assert cli(["infer", url, "--weights", str(w2d), "--out", str(out), "--no-progress"]) == 0
    assert opened == [url]  # opened once, read frame by frame, never re-opened
    captured = capsys.readouterr()
    assert f"{CLIP_FRAMES} frame(s)" in captured.out and "frame [" not in captured.err
    check_video_outputs(out, "stream_cam_invalid_ch1", CLIP_FRAMES)
    reader = StreamReader(url)
    assert len(list(reader)) == CLIP_FRAMES
    with pytest.raises(ValueError, match=r"rtsp://cam\.invalid:554/live/ch1: a live stream can be read only once"):
        list(reader)


def test_images_carry_keypoint_names(w2d: Path, tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((64, 48, 3), 128, np.uint8))
    assert cli(["infer", str(img), "--weights", str(w2d), "--out", str(tmp_path / "o"), "--no-draw"]) == 0
    rec = json.loads((tmp_path / "o" / "a.json").read_text())
    assert rec["keypoint_names"] == COCO_NAMES and rec["model"] == NAME_2D and rec["keypoint_layout"] == "coco"


def test_progress_default_follows_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert show_progress(True) is True and show_progress(False) is False
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # noqa: SIM115 (closed with the interpreter)
    assert show_progress(None) is False

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_progress(None) is True


def test_interrupted_stream_keeps_every_frame(clip: Path, w2d: Path, tmp_path: Path) -> None:
    """An endless stream (``--loop 0``) stopped by Ctrl-C: the json and the H.264 mp4 hold the same frames."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    rc, err = interrupt_when([sys.executable, "-m", "posetokens", "infer", str(clip), "--loop", "0", "--weights",
                              str(w2d), "--out", str(out), "--batch-size", "1"],
                             lambda proc: partial_lines(out, "clip.json.*.partial") >= 2 * CLIP_FRAMES + 3, env=env)
    assert rc == 130, err  # interrupted past the second loop
    m = re.fullmatch(rf"posetokens infer: interrupted by SIGINT: the results of (\d+) finished frame\(s\) are in "
                     rf"{re.escape(str(out))}", err.strip().splitlines()[-1])
    assert m, err
    n = int(m.group(1))
    assert n >= 2 * CLIP_FRAMES + 3
    check_video_outputs(out, "clip", n)


def test_input_source_of_a_video_is_unchanged(clip: Path) -> None:
    src = open_input(clip)
    assert isinstance(src, InputSource) and src.kind == "video" and len(src) == CLIP_FRAMES and src.stem == "clip"


def test_live_stream_replay_reads_it_twice(monkeypatch: pytest.MonkeyPatch, clip: Path) -> None:
    """``replay=True`` (what a command that reads its input twice, like lift, needs): the second read plays back a
    recording of the first, with the same frame ids and (nearly) the same pixels; close removes the recording."""
    url = "http://127.0.0.1:8080/cam"
    opened = fake_camera(monkeypatch, url, clip)
    src = open_input(url, replay=True)
    assert src.kind == "stream" and src.stem == "stream_127_0_0_1_cam"
    first = [(f.frame_id, f.image) for f in src.frames()]
    second = [(f.frame_id, f.image) for f in src.frames()]
    assert opened == [url]  # the camera was opened once
    assert [i for i, _ in first] == [i for i, _ in second] == list(range(CLIP_FRAMES))
    for (_, a), (_, b) in zip(first, second):
        assert a.shape == b.shape == (64, 96, 3)
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # a high-quality recording
    recording = src.video._recording
    assert recording is not None and recording.is_file()
    src.video.close()
    assert not recording.parent.exists()


NAME_3D = "hot_mixste_h36m_243"
TINY_3D = {"num_frames": 27, "depth": 2, "dim": 32, "prune": {"keep": 9, "layer": 1}}


@pytest.fixture(scope="module")
def w3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HoT-MixSTE checkpoint of ours."""
    from posetokens.checkpoint import atomic_save, describe
    from posetokens.protocols import get_protocol
    from posetokens.registry import create_model, default_protocol

    torch.manual_seed(0)
    return atomic_save({**describe(NAME_3D, TINY_3D, get_protocol(default_protocol(NAME_3D))),
                        "state_dict": create_model(NAME_3D, **TINY_3D).state_dict()},
                       tmp_path_factory.mktemp("w") / "tiny3d.pth")


def check_lift_outputs(out: Path, stem: str, n: int) -> None:
    """2D json, 3D json and the side-by-side mp4 of a lift over n frames."""
    check_video_outputs(out, stem, n) if (out / f"{stem}.mp4").exists() else None
    records = json.loads((out / f"{stem}.json").read_text())
    assert [r["frame_id"] for r in records] == list(range(n))
    lifted = json.loads((out / f"{stem}_3d.json").read_text())
    assert [f["frame_id"] for f in lifted["frames"]] == list(range(n))
    assert decoded_frames(out / f"{stem}_3d.mp4") == n
    if h264_unavailable() is None:
        assert codec_of(out / f"{stem}_3d.mp4") == "h264"
    assert not leftovers(out)


def test_lift_on_a_looping_file_as_a_stream(clip: Path, w2d: Path, w3d: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert cli(["lift", str(clip), "--loop", "2", "--weights", str(w3d), "--pose2d-weights", str(w2d),
                "--out", str(out), "--progress"]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert re.search(rf"clip_3d\.mp4: 100%\|.*\| {2 * CLIP_FRAMES}/{2 * CLIP_FRAMES}", err), err  # < 200 frames
    assert "track(s) lifted -> " in captured.out and "each frame was taken as one person's box" in captured.out
    check_lift_outputs(out, "clip", 2 * CLIP_FRAMES)


def test_lift_on_a_stream_url(monkeypatch: pytest.MonkeyPatch, clip: Path, w2d: Path, w3d: Path,
                              tmp_path: Path) -> None:
    import tempfile

    url = "rtsp://cam.invalid/live"
    opened = fake_camera(monkeypatch, url, clip)
    out = tmp_path / "out"
    before = set(Path(tempfile.gettempdir()).glob("posetokens-stream-*"))
    assert cli(["lift", url, "--weights", str(w3d), "--pose2d-weights", str(w2d), "--out", str(out)]) == 0
    assert opened == [url]  # read once; the drawing plays back the recording
    check_lift_outputs(out, "stream_cam_invalid_live", CLIP_FRAMES)
    assert set(Path(tempfile.gettempdir()).glob("posetokens-stream-*")) <= before  # the recording is removed


def test_a_truncated_video_is_said_and_a_whole_one_is_not(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A recording cut off mid-file (an MP4 whose header, written first, declares 40 frames, and an MJPG AVI from
    OpenCV's writer) decodes fewer frames: the run uses them and says so in one line; the whole files, the shipped
    sample (whose MP4 edit list makes its frame count 207 against the 185 frames of its 7.4 s) and an MKV whose
    audio outlasts its video say nothing."""
    av = pytest.importorskip("av")
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as c:  # the moov header before the frames
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)  # noise: every frame has a size of its own, so half the bytes is a cut clip
        for _ in range(40):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())
    mkv = tmp_path / "longer_audio.mkv"  # an intact MKV whose audio (6 s) outlasts its video (40 frames, 4 s)
    with av.open(str(mkv), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=8000)
        a.layout = "mono"
        for _ in range(40):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        c.mux(s.encode())
        for i in range(60):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, 800 * i
            c.mux(a.encode(chunk))
        c.mux(a.encode())
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    n_cut = decoded_frames(cut)
    assert 0 < n_cut < 39 and decoded_frames(whole) == 40  # the premise, by OpenCV itself
    # an MJPG AVI as OpenCV's VideoWriter records it (the header's frame count is at the start; the index, at the
    # end, is what a cut loses), and its first half
    avi, cut_avi = tmp_path / "whole.avi", tmp_path / "cut.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(40):
        writer.write(rng.integers(0, 256, (48, 64, 3), np.uint8))
    writer.release()
    cut_avi.write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    n_avi = decoded_frames(cut_avi)
    assert 0 < n_avi < 39 and decoded_frames(avi) == 40
    capsys.readouterr()
    for path, frames in ((whole, 40), (cut, n_cut), (DATA / "video" / "sample_video.mp4", 185), (mkv, 40), (avi, 40),
                         (cut_avi, n_avi)):
        reader = api.VideoReader(path)
        assert sum(1 for _ in reader) == frames == reader.decoded_frames
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("posetokens: warning:")]
    assert warnings == [f"posetokens: warning: {cut}: the video ended after {n_cut} of the 40 frames its container "
                        "declares (a truncated or damaged file); the frames decoded were used",
                        f"posetokens: warning: {cut_avi}: the video ended after {n_avi} of the 40 frames its "
                        "container declares (a truncated or damaged file); the frames decoded were used"]
    reader = api.VideoReader(cut)  # a pass stopped early (--max-frames) says nothing
    for i, _ in enumerate(reader):
        if i == 2:
            break
    assert reader.decoded_frames is None and "warning" not in capsys.readouterr().err


def test_a_video_whose_times_start_late_is_whole(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An MKV of 20 frames at 25 a second whose times start at 5 s (a cut from a longer recording) states a 5.8 s
    duration: it was said to hold 145 frames and to be truncated after 20. It declares its 20 and is said nothing
    of; its first half is still said to be truncated (of the 20)."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    late = tmp_path / "late.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(late), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = 5000 + 40 * i, Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    with av.open(str(late)) as c:  # the premise: the container's duration counts from time 0
        assert c.duration == 5_800_000 and c.start_time == 5_000_000
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(late.read_bytes()[: late.stat().st_size // 2])
    n_cut = decoded_frames(cut)
    assert decoded_frames(late) == 20 and 0 < n_cut < 19
    capsys.readouterr()
    reader = api.VideoReader(late)
    assert reader.declared_frames == 20 and sum(1 for _ in reader) == 20
    assert sum(1 for _ in api.VideoReader(cut)) == n_cut
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("posetokens: warning:")]
    assert warnings == [f"posetokens: warning: {cut}: the video ended after {n_cut} of the 20 frames its container "
                        "declares (a truncated or damaged file); the frames decoded were used"]


def test_a_variable_frame_rate_video_is_said_as_such_not_as_truncated(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """An MKV of 30 frames over 2 s at a stated 25 a second (frames 40 or 120 ms apart, as phones record) decoded
    whole was said to be 'truncated or damaged' (the 50 frames of 2 s at 25 a second): it is said to have a
    variable frame rate, with its average (30 / 2.00 s = 15.00); its first half is still said to be truncated."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    vfr = tmp_path / "vfr.mkv"
    pts = np.cumsum([0] + [40 if i % 3 else 120 for i in range(29)]).tolist()  # ms; the last frame at 1960
    rng = np.random.default_rng(0)
    with av.open(str(vfr), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for p in pts:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode())
    slow = tmp_path / "slow.mkv"  # a screen recorder's: frames 200 ms apart, each packet lasting its 200 ms
    with av.open(str(slow), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for p in range(0, 30 * 200, 200):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            for packet in s.encode(frame):
                packet.duration = 200
                c.mux(packet)
        for packet in s.encode():
            packet.duration = 200
            c.mux(packet)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(vfr.read_bytes()[: vfr.stat().st_size // 2])
    n_cut = decoded_frames(cut)
    assert decoded_frames(vfr) == 30 == decoded_frames(slow) and 0 < n_cut < 29  # the premise, by OpenCV itself
    capsys.readouterr()
    reader = api.VideoReader(vfr)
    assert reader.fps == 25 and reader.declared_frames == 50  # what the container states
    assert sum(1 for _ in reader) == 30 and sum(1 for _ in api.VideoReader(cut)) == n_cut
    assert sum(1 for _ in api.VideoReader(slow)) == 30  # its last frame ends 200 ms after it starts: whole
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("posetokens: warning:")]
    assert warnings == [f"posetokens: warning: {vfr}: 30 frames over 2.00 s (15.00 a second on average), where its "
                        "container states 25 a second: a variable frame rate; each frame's json record has its time "
                        "('time_s'), which the temporal filter and an H.264 overlay video follow; the json's 'fps' and "
                        "`lift` take the stated rate",
                        f"posetokens: warning: {cut}: the video ended after {n_cut} of the 50 frames its container "
                        "declares (a truncated or damaged file); the frames decoded were used",
                        f"posetokens: warning: {slow}: 30 frames over 6.00 s (5.00 a second on average), where its "
                        "container states 25 a second: a variable frame rate; each frame's json record has its time "
                        "('time_s'), which the temporal filter and an H.264 overlay video follow; the json's 'fps' and "
                        "`lift` take the stated rate"]
