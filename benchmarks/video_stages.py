"""Time per stage of ``infer`` and ``lift`` on the shared videos, appended to benchmarks/RESULTS.md.

For each video (default: both of ``/work/shared/data/video``) and each 2D batch size (default 1 and 8: crops of
consecutive frames share a forward pass), it runs ``PoseEstimator.infer`` (2D overlay video) and ``lift`` (2D
pass, tracking, lifting, the video with a 3D panel per person) and reports each stage of
:mod:`posetokens.inference.stages` in ms per frame: decode, detector, 2D model, tracking, lifting, drawing,
encode; then the sum of the stages and the end-to-end FPS (frames over the command's wall time, which adds
model building, json writing and, for lift, the second decoding pass).

Speed only: the models run with **random weights** (their outputs are meaningless, their cost is not). With no
person detector in the shared data, the boxes are the whole frame (``--detector det.onnx`` times an ONNX one);
the whole-frame box is one person per frame.

    python benchmarks/video_stages.py                      # both videos, batch 1 and 8, 1 thread
    python benchmarks/video_stages.py --max-frames 50 --batches 8 --no-append
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import append_report, cpu_name, report_path

from posetokens.inference.api import PoseEstimator, open_input
from posetokens.inference.lifting import lift
from posetokens.inference.stages import STAGES
from posetokens.runtime import retain_freed_memory

VIDEOS = (Path("/work/shared/data/video/mmpose_demo.mp4"), Path("/work/shared/data/video/sample_video.mp4"))


def run_one(video: Path, batch: int, args: argparse.Namespace, work: Path) -> list[dict]:
    """The infer and lift rows of one video at one batch size."""
    rows = []
    boxes = None
    if args.detector:
        from posetokens.inference.detector import ONNXDetector

        boxes = ONNXDetector(args.detector)
    est = PoseEstimator(args.model2d, batch_size=batch)
    tic = time.perf_counter()
    s = est.infer(open_input(video), work / f"infer_{batch}", boxes=boxes, progress=False, max_frames=args.max_frames)
    rows.append({"command": "infer", "video": video.name, "batch": batch, "wall": time.perf_counter() - tic,
                 "stages": s["stages"]})
    tic = time.perf_counter()
    s = lift(video, args.lifter, work / f"lift_{batch}", pose2d=args.model2d, boxes=boxes, progress=False,
             max_frames=args.max_frames, min_track_frames=1, pose2d_overrides={"batch_size": batch})
    rows.append({"command": "lift", "video": video.name, "batch": batch, "wall": time.perf_counter() - tic,
                 "stages": s["stages"]})
    return rows


def report(rows: list[dict], args: argparse.Namespace) -> str:
    """Markdown section: machine, date, one row per command x video x batch."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## video_stages.py — {now}",
        "",
        (f"Machine: {cpu_name()}, {torch.get_num_threads()} intra-op thread(s) (requested {args.threads}), "
        f"{platform.system()} {platform.machine()}, torch {torch.__version__}, CPU, load average "
        f"{', '.join(f'{v:.1f}' for v in args.load)} before / {', '.join(f'{v:.1f}' for v in os.getloadavg())} after "
        f"(1, 5, 15 min; {os.cpu_count()} cores). 2D model {args.model2d}, "
        f"lifter {args.lifter}, both with **random weights** (speed only). Boxes: "
        f"{'the ONNX detector ' + args.detector if args.detector else 'the whole frame (no detector in the shared data)'}. "
        "Stages in ms per video frame (wall time); 'sum' adds the stages, 'FPS' is frames over the whole command's "
         "wall time (model building and json writing included; lift decodes the video twice)."),
        "",
        "| command | video | frames | 2D batch | " + " | ".join(STAGES) + " | sum | FPS |",
        "|---|---|---|---|" + "---|" * (len(STAGES) + 2),
    ]
    for r in rows:
        st = r["stages"]
        cells = [f"{st['stages'][k]['ms_per_frame']:.1f}" if k in st["stages"] else "—" for k in STAGES]
        lines.append(f"| {r['command']} | {r['video']} | {st['frames']} | {r['batch']} | " + " | ".join(cells)
                     + f" | {st['total']['ms_per_frame']:.1f} | {st['frames'] / r['wall']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and append its report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", nargs="+", type=Path, default=list(VIDEOS))
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--model2d", default="tokenpose_s_coco_256x192")
    ap.add_argument("--lifter", default="hot_mixste_h36m_243")
    ap.add_argument("--detector", help="an ONNX person detector (contract: posetokens.inference.detector)")
    ap.add_argument("--max-frames", type=int, default=None, help="frames per video (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-append", action="store_true", help="print the table only")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    args.load = os.getloadavg()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="video_stages-") as tmp:
        for video in args.videos:
            for batch in args.batches:
                rows += run_one(video, batch, args, Path(tmp))
    text = report(rows, args)
    if args.no_append:
        print(text)
    else:
        append_report(text, args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
