"""The video pipeline end to end: the detector every N frames, identity switches per crossing, infer's track ids
and MMPose-style prediction file, lift's 3D panel per person, the time per stage, and the One-Euro filter per
track on the synthetic multi-person clip.

Independent expectations: the synthetic clip's known identities and boxes, scored by ``motmetrics`` (MOTA,
SWITCH events); crossings found from the clip's ground-truth boxes; box and timing figures computed by hand;
the MMPose file layout of MMPose 1.x (``demo/topdown_demo_with_mmdet.py --save-predictions`` and
``mmpose.structures.split_instances``: ``bbox`` a list holding one box, frame ids from 1); the track colours
of :data:`~posetokens.inference.visualize.TRACK_COLOURS` (Tableau 10) found in the rendered panels.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import EchoLifter

from posetokens.cli import main as cli
from posetokens.data.synthetic_video import make_clip
from posetokens.inference.filters import make_filter
from posetokens.inference.lifting import TrackPanels, lift, panel_layout, track_arrays
from posetokens.inference.stages import StageTimer, stage_table
from posetokens.inference.tracking import (
    PoseTracker,
    box_iou,
    pose_boxes,
    track_records,
    tracks_of,
)
from posetokens.inference.visualize import TRACK_COLOURS

mm = pytest.importorskip("motmetrics")


# ------------------------------------------------------------------------------------------------ helpers
def gt_detector(clip):
    """Ground-truth person boxes of the visible people (the detector)."""
    def detect(t: int) -> tuple[np.ndarray, np.ndarray]:
        _, boxes = clip.gt_boxes(t)
        return boxes.copy(), np.full(len(boxes), 0.9)
    return detect


def gt_pose_model(clip, noise_px: float, seed: int):
    """A stand-in 2D model: for each box, the noisy ground-truth pose of the visible person it overlaps most
    (score 0.9); a box over nobody gives a low-scored pose at its centre (score 0.05)."""
    rng = np.random.default_rng(seed)

    def estimate(t: int, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vis = np.flatnonzero(clip.visible[t])
        kp, sc = np.zeros((len(boxes), 17, 2)), np.zeros((len(boxes), 17))
        iou = box_iou(boxes, clip.boxes[t, vis]) if len(vis) else np.zeros((len(boxes), 0))
        for i in range(len(boxes)):
            j = int(np.argmax(iou[i])) if iou.shape[1] else -1
            if j >= 0 and iou[i, j] > 0.1:
                kp[i], sc[i] = clip.keypoints_2d[t, vis[j]] + rng.normal(0, noise_px, (17, 2)), 0.9
            else:
                kp[i], sc[i] = (boxes[i, :2] + boxes[i, 2:]) / 2 + rng.normal(0, 5, (17, 2)), 0.05
        return kp, sc
    return estimate


def accumulate(clip, hyp_boxes: list[np.ndarray], hyp_ids: list[list[int]]):
    """A motmetrics accumulator of the tracks against the clip's visible people (match: box IoU >= 0.5)."""
    acc = mm.MOTAccumulator(auto_id=True)
    for t in range(clip.frames):
        gid, gbox = clip.gt_boxes(t)
        iou = box_iou(gbox, hyp_boxes[t])
        acc.update(gid.tolist(), list(hyp_ids[t]), np.where(iou >= 0.5, 1 - iou, np.nan))
    return acc


def score(acc) -> dict[str, float]:
    return mm.metrics.create().compute(acc, metrics=["mota", "num_switches", "num_objects"]).to_dict("records")[0]


def crossing_events(clip, margin: int = 5) -> list[tuple[int, int, int, int, int]]:
    """Every crossing of two people as ``(id a, id b, crossing frame, first frame, last frame)``: the frame where
    their box centres change order (counted while both are in the image) and the run of frames around it in
    which their ground-truth boxes overlap, widened by ``margin`` frames each side (a hidden person is matched
    again on reappearing). Several order changes within one run of overlap are one crossing (the first)."""
    b = clip.boxes
    cx = (b[..., 0] + b[..., 2]) / 2
    inside = (b[..., 2] > 0) & (b[..., 0] < clip.width)
    events = []
    for a in range(b.shape[1]):
        for c in range(a + 1, b.shape[1]):
            overlap = (np.minimum(b[:, a, 2], b[:, c, 2]) > np.maximum(b[:, a, 0], b[:, c, 0])) & \
                      (np.minimum(b[:, a, 3], b[:, c, 3]) > np.maximum(b[:, a, 1], b[:, c, 1]))
            both = np.flatnonzero(inside[:, a] & inside[:, c])
            s = np.sign(cx[both, a] - cx[both, c])
            frames, s = both[s != 0], s[s != 0]
            runs: dict[tuple[int, int], int] = {}
            for k in np.flatnonzero(s[1:] != s[:-1]):
                t = t0 = t1 = int(frames[k + 1])
                while t0 > 0 and overlap[t0 - 1]:
                    t0 -= 1
                while t1 < clip.frames - 1 and overlap[t1 + 1]:
                    t1 += 1
                runs.setdefault((t0, t1), t)
            events += [(int(clip.ids[a]), int(clip.ids[c]), t, max(0, t0 - margin), min(clip.frames - 1, t1 + margin))
                       for (t0, t1), t in sorted(runs.items())]
    return events


def switches(acc) -> list[tuple[int, int]]:
    """``(frame, true id)`` of every identity switch (motmetrics events of type SWITCH)."""
    ev = acc.mot_events
    sw = ev[ev.Type == "SWITCH"]
    return [(int(f), int(o)) for (f, _), o in zip(sw.index, sw.OId)]


