"""2D -> 3D lifting of a video or a 2D-keypoint json (``posetokens lift``).

Steps: 2D keypoints per frame (from a 2D model run on the video, or from an ``infer`` json) -> ONE person
followed through the clip (:func:`main_person`: people are linked frame to frame by box IoU into tracks, and
the track with the highest summed box score x mean keypoint score is lifted; frames where it is missing count
as frames without a person) -> COCO-17 converted to H36M-17
(:func:`coco_to_h36m`) -> frames without a person filled by linear interpolation in time -> pixel
coordinates normalised by the frame width (the H36M training convention,
:func:`~posetokens.data.h36m.normalize_screen_coordinates`) -> windows of the model's F frames,
edge-padded (seq2seq models: ``ceil(L/F)`` centred windows; seq2frame models: one window centred on
every frame) -> 3D per frame.

The 3D joints are **root-relative** (pelvis at 0) and in **metres**, in the **camera's axes** the H36M
models are trained in: x to the right of the image, y down, z away from the camera (depth). Frames
without a detected person get ``null``.

Checks before any computing: the output folder is writable, no output overwrites an input, ``--weights`` and
``--pose2d-weights`` name files, the device exists, and a json's recorded ``keypoint_layout`` (written by
``infer``) agrees with ``layout``. A model without weights says so on stderr. On SIGINT/SIGTERM the files of the
finished work are completed and :class:`~posetokens.runtime.Interrupted` is raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posetokens.data.h36m import normalize_screen_coordinates, seq2frame_indices, seq2seq_indices, seq2seq_starts
from posetokens.data.metainfo import H36M
from posetokens.inference.visualize import default_kpt_thr

__all__ = [
    "COCO_TO_H36M",
    "coco_to_h36m",
    "fill_missing",
    "lift_sequence",
    "main_person",
    "person_tracks",
    "render_pose3d",
    "lift",
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
    k = np.asarray(keypoints, np.float64)
    if k.shape[-2:] != (17, 2):
        raise ValueError(f"coco_to_h36m expects COCO-17 keypoints (..., 17, 2), got {k.shape}")
    s = np.ones(k.shape[:-1]) if scores is None else np.asarray(scores, np.float64)
    return np.einsum("jk,...kc->...jc", _MAP, k), np.einsum("jk,...k->...j", _MAP, s)


def _instance_boxes(instances: Sequence[dict[str, Any]]) -> np.ndarray:
    """(N, 4) ``[x1, y1, x2, y2]`` of instances: their ``bbox`` when it is a finite box with area, else the extent
    of their keypoints (grown to at least 1 pixel)."""
    out = np.zeros((len(instances), 4))
    for i, inst in enumerate(instances):
        b = np.asarray(inst.get("bbox", ()), np.float64).reshape(-1)
        if b.shape == (4,) and np.isfinite(b).all() and b[2] > b[0] and b[3] > b[1]:
            out[i] = b
            continue
        k = np.asarray(inst["keypoints"], np.float64).reshape(-1, 2)
        k = k[np.isfinite(k).all(axis=1)]
        lo, hi = (k.min(axis=0), k.max(axis=0)) if len(k) else (np.zeros(2), np.zeros(2))
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 0.5)
        out[i] = np.concatenate((centre - half, centre + half))
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU (A, B) of ``[x1, y1, x2, y2]`` boxes (A, 4) and (B, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def person_tracks(records: Sequence[dict[str, Any]], iou_thr: float = 0.3, max_gap: int = 30) -> list[dict[int, int]]:
    """Link the people of consecutive frames into tracks: each frame's instances are matched greedily (highest IoU
    first) to the tracks seen within the last ``max_gap`` frames, by the IoU of their boxes with the track's last
    box (at least ``iou_thr``); the rest start new tracks. Returns per track ``{frame index: instance index}``."""
    tracks: list[dict[int, int]] = []
    last_box: list[np.ndarray] = []
    last_seen: list[int] = []
    for t, r in enumerate(records):
        insts = r["instances"]
        if not insts:
            continue
        boxes = _instance_boxes(insts)
        active = [k for k in range(len(tracks)) if t - last_seen[k] <= max_gap]
        taken: set[int] = set()
        if active:
            iou = box_iou(np.stack([last_box[k] for k in active]), boxes)
            done: set[int] = set()
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                a, i = divmod(int(flat), len(insts))
                if iou[a, i] < iou_thr:
                    break
                if a in done or i in taken:
                    continue
                k = active[a]
                tracks[k][t], last_box[k], last_seen[k] = i, boxes[i], t
                done.add(a)
                taken.add(i)
        for i in range(len(insts)):
            if i not in taken:
                tracks.append({t: i})
                last_box.append(boxes[i])
                last_seen.append(t)
    return tracks


def main_person(records: Sequence[dict[str, Any]], num_keypoints: int = 17, iou_thr: float = 0.3,
                max_gap: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one person to lift, followed through the clip: of the tracks of :func:`person_tracks`, the one with
    the highest sum over its frames of ``bbox_score x mean keypoint score`` (a person seen longer and more surely).
    Returns its keypoints (L, K, 2), scores (L, K) and the frames it is found in (L,); other frames hold zeros
    (another person there is not taken: the lifted pose never jumps between people)."""
    n = len(records)
    kpts, scores, valid = np.zeros((n, num_keypoints, 2)), np.zeros((n, num_keypoints)), np.zeros(n, bool)
    tracks = person_tracks(records, iou_thr, max_gap)
    if not tracks:
        return kpts, scores, valid

    def rank(t: int, i: int) -> float:
        inst = records[t]["instances"][i]
        return float(inst.get("bbox_score", 1.0)) * float(np.mean(inst["keypoint_scores"]))

    totals = [sum(rank(t, i) for t, i in tr.items()) for tr in tracks]
    best = tracks[int(np.argmax(totals))]
    for t, i in best.items():
        inst = records[t]["instances"][i]
        kpts[t], scores[t], valid[t] = inst["keypoints"], inst["keypoint_scores"], True
    return kpts, scores, valid


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


