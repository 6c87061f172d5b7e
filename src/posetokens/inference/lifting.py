"""2D -> 3D lifting of a video or a 2D-keypoint json (``posetokens lift``).

Steps: 2D keypoints per frame (from a 2D model run on the video, or from an ``infer`` json) -> people
followed through the clip (:func:`person_tracks`: the json's own ``track_id`` when every instance has one,
else the tracker of :mod:`posetokens.inference.tracking`) -> EVERY track seen in at least ``min_track_frames``
frames (default :func:`default_min_track_frames`: 30, at most half the clip, rounded up; shorter tracks are counted
and listed as skipped) is lifted on its own, over its span from first to last sighting -> COCO-17 converted to
H36M-17 (:func:`coco_to_h36m`) -> frames of the span where the track is missing filled by linear
interpolation in time (within the track only) -> pixel
coordinates normalised by the frame width (the H36M training convention,
:func:`~posetokens.data.h36m.normalize_screen_coordinates`) -> windows of the model's F frames,
edge-padded (seq2seq models: ``ceil(L/F)`` centred windows; seq2frame models: one window centred on
every frame) -> 3D per frame.

The 3D joints are **root-relative** (pelvis at 0) and in **metres**, in the **camera's axes** the H36M
models are trained in: x to the right of the image, y down, z away from the camera (depth). The 3D json
lists per frame the ``people`` lifted there by ``track_id`` (the same ids are written into the 2D json that
``lift`` makes of a video); each frame's own ``person``/``keypoints_2d``/``keypoints_3d`` are the main track's
(the highest summed box score x mean keypoint score), ``null`` where it is not detected.

Checks before any computing: the output folder is writable, no output overwrites an input, ``--weights`` and
``--pose2d-weights`` name files, the device exists, and a json's recorded ``keypoint_layout`` (written by
``infer``) agrees with ``layout``. A model without weights says so on stderr. On SIGINT/SIGTERM the files of the
finished work are completed and :class:`~posetokens.runtime.Interrupted` is raised.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posetokens.data.h36m import (
    normalize_screen_coordinates,
    seq2frame_indices,
    seq2seq_indices,
    seq2seq_starts,
)
from posetokens.data.metainfo import H36M
from posetokens.inference.precision import check_float32
from posetokens.inference.visualize import default_kpt_thr
from posetokens.layers import optimize_for_inference
from posetokens.media import VideoWriter
from posetokens.registry import note_if_random_weights
from posetokens.runtime import (check_count, check_device, check_flag, is_whole, note, number_array, option,
                                short_repr, shown_device, warn)

__all__ = [
    "COCO_TO_H36M",
    "TrackPanels",
    "coco_to_h36m",
    "default_min_track_frames",
    "fill_missing",
    "lift",
    "lift_sequence",
    "main_person",
    "panel_layout",
    "person_tracks",
    "render_pose3d",
    "track_arrays",
    "track_score",
]

#: H36M-17 joint <- COCO-17 joints averaged (MMPose's conversion; see the module doc).
COCO_TO_H36M: tuple[tuple[int, ...], ...] = (
    (11, 12),  # 0 root (pelvis) = mean of the hips
    (12,),  # 1 right_hip
    (14,),  # 2 right_knee
    (16,),  # 3 right_foot = right ankle
    (11,),  # 4 left_hip
    (13,),  # 5 left_knee
    (15,),  # 6 left_foot = left ankle
    (5, 6, 11, 12),  # 7 spine = mean of pelvis and thorax = mean of shoulders and hips
    (5, 6),  # 8 thorax = mean of the shoulders
    (0,),  # 9 neck_base = nose
    (1, 2),  # 10 head = mean of the eyes
    (5,),  # 11 left_shoulder
    (7,),  # 12 left_elbow
    (9,),  # 13 left_wrist
    (6,),  # 14 right_shoulder
    (8,),  # 15 right_elbow
    (10,),  # 16 right_wrist
)


def _mapping_matrix() -> np.ndarray:
    m = np.zeros((17, 17))
    for j, src in enumerate(COCO_TO_H36M):
        m[j, list(src)] = 1.0 / len(src)
    return m


_MAP = _mapping_matrix()


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 keypoints (..., 17, 2) and scores (..., 17) to H36M-17: averaged joints get the mean score.

    spine is the midpoint of pelvis and thorax, i.e. the mean of both hips and both shoulders.
    """
    k = number_array(keypoints, "coco_to_h36m", "COCO-17 keypoints (..., 17, 2)")
    if k.shape[-2:] != (17, 2):
        raise ValueError(f"coco_to_h36m expects COCO-17 keypoints (..., 17, 2), got {k.shape}")
    s = np.ones(k.shape[:-1]) if scores is None else number_array(scores, "coco_to_h36m: scores",
                                                                   f"scores {k.shape[:-1]} like the keypoints")
    if s.shape == (*k.shape[:-1], 1):  # (..., 17, 1), as the lifters take them
        s = s[..., 0]
    if s.shape != k.shape[:-1]:
        raise ValueError(f"coco_to_h36m: scores must be {k.shape[:-1]} like the keypoints (..., 17, 2), got {s.shape}")
    return np.einsum("jk,...kc->...jc", _MAP, k), np.einsum("jk,...k->...j", _MAP, s)


def person_tracks(records: Sequence[dict[str, Any]], path: str = "records",
                  **tracker_args: Any) -> tuple[dict[int, dict[int, int]], str]:
    """The people of the records as tracks ``{track id: {frame index: instance index}}`` and how they were found:
    the records' own ``track_id`` when every instance carries one (``"track_id"``), else the tracker of
    :mod:`posetokens.inference.tracking` (box IoU + OKS, constant velocity, Hungarian assignment;
    ``tracker_args`` go to :class:`~posetokens.inference.tracking.Tracker`)."""
    from posetokens.inference.tracking import track_records, tracks_of

    insts = [inst for r in records for inst in r["instances"]]
    if insts and all(isinstance(inst.get("track_id"), int) and not isinstance(inst.get("track_id"), bool)
                     for inst in insts):
        ids = [[int(inst["track_id"]) for inst in r["instances"]] for r in records]
        for t, frame_ids in enumerate(ids):
            if len(set(frame_ids)) != len(frame_ids):
                raise ValueError(f"{path}: record {t}: 'track_id' {sorted(frame_ids)} repeats an id within one frame; "
                                 "expected one instance per track and frame")
        return tracks_of(ids), "track_id"
    return tracks_of(track_records(records, **tracker_args)), "tracker"