# ------------------------------------------------------------------------------------- detector every N
def test_carried_box_by_hand() -> None:
    """A detector frame, then a carried one: the box is the extent of the joints scored >= kpt_thr, grown 1.25x
    about its centre (rtmlib's pose_to_bbox), moved by the track's velocity (0 after one sighting)."""
    calls = []

    def detector(t):
        calls.append(t)
        return np.array([[0.0, 0.0, 100.0, 200.0]]), np.array([0.8])

    pt = PoseTracker(detector, det_every=3, kpt_thr=0.5)
    kp = np.array([[[10.0, 20.0], [50.0, 120.0], [30.0, 60.0], [500.0, 500.0]]])
    sc = np.array([[0.9, 0.9, 0.6, 0.1]])  # the last joint is below kpt_thr: left out
    boxes, scores = pt.boxes(0)
    ids, keep = pt.update(boxes, kp, sc, scores)
    assert ids.tolist() == [1] and keep.tolist() == [True]
    boxes, scores = pt.boxes(1)
    # extent x 10..50, y 20..120: centre (30, 70), half sizes (20, 50) * 1.25 = (25, 62.5)
    np.testing.assert_allclose(boxes, [[5.0, 7.5, 55.0, 132.5]])
    assert scores.tolist() == [0.8] and pt.carried and calls == [0]
    pt.update(boxes, kp, sc, scores)
    boxes, scores = pt.boxes(2)
    pt.update(boxes, kp, sc, scores)
    pt.boxes(3)
    assert calls == [0, 3] and pt.detector_frames == 2 and not pt.carried
    b, ok = pose_boxes(np.zeros((2, 3, 2)), np.array([[1, 0, 0], [1, 1, 0]]), kpt_thr=0.5)
    assert ok.tolist() == [False, True] and b[0].tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"det_every must be a whole number >= 1, got 0$"):
        PoseTracker(detector, det_every=0)