@torch.no_grad()
def lift_sequence(model: nn.Module, keypoints: np.ndarray, scores: np.ndarray, width: int, height: int,
                  flip_test: bool = False, batch_size: int = 4, device: str | torch.device = "cpu") -> np.ndarray:
    """3D poses (L, 17, 3), root-relative metres in camera axes, of H36M-17 pixel keypoints (L, 17, 2)
    in a ``width x height`` frame. Models with 3 input channels (MotionBERT) get the scores as the third."""
    from posetokens.protocols.predict import predict_windows

    kp = np.asarray(keypoints, np.float64)
    if kp.ndim != 3 or kp.shape[1:] != (17, 2):
        raise ValueError(f"lift_sequence expects H36M-17 keypoints (L, 17, 2), got {kp.shape}")
    if not np.isfinite(kp).all():
        raise ValueError("lift_sequence: keypoints hold non-finite values (fill missing frames first)")
    length, f = len(kp), model_frames(model)
    x = normalize_screen_coordinates(kp, width, height)
    if getattr(model.cfg, "in_channels", 2) == 3:
        x = np.concatenate((x, np.asarray(scores, np.float64)[..., None]), axis=-1)
    x = torch.from_numpy(x.astype(np.float32))
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

    def __init__(self, size: int, limit: float = 1.0, title: str = "3D (m, root-relative)") -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(size / 100, size / 100), dpi=100)
        self.canvas = FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=0.95)
        self.ax = self.fig.add_subplot(111, projection="3d")
        ax = self.ax
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_zlim(-limit, limit)
        ax.set_xlabel("x")
        ax.set_ylabel("z (depth)")
        ax.set_zlabel("-y (up)")
        ax.view_init(elev=15.0, azim=-70.0)
        ax.set_title(title, fontsize=9)
        colours = [tuple(c / 255 for c in rgb) for rgb in H36M.link_colors]
        self.lines = [ax.plot([0, 0], [0, 0], [0, 0], color=c, lw=2)[0] for c in colours]
        self.text = ax.text2D(0.02, 0.02, "", transform=ax.transAxes, fontsize=8)

    def render(self, pose: np.ndarray | None, caption: str = "") -> np.ndarray:
        """(size, size, 3) BGR image of one (17, 3) pose (None: an empty panel with the caption)."""
        for line, (a, b) in zip(self.lines, H36M.skeleton):
            if pose is None:
                line.set_data_3d([], [], [])
            else:
                p = pose[[a, b]]
                line.set_data_3d(p[:, 0], p[:, 2], -p[:, 1])
        self.text.set_text(caption)
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(rgba[..., 2::-1])