def track_arrays(records: Sequence[dict[str, Any]], track: dict[int, int],
                 num_keypoints: int = 17) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keypoints (L, K, 2), scores (L, K) and the frames it is found in (L,) of one track over all L records;
    other frames hold zeros."""
    n = len(records)
    kpts, scores, valid = np.zeros((n, num_keypoints, 2)), np.zeros((n, num_keypoints)), np.zeros(n, bool)
    for t, i in track.items():
        inst = records[t]["instances"][i]
        kpts[t], scores[t], valid[t] = inst["keypoints"], inst["keypoint_scores"], True
    return kpts, scores, valid


def track_score(records: Sequence[dict[str, Any]], track: dict[int, int]) -> float:
    """Sum over a track's frames of ``bbox_score x mean keypoint score`` (a person seen longer and more surely)."""
    def box_score(inst: dict[str, Any]) -> float:
        return 1.0 if inst.get("bbox_score") is None else float(inst["bbox_score"])  # JSON null: none given

    insts = [records[t]["instances"][i] for t, i in track.items()]
    return float(sum(box_score(inst) * float(np.mean(inst["keypoint_scores"])) for inst in insts))


def main_person(records: Sequence[dict[str, Any]], num_keypoints: int = 17,
                **tracker_args: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The main person, followed through the clip: of the tracks of :func:`person_tracks`, the one with the
    highest :func:`track_score`. Returns its keypoints (L, K, 2), scores (L, K) and the frames it is found in
    (L,); other frames hold zeros (another person there is not taken)."""
    tracks, _ = person_tracks(records, **tracker_args)
    if not tracks:
        n = len(records)
        return np.zeros((n, num_keypoints, 2)), np.zeros((n, num_keypoints)), np.zeros(n, bool)
    best = max(tracks.values(), key=lambda tr: track_score(records, tr))
    return track_arrays(records, best, num_keypoints)


def default_min_track_frames(num_frames: int) -> int:
    """Frames a track needs to be lifted when ``--min-track-frames`` is not given: 30 (1.2 s at 25 fps; shorter
    tracks are mostly detector flicker or people brushing the edge of the view), but at most half the clip
    (rounded up), so a clip shorter than 60 frames still lifts the people seen in half of it."""
    return max(1, min(30, (num_frames + 1) // 2))


def fill_missing(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation in time over frames where ``valid`` is False (edges hold the nearest valid frame).

    ``values`` (L, ...); raises ``ValueError`` when no frame is valid.
    """
    if not valid.any():
        raise ValueError("no person found in any frame: nothing to lift")
    if valid.all():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1)
    out = np.stack([np.interp(t, t[valid], col[valid]) for col in flat.T], axis=1)  # a loop over coordinates
    return out.reshape(values.shape)


def model_frames(model: nn.Module) -> int:
    """Window length F of a lifting model."""
    return int(model.cfg.num_frames)


def check_lifter(model: Any, width: Any, height: Any, device: str | torch.device | None, where: str) -> torch.device:
    """Refuse, in one line naming ``where``'s argument, what cannot be lifted: a ``model`` that is not a lifting
    model (a zoo name, a 2D model), a frame size that is not positive, a ``device`` this machine lacks or other
    than the model's. Returns the device to run on (None: the model's)."""
    if not isinstance(model, nn.Module) or getattr(model, "task", None) != "lifting":
        got = repr(model) if isinstance(model, str) else f"{type(model).__name__} (task {getattr(model, 'task', None)!r})"
        hint = f"; build one with posetokens.create_model({model!r}, weights=...)" if isinstance(model, str) else ""
        raise ValueError(f"{where}: model must be a lifting model (an nn.Module whose task is 'lifting'), got "
                         f"{got}{hint}")
    for name, v in (("width", width), ("height", height)):  # cv2's CAP_PROP_FRAME_WIDTH is a float: 1920.0 is fine
        whole = isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer())
        if isinstance(v, bool) or not whole or v < 1:
            raise ValueError(f"{where}: {name} must be a positive whole number (the frame size in pixels), got {v!r}")
    on = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device is None:
        return on
    dev = check_device(device, f"{where}: {option('device', shown_device(device))}")
    if dev.type != on.type or (dev.index is not None and on.index is not None and dev.index != on.index):
        raise ValueError(f"{where}: device {device} but the model is on {on}; move the model first "
                         f"(model.to({str(dev)!r})) or leave device out")
    return dev


@torch.no_grad()
def lift_sequence(model: nn.Module, keypoints: np.ndarray, scores: np.ndarray | None, width: int, height: int,
                  flip_test: bool = False, batch_size: int = 4, device: str | torch.device | None = None) -> np.ndarray:
    """3D poses (L, 17, 3), root-relative metres in camera axes, of H36M-17 pixel keypoints (L, 17, 2)
    in a ``width x height`` frame. Models with 3 input channels (MotionBERT) get the scores (L, 17) as the third
    (None: ones). The model runs in eval mode whatever its mode (it is restored after), on ``device`` (None: the
    model's own)."""
    from posetokens.protocols.predict import predict_windows

    device = check_lifter(model, width, height, device, "lift_sequence")
    kp = number_array(keypoints, "lift_sequence", "H36M-17 keypoints (L, 17, 2)")
    if kp.ndim != 3 or kp.shape[1:] != (17, 2):
        raise ValueError(f"lift_sequence expects H36M-17 keypoints (L, 17, 2), got {kp.shape}")
    if not len(kp):
        raise ValueError("lift_sequence: keypoints hold no frames (L = 0); expected at least one")
    if not np.isfinite(kp).all():
        raise ValueError("lift_sequence: keypoints hold non-finite values (fill missing frames first)")
    batch_size = check_count(batch_size, "lift_sequence: batch_size")
    flip_test = check_flag(flip_test, "lift_sequence: flip_test")
    check_float32(model, "lift_sequence")
    note_if_random_weights(model, "the lifting model")  # create_model's, without weights: said once per model
    length, f = len(kp), model_frames(model)
    x = normalize_screen_coordinates(kp, width, height)
    sc = None
    if scores is not None:  # checked for every model, used by those that take them (3 input channels)
        sc = number_array(scores, "lift_sequence: scores", f"(L, 17) = ({length}, 17) scores")
        if sc.shape == (length, 17, 1):  # as the online lifter takes them
            sc = sc[..., 0]
        if sc.shape != (length, 17):
            raise ValueError(f"lift_sequence: scores must be (L, 17) = ({length}, 17) like the keypoints, got {sc.shape}")
        if not np.isfinite(sc).all():  # refused by a 2-channel model too, which does not read them: the same call
            t, j = np.argwhere(~np.isfinite(sc))[0]  # must not pass or fail by the model it is made with
            raise ValueError(f"lift_sequence: scores[{t}, {j}] = {sc[t, j]} is not finite; expected finite scores "
                             "(a joint that was not found keeps a low score)")
    if model.cfg.in_channels == 3 and sc is not None:
        x = np.concatenate((x, sc[..., None]), axis=-1)
    x = torch.from_numpy(x.astype(np.float32))  # a 3-channel model without scores gets ones (model_input)
    seq2frame = bool(model.is_seq2frame)
    idx = seq2frame_indices(length, f) if seq2frame else seq2seq_indices(length, f)
    preds = []
    for s in range(0, len(idx), batch_size):
        windows = x[torch.from_numpy(idx[s:s + batch_size])].to(device)
        preds.append(predict_windows(model, windows, flip_test).float().cpu())
    pred = torch.cat(preds).numpy().astype(np.float64)
    if seq2frame:  # one centre frame per window, window t centred on frame t
        return pred[:, 0]
    t = seq2seq_starts(length, f)[:, None] + np.arange(f)
    real = (t >= 0) & (t < length)
    out = np.zeros((length, 17, 3))
    out[t[real]] = pred[real]
    return out


