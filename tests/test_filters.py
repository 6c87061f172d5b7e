"""Temporal filters (posetokens.inference.filters): One-Euro and Savitzky-Golay on noisy synthetic motion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import savgol_filter

from posetokens.data import synthetic_motion as sm
from posetokens.inference.filters import (
    VIDEO_DEFAULT,
    FilterConfig,
    OneEuroStream,
    make_filter,
    one_euro,
    savgol,
)

FPS = sm.FPS  # 50


def accel_error(pred: np.ndarray, clean: np.ndarray) -> float:
    """Acceleration error as in pose papers: mean over frames and joints of the Euclidean norm of the second
    time difference of the error, |(p - g)[t+1] - 2 (p - g)[t] + (p - g)[t-1]|."""
    e = pred - clean
    return float(np.mean(np.sqrt(((e[2:] - 2 * e[1:-1] + e[:-2]) ** 2).sum(-1))))


@pytest.fixture(scope="module")
def tracks() -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Clean and noisy tracks: root-relative camera 3D (metres, 2 cm noise) and projected 2D (pixels, 3 px)."""
    body = sm.sample_body(np.random.default_rng(0))
    world = sm.generate_sequence(body, "Walking", 300, np.random.default_rng(1))
    cam = sm.sample_cameras(0, ["S1"])["S1"][0]
    cam3d = cam.world_to_camera(world)
    uv = cam.project(cam3d)
    rng = np.random.default_rng(2)
    clean3d = cam3d - cam3d[:, :1]
    return {"3d": (clean3d, clean3d + rng.normal(0, 0.02, clean3d.shape), 1.0),
            "2d": (uv, uv + rng.normal(0, 3.0, uv.shape), cam.w / 2)}


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("name,params", [("one_euro", {}), ("savgol", {"window": 9, "order": 2})])
def test_filter_halves_acceleration_error(tracks, dim, name, params) -> None:
    clean, noisy, scale = tracks[dim]
    filt = VIDEO_DEFAULT if name == "one_euro" else make_filter(name, **params)
    out = filt(noisy, fps=FPS, scale=scale)
    before, after = accel_error(noisy, clean), accel_error(out, clean)
    assert out.shape == noisy.shape
    assert after <= 0.5 * before, (dim, name, before, after)
    # the position error does not grow either (no lag bigger than the noise)
    assert np.linalg.norm(out - clean, axis=-1).mean() < np.linalg.norm(noisy - clean, axis=-1).mean()


def test_off_is_bit_identical(tracks) -> None:
    _, noisy, _ = tracks["2d"]
    x = noisy.astype(np.float32)
    valid = np.arange(len(x)) % 7 != 0
    for filt in (make_filter("off"), make_filter("none"), make_filter()):
        out = filt(x, valid, fps=FPS, scale=500.0)
        assert out is x
        assert out.dtype == np.float32 and out.tobytes() == x.tobytes()