def render_pose3d(pose: np.ndarray | None, size: int = 400, limit: float = 1.0) -> np.ndarray:
    """One (17, 3) H36M pose drawn in 3D with matplotlib, as a (size, size, 3) BGR image."""
    return Pose3DRenderer(size, limit).render(pose)


# ---------------------------------------------------------------------------------------------- pipeline
def lift(source: str | Path, model: str | nn.Module | None, out_dir: str | Path, weights: str | Path | None = None,
         pose2d: str | nn.Module | None = None, pose2d_weights: str | Path | None = None,
         boxes: Any = None, bbox_thr: float = 0.3, layout: str | None = None,
         image_size: tuple[int, int] | None = None, flip_test: bool = False, device: str = "cpu", draw: bool = True,
         kpt_thr: float | None = None, progress: bool | None = None, pose2d_overrides: dict[str, Any] | None = None,
         **overrides: Any) -> dict[str, Any]:
    """Lift a video (through the 2D model ``pose2d``) or a 2D-keypoint json to 3D; write to ``out_dir``:
    ``<stem>_3d.json`` (3D per frame), for videos also ``<stem>.json`` (the 2D results) and, with ``draw``,
    ``<stem>_3d.mp4`` (2D overlay beside the 3D skeleton). ``layout`` is the json's keypoint layout
    (``coco`` or ``h36m``; None: the ``keypoint_layout`` the json records, else ``coco``; one that differs from
    the recorded layout is refused); ``image_size`` (w, h) is needed for a json whose records carry no
    width/height. ``kpt_thr`` (least 2D score drawn) defaults to the 2D model's
    (``PoseEstimator.default_kpt_thr``), or 0.3 for a json. Returns a summary (files, frames, frames with the
    person). ``model`` may be None when ``weights`` is a checkpoint of ours (it names its model); ``pose2d`` None
    takes the model ``pose2d_weights`` names, else ``tokenpose_s_coco_256x192``. Everything that can be checked is
    checked before the first model runs (see the module doc)."""
    from posetokens.checkpoint import load_trained
    from posetokens.fileio import check_no_overwrite, require_file, writable_dir
    from posetokens.inference.api import PoseEstimator, _write_json, load_results, open_input, stack_instances
    from posetokens.registry import create_model
    from posetokens.runtime import Interrupted, check_device, interruptible, note_random_weights, signal_name

    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"input not found: {src} (expected a video or a 2D-keypoint json)")
    if src.is_dir():
        raise ValueError(f"input {src} is a folder; lift takes a video or a 2D-keypoint json written by infer")
    if layout not in (None, "coco", "h36m"):
        raise ValueError(f"layout must be 'coco' or 'h36m', got {layout!r}")
    dev = check_device(device)
    for flag, path in (("--weights", weights), ("--pose2d-weights", pose2d_weights)):
        if path is not None:
            require_file(path, flag)
    # a json, or the .partial file a killed video run of infer left (<stem>.json.<random>.partial)
    is_json = src.suffix.lower() == ".json" or (src.suffix == ".partial" and ".json" in src.suffixes)
    out = Path(out_dir)
    stem = src.name[:src.name.lower().index(".json")] if src.suffix == ".partial" else src.stem
    outputs = ([] if is_json else [("2D results json", out / f"{stem}.json")]) + [("3D results json",
                                                                                  out / f"{stem}_3d.json")]
    if draw:
        outputs.append(("side-by-side video", out / f"{stem}_3d.mp4"))
    check_no_overwrite([("input", src), ("--weights", weights), ("--pose2d-weights", pose2d_weights),
                        ("detections file", boxes if isinstance(boxes, (str, Path)) else None),
                        ("detector", getattr(boxes, "path", None))], outputs)
    writable_dir(out)  # before any computing: an unwritable folder fails now, not after the 2D and 3D passes
    if isinstance(model, nn.Module):
        lifter = model
    elif weights is not None:
        lifter = load_trained(weights, model, overrides or None).model
    elif model is None:
        raise ValueError("lift: give a lifting zoo model (--model), or weights of ours that name their model")
    else:
        lifter = create_model(model, **overrides)
    if getattr(lifter, "task", None) != "lifting":
        raise ValueError(f"{getattr(lifter, 'zoo_name', type(lifter).__name__)} is not a 2D->3D lifting model "
                         f"(it is a {getattr(lifter, 'task', None)} model)")
    if isinstance(model, str) and weights is None:
        note_random_weights(model, "the lifting model")
    lifter = lifter.to(dev).eval()
    records: list[dict[str, Any]] | None = None
    if is_json:  # read and check the 2D input before any model runs
        records = load_results(src)
        layout = _json_layout(records, layout, src)
        stack_instances(records, 17, str(src))
        w, h = _frame_size(records, image_size, src)
    elif layout not in (None, "coco"):
        raise ValueError("layout applies to json input; a video goes through a COCO-17 2D model")
    files: list[str] = []
    video = None
    if records is not None:
        fps = 25.0
    else:
        source_in = open_input(src)
        if source_in.kind != "video":
            raise ValueError(f"{src}: lift takes a video or a 2D-keypoint json, not images")
        video = source_in.video
        layout = "coco"
        if pose2d is None and pose2d_weights is None:
            pose2d = "tokenpose_s_coco_256x192"
        est = PoseEstimator(pose2d, pose2d_weights, device=dev, **(pose2d_overrides or {}))
        if est.metainfo.num_keypoints != 17 or est.metainfo.name != "coco":
            raise ValueError(f"the 2D model {est.name} must predict COCO-17 keypoints, it predicts {est.metainfo.name}")
        kpt_thr = est.default_kpt_thr if kpt_thr is None else kpt_thr
        res2d = est.infer(src, out, boxes=boxes, bbox_thr=bbox_thr, draw=False, kpt_thr=kpt_thr, progress=progress)
        files.append(res2d["files"][0])
        records = load_results(res2d["files"][0])
        w, h, fps = video.width, video.height, video.fps  # type: ignore[union-attr]
    kpt_thr = default_kpt_thr() if kpt_thr is None else kpt_thr
    kp, sc, valid = main_person(records)
    if layout == "coco":
        kp, sc = coco_to_h36m(kp, sc)
    kp = fill_missing(kp, valid)
    sc = fill_missing(sc, valid)
    with interruptible():
        try:
            pose3d = lift_sequence(lifter, kp, sc, w, h, flip_test=flip_test, device=dev)
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", 2)
            kept = f"; the 2D results are in {files[0]}" if files else ""
            raise Interrupted(signum, f"interrupted by {signal_name(signum)} while lifting{kept}") from None
    if not np.isfinite(pose3d).all():
        raise ValueError(f"{getattr(lifter, 'zoo_name', 'the lifting model')} produced non-finite 3D joints")
    name = getattr(lifter, "zoo_name", type(lifter).__name__)
    payload = {
        "model": name, "units": "metres", "root_relative": True, "root": "pelvis (joint 0)",
        "axes": "camera: x right, y down, z away from the camera", "keypoint_layout": "h36m",
        "input_layout": layout, "person": "one person followed through the clip (box IoU tracking)",
        "joint_names": list(H36M.keypoint_names), "fps": fps, "width": w, "height": h,
        "frames": [
            {"frame_id": int(r.get("frame_id", i)), "person": bool(v),
             "keypoints_2d": np.round(k, 2).tolist() if v else None,
             "keypoints_3d": np.round(p, 5).tolist() if v else None}
            for i, (r, v, k, p) in enumerate(zip(records, valid, kp, pose3d))
        ],
    }
    _write_json(out / f"{stem}_3d.json", payload)
    files.append(str(out / f"{stem}_3d.json"))
    if draw:
        with interruptible():
            try:
                files.append(str(_side_by_side(out / f"{stem}_3d.mp4", video, records, kp, sc, valid, pose3d, w, h,
                                               fps, kpt_thr)))
            except KeyboardInterrupt as e:
                signum = getattr(e, "signum", 2)
                raise Interrupted(signum, f"interrupted by {signal_name(signum)} while drawing: the 3D results are "
                                          f"in {files[-1]}; {out / f'{stem}_3d.mp4'} holds the frames drawn") from None
    return {"input": str(src), "frames": len(records), "frames_with_person": int(valid.sum()), "files": files}


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
            raise ValueError(f"{src}: the 2D keypoints are in the {got!r} layout{by}, but --layout {layout} was "
                             f"given; use --layout {got} (or leave it out)")
        return got
    return layout or "coco"


