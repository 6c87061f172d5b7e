"""Pictures and videos written to disk, atomically: :func:`write_image` and :class:`VideoWriter` (H.264 through
PyAV, which browsers play, else OpenCV's ``mp4v``). Below the data and inference packages, so both use them (the
synthetic clip generator and ``infer``/``lift``'s overlays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetokens.fileio import TempBeside, atomic_write_bytes
from posetokens.runtime import warn

__all__ = ["MAX_GAP_S", "VideoWriter", "h264_unavailable", "write_image"]


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode ``image`` (BGR) by the file extension and write it atomically (temporary file, then rename)."""
    p = Path(path)
    ok, buf = cv2.imencode(p.suffix or ".png", np.ascontiguousarray(image))
    if not ok:
        raise ValueError(f"{p}: OpenCV cannot encode a {p.suffix!r} picture")
    return atomic_write_bytes(p, buf.tobytes())


_H264_UNAVAILABLE: list[str] = []  # why H.264 could not be written here, once known (said once per process)


_TICKS = 100  # an H.264 overlay's clock ticks per frame of its rate: a variable-frame-rate source's times to 1%
MAX_GAP_S = 600.0  # a longer jump between two frames' times is a damaged stream's, not a pause: it is closed up


def h264_unavailable() -> str | None:
    """Why this installation cannot write H.264 through PyAV (``pip install 'posetokens[video]'``), or None when it
    can. Probed once per process: PyAV importable and an H.264 encoder (libx264, else OpenH264) present."""
    if _H264_UNAVAILABLE:
        return _H264_UNAVAILABLE[0] or None
    why = ""
    try:
        import av
    except ImportError as e:
        why = f"PyAV is not installed ({e}; pip install 'posetokens[video]')"
    else:
        if _h264_encoder() is None:
            why = f"PyAV {av.__version__} has no H.264 encoder (neither libx264 nor libopenh264)"
    _H264_UNAVAILABLE.append(why)
    return why or None


