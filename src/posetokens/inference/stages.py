"""Time per stage of the video commands (``infer``, ``lift``): one small helper both share.

Stages, in pipeline order: ``decode`` (reading a frame), ``detector`` (person boxes: a detector, a detections
file, or boxes carried from the poses), ``2D model`` (crops, forward pass, decoding), ``tracking``, ``lifting``,
``drawing`` (skeletons and 3D panels) and ``encode`` (the video writer). :class:`StageTimer` adds up the seconds
of each and counts the video frames; a stage's **ms** is its seconds per video frame and its **FPS** the frames
per second it alone would sustain (``1000 / ms``); ``total`` is the sum of the stages (the work done per frame
end to end, without waiting for input).

With ``live`` on (``--progress``), :meth:`StageTimer.frame_done` shows the running figures on one line: as the
postfix of the progress bar when stderr is a terminal (updated in place), else as a plain line on stderr every
``every`` frames. :meth:`StageTimer.table` is the final per-stage table.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["STAGES", "StageTimer", "stage_table"]

STAGES: tuple[str, ...] = ("decode", "detector", "2D model", "tracking", "lifting", "drawing", "encode")


class StageTimer:
    """Seconds per stage and frames done (see the module doc). ``live``: show the running line; ``every``: frames
    between plain lines when stderr is not a terminal; ``stream``: where lines go (default stderr)."""

    def __init__(self, live: bool = False, every: int = 25, stream: TextIO | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.frames = 0
        self.live, self.every = bool(live), max(1, int(every))
        self.stream = stream
        self.bar: Any = None
        self.pass_frames = 0  # frames of the current pass (a command may read the video twice)

    def add(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage`` (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as ``name``."""
        tic = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - tic)

    def timed(self, items: Iterable[Any], name: str = "decode") -> Iterator[Any]:
        """``items`` with the time each ``next`` takes added to ``name`` (a frame reader's decoding)."""
        it = iter(items)
        while True:
            tic = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                self.add(name, time.perf_counter() - tic)
                return
            self.add(name, time.perf_counter() - tic)
            yield item

    def attach(self, bar: Any) -> None:
        """Show the running line as the postfix of this tqdm progress bar (when stderr is a terminal); starts a
        new pass over the frames."""
        self.bar = bar
        self.pass_frames = 0

    def frame_done(self, count: bool = True) -> None:
        """One more video frame finished (``count=False``: a frame counted already, in a second pass); shows the
        running line when ``live``."""
        self.frames += int(count)
        self.pass_frames += 1
        if not self.live:
            return
        out = self.stream or sys.stderr
        try:
            tty = out.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty and self.bar is not None:
            self.bar.set_postfix_str(self.line(), refresh=False)
        elif self.pass_frames % self.every == 0:
            print(f"posetokens: {self.pass_frames} frame(s): {self.line()}", file=out, flush=True)

    def summary(self) -> dict[str, Any]:
        """``{"frames": n, "stages": {stage: {"seconds", "ms_per_frame", "fps"}}, "total": {...}}`` (stages that
        ran, in pipeline order)."""
        n = max(self.frames, 1)
        rows = {s: self.seconds[s] for s in STAGES if s in self.seconds}

        def row(sec: float) -> dict[str, float]:
            return {"seconds": round(sec, 4), "ms_per_frame": round(1000 * sec / n, 3),
                    "fps": round(n / sec, 2) if sec > 0 else float("inf")}

        return {"frames": self.frames, "stages": {s: row(v) for s, v in rows.items()},
                "total": row(sum(rows.values()))}

    def line(self) -> str:
        """The running figures on one line: ``decode 2.1 ms (476 FPS) | 2D model ... | total ...``."""
        s = self.summary()
        parts = [f"{k} {v['ms_per_frame']:.1f} ms ({_fps(v['fps'])} FPS)" for k, v in s["stages"].items()]
        return " | ".join(parts + [f"total {s['total']['ms_per_frame']:.1f} ms ({_fps(s['total']['fps'])} FPS)"])

    def table(self) -> str:
        """The per-stage table (markdown) of :meth:`summary`."""
        return stage_table(self.summary())


def _fps(v: float) -> str:
    return "inf" if v == float("inf") else f"{v:.1f}"


def stage_table(summary: dict[str, Any]) -> str:
    """A markdown table of a :meth:`StageTimer.summary`: one row per stage, then the total."""
    lines = [f"per stage, {summary['frames']} frame(s):", "| stage | ms/frame | FPS | seconds |", "|---|---|---|---|"]
    for name, v in list(summary["stages"].items()) + [("total", summary["total"])]:
        lines.append(f"| {name} | {v['ms_per_frame']:.2f} | {_fps(v['fps'])} | {v['seconds']:.3f} |")
    return "\n".join(lines)