def _frame_size(records: Sequence[dict[str, Any]], image_size: tuple[int, int] | None, src: Path) -> tuple[int, int]:
    if image_size is not None:
        return int(image_size[0]), int(image_size[1])
    r = records[0]
    if "width" in r and "height" in r:
        return int(r["width"]), int(r["height"])
    raise ValueError(f"{src}: records carry no 'width'/'height'; give the frame size (--image-size WxH)")


def _side_by_side(path: Path, video: Any, records: Sequence[dict], kp: np.ndarray, sc: np.ndarray,
                  valid: np.ndarray, pose3d: np.ndarray, w: int, h: int, fps: float, kpt_thr: float) -> Path:
    """Write the 2D overlay (H36M-17 input of the lifter) beside the matplotlib 3D skeleton."""
    from tqdm import tqdm

    from posetokens.inference.api import VideoWriter
    from posetokens.inference.visualize import draw_skeleton

    panel = int(min(max(h, 240), 480))
    scale = panel / h
    left_w = 2 * int(round(w * scale / 2))  # even widths: mp4v drops an odd column
    ok = valid[:, None, None] & np.isfinite(pose3d)
    limit = float(np.clip(np.abs(np.where(ok, pose3d, 0)).max() * 1.1, 0.5, 10.0))
    renderer = Pose3DRenderer(panel, limit)
    writer = VideoWriter(path, fps, (left_w + panel, panel))
    frames = iter(video) if video is not None else None
    try:
        for i in tqdm(range(len(records)), disable=len(records) < 200, unit="frame", desc=path.name):
            img = next(frames).image if frames is not None else np.full((h, w, 3), 255, np.uint8)
            if valid[i]:
                img = draw_skeleton(img, kp[i], sc[i], H36M, kpt_thr=kpt_thr, channel_order="bgr")
            left = cv2.resize(img, (left_w, panel), interpolation=cv2.INTER_AREA)
            right = renderer.render(pose3d[i] if valid[i] else None,
                                    f"frame {i}" + ("" if valid[i] else ": no person"))
            writer.write(np.concatenate((left, right), axis=1))
    finally:
        writer.close()
    return path
