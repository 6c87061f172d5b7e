"""Multi-person tracking and lifting every track, on hand cases and on the synthetic multi-person clip.

Independent expectations: IoUs computed by hand for the Hungarian case; a box moving at a known constant
velocity for the occlusion gap; the synthetic clip's known identities scored by ``motmetrics`` (MOTA, identity
switches) with the crossings counted from the clip's ground truth; for ``lift``, a stand-in lifter that echoes
its 2D input, so every 3D track must carry the ground-truth 2D of the one synthetic person it follows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import EchoLifter

from posetokens.cli import main as cli
from posetokens.data.h36m import normalize_screen_coordinates
from posetokens.data.synthetic_video import make_clip
from posetokens.inference.lifting import lift
from posetokens.inference.tracking import PoseTracker, Tracker, box_iou, track_records

mm = pytest.importorskip("motmetrics")


# ------------------------------------------------------------------------------------------------ hand cases
def test_hungarian_beats_greedy_matching() -> None:
    """Tracks at [0, 10] and [4, 14] (x; 10 high). Detection d1 [1, 11] has IoU 90/110 with track 1 and 70/130
    with track 2; d2 [-3, 7] has 70/130 with track 1 and 30/170 (< 0.3, gated) with track 2. Greedy takes
    (1, d1) first and leaves d2 to a new track; the assignment maximising the total takes (1, d2) + (2, d1)."""
    tr = Tracker(match_thr=0.3)
    assert tr.update(np.array([[0, 0, 10, 10], [4, 0, 14, 10]])).tolist() == [1, 2]
    d = np.array([[1, 0, 11, 10], [-3, 0, 7, 10]], float)
    np.testing.assert_allclose(tr.similarity(d), [[90 / 110, 70 / 130], [70 / 130, 30 / 170]], atol=1e-9)
    assert tr.update(d).tolist() == [2, 1]
    assert len(tr.tracks) == 2  # no new track started


def test_track_survives_an_occlusion_gap_by_its_velocity() -> None:
    """A 40x80 box moving 6 px per frame is unseen for 10 frames: it reappears 66 px further than where it was
    last seen (no overlap with its last box), where the constant-velocity model puts it; a second, still
    person keeps its id throughout. With max_age below the gap the track has ended and a new id starts."""
    def run(max_age: int) -> list[list[int]]:
        tr = Tracker(max_age=max_age)
        out = []
        for t in range(30):
            boxes = [[500, 100, 540, 180]]
            if not 10 <= t < 20:
                boxes.append([6 * t, 100, 6 * t + 40, 180])
            out.append(tr.update(np.array(boxes, float)).tolist())
        return out

    ids = run(max_age=15)
    assert box_iou(np.array([[6 * 9, 100, 6 * 9 + 40, 180]]), np.array([[6 * 20, 100, 6 * 20 + 40, 180]]))[0, 0] == 0
    assert {f[0] for f in ids} == {1} and {f[1] for f in ids if len(f) == 2} == {2}
    ids = run(max_age=5)
    assert [f[1] for f in ids if len(f) == 2][-1] == 3  # the moving box comes back as a new person


def test_keypoints_separate_overlapping_boxes() -> None:
    """Two people with the same box: only OKS can tell them apart, and it keeps each with its own keypoints."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 100, (17, 2)), rng.uniform(0, 100, (17, 2))
    box = np.array([[0, 0, 100, 100]] * 2, float)
    tr = Tracker(layout="h36m")
    first = tr.update(box, np.stack([a, b]))
    for _ in range(3):
        assert tr.update(box, np.stack([b + 0.5, a - 0.5])).tolist() == first[::-1].tolist()