# ------------------------------------------------------------------------------------------------ drawing
class Pose3DRenderer:
    """A matplotlib 3D skeleton panel, re-used across frames (Agg canvas, no display needed).

    Plotted axes: camera x to the right, depth z into the picture, camera -y up (an upright person).
    """

    def __init__(self, size: int, limit: float = 1.0, title: str = "3D (m, root-relative)",
                 colour: tuple[int, int, int] | None = None) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(size / 100, size / 100), dpi=100)
        self.canvas = FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.95 if size >= 300 else 0.9)
        self.ax = self.fig.add_subplot(111, projection="3d")
        ax = self.ax
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_zlim(-limit, limit)
        ax.set_xlabel("x")
        ax.set_ylabel("z (depth)")
        ax.set_zlabel("-y (up)")
        ax.view_init(elev=15.0, azim=-70.0)
        small = size < 300  # a panel among several: no axis labels and ticks, the title in the track's colour
        if small:
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.set_zlabel("")
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
        # a figure-level title, top-aligned inside the canvas: a 3D axes' own title sits above its box and is cut off
        self.fig.text(0.5, 0.995, title, ha="center", va="top", fontsize=9 if not small else 8,
                      color=None if colour is None else tuple(c / 255 for c in colour),
                      fontweight="bold" if colour is not None else None)
        colours = [tuple(c / 255 for c in (colour or rgb)) for rgb in H36M.link_colors]
        self.lines = [ax.plot([0, 0], [0, 0], [0, 0], color=c, lw=2)[0] for c in colours]
        self.text = ax.text2D(0.02, 0.02, "", transform=ax.transAxes, fontsize=8)
        self._background: Any = None

    def render(self, pose: np.ndarray | None, caption: str = "") -> np.ndarray:
        """(size, size, 3) BGR image of one (17, 3) pose (None: an empty panel with the caption)."""
        for line, (a, b) in zip(self.lines, H36M.skeleton):
            if pose is None:
                line.set_data_3d([], [], [])
            else:
                p = pose[[a, b]]
                line.set_data_3d(p[:, 0], p[:, 2], -p[:, 1])
        self.text.set_text(caption)
        if self._background is None:  # the axes, drawn once; later frames draw only the bones and the caption
            artists = [*self.lines, self.text]
            for art in artists:
                art.set_visible(False)
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
            for art in artists:
                art.set_visible(True)
        self.canvas.restore_region(self._background)
        for line in self.lines:
            self.ax.draw_artist(line)
        self.ax.draw_artist(self.text)
        rgba = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[..., 2::-1])


def render_pose3d(pose: np.ndarray | None, size: int = 400, limit: float = 1.0) -> np.ndarray:
    """One (17, 3) H36M pose drawn in 3D with matplotlib, as a (size, size, 3) BGR image."""
    return Pose3DRenderer(size, limit).render(pose)


# ---------------------------------------------------------------------------------------------- pipeline
def _tracks_to_lift(records: Sequence[dict[str, Any]], src: Path,
                    min_track_frames: int | None) -> tuple[dict, Any, dict, dict[int, int], int]:
    """``lift``'s people: (every track, how they were tracked, the tracks long enough to lift, the frame counts
    of the others, the least length); ``ValueError`` naming ``src`` when nobody is there to lift."""
    tracks, tracked_by = person_tracks(records, str(src))
    if not tracks:
        raise ValueError(f"{src}: no person found in any frame: nothing to lift")
    need = default_min_track_frames(len(records)) if min_track_frames is None else int(min_track_frames)
    lifted = {tid: tr for tid, tr in tracks.items() if len(tr) >= need}
    skipped = {tid: len(tr) for tid, tr in tracks.items() if len(tr) < need}
    if not lifted:
        raise ValueError(f"{src}: no track of at least {need} frames (the longest has "
                         f"{max(len(tr) for tr in tracks.values())}): nothing to lift; lower "
                         f"{option('min_track_frames')}")
    return tracks, tracked_by, lifted, skipped, need