def test_carried_duplicates_keep_the_better_pose() -> None:
    """Two carried boxes whose poses land on one person (the hidden person's box now shows the occluder): the
    better-scored pose is kept, the other dropped (id 0)."""
    pt = PoseTracker(lambda t: (np.array([[0, 0, 50, 100], [200, 0, 250, 100]], float), np.ones(2)), det_every=2)
    a = np.array([[10.0, 10.0], [40.0, 90.0]])
    b = np.array([[210.0, 10.0], [240.0, 90.0]])
    boxes, scores = pt.boxes(0)
    pt.update(boxes, np.stack([a, b]), np.full((2, 2), 0.9), scores)
    boxes, scores = pt.boxes(1)
    ids, keep = pt.update(boxes, np.stack([a + 1, a + 2]), np.array([[0.9, 0.9], [0.6, 0.6]]), scores)
    assert keep.tolist() == [True, False] and ids.tolist() == [1, 0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_detector_every_5_frames_keeps_mota(seed: int) -> None:
    """The synthetic clip, ground-truth boxes as the detector on every 5th frame only, noisy ground-truth poses
    standing in for the 2D model (2 px): MOTA >= 0.9 (motmetrics), the detector ran on 30 of 150 frames."""
    clip = make_clip(people=4, frames=150, seed=seed)
    pt = PoseTracker(gt_detector(clip), det_every=5, layout="h36m")
    estimate = gt_pose_model(clip, 2.0, seed)
    hyp_boxes, hyp_ids = [], []
    for t in range(clip.frames):
        boxes, scores = pt.boxes(t)
        kp, sc = estimate(t, boxes)
        ids, keep = pt.update(boxes, kp, sc, scores)
        hyp_boxes.append(boxes[keep])
        hyp_ids.append(ids[keep].tolist())
    s = score(accumulate(clip, hyp_boxes, hyp_ids))
    assert pt.detector_frames == 30
    assert s["num_objects"] == int(clip.visible.sum())
    assert s["mota"] >= 0.9, s


# --------------------------------------------------------------------------------- strict identity test
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("noise_px,drop", [(0.0, 0.0), (2.0, 0.05)])
def test_at_most_one_switch_per_crossing(seed: int, noise_px: float, drop: float) -> None:
    """Ground-truth boxes (exact, then 2 px noise and 5 % of the detections dropped): every identity switch
    happens within a crossing of the person switched (their boxes overlapping, +-5 frames), and is counted for
    the crossing of that person nearest in time; each crossing has at most one; MOTA >= 0.9."""
    clip = make_clip(people=4, frames=150, seed=seed)
    records, _ = clip.records(noise_px=noise_px, drop_prob=drop, seed=seed)
    ids = track_records(records)
    boxes = [np.array([i["bbox"] for i in r["instances"]], float).reshape(-1, 4) for r in records]
    acc = accumulate(clip, boxes, ids)
    s = score(acc)
    assert s["mota"] >= 0.9, s
    events = crossing_events(clip)
    assert len(events) >= 4
    per_crossing = {e: 0 for e in events}
    for f, o in switches(acc):
        around = [e for e in events if o in e[:2] and e[3] <= f <= e[4]]
        assert around, f"identity switch of person {o} at frame {f} outside any crossing: {events}"
        per_crossing[min(around, key=lambda e: abs(e[2] - f))] += 1
    assert max(per_crossing.values()) <= 1, per_crossing


# -------------------------------------------------------------------------------------- infer's outputs
NAME_2D = "tokenpose_s_coco_256x192"
TINY_2D = {"image_size": [64, 48], "dim": 32, "depth": 1, "heads": 4}


@pytest.fixture(scope="module")
def w2d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny TokenPose-S checkpoint of ours (random weights)."""
    from posetokens.checkpoint import atomic_save, describe
    from posetokens.data.metainfo import get_metainfo
    from posetokens.protocols import get_protocol
    from posetokens.registry import create_model, default_protocol

    torch.manual_seed(0)
    return atomic_save({**describe(NAME_2D, TINY_2D, get_protocol(default_protocol(NAME_2D)), get_metainfo("coco")),
                        "state_dict": create_model(NAME_2D, **TINY_2D).state_dict()},
                       tmp_path_factory.mktemp("w") / "tiny2d.pth")


@pytest.fixture(scope="module")
def two_walkers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 12-frame 320x160 video of two grey blocks walking apart (3 px per frame) and their detections file
    (COCO results, image_id = frame index; person A at x 40.., person B at x 200..)."""
    folder = tmp_path_factory.mktemp("walk")
    path = folder / "walk.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 160))
    dets = []
    for t in range(12):
        img = np.full((160, 320, 3), 30, np.uint8)
        for x0 in (40 - 3 * t, 200 + 3 * t):
            img[20:140, x0:x0 + 50] = 200
            dets.append({"image_id": t, "category_id": 1, "bbox": [x0, 20, 50, 120], "score": 0.9})
        w.write(img)
    w.release()
    (folder / "dets.json").write_text(json.dumps(dets))
    return path, folder / "dets.json"


def test_infer_writes_track_ids_and_an_mmpose_prediction_file(two_walkers, w2d: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    video, dets = two_walkers
    out = tmp_path / "out"
    preds = tmp_path / "mm" / "walk_preds.json"
    (tmp_path / "mm").mkdir()
    assert cli(["infer", str(video), "--weights", str(w2d), "--boxes", str(dets), "--out", str(out),
                "--mmpose-preds", str(preds), "--no-draw", "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "person instance(s) -> " in said and "--boxes" not in said  # boxes given: nothing to say of them
    records = json.loads((out / "walk.json").read_text())
    assert len(records) == 12 and all(r["weights"] == str(w2d) and r["random_weights"] is False for r in records)
    for r in records:  # each box keeps the id it got in frame 0: A (left, starts first in the file) 1, B 2
        by_x = sorted(r["instances"], key=lambda i: i["bbox"][0])
        assert [i["track_id"] for i in by_x] == [1, 2]
    assert cli(["infer", str(video), "--weights", str(w2d), "--boxes", str(dets), "--out", str(out),  # a rerun
                "--mmpose-preds", str(preds), "--no-draw", "--no-progress", "--max-frames", "2"]) == 0
    assert len(json.loads(preds.read_text())["instance_info"]) == 2  # replaced the earlier run's file
    assert cli(["infer", str(video), "--weights", str(w2d), "--boxes", str(dets), "--out", str(out),
                "--mmpose-preds", str(preds), "--no-draw", "--no-progress"]) == 0
    records = json.loads((out / "walk.json").read_text())
    mmp = json.loads(preds.read_text())
    assert set(mmp) == {"meta_info", "instance_info"}
    meta = mmp["meta_info"]
    assert meta["dataset_name"] == "coco" and meta["num_keypoints"] == 17 and meta["num_skeleton_links"] == 19
    assert meta["keypoint_id2name"]["0"] == "nose" and meta["keypoint_name2id"]["right_ankle"] == 16
    assert meta["flip_indices"][:3] == [0, 2, 1] and meta["sigmas"][0] == pytest.approx(0.026)
    assert [f["frame_id"] for f in mmp["instance_info"]] == list(range(1, 13))  # the demo counts frames from 1
    for f, r in zip(mmp["instance_info"], records):
        assert len(f["instances"]) == len(r["instances"])
        for a, b in zip(f["instances"], r["instances"]):
            assert set(a) == {"keypoints", "keypoint_scores", "bbox", "bbox_score", "track_id"}
            assert a["bbox"] == [b["bbox"]] and a["keypoints"] == b["keypoints"] and a["track_id"] == b["track_id"]
            assert len(a["keypoint_scores"]) == 17
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name or p.name.startswith(".")]
    with pytest.raises(ValueError, match="is a folder; expected a json file path"):
        from posetokens.inference.api import PoseEstimator

        PoseEstimator(weights=w2d).infer(video, out, mmpose_preds=tmp_path)


def test_infer_smooths_each_track_causally_and_off_is_untouched(two_walkers, w2d: Path, tmp_path: Path) -> None:
    """``infer`` on a video filters each track's 2D with One-Euro by default (the issue: on by default for the
    video commands): equal to the offline reference filter (``filters.one_euro``, checked by hand in
    test_filters) run on that track's unfiltered keypoints; ``--filter off`` writes the unfiltered ones;
    Savitzky-Golay, which needs future frames, is refused in one line."""
    from posetokens.inference.filters import VIDEO_DEFAULT, one_euro

    video, dets = two_walkers
    args = ["infer", str(video), "--weights", str(w2d), "--boxes", str(dets), "--no-draw", "--no-progress",
            "--kpt-thr", "0"]
    assert cli([*args, "--out", str(tmp_path / "off"), "--filter", "off"]) == 0
    assert cli([*args, "--out", str(tmp_path / "on")]) == 0
    raw = json.loads((tmp_path / "off" / "walk.json").read_text())
    smooth = json.loads((tmp_path / "on" / "walk.json").read_text())

    def track(records: list, tid: int) -> np.ndarray:
        return np.stack([np.asarray(next(i for i in r["instances"] if i["track_id"] == tid)["keypoints"])
                         for r in records])

    for tid in (1, 2):
        x, got = track(raw, tid), track(smooth, tid)
        want = one_euro(x, 10.0, VIDEO_DEFAULT.min_cutoff, VIDEO_DEFAULT.beta, VIDEO_DEFAULT.d_cutoff,
                        None, VIDEO_DEFAULT.gap, 320 / 2)
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert np.abs(got - x).max() > 0.01  # it did smooth
    assert cli([*args, "--out", str(tmp_path / "sg"), "--filter", "savgol"]) == 2
    # the Python API gives the model's keypoints unless told (smooth=None); smooth="one_euro" is the CLI's default
    from posetokens import PoseEstimator

    est = PoseEstimator(weights=w2d)
    for filt, want in ((None, raw), ("one_euro", smooth)):
        out = tmp_path / f"api_{filt}"
        est.infer(video, out, boxes=dets, draw=False, progress=False, kpt_thr=0.0, smooth=filt)
        for tid in (1, 2):
            np.testing.assert_array_equal(track(json.loads((out / "walk.json").read_text()), tid), track(want, tid))


def test_a_variable_frame_rate_video_keeps_its_timing(two_walkers, w2d: Path, w3d: Path, tmp_path: Path) -> None:
    """The walkers re-encoded as a phone records (a stated 10 a second, frames 100 or 300 ms apart): each json
    record has its frame's time (the pts written), each track is filtered at those times (the causal filter
    stepped by hand with them, which differs from the stated rate's), and the overlay video shows each frame at
    its time (read back with PyAV). ``lift`` keeps the times in its json."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    from posetokens.media import h264_unavailable
    from posetokens.inference.filters import VIDEO_DEFAULT, OneEuroStream

    video, dets = two_walkers
    pts = np.cumsum([0] + [300 if i % 4 == 3 else 100 for i in range(11)]).tolist()  # ms
    vfr = tmp_path / "walk.mkv"
    cap = cv2.VideoCapture(str(video))
    with av.open(str(vfr), "w") as c:
        st = c.add_stream("libx264", rate=10, options={"crf": "10"})
        st.width, st.height, st.pix_fmt = 320, 160, "yuv420p"
        st.codec_context.time_base = Fraction(1, 1000)
        for p in pts:
            ok, img = cap.read()
            assert ok
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = p, Fraction(1, 1000)
            c.mux(st.encode(frame))
        c.mux(st.encode())
    args = ["infer", str(vfr), "--weights", str(w2d), "--boxes", str(dets), "--no-progress", "--kpt-thr", "0"]
    assert cli([*args, "--out", str(tmp_path / "off"), "--filter", "off", "--no-draw"]) == 0
    assert cli([*args, "--out", str(tmp_path / "on")]) == 0
    raw = json.loads((tmp_path / "off" / "walk.json").read_text())
    smooth = json.loads((tmp_path / "on" / "walk.json").read_text())
    assert [r["time_s"] for r in smooth] == [p / 1000 for p in pts] == [r["time_s"] for r in raw]
    for tid in (1, 2):
        x = [np.asarray(next(i for i in r["instances"] if i["track_id"] == tid)["keypoints"]) for r in raw]
        got = np.stack([next(i for i in r["instances"] if i["track_id"] == tid)["keypoints"] for r in smooth])
        args_ = (VIDEO_DEFAULT.min_cutoff, VIDEO_DEFAULT.beta, VIDEO_DEFAULT.d_cutoff, 10.0, VIDEO_DEFAULT.gap, 160.0)
        timed, steady = OneEuroStream(*args_), OneEuroStream(*args_)
        want = np.stack([timed.step(k, None, p / 1000) for k, p in zip(x, pts)])
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert np.abs(np.stack([steady.step(k) for k in x]) - want).max() > 0.05  # the times mattered
    if h264_unavailable() is None:
        with av.open(str(tmp_path / "on" / "walk.mp4")) as c:
            shown = [round(float(f.time), 6) for f in c.decode(video=0)]
        assert shown == [p / 1000 for p in pts]
    assert cli(["lift", str(tmp_path / "on" / "walk.json"), "--weights", str(w3d), "--no-draw", "--min-track-frames",
                "1", "--precision", "fp32", "--out", str(tmp_path / "3d")]) == 0
    lifted = json.loads((tmp_path / "3d" / "walk_3d.json").read_text())
    assert [f["time_s"] for f in lifted["frames"]] == [p / 1000 for p in pts]


def test_a_video_without_frame_times_keeps_its_rate(two_walkers, w2d: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream whose decoder gives no times (OpenCV's position is 0 for every frame): the frames after the
    first have no ``time_s`` and the overlay keeps one frame per frame of the stated rate (it piled them up a
    tick apart), read back with PyAV."""
    av = pytest.importorskip("av")
    from posetokens.inference import api
    from posetokens.media import h264_unavailable

    real = api.cv2.VideoCapture

    class Timeless:
        def __init__(self, *a: object) -> None:
            self.cap = real(*a)

        def get(self, prop: int) -> float:
            return 0.0 if prop == api.cv2.CAP_PROP_POS_MSEC else self.cap.get(prop)

        def __getattr__(self, name: str) -> object:
            return getattr(self.cap, name)

    monkeypatch.setattr(api.cv2, "VideoCapture", Timeless)
    video, dets = two_walkers
    api.PoseEstimator(weights=str(w2d)).infer(str(video), tmp_path / "out", boxes=str(dets), progress=False)
    records = json.loads((tmp_path / "out" / "walk.json").read_text())
    assert records[0]["time_s"] == 0.0 and not any("time_s" in r for r in records[1:]) and len(records) == 12
    if h264_unavailable() is None:
        with av.open(str(tmp_path / "out" / "walk.mp4")) as c:
            shown = [float(f.time) for f in c.decode(video=0)]
        np.testing.assert_allclose(shown, [i / 10 for i in range(12)], atol=1e-9)


def test_a_video_writer_that_fails_to_close_still_leaves_the_json(two_walkers, w2d: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The overlay's encoder failing at close (FFmpeg refused a damaged stream's timestamps) left the json
    unfinished too: the json of every frame is written, then the error is raised."""
    from posetokens.inference import api

    def fail(self) -> None:
        self.closed = True
        self._temp.discard()
        raise RuntimeError("the encoder refused to finish")

    monkeypatch.setattr(api.VideoWriter, "close", fail)
    video, dets = two_walkers
    with pytest.raises(RuntimeError, match="the encoder refused to finish"):
        api.PoseEstimator(weights=str(w2d)).infer(str(video), tmp_path / "out", boxes=str(dets), progress=False)
    records = json.loads((tmp_path / "out" / "walk.json").read_text())
    assert [r["frame_id"] for r in records] == list(range(12)) and not (tmp_path / "out" / "walk.mp4").exists()


@pytest.mark.parametrize("gap", ["restart", "hold"])
def test_infer_filters_a_track_across_frames_without_it(two_walkers, w2d: Path, tmp_path: Path, gap: str) -> None:
    """Person B is missing from frames 5-7 and keeps its id: its causal filter is told of those frames, so the
    result equals the offline reference filter over the track with those frames invalid (under ``restart`` frame 8
    passes through unfiltered). The filter of a track was stepped only on the frames it was in, so frame 8 was
    smoothed as if one frame had passed."""
    from posetokens.inference.filters import VIDEO_DEFAULT, one_euro

    video, dets = two_walkers
    gappy = tmp_path / "gap.json"
    gappy.write_text(json.dumps([d for d in json.loads(dets.read_text())
                                 if not (5 <= d["image_id"] <= 7 and d["bbox"][0] >= 200)]))
    args = ["infer", str(video), "--weights", str(w2d), "--boxes", str(gappy), "--no-draw", "--no-progress",
            "--kpt-thr", "0"]
    assert cli([*args, "--out", str(tmp_path / "off"), "--filter", "off"]) == 0  # off takes no --filter-gap
    assert cli([*args, "--out", str(tmp_path / "on"), "--filter-gap", gap]) == 0
    raw = json.loads((tmp_path / "off" / "walk.json").read_text())
    smooth = json.loads((tmp_path / "on" / "walk.json").read_text())
    x, got = np.zeros((12, 17, 2)), np.zeros((12, 17, 2))
    valid = np.zeros(12, bool)
    for t, (r, f) in enumerate(zip(raw, smooth)):
        for inst, inst_f in zip(r["instances"], f["instances"]):
            if inst["track_id"] == 2:
                x[t], got[t], valid[t] = inst["keypoints"], inst_f["keypoints"], True
    assert valid.tolist() == [True] * 5 + [False] * 3 + [True] * 4  # B kept its id across the gap
    want = one_euro(x, 10.0, VIDEO_DEFAULT.min_cutoff, VIDEO_DEFAULT.beta, VIDEO_DEFAULT.d_cutoff, valid, gap, 320 / 2)
    np.testing.assert_allclose(got[valid], want[valid], atol=2e-3)
    if gap == "restart":
        np.testing.assert_allclose(got[8], x[8], atol=2e-3)  # afresh after the gap
    assert np.abs(got[9:] - x[9:]).max() > 0.01  # it did smooth after it


def test_infer_det_every_runs_the_boxes_on_every_nth_frame(two_walkers, w2d: Path, tmp_path: Path) -> None:
    from posetokens.inference.api import DetectionsFile, PoseEstimator

    video, dets = two_walkers
    det = DetectionsFile(dets)
    seen: list[int] = []

    def boxes(frame):
        seen.append(frame.frame_id)
        return det(frame)

    est = PoseEstimator(weights=w2d, batch_size=4)
    s = est.infer(video, tmp_path / "o", boxes=boxes, det_every=5, draw=False, max_frames=11)
    assert seen == [0, 5, 10] and s["detector_frames"] == 3 and s["frames"] == 11
    records = json.loads((tmp_path / "o" / "walk.json").read_text())
    assert len(records) == 11 and all(len(r["instances"]) >= 1 for r in records)
    assert all("track_id" in i for r in records for i in r["instances"])
    with pytest.raises(ValueError, match="det_every applies to videos and streams"):
        img = tmp_path / "a.png"
        cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
        est.infer(img, tmp_path / "o2", det_every=2)
    with pytest.raises(ValueError, match="max_frames must be a whole number >= 1, got 0"):
        est.infer(video, tmp_path / "o3", max_frames=0)
    # the generator takes the same options: the boxes on frames 0, 5, 10, and the records' keypoints, smoothed
    seen.clear()
    got = list(itertools.islice(est(video, boxes=boxes, det_every=5), 11))
    assert seen == [0, 5, 10] and [r.frame_id for r in got] == list(range(11))
    for r, rec in zip(got, records):
        np.testing.assert_array_equal(r.track_ids, [i["track_id"] for i in rec["instances"]])
    # smooth: each track equals the offline reference filter (checked by hand in test_filters) over its unfiltered
    # keypoints, joints scored under the model's threshold invalid, at the clip's 10 frames a second
    from posetokens.inference.filters import VIDEO_DEFAULT, one_euro

    raw, smooth = list(est(video, boxes=dets)), list(est(video, boxes=dets, smooth="one_euro"))

    def track(results: list, tid: int, field: str = "keypoints") -> np.ndarray:
        return np.stack([getattr(r, field)[list(r.track_ids).index(tid)] for r in results])

    for tid in (1, 2):
        x, valid = track(raw, tid), track(raw, tid, "keypoint_scores") >= est.default_kpt_thr
        want = one_euro(x, 10.0, VIDEO_DEFAULT.min_cutoff, VIDEO_DEFAULT.beta, VIDEO_DEFAULT.d_cutoff, valid,
                        VIDEO_DEFAULT.gap, 320 / 2)
        np.testing.assert_allclose(track(smooth, tid), want, atol=2e-3)
        assert np.abs(track(smooth, tid) - x).max() > 0.01  # it did smooth
    with pytest.raises(ValueError, match="det_every applies to videos and streams"):
        est(img, det_every=2)
    with pytest.raises(ValueError, match="a temporal filter applies to videos and streams"):
        est(img, smooth="one_euro")


# -------------------------------------------------------------------------------------- 3D panel per person


def test_panel_layout() -> None:
    assert panel_layout(1, 480) == (1, 1, 480)
    assert panel_layout(2, 480) == (2, 1, 240)
    assert panel_layout(3, 480) == (2, 2, 240)
    assert panel_layout(4, 480) == (2, 2, 240)


def test_lift_draws_one_3d_panel_per_track(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two people (a 1280x720 clip): the video is the frame scaled to 480 high (854 wide) and two
    240-pixel panels, one per track, each drawn in its track's colour; with --max-panels 1 only the best-scored
    track gets one and the other is named on stderr."""
    import av

    clip = make_clip(people=2, frames=16, seed=1)
    records, _ = clip.records(noise_px=1.0, seed=1)
    src = tmp_path / "two.json"
    src.write_text(json.dumps(records))
    summary = lift(src, EchoLifter(), tmp_path / "out", min_track_frames=5)
    assert sorted(summary["panels"]) == [1, 2]
    with av.open(str(tmp_path / "out" / "two_3d.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 16 and frames[0].shape == (480, 854 + 240, 3)
    # one panel per track, each in its own colour (rendered frames, before encoding)
    res = json.loads((tmp_path / "out" / "two_3d.json").read_text())
    assert res["video_panels"] == summary["panels"]
    tracks = {}
    for tid in (1, 2):
        kp = np.zeros((16, 17, 2))
        valid = np.zeros(16, bool)
        pose = np.zeros((16, 17, 3))
        for t, f in enumerate(res["frames"]):
            for q in f["people"]:
                if q["track_id"] == tid:
                    kp[t], pose[t], valid[t] = q["keypoints_2d"], q["keypoints_3d"], not q["filled"]
        tracks[tid] = (kp, np.ones((16, 17)), valid, pose)
    panels = TrackPanels(tracks, [1, 2], 1280, 720, 0.3)
    t = int(np.flatnonzero(tracks[1][2] & tracks[2][2])[0])
    img = panels.render(t, np.full((720, 1280, 3), 255, np.uint8))[..., ::-1]  # RGB
    assert img.shape == (480, 1094, 3)
    for k, tid in enumerate((1, 2)):
        region = img[k * 240:(k + 1) * 240, 854:]
        own = np.abs(region.astype(int) - TRACK_COLOURS[tid - 1]).sum(-1) < 30
        other = np.abs(region.astype(int) - TRACK_COLOURS[2 - tid]).sum(-1) < 30
        assert own.sum() > 50 and other.sum() == 0, (tid, own.sum(), other.sum())
    capsys.readouterr()
    summary = lift(src, EchoLifter(), tmp_path / "one", min_track_frames=5, max_panels=1)
    best = max(res["tracks"], key=lambda r: r["score"])["track_id"]
    assert summary["panels"] == [best]
    assert re.search(rf"3D panels for 1 of 2 lifted people \(ids {best}; not shown: {3 - best}\)",
                     capsys.readouterr().err)
    with av.open(str(tmp_path / "one" / "two_3d.mp4")) as c:
        assert next(c.decode(video=0)).to_ndarray(format="rgb24").shape == (480, 854 + 480, 3)
    with pytest.raises(ValueError, match="max_panels must be a whole number >= 1"):
        lift(src, EchoLifter(), tmp_path / "x", max_panels=0)
    with pytest.raises(ValueError, match="det_every applies to a video or a stream"):
        lift(src, EchoLifter(), tmp_path / "x", det_every=3)


# -------------------------------------------------------------------------------------- time per stage
def test_stage_timer_by_hand(capsys: pytest.CaptureFixture) -> None:
    import io

    out = io.StringIO()
    t = StageTimer(live=True, every=2, stream=out)
    t.add("decode", 0.1)
    t.add("2D model", 0.3)
    t.frame_done()
    t.add("decode", 0.1)
    t.add("2D model", 0.5)
    t.frame_done()
    s = t.summary()
    assert s["frames"] == 2
    assert s["stages"]["decode"] == {"seconds": 0.2, "ms_per_frame": 100.0, "fps": 10.0}
    assert s["stages"]["2D model"] == {"seconds": 0.8, "ms_per_frame": 400.0, "fps": 2.5}
    assert s["total"] == {"seconds": 1.0, "ms_per_frame": 500.0, "fps": 2.0}
    assert list(s["stages"]) == ["decode", "2D model"]  # pipeline order, only the stages that ran
    assert out.getvalue() == ("posetokens: 2 frame(s): decode 100.0 ms (10.0 FPS) | 2D model 400.0 ms (2.5 FPS) | "
                              "total 500.0 ms (2.0 FPS)\n")
    assert stage_table(s).splitlines()[3] == "| decode | 100.00 | 10.0 | 0.200 |"
    with pytest.raises(ValueError, match="unknown stage 'nms'"):
        t.add("nms", 1.0)


def test_infer_and_lift_print_the_time_per_stage(two_walkers, w2d: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    video, dets = two_walkers
    assert cli(["infer", str(video), "--loop", "3", "--weights", str(w2d), "--boxes", str(dets), "--out",
                str(tmp_path / "o"), "--progress"]) == 0
    cap = capsys.readouterr()
    # stderr is not a terminal here: a plain line every 25 frames; the table at the end, on stdout
    lines = re.findall(r"posetokens: 25 frame\(s\): (.*)", cap.err)
    assert len(lines) == 1
    assert [p.split(" ")[0] for p in lines[0].split(" | ")] == ["decode", "detector", "2D", "tracking", "drawing",
                                                                "encode", "total"]
    table = cap.out.split("per stage, 36 frame(s):\n")[1].splitlines()
    assert [r.split(" | ")[0].strip("| ") for r in table[2:]] == ["decode", "detector", "2D model", "tracking",
                                                                 "drawing", "encode", "total"]
    assert cli(["infer", str(video), "--weights", str(w2d), "--out", str(tmp_path / "q"), "--no-progress"]) == 0
    assert "per stage" not in capsys.readouterr().out
    clip = make_clip(people=2, frames=30, seed=1)
    src = tmp_path / "two.json"
    src.write_text(json.dumps(clip.records(seed=1)[0]))
    s = lift(src, EchoLifter(), tmp_path / "l", min_track_frames=5, progress=True)["stages"]
    assert s["frames"] == 30 and list(s["stages"]) == ["lifting", "drawing", "encode"]
    assert "posetokens: 25 frame(s): lifting" in capsys.readouterr().err


# --------------------------------------------------------------------------- One-Euro per track, multi-person
def test_one_euro_halves_the_acceleration_error_of_every_track() -> None:
    """The synthetic 4-person clip (25 fps) with 3 px of 2D noise, tracked: One-Euro (min_cutoff 1 Hz,
    beta 10, the speed in half frame widths per second) lowers each track's acceleration error against its
    person's clean 2D by at least half; off returns the very same array."""
    filt = make_filter("one_euro", min_cutoff=1.0, beta=10.0)
    ratios = []
    for seed in range(4):
        clip = make_clip(people=4, frames=150, seed=seed)
        records, gt = clip.records(noise_px=3.0, seed=seed)
        for tr in tracks_of(track_records(records)).values():
            kp, _, valid = track_arrays(records, tr)
            first, last = min(tr), max(tr)
            person = {gt[t][i] for t, i in tr.items()}
            assert len(person) == 1  # one person per track
            x, v = kp[first:last + 1], valid[first:last + 1]
            if v.sum() < 10:
                continue
            clean = clip.keypoints_2d[first:last + 1, person.pop() - 1]
            m = v[2:] & v[1:-1] & v[:-2]  # acceleration where three detected frames follow each other

            def accel(a: np.ndarray, clean: np.ndarray = clean, m: np.ndarray = m) -> float:
                e = a - clean
                return float(np.linalg.norm(e[2:] - 2 * e[1:-1] + e[:-2], axis=-1)[m].mean())

            out = filt(x, v, fps=clip.fps, scale=clip.width / 2)
            ratios.append(accel(out) / accel(x))
            off = make_filter("off")(x, v, fps=clip.fps, scale=clip.width / 2)
            assert off is x and off.tobytes() == x.tobytes()
    assert len(ratios) >= 16
    assert max(ratios) <= 0.5, ratios


# ------------------------------------------------------------------------------------ the shared videos
NAME_3D = "hot_mixste_h36m_243"
TINY_3D = {"num_frames": 27, "depth": 2, "dim": 32, "prune": {"keep": 9, "layer": 1}}


@pytest.fixture(scope="module")
def w3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HoT-MixSTE checkpoint of ours (random weights)."""
    from posetokens.checkpoint import atomic_save, describe
    from posetokens.protocols import get_protocol
    from posetokens.registry import create_model, default_protocol

    torch.manual_seed(0)
    return atomic_save({**describe(NAME_3D, TINY_3D, get_protocol(default_protocol(NAME_3D))),
                        "state_dict": create_model(NAME_3D, **TINY_3D).state_dict()},
                       tmp_path_factory.mktemp("w") / "tiny3d.pth")


def played_back(path: Path) -> tuple[str, int, tuple[int, int]]:
    """Codec name, number of frames and (width, height) of a video decoded back with PyAV."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = [f for f in c.decode(stream)]
        return stream.codec_context.name, len(frames), (frames[0].width, frames[0].height)


@pytest.mark.parametrize("name,frames", [  # on the shared 2-core machine under load: 3-21 s, 11-16 s
    ("mmpose_demo.mp4", 5), pytest.param("sample_video.mp4", 8, marks=pytest.mark.slow)])
def test_infer_and_lift_on_the_shared_videos(name: str, frames: int, w2d: Path, w3d: Path, tmp_path: Path) -> None:
    """Both shared videos (the first 8 frames at most) through infer and lift, and through the stream path (the
    file read as a stream, twice over): every video written decodes back (PyAV) with one frame per input frame,
    as H.264 where PyAV has an H.264 encoder."""
    from conftest import DATA

    from posetokens.media import h264_unavailable

    video = DATA / "video" / name
    stem = video.stem
    h264 = h264_unavailable() is None
    out = tmp_path / "infer"
    assert cli(["infer", str(video), "--weights", str(w2d), "--out", str(out), "--max-frames", "8",
                "--mmpose-preds", str(tmp_path / "preds.json"), "--no-progress"]) == 0
    codec, n, size = played_back(out / f"{stem}.mp4")
    assert n == frames and (codec == "h264") == h264 and size[0] % 2 == 0
    assert len(json.loads((out / f"{stem}.json").read_text())) == frames
    assert len(json.loads((tmp_path / "preds.json").read_text())["instance_info"]) == frames
    out = tmp_path / "lift"
    assert cli(["lift", str(video), "--weights", str(w3d), "--pose2d-weights", str(w2d), "--out", str(out),
                "--max-frames", "8", "--det-every", "2", "--no-progress"]) == 0
    codec, n, size = played_back(out / f"{stem}_3d.mp4")
    assert n == frames and (codec == "h264") == h264 and size[1] == 480
    lifted = json.loads((out / f"{stem}_3d.json").read_text())
    assert len(lifted["frames"]) == frames and lifted["tracks"]
    out = tmp_path / "stream"
    assert cli(["lift", str(video), "--loop", "2", "--weights", str(w3d), "--pose2d-weights", str(w2d), "--out",
                str(out), "--max-frames", str(frames + 3), "--no-progress"]) == 0
    codec, n, _ = played_back(out / f"{stem}_3d.mp4")
    assert n == frames + 3 and (codec == "h264") == h264
    records = json.loads((out / f"{stem}.json").read_text())
    assert [r["frame_id"] for r in records] == list(range(frames + 3))  # counted on across the loop


def test_online_lift_refuses_a_filter_that_needs_the_future(two_walkers, w2d: Path, w3d: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    """``lift --online`` is causal: Savitzky-Golay (window // 2 future frames) is refused in one line, before
    anything is written."""
    video, dets = two_walkers
    out = tmp_path / "out"
    assert cli(["lift", str(video), "--weights", str(w3d), "--pose2d-weights", str(w2d), "--boxes", str(dets),
                "--out", str(out), "--online", "--filter", "savgol", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any("Savitzky-Golay filter needs 4 future frames" in line for line in err)
    assert not out.exists() or not any(out.iterdir())


def test_lift_of_infers_json_does_not_filter_the_2d_a_second_time(two_walkers, w2d: Path, w3d: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """``infer`` filters a video's 2D by default and its records say so (``filter``); ``lift`` of that json filtered
    the 2D again (twice the lag of ``lift`` of the video) and now filters the 3D only, and says so. Its 2D is the
    json's as given: the same as lifting the json with the filter off."""
    video, dets = two_walkers
    assert cli(["infer", str(video), "--weights", str(w2d), "--boxes", str(dets), "--no-draw", "--no-progress",
                "--out", str(tmp_path / "2d")]) == 0
    src = tmp_path / "2d" / "walk.json"
    records = json.loads(src.read_text())
    assert all(r["filter"]["name"] == "one_euro" and r["filter"]["fps"] == 10.0 for r in records)
    capsys.readouterr()
    args = ["lift", str(src), "--weights", str(w3d), "--no-draw", "--min-track-frames", "1", "--precision", "fp32"]
    assert cli([*args, "--out", str(tmp_path / "on")]) == 0
    assert (f"posetokens: note: {src}: its 2D was filtered by infer (one_euro); lift filters the 3D only"
            in capsys.readouterr().err)
    assert cli([*args, "--out", str(tmp_path / "off"), "--filter", "off"]) == 0
    on, off = (json.loads((tmp_path / d / "walk_3d.json").read_text()) for d in ("on", "off"))
    assert on["filter"]["applied_to"] == "3d" and on["filter"]["2d_filtered_by_infer"]["name"] == "one_euro"
    for a, b in zip(on["frames"], off["frames"]):
        for p, q in zip(a["people"], b["people"]):
            assert p["keypoints_2d"] == q["keypoints_2d"]  # the 2D as infer wrote it
    # the Python API: off unless told (smooth=None), and smooth="one_euro" is the command's default
    for filt, want in ((None, off), ("one_euro", on)):
        lift(src, None, tmp_path / f"api_{filt}", weights=w3d, draw=False, min_track_frames=1, precision="fp32",
             smooth=filt)
        got = json.loads((tmp_path / f"api_{filt}" / "walk_3d.json").read_text())
        assert [[p["keypoints_3d"] for p in f["people"]] for f in got["frames"]] == \
            [[p["keypoints_3d"] for p in f["people"]] for f in want["frames"]]


def test_a_carried_box_takes_the_estimators_threshold() -> None:
    """``PoseTracker(det, det_every=5)`` kept its own 0.3 threshold: with GTPT's SimCC scores (peaks near 0.1,
    hand-made 0.09 here) no joint counted, so the carried box was empty and the person vanished until the next
    detector frame. Its default is now the estimator's ``default_kpt_thr`` (0.3 outside one)."""
    from posetokens.inference.api import Frame, PoseEstimator
    from posetokens.inference.visualize import draw_skeleton

    def detector(frame):
        return np.array([[0.0, 0.0, 100.0, 200.0]]), np.array([0.8])

    kp = np.array([[[10.0, 20.0], [50.0, 120.0], [30.0, 60.0]]])
    low = np.full((1, 3), 0.09)
    alone = PoseTracker(detector, det_every=5)
    alone.update(*alone.boxes(None)[:1], kp, low, np.array([0.8]))
    assert alone.boxes(None)[0].shape == (0, 4)  # 0.3 outside an estimator: the person is lost
    est = PoseEstimator("tokenpose_s_coco_256x192", image_size=(64, 48), dim=32, depth=2, heads=4)
    run = PoseTracker(detector, det_every=5)
    frames = [Frame(i, "clip.mp4", np.zeros((200, 100, 3), np.uint8), video=True) for i in range(2)]
    list(est.run_frames(frames, run))
    assert run.kpt_thr is None and run._thr == est.default_kpt_thr  # set for each run, not kept for good
    run.fallback_thr = 0.5
    list(est.run_frames(frames, run))
    assert run._thr == est.default_kpt_thr
    gtpt_like = PoseTracker(detector, det_every=5, kpt_thr=0.03)  # what a GTPT estimator gives it
    gtpt_like.update(*gtpt_like.boxes(None)[:1], kp, low, np.array([0.8]))
    assert gtpt_like.boxes(None)[0].shape == (1, 4)
    with pytest.raises(ValueError, match=r"kpt_thr: expected a number \(the least keypoint score drawn\), got 'a'"):
        est.infer(np.zeros(1), "never_made", kpt_thr="a")
    assert not Path("never_made").exists()
    with pytest.raises(ValueError, match=r"scores must be \(N, 17\) for keypoints \(1, 17, 2\), got \(1, 5\)"):
        draw_skeleton(np.zeros((50, 50, 3), np.uint8), np.zeros((1, 17, 2)), np.zeros((1, 5)), "coco")


def test_infer_runs_a_given_pose_tracker_as_it_is(shared_data, tmp_path: Path) -> None:
    """``infer(video, boxes=PoseTracker(det, det_every=3))`` wrapped the tracker in a second one of its own
    ``det_every`` (1): the detector ran on every frame. The given tracker is used as it is; a ``det_every`` of
    infer's beside it is refused (it would be dropped)."""
    from posetokens.inference.api import PoseEstimator

    calls = []

    def detector(frame):
        calls.append(frame.frame_id)
        return np.array([[400.0, 100.0, 900.0, 700.0]]), np.array([0.9])

    est = PoseEstimator("tokenpose_s_coco_256x192", image_size=(64, 48), dim=32, depth=2, heads=4)
    video = shared_data / "video" / "sample_video.mp4"
    est.infer(video, tmp_path / "a", boxes=PoseTracker(detector, det_every=3), max_frames=7, draw=False,
              progress=False)
    assert calls == [0, 3, 6]
    with pytest.raises(ValueError, match=r"det_every 2 with a PoseTracker as boxes: give it to the PoseTracker"):
        est.infer(video, tmp_path / "b", boxes=PoseTracker(detector, det_every=3), det_every=2, draw=False)