def test_keypoint_similarity_uses_the_layouts_evaluation_sigmas() -> None:
    """A CrowdPose track compared with the same box and pose, its left hip (joint 6) moved by (30, 40): IoU 1 and
    OKS the mean over the 14 joints of exp(-d^2 / (2 area (2 sigma)^2)), with CrowdPose's own sigmas (its official
    ``crowdposetools`` cocoeval: [.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79] / 10),
    not a flat 0.07 (which gives 0.5 + (13 + 0.0412) / 28 = 0.9658 against 0.9734)."""
    sigmas = np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10
    kp = np.random.default_rng(1).uniform(0, 100, (1, 14, 2))
    box = np.array([[0, 0, 100, 200]], float)
    moved = kp.copy()
    moved[0, 6] += [30, 40]
    e = np.exp(-2500 / (2 * 100 * 200 * (2 * sigmas[6]) ** 2))
    for layout, args in (("crowdpose", {}), ("my_layout", {"sigmas": sigmas})):  # built-in, or given
        tr = Tracker(layout=layout, **args)
        tr.update(box, kp)
        np.testing.assert_allclose(tr.similarity(box, moved), [[(1 + (13 + e) / 14) / 2]], atol=1e-12)
    h36m = Tracker(layout="h36m")  # a layout without evaluation sigmas: 0.07 for every joint
    h36m.update(box, kp[:, :14].repeat(2, axis=1)[:, :17])
    moved17 = kp[:, :14].repeat(2, axis=1)[:, :17].copy()
    moved17[0, 6] += [30, 40]
    np.testing.assert_allclose(h36m.similarity(box, moved17),
                               [[(1 + (16 + np.exp(-2500 / (2 * 20000 * 0.14 ** 2))) / 17) / 2]], atol=1e-12)


# A standing person in the box [100, 100, 300, 600]: head and arms (joints 0-10) in x 145..255, y 125..350, legs
# (11-16) down to y 580. With the legs scored below kpt_thr, the box carried from this pose covers the upper body
# only (grown 1.25x: 137.5x281.25 against the detector's 200x500).
STANDING = np.array([[200, 130], [195, 125], [205, 125], [185, 130], [215, 130], [160, 200], [240, 200], [150, 280],
                     [250, 280], [145, 350], [255, 350], [175, 380], [225, 380], [170, 480], [230, 480], [170, 580],
                     [230, 580]], float)


def _run_carried(people: list[Callable[[int], float]], frames: int, legs: float) -> tuple[list[list[int]], PoseTracker]:
    """A PoseTracker with the detector every 5 frames on people standing as STANDING moved ``x(t)`` pixels right,
    the stand-in 2D model returning, for each box, the pose of the person nearest its centre (joints 0-10 scored
    0.9, the legs ``legs``). Returns the ids per frame and the tracker."""
    def truth(t: int) -> np.ndarray:
        return np.stack([STANDING + [x(t), 0] for x in people])

    def detector(t: int) -> tuple[np.ndarray, np.ndarray]:
        return np.array([[100 + x(t), 100, 300 + x(t), 600] for x in people]), np.full(len(people), 0.9)

    pt = PoseTracker(detector, det_every=5, kpt_thr=0.3)
    sc = np.full(17, 0.9)
    sc[11:] = legs
    out = []
    for t in range(frames):
        boxes, scores = pt.boxes(t)
        poses = truth(t)
        near = np.argmin(np.abs((boxes[:, None, 0] + boxes[:, None, 2]) / 2 - poses[None, :, :, 0].mean(-1)), axis=1)
        ids, keep = pt.update(boxes, poses[near], np.tile(sc, (len(boxes), 1)), scores)
        assert keep.all()
        out.append(ids.tolist())
    return out, pt


@pytest.mark.parametrize("legs", [0.9, 0.1])
def test_a_still_person_keeps_one_id_across_carried_frames(legs: float) -> None:
    """One person standing still, the detector's box [100, 100, 300, 600] on frames 0, 5, 10, 15 and the boxes
    carried from the pose between: one id throughout, also when the legs score below kpt_thr (the carried box is
    then 137.5x281.25, the detector's 200x500). The carried boxes do not measure the track's box: it stays the
    detector's, with no velocity, so the detector box on frame 5 meets a like-sized track box."""
    ids, pt = _run_carried([lambda t: 0.0], 20, legs)
    assert ids == [[1]] * 20
    box, _ = pt.tracker.predict(pt.tracker.frame)
    np.testing.assert_allclose(box, [[100, 100, 300, 600]])
    np.testing.assert_allclose(pt.tracker.tracks[0].velocity, 0, atol=1e-9)


def test_two_people_apart_keep_their_ids_across_carried_frames() -> None:
    """Two people 400 px apart walking right at 4 and 6 px per frame (their boxes never overlap), legs scored
    below kpt_thr: each keeps its own id on every frame, and each track's box follows its person on the
    detector's velocity (on the last frame, a carried one, the detector's box of that frame: x from 100 + 4t and
    500 + 6t, still 200x500)."""
    ids, pt = _run_carried([lambda t: 4.0 * t, lambda t: 400 + 6.0 * t], 24, 0.1)
    assert ids == [[1, 2]] * 24
    box, _ = pt.tracker.predict(23)
    np.testing.assert_allclose(box, [[100 + 4 * 23, 100, 300 + 4 * 23, 600], [500 + 6 * 23, 100, 700 + 6 * 23, 600]],
                               atol=1e-6)