def lift(source: str | Path | int | Any, model: str | nn.Module | None, out_dir: str | Path, weights: str | Path | None = None,
         pose2d: str | nn.Module | None = None, pose2d_weights: str | Path | None = None,
         boxes: Any = None, bbox_thr: float = 0.3, layout: str | None = None,
         image_size: tuple[int, int] | None = None, flip_test: bool = False, device: str = "cpu", draw: bool = True,
         kpt_thr: float | None = None, progress: bool | None = None, pose2d_overrides: dict[str, Any] | None = None,
         min_track_frames: int | None = None, loop: int | None = None, smooth: Any = None, online: bool = False,
         lookahead: int = 0, det_every: int = 1, max_frames: int | None = None, max_panels: int = 4,
         precision: str | None = None, runtime: str | None = None, fps: float | None = None,
         **overrides: Any) -> dict[str, Any]:
    """Lift a video (through the 2D model ``pose2d``) or a 2D-keypoint json to 3D; write to ``out_dir``:
    ``<stem>_3d.json`` (3D per frame), for videos also ``<stem>.json`` (the 2D results) and, with ``draw``,
    ``<stem>_3d.mp4`` (every lifted person in 2D, a 3D panel per person beside the frame). ``layout`` is the
    json's keypoint layout (``coco`` or ``h36m``; None: the ``keypoint_layout`` the json records, else ``coco``; one that differs from
    the recorded layout is refused); ``image_size`` (w, h) is needed for a json whose records carry no
    width/height; ``fps`` is a json's frame rate (None: the records' ``fps``, which ``infer`` writes for videos,
    else 25, said on stderr). ``kpt_thr`` (least 2D score drawn) defaults to the 2D model's
    (``PoseEstimator.default_kpt_thr``), or 0.3 for a json. ``min_track_frames``: frames a track needs to be
    lifted (None: :func:`default_min_track_frames`). ``smooth`` (a :class:`~posetokens.inference.filters.FilterConfig`
    or a filter name; None: off, where the ``lift`` command's default is ``one_euro``) filters each track's 2D (in units of half the frame width) before lifting and
    its 3D after. ``online`` lifts with causal windows (:func:`posetokens.inference.online.lift_online`;
    ``lookahead`` frames of latency) and prints the latency and FPS. ``precision``/``runtime``: the number format and runtime of both
    models (:mod:`posetokens.inference.precision`; None: its measured default; outputs stay float32). Returns a
    summary (files, ``from_json``, frames, frames with a detected lifted person, tracks lifted and skipped, the
    main track). The 3D json's ``random_weights`` is true when either model ran with random weights.
    ``model`` may be None when ``weights`` is a checkpoint of ours (it names its model); ``pose2d`` None takes
    the model ``pose2d_weights`` names, else ``tokenpose_s_coco_256x192``. Everything that can be checked is
    checked before the first model runs (see the module doc). ``source`` may also be a live stream (a webcam
    index or a stream URL), an ``InputSource`` of
    :func:`~posetokens.inference.api.open_input`, or, with ``loop``, a video file read as a stream ``loop`` times
    over; a live stream is recorded as it is read (for the drawing) and its outputs are named by its stem
    (``webcam0_3d.json``).

    The video shows every lifted person's 2D skeleton and id in their track's colour and, beside the frame, one
    3D panel per person in that colour (:class:`TrackPanels`) for the ``max_panels`` best-scored tracks (the
    summary's ``panels`` lists their ids; the others are named on stderr). ``det_every`` and ``max_frames`` go
    to the 2D pass (:meth:`~posetokens.inference.api.PoseEstimator.infer`; ``max_frames`` also cuts a json).
    With ``progress`` the time of every stage is shown as it runs and returned in the summary's ``stages``."""
    from posetokens.inference.filters import FilterConfig, as_filter
    from posetokens.inference.online import lift_online
    from posetokens.inference.stages import StageTimer

    smooth = as_filter(smooth, "smooth") or FilterConfig()  # None: off, bit-identical; a name as --filter takes it
    online, draw = check_flag(online, option("online")), check_flag(draw, option("draw"))  # "no" was True
    if online:
        smooth.stream(fps=25.0)  # online is causal: refuses Savitzky-Golay, which needs future frames
    max_panels = check_count(max_panels, option("max_panels"))
    flip_test = check_flag(flip_test, "flip_test")  # used after the 2D pass: checked before it
    from posetokens.checkpoint import load_trained
    from posetokens.fileio import (atomic_write_json, check_no_overwrite, check_output_kinds, require_file,
                                   writable_dir)
    from posetokens.inference.api import (
        IMAGE_EXTENSIONS,
        VIDEO_EXTENSIONS,
        InputSource,
        NotTopDownError,
        PoseEstimator,
        check_out_beside_input,
        is_stream,
        load_results,
        open_input,
        show_progress,
        stack_instances,
    )
    from posetokens.registry import create_model, get_entry
    from posetokens.runtime import (
        Interrupted,
        check_device,
        interruptible,
        signal_name,
        signals_deferred,
    )

    if not isinstance(source, (str, os.PathLike, numbers.Integral, InputSource)) or isinstance(source, bool):
        raise ValueError(f"lift: source must be a video or 2D-keypoint json path, a webcam index or a stream URL, got "
                         f"{type(source).__name__} {short_repr(source)} (keypoint arrays: "
                         "posetokens.inference.lifting.lift_sequence)")
    source_in = source if isinstance(source, InputSource) else None
    if source_in is None and (is_stream(source) or loop is not None):  # a webcam, a stream URL, a looped file
        source_in = open_input(source, loop=loop, replay=draw)  # replay: the drawing reads the frames again
    live = source_in is not None and source_in.kind == "stream" and source_in.video.live  # type: ignore[union-attr]
    src = Path(source_in.stem) if live else (source_in.path if source_in is not None else Path(source))
    if source_in is None and not src.exists():
        raise FileNotFoundError(f"input not found: {src} (expected a video, a 2D-keypoint json, a webcam index or a "
                                "stream URL)")
    if source_in is None and src.is_dir():
        raise ValueError(f"input {src} is a folder; lift takes a video or a 2D-keypoint json written by infer")
    if layout not in (None, "coco", "h36m"):
        raise ValueError(f"layout must be 'coco' or 'h36m', got {layout!r}")
    if min_track_frames is not None:
        min_track_frames = check_count(min_track_frames, option("min_track_frames"))
    if max_frames is not None:  # both before any model is built or says a word
        max_frames = check_count(max_frames, option("max_frames"))
    if isinstance(pose2d, nn.Module):  # as PoseEstimator would, but naming the argument and before any note
        check_float32(pose2d, option("pose2d"))
    check_count(det_every, option("det_every"))
    dev = check_device(device)
    from posetokens.inference.precision import check_choice, check_model_choice, parse_choice, prepare

    choice = parse_choice(precision, runtime)  # both models run under it (posetokens.inference.precision)
    check_choice(choice, dev)
    for flag, path in ((option("weights"), weights), (option("pose2d_weights"), pose2d_weights)):
        if path is not None:
            require_file(path, flag)
    # a json, or the .partial file a killed video run of infer left (<stem>.json.<random>.partial)
    is_json = src.suffix.lower() == ".json" or (src.suffix == ".partial" and ".json" in src.suffixes)
    if source_in is None and not is_json and src.suffix.lower() in IMAGE_EXTENSIONS:  # before --out is made
        raise ValueError(f"{src}: lift takes a video or a 2D-keypoint json, not images")
    if source_in is None and not is_json and src.suffix.lower() not in VIDEO_EXTENSIONS:  # open_input's message
        raise ValueError(f"{src}: unknown input type {src.suffix.lower()!r}; lift takes a video "  # named images
                         f"({', '.join(VIDEO_EXTENSIONS)}), a 2D-keypoint json written by infer, a webcam index or a "
                         "stream URL")
    if fps is not None:
        if not is_json:
            raise ValueError(f"{option('fps')} applies to a 2D-keypoint json; {src} is a video or a stream (its own "
                             "frame rate)")
        _frame_rate([], fps, src)  # a bad value, before --out is made
    if image_size is not None and not is_json:  # was ignored without a word
        raise ValueError(f"{option('image_size')} applies to a 2D-keypoint json; {src} is a video or a stream (its "
                         "own frame size)")
    if image_size is not None:
        _check_image_size(image_size)  # before --out is made
    if lookahead and not online:  # was ignored without a word
        raise ValueError(f"{option('lookahead', lookahead)} applies to online lifting "
                         f"({option('online', True)}); offline lifting sees the whole clip")
    out = Path(out_dir)
    stem = src.name[:src.name.lower().index(".json")] if src.suffix == ".partial" else src.stem
    remedy = f"give {option('out_dir')} another folder"  # every output's path is derived from it
    outputs = ([] if is_json else [("2D results json", out / f"{stem}.json", remedy)]) + [
        ("3D results json", out / f"{stem}_3d.json", remedy)]
    if draw:
        outputs.append(("side-by-side video", out / f"{stem}_3d.mp4", remedy))
    check_no_overwrite([("input", None if live else src), (option("weights"), weights),
                        (option("pose2d_weights"), pose2d_weights),
                        ("detections file", boxes if isinstance(boxes, (str, Path)) else None),
                        ("detector", getattr(boxes, "path", None))], outputs)
    check_output_kinds(outputs)  # a folder at the 3D json's path failed after the 2D pass and the lifting
    if not live and not is_json and src.is_file():  # a video file, looped or not: not into its own folder (a json
        check_out_beside_input(src, out, [p.name for _, p, _ in outputs])  # is infer's output, lifted beside it)
    records: list[dict[str, Any]] | None = None
    tracked = None
    filtered_2d: dict[str, Any] | None = None  # the filter infer ran on a json's 2D, as its records say
    if is_json:  # read and check the 2D input before --out is made and before any model is built or says a word
        if det_every != 1:
            raise ValueError(f"{option('det_every')} applies to a video or a stream (its 2D pass); {src} is a "
                             "2D-keypoint json")
        unused = [flag for flag, v in ((option("pose2d"), pose2d), (option("pose2d_weights"), pose2d_weights),
                                       (option("boxes"), boxes)) if v is not None]
        if unused:  # its 2D is in the file: they would be ignored
            raise ValueError(f"{', '.join(unused)} applies to a video or a stream (its 2D pass); {src} is a "
                             "2D-keypoint json")
        records = load_results(src, max_frames)  # max_frames checked above  # the frames it lifts, checked
        layout = _json_layout(records, layout, src)
        stack_instances(records, 17, str(src))
        w, h = _frame_size(records, image_size, src)
        fps = _frame_rate(records, fps, src)
        tracked = _tracks_to_lift(records, src, min_track_frames)  # a json with nobody to lift fails here too
        filtered_2d = next((r["filter"] for r in records if isinstance(r.get("filter"), dict)), None)
        if filtered_2d is not None and not smooth.is_off:  # infer filtered it: a second pass would lag it twice
            note(f"{src}: its 2D was filtered by infer ({filtered_2d.get('name')}); lift filters the 3D only")
    elif layout not in (None, "coco"):
        raise ValueError("layout applies to json input; a video goes through a COCO-17 2D model")
    if isinstance(model, nn.Module):
        if weights is not None:  # was ignored: the given module ran as it was, said to have random weights
            raise ValueError("lift: pass weights with a zoo name, or load them into the model yourself")
        if overrides:
            raise ValueError(f"lift: model config overrides ({', '.join(sorted(overrides))}) apply to a zoo name; "
                             "a built model has its config")
        lifter = model
    elif weights is not None:
        lifter = load_trained(weights, model, overrides or None).model
    elif model is None:
        raise ValueError(f"lift: give a lifting zoo model ({option('model', 'NAME')}), or weights of ours that "
                         "name their model")
    else:
        lifter = create_model(model, **overrides)
    if getattr(lifter, "task", None) != "lifting":
        raise ValueError(f"{getattr(lifter, 'zoo_name', type(lifter).__name__)} is not a 2D->3D lifting model "
                         f"(it is a {getattr(lifter, 'task', None)} model)")
    check_float32(lifter, "lift", precision=True)
    check_model_choice(lifter, choice, flip_test=flip_test)  # before the export and the 2D pass, not after them
    if records is None and isinstance(pose2d, str) and pose2d_weights is None:  # before any model says a word
        k = getattr(get_entry(pose2d).cfg, "num_keypoints", None)
        k = None if k is None else int((pose2d_overrides or {}).get("num_keypoints", k))  # as it would be built
        if k is not None and k != 17:
            raise ValueError(f"{option('pose2d', pose2d)}: the 2D model must predict COCO-17 keypoints, it predicts "
                             f"{k}")
    writable_dir(out)  # before any computing: an unwritable folder fails now, not after the 2D and 3D passes
    # a zoo name without weights, or a built model that create_model made without weights and nothing has changed
    # since: said once per model; auto keeps random weights in PyTorch
    trained = not note_if_random_weights(lifter, "the lifting model")
    # the inference copy (fused Linear layers), then the precision/runtime choice; the given model is not changed
    lifter = prepare(optimize_for_inference(lifter.to(dev), channels_last=False), choice, dev, trained=trained)
    files: list[str] = []
    video = None
    ended_by: Interrupted | None = None  # a Ctrl-C that ended the 2D pass: the frames read are lifted
    timer = StageTimer(live=show_progress(progress))
    if records is None:
        source_in = open_input(src) if source_in is None else source_in
        if source_in.kind not in ("video", "stream"):
            raise ValueError(f"{src}: lift takes a video or a 2D-keypoint json, not images")
        video = source_in.video
        layout = "coco"
        if pose2d is None and pose2d_weights is None:
            pose2d = "tokenpose_s_coco_256x192"
        try:
            est = PoseEstimator(pose2d, pose2d_weights, device=dev, precision=choice.precision, runtime=choice.runtime,
                                **(pose2d_overrides or {}))
        except NotTopDownError as e:  # its own hint is for infer; here the user named it as lift's 2D model
            given = (option("pose2d_weights", pose2d_weights) if pose2d_weights is not None
                     else "pose2d" if isinstance(pose2d, nn.Module) else option("pose2d", pose2d))
            raise ValueError(f"{given}: {e.name} is a {e.task} model; lift's 2D pass needs a top-down COCO-17 2D "
                             "model (image crops in), such as ppt_s_coco_256x192") from None
        if est.metainfo.num_keypoints != 17 or est.metainfo.name != "coco":
            given = option("pose2d_weights", pose2d_weights) if pose2d_weights is not None else \
                option("pose2d", est.name)
            raise ValueError(f"{given}: the 2D model must predict COCO-17 keypoints, it predicts {est.metainfo.name}")
        kpt_thr = est.default_kpt_thr if kpt_thr is None else kpt_thr
        try:
            res2d = est.infer(source_in, out, boxes=boxes, bbox_thr=bbox_thr, draw=False, kpt_thr=kpt_thr,
                              progress=progress, det_every=det_every, max_frames=max_frames, timer=timer)
        except Interrupted as e:  # Ctrl-C ends the input (a camera or a stream has no other end): lift what was read
            if e.signum != signal.SIGINT or not e.files:  # SIGTERM: stop now; no frame finished: nothing to lift
                raise
            ended_by = e
            res2d = {"files": e.files[:1]}  # the json this run finished (not one an earlier run left in --out)
            print(f"posetokens lift: {e}; lifting them (Ctrl-C again to stop)", file=sys.stderr, flush=True)
        files.append(res2d["files"][0])
        records = load_results(res2d["files"][0])
        w, h, fps = video.width, video.height, video.fps  # type: ignore[union-attr]
    kpt_thr = default_kpt_thr() if kpt_thr is None else kpt_thr
    if tracked is None:  # a video's 2D, just made
        try:
            tracked = _tracks_to_lift(records, src, min_track_frames)
        except ValueError as e:  # the 2D json is this run's: an earlier run's 3D files beside it are not
            earlier = [str(q) for q in (out / f"{stem}_3d.json", out / f"{stem}_3d.mp4") if q.is_file()]  # drawn or not
            if not earlier:
                raise
            raise ValueError(f"{e} (the 2D results are in {files[0]}; {' and '.join(earlier)}: left from an "
                             "earlier run)") from None
    tracks, tracked_by, lifted, skipped, need = tracked
    if files:  # our own 2D json of the video: give every instance its track id, the ids of the 3D json
        for tid, tr in tracks.items():
            for t, i in tr.items():
                records[t]["instances"][i]["track_id"] = tid
        atomic_write_json(Path(files[0]), list(records))
    per_track: dict[int, dict[str, Any]] = {}
    stopped: KeyboardInterrupt | None = None  # an interrupt while lifting: the finished tracks are still written
    bar = None
    if show_progress(progress):  # the lifting itself (a json's whole run): frames of the tracks, done track by track
        from tqdm import tqdm

        bar = tqdm(total=sum(max(tr) - min(tr) + 1 for tr in lifted.values()), unit="frame",
                   desc=f"lifting {len(lifted)} track(s)")
    with interruptible():
        try:
            for tid, tr in lifted.items():
                tic = time.perf_counter()
                first, last = min(tr), max(tr)
                kp, sc, valid = (a[first:last + 1] for a in track_arrays(records, tr))
                if layout == "coco":
                    kp, sc = coco_to_h36m(kp, sc)
                if filtered_2d is None:  # 2D pixels; frames without the person unchanged
                    kp = smooth(kp, valid, fps=fps, scale=w / 2)
                if online:
                    pose3d, ol = lift_online(lifter, kp, sc, w, h, valid=valid, flip_test=flip_test, device=dev,
                                             lookahead=lookahead)
                    print(f"online lifting (track {tid}): causal windows, latency {ol.latency_frames} frame(s), "
                          f"{ol.fps:.1f} FPS", file=sys.stderr)
                    kp = fill_missing(kp, valid)
                else:
                    kp, sc = fill_missing(kp, valid), fill_missing(sc, valid)  # gaps within the track only
                    pose3d = lift_sequence(lifter, kp, sc, w, h, flip_test=flip_test, device=dev)
                pose3d = smooth(pose3d, valid, fps=fps)  # 3D metres
                if not np.isfinite(pose3d[valid]).all():
                    raise ValueError(f"{getattr(lifter, 'zoo_name', 'the lifting model')} produced non-finite 3D "
                                     f"joints (track {tid})")
                per_track[tid] = {"first": first, "kp": kp, "sc": sc, "valid": valid, "pose3d": pose3d,
                                  "score": track_score(records, tr)}
                timer.add("lifting", time.perf_counter() - tic)
                if bar is not None:
                    bar.update(len(valid))
        except KeyboardInterrupt as e:
            stopped = e
        finally:
            if bar is not None:
                bar.close()
    if stopped is not None and not per_track:
        signum = getattr(stopped, "signum", signal.SIGINT)
        kept = f"; the 2D results are in {files[0]}" if files else ""
        raise Interrupted(signum, f"interrupted by {signal_name(signum)} while lifting, before any track was "
                                  f"finished{kept}") from None
    # once interrupted, a second Ctrl-C or a SIGTERM waits until the finished tracks are written
    with signals_deferred(discard=True) if stopped is not None else contextlib.nullcontext():
        main_id = max(per_track, key=lambda k: per_track[k]["score"])
        ranked = sorted(per_track, key=lambda k: -per_track[k]["score"])
        shown = ranked[:int(max_panels)]  # the tracks with a 3D panel in the video
        name = getattr(lifter, "zoo_name", type(lifter).__name__)
        frame_ids = [int(r.get("frame_id", i)) for i, r in enumerate(records)]
        frames_out: list[dict[str, Any]] = [
            {"frame_id": f, **({"time_s": r["time_s"]} if "time_s" in r else {}), "person": False,
             "keypoints_2d": None, "keypoints_3d": None, "people": []} for f, r in zip(frame_ids, records)]
        for tid, d in per_track.items():
            tr = lifted[tid]
            for j, (v, k, p) in enumerate(zip(d["valid"], d["kp"], d["pose3d"])):
                t = d["first"] + j
                frames_out[t]["people"].append({
                    "track_id": tid, "instance": tr.get(t), "filled": not bool(v),
                    "keypoints_2d": np.round(k, 2).tolist(), "keypoints_3d": np.round(p, 5).tolist()})
                if tid == main_id and v:
                    frames_out[t].update(person=True, keypoints_2d=np.round(k, 2).tolist(),
                                         keypoints_3d=np.round(p, 5).tolist())
        filter_block = smooth.describe()  # One-Euro ran at the clip's rate unless its config named one
        if filtered_2d is not None:  # the 2D as given (infer's filter), this one on the 3D only
            filter_block = {**filter_block, "applied_to": "3d", "2d_filtered_by_infer": filtered_2d}
        if smooth.name == "one_euro" and smooth.fps is None:
            filter_block["fps"] = fps
        payload = {
            "model": name, "weights": None if weights is None else str(weights),
            "random_weights": not trained or any(bool(r.get("random_weights")) for r in records),  # or the 2D's
            "units": "metres", "root_relative": True, "root": "pelvis (joint 0)",
            "axes": "camera: x right, y down, z away from the camera", "keypoint_layout": "h36m",
            "input_layout": layout,
            "person": ("every track of at least min_track_frames frames, lifted on its own 2D sequence (gaps within "
                       "the track filled by interpolation: 'filled'); per frame 'people' lists them by track_id (the "
                       "'track_id' of the 2D json, 'instance' indexes its instances); the frame's own 'person', "
                       "'keypoints_2d' and 'keypoints_3d' are those of the main track (the highest summed box x "
                       "keypoint score) where it is detected"),
            "tracking": ("the input's track_id" if tracked_by == "track_id" and not files
                         else "posetokens.inference.tracking (box IoU + OKS, constant velocity, Hungarian)"),
            "min_track_frames": need, "main_track": main_id,
            "tracks": [{"track_id": tid, "first_frame": frame_ids[d["first"]],
                        "last_frame": frame_ids[d["first"] + len(d["valid"]) - 1],
                        "frames_detected": int(d["valid"].sum()), "frames_filled": int((~d["valid"]).sum()),
                        "score": round(d["score"], 4)} for tid, d in per_track.items()],
            "tracks_skipped": [{"track_id": tid, "frames_detected": n} for tid, n in skipped.items()],
            "joint_names": list(H36M.keypoint_names), "fps": fps, "width": w, "height": h,
            "filter": filter_block, "online": bool(online), "video_panels": shown if draw and stopped is None else [],
            "complete": stopped is None,  # False: interrupted while lifting; 'tracks_not_lifted' were not reached
            "tracks_not_lifted": [tid for tid in lifted if tid not in per_track],
            "frames": frames_out,
        }
        try:
            with signals_deferred():  # a Ctrl-C waits for the file
                atomic_write_json(out / f"{stem}_3d.json", payload)
        except KeyboardInterrupt as e:  # only a complete run gets here (after an interrupt the outer block drops it)
            signum = getattr(e, "signum", signal.SIGINT)
            left = "; the 3D video was not drawn" if draw else ""
            raise Interrupted(signum, f"interrupted by {signal_name(signum)} after the 3D of all {len(per_track)} "
                                      f"track(s) was written to {out / f'{stem}_3d.json'}{left}") from None
    files.append(str(out / f"{stem}_3d.json"))
    if stopped is not None:
        signum = getattr(stopped, "signum", signal.SIGINT)
        kept = f"; the 2D results are in {files[0]}" if len(files) > 1 else ""
        raise Interrupted(signum, f"interrupted by {signal_name(signum)} while lifting: the 3D of the "
                                  f"{len(per_track)} finished track(s) of {len(lifted)} is in {files[-1]} "
                                  f"(\"complete\": false){kept}") from None
    n = len(records)
    if draw:
        whole = {}  # each lifted track over the whole clip, for the video
        for tid in sorted(per_track):
            d = per_track[tid]
            kp, sc, valid, pose3d = np.zeros((n, 17, 2)), np.zeros((n, 17)), np.zeros(n, bool), np.zeros((n, 17, 3))
            span = slice(d["first"], d["first"] + len(d["valid"]))
            kp[span], sc[span], valid[span], pose3d[span] = d["kp"], d["sc"], d["valid"], d["pose3d"]
            whole[tid] = (kp, sc, valid, pose3d)
        if len(ranked) > len(shown):
            note(f"3D panels for {len(shown)} of {len(ranked)} lifted people (ids {', '.join(map(str, shown))}; not "
                 f"shown: {', '.join(map(str, ranked[len(shown):]))}); {option('max_panels')} to show more")
        with interruptible():
            try:
                panels = TrackPanels(whole, shown, w, h, kpt_thr)
                files.append(str(_render_video(out / f"{stem}_3d.mp4", video, n, panels, w, h, fps,
                                               show_progress(progress), timer)))
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", signal.SIGINT)
                mp4 = out / f"{stem}_3d.mp4"
                drawn = f"{mp4} holds the frames drawn" if mp4.exists() else "no frame of the video was drawn"
                raise Interrupted(signum, f"interrupted by {signal_name(signum)} while drawing: the 3D results are "
                                          f"in {files[-1]}; {drawn}") from None
    if ended_by is not None:  # the files are complete for the frames read; the exit code says it was interrupted
        raise Interrupted(ended_by.signum, f"interrupted by {signal_name(ended_by.signum)} in the 2D pass: the 3D of "
                                           f"the {n} frame(s) read is in {files[1]}")
    if timer.frames == 0:
        timer.frames = n
    return {"input": str(src), "from_json": is_json, "frames": len(records),
            "frames_with_person": sum(any(not q["filled"] for q in f["people"]) for f in frames_out),
            "tracks": len(per_track), "tracks_skipped": len(skipped), "min_track_frames": need,
            "main_track": main_id, "files": files, "panels": shown if draw else [], "stages": timer.summary()}