def _h264_encoder() -> str | None:
    import av

    for name in ("libx264", "libopenh264"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001, S112 (av raises its own errors for an unknown codec)
            continue
        return name
    return None


class VideoWriter:
    """An MP4 writer browsers play: H.264 (``yuv420p``, ``+faststart``) through PyAV when it is installed with an
    H.264 encoder, else OpenCV's ``mp4v`` (MPEG-4 Part 2, which browsers do not play), said once per process on
    stderr ("H.264 unavailable: ..."). ``codec`` forces one (``"h264"``: an error when unavailable; ``"mp4v"``).
    :attr:`codec` says which is used. Frames go to a temporary ``.<stem>.<random>.partial.mp4`` beside ``path``;
    :meth:`close` finishes the file (its index, so it plays) and renames it to ``path``, so a run stopped by
    SIGINT/SIGTERM (which closes it) leaves a playable video of the frames done. A writer closed without a frame
    leaves no file. Sizes are made even (``yuv420p`` and ``mp4v`` need them); frames of another size are resized.
    ``crf``: the H.264 quality (lower: better, larger); ``quiet``: no fallback warning (an internal file)."""

    def __init__(self, path: str | Path, fps: float, size_wh: tuple[int, int], codec: str = "auto",
                 crf: int = 23, quiet: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(21, "cannot write a video over a folder", str(self.path))
        if codec not in ("auto", "h264", "mp4v"):
            raise ValueError(f"{self.path}: video codec must be 'auto', 'h264' or 'mp4v', got {codec!r}")
        self.size = (max(2, int(size_wh[0]) // 2 * 2), max(2, int(size_wh[1]) // 2 * 2))
        fps = float(fps) if np.isfinite(fps) and fps > 0 else 25.0
        self.fps = fps
        self.frames = 0
        self.closed = False
        self._pts = -_TICKS  # the last frame's presentation time (H.264), in ticks (_TICKS a frame of the rate)
        self._t0: float | None = None  # the time the first frame stands for, when times are given
        self._container: Any = None
        self._stream: Any = None
        self._w: Any = None
        self._temp = TempBeside(self.path)
        self.tmp = self._temp.tmp
        why = h264_unavailable() if codec != "mp4v" else "mp4v asked for"
        if why is None:
            try:
                self._open_h264(fps, crf)
            except Exception as e:  # noqa: BLE001 (an encoder that refuses to open: fall back, saying why)
                self._close_av()
                why = f"PyAV could not open the H.264 encoder ({type(e).__name__}: {e})"
        if why is not None and codec == "h264":
            self._temp.discard()
            raise ValueError(f"{self.path}: H.264 unavailable: {why}")
        if self._container is None:
            if codec == "auto" and why and why not in _WARNED_FALLBACK and not quiet:
                _WARNED_FALLBACK.add(why)
                warn(f"H.264 unavailable: {why}; writing mp4v videos (MPEG-4 Part 2), which browsers do not play")
            self._w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
            if not self._w.isOpened():
                self._temp.discard()
                raise ValueError(f"{self.path}: OpenCV cannot open an mp4v video writer here")
            self.codec = "mp4v"

    def _open_h264(self, fps: float, crf: int) -> None:
        from fractions import Fraction

        import av

        encoder = _h264_encoder()
        rate = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(self.tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        opts = {"crf": str(int(crf)), "preset": "veryfast"} if encoder == "libx264" else {}
        stream = self._container.add_stream(encoder, rate=rate, options=opts)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / (rate * _TICKS)  # a frame of the rate is _TICKS ticks
        self._stream = stream
        self.codec = "h264"
        self.encoder = encoder

    def _close_av(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001, S110 (closing a container that failed to start)
                pass
        self._container = self._stream = None

    def write(self, frame_bgr: np.ndarray, time_s: float | None = None) -> None:
        """Append one (H, W, 3) uint8 BGR frame (resized to the writer's size when it differs). ``time_s``: its
        time in the source (seconds): an H.264 video shows it at that time from the first frame's, to a hundredth
        of a frame of the rate (a variable-frame-rate source keeps its timing; a constant one gets one frame per
        frame of its rate, as without times). A time that does not go forward takes the next tick; a jump of more
        than :data:`MAX_GAP_S` is said and closed up (a damaged stream). mp4v writes one frame per frame of the
        rate."""
        if self.closed:
            raise ValueError(f"{self.path}: write after close")
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            frame_bgr = cv2.resize(frame_bgr, self.size, interpolation=cv2.INTER_AREA)
        frame_bgr = np.ascontiguousarray(frame_bgr)
        if self._stream is not None:
            import av

            vf = av.VideoFrame.from_ndarray(frame_bgr, format="bgr24")
            slot = self._pts + _TICKS  # one frame of the rate after the last
            if time_s is not None and np.isfinite(time_s):
                self._t0 = float(time_s) if self._t0 is None else self._t0
                at = round((float(time_s) - self._t0) * self.fps * _TICKS)
                if at - self._pts > MAX_GAP_S * self.fps * _TICKS:  # a damaged stream's jump: closed up
                    warn(f"{self.path}: the frame times jump by {(at - self._pts) / self.fps / _TICKS:.0f} s after "
                         f"frame {self.frames}; the video goes on one frame later")
                    self._t0 += (at - slot) / self.fps / _TICKS
                    at = slot
                slot = max(self._pts + 1, at)
            vf.pts = self._pts = slot
            self._container.mux(self._stream.encode(vf))
        else:
            self._w.write(frame_bgr)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to ``path`` (no file when no frame was written). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._stream is not None:
                if self.frames:
                    self._container.mux(self._stream.encode(None))  # flush the encoder's delayed frames
                self._close_av()
            elif self._w is not None:
                self._w.release()
        except BaseException:
            self._temp.discard()
            raise
        if self.frames:
            self._temp.commit()
        else:
            self._temp.discard()


_WARNED_FALLBACK: set[str] = set()
