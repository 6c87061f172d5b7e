"""docs/lift_sample_frame90.png: frame 90 of ``posetokens lift``'s video for one person, from trained models only.

``python scripts/figures/lift_sample.py [--pose2d-weights W] [--lifter-weights W]``

It replaces docs/lift_sample_video_frame90.png, which was drawn with random weights. One rendered synthetic person
walking across the view (``make_clip(people=1, seed=3)``) goes through ``lift`` with its ground-truth box, the PPT
trained by ``make quickstart`` (2D) and a MixSTE trained on synthetic motion (3D; see ``tracked_people.py``).
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
    trained_lifter,
)


def main(argv: list[str] | None = None) -> int:
    """Make the picture and print lift's summary."""
    from posetokens.data.synthetic_video import make_clip
    from posetokens.media import write_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pose2d-weights", default=None, help=f"2D checkpoint (default {DEFAULT_PPT})")
    ap.add_argument("--lifter-weights", default=None, help="lifter checkpoint (default: train one, about 2 min)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for the clip, models and lift outputs")
    ap.add_argument("--seed", type=int, default=3, help="the clip's seed")
    ap.add_argument("--frame", type=int, default=90)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "lift_sample_frame90.png")
    args = ap.parse_args(argv)
    pose2d = pose2d_weights(args.pose2d_weights)
    lifter = trained_lifter(args.work, args.lifter_weights)
    clip = make_clip(people=1, frames=150, seed=args.seed)
    video, boxes, _ = render_clip(clip, args.work, f"clip1_seed{args.seed}")
    image, summary = lift_frame(video, boxes, lifter, pose2d, args.work / f"lift1_seed{args.seed}", args.frame)
    print("lift:", json.dumps({k: v for k, v in summary.items() if k != "stages"}))
    print(write_image(args.out, image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