def _json_layout(records: Sequence[dict[str, Any]], layout: str | None, src: Path) -> str:
    """The keypoint layout of a json's records: the one they record (``infer`` writes ``keypoint_layout`` and
    ``model``), checked against ``layout`` when both are known; else ``layout``, else ``coco``."""
    stored = {str(r["keypoint_layout"]) for r in records if r.get("keypoint_layout") is not None}
    if len(stored) > 1:
        raise ValueError(f"{src}: records mix keypoint layouts {sorted(stored)}; expected one")
    if stored:
        got = stored.pop()
        models = sorted({str(r["model"]) for r in records if r.get("model") is not None})
        by = f" (written by {', '.join(models)})" if models else ""
        if got not in ("coco", "h36m"):
            raise ValueError(f"{src}: 'keypoint_layout' is {got!r}{by}; lift takes COCO-17 ('coco') or H36M-17 "
                             "('h36m') 2D keypoints")
        if layout is not None and layout != got:
            raise ValueError(f"{src}: the 2D keypoints are in the {got!r} layout{by}, but {option('layout', layout)} "
                             f"was given; use {option('layout', got)} (or leave it out)")
        return got
    return layout or "coco"


def _frame_size(records: Sequence[dict[str, Any]], image_size: tuple[int, int] | None, src: Path) -> tuple[int, int]:
    """The frames' (width, height): ``image_size`` when given, else the records' (checked by ``load_results``)."""
    r = records[0]
    if image_size is not None:
        w, h = _check_image_size(image_size)
        if "width" in r and "height" in r and (r["width"], r["height"]) != (w, h):
            warn(f"{src}: the records say the frames are {r['width']}x{r['height']}; {option('image_size')} "
                 f"{w}x{h} given is used (the 2D is normalised by it)")
        return w, h
    if "width" in r and "height" in r:
        return int(r["width"]), int(r["height"])
    raise ValueError(f"{src}: records carry no 'width'/'height'; give the frame size ({option('image_size')})")