def test_a_person_turning_back_between_detector_frames_keeps_the_id() -> None:
    """A person walking right at 12 px per frame turns back at frame 5 (a detector frame: the track's velocity is
    +12) and walks left at 12 px per frame. The track's box coasts on that velocity through the carried frames,
    while the poses found in the boxes carried from it match it and give it their keypoints. On frame 10 the
    detector's box is 120 px from the coasted one (IoU 0.25, below the gate alone); the keypoints of frame 9,
    moved 12 px, match it: one id on every frame."""
    ids, _ = _run_carried([lambda t: 12.0 * min(t, 10 - t)], 15, 0.1)
    assert ids == [[1]] * 15


# ----------------------------------------------------------------------------------------- synthetic clip
def test_clip_is_deterministic_and_has_crossings_and_occlusions() -> None:
    c1, c2 = make_clip(people=3, frames=60, seed=3), make_clip(people=3, frames=60, seed=3)
    np.testing.assert_array_equal(c1.keypoints_2d, c2.keypoints_2d)
    assert c1.keypoints_2d.shape == (60, 3, 17, 2) and c1.keypoints_3d.shape == (60, 3, 17, 3)
    assert not np.array_equal(c1.keypoints_2d, make_clip(people=3, frames=60, seed=4).keypoints_2d)
    clip = make_clip(people=4, frames=150, seed=0)
    assert clip.crossings() >= 2
    inside = (clip.boxes[..., 0] >= 0) & (clip.boxes[..., 2] <= clip.width)
    assert (inside & ~clip.visible).any()  # someone fully in view is hidden by a nearer person
    # the 2D are the 3D seen through a pinhole (focal 1000, principal point at the image centre)
    p3 = clip.keypoints_3d
    np.testing.assert_allclose(clip.keypoints_2d, 1000 * p3[..., :2] / p3[..., 2:] + [640, 360], atol=1e-6)
    bones = np.linalg.norm(p3[:, :, 1] - p3[:, :, 2], axis=-1)  # right thigh: a fixed length per person
    np.testing.assert_allclose(bones, bones[:1].repeat(150, 0), atol=1e-9)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def _score(clip, records, ids) -> dict[str, float]:
    acc = mm.MOTAccumulator(auto_id=True)
    for t, r in enumerate(records):
        gid, gbox = clip.gt_boxes(t)
        hbox = np.array([i["bbox"] for i in r["instances"]], float).reshape(-1, 4)
        # motmetrics' iou_matrix calls np.asfarray (gone in NumPy 2): the same 1 - IoU distance, written here
        iou = np.array([[_iou(g, h) for h in hbox] for g in gbox]).reshape(len(gbox), len(hbox))
        dist = np.where(iou >= 0.5, 1 - iou, np.nan)
        acc.update(gid.tolist(), ids[t], dist)
    return mm.metrics.create().compute(acc, metrics=["mota", "num_switches", "num_objects"]).to_dict("records")[0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("noise_px,drop", [(0.0, 0.0), (2.0, 0.05)])
def test_tracking_on_the_synthetic_clip(seed: int, noise_px: float, drop: float) -> None:
    """Ground-truth boxes (exact, then with 2 px keypoint noise and 5 % of the detections dropped): MOTA >= 0.9
    and at most one identity switch per crossing of two people."""
    clip = make_clip(people=4, frames=150, seed=seed)
    records, _ = clip.records(noise_px=noise_px, drop_prob=drop, seed=seed)
    s = _score(clip, records, track_records(records))
    assert s["num_objects"] == int(clip.visible.sum())
    assert s["mota"] >= 0.9, s
    assert s["num_switches"] <= clip.crossings(), s


# ------------------------------------------------------------------------------------------- lifting tracks


def test_lift_every_track_of_two_crossing_people(tmp_path: Path) -> None:
    clip = make_clip(people=2, frames=100, seed=1)  # they cross; each is hidden or out of view for 6 frames
    assert clip.crossings() == 1 and (~clip.visible).sum(0).tolist() == [6, 6]
    records, gt = clip.records(noise_px=1.0, seed=1)
    src = tmp_path / "two.json"
    src.write_text(json.dumps(records))
    summary = lift(src, EchoLifter(), tmp_path / "out", draw=False)
    assert summary["tracks"] == 2 and summary["tracks_skipped"] == 0 and summary["min_track_frames"] == 30
    res = json.loads((tmp_path / "out" / "two_3d.json").read_text())
    assert sorted(t["track_id"] for t in res["tracks"]) == [1, 2]
    owner: dict[int, set[int]] = {1: set(), 2: set()}  # track id -> true ids of the instances it holds
    for t, f in enumerate(res["frames"]):
        for q in f["people"]:
            if q["instance"] is not None:
                owner[q["track_id"]].add(gt[t][q["instance"]])
    assert sorted(map(sorted, owner.values())) == [[1], [2]]  # one person per track, ids stable over the clip
    for tid, ids in owner.items():
        p = int(ids.pop()) - 1
        track = next(t for t in res["tracks"] if t["track_id"] == tid)
        seen = [t for t, f in enumerate(res["frames"]) for q in f["people"] if q["track_id"] == tid]
        assert seen == list(range(track["first_frame"], track["last_frame"] + 1))  # gaps filled, within the span
        assert track["frames_detected"] == int(clip.visible[seen, p].sum())
        kp3 = np.array([q["keypoints_3d"] for f in res["frames"] for q in f["people"] if q["track_id"] == tid])
        expect = normalize_screen_coordinates(clip.keypoints_2d[seen, p], clip.width, clip.height)
        expect[:, 0] = 0  # the echo lifter's 3D is its 2D input, the root joint zeroed by the pipeline
        vis = clip.visible[seen, p]
        np.testing.assert_allclose(kp3[vis, :, :2], expect[vis], atol=0.01)  # 1 px noise ~ 0.0016 normalised


def test_lift_keeps_input_track_ids_and_skips_short_tracks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = make_clip(people=2, frames=40, seed=0)
    records, gt = clip.records(seed=0)
    for r, ids in zip(records, gt):
        for inst, g in zip(r["instances"], ids):
            inst["track_id"] = 10 * g
    records[5]["instances"].append(dict(records[5]["instances"][0], track_id=99))  # a 1-frame track
    src = tmp_path / "ids.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "out"
    seen = int(clip.visible.any(axis=1).sum())
    assert cli(["lift", str(src), "--model", "hot_motionbert_h36m_243", "--out", str(tmp_path / "cli"), "--no-draw",
                "--min-track-frames", "5"]) == 0
    said = capsys.readouterr().out
    assert f"40 frame(s), {seen} with a person; 2 track(s) lifted, 1 shorter than 5 frames skipped" in said
    assert "--boxes" not in said  # a json's people need no boxes
    summary = lift(src, EchoLifter(), out, draw=False, min_track_frames=5, progress=True)
    assert summary["tracks"] == 2 and summary["tracks_skipped"] == 1
    spans = sum(t["last_frame"] - t["first_frame"] + 1 for t in json.loads((out / "ids_3d.json").read_text())["tracks"])
    # a json's lifting shows a bar (it was silent for the whole run: ~25 s a track for MHFormer)
    assert re.search(rf"lifting 2 track\(s\): 100%\|.*\| {spans}/{spans} ", capsys.readouterr().err)
    res = json.loads((out / "ids_3d.json").read_text())
    assert res["tracking"] == "the input's track_id"
    assert sorted(t["track_id"] for t in res["tracks"]) == [10, 20]
    assert res["tracks_skipped"] == [{"track_id": 99, "frames_detected": 1}]
    with pytest.raises(ValueError, match="min_track_frames must be a whole number >= 1, got 0"):
        lift(src, EchoLifter(), out, min_track_frames=0)
    with pytest.raises(ValueError, match=r"no track of at least 41 frames \(the longest has 40\)"):
        lift(src, EchoLifter(), out, min_track_frames=41)


# ------------------------------------------------------------------------ hand-computed tracker rules
def _pose(x0: float = 10.0) -> np.ndarray:
    """17 joints on a 4 x 5 grid inside the box [x0, 0, x0 + 40, 60] (so each joint has its own place)."""
    g = np.stack(np.meshgrid(np.arange(4) * 10.0 + x0 + 5, np.arange(5) * 12.0 + 6), -1).reshape(-1, 2)
    return g[:17]


def test_a_track_lives_max_age_unmatched_frames() -> None:
    box = np.array([[10.0, 0.0, 50.0, 60.0]])
    for unseen, same in ((2, True), (3, False)):
        tracker = Tracker(max_age=2)
        assert tracker.update(box).tolist() == [1]
        for _ in range(unseen):
            tracker.update(np.zeros((0, 4)))
        assert (tracker.update(box).tolist() == [1]) is same, unseen


def test_oks_counts_joints_scored_above_kpt_thr_on_both_sides() -> None:
    """The OKS of a track and a pose averages the joints both score above ``kpt_thr``: joints 9-16 moved 50 px,
    scored at the threshold on either side, leave the similarity at IoU 1 and OKS 1."""
    box = np.array([[10.0, 0.0, 50.0, 60.0]])
    kp = _pose()[None]
    moved = kp.copy()
    moved[0, 9:] += 50.0
    full, part = np.ones((1, 17)), np.r_[np.ones(9), np.full(8, 0.5)][None]
    for track_scores, pose_scores in ((part, full), (full, part)):
        tracker = Tracker(kpt_thr=0.5)
        tracker.update(box, kp, track_scores)
        assert tracker.similarity(box, moved, pose_scores)[0, 0] == pytest.approx(1.0, abs=1e-12)
    tracker = Tracker(kpt_thr=0.5)  # every joint counted: the moved ones lower it
    tracker.update(box, kp, full)
    assert tracker.similarity(box, moved, full)[0, 0] < 0.9


def test_a_track_born_on_a_carried_frame_takes_no_velocity_from_it() -> None:
    """A pose-made box at birth is no sample of the motion: after the next detector box the track predicts that
    box where it is (velocity 0), not moved on by the step between the two boxes."""
    tracker = Tracker()
    tracker.update(np.array([[10.0, 0.0, 50.0, 60.0]]), measured=False)
    tracker.update(np.array([[15.0, 0.0, 55.0, 60.0]]))
    boxes, _ = tracker.predict(tracker.frame + 1)
    np.testing.assert_allclose(boxes, [[15.0, 0.0, 55.0, 60.0]])


def test_pose_boxes_keep_joints_scored_at_the_threshold() -> None:
    """Joints scored at least ``kpt_thr`` count: (0, 0) and (50, 50) at 0.3 give the extent grown 1.25 times."""
    from posetokens.inference.tracking import pose_boxes

    boxes, enough = pose_boxes(np.array([[[0.0, 0.0], [50.0, 50.0]]]), np.array([[0.3, 0.3]]), kpt_thr=0.3)
    np.testing.assert_allclose(boxes, [[-6.25, -6.25, 56.25, 56.25]])
    assert enough.tolist() == [True]


def test_carried_boxes_drop_duplicates_at_dedup_iou_and_move_with_the_centre_velocity() -> None:
    """Carried frames (det_every 2): two poses whose boxes overlap at exactly ``dedup_iou`` (0.6) are one person,
    the better scored one kept; a carried box moves on by the track's centre velocity (1 px a frame here)."""
    frames = {0: np.array([[0.0, 0.0, 10.0, 20.0]]), 2: np.array([[2.0, 0.0, 12.0, 20.0]])}
    pt = PoseTracker(lambda f: (frames[f], np.ones(len(frames[f]))), det_every=2)
    poses = {0: [[1.0, 2.0], [9.0, 18.0]], 1: [[2.0, 2.0], [10.0, 18.0]], 2: [[3.0, 2.0], [11.0, 18.0]]}
    for f in range(3):
        boxes, _ = pt.boxes(f)
        assert pt.carried == (f == 1)
        ids, keep = pt.update(boxes, np.array([poses[f]]), np.ones((1, 2)))
        assert ids.tolist() == [1] and keep.tolist() == [True]
    # frame 2's pose spans (3, 2)-(11, 18): centre (7, 10), half (4, 8) x 1.25; moved on 1 px in x
    boxes, _ = pt.boxes(3)
    assert pt.carried
    np.testing.assert_allclose(boxes, [[3.0, 0.0, 13.0, 20.0]])
    # two poses on the carried frame whose boxes (extent, no growth) overlap 75 / 125 = 0.6: the second dropped
    a, b = [[0.0, 0.0], [10.0, 10.0]], [[2.5, 0.0], [12.5, 10.0]]
    ids, keep = pt.update(boxes.repeat(2, axis=0), np.array([a, b]), np.array([[1.0, 1.0], [0.9, 0.9]]))
    assert keep.tolist() == [True, False] and ids[1] == 0
