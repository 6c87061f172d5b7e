"""Temporal filters for 2D and 3D keypoint tracks: One-Euro, Savitzky-Golay, and off (the identity).

A track is an array (T, K, D): T frames, K joints, D coordinates (2 for pixels, 3 for metres). Every filter
is a callable ``filt(x, valid=None, fps=None, scale=1.0) -> (T, K, D)``, made by :func:`make_filter` or from a
:class:`FilterConfig` (what the command-line flags fill in).

* ``off`` returns its input object itself: outputs are **bit-identical** to running without a filter.
* ``one_euro`` (Casiez et al., CHI 2012): per coordinate, an exponential smoother whose cutoff rises with the
  speed, ``cutoff = min_cutoff + beta * |dx/dt|`` (Hz); ``alpha(cutoff) = r / (r + 1)`` with
  ``r = 2 pi cutoff / fps``; the speed is itself smoothed with ``alpha(d_cutoff)``. The first sample passes
  unchanged (speed 0). **Causal** (latency 0 frames): the online lifter can use it frame by frame
  (:class:`OneEuroStream`). The speed is measured in units of ``scale`` per second: give 2D pixels
  ``scale = width / 2`` (the lifter's normalised units, about metres for a person), 3D metres ``scale = 1``,
  and one set of parameters fits both.
* ``savgol``: :func:`scipy.signal.savgol_filter` over time (``window`` frames, odd; polynomial ``order``),
  ``mode="interp"`` at the ends. Centred, so **not causal** (latency ``window // 2`` frames): offline only.

Validity masks (``valid``: (T,) per frame or (T, K) per joint; False where there is no detection): with
``gap="restart"`` a gap ends the filtered run and the next valid sample starts afresh (One-Euro: unchanged
first sample; Savitzky-Golay: every valid run filtered on its own, a run shorter than the window with the
largest odd window that fits, a run of at most ``order`` samples left as it is); with ``gap="hold"`` the
filter state is kept across the gap (One-Euro: the speed over the gap uses the elapsed time; Savitzky-Golay:
gaps are filled with the last valid sample before filtering). Invalid samples are never invented: with
``restart`` they are returned unchanged; with ``hold`` they get the last valid filtered value (unchanged
before the first valid one). A valid sample that is not finite is refused (``ValueError``).

Defaults (the lead wires them): **off** for evaluation (``test``, ``evaluate``: metrics are of the model, not
of a smoother); **one_euro** with :data:`VIDEO_DEFAULT` (``min_cutoff=1.0`` Hz, ``beta=20``,
``d_cutoff=1.0`` Hz, ``gap="restart"``; 2D filtered with ``scale = width / 2``) for the video commands (``infer``
on videos/streams, ``lift``). Tuned on synthetic motion (50 fps; 3 px 2D / 2 cm 3D Gaussian noise; walking,
reaching, turning, mixed): the acceleration error falls to at most 0.32x of the noisy track's while the
position error falls too (at most 0.82x); ``beta=0.5`` smooths harder (0.1x) but lags a walking person by
up to 3x the noise. Savitzky-Golay ``window=9, order=2`` gives about 0.15x and 0.5x.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import re

import numpy as np

from posetokens.runtime import is_number

__all__ = [
    "FILTERS",
    "VIDEO_DEFAULT",
    "FilterConfig",
    "OneEuroStream",
    "TemporalFilter",
    "acceleration_error",
    "as_filter",
    "filter_from_args",
    "make_filter",
    "one_euro",
    "one_euro_alpha",
    "savgol",
]

FILTERS: tuple[str, ...] = ("off", "one_euro", "savgol")
GAPS: tuple[str, ...] = ("restart", "hold")


class TemporalFilter(Protocol):
    """``filt(x (T, K, D), valid=None, fps=None, scale=1.0) -> (T, K, D)``."""

    name: str

    def __call__(self, x: np.ndarray, valid: np.ndarray | None = None, fps: float | None = None,
                 scale: float = 1.0) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------- helpers
def one_euro_alpha(cutoff: np.ndarray | float, fps: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled at ``fps``: ``r / (r + 1)``,
    ``r = 2 pi cutoff / fps`` (``1 / (1 + tau / Te)``, ``tau = 1 / (2 pi cutoff)``, ``Te = 1 / fps``)."""
    r = 2 * np.pi * np.asarray(cutoff, np.float64) / fps
    return r / (r + 1)


