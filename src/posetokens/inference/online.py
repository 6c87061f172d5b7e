"""Online (frame-by-frame, causal) 2D -> 3D lifting: each frame's 3D as soon as the frame arrives.

:class:`OnlineLifter` keeps the last frames of one person's H36M-17 2D track and runs the lifting model on a
**causal window** when a frame arrives: the window ends at the newest frame ``t`` (no future frame is read),
and at the start of the stream it is padded by repeating the first frame (as the offline pass edge-pads).

* seq2seq models (MixSTE, MotionBERT, HoT): the window is frames ``[t - F + 1, t]`` and the frame returned is
  the window's **last**, frame ``t``: latency **0 frames**.
* seq2frame models (TPC, MHFormer; the model predicts the window's centre): the window is centred on the
  current frame ``t`` and its ``F // 2`` future slots repeat frame ``t`` (the offline pass's end-of-clip edge
  padding): latency **0 frames**.

``lookahead=k`` trades latency for accuracy: the 3D of frame ``t - k`` is returned when frame ``t`` arrives
(latency ``k`` frames; seq2seq: window ``[t - F + 1, t]``, output at position ``F - 1 - k``; seq2frame:
``k <= F // 2`` future frames are real, the rest repeat frame ``t``). With ``k = F // 2`` a seq2frame model
gives exactly the offline :func:`~posetokens.inference.lifting.lift_sequence` result. :meth:`OnlineLifter.flush`
returns the last ``k`` frames at the end of the stream.

Inputs are normalised as in :func:`~posetokens.inference.lifting.lift_sequence` (the H36M convention,
:func:`~posetokens.data.h36m.normalize_screen_coordinates`; the score is the third channel of 3-channel
models) and run through :func:`~posetokens.protocols.predict.predict_windows`, so online and offline passes
over the same windows agree. A frame without the person (``keypoints=None``) repeats the last 2D seen (causal
hold); before the first person no window exists and the result's ``pose3d`` is None. Optional causal One-Euro
filters (:mod:`posetokens.inference.filters`) smooth the incoming 2D and the outgoing 3D.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from posetokens.data.h36m import normalize_screen_coordinates
from posetokens.inference.filters import FilterConfig, as_filter
from posetokens.inference.lifting import check_lifter
from posetokens.inference.precision import check_float32
from posetokens.protocols.predict import predict_windows
from posetokens.registry import note_if_random_weights
from posetokens.runtime import check_flag, is_whole, number_array

__all__ = ["OnlineFrame", "OnlineLifter", "causal_window", "lift_online"]


@dataclass
class OnlineFrame:
    """One lifted frame: its index in the stream, its 3D (17, 3) root-relative metres in camera axes (None
    before the first person), whether its 2D was held from an earlier frame, and the lifting seconds."""

    index: int
    pose3d: np.ndarray | None
    held: bool
    seconds: float


def causal_window(newest: int, frames: int, seq2frame: bool, lookahead: int = 0) -> np.ndarray:
    """Frame indices (F,) of the window lifted when frame ``newest`` arrives, for the output frame
    ``newest - lookahead``; clipped to ``[0, newest]`` (start: the first frame repeated; seq2frame future
    slots past ``newest``: frame ``newest`` repeated)."""
    start = newest - lookahead - frames // 2 if seq2frame else newest - frames + 1
    return np.clip(start + np.arange(frames), 0, newest)


class OnlineLifter:
    """Frame-by-frame lifting of one person (see the module doc).

    ``push(keypoints (17, 2) pixels | None, scores (17,) | None) -> OnlineFrame | None`` (None while the
    first ``lookahead`` frames are buffered); ``flush() -> list[OnlineFrame]`` at the end of the stream.
    ``latency_frames`` is ``lookahead`` (0 by default); ``fps`` is frames lifted per second of lifting time.
    """

    def __init__(self, model: nn.Module, width: int, height: int, flip_test: bool = False,
                 device: str | torch.device | None = None, lookahead: int = 0,
                 filter2d: FilterConfig | str | None = None,
                 filter3d: FilterConfig | str | None = None, fps: float | None = None) -> None:
        device = check_lifter(model, width, height, device, "online lifting")  # None: the model's device
        self.model = model
        self.frames = int(model.cfg.num_frames)
        self.seq2frame = bool(model.is_seq2frame)
        limit = self.frames // 2 if self.seq2frame else self.frames - 1
        if not is_whole(lookahead) or not 0 <= lookahead <= limit:
            raise ValueError(f"online lifting: lookahead must be an integer in [0, {limit}] frames for "
                             f"{getattr(model, 'zoo_name', type(model).__name__)} (window {self.frames}), "
                             f"got {lookahead!r}")
        self.lookahead = int(lookahead)
        self.width, self.height = int(width), int(height)
        self.flip_test, self.device = check_flag(flip_test, "online lifting: flip_test"), device
        self.channels = int(model.cfg.in_channels)
        filter2d, filter3d = as_filter(filter2d, "filter2d"), as_filter(filter3d, "filter3d")  # names too
        self.f2d = filter2d.stream(fps, scale=self.width / 2) if filter2d is not None else None
        self.f3d = filter3d.stream(fps) if filter3d is not None else None
        self.reset()
        check_float32(model, "OnlineLifter")
        note_if_random_weights(model, "the lifting model")  # create_model's, without weights: said once per model

    @property
    def latency_frames(self) -> int:
        """Frames between a frame's arrival and its 3D: ``lookahead`` (0: causal, each frame lifted at once)."""
        return self.lookahead

    @property
    def fps(self) -> float:
        """Frames lifted per second of lifting time so far (0 before the first)."""
        return self.lifted / self.seconds if self.seconds > 0 else 0.0

    def reset(self) -> None:
        """Start a new stream."""
        self.buffer: deque[np.ndarray] = deque(maxlen=self.frames + self.lookahead)
        self.held: deque[bool] = deque(maxlen=self.lookahead + 1)
        self.count = 0  # frames pushed
        self.first = -1  # index of the first frame with the person (-1: none yet)
        self.last: np.ndarray | None = None  # the last normalised input frame seen (J, C)
        self.lifted, self.seconds = 0, 0.0
        self.done = 0  # frames returned
        self.flushed = False  # flush() ended the stream: push() needs reset() first
        if self.f2d is not None:
            self.f2d.reset()
        if self.f3d is not None:
            self.f3d.reset()

    def _input(self, keypoints: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
        kp = number_array(keypoints, f"online lifting: frame {self.count}", "H36M-17 keypoints (17, 2)")
        if kp.shape != (17, 2):
            raise ValueError(f"online lifting expects H36M-17 keypoints (17, 2) per frame, got {kp.shape}")
        if not np.isfinite(kp).all():
            raise ValueError(f"online lifting: frame {self.count} holds non-finite keypoints (pass None for a "
                             "frame without the person)")
        if self.f2d is not None:
            kp = self.f2d.step(kp)
        x = normalize_screen_coordinates(kp, self.width, self.height)
        # checked for every lifter (the same call must not pass or fail by the model), read by 3-channel ones
        s = np.ones(17) if scores is None else number_array(scores, f"online lifting: frame {self.count}: scores",
                                                            "17 scores")
        if s.size != 17 or not np.isfinite(s).all():  # a NaN would stay in the window for its whole length
            raise ValueError(f"online lifting: frame {self.count}: scores must be 17 finite numbers, got "
                             f"{s.size} value(s){'' if np.isfinite(s).all() else ' with NaN or inf'}")
        if self.channels == 3:
            x = np.concatenate((x, s.reshape(17)[:, None]), axis=-1)
        return x

    def push(self, keypoints: np.ndarray | None, scores: np.ndarray | None = None) -> OnlineFrame | None:
        """Add frame ``count`` (H36M-17 pixels, or None without the person) and return the 3D of frame
        ``count - lookahead`` (None while it is not yet due). After :meth:`flush`, :meth:`reset` first."""
        if self.flushed:  # went on with latency 0 and windows mixing the two streams
            raise ValueError("online lifting: the stream was ended by flush(); call reset() to start a new one")
        held = keypoints is None
        if not held:
            self.last = self._input(keypoints, scores)
            if self.first < 0:
                self.first = self.count
        if self.last is not None:
            self.buffer.append(self.last)
        self.held.append(held)
        self.count += 1
        if self.count <= self.lookahead:
            return None
        return self._emit(self.count - 1)

    def flush(self) -> list[OnlineFrame]:
        """The last ``lookahead`` frames' 3D, at the end of the stream (windows clipped to the last frame); the
        stream is ended (:meth:`reset` starts a new one)."""
        self.flushed = True
        out = []
        while self.done < self.count:
            out.append(self._emit(self.count - 1))
        return out

    def _emit(self, newest: int) -> OnlineFrame:
        index = self.done
        self.done += 1
        held = self.held[index - (self.count - len(self.held))]
        if self.first < 0 or index < self.first:  # no person yet: nothing to lift
            return OnlineFrame(index, None, held, 0.0)
        # absolute frames of the window, in the stream that starts at the first frame with the person
        rel = causal_window(newest - self.first, self.frames, self.seq2frame, newest - index)
        base = (newest - self.first + 1) - len(self.buffer)  # stream index of buffer[0]
        x = np.stack([self.buffer[i - base] for i in rel])
        tic = time.perf_counter()
        windows = torch.from_numpy(x.astype(np.float32))[None].to(self.device)
        pred = predict_windows(self.model, windows, self.flip_test).float().cpu().numpy().astype(np.float64)[0]
        pose = pred[0] if self.seq2frame else pred[self.frames - 1 - (newest - index)]
        if self.f3d is not None:
            pose = self.f3d.step(pose)
        dt = time.perf_counter() - tic
        self.lifted += 1
        self.seconds += dt
        return OnlineFrame(index, pose, held, dt)


@torch.no_grad()
def lift_online(model: nn.Module, keypoints: np.ndarray, scores: np.ndarray | None, width: int, height: int,
                valid: np.ndarray | None = None, flip_test: bool = False, device: str | torch.device | None = None,
                lookahead: int = 0, **filters: FilterConfig | float | None) -> tuple[np.ndarray, OnlineLifter]:
    """A whole H36M-17 pixel track (L, 17, 2) lifted frame by frame with :class:`OnlineLifter` (as a live
    stream would be): 3D (L, 17, 3), NaN before the first valid frame; frames where ``valid`` is False hold
    the last 2D. Returns the 3D and the lifter (its ``latency_frames`` and ``fps``). ``filters``:
    ``filter2d``, ``filter3d``, ``fps`` of :class:`OnlineLifter`."""
    kp = number_array(keypoints, "lift_online", "H36M-17 keypoints (L, 17, 2)")
    if kp.ndim != 3 or kp.shape[1:] != (17, 2):
        raise ValueError(f"lift_online expects H36M-17 keypoints (L, 17, 2), got {kp.shape}")
    ok = np.ones(len(kp), bool) if valid is None else np.asarray(valid)
    if ok.dtype.kind not in "biuf" or not np.isin(ok, (0, 1)).all():  # as booleans, "no" or 0.5 would be true
        raise ValueError(f"lift_online: valid must be (L,) = ({len(kp)},) booleans (or 0/1), got "
                         + (f"values of type {ok.dtype}" if ok.dtype.kind not in "biuf" else "other numbers than 0/1"))
    ok = ok != 0
    if ok.size == len(kp):  # (L,) or (L, 1)
        ok = ok.reshape(-1)
    if ok.shape != (len(kp),):
        raise ValueError(f"lift_online: valid must be (L,) = ({len(kp)},) like the keypoints, got {ok.shape}")
    bad = ok & ~np.isfinite(kp).all(axis=(1, 2))
    if bad.any():  # OnlineLifter.push's hint (pass None) is not lift_online's way
        raise ValueError(f"lift_online: frame {int(np.argmax(bad))} holds non-finite keypoints ({int(bad.sum())} "
                         "frames do); mark frames without the person False in valid")
    if scores is not None:
        scores = number_array(scores, "lift_online: scores", f"(L, 17) = ({len(kp)}, 17) scores")
    if scores is not None and len(scores) != len(kp):
        raise ValueError(f"lift_online: scores must have one row per frame ({len(kp)}), got {len(scores)}")
    lifter = OnlineLifter(model, width, height, flip_test, device, lookahead, **filters)  # type: ignore[arg-type]
    out = np.full((len(kp), 17, 3), np.nan)
    results = [lifter.push(kp[t] if ok[t] else None, None if scores is None else scores[t]) for t in range(len(kp))]
    for r in [r for r in results if r is not None] + lifter.flush():
        if r.pose3d is not None:
            out[r.index] = r.pose3d
    return out, lifter