def _check_image_size(image_size: Any) -> tuple[int, int]:
    """``image_size`` as (width, height) in whole pixels >= 1, else a one-line ``ValueError`` naming it."""
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(is_whole(v) and v >= 1
                                                                               for v in image_size):
        return int(image_size[0]), int(image_size[1])
    cli = option("image_size").startswith("--")
    shown = "x".join(map(str, image_size)) if cli and isinstance(image_size, (tuple, list)) else repr(image_size)
    raise ValueError(f"{option('image_size')} {shown}: expected {'WIDTHxHEIGHT' if cli else '(width, height)'} in "
                     f"whole pixels >= 1, e.g. {'1280x720' if cli else '(1280, 720)'}")


def _frame_rate(records: Sequence[dict[str, Any]], fps: float | None, src: Path) -> float:
    """The frame rate of a json's frames: ``fps`` when given, else the one its records carry (``infer`` writes
    a video's), else 25 (said on stderr: the One-Euro filter and the 3D video run at it)."""
    if fps is None:
        fps = records[0].get("fps") if records else None
        if fps is None:
            warn(f"{src}: the records carry no 'fps'; 25 frames per second assumed (give the clip's with "
                 f"{option('fps')})")
            return 25.0
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{src}: frame rate {fps!r}: expected a positive number of frames per second")
    return float(fps)