def acceleration_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean Euclidean norm of the second time difference of ``pred - ref`` (T, K, D), per joint and frame
    (the acceleration error of pose papers, in units per frame^2)."""
    d = np.asarray(pred, np.float64) - np.asarray(ref, np.float64)
    return float(np.linalg.norm(d[2:] - 2 * d[1:-1] + d[:-2], axis=-1).mean())


def _check_track(x: Any, valid: Any, what: str = "keypoints") -> tuple[np.ndarray, np.ndarray]:
    """x as float64 (T, K, D) and valid as bool (T, K); refuses bad shapes and non-finite valid samples."""
    a = np.asarray(x)
    if a.ndim != 3:
        raise ValueError(f"temporal filter: {what} must be (frames, joints, coords), got shape {a.shape}")
    t, k = a.shape[:2]
    if valid is None:
        m = np.ones((t, k), bool)
    else:
        m = np.asarray(valid, bool)
        if m.shape == (t,):
            m = np.repeat(m[:, None], k, axis=1)
        elif m.shape != (t, k):
            raise ValueError(f"temporal filter: the validity mask must be ({t},) or ({t}, {k}) for {what} of "
                             f"shape {a.shape}, got {m.shape}")
    bad = m & ~np.isfinite(a).all(axis=-1)
    if bad.any():
        f, j = np.argwhere(bad)[0]
        raise ValueError(f"temporal filter: {what} hold non-finite values at {int(bad.sum())} valid sample(s) "
                         f"(first: frame {f}, joint {j}); mark them invalid in the mask")
    return a.astype(np.float64, copy=False), m


def _hold_invalid(out: np.ndarray, src: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Invalid samples get the last valid value of ``out`` in their joint (``src`` before the first)."""
    t = np.arange(len(m))[:, None]
    last = np.maximum.accumulate(np.where(m, t, -1), axis=0)  # (T, K) index of the last valid frame
    k = np.arange(m.shape[1])[None, :]
    held = out[np.maximum(last, 0), k]
    return np.where(m[..., None], out, np.where((last >= 0)[..., None], held, src))


# --------------------------------------------------------------------------------------------- One-Euro
class OneEuroStream:
    """The One-Euro filter fed one frame at a time (causal): ``step(x (K, D), valid (K,) | None) -> (K, D)``.

    State per joint: the last filtered value, the smoothed speed, and the frames since its last valid sample.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, fps: float = 30.0,
                 gap: str = "restart", scale: float = 1.0) -> None:
        _check_one_euro(min_cutoff, beta, d_cutoff, gap)
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"One-Euro filter: fps must be a positive number (the video's frame rate), got {fps}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"One-Euro filter: scale must be positive, got {scale}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.fps, self.gap, self.scale = float(fps), gap, float(scale)
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next sample of every joint passes unchanged."""
        self.x_hat: np.ndarray | None = None  # (K, D)
        self.dx_hat: np.ndarray | None = None  # (K, D), units of scale per second
        self.age: np.ndarray | None = None  # (K,) frames since the last valid sample; 0: never seen
        self.t_last: np.ndarray | None = None  # (K,) the time (s) of the last valid sample; nan: none given

    def skip(self, frames: int) -> None:
        """``frames`` frames without a sample (the person was not seen): as many :meth:`step` calls with every
        joint invalid, whose results would be dropped."""
        if self.age is not None and frames > 0:
            self.age = np.where(self.age > 0, self.age + int(frames), 0)

    def step(self, x: np.ndarray, valid: np.ndarray | None = None, t: float | None = None) -> np.ndarray:
        """Filter one frame (K, D); invalid joints follow the ``gap`` rule of the module doc. ``t``: the frame's
        time in seconds (a video's decoder time): the filter's step is then the time since each joint's last
        valid sample, so a variable-frame-rate video is filtered at its real rate; without it, frames are
        ``1 / fps`` apart."""
        x = np.asarray(x, np.float64)
        m = np.ones(x.shape[0], bool) if valid is None else np.asarray(valid, bool).reshape(x.shape[0])
        if self.x_hat is None:
            self.x_hat, self.dx_hat = np.where(m[:, None], x, 0.0), np.zeros_like(x)
            self.age = np.zeros(x.shape[0], np.int64)
            self.t_last = np.full(x.shape[0], np.nan)
        seen = self.age > 0
        # a valid sample continues its joint's run after a valid previous frame (hold: after any gap too)
        run = seen & m & ((self.age == 1) | (self.gap == "hold"))
        first = m & ~run
        xs = np.where(run[:, None], x, self.x_hat)  # invalid / first samples do not enter the arithmetic
        dt = np.maximum(self.age, 1)[:, None] / self.fps  # (K, 1) seconds since the last valid sample
        if t is not None:  # the decoder's times, where they go forward (nan, never seen: the stated rate)
            elapsed = (float(t) - self.t_last)[:, None]
            dt = np.where(elapsed > 0, elapsed, dt)
        a_d = one_euro_alpha(self.d_cutoff, 1 / dt)
        dx = (xs - self.x_hat) / dt / self.scale
        dx_hat = self.dx_hat + a_d * (dx - self.dx_hat)
        alpha = one_euro_alpha(self.min_cutoff + self.beta * np.abs(dx_hat), 1 / dt)
        x_hat = self.x_hat + alpha * (xs - self.x_hat)
        new_x = np.where(run[:, None], x_hat, np.where(first[:, None], x, self.x_hat))
        new_dx = np.where(run[:, None], dx_hat, np.where(first[:, None], 0.0, self.dx_hat))
        self.x_hat, self.dx_hat = new_x, new_dx
        self.age = np.where(m, 1, np.where(seen, self.age + 1, 0))
        self.t_last = np.where(m, np.nan if t is None else float(t), self.t_last)
        keep = m if self.gap == "restart" else (m | seen)  # hold: a seen joint keeps its last filtered value
        return np.where(keep[:, None], new_x, x)


