"""docs/tracked_people.png: several tracked people with their ids and one 3D panel each, from trained models only.

``python scripts/figures/tracked_people.py [--pose2d-weights W] [--lifter-weights W] [--frame 112]``

The rendered synthetic clip (4 people who walk, cross and hide each other; ``make_clip(people=4, seed=0)``) is
written as an MP4 and run through ``posetokens lift`` with ground-truth person boxes, the PPT trained by
``make quickstart`` on synthetic people as the 2D model and a MixSTE trained on synthetic motion
(``configs/mixste_synthetic_video_9.yaml``, trained here in about 2 minutes unless ``--lifter-weights``) as the
lifter; the picture is one frame of the video ``lift`` writes. The 2D model's AP on the rendered frames is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_models import (
    DEFAULT_PPT,
    DEFAULT_WORK,
    ROOT,
    lift_frame,
    pose2d_weights,
    render_clip,
    score_2d,
    trained_lifter,
)


def main(argv: list[str] | None = None) -> int:
    """Make the picture; print the 2D model's AP on the clip and lift's summary."""
    from posetokens.data.synthetic_video import make_clip
    from posetokens.media import write_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pose2d-weights", default=None, help=f"2D checkpoint (default {DEFAULT_PPT})")
    ap.add_argument("--lifter-weights", default=None, help="lifter checkpoint (default: train one, about 2 min)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for the clip, models and lift outputs")
    ap.add_argument("--frame", type=int, default=112, help="frame of the lift video to keep (all 4 panels seen)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "tracked_people.png")
    args = ap.parse_args(argv)
    pose2d = pose2d_weights(args.pose2d_weights)
    lifter = trained_lifter(args.work, args.lifter_weights)
    clip = make_clip(people=4, frames=150, seed=0)
    video, boxes, rendered = render_clip(clip, args.work, "clip4")
    print("2D model on the rendered clip:", json.dumps(score_2d(clip, rendered, pose2d)))
    image, summary = lift_frame(video, boxes, lifter, pose2d, args.work / "lift4", args.frame)
    print("lift:", json.dumps({k: v for k, v in summary.items() if k != "stages"}))
    print(write_image(args.out, image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