def test_one_euro_first_steps_by_hand() -> None:
    fps, min_cutoff, beta, d_cutoff = 10.0, 1.0, 0.5, 2.0
    x = np.array([0.0, 1.0, 3.0, 2.5])
    te = 1 / fps

    def alpha(fc: float) -> float:  # 1 / (1 + tau / Te), tau = 1 / (2 pi fc)
        return 1 / (1 + (1 / (2 * math.pi * fc)) / te)

    y, dy, want = x[0], 0.0, [x[0]]
    for v in x[1:]:
        dy = alpha(d_cutoff) * ((v - y) / te) + (1 - alpha(d_cutoff)) * dy
        a = alpha(min_cutoff + beta * abs(dy))
        y = a * v + (1 - a) * y
        want.append(y)
    # step 1 written out: dx = 10/s, dx_hat = a_d * 10, cutoff = 1 + 0.5 dx_hat, y1 = alpha(cutoff) * 1
    a_d = (2 * math.pi * 2 * 0.1) / (1 + 2 * math.pi * 2 * 0.1)
    r1 = 2 * math.pi * (1 + 0.5 * a_d * 10) * 0.1
    assert want[1] == pytest.approx(r1 / (1 + r1), rel=1e-12)
    got = one_euro(x[:, None, None], fps, min_cutoff, beta, d_cutoff)[:, 0, 0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert got[0] == 0.0
    # vectorised over joints and coordinates: every coordinate is filtered on its own
    many = np.stack([x, 2 * x, -x], axis=1)[:, :, None].repeat(2, axis=2)  # (T, 3, 2)
    out = make_filter("one_euro", min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)(many, fps=fps)
    np.testing.assert_allclose(out[:, 0, 1], want, rtol=1e-12)
    np.testing.assert_allclose(out[:, 2, 0], -np.array(want), rtol=1e-12)


def test_one_euro_steps_at_the_frames_times_by_hand() -> None:
    """Frames of a variable-frame-rate video (0, 0.12, 0.16, 0.5 s at a stated 25 a second): given their times,
    each step's Te is the time since the joint's last valid sample, not 1 / 25 s; a joint invalid at 0.16 s
    steps 0.38 s at 0.5 s. The same times given to a steady 25 a second give the untimed filter's results."""
    min_cutoff, beta, d_cutoff = 1.0, 0.5, 2.0
    times, x = [0.0, 0.12, 0.16, 0.5], np.array([0.0, 1.0, 3.0, 2.5])

    def alpha(fc: float, te: float) -> float:  # 1 / (1 + tau / Te), tau = 1 / (2 pi fc)
        return 1 / (1 + (1 / (2 * math.pi * fc)) / te)

    def by_hand(ts: list[float], xs: list[float]) -> list[float]:
        y, dy, out = xs[0], 0.0, [xs[0]]
        for (t0, t1), v in zip(zip(ts, ts[1:]), xs[1:]):
            te = t1 - t0
            dy = alpha(d_cutoff, te) * ((v - y) / te) + (1 - alpha(d_cutoff, te)) * dy
            a = alpha(min_cutoff + beta * abs(dy), te)
            y = a * v + (1 - a) * y
            out.append(y)
        return out

    s = OneEuroStream(min_cutoff, beta, d_cutoff, fps=25.0, gap="hold")
    got = [s.step(np.array([[v], [v]]), np.array([True, i != 2]), t)[:, 0] for i, (t, v) in enumerate(zip(times, x))]
    np.testing.assert_allclose([g[0] for g in got], by_hand(times, list(x)), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got[3][1], by_hand([0.0, 0.12, 0.5], [0.0, 1.0, 2.5])[-1], rtol=1e-12)
    steady = OneEuroStream(min_cutoff, beta, d_cutoff, fps=25.0)
    untimed = OneEuroStream(min_cutoff, beta, d_cutoff, fps=25.0)
    for i, v in enumerate(x):
        np.testing.assert_allclose(steady.step(np.array([[v]]), t=i / 25), untimed.step(np.array([[v]])), rtol=1e-12)


def test_gaps_restart_and_hold(tracks) -> None:
    _, noisy, _ = tracks["3d"]
    x = noisy[:60].copy()
    valid = np.ones(60, bool)
    valid[20:25] = False
    x[20:25] = np.nan  # a gap's contents are never read
    f = make_filter("one_euro", gap="restart")
    out = f(x, valid, fps=FPS)
    assert np.isnan(out[20:25]).all()  # invalid samples returned unchanged
    np.testing.assert_array_equal(out[25], x[25])  # the run after the gap starts afresh
    np.testing.assert_array_equal(out[:20], f(x[:20], fps=FPS))
    np.testing.assert_array_equal(out[25:], f(x[25:], fps=FPS))
    held = make_filter("one_euro", gap="hold")(x, valid, fps=FPS)
    np.testing.assert_array_equal(held[20:25], np.broadcast_to(held[19], (5,) + held.shape[1:]))
    assert np.isfinite(held).all() and not np.array_equal(held[25], x[25])
    # per-joint masks: only joint 3 has the gap
    jm = np.ones((60, 17), bool)
    jm[20:25, 3] = False
    xj = noisy[:60].copy()
    xj[20:25, 3] = -7.0
    oj = make_filter("one_euro")(xj, jm, fps=FPS)
    np.testing.assert_array_equal(oj[20:25, 3], xj[20:25, 3])
    np.testing.assert_array_equal(oj[:, 4], make_filter("one_euro")(xj[:, 4:5], fps=FPS)[:, 0])
    # Savitzky-Golay restart: every valid run filtered on its own, the gap untouched
    sg = savgol(x, 9, 2, valid)
    np.testing.assert_allclose(sg[:20], savgol_filter(x[:20], 9, 2, axis=0), rtol=1e-12)
    np.testing.assert_allclose(sg[25:], savgol_filter(x[25:], 9, 2, axis=0), rtol=1e-12)
    assert np.isnan(sg[20:25]).all()
    sgh = savgol(x, 9, 2, valid, gap="hold")
    np.testing.assert_array_equal(sgh[20:25], np.broadcast_to(sgh[19], (5,) + sgh.shape[1:]))
    assert np.isfinite(sgh).all()


def test_stream_matches_batch(tracks) -> None:
    _, noisy, scale = tracks["2d"]
    s = OneEuroStream(1.0, 20.0, 1.0, FPS, scale=scale)
    online = np.stack([s.step(frame) for frame in noisy])
    np.testing.assert_array_equal(online, VIDEO_DEFAULT(noisy, fps=FPS, scale=scale))
    assert VIDEO_DEFAULT.latency_frames == 0 and make_filter("savgol", window=9).latency_frames == 4
    with pytest.raises(ValueError, match="Savitzky-Golay filter needs 4 future frames"):
        make_filter("savgol").stream(FPS)


@pytest.mark.parametrize("name,params,message", [
    ("median", {}, "temporal filter must be one of off, one_euro, savgol, got 'median'"),
    ("savgol", {"window": 8}, "window must be an odd number of frames, got 8"),
    ("savgol", {"window": 5, "order": 5}, r"order must be an integer in \[0, window=5\), got 5"),
    ("one_euro", {"min_cutoff": 0}, r"min_cutoff \(Hz\) must be > 0, got 0"),
    ("one_euro", {"beta": -1}, "beta must be >= 0, got -1"),
    ("one_euro", {"gap": "skip"}, "gap must be one of restart, hold, got 'skip'"),
    ("one_euro", {"mincutoff": 1}, r"unknown parameter\(s\) \['mincutoff'\]"),
])
def test_bad_parameters(name, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_filter(name, **params)


def test_bad_tracks() -> None:
    x = np.zeros((10, 17, 2))
    x[4, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values at 1 valid sample\(s\) \(first: frame 4, joint 2\)"):
        make_filter("one_euro")(x, fps=30)
    with pytest.raises(ValueError, match=r"mask must be \(10,\) or \(10, 17\)"):
        make_filter("savgol")(x, np.ones(9, bool))
    with pytest.raises(ValueError, match="give the frame rate"):
        make_filter("one_euro")(np.zeros((10, 17, 2)))
    with pytest.raises(ValueError, match=r"must be \(frames, joints, coords\)"):
        make_filter("savgol")(np.zeros((10, 34)))


def test_flags_choose_the_filter() -> None:
    from posetokens.cli import build_parser
    from posetokens.inference.filters import FilterConfig, filter_from_args

    p = build_parser()
    args = p.parse_args(["lift", "in.json", "--out", "o"])
    assert filter_from_args(args) == VIDEO_DEFAULT  # the video commands: One-Euro by default
    assert filter_from_args(args, FilterConfig()).name == "off"  # evaluation: off by default
    args = p.parse_args(["lift", "in.json", "--out", "o", "--filter", "savgol", "--filter-window", "11",
                         "--filter-gap", "hold"])
    assert filter_from_args(args).describe() == {"name": "savgol", "window": 11, "order": 2, "gap": "hold"}
    args = p.parse_args(["lift", "in.json", "--out", "o", "--filter-beta", "0.7"])
    assert filter_from_args(args).describe()["beta"] == 0.7
    with pytest.raises(ValueError, match="window must be an odd number of frames, got 8"):
        filter_from_args(p.parse_args(["lift", "x", "--out", "o", "--filter", "savgol", "--filter-window", "8"]))


def test_a_decoder_time_that_does_not_go_forward_counts_as_none() -> None:
    """Two frames with one time (a repeated decoder timestamp): the second steps by 1 / fps, as a frame without a
    time does (module doc), and stays finite."""
    x0, x1 = np.zeros((2, 2)), np.full((2, 2), 3.0)
    timed = OneEuroStream(fps=10.0)
    timed.step(x0, t=1.0)
    plain = OneEuroStream(fps=10.0)
    plain.step(x0)
    got = timed.step(x1, t=1.0)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got, plain.step(x1))


def test_a_configs_own_frame_rate_wins_over_the_callers() -> None:
    x = np.cumsum(np.random.default_rng(0).normal(0, 1, (30, 3, 2)), axis=0)
    cfg = FilterConfig("one_euro", fps=10.0)
    np.testing.assert_array_equal(cfg(x, fps=50.0), one_euro(x, 10.0, cfg.min_cutoff, cfg.beta, cfg.d_cutoff))
    np.testing.assert_array_equal(cfg.stream(50.0).step(x[0]), OneEuroStream(cfg.min_cutoff, cfg.beta, cfg.d_cutoff,
                                                                               10.0).step(x[0]))


def test_savgol_hold_leaves_samples_before_the_first_valid_one_unchanged() -> None:
    """``gap="hold"``: invalid samples get the last valid filtered value, "unchanged before the first valid one"
    (module doc): nothing is invented before a joint was seen."""
    x = np.arange(12, dtype=np.float64).reshape(12, 1, 1) * np.ones((1, 1, 2))
    x[:2] = np.nan
    valid = np.ones(12, bool)
    valid[:2] = False
    out = savgol(x, window=5, order=2, valid=valid, gap="hold")
    assert np.isnan(out[:2]).all()
    # past the window's reach into the held start, a line passes the quadratic fit unchanged
    np.testing.assert_allclose(out[4:, 0, 0], np.arange(4, 12), atol=1e-9)