def _check_one_euro(min_cutoff: float, beta: float, d_cutoff: float, gap: str) -> None:
    if not (np.isfinite(min_cutoff) and min_cutoff > 0):
        raise ValueError(f"One-Euro filter: min_cutoff (Hz) must be > 0, got {min_cutoff}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"One-Euro filter: beta must be >= 0, got {beta}")
    if not (np.isfinite(d_cutoff) and d_cutoff > 0):
        raise ValueError(f"One-Euro filter: d_cutoff (Hz) must be > 0, got {d_cutoff}")
    if gap not in GAPS:
        raise ValueError(f"temporal filter: gap must be one of {', '.join(GAPS)}, got {gap!r}")


def one_euro(x: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
             valid: np.ndarray | None = None, gap: str = "restart", scale: float = 1.0) -> np.ndarray:
    """One-Euro filter of a track (T, K, D) at ``fps``; a loop over frames, vectorised over joints and coords."""
    a, m = _check_track(x, valid)
    stream = OneEuroStream(min_cutoff, beta, d_cutoff, fps, gap, scale)
    out = np.empty_like(a)
    for t in range(len(a)):
        out[t] = stream.step(a[t], m[t])
    return out


# --------------------------------------------------------------------------------------------- Savitzky-Golay
def _check_savgol(window: int, order: int, gap: str) -> None:
    if int(window) != window or window < 1 or window % 2 != 1:
        raise ValueError(f"Savitzky-Golay filter: window must be an odd number of frames, got {window}")
    if int(order) != order or not 0 <= order < window:
        raise ValueError(f"Savitzky-Golay filter: order must be an integer in [0, window={window}), got {order}")
    if gap not in GAPS:
        raise ValueError(f"temporal filter: gap must be one of {', '.join(GAPS)}, got {gap!r}")


def _savgol_run(a: np.ndarray, window: int, order: int) -> np.ndarray:
    """savgol_filter over axis 0 of one gap-free run; a short run gets the largest odd window that fits."""
    from scipy.signal import savgol_filter

    n = len(a)
    w = min(window, n if n % 2 else n - 1)
    if w <= order:
        return a.copy()
    return savgol_filter(a, w, order, axis=0, mode="interp")


def savgol(x: np.ndarray, window: int = 9, order: int = 2, valid: np.ndarray | None = None,
           gap: str = "restart") -> np.ndarray:
    """Savitzky-Golay filter of a track (T, K, D) over time (see the module doc for gaps)."""
    _check_savgol(window, order, gap)
    a, m = _check_track(x, valid)
    if m.all():
        return _savgol_run(a, window, order)
    if gap == "hold":
        filled = _hold_invalid(a, a, m)
        first = m.argmax(axis=0)  # before a joint's first valid sample: its first valid value
        k = np.arange(m.shape[1])
        before = (np.arange(len(a))[:, None] < first[None, :]) & m.any(axis=0)[None, :]
        filled = np.where(before[..., None], a[first, k][None], filled)
        return _hold_invalid(_savgol_run(filled, window, order), a, m)
    out = a.copy()
    cols = [np.arange(m.shape[1])] if (m == m[:, :1]).all() else [np.array([j]) for j in range(m.shape[1])]
    for c in cols:  # one mask for every joint: one pass over its runs; else a loop over joints
        v = m[:, c[0]].astype(np.int8)
        edges = np.flatnonzero(np.diff(np.r_[0, v, 0]))
        for s, e in zip(edges[::2], edges[1::2]):  # a loop over valid runs
            out[s:e, c] = _savgol_run(a[s:e, c], window, order)
    return out


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class FilterConfig:
    """A temporal filter and its parameters (the command-line flags): ``name`` one of :data:`FILTERS`;
    One-Euro: ``min_cutoff`` (Hz), ``beta``, ``d_cutoff`` (Hz), ``fps`` (None: the caller's, i.e. the
    video's); Savitzky-Golay: ``window`` (odd, frames), ``order``; both: ``gap`` (``restart`` or ``hold``)."""

    name: str = "off"
    min_cutoff: float = 1.0
    beta: float = 20.0
    d_cutoff: float = 1.0
    fps: float | None = None
    window: int = 9
    order: int = 2
    gap: str = "restart"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in FILTERS:
            raise ValueError(f"temporal filter must be one of {', '.join(FILTERS)}, got {self.name!r}")
        if self.extra:
            raise ValueError(f"temporal filter {self.name}: unknown parameter(s) {sorted(self.extra)}")
        if self.name == "one_euro":
            _check_one_euro(self.min_cutoff, self.beta, self.d_cutoff, self.gap)
        elif self.name == "savgol":
            _check_savgol(self.window, self.order, self.gap)

    @property
    def latency_frames(self) -> int:
        """Frames of the future each output needs: 0 for off and One-Euro, ``window // 2`` for Savitzky-Golay."""
        return self.window // 2 if self.name == "savgol" else 0

    def describe(self) -> dict[str, Any]:
        """The name and the parameters that apply to it (for output files and logs)."""
        d = {k: v for k, v in asdict(self).items() if k != "extra"}
        keep = {"off": ("name",), "one_euro": ("name", "min_cutoff", "beta", "d_cutoff", "fps", "gap"),
                "savgol": ("name", "window", "order", "gap")}[self.name]
        return {k: d[k] for k in keep}

    def __call__(self, x: np.ndarray, valid: np.ndarray | None = None, fps: float | None = None,
                 scale: float = 1.0) -> np.ndarray:
        """Filter a track (T, K, D); ``off`` returns ``x`` itself. ``fps`` (One-Euro) falls back to the
        config's; ``scale`` is the unit of the One-Euro speed (see the module doc)."""
        if self.name == "off":
            return x
        if self.name == "savgol":
            return savgol(x, self.window, self.order, valid, self.gap)
        rate = self.fps if self.fps is not None else fps
        if rate is None:
            raise ValueError("One-Euro filter: give the frame rate (fps); the input records none")
        return one_euro(x, rate, self.min_cutoff, self.beta, self.d_cutoff, valid, self.gap, scale)

    def stream(self, fps: float | None = None, scale: float = 1.0) -> OneEuroStream | None:
        """A frame-by-frame (causal) filter: None for off; refused for Savitzky-Golay (it needs the future)."""
        if self.name == "off":
            return None
        if self.name == "savgol":
            raise ValueError(f"the Savitzky-Golay filter needs {self.window // 2} future frames; online (causal) "
                             "mode takes one_euro or off")
        rate = self.fps if self.fps is not None else fps
        if rate is None:
            raise ValueError("One-Euro filter: give the frame rate (fps); the input records none")
        if not is_number(rate) or not np.isfinite(rate) or rate <= 0:
            raise ValueError(f"One-Euro filter: fps must be a positive number of frames per second, got {rate!r}")
        return OneEuroStream(self.min_cutoff, self.beta, self.d_cutoff, rate, self.gap, scale)

    @property
    def is_off(self) -> bool:
        """Whether this filter leaves keypoints as they are (``off``)."""
        return self.name == "off"


#: The video commands' default filter.
VIDEO_DEFAULT = FilterConfig("one_euro", min_cutoff=1.0, beta=20.0, d_cutoff=1.0, gap="restart")


#: the command line's flag (argparse dest) of each filter parameter
_FILTER_FLAGS = {"min_cutoff": "filter_min_cutoff", "beta": "filter_beta", "d_cutoff": "filter_d_cutoff",
                 "window": "filter_window", "order": "filter_order", "gap": "filter_gap"}
#: the parameters each filter takes (the others' flags are refused with it)
_FILTER_PARAMS = {"off": (), "one_euro": ("min_cutoff", "beta", "d_cutoff", "gap"),
                  "savgol": ("window", "order", "gap")}


def make_filter(name: str = "off", **params: Any) -> FilterConfig:
    """The filter ``name`` (``off``, ``one_euro`` or ``savgol``; ``one-euro`` and ``sg`` accepted) with
    ``params`` (the fields of :class:`FilterConfig`); None values take the defaults. Bad values: ValueError."""
    aliases = {"one-euro": "one_euro", "oneeuro": "one_euro", "1euro": "one_euro", "sg": "savgol",
               "savitzky-golay": "savgol", "none": "off"}
    n = aliases.get(str(name).lower(), str(name).lower())
    known = set(FilterConfig.__dataclass_fields__) - {"name", "extra"}
    given = {k: v for k, v in params.items() if v is not None}
    return FilterConfig(n, **{k: v for k, v in given.items() if k in known},
                        extra={k: v for k, v in given.items() if k not in known})


def as_filter(value: FilterConfig | str | None, what: str = "smooth") -> FilterConfig | None:
    """A filter argument of the Python API as a :class:`FilterConfig`: a config as it is, a name (``off``,
    ``one_euro``, ``savgol``, as :func:`make_filter` takes it, with the defaults the command line's ``--filter``
    gives), None as None. Anything else: a ValueError naming ``what``."""
    if value is None or isinstance(value, FilterConfig):
        return value
    if isinstance(value, str):
        return make_filter(value)
    raise ValueError(f"{what}: expected a filter name ({', '.join(repr(f) for f in FILTERS)}) or a FilterConfig, "
                     f"got {type(value).__name__}")


def filter_flags_given(args: Any) -> bool:
    """Whether the command line names a filter or one of its parameters (``--filter``, ``--filter-*``)."""
    return any(getattr(args, a, None) is not None for a in ("filter", *_FILTER_FLAGS.values()))


def filter_from_args(args: Any, default: FilterConfig = VIDEO_DEFAULT) -> FilterConfig:
    """The filter the command-line flags choose (``--filter``, ``--filter-min-cutoff``, ``--filter-beta``,
    ``--filter-d-cutoff``, ``--filter-window``, ``--filter-order``, ``--filter-gap``); flags left out take
    ``default``'s values (:data:`VIDEO_DEFAULT` for the video commands, ``FilterConfig()`` (off) for evaluation)."""
    flags = _FILTER_FLAGS
    name = getattr(args, "filter", None) or default.name
    params = {k: getattr(args, a, None) for k, a in flags.items()}
    flag = {k: "--" + a.replace("_", "-") for k, a in flags.items()}
    cfg = make_filter(name)  # a bad --filter name is its own error
    takes = _FILTER_PARAMS[cfg.name]
    unused = [flag[k] for k, v in params.items() if v is not None and k not in takes]
    if unused:  # was taken and ignored without a word
        used = ", ".join(flag[k] for k in flags if k in takes) or "none"
        raise ValueError(f"{', '.join(unused)}: not a parameter of --filter {cfg.name} (it takes {used})")
    try:
        return make_filter(name, **{k: (getattr(default, k) if v is None else v) for k, v in params.items()})
    except ValueError as e:  # the message names the filter's parameter: add the flag that set it
        at_fault = [f"{flag[k]} {v}" for k, v in params.items() if v is not None and re.search(rf"\b{k}\b", str(e))]
        raise ValueError(f"{e} ({', '.join(at_fault) or '--filter ' + name})") from None
