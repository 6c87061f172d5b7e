"""Trained models on the rendered synthetic clip: the shared steps of ``tracked_people.py`` and ``lift_sample.py``.

* :func:`trained_lifter`: ``configs/mixste_synthetic_video_9.yaml`` trained on synthetic motion seen by the clip's
  camera (about 2 minutes on 2 cores), cached in the work folder.
* :func:`pose2d_weights`: the PPT that ``make quickstart`` trains on synthetic people (its checkpoint is named by
  ``--pose2d-weights``; nothing here falls back to random weights).
* :func:`render_clip`: the clip's MP4 and its ground-truth person boxes (a COCO-results detections file).
* :func:`score_2d`: COCO AP (pycocotools) and PCK of the 2D model on rendered frames with ground-truth boxes.
* :func:`lift_frame`: ``posetokens lift`` on the MP4 and one frame of the video it writes, as a picture.

``python scripts/figures/clip_models.py [--pose2d-weights W]`` prints the 2D model's AP on the rendered clip.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1].parent
DEFAULT_PPT = Path("/tmp/trained/ppt/final.pth")  # where the session's `make quickstart` run left it
DEFAULT_WORK = Path("outputs/figures")


def pose2d_weights(path: str | Path | None) -> Path:
    """The 2D checkpoint to use, or a one-line error naming how to make it."""
    p = Path(path) if path is not None else DEFAULT_PPT
    if not p.is_file():
        raise SystemExit(f"2D model weights not found: {p} (train them with `make quickstart` and pass "
                         "--pose2d-weights OUT/ppt/final.pth; the pictures are never drawn with random weights)")
    return p


def trained_lifter(work: Path, weights: str | Path | None = None) -> Path:
    """The lifter checkpoint: ``weights`` when given, else one trained here (once; reused from ``work``)."""
    if weights is not None:
        return Path(weights)
    from posetokens.data.synthetic_video import write_motion_dataset
    from posetokens.engine.config import load_config
    from posetokens.engine.trainer import train

    run = work / "lifter" / "run"
    if (run / "final.pth").is_file():
        return run / "final.pth"
    paths = write_motion_dataset(work / "lifter" / "motion", subjects=("S1", "S5", "S6", "S7", "S8", "S9"), seed=0)
    cfg = load_config(ROOT / "configs" / "mixste_synthetic_video_9.yaml",
                      [f"data.keypoints_3d={paths['3d']}", f"data.keypoints_2d={paths['2d']}",
                       f"data.cameras={paths['cameras']}", f"work_dir={run}"])
    tic = time.perf_counter()
    metrics = train(cfg, overwrite=True)
    print(f"lifter trained in {time.perf_counter() - tic:.0f} s: held-out MPJPE {metrics['MPJPE']:.1f} mm",
          file=sys.stderr)
    return run / "final.pth"


def render_clip(clip: Any, work: Path, name: str) -> tuple[Path, Path, list]:
    """Write ``work/name.mp4`` and ``work/name_boxes.json`` (the visible people's silhouette boxes, frame index as
    ``image_id``); returns both paths and the rendered frames."""
    from posetokens.fileio import atomic_write_json

    work.mkdir(parents=True, exist_ok=True)
    out = clip.write_video(work / f"{name}.mp4")
    boxes = atomic_write_json(work / f"{name}_boxes.json", clip.detections(out["rendered"]))
    return out["path"], boxes, out["rendered"]


def score_2d(clip: Any, rendered: list, weights: Path, every: int = 5) -> dict[str, float]:
    """COCO keypoint AP (pycocotools, no rescoring or NMS: one prediction per ground-truth box) and PCK@0.1 (of
    the box's longer side, labelled keypoints) of the 2D model on every ``every``-th frame, for the people the
    clip counts as visible, each cropped at its ground-truth silhouette box."""
    from posetokens.data.metainfo import get_metainfo
    from posetokens.evaluation.coco import evaluate_coco
    from posetokens.inference.api import PoseEstimator

    frames = list(range(0, clip.frames, every))
    gt = clip.coco_ground_truth(frames, [rendered[t] for t in frames])
    seen = {(t + 1, int(i)) for t in frames for i in clip.ids[clip.visible[t]]}
    gt["annotations"] = [a for a in gt["annotations"] if (a["image_id"], a["track_id"]) in seen]
    est = PoseEstimator(weights=weights)
    preds, hits = [], []
    for t in frames:
        anns = [a for a in gt["annotations"] if a["image_id"] == t + 1]
        if not anns:
            continue
        xywh = np.array([a["bbox"] for a in anns], np.float64)
        res = est.predict(rendered[t].image, np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), axis=1))
        preds += est.coco_results(res, t + 1)
        for a, kp in zip(anns, res.keypoints):
            g = np.array(a["keypoints"], np.float64).reshape(17, 3)
            d = np.linalg.norm(kp - g[:, :2], axis=1) / max(a["bbox"][2:])
            hits += (d[g[:, 2] > 0] < 0.1).tolist()
    ap = evaluate_coco(gt, preds, get_metainfo("coco").sigmas, rescore=False, nms_thr=None)
    return {"AP": ap["AP"], "AP50": ap["AP50"], "AR": ap["AR"], "PCK@0.1": float(np.mean(hits)),
            "people": len(gt["annotations"]), "frames": len(frames)}


def lift_frame(video: Path, boxes: Path, lifter: Path, pose2d: Path, out_dir: Path, frame: int,
               **lift_args: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Run ``lift`` (the library call behind ``posetokens lift``) on ``video`` with the trained models and the
    boxes file, and return frame ``frame`` of the video it writes (BGR) with lift's summary."""
    import av

    from posetokens.inference.lifting import lift

    summary = lift(video, None, out_dir, weights=lifter, pose2d_weights=pose2d, boxes=boxes, draw=True,
                   **lift_args)
    mp4 = next(Path(f) for f in summary["files"] if f.endswith("_3d.mp4"))
    with av.open(str(mp4)) as container:
        for i, f in enumerate(container.decode(video=0)):
            if i == frame:
                return f.to_ndarray(format="bgr24"), summary
    raise ValueError(f"{mp4} has fewer than {frame + 1} frames")


def main(argv: list[str] | None = None) -> int:
    """Print the AP / PCK of the 2D model on the rendered 4-person clip (seed 0)."""
    from posetokens.data.synthetic_video import make_clip

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pose2d-weights", default=None, help=f"2D checkpoint (default {DEFAULT_PPT})")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for the clip and the models")
    args = ap.parse_args(argv)
    clip = make_clip(people=4, frames=150, seed=0)
    _, _, rendered = render_clip(clip, args.work, "clip4")
    print(json.dumps(score_2d(clip, rendered, pose2d_weights(args.pose2d_weights))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