def panel_layout(panels: int, height: int) -> tuple[int, int, int]:
    """Rows, columns and side (pixels, even) of ``panels`` square 3D panels beside a frame ``height`` pixels high
    (a multiple of 4): one panel of the full height, else two rows of half height."""
    if panels <= 1:
        return 1, 1, height
    rows = 2
    return rows, -(-panels // rows), height // rows


class TrackPanels:
    """Frames of the ``lift`` video: the frame (scaled to ``height``) with each lifted person's H36M-17 2D
    skeleton and id in their track colour, and beside it one small 3D panel per shown track, in that same colour
    (:func:`panel_layout`; the tracks in ``shown`` order, row by row). ``tracks``: ``{track id: (kp (L, 17, 2),
    sc (L, 17), valid (L,), pose3d (L, 17, 3))}`` over the whole clip (frames outside a track's span: not valid)."""

    def __init__(self, tracks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], shown: Sequence[int],
                 width: int, height: int, kpt_thr: float, panel_height: int | None = None) -> None:
        from posetokens.inference.visualize import track_colour

        self.tracks, self.shown = tracks, list(shown)
        self.kpt_thr = kpt_thr
        hp = panel_height or int(min(max(height, 240), 480))
        self.height = max(4, hp // 4 * 4)
        self.scale = self.height / height
        self.left_w = 2 * round(width * self.scale / 2)  # even widths: mp4v drops an odd column
        self.rows, self.cols, self.side = panel_layout(len(self.shown), self.height)
        self.width = self.left_w + self.cols * self.side
        poses = [np.where((v[:, None, None] & np.isfinite(p)), p, 0) for _, _, v, p in tracks.values()]
        top = max((float(np.abs(p).max()) for p in poses if p.size), default=0.0)
        limit = float(np.clip(top * 1.1, 0.5, 10.0))
        many = len(self.shown) > 1
        self.renderers = {tid: Pose3DRenderer(self.side, limit, f"id {tid}" if many else f"id {tid}: 3D (m, "
                                              "root-relative)", track_colour(tid)) for tid in self.shown}
        self.colours = {tid: track_colour(tid, "bgr") for tid in tracks}

    def render(self, i: int, image: np.ndarray) -> np.ndarray:
        """The video frame (height, width, 3) BGR of frame ``i`` drawn over ``image`` (the video frame, BGR)."""
        from posetokens.inference.visualize import draw_skeleton, draw_track_label

        img = image
        for tid, (kp, sc, valid, _) in self.tracks.items():
            if valid[i]:
                img = draw_skeleton(img, kp[i], sc[i], H36M, kpt_thr=self.kpt_thr, channel_order="bgr",
                                    colour=self.colours[tid][::-1])
                img = draw_track_label(img, kp[i], f"id {tid}", self.colours[tid], sc[i], self.kpt_thr)
        out = np.full((self.height, self.width, 3), 255, np.uint8)
        out[:, :self.left_w] = cv2.resize(img, (self.left_w, self.height), interpolation=cv2.INTER_AREA)
        for k, tid in enumerate(self.shown):
            r, c = divmod(k, self.cols)
            _, _, valid, pose3d = self.tracks[tid]
            panel = self.renderers[tid].render(pose3d[i] if valid[i] else None,
                                               f"frame {i}" + ("" if valid[i] else ": not seen"))
            x = self.left_w + c * self.side
            out[r * self.side:(r + 1) * self.side, x:x + self.side] = panel
        return out


def _render_video(path: Path, video: Any, n: int, panels: TrackPanels, w: int, h: int, fps: float,
                  progress: bool = False, timer: Any = None) -> Path:
    """Write the ``lift`` video of ``n`` frames (:class:`TrackPanels` over the video's frames, or white frames
    for a json input)."""
    from tqdm import tqdm

    from posetokens.inference.stages import StageTimer

    timer = timer if timer is not None else StageTimer()
    count = timer.frames == 0  # a json input: no 2D pass counted the frames
    writer = VideoWriter(path, fps, (panels.width, panels.height))
    frames = timer.timed(iter(video), "decode") if video is not None else None
    try:
        bar = tqdm(range(n), disable=not progress, unit="frame", desc=path.name)
        timer.attach(bar)
        for i in bar:
            img = next(frames).image if frames is not None else np.full((h, w, 3), 255, np.uint8)
            with timer.stage("drawing"):
                frame = panels.render(i, img)
            with timer.stage("encode"):
                writer.write(frame)
            timer.frame_done(count)
    finally:
        writer.close()
    return path
