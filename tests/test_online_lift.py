"""Online (causal, frame-by-frame) lifting agrees with an offline pass over the same causal windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posetokens.data import synthetic_motion as sm
from posetokens.data.h36m import normalize_screen_coordinates
from posetokens.inference.filters import make_filter
from posetokens.inference.lifting import lift_sequence
from posetokens.inference.online import OnlineLifter, lift_online
from posetokens.protocols.predict import predict_windows
from posetokens.registry import create_model

W, H, L = 1000, 1002, 40


@pytest.fixture(scope="module")
def track() -> np.ndarray:
    """A synthetic person's projected H36M-17 2D (L, 17, 2) pixels."""
    body = sm.sample_body(np.random.default_rng(0))
    world = sm.generate_sequence(body, "Walking", L, np.random.default_rng(1))
    cam = sm.sample_cameras(0, ["S1"])["S1"][0]
    return cam.project(cam.world_to_camera(world))


def _model(name: str, **kw):
    torch.manual_seed(0)
    return create_model(name, num_frames=9, depth=2, dim=32, heads=4, mlp_hidden=64, **kw).eval()


def _offline(model, kp: np.ndarray, windows: np.ndarray, out_pos: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(normalize_screen_coordinates(kp, W, H).astype(np.float32))
    pred = predict_windows(model, x[torch.from_numpy(windows)], False).numpy().astype(np.float64)
    return pred[np.arange(len(windows)), out_pos]


def test_seq2seq_online_equals_offline_causal_windows(track) -> None:
    model = _model("mixste_h36m_243")
    f = 9
    assert not model.is_seq2frame
    # the causal windows, written out: frames t-8..t, the first frame repeated before the start
    windows = np.array([[max(0, t - f + 1 + i) for i in range(f)] for t in range(L)])
    assert windows[0].tolist() == [0] * 9 and windows[3].tolist() == [0] * 6 + [1, 2, 3]
    assert windows[20].tolist() == list(range(12, 21))
    want = _offline(model, track, windows, np.full(L, f - 1))  # the current frame is the window's last
    online = OnlineLifter(model, W, H)
    assert online.latency_frames == 0
    for t in range(L):
        r = online.push(track[t])
        assert r is not None and r.index == t and not r.held  # each frame's 3D as soon as it arrives
        np.testing.assert_allclose(r.pose3d, want[t], rtol=0, atol=1e-5)
    assert online.flush() == []
    assert online.fps > 0
    whole, lifter = lift_online(model, track, None, W, H)
    np.testing.assert_allclose(whole, want, rtol=0, atol=1e-5)
    assert lifter.latency_frames == 0


def _mhformer():
    torch.manual_seed(0)
    return create_model("mhformer_h36m_351", num_frames=9, channel=32, d_hid=64, mhg_depth=1, mhg_heads=3, heads=4,
                        shr_depth=1, chi_depth=1).eval()


def test_seq2frame_online_and_lookahead(track) -> None:
    model = _mhformer()
    f, pad = 9, 4
    assert model.is_seq2frame
    # latency 0: centred on the current frame, its 4 future slots repeat it
    windows = np.array([[min(t, max(0, t - pad + i)) for i in range(f)] for t in range(L)])
    assert windows[10].tolist() == [6, 7, 8, 9, 10, 10, 10, 10, 10]
    want = _offline(model, track, windows, np.zeros(L, int))
    got, lifter = lift_online(model, track, None, W, H)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert lifter.latency_frames == 0
    # lookahead = F // 2: the offline result, returned 4 frames late
    online = OnlineLifter(model, W, H, lookahead=pad)
    assert online.latency_frames == 4
    res = [online.push(track[t]) for t in range(L)]
    assert res[:pad] == [None] * pad and [r.index for r in res[pad:]] == list(range(L - pad))
    tail = online.flush()
    assert [r.index for r in tail] == list(range(L - pad, L))
    got = np.stack([r.pose3d for r in res[pad:] + tail])
    np.testing.assert_allclose(got, lift_sequence(model, track, np.ones((L, 17)), W, H), rtol=0, atol=1e-5)


def test_tpc_online_equals_offline_window_by_window(track) -> None:
    """TPC keeps the frames its density-peak cluster picks: a discrete choice whose near-ties (the repeated
    padding frames) can flip with the float rounding of the batch it runs in (about 1e-4 m on this random
    model, also in float64), so the offline pass here runs the same causal windows one by one."""
    model = _model("tpc_mixste_h36m_243", prune={"keep": 5, "layer": 1})  # 9 frames -> 5 kept
    assert model.is_seq2frame
    windows = np.array([[min(t, max(0, t - 4 + i)) for i in range(9)] for t in range(L)])
    want = np.concatenate([_offline(model, track, windows[t:t + 1], np.zeros(1, int)) for t in range(L)])
    got, lifter = lift_online(model, track, None, W, H)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert lifter.latency_frames == 0


def test_gaps_filters_and_errors(track) -> None:
    model = _model("mixste_h36m_243")
    valid = np.ones(L, bool)
    valid[:3] = False
    valid[10:13] = False
    got, _ = lift_online(model, track, None, W, H, valid=valid)
    assert np.isnan(got[:3]).all() and np.isfinite(got[3:]).all()  # no person yet: no 3D
    # a gap holds the last 2D seen: frame 12's window is frames 4..9 then 9, 9, 9
    held = track.copy()
    held[10:13] = track[9]
    windows = np.array([[max(3, t - 8 + i) for i in range(9)] for t in range(3, L)])
    np.testing.assert_allclose(got[3:], _offline(model, held, windows, np.full(L - 3, 8)), rtol=0, atol=1e-5)
    # causal 2D/3D One-Euro filters run frame by frame; off changes nothing
    off, _ = lift_online(model, track, None, W, H, filter2d=make_filter("off"), filter3d=make_filter("off"))
    np.testing.assert_array_equal(off, lift_online(model, track, None, W, H)[0])
    smooth, _ = lift_online(model, track, None, W, H, filter2d=make_filter("one_euro"),
                            filter3d=make_filter("one_euro"), fps=50.0)
    assert np.isfinite(smooth).all() and not np.allclose(smooth, off)
    with pytest.raises(ValueError, match=r"lookahead must be an integer in \[0, 8\] frames"):
        OnlineLifter(model, W, H, lookahead=9)
    with pytest.raises(ValueError, match="Savitzky-Golay filter needs 4 future frames"):
        OnlineLifter(model, W, H, filter3d=make_filter("savgol"), fps=50.0)
    with pytest.raises(ValueError, match="frame 0 holds non-finite keypoints"):
        OnlineLifter(model, W, H).push(np.full((17, 2), np.nan))


def test_nan_scores_and_mismatched_lengths_are_refused(track) -> None:
    """A 3-channel lifter (MotionBERT) given a NaN score returned NaN 3D without a word (online, the frame spoilt
    every later one in its window); valid or scores of another length raised a bare IndexError."""
    torch.manual_seed(0)
    mb = create_model("motionbert_h36m_243", num_frames=9, depth=1, dim=32, heads=2, dim_rep=32).eval()
    scores = np.ones((L, 17))
    scores[5, 3] = np.nan
    with pytest.raises(ValueError, match=r"^lift_sequence: scores\[5, 3\] = nan is not finite; expected finite"):
        lift_sequence(mb, track, scores, W, H)
    lifter = OnlineLifter(mb, W, H)
    lifter.push(track[0], np.ones(17))
    with pytest.raises(ValueError, match=r"^online lifting: frame 1: scores must be 17 finite numbers, got 17 "
                                         r"value\(s\) with NaN or inf$"):
        lifter.push(track[1], scores[5])
    with pytest.raises(ValueError, match=r"frame 1: scores must be 17 finite numbers, got 5 value\(s\)$"):
        lifter.push(track[1], np.ones(5))
    mix = create_model("mixste_h36m_243", num_frames=9, depth=1, dim=16, heads=2, mlp_hidden=32).eval()
    two = OnlineLifter(mix, W, H)  # a 2-channel lifter reads no scores, but the same call is refused as above
    with pytest.raises(ValueError, match=r"^online lifting: frame 0: scores must be 17 finite numbers, got 17 "
                                         r"value\(s\) with NaN or inf$"):
        two.push(track[0], scores[5])
    with pytest.raises(ValueError, match=r"^lift_sequence: scores\[5, 3\] = nan is not finite; expected finite"):
        lift_sequence(mix, track, scores, W, H)
    with pytest.raises(ValueError, match=rf"^lift_online: valid must be \(L,\) = \({L},\) like the keypoints, got "
                                         r"\(3,\)$"):
        lift_online(mb, track, None, W, H, valid=[True] * 3)
    with pytest.raises(ValueError, match=rf"^lift_online: scores must have one row per frame \({L}\), got 3$"):
        lift_online(mb, track, np.ones((3, 17)), W, H)
    # types the numpy conversion read wrongly or raised on: named in one line
    with pytest.raises(ValueError, match=r"^online lifting: lookahead must be an integer .* got None$"):
        OnlineLifter(mb, W, H, lookahead=None)
    with pytest.raises(ValueError, match=r"^online lifting: flip_test must be True or False, got 'no'$"):
        OnlineLifter(mb, W, H, flip_test="no")
    with pytest.raises(ValueError, match=r"^lift_online: expected H36M-17 keypoints \(L, 17, 2\) as numbers, got a "
                                         r"generator$"):
        lift_online(mb, (k for k in track), None, W, H)
    with pytest.raises(ValueError, match=r"^lift_online: valid must be \(L,\) = .* booleans \(or 0/1\), got values "
                                         r"of type <U2$"):
        lift_online(mb, track, None, W, H, valid=["no"] * L)  # read as booleans, every "no" was true
    with pytest.raises(ValueError, match=r"^online lifting: frame 0: scores: expected 17 scores as numbers, got text$"):
        OnlineLifter(mb, W, H).push(track[0], ["1"] * 17)
    # a rate given as text reached numpy's isfinite; no frames at all, and NaN frames, named for the function called
    with pytest.raises(ValueError, match=r"^One-Euro filter: fps must be a positive number of frames per second, "
                                         r"got '25'$"):
        OnlineLifter(mb, W, H, filter3d="one_euro", fps="25")
    with pytest.raises(ValueError, match=r"^lift_sequence: keypoints hold no frames \(L = 0\); expected at least one$"):
        lift_sequence(mb, np.zeros((0, 17, 2)), None, W, H)
    nan = track.copy()
    nan[3:5] = np.nan
    with pytest.raises(ValueError, match=r"^lift_online: frame 3 holds non-finite keypoints \(2 frames do\); mark "
                                         r"frames without the person False in valid$"):
        lift_online(mb, nan, None, W, H)
    held = lift_online(mb, nan, None, W, H, valid=~np.isnan(nan).any(axis=(1, 2)))[0]  # the way the message names
    assert np.isfinite(held).all()
    ones = lift_online(mb, track, None, W, H, valid=np.ones(L, int))[0]  # 0/1 is a mask too, as ints or floats
    np.testing.assert_array_equal(ones, lift_online(mb, track, None, W, H)[0])
    np.testing.assert_array_equal(ones, lift_online(mb, track, None, W, H, valid=np.ones(L))[0])
    with pytest.raises(ValueError, match=r"^lift_online: valid must be .* got other numbers than 0/1$"):
        lift_online(mb, track, None, W, H, valid=np.full(L, 0.5))


def test_filter_names_and_a_push_after_flush(track) -> None:
    """``filter2d="one_euro"`` failed with "'str' object has no attribute 'stream'": a name is taken as
    ``--filter`` takes it (the same numbers as its FilterConfig). A push after ``flush()`` went on with latency 0
    and windows mixing the two streams: refused until ``reset()``."""
    model = _model("mixste_h36m_243")
    named, _ = lift_online(model, track, None, W, H, filter2d="one_euro", filter3d="one_euro", fps=50.0)
    config, _ = lift_online(model, track, None, W, H, filter2d=make_filter("one_euro"),
                            filter3d=make_filter("one_euro"), fps=50.0)
    np.testing.assert_array_equal(named, config)
    with pytest.raises(ValueError, match=r"filter2d: expected a filter name \('off', 'one_euro', 'savgol'\) or a "
                                         r"FilterConfig, got int"):
        OnlineLifter(model, W, H, filter2d=3)
    online = OnlineLifter(model, W, H, lookahead=3)
    for t in range(5):
        online.push(track[t])
    assert [f.index for f in online.flush()] == [2, 3, 4]
    with pytest.raises(ValueError, match=r"the stream was ended by flush\(\); call reset\(\)"):
        online.push(track[5])
    online.reset()
    assert online.push(track[0]) is None and online.latency_frames == 3


def test_seq2seq_lookahead_returns_each_frame_from_its_own_slot(track) -> None:
    """``lookahead=k`` on a seq2seq model: frame t's 3D is slot ``F - 1 - k`` of the window ending at ``t + k``
    (module doc), and at the end of the stream (flush) the slot of frame t in the last window."""
    model = _model("mixste_h36m_243")
    f, k = 9, 3
    newest = np.minimum(np.arange(L) + k, L - 1)
    windows = np.array([[max(0, n - f + 1 + i) for i in range(f)] for n in newest])
    want = _offline(model, track, windows, f - 1 - (newest - np.arange(L)))
    got, lifter = lift_online(model, track, None, W, H, lookahead=k)
    assert lifter.latency_frames == k
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_held_is_said_on_the_frame_that_was_held(track) -> None:
    model = _model("mixste_h36m_243")
    online = OnlineLifter(model, W, H, lookahead=2)
    res = [online.push(None if t == 3 else track[t]) for t in range(8)] + online.flush()
    res = [r for r in res if r is not None]
    assert [r.index for r in res] == list(range(8))
    assert [r.held for r in res] == [t == 3 for t in range(8)]


def test_the_2d_filter_measures_speed_in_half_widths(track) -> None:
    """The incoming 2D One-Euro runs with ``scale = width / 2`` (module doc of the filters), on a frame that is
    not square: the same as filtering the track first with that scale."""
    model = _model("mixste_h36m_243")
    w, h = 1000, 500
    kp = track * [1.0, 0.5]
    stream = make_filter("one_euro").stream(50.0, scale=w / 2)
    pre = np.stack([stream.step(kp[t]) for t in range(L)])
    got, _ = lift_online(model, kp, None, w, h, filter2d=make_filter("one_euro"), fps=50.0)
    np.testing.assert_allclose(got, lift_online(model, pre, None, w, h)[0], rtol=0, atol=1e-6)
