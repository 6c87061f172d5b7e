"""Bad inputs on the inference side (``infer``, ``PoseEstimator.predict``, ``lift``, ``export``): one table of cases.

Each case builds its inputs in a fresh folder, runs one command line (in process, through ``posetokens.cli.main``)
or one API call, and asserts, from outside the code under test:

* the exit code (or the exception type) and a regex on the message the user sees;
* that named files are unchanged (SHA-256 before and after: an input is never overwritten);
* that named outputs exist or do not, and that nothing under the case's output folders is half-written
  (no temporary or ``.partial`` file is left, every ``.json`` parses, every ``.png`` and ``.mp4`` decodes).

Interrupted runs are tested with real subprocesses sent SIGINT / SIGTERM mid-video. Small models throughout
(checkpoints of ours with 64x48 crops and one transformer layer), so the file runs in well under 90 s on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from posetokens.cli import main as cli
from posetokens.registry import create_model

from conftest import DATA, PARITY, REPO, interrupt_when, partial_lines, video_frames

NAME_2D = "tokenpose_s_coco_256x192"
TINY_2D = {"image_size": [64, 48], "dim": 32, "depth": 1, "heads": 4}
NAME_3D = "hot_mixste_h36m_243"
TINY_3D = {"num_frames": 27, "depth": 2, "dim": 32, "prune": {"keep": 9, "layer": 1}}
VIDEO = DATA / "video" / "sample_video.mp4"
CUDA_BUILD = torch.backends.cuda.is_built() and torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------- assets
@dataclass
class Assets:
    """Inputs shared by every case (never written by a case: the table checks their hashes where it matters)."""

    root: Path
    w2d: Path  # a checkpoint of ours: tiny TokenPose-S (names its model, overrides, protocol, metainfo)
    w3d: Path  # a checkpoint of ours: tiny HoT-MixSTE
    jpgs: list[Path]  # two small COCO-named jpgs
    clip: Path  # a 6-frame 96x64 mp4
    infer_json: Path  # what `infer` wrote for one image (records carry model and keypoint_layout)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    from posetokens.checkpoint import atomic_save, describe
    from posetokens.data.metainfo import get_metainfo
    from posetokens.protocols import get_protocol
    from posetokens.registry import create_model, default_protocol

    root = tmp_path_factory.mktemp("assets")
    torch.manual_seed(0)
    w2d = atomic_save({**describe(NAME_2D, TINY_2D, get_protocol(default_protocol(NAME_2D)), get_metainfo("coco")),
                       "state_dict": create_model(NAME_2D, **TINY_2D).state_dict()}, root / "tiny2d.pth")
    w3d = atomic_save({**describe(NAME_3D, TINY_3D, get_protocol(default_protocol(NAME_3D))),
                       "state_dict": create_model(NAME_3D, **TINY_3D).state_dict()}, root / "tiny3d.pth")
    jpgs = []
    for i, src in enumerate(sorted((DATA / "coco").glob("*.jpg"))[:2], start=1):
        img = cv2.resize(cv2.imread(str(src)), (160, 112), interpolation=cv2.INTER_AREA)
        jpgs.append(root / "images" / f"{i:012d}.jpg")
        jpgs[-1].parent.mkdir(exist_ok=True)
        cv2.imwrite(str(jpgs[-1]), img)
    clip = root / "clip.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    for t in range(6):
        w.write(np.full((64, 96, 3), 40 * t, np.uint8))
    w.release()
    assert cli(["infer", str(jpgs[0]), "--weights", str(w2d), "--out", str(root / "infer"), "--no-draw"]) == 0
    return Assets(root, w2d, w3d, jpgs, clip, root / "infer" / f"{jpgs[0].stem}.json")


# ------------------------------------------------------------------------------------------------ cases
@dataclass
class Run:
    """What one case runs and expects (paths are made under the case's own folder)."""

    argv: list[str] | None = None  # a command line (without "posetokens"), or ``call``
    rc: int | type[BaseException] = 0  # exit code, or the exception the call must raise
    message: str = ""  # regex searched in stderr + stdout (CLI) / in the exception text and stderr (API)
    call: Callable[[], Any] | None = None  # an API call
    unchanged: list[Path] = field(default_factory=list)  # files (or folders) whose bytes must not change
    exist: list[Path] = field(default_factory=list)
    absent: list[Path] = field(default_factory=list)
    not_in_output: str | None = None  # a regex that must NOT appear (e.g. work done before a refusal)
    check: Callable[[], None] | None = None  # extra assertions after the run


def _image(path: Path, src: Path, ext: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.imread(str(src))
    if ext is None:
        shutil.copy(src, path)
    else:
        cv2.imwrite(str(path), img)
    return path


def _json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def case_infer_tokens_folder_is_a_file(a: Assets, d: Path) -> Run:
    """Found at the first frame's tokens picture ('File exists'), after that frame's json and video were written."""
    (d / "out").mkdir()
    (d / "out" / "clip_tokens").write_text("x")
    return Run(["infer", str(a.clip), "--model", "ppt_s_coco_256x192", "--show-tokens", "--out", str(d / "out")], 2,
               r"^posetokens infer: error: the tokens folder \S+clip_tokens exists and is a file; give --out another "
               r"folder$", absent=[d / "out" / "clip.json", d / "out" / "clip.mp4"], not_in_output="random weights")


def case_infer_result_json_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "out" / "clip.json").mkdir(parents=True)
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out")], 2,
               r"^posetokens infer: error: the result json \S+clip\.json exists and is a folder; give --out another "
               r"folder$", absent=[d / "out" / "clip.mp4"])


def case_infer_folder_onto_itself(a: Assets, d: Path) -> Run:
    _image(d / "in" / "000000000001.png", a.jpgs[0], ".png")
    _image(d / "in" / "000000000002.jpg", a.jpgs[1])
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(d / "in") + "/"], 2,
               r"the output folder .*in/? is the input folder .*in: its overlays would overwrite input pictures",
               unchanged=[d / "in"], absent=[d / "in" / "000000000001.json", d / "in" / "000000000002.json"])


def case_infer_folder_onto_itself_random_weights(a: Assets, d: Path) -> Run:
    _image(d / "in" / "000000000001.png", a.jpgs[0], ".png")
    return Run(["infer", str(d / "in"), "--model", NAME_2D, "--out", str(d / "in")], 2,
               r"the output folder .*in is the input folder .*in: its overlays would overwrite input pictures",
               unchanged=[d / "in"], not_in_output="random weights")  # refused before the model is built


def case_infer_image_overlay_onto_itself_random_weights(a: Assets, d: Path) -> Run:
    img = _image(d / "in" / "000000000001.png", a.jpgs[0], ".png")
    return Run(["infer", str(img), "--model", NAME_2D, "--out", str(d / "in")], 2,
               r"overlay picture .*000000000001\.png would overwrite the input image .*in/000000000001\.png",
               unchanged=[d / "in"], not_in_output="random weights")  # refused before the model is built


def case_infer_image_into_its_own_folder(a: Assets, d: Path) -> Run:
    """One image into the folder that holds it, beside the user's own a.png and a.json: both were overwritten."""
    img = _image(d / "in" / "a.jpg", a.jpgs[0])
    _image(d / "in" / "a.png", a.jpgs[0], ".png")
    (d / "in" / "a.json").write_text('{"mine": 1}')
    return Run(["infer", str(img), "--weights", str(a.w2d), "--out", str(d / "in")], 2,
               r"^posetokens infer: error: the output folder \S+/in holds the input a\.jpg: its outputs \(a\.json, "
               r"a\.png\) would overwrite files of those names beside it and be read as inputs by a run on the folder; "
               r"choose another --out$", unchanged=[d / "in"])


def case_lift_video_into_its_own_folder_random_weights(a: Assets, d: Path) -> Run:
    clip = d / "in" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    shutil.copy(a.clip, clip)
    (d / "in" / "clip.json").write_text('{"mine": 1}')
    return Run(["lift", str(clip), "--weights", str(a.w3d), "--out", str(d / "in")], 2,
               r"^posetokens lift: error: the output folder \S+/in holds the input clip\.mp4: its outputs \(clip\.json, "
               r"clip_3d\.json, clip_3d\.mp4\) would overwrite", unchanged=[d / "in"],
               not_in_output="random weights")  # refused before any model is built


def case_infer_looped_video_into_its_own_folder(a: Assets, d: Path) -> Run:
    """A video file read as a stream (--loop) into its own folder, without the overlay (which clashes with the
    video itself): its json would replace the user's clip.json."""
    clip = d / "in" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    shutil.copy(a.clip, clip)
    (d / "in" / "clip.json").write_text('{"mine": 1}')
    return Run(["infer", str(clip), "--weights", str(a.w2d), "--loop", "2", "--no-draw", "--out", str(d / "in")], 2,
               r"^posetokens infer: error: the output folder \S+/in holds the input clip\.mp4: its outputs "
               r"\(clip\.json\) would overwrite", unchanged=[d / "in"])


def case_lift_with_a_whole_body_2d_model_random_weights(a: Assets, d: Path) -> Run:
    """A 2D model of another keypoint set was built (its random-weights note said) before it was refused."""
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--pose2d", "gtpt_t_wholebody_256x192",
                "--out", str(d / "o")], 2,
               r"^posetokens lift: error: --pose2d gtpt_t_wholebody_256x192: the 2D model must predict COCO-17 "
               r"keypoints, it predicts 133$", absent=[d / "o"], not_in_output="random weights")


def case_infer_det_every_on_images_random_weights(a: Assets, d: Path) -> Run:
    return Run(["infer", str(a.jpgs[0]), "--model", NAME_2D, "--det-every", "3", "--out", str(d / "o")], 2,
               r"--det-every applies to videos and streams; .*000000000001\.jpg is images",
               absent=[d / "o"], not_in_output="random weights")  # refused before the model is built


def case_infer_filter_on_images_random_weights(a: Assets, d: Path) -> Run:
    return Run(["infer", str(a.jpgs[0]), "--model", NAME_2D, "--filter", "one_euro", "--out", str(d / "o")], 2,
               r"a temporal filter applies to videos and streams; .*000000000001\.jpg is images \(use --filter off\)",
               absent=[d / "o"], not_in_output="random weights")


def case_infer_savgol_on_a_video_random_weights(a: Assets, d: Path) -> Run:
    return Run(["infer", str(a.clip), "--model", NAME_2D, "--filter", "savgol", "--out", str(d / "o")], 2,
               r"the Savitzky-Golay filter needs \d+ future frames; online \(causal\) mode takes one_euro or off",
               absent=[d / "o"], not_in_output="random weights")


def case_infer_detections_for_other_frames_random_weights(a: Assets, d: Path) -> Run:
    dets = _json(d / "dets.json", [{"image_id": 999, "category_id": 1, "bbox": [10, 10, 50, 40], "score": 0.9}])
    return Run(["infer", str(a.clip), "--model", NAME_2D, "--out", str(d / "out"), "--boxes", str(dets)], 2,
               r"no detection matches the input .*clip\.mp4: the file's 'image_id' values are \[999\]",
               unchanged=[dets], absent=[d / "out"], not_in_output="random weights")


def case_infer_image_overlay_onto_itself(a: Assets, d: Path) -> Run:
    img = _image(d / "in" / "000000000001.png", a.jpgs[0], ".png")
    return Run(["infer", str(img), "--weights", str(a.w2d), "--out", str(d / "in")], 2,
               r"overlay picture .*000000000001\.png would overwrite the input image .*in/000000000001\.png; give --out "
               r"another folder",
               unchanged=[d / "in"], absent=[d / "in" / "000000000001.json"])


def case_infer_weights_under_another_name(a: Assets, d: Path) -> Run:
    """Our checkpoint of a TokenPose-S named as PPT-S (what a quickstart PPT, saved as TokenPose-S plus a prune
    override, meets): one line naming what it holds and its overrides, and saying to leave the name out."""
    return Run(["infer", str(a.jpgs[0]), "--model", "ppt_s_coco_256x192", "--weights", str(a.w2d),
                "--out", str(d / "o")], 2,
               r"the checkpoint holds 'tokenpose_s_coco_256x192' with overrides \{\"image_size\": \[64, 48\].* but "
               r"'ppt_s_coco_256x192' was asked for; leave out the model name", absent=[d / "o"])


def case_infer_image_with_a_temporal_filter(a: Assets, d: Path) -> Run:
    """A temporal filter named on a single image is refused in one line, not silently ignored."""
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--filter", "savgol", "--out", str(d / "o")], 2,
               r"a temporal filter applies to videos and streams; .*000000000001\.jpg is images \(use --filter off\)",
               absent=[d / "o"])


def case_infer_video_onto_itself(a: Assets, d: Path) -> Run:
    video = d / "out" / "clip.mp4"
    video.parent.mkdir()
    shutil.copy(a.clip, video)
    return Run(["infer", str(video), "--weights", str(a.w2d), "--out", str(d / "out")], 2,
               r"overlay video .*out/clip\.mp4 would overwrite the input video .*out/clip\.mp4; give --out another folder",
               unchanged=[video], absent=[d / "out" / "clip.json"])


def case_infer_coco_results_over_boxes(a: Assets, d: Path) -> Run:
    dets = _json(d / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9}])
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets),
                "--coco-results", str(dets)], 2,
               r"COCO results file .*dets\.json would overwrite the detections file .*dets\.json; choose another "
               r"--coco-results path", unchanged=[dets])


def case_infer_coco_results_over_a_users_file(a: Assets, d: Path) -> Run:
    """--coco-results at a user's ground truth (a COCO dict): it was replaced by the results without a word (a
    reviewer's copy of the sample annotations). Only a keypoint results file, an earlier run's, is replaced."""
    gt = _json(d / "gt.json", {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]})
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--coco-results", str(gt)],
               2, r"--coco-results \S+gt\.json exists and is not a COCO keypoint results file \(a JSON list, what "
               r"--coco-results writes\); choose another path$", unchanged=[gt], absent=[d / "out"])


def case_infer_coco_results_over_a_detections_file(a: Assets, d: Path) -> Run:
    """A detections file not used by this run is a JSON list too, but of boxes: kept."""
    dets = _json(d / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9}])
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--coco-results",
                str(dets)], 2, r"--coco-results \S+dets\.json exists and is not a COCO keypoint results file",
               unchanged=[dets], absent=[d / "out"])


def case_infer_mmpose_preds_over_a_checkpoint(a: Assets, d: Path) -> Run:
    """--mmpose-preds at another checkpoint (a reviewer's 26 MB file became 5 KB of predictions)."""
    other = d / "other.pth"
    shutil.copy(a.w2d, other)
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--mmpose-preds",
                str(other)], 2, r"--mmpose-preds \S+other\.pth exists and is not an MMPose prediction file \(what "
               r"--mmpose-preds writes\); choose another path$", unchanged=[other], absent=[d / "out"])


def case_detections_past_the_end_of_the_video(a: Assets, d: Path) -> Run:
    """Detections naming frames 50 and 99 of a 6-frame video were dropped without a word (only the frames without
    an entry were said)."""
    box = {"category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}
    dets = _json(d / "dets.json", [dict(box, image_id=i) for i in (0, 1, 2, 3, 4, 5, 50, 99)])
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets),
                "--no-draw"], 0, r"warning: \S+dets\.json: 2 image_id value\(s\) name frames past the last of "
                r"\S+clip\.mp4 \(6 frames, indices 0\.\.5; e\.g\. \[50, 99\]\): their detections are not used\n")


def case_detections_numbered_from_1(a: Assets, d: Path) -> Run:
    """A detections file that counts the frames from 1 (another tool's) puts every box one frame late: said."""
    box = {"category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.9}
    dets = _json(d / "dets.json", [dict(box, image_id=i) for i in range(1, 7)])
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets),
                "--no-draw"], 0, r"1 image_id value\(s\) name frames past the last of \S+ \(6 frames, indices "
                r"0\.\.5; e\.g\. \[6\]\): their detections are not used: numbered from 1 \(its ids run 1\.\.6\)\? "
                r"posetokens counts frames from 0, so every box would be one frame late")


def case_folder_with_a_video_and_a_text_file(a: Assets, d: Path) -> Run:
    """A folder holding an image, a video and a text file: the image was read and the others passed over without
    a word (a reviewer expected the video to be read). Said in one note line; hidden files are not counted."""
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    shutil.copy(a.clip, d / "in" / "clip.mp4")
    (d / "in" / "notes.txt").write_text("x")
    (d / "in" / ".DS_Store").write_text("x")  # hidden: not counted; a hidden image is read (as it always was)
    _image(d / "in" / ".000000000003.jpg", a.jpgs[0])
    (d / "in" / "sub").mkdir()
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(d / "out"), "--no-draw"], 0,
               r"note: \S+in: 2 image\(s\) read; 3 other entries left out \(clip\.mp4, notes\.txt, sub/\); a video "
               r"\(clip\.mp4\) is an input of its own; folders in it are not searched\n",
               exist=[d / "out" / "000000000001.json", d / "out" / ".000000000003.json"])


def case_a_folder_of_videos_only(a: Assets, d: Path) -> Run:
    (d / "in").mkdir()
    shutil.copy(a.clip, d / "in" / "clip.ts")
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(d / "out")], 2,
               r"in: folder holds no images \(.*\); a video \(clip\.ts\) is an input of its own$", absent=[d / "out"])


def case_an_mpeg_ts_video(a: Assets, d: Path) -> Run:
    """``.ts`` (and ``.3gp``, ``.flv``, ``.mts``), which OpenCV reads, were refused as an unknown input type."""
    shutil.copy(a.clip, d / "clip.ts")
    return Run(["infer", str(d / "clip.ts"), "--weights", str(a.w2d), "--out", str(d / "out"), "--no-draw",
                "--no-progress"], 0, r"6 frame\(s\), 6 person instance\(s\)", exist=[d / "out" / "clip.json"])


def case_lift_of_a_script(a: Assets, d: Path) -> Run:
    """lift of a file of another type listed images and folders among what it takes (it refuses both)."""
    script = d / "mk.py"
    script.write_text("print(1)\n")
    return Run(["lift", str(script), "--weights", str(a.w3d), "--out", str(d / "out")], 2,
               r"mk\.py: unknown input type '\.py'; lift takes a video \(\.mp4, .*\), a 2D-keypoint json written by "
               r"infer, a webcam index or a stream URL$", absent=[d / "out"], not_in_output="random weights|image")


def case_no_draw_beside_an_earlier_overlay(a: Assets, d: Path) -> Run:
    """A --no-draw run into an --out holding an earlier run's overlay of the same video left a 6-frame json beside
    an overlay of other frames without a word: said, the overlay left as it is."""
    old = d / "out" / "clip.mp4"
    old.parent.mkdir()
    shutil.copy(a.clip, old)
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out"), "--no-draw", "--max-frames",
                "2"], 0, r"note: \S+out/clip\.mp4: an earlier run's overlay, left as it is \(this run draws none\)\n",
               unchanged=[old], exist=[d / "out" / "clip.json"])


def case_infer_box_smaller_than_a_pixel(a: Assets, d: Path) -> Run:
    """A detections file's sliver (0.5 x 0.8 px, as a box clipped at the border becomes) on the first of two
    images used to stop the run there: it is left out with a warning, and both images are done."""
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    _image(d / "in" / "000000000002.jpg", a.jpgs[1])
    dets = _json(d / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9},
                                   {"image_id": 1, "category_id": 1, "bbox": [5, 5, 0.5, 0.8], "score": 0.9},
                                   {"image_id": 2, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9}])

    def check() -> None:
        for n in (1, 2):
            assert len(json.loads((d / "out" / f"00000000000{n}.json").read_text())["instances"]) == 1

    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--boxes", str(dets), "--out", str(d / "out")], 0,
               r"posetokens: warning: 000000000001\.jpg: a box smaller than a pixel was left out \(box 1\)",
               check=check)


def case_infer_box_outside_the_image(a: Assets, d: Path) -> Run:
    """A box wholly outside its 160x112 image (one far off made the crop's warp singular: 'Singular matrix',
    naming nothing) is left out with a warning; the other box of the image is done."""
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    dets = _json(d / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9},
                                   {"image_id": 1, "category_id": 1, "bbox": [1e12, 1e12, 50, 100], "score": 0.9},
                                   {"image_id": 1, "category_id": 1, "bbox": [160, 0, 50, 80], "score": 0.9}])

    def check() -> None:
        assert len(json.loads((d / "out" / "000000000001.json").read_text())["instances"]) == 1

    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--boxes", str(dets), "--out", str(d / "out")], 0,
               r"(?s)posetokens: warning: 000000000001\.jpg: a box outside the 160x112 image was left out "
               r"\(\[1000000000000\.0, 1000000000000\.0, 1000000000050\.0, 1000000000100\.0\]\); any later ones are "
               r"counted at the end.*posetokens: warning: 2 boxes outside their image were left out in all",
               check=check)


def case_lift_of_nobody_beside_an_earlier_3d(a: Assets, d: Path) -> Run:
    """A lift that finds nobody replaces the 2D json with this run's and fails; the earlier run's 3D json beside it
    was left without a word (its 3D no longer matches the 2D json)."""
    old = d / "out" / "clip_3d.json"
    old.parent.mkdir()
    old.write_text("{}")
    shutil.copy(a.clip, d / "out" / "clip_3d.mp4")  # named though this run draws none
    dets = _json(d / "dets.json", [])
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--pose2d-weights", str(a.w2d), "--boxes", str(dets),
                "--out", str(d / "out"), "--no-draw"], 2,
               r"clip\.mp4: no person found in any frame: nothing to lift \(the 2D results are in \S+out/clip\.json; "
               r"\S+out/clip_3d\.json and \S+out/clip_3d\.mp4: left from an earlier run\)$", unchanged=[old])


def case_estimator_stopped_early_still_counts(a: Assets, d: Path) -> Run:
    """``itertools.islice(est(video), 2)``: the first warning promised "any later ones are counted at the end", and
    the end never came (the generator was dropped); then it counted the frames read ahead into a batch too (12 for
    the 2 frames given). Two boxes off each frame, 2 frames given: 4, said when the generator closes."""
    import itertools

    def off(frame: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.array([[1e4, 0, 1e4 + 50, 80], [2e4, 0, 2e4 + 50, 80]]), np.array([0.9, 0.9])

    return Run(call=lambda: list(itertools.islice(_est(a)(a.clip, boxes=off), 2)), rc=0,
               message=r"(?s)a box outside the 96x64 image was left out \(\[10000\.0, 0\.0, 10050\.0, 80\.0\]\); any "
                       r"later ones are counted at the end.*warning: 4 boxes outside their image were left out in "
                       r"all\n",
               not_in_output=r"(12|6|8|10) boxes outside")


def case_infer_coco_results_image_without_id(a: Assets, d: Path) -> Run:
    """Once found at that image, after the earlier ones were written: now refused before anything runs."""
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    _image(d / "in" / "person.jpg", a.jpgs[1])
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--coco-results", str(d / "coco.json")], 2,
               r"person\.jpg: COCO results need an image id in the file name", unchanged=[d / "in"],
               absent=[d / "out", d / "coco.json"], not_in_output="random weights")


def case_infer_coco_results_two_images_one_id(a: Assets, d: Path) -> Run:
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    _image(d / "in" / "img_1.png", a.jpgs[1], ".png")
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--coco-results", str(d / "coco.json")], 2,
               r"img_1\.png and .*000000000001\.jpg both name image id 1: their COCO results would merge",
               unchanged=[d / "in"], absent=[d / "out", d / "coco.json"])


def case_infer_empty_detections_file(a: Assets, d: Path) -> Run:
    """A detector that found nobody writes []: no person in any frame, said (it was refused)."""
    dets = _json(d / "dets.json", [])
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets),
                "--no-draw"], 0, r"warning: .*dets\.json holds no detection: no person in any input(.|\n)*"
               r"6 frame\(s\), 0 person instance\(s\)", unchanged=[dets], exist=[d / "out" / "clip.json"],
               not_in_output="covers only some inputs")  # one warning, not a second that contradicts it


def case_infer_detections_for_other_frames(a: Assets, d: Path) -> Run:
    dets = _json(d / "dets.json", [{"image_id": 999, "category_id": 1, "bbox": [10, 10, 50, 40], "score": 0.9}])
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets)], 2,
               r"no detection matches the input .*clip\.mp4: the file's 'image_id' values are \[999\], the inputs' "
               r"frame indices 0\.\.5$", unchanged=[dets])


def case_infer_same_stem_images(a: Assets, d: Path) -> Run:
    _image(d / "in" / "000000000001.jpg", a.jpgs[0])
    _image(d / "in" / "000000000001.png", a.jpgs[0], ".png")
    out = d / "out"
    return Run(["infer", str(d / "in"), "--weights", str(a.w2d), "--out", str(out)], 0, r"2 frame\(s\)",
               unchanged=[d / "in"],
               exist=[out / f"000000000001_{e}.{k}" for e in ("jpg", "png") for k in ("json", "png")],
               absent=[out / "000000000001.json"])


def case_infer_out_is_a_file(a: Assets, d: Path) -> Run:
    f = d / "results.txt"
    f.write_text("my notes")
    return Run(["infer", str(a.jpgs[0]), "--model", NAME_2D, "--out", str(f)], 2,
               r"output folder .*results\.txt is a file; expected a folder", unchanged=[f],
               not_in_output="random weights")  # refused before the model is built


def _folder_with_bad_images(a: Assets, d: Path) -> Path:
    folder = d / "in"
    _image(folder / "000000000001.jpg", a.jpgs[0])
    data = a.jpgs[1].read_bytes()
    (folder / "000000000002.jpg").write_bytes(data[: len(data) // 2])  # OpenCV decodes it, its lower half grey
    (folder / "000000000003.jpg").write_bytes(b"not an image at all")
    _image(folder / "000000000004.jpg", a.jpgs[1])
    return folder


def case_infer_skips_unreadable_images(a: Assets, d: Path) -> Run:
    folder, out = _folder_with_bad_images(a, d), d / "out"
    return Run(["infer", str(folder), "--weights", str(a.w2d), "--out", str(out)], 0,
               r"(?s)000000000002\.jpg: truncated JPEG.*2 frame\(s\).*skipped 2 unreadable image\(s\): "
               r".*000000000002\.jpg, .*000000000003\.jpg",
               unchanged=[folder], exist=[out / "000000000001.json", out / "000000000004.json"],
               absent=[out / "000000000002.json", out / "000000000003.json"])


def case_infer_strict_stops_at_first(a: Assets, d: Path) -> Run:
    folder, out = _folder_with_bad_images(a, d), d / "out"
    return Run(["infer", str(folder), "--weights", str(a.w2d), "--out", str(out), "--strict", "--batch-size", "16"],
               2, r"000000000002\.jpg: truncated JPEG .*--strict stops at the first.*the results of the 1 image",
               unchanged=[folder], exist=[out / "000000000001.json", out / "000000000001.png"],
               absent=[out / "000000000004.json"])


def case_infer_weights_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "ckpts").mkdir()
    return Run(["infer", str(a.jpgs[0]), "--weights", str(d / "ckpts"), "--out", str(d / "out")], 2,
               r"--weights .*ckpts is a folder; expected a file", not_in_output="does not exist")


def case_infer_device_cuda_on_cpu(a: Assets, d: Path) -> Run:
    if CUDA_BUILD:
        pytest.skip("a CUDA device is present")
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--device", "cuda"], 2,
               r"--device cuda: (this PyTorch build has no CUDA support|no CUDA GPU is visible)")


def case_infer_random_weights_note(a: Assets, d: Path) -> Run:
    return Run(["infer", str(a.jpgs[0]), "--model", NAME_2D, "--out", str(d / "out"), "--no-draw"], 0,
               rf"the 2D model {NAME_2D} has no weights given: it runs with random weights")


def case_infer_a_picture_as_boxes(a: Assets, d: Path) -> Run:
    """A JPEG given for --boxes: one line naming the file and the flag it was given for."""
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--boxes", str(a.jpgs[1]), "--out", str(d / "out")],
               2, rf"^posetokens infer: error: \S+{a.jpgs[1].name}: not a UTF-8 text/JSON file; expected the "
               r"detections \(--boxes / --detector\) \.json file \(")


def case_infer_partial_detections(a: Assets, d: Path) -> Run:
    dets = _json(d / "dets.json", [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9}])
    out = d / "out"

    def check() -> None:
        assert len(json.loads((out / "000000000002.json").read_text())["instances"]) == 0
        assert len(json.loads((out / "000000000001.json").read_text())["instances"]) == 1

    return Run(["infer", str(a.jpgs[0].parent), "--weights", str(a.w2d), "--out", str(out), "--boxes", str(dets)], 0,
               r"dets\.json covers only some inputs: 1 of 2 images have no entry in it and got no person "
               r"\(000000000002\.jpg\)", unchanged=[dets], check=check)


def _bad_dets(item: dict, pattern: str) -> Callable[[Assets, Path], Run]:
    def case(a: Assets, d: Path) -> Run:
        det = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 80], "score": 0.9, **item}
        dets = d / "dets.json"
        dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}, det]))
        return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets)],
                   2, r"dets\.json: item 1 " + pattern, unchanged=[dets], absent=[d / "out" / "000000000001.json"])

    return case


def case_detections_not_a_list(a: Assets, d: Path) -> Run:
    dets = _json(d / "dets.json", {"annotations": []})
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--boxes", str(dets)], 2,
               r"dets\.json: a detections file must be a JSON list of \{image_id, category_id, bbox, score\}, "
               r"got a dict", not_in_output=r"type\(data\)")


def case_infer_coco_results_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "res").mkdir()
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--coco-results", str(d / "res")], 2, r"--coco-results .*res is a folder; expected a json file")


def case_infer_coco_results_is_the_out_folder(a: Assets, d: Path) -> Run:
    """--out makes the folder only when the run starts: the results were written last, over that folder, and
    failed naming a temporary file that stayed behind."""
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--coco-results", str(d / "out")], 2,
               r"--coco-results \S+out is the --out folder; expected a json file path \(e\.g\. \S+coco_results\.json\)$",
               absent=[d / "out"])


def case_infer_checkpoint_with_damaged_overrides(a: Assets, d: Path) -> Run:
    """A checkpoint of ours whose description was damaged (overrides that are not a mapping): an AttributeError."""
    obj = torch.load(a.w2d, map_location="cpu", weights_only=False)
    obj["model_overrides"] = 7
    bad = d / "bad.pth"
    torch.save(obj, bad)
    return Run(["infer", str(a.jpgs[0]), "--weights", str(bad), "--out", str(d / "out")], 2,
               r"\S+bad\.pth: the checkpoint's 'model_overrides' is 7; expected a mapping of config fields \(its "
               r"description is damaged\)$", unchanged=[bad])


def case_infer_mmpose_preds_named_as_a_folder(a: Assets, d: Path) -> Run:
    """A path ending in '/' that does not exist yet once became a file of that name, without '.json'."""
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--mmpose-preds", str(d / "preds") + "/"], 2, r"--mmpose-preds .*preds/ is a folder; expected a json file",
               absent=[d / "preds", d / "out"])


def case_tokens_figure_of_a_frame_without_people(a: Assets, d: Path) -> Run:
    from posetokens.inference.api import FrameResult, PoseEstimator

    est = PoseEstimator(NAME_2D.replace("tokenpose", "ppt"), **TINY_2D, prune={"layers": [0], "keep_ratio": 0.7})
    empty = FrameResult(0, "x.jpg", 10, 10, np.zeros((0, 17, 2)), np.zeros((0, 17)), np.zeros((0, 4)), np.zeros(0),
                        crops=np.zeros((0, 64, 48, 3), np.uint8), kept_tokens=[])
    return Run(call=lambda: est.tokens_figure(empty), rc=ValueError,
               message=r"tokens_figure: x\.jpg holds no person, so no kept tokens to show")


def case_infer_show_tokens_of_tokenpose(a: Assets, d: Path) -> Run:
    """TokenPose keeps all its tokens (it drew the crop alone, as if it pruned); PPT and GTPT are what it shows."""
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"), "--show-tokens"], 2,
               rf"{NAME_2D} has no token pruning to show \(--show-tokens needs a PPT or GTPT model\)",
               absent=[d / "out"])


def case_infer_unwritable_out(a: Assets, d: Path) -> Run:
    target = Path("/sys/kernel/posetokens_out")  # read-only even for root
    if not Path("/sys/kernel").is_dir() or _can_create(Path("/sys/kernel")):
        pytest.skip("no unwritable folder to test with")
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(target)], 2,
               r"(Permission denied|Operation not permitted|not writable).*posetokens_out|posetokens_out.*(Permission|"
               r"not permitted|not writable)")


def case_infer_unwritable_coco_results_folder(a: Assets, d: Path) -> Run:
    target = Path("/sys/kernel/posetokens_res")  # read-only even for root
    if not Path("/sys/kernel").is_dir() or _can_create(Path("/sys/kernel")):
        pytest.skip("no unwritable folder to test with")
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "out"),
                "--coco-results", str(target / "c.json")], 2, r"folder of --coco-results .*posetokens_res",
               absent=[d / "out"])  # refused before --out was made (it was left empty)


def _can_create(folder: Path) -> bool:
    try:
        (folder / ".probe").mkdir()
    except OSError:
        return False
    (folder / ".probe").rmdir()
    return True


# -- PoseEstimator.predict
@pytest.fixture(scope="module")
def estimator(assets: Assets):
    from posetokens.inference.api import PoseEstimator

    return PoseEstimator(weights=assets.w2d)


_IMG = np.full((96, 128, 3), 127, np.uint8)
_BOX = np.array([[10.0, 10.0, 60.0, 90.0]])


def _predict(image: Any = _IMG, bboxes: Any = _BOX, scores: Any = None) -> Callable[[Assets, Path], Run]:
    def case(a: Assets, d: Path) -> Run:
        from posetokens.inference.api import PoseEstimator

        est = PoseEstimator(weights=a.w2d)
        return Run(call=lambda: est.predict(image, bboxes, scores))

    return case


def _predict_case(image: Any, bboxes: Any, scores: Any, message: str) -> Callable[[Assets, Path], Run]:
    def case(a: Assets, d: Path) -> Run:
        run = _predict(image, bboxes, scores)(a, d)
        run.rc, run.message = ValueError, message
        return run

    return case


def case_estimator_box_callable_list_pair(a: Assets, d: Path) -> Run:
    """A box callable may return its (boxes, scores) pair as a list too: one person from one box."""
    got: list[Any] = []

    def check() -> None:
        assert len(got) == 1 and len(got[0].keypoints) == 1 and got[0].bboxes.tolist() == [[1.0, 2.0, 30.0, 40.0]]

    return Run(call=lambda: got.extend(_est(a)(str(a.jpgs[0]), boxes=lambda f: [
        np.array([[1.0, 2.0, 30.0, 40.0]]), np.array([0.9])])), rc=0, check=check)


def _fixture_with_config(d: Path, config: str) -> Path:
    """A parity fixture folder whose files are all present, with ``config`` as its config.json."""
    folder = d / "fixture"
    folder.mkdir(exist_ok=True)
    for name in ("checkpoint.pth", "inputs.pt", "outputs.pt"):
        (folder / name).write_bytes(b"")
    (folder / "config.json").write_text(config)
    return folder


def _api_case(call: Callable[[Assets, Path], Any], message: str) -> Callable[[Assets, Path], Run]:
    """A Python API call that must raise a one-line ``ValueError`` matching ``message``."""
    def case(a: Assets, d: Path) -> Run:
        return Run(call=lambda: call(a, d), rc=ValueError, message=message)

    return case


def _est(a: Assets, **kw: Any) -> Any:
    from posetokens.inference.api import PoseEstimator

    return PoseEstimator(weights=a.w2d, **kw)


def _lift(a: Assets, d: Path, **kw: Any) -> Any:
    from posetokens.inference.lifting import lift

    return lift(a.clip, None, d / "o", weights=a.w3d, pose2d_weights=a.w2d, **kw)


def _est_of(model: Any) -> Any:
    from posetokens.inference.api import PoseEstimator

    return PoseEstimator(model)


def _result(a: Assets) -> Any:
    """One person's FrameResult with its frame (for to_dict and draw_frame)."""
    from posetokens.inference.api import FrameResult

    h, w = _IMG.shape[:2]
    return FrameResult(0, "frame.jpg", w, h, np.full((1, 17, 2), 20.0), np.full((1, 17), 0.9),
                       np.array([[10.0, 10, 60, 90]]), np.ones(1), image=_IMG.copy())


def draw_frame(*args: Any, **kwargs: Any) -> Any:
    from posetokens.inference.api import draw_frame as draw

    return draw(*args, **kwargs)


def _crops(a: Assets, crops: Any = None, warps: Any = None) -> Any:
    est = _est(a)
    c, w = est.crops(np.ascontiguousarray(_IMG[..., ::-1]), np.concatenate([_BOX, _BOX]))
    return est.predict_crops(c if crops is None else crops(c), w if warps is None else warps(w))


def _draw_case(image: np.ndarray, message: str) -> Callable[[Assets, Path], Run]:
    def case(a: Assets, d: Path) -> Run:
        from posetokens.inference.visualize import draw_skeleton

        return Run(call=lambda: draw_skeleton(image, np.full((17, 2), 20.0), None, "coco"), rc=ValueError,
                   message=message)

    return case


# -- lift
def case_lift_unwritable_out_before_computing(a: Assets, d: Path) -> Run:
    if not Path("/sys/kernel").is_dir() or _can_create(Path("/sys/kernel")):
        pytest.skip("no unwritable folder to test with")
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--out", "/sys/kernel/posetokens_lift"], 2,
               r"posetokens_lift", not_in_output=r"the 2D model|frame")  # refused before the 2D model was built


def case_lift_layout_mismatch(a: Assets, d: Path) -> Run:
    return Run(["lift", str(a.infer_json), "--weights", str(a.w3d), "--out", str(d / "out"), "--layout", "h36m",
                "--image-size", "160x112"], 2,
               rf"the 2D keypoints are in the 'coco' layout \(written by {NAME_2D}\), but --layout h36m was given",
               unchanged=[a.infer_json], absent=[d / "out" / f"{a.infer_json.stem}_3d.json"])


def case_lift_layout_from_json(a: Assets, d: Path) -> Run:
    out = d / "out"

    def check() -> None:
        res = json.loads((out / f"{a.infer_json.stem}_3d.json").read_text())
        assert res["input_layout"] == "coco" and len(res["frames"]) == 1

    return Run(["lift", str(a.infer_json), "--weights", str(a.w3d), "--out", str(out), "--no-draw"], 0,
               r"1 frame\(s\), 1 with a person", unchanged=[a.infer_json], not_in_output="random weights", check=check)


def case_lift_json_with_a_nan_keypoint(a: Assets, d: Path) -> Run:
    """Non-finite 2D once surfaced as the temporal filter's or lift_sequence's own words, naming no file and an
    H36M joint instead of the JSON's keypoint."""
    records = json.loads(a.infer_json.read_text())
    records = records if isinstance(records, list) else [records]
    records[0]["instances"][0]["keypoints"][2][0] = float("nan")
    src = d / "nan.json"
    src.write_text(json.dumps(records))
    return Run(["lift", str(src), "--weights", str(a.w3d), "--out", str(d / "out"), "--no-draw"], 2,
               r"nan\.json: record 0 instance 0: 'keypoints'\[2\] = \[nan, -?[0-9.]+\] is not finite", unchanged=[src],
               absent=[d / "out" / "nan_3d.json"])


def _lift_json_case(change: Callable[[dict, dict], None], message: str, rc: int = 2,
                    *flags: str) -> Callable[[Assets, Path], Run]:
    """A case: ``infer``'s json with ``change(record 0, its instance 0)`` made, lifted; refused in one line naming
    the file, the record (and instance) and the field before anything is built (or, ``rc`` 0, lifted)."""
    def case(a: Assets, d: Path) -> Run:
        records = json.loads(a.infer_json.read_text())
        records = records if isinstance(records, list) else [records]
        change(records[0], records[0]["instances"][0])
        src = d / "bad.json"
        src.write_text(json.dumps(records))
        out = d / "out"
        return Run(["lift", str(src), "--weights", str(a.w3d), "--out", str(out), "--no-draw", *flags], rc, message,
                   unchanged=[src], **({"absent": [out]} if rc else {"exist": [out / "bad_3d.json"]}))
    return case


def _lift_frames_case(frame_ids: list[int | None], message: str, rc: int = 2, *flags: str,
                      not_in_output: str | None = None) -> Callable[[Assets, Path], Run]:
    """A case: ``infer``'s one-frame json repeated as the frames ``frame_ids`` (in that order; None: no frame_id),
    lifted."""
    def case(a: Assets, d: Path) -> Run:
        records = json.loads(a.infer_json.read_text())
        record = {k: v for k, v in (records[0] if isinstance(records, list) else records).items() if k != "frame_id"}
        src = _json(d / "frames.json", [record if f is None else {**record, "frame_id": f} for f in frame_ids])
        out = d / "out"
        return Run(["lift", str(src), "--weights", str(a.w3d), "--out", str(out), "--no-draw", *flags], rc, message,
                   unchanged=[src], not_in_output=not_in_output,
                   **({"absent": [out]} if rc else {"exist": [out / "frames_3d.json"]}))
    return case


# fields of other tools' json: each raised TypeError from int()/float() after the lifting (or named no file)
LIFT_JSON_CASES = [
    # frames out of order or repeated were lifted in the list's order, as if consecutive
    pytest.param(_lift_frames_case([0, 1, 1, 2], r"^posetokens lift: error: \S+frames\.json: record 2: 'frame_id' = 1 "
                                   r"after record 1's 'frame_id' = 1; expected increasing frame ids, one record per "
                                   r"frame, in the order the frames were shown$"), id="lift-json-frame-id-repeated"),
    pytest.param(_lift_frames_case([0, 2, 1], r"record 2: 'frame_id' = 1 after record 1's 'frame_id' = 2; expected"),
                 id="lift-json-frame-ids-out-of-order"),
    pytest.param(_lift_frames_case([None, 0], r"record 1: 'frame_id' = 0 after record 0's no 'frame_id' \(its place, "
                                   r"0\); expected"), id="lift-json-frame-id-after-a-record-without"),
    pytest.param(_lift_frames_case([0, 1, 4, 5], r"posetokens: warning: \S+frames\.json: the frame ids skip 2 "
                                   r"frame\(s\) \(the first after frame 1\): the records are lifted as consecutive "
                                   r"frames", 0), id="lift-json-frame-ids-skip-said"),
    pytest.param(_lift_frames_case([0, 1, 2, 9], r"3 frame\(s\), 3 with a person", 0, "--max-frames", "3",
                                   not_in_output="frame ids skip"), id="lift-json-skip-past-max-frames-not-said"),
    pytest.param(_lift_frames_case([5, None], r"record 1: no 'frame_id' \(its place, 1\) after record 0's 'frame_id' "
                                   r"= 5; expected increasing frame ids"), id="lift-json-frame-id-missing-after-later"),
    pytest.param(_lift_json_case(lambda r, i: i.update(keypoints=[[str(v) for v in p] for p in i["keypoints"]]),
                                 r"record 0 instance 0: 'keypoints' = \[\['.*; expected numbers, \(17, 2\) \[x, y\] "
                                 r"pairs$"), id="lift-json-keypoints-as-text"),  # float64 read the digits
    pytest.param(_lift_json_case(lambda r, i: i.update(bbox_score="hi"), r"^posetokens lift: error: \S+bad\.json: "
                                 r"record 0 instance 0: 'bbox_score' = 'hi'; expected a finite number \(null or none: 1\)$"),
                 id="lift-json-bbox-score-string"),
    pytest.param(_lift_json_case(lambda r, i: i.update(bbox_score=None), r"1 frame\(s\), 1 with a person", 0),
                 id="lift-json-bbox-score-null-is-none"),
    pytest.param(_lift_json_case(lambda r, i: i.update(bbox=[1, 2]), r"record 0 instance 0: 'bbox' = \[1, 2\]; "
                                 r"expected \[x1, y1, x2, y2\] or MMPose's \[\[x1, y1, x2, y2\]\] \(null or none: the "
                                 r"keypoints' extent\)$"), id="lift-json-bbox-two-values"),
    pytest.param(_lift_json_case(lambda r, i: i.update(bbox=[i["bbox"]]), r"1 frame\(s\), 1 with a person", 0),
                 id="lift-json-mmpose-bbox"),  # MMPose's split_instances (and --mmpose-preds) nest the one box
    pytest.param(_lift_json_case(lambda r, i: i.update(keypoints={"x": 1}), r"record 0 instance 0: 'keypoints' = "
                                 r"\{'x': 1\}; expected numbers, \(17, 2\) \[x, y\] pairs$"), id="lift-json-keypoints-dict"),
    pytest.param(_lift_json_case(lambda r, i: r.update(frame_id="one"), r"\S+bad\.json: record 0: 'frame_id' = 'one'; "
                                 r"expected a whole number \(none: the record's place in the list\)$"),
                 id="lift-json-frame-id-string"),
    pytest.param(_lift_json_case(lambda r, i: r.update(width=0), r"\S+bad\.json: record 0: 'width' = 0; expected a "
                                 r"whole number of pixels >= 1$"), id="lift-json-width-0"),
    pytest.param(_lift_json_case(lambda r, i: r.update(height=None), r"record 0: 'height' = None; expected a whole "
                                 r"number of pixels >= 1$"), id="lift-json-height-null"),
    pytest.param(_lift_json_case(lambda r, i: None, r"^posetokens lift: error: --pose2d applies to a video or a "
                                 r"stream \(its 2D pass\); \S+bad\.json is a 2D-keypoint json$", 2, "--pose2d",
                                 "tokenpose_s_coco_256x192"), id="lift-json-with-pose2d"),  # was ignored silently
    pytest.param(_lift_json_case(lambda r, i: [r.pop("width", None), r.pop("height", None)],
                                 r"^posetokens lift: error: --image-size 0x0: expected WIDTHxHEIGHT in whole pixels >= 1",
                                 2, "--image-size", "0x0"), id="lift-json-image-size-0x0"),
]


def case_lift_weights_without_pose2d_weights(a: Assets, d: Path) -> Run:
    out = d / "out"
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--out", str(out), "--no-draw"], 0,
               rf"the 2D model {NAME_2D} has no weights given: it runs with random weights",
               not_in_output="the lifting model", unchanged=[a.clip], exist=[out / "clip.json", out / "clip_3d.json"])


def case_lift_pose2d_weights_of_a_lifter(a: Assets, d: Path) -> Run:
    """The lifter's checkpoint as the 2D model's: named by its flag (the estimator's hint said to use lift)."""
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--pose2d-weights", str(a.w3d), "--out", str(d / "out"),
                "--no-draw"], 2, rf"^posetokens lift: error: --pose2d-weights \S+tiny3d\.pth: {NAME_3D} is a lifting "
               r"model; lift's 2D pass needs a top-down COCO-17 2D model \(image crops in\), such as "
               r"ppt_s_coco_256x192$",
               unchanged=[a.clip, a.w3d], not_in_output="use posetokens lift")


def case_lift_video_with_image_size(a: Assets, d: Path) -> Run:
    """Ignored without a word (the 3D json gave the video's own size), as --fps and --layout are refused."""
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--image-size", "10x10", "--out", str(d / "out")], 2,
               r"^posetokens lift: error: --image-size applies to a 2D-keypoint json; \S+clip\.mp4 is a video or a "
               r"stream \(its own frame size\)$", absent=[d / "out"], not_in_output="random weights")


def case_lift_lookahead_without_online(a: Assets, d: Path) -> Run:
    return Run(["lift", str(a.infer_json), "--weights", str(a.w3d), "--lookahead", "2", "--out", str(d / "out")], 2,
               r"^posetokens lift: error: --lookahead 2 applies to online lifting \(--online\); offline lifting sees "
               r"the whole clip$", absent=[d / "out"])


def case_lift_flip_test_of_a_pruned_lifter_through_onnxruntime(a: Assets, d: Path) -> Run:
    """Refused once both models were exported and the whole 2D pass had run (36 s on a 5-frame clip)."""
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--pose2d-weights", str(a.w2d), "--runtime",
                "onnxruntime", "--flip-test", "--out", str(d / "out")], 2,
               r"^posetokens lift: error: --runtime onnxruntime: the flip test's mirrored pass of a pruned lifter "
               r"reuses the frames the first pass kept", absent=[d / "out"], not_in_output="exporting")


def case_infer_show_tokens_through_onnxruntime(a: Assets, d: Path) -> Run:
    """Refused after the model was exported (27 s for GTPT-T), leaving an empty --out."""
    return Run(["infer", str(a.jpgs[0]), "--model", "ppt_s_coco_256x192", "--runtime", "onnxruntime", "--show-tokens",
                "--out", str(d / "out")], 2, r"^posetokens infer: error: \S+/onnxruntime: the ONNX graph returns "
               r"predictions only, not the kept tokens", absent=[d / "out"], not_in_output="exporting|random weights")


def case_lift_3d_json_is_a_folder(a: Assets, d: Path) -> Run:
    """Found only when writing it, after the 2D pass and the lifting (the 2D json was written)."""
    (d / "out" / "clip_3d.json").mkdir(parents=True)
    return Run(["lift", str(a.clip), "--weights", str(a.w3d), "--pose2d-weights", str(a.w2d), "--out", str(d / "out")],
               2, r"^posetokens lift: error: the 3D results json \S+clip_3d\.json exists and is a folder; give --out "
               r"another folder$", absent=[d / "out" / "clip.json"], not_in_output="random weights")


def case_lift_an_mmpose_prediction_file(a: Assets, d: Path) -> Run:
    """What infer --mmpose-preds writes, given to lift: said 'record 0 has no 'instances' list'."""
    src = _json(d / "clip_preds.json", {"meta_info": {"dataset_name": "coco"}, "instance_info": [
        {"frame_id": 1, "instances": []}]})
    return Run(["lift", str(src), "--weights", str(a.w3d), "--out", str(d / "out")], 2,
               r"^posetokens lift: error: \S+clip_preds\.json: an MMPose prediction file \(meta_info, instance_info: "
               r"what infer --mmpose-preds writes\); expected infer's results json", absent=[d / "out"])


def case_lift_without_weights(a: Assets, d: Path) -> Run:
    from posetokens.inference.lifting import lift

    return Run(call=lambda: lift(a.infer_json, NAME_3D, d / "out", draw=False, **TINY_3D), rc=0,
               message=rf"the lifting model {NAME_3D} has no weights given: it runs with random weights")


def case_lift_weights_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "ckpts").mkdir()
    return Run(["lift", str(a.infer_json), "--weights", str(d / "ckpts"), "--out", str(d / "out")], 2,
               r"--weights .*ckpts is a folder; expected a file", not_in_output="does not exist")


def case_lift_an_image(a: Assets, d: Path) -> Run:
    """Refused before anything is built or made (it left an empty --out folder)."""
    return Run(["lift", str(a.jpgs[0]), "--model", NAME_3D, "--out", str(d / "out")], 2,
               r"000000000001\.jpg: lift takes a video or a 2D-keypoint json, not images", absent=[d / "out"],
               not_in_output="random weights")


def case_lift_out_is_a_file(a: Assets, d: Path) -> Run:
    f = d / "out.json"
    f.write_text("{}")
    return Run(["lift", str(a.infer_json), "--weights", str(a.w3d), "--out", str(f)], 2,
               r"output folder .*out\.json is a file; expected a folder", unchanged=[f])


def case_lift_device_cuda_on_cpu(a: Assets, d: Path) -> Run:
    if CUDA_BUILD:
        pytest.skip("a CUDA device is present")
    return Run(["lift", str(a.infer_json), "--weights", str(a.w3d), "--out", str(d / "out"), "--device", "cuda"], 2,
               r"--device cuda: (this PyTorch build has no CUDA support|no CUDA GPU is visible)")


def case_lift_reads_a_killed_runs_partial_file(a: Assets, d: Path) -> Run:
    rec = json.loads(a.infer_json.read_text())
    lines = ["["] + [json.dumps({**rec, "frame_id": i}) + "," for i in range(3)] + [json.dumps(rec)[:40]]
    part = d / "clip.json.x1.partial"
    part.write_text("\n".join(lines))  # what a SIGKILL mid-write leaves: no closing bracket, a cut last line
    out = d / "out"

    def check() -> None:
        assert len(json.loads((out / "clip_3d.json").read_text())["frames"]) == 3

    return Run(["lift", str(part), "--weights", str(a.w3d), "--out", str(out), "--no-draw", "--image-size", "160x112"],
               0, r"unfinished results file .* read its 3 complete record\(s\); dropped a half-written last line",
               unchanged=[part], check=check)


def case_lift_follows_one_person(a: Assets, d: Path) -> Run:
    """Two people, the better-scoring one alternating every frame: the lifted person must stay the same one."""
    rng = np.random.default_rng(0)
    left, right = rng.uniform(100, 200, (17, 2)), rng.uniform(600, 700, (17, 2))
    records = []
    for t in range(9):
        sa, sb = (0.9, 0.6) if t % 2 == 0 else (0.6, 0.9)  # left wins 5 frames, right 4: left is the main person
        people = [{"keypoints": (left + t).tolist(), "keypoint_scores": [sa] * 17, "bbox": [90, 90, 210, 210],
                   "bbox_score": 1.0},
                  {"keypoints": (right - t).tolist(), "keypoint_scores": [sb] * 17, "bbox": [590, 90, 710, 210],
                   "bbox_score": 1.0}]
        records.append({"frame_id": t, "width": 800, "height": 400, "keypoint_layout": "h36m",
                        "instances": people[::-1] if t % 3 else people})  # the order in the list does not matter
    src = _json(d / "two.json", records)
    out = d / "out"

    def check() -> None:
        frames = json.loads((out / "two_3d.json").read_text())["frames"]
        assert all(f["person"] for f in frames)
        kp2d = np.asarray([f["keypoints_2d"] for f in frames])
        np.testing.assert_allclose(kp2d, np.stack([left + t for t in range(9)]), atol=0.01)  # always the left one

    # --filter off: the raw 2D of the person lifted is compared (the video default smooths it with One-Euro)
    return Run(["lift", str(src), "--weights", str(a.w3d), "--out", str(out), "--no-draw", "--filter", "off"], 0,
               r"9 frame\(s\), 9 with",
               unchanged=[src], check=check)


def case_infer_detector_size_zero(a: Assets, d: Path) -> Run:
    """A detector side of 0 once found nobody with exit 0 (a division by zero); -5 gave NumPy's bare message."""
    return Run(["infer", str(a.clip), "--weights", str(a.w2d), "--detector", str(d / "det.onnx"),
                "--detector-size", "0", "--out", str(d / "o")], 2,
               r"argument --detector-size: expected an integer >= 1, got '0'", absent=[d / "o"],
               not_in_output="random weights")


def case_infer_bbox_thr_above_one(a: Assets, d: Path) -> Run:
    return Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--bbox-thr", "30", "--out", str(d / "o")], 2,
               r"argument --bbox-thr: expected a number in \[0, 1\], got '30'", absent=[d / "o"])


# -- export
def case_export_onnx_over_weights(a: Assets, d: Path) -> Run:
    w = d / "w.pth"
    shutil.copy(a.w2d, w)
    return Run(["export", "--weights", str(w), "--onnx", str(w), "--no-check"], 2,
               r"ONNX file .*w\.pth would overwrite the --weights .*w\.pth; choose another --onnx path", unchanged=[w])


def case_export_weights_where_the_data_file_goes(a: Assets, d: Path) -> Run:
    w = d / "m.onnx.data"
    shutil.copy(a.w2d, w)
    return Run(["export", "--weights", str(w), "--onnx", str(d / "m.onnx"), "--no-check"], 2,
               r"ONNX data file .*m\.onnx\.data would overwrite the --weights .*m\.onnx\.data; choose another --onnx "
               r"path", unchanged=[w], absent=[d / "m.onnx"])


def case_export_weights_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "ckpts").mkdir()
    return Run(["export", "--weights", str(d / "ckpts"), "--onnx", str(d / "m.onnx"), "--no-check"], 2,
               r"--weights .*ckpts is a folder; expected a file", absent=[d / "m.onnx"])


def case_export_onnx_is_a_folder(a: Assets, d: Path) -> Run:
    (d / "m.onnx").mkdir()
    return Run(["export", NAME_2D, "--onnx", str(d / "m.onnx"), "--no-check"], 2,
               r"--onnx .*m\.onnx is a folder", not_in_output="random weights")


def case_export_random_weights_note(a: Assets, d: Path) -> Run:
    from posetokens.export.onnx import _model  # the model export_onnx builds: the full export is slow on CPU

    return Run(call=lambda: _model(NAME_2D, None, dict(TINY_2D)), rc=0,
               message=rf"the model {NAME_2D} has no weights given: it runs with random weights")


CASES: list[Any] = [
    pytest.param(case_infer_folder_onto_itself, id="infer-folder-onto-itself"),
    pytest.param(case_infer_folder_onto_itself_random_weights, id="infer-folder-onto-itself-random-weights"),
    pytest.param(case_infer_image_overlay_onto_itself_random_weights, id="infer-overlay-onto-itself-random-weights"),
    pytest.param(case_infer_det_every_on_images_random_weights, id="infer-det-every-on-images-random-weights"),
    pytest.param(case_infer_image_into_its_own_folder, id="infer-image-into-its-own-folder"),
    pytest.param(case_lift_with_a_whole_body_2d_model_random_weights, id="lift-whole-body-2d-random-weights"),
    pytest.param(case_infer_looped_video_into_its_own_folder, id="infer-looped-video-into-its-own-folder"),
    pytest.param(case_lift_video_into_its_own_folder_random_weights, id="lift-video-into-its-own-folder-random-weights"),
    pytest.param(case_infer_filter_on_images_random_weights, id="infer-filter-on-images-random-weights"),
    pytest.param(case_infer_savgol_on_a_video_random_weights, id="infer-savgol-on-a-video-random-weights"),
    pytest.param(case_infer_detections_for_other_frames_random_weights,
                 id="infer-detections-for-other-frames-random-weights"),
    pytest.param(case_infer_image_overlay_onto_itself, id="infer-image-overlay-onto-itself"),
    pytest.param(case_infer_video_onto_itself, id="infer-video-onto-itself"),
    pytest.param(case_infer_weights_under_another_name, id="infer-weights-under-another-name"),
    pytest.param(case_infer_image_with_a_temporal_filter, id="infer-image-with-a-temporal-filter"),
    pytest.param(case_infer_coco_results_over_boxes, id="infer-coco-results-over-boxes"),
    pytest.param(case_infer_coco_results_over_a_users_file, id="infer-coco-results-over-a-users-file"),
    pytest.param(case_detections_past_the_end_of_the_video, id="detections-past-the-end-of-the-video"),
    pytest.param(case_detections_numbered_from_1, id="detections-numbered-from-1"),
    pytest.param(case_folder_with_a_video_and_a_text_file, id="folder-with-a-video-and-a-text-file"),
    pytest.param(case_a_folder_of_videos_only, id="a-folder-of-videos-only"),
    pytest.param(case_an_mpeg_ts_video, id="an-mpeg-ts-video"),
    pytest.param(case_lift_of_a_script, id="lift-of-a-script"),
    pytest.param(case_no_draw_beside_an_earlier_overlay, id="no-draw-beside-an-earlier-overlay"),
    pytest.param(case_estimator_stopped_early_still_counts, id="estimator-stopped-early-still-counts"),
    pytest.param(case_lift_of_nobody_beside_an_earlier_3d, id="lift-of-nobody-beside-an-earlier-3d"),
    pytest.param(case_infer_coco_results_over_a_detections_file, id="infer-coco-results-over-a-detections-file"),
    pytest.param(case_infer_mmpose_preds_over_a_checkpoint, id="infer-mmpose-preds-over-a-checkpoint"),
    pytest.param(case_infer_coco_results_image_without_id, id="infer-coco-results-image-without-id"),
    pytest.param(case_infer_coco_results_two_images_one_id, id="infer-coco-results-two-images-one-id"),
    pytest.param(case_infer_empty_detections_file, id="infer-empty-detections-file"),
    pytest.param(case_infer_detections_for_other_frames, id="infer-detections-for-other-frames"),
    pytest.param(case_infer_same_stem_images, id="infer-same-stem-images-get-distinct-names"),
    pytest.param(case_infer_out_is_a_file, id="infer-out-is-a-file"),
    pytest.param(case_infer_skips_unreadable_images, id="infer-skips-truncated-and-unreadable"),
    pytest.param(case_infer_strict_stops_at_first, id="infer-strict"),
    pytest.param(case_infer_weights_is_a_folder, id="infer-weights-is-a-folder"),
    pytest.param(case_infer_device_cuda_on_cpu, id="infer-device-cuda"),
    pytest.param(case_infer_random_weights_note, id="infer-random-weights-note"),
    pytest.param(case_infer_a_picture_as_boxes, id="infer-a-picture-as-boxes"),
    pytest.param(case_infer_partial_detections, id="infer-partial-detections-warning"),
    pytest.param(case_detections_not_a_list, id="detections-not-a-list"),
    pytest.param(_bad_dets({"bbox": [10, 10, float("nan"), 80]}, r"'bbox' \[10, 10, nan, 80\] is not finite"),
                 id="detections-nan-bbox"),
    pytest.param(_bad_dets({"bbox": [10, 10, 0, 80]}, r"'bbox' \[10, 10, 0, 80\] has zero or negative width/height"),
                 id="detections-zero-area"),
    pytest.param(_bad_dets({"image_id": "img_a"}, r"'image_id' must be a non-negative integer .*'img_a'"),
                 id="detections-string-image-id"),
    pytest.param(_bad_dets({"score": "high"}, r"'score' must be a finite number, got 'high'"),
                 id="detections-string-score"),
    pytest.param(case_infer_coco_results_is_a_folder, id="infer-coco-results-is-a-folder"),
    pytest.param(case_infer_coco_results_is_the_out_folder, id="infer-coco-results-is-the-out-folder"),
    pytest.param(case_infer_checkpoint_with_damaged_overrides, id="infer-checkpoint-with-damaged-overrides"),
    pytest.param(case_infer_unwritable_out, id="infer-unwritable-out"),
    pytest.param(case_infer_unwritable_coco_results_folder, id="infer-unwritable-coco-results-folder"),
    pytest.param(case_infer_show_tokens_of_tokenpose, id="infer-show-tokens-of-tokenpose"),
    pytest.param(case_infer_mmpose_preds_named_as_a_folder, id="infer-mmpose-preds-named-as-a-folder"),
    pytest.param(case_tokens_figure_of_a_frame_without_people, id="tokens-figure-without-people"),
    pytest.param(case_infer_detector_size_zero, id="infer-detector-size-zero"),
    pytest.param(lambda a, d: Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--detector", str(d),
                                   "--out", str(d / "o")], 2, r"--detector \S+ is a folder; expected a file$",
                                  absent=[d / "o"]), id="infer-detector-a-folder"),  # was "detector not found"
    pytest.param(case_infer_bbox_thr_above_one, id="infer-bbox-thr-above-one"),
    pytest.param(_predict_case(_IMG.astype(np.uint16) * 257, _BOX, None,
                               r"dtype uint16; expected an \(H, W, 3\) uint8 BGR image .*16-bit"), id="predict-uint16"),
    pytest.param(_predict_case(_IMG.astype(np.float32) / 255, _BOX, None,
                               r"dtype float32; expected an \(H, W, 3\) uint8 BGR image .*\[0, 1\]"),
                 id="predict-float-0-1"),
    pytest.param(_predict_case(_IMG[..., 0], _BOX, None, r"shape \(96, 128\); .*COLOR_GRAY2BGR"), id="predict-grey"),
    pytest.param(_predict_case(np.dstack([_IMG, _IMG[..., :1]]), _BOX, None, r"shape \(96, 128, 4\); .*BGRA"),
                 id="predict-bgra"),
    pytest.param(_predict_case(_IMG, np.concatenate([_BOX, _BOX]), [0.9],
                               r"2 box\(es\) but 1 box score\(s\); expected one score per box"),
                 id="predict-2-boxes-1-score"),
    pytest.param(_predict_case(_IMG, [[10, 10, 60, 90], [0, 0, np.nan, 5]], None,
                               r"bboxes\[1\] = \[0\.0, 0\.0, nan, 5\.0\] is not finite"), id="predict-nan-box"),
    pytest.param(_predict_case(_IMG, [[10, 10, 10, 90]], None, r"bboxes\[0\] .* zero or negative width/height"),
                 id="predict-zero-area-box"),
    pytest.param(_predict_case(_IMG, [1, 2, 3, 4, 5, 6], None, r"shape \(6,\), expected \(N, 4\)"),
                 id="predict-box-shape"),
    pytest.param(case_infer_box_smaller_than_a_pixel, id="infer-box-smaller-than-a-pixel"),
    pytest.param(_predict_case(_IMG, "dets.json", None, r"predict: bboxes: got a str; expected \(N, 4\) boxes .*"
                               r"a detections json path goes to the estimator's call or --boxes"), id="predict-box-path"),
    pytest.param(_predict_case(_IMG, {"bbox": [1, 2, 3, 4]}, None, r"predict: bboxes: got a dict; expected \(N, 4\)"),
                 id="predict-box-dict"),
    pytest.param(_predict_case(_IMG, [[10, 10, 60, 90], [1, 2, 3]], None,
                               r"predict: bboxes: not an array of numbers \(N, 4\) .* got list \[\[10, 10, 60, 90\], "),
                 id="predict-ragged-boxes"),
    pytest.param(_predict_case(_IMG, [[10, 10, 10.5, 10.5]], None, r"predict: bboxes\[0\] = \[10\.0, 10\.0, 10\.5, "
                               r"10\.5\] is smaller than a pixel"), id="predict-subpixel-box"),
    pytest.param(_predict_case(_IMG, [[10, 10, 60, 90], [128, 0, 160, 50]], None, r"predict: bboxes\[1\] = \[128\.0, "
                               r"0\.0, 160\.0, 50\.0\] lies outside the 128x96 image; expected boxes that overlap it"),
                 id="predict-box-outside"),  # was dropped: one pose for two boxes
    pytest.param(_predict_case(_IMG, _BOX, ["high"], r"predict: bboxes: the box scores are not numbers \(N,\); got list "
                               r"\['high'\]"), id="predict-box-score-text"),
    pytest.param(_predict_case(_IMG, [[10 + 1j, 10, 60, 90]], None, r"predict: bboxes: not an array of numbers "
                               r"\(N, 4\) .* got list \[\[\(10\+1j\), "), id="predict-box-complex"),  # was dropped
    pytest.param(_predict_case(_IMG, [["10", "10", "60", "90"]], None, r"predict: bboxes: not an array of numbers "
                               r"\(N, 4\)"), id="predict-box-digits-as-text"),  # read as numbers
    pytest.param(_api_case(lambda a, d: _result(a).to_dict(decimals=None), r"^to_dict: decimals must be a whole "
                           r"number >= 0, got None$"), id="result-to-dict-decimals-none"),  # bbox_score became an int
    pytest.param(_api_case(lambda a, d: draw_frame(_result(a), "coco", kpt_thr="x"), r"^draw_frame: kpt_thr must be a "
                           r"finite number \(the least score drawn\), got 'x'$"), id="draw-frame-kpt-thr-text"),
    pytest.param(_api_case(lambda a, d: _est(a, bbox_padding=0), r"bbox_padding must be a number > 0 .* got 0$"),
                 id="estimator-bbox-padding-zero"),
    pytest.param(_api_case(lambda a, d: _est(a, metainfo="mpii"),
                           r"metainfo 'mpii' has 16 keypoints but tokenpose_s_coco_256x192 predicts 17$"),
                 id="estimator-metainfo-count"),
    pytest.param(_api_case(lambda a, d: _est(a, metainfo="h36m"),
                           r"metainfo 'h36m' but the checkpoint's model predicts 'coco' keypoints: their names and "
                           r"flip pairs would be wrong; leave metainfo out$"), id="estimator-metainfo-other-dataset"),
    pytest.param(_api_case(lambda a, d: list(_est(a)(_IMG)), r"source: got a ndarray; expected an image, a folder of "
                           r"images or a video path, a webcam index or a stream URL \(for an image array call "
                           r"PoseEstimator\.predict\(image\)\)$"), id="estimator-called-on-an-array"),
    pytest.param(_api_case(lambda a, d: list(_est(a)([str(a.jpgs[0])])), r"source: got a list; .*one path at a time"),
                 id="estimator-called-on-a-list"),
    pytest.param(_api_case(lambda a, d: _crops(a, crops=lambda c: c.astype(np.float32) / 255),
                           r"predict_crops: crops must be a uint8 RGB numpy array \(N, 64, 48, 3\) .* got ndarray float32 "
                           r"of shape \(2, 64, 48, 3\)$"), id="predict-crops-float"),
    pytest.param(_api_case(lambda a, d: _crops(a, crops=lambda c: c.transpose(0, 3, 1, 2)),
                           r"crops must be .* got ndarray uint8 of shape \(2, 3, 64, 48\)$"), id="predict-crops-chw"),
    pytest.param(_api_case(lambda a, d: _crops(a, warps=lambda w: w[:1]),
                           r"predict_crops: warps must be a finite numpy array \(2, 2, 3\), one image->crop warp per "
                           r"crop .* got ndarray of shape \(1, 2, 3\)$"), id="predict-crops-one-warp-for-two"),
    pytest.param(_api_case(lambda a, d: _crops(a, warps=lambda w: w * [[[1, 1, 1], [0, 0, 1]]]),
                           r"^predict_crops: warps\[0\] = \[\[.*\]\] is singular; expected an invertible image->crop "
                           r"warp"), id="predict-crops-singular-warp"),  # was numpy's LinAlgError
    # a box callable of the user's returning boxes alone, or nothing: a TypeError from inside check_boxes
    pytest.param(_api_case(lambda a, d: list(_est(a)(str(a.jpgs[0]), boxes=lambda f: np.array([[1, 2, 30, 40]]))),
                           r"000000000001\.jpg: the boxes callable returned array\(.*; expected a pair \(boxes \(N, 4\) "
                           r"\[x1, y1, x2, y2\], scores \(N,\) or None\)$"), id="estimator-box-callable-boxes-only"),
    pytest.param(_api_case(lambda a, d: list(_est(a)(str(a.jpgs[0]), boxes=lambda f: None)),
                           r"the boxes callable returned None; expected a pair"), id="estimator-box-callable-none"),
    pytest.param(case_estimator_box_callable_list_pair, id="estimator-box-callable-list-pair"),
    pytest.param(_api_case(lambda a, d: _est(a).predict(_IMG, np.zeros((3, 0))),
                           r"^predict: bboxes: shape \(3, 0\), expected \(N, 4\) boxes \[x1, y1, x2, y2\]$"),
                 id="predict-three-empty-boxes"),  # was read as no boxes
    # two boxes as a list of lists were read as (boxes, scores): "1 box(es) but 4 box score(s)"
    pytest.param(_api_case(lambda a, d: list(_est(a)(str(a.jpgs[0]),
                                                     boxes=lambda f: [[0, 0, 10, 10], [5, 5, 20, 20]])),
                           r"000000000001\.jpg: the boxes callable returned \[\[0, 0, 10, 10\], \[5, 5, 20, 20\]\]; "
                           r"expected a pair .*; two boxes without scores are \(boxes, None\)$"),
                 id="estimator-box-callable-two-boxes"),
    # the lower-level crops() took anything: "not enough values to unpack", a numpy broadcast error, "scale width
    # must be > 1", an AttributeError of str
    pytest.param(_api_case(lambda a, d: _est(a).crops(_IMG[..., ::-1], [[1, 2]]), r"^crops: bboxes: shape \(1, 2\), "
                           r"expected \(N, 4\) boxes \[x1, y1, x2, y2\]$"), id="crops-two-value-box"),
    pytest.param(_api_case(lambda a, d: _est(a).crops(_IMG[..., 0], _BOX), r"^crops: image_rgb: shape \(\d+, \d+\); "
                           r"expected an \(H, W, 3\) uint8 RGB image .*img\[\.\.\., ::-1\]\)"), id="crops-grey-image"),
    pytest.param(_api_case(lambda a, d: _est(a).crops(_IMG[..., ::-1], [[500, 300, 200, 100]]),
                           r"^crops: bboxes\[0\] = \[500\.0, 300\.0, 200\.0, 100\.0\] has zero or negative "
                           r"width/height"), id="crops-inverted-box"),
    pytest.param(_api_case(lambda a, d: _est(a).crops("img.jpg", _BOX), r"^crops: image_rgb: got a str; expected"),
                 id="crops-a-path"),
    pytest.param(_api_case(lambda a, d: _est_of(3), r"^PoseEstimator: model must be a zoo model name or a torch model "
                           r"\(nn\.Module\), got int 3$"), id="estimator-model-an-int"),  # was "int is a None model"
    pytest.param(_api_case(lambda a, d: _est(a, batch_size="4"), r"^PoseEstimator: batch_size must be a whole number "
                           r">= 1, got '4'$"), id="estimator-batch-size-text"),  # was a TypeError from "<"
    pytest.param(_api_case(lambda a, d: _est(a, flip_test="no"), r"^PoseEstimator: flip_test must be True or False, "
                           r"got 'no'$"), id="estimator-flip-test-text"),  # was read as True
    pytest.param(_api_case(lambda a, d: list(_est(a)(str(a.jpgs[0]), boxes=_json(d / "dets.json", []),
                                                     bbox_thr=float("nan"))),  # kept every box
                           r"^score_thr \(bbox_thr\) of the detections must be a finite number, got nan$"),
                 id="estimator-bbox-thr-nan"),
    pytest.param(_api_case(lambda a, d: _est(a).infer(a.clip, d / "o", draw="no"),  # was read as True
                           r"^draw must be True or False, got 'no'$"), id="estimator-infer-draw-text"),
    pytest.param(_api_case(lambda a, d: list(_est(a)(a.clip, det_every="5")),  # said "got 5"
                           r"^det_every must be a whole number >= 1, got '5'$"),
                 id="estimator-det-every-text"),
    pytest.param(_api_case(lambda a, d: _lift(a, d, online="yes"), r"^online must be True or False, got 'yes'$"),
                 id="lift-online-text"),  # was stored as True
    pytest.param(_api_case(lambda a, d: _lift(a, d, min_track_frames=2.5),
                           r"^min_track_frames must be a whole number >= 1, got 2\.5$"), id="lift-min-track-frames-2.5"),
    pytest.param(lambda a, d: Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "o"),
                                   "--batch-size", "0"], 2, r"argument --batch-size: expected an integer >= 1, got '0'$",
                                  absent=[d / "o"]), id="infer-batch-size-0"),  # named PoseEstimator's argument
    pytest.param(lambda a, d: Run(["lift", str(a.clip), "--out", str(d / "o"), "--max-frames", "0"], 2,
                                  r"argument --max-frames: expected an integer >= 1, got '0'$", absent=[d / "o"],
                                  not_in_output="random weights"), id="lift-max-frames-0"),  # after the model's note
    pytest.param(lambda a, d: Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "o"),
                                   "--filter-beta", "-5"], 2,
                                  r"One-Euro filter: beta must be >= 0, got -5\.0 \(--filter-beta -5\.0\)$",
                                  absent=[d / "o"]), id="infer-filter-beta-negative"),  # named no flag
    pytest.param(lambda a, d: Run(call=lambda: _lift(a, d, max_frames=0), rc=ValueError, absent=[d / "o"],
                                  message=r"^max_frames must be a whole number >= 1, got 0$"), id="lift-max-frames-0-api"),
    pytest.param(lambda a, d: Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "o"),
                                   "--filter-beta", "1", "--filter-min-cutoff", "0", "--filter-gap", "hold"], 2,
                                  r"min_cutoff \(Hz\) must be > 0, got 0\.0 \(--filter-min-cutoff 0\.0\)$",
                                  absent=[d / "o"]), id="infer-filter-flag-at-fault"),  # listed every flag given
    pytest.param(lambda a, d: Run(["infer", str(a.clip), "--weights", str(a.w2d), "--out", str(d / "o"),
                                   "--filter-window", "4"], 2,
                                  r"--filter-window: not a parameter of --filter one_euro \(it takes "
                                  r"--filter-min-cutoff, --filter-beta, --filter-d-cutoff, --filter-gap\)$",
                                  absent=[d / "o"]),
                 id="infer-filter-flag-of-another-filter"),  # was ignored
    pytest.param(lambda a, d: Run(["infer", str(a.jpgs[0]), "--weights", str(a.w2d), "--out", str(d / "o"),
                                   "--filter-beta", "3"], 2, r"a temporal filter applies to videos and streams",
                                  absent=[d / "o"]), id="infer-filter-flag-on-an-image"),  # was ignored
    pytest.param(lambda a, d: Run(["models", "zzz"], 2, r"no zoo model name contains 'zzz'"), id="models-no-match"),
    pytest.param(lambda a, d: Run(["parity", str(d / "nowhere")], 2, r"parity fixture \S+nowhere: no such folder$"),
                 id="parity-missing-folder"),
    pytest.param(lambda a, d: Run(["parity", str(_fixture_with_config(d, "[1]"))], 2,  # was an AttributeError
                                  r"\S+config.json: expected a JSON object \(the fixture's settings\), got list$"),
                 id="parity-config-a-list"),
    pytest.param(lambda a, d: Run(["parity", str(PARITY / "mixste_t81"), "--atol", "nan"], 2,
                                  r"--atol must be a finite number >= 0, got nan$"), id="parity-atol-nan"),
    pytest.param(lambda a, d: Run(["evaluate", "--gt", str(DATA / "coco" / "test_coco.json"), "--pred", str(d)], 2,
                                  r"predictions file \S+ is a folder; expected a \.json file$"), id="evaluate-pred-folder"),
    pytest.param(lambda a, d: Run(["evaluate", "--gt", str(DATA / "coco" / "test_coco.json"), "--pred", str(d),
                                   "--no-rescore", "--rescore-thr", "0.1"], 2,  # the threshold was dropped silently
                                  r"--no-rescore and --rescore-thr contradict each other; give one of them$"),
                 id="evaluate-no-rescore-with-a-threshold"),
    pytest.param(_api_case(lambda a, d: create_model(None), r"a model name must be a string .* got NoneType None$"),
                 id="create-model-none"),
    pytest.param(_api_case(lambda a, d: create_model(NAME_2D, image_size=(256,)),
                           r"TokenPoseCfg\.image_size must be 2 sizes like \(256, 192\), got \(256,\)$"),
                 id="create-model-one-side"),
    pytest.param(_draw_case(np.full((40, 40, 3), 0.5, np.float32), r"float32 with values in \[0\.5, 0\.5\]: convert"),
                 id="draw-float-0-1"),
    pytest.param(_draw_case(np.full((40, 40, 3), 4000, np.uint16), r"uint16 with values in \[4000, 4000\]"),
                 id="draw-uint16"),
    pytest.param(case_lift_unwritable_out_before_computing, id="lift-unwritable-out-before-computing"),
    pytest.param(case_lift_layout_mismatch, id="lift-layout-mismatch"),
    pytest.param(case_lift_layout_from_json, id="lift-layout-from-json"),
    pytest.param(case_lift_weights_without_pose2d_weights, id="lift-note-2d-model-random"),
    pytest.param(case_lift_pose2d_weights_of_a_lifter, id="lift-pose2d-weights-a-lifter"),
    pytest.param(case_infer_box_outside_the_image, id="infer-box-outside-the-image"),
    pytest.param(case_infer_tokens_folder_is_a_file, id="infer-tokens-folder-is-a-file"),
    pytest.param(case_infer_result_json_is_a_folder, id="infer-result-json-is-a-folder"),
    pytest.param(case_lift_video_with_image_size, id="lift-video-image-size"),
    pytest.param(case_lift_lookahead_without_online, id="lift-lookahead-without-online"),
    pytest.param(case_lift_an_mmpose_prediction_file, id="lift-mmpose-prediction-file"),
    pytest.param(case_lift_3d_json_is_a_folder, id="lift-3d-json-is-a-folder"),
    pytest.param(case_lift_flip_test_of_a_pruned_lifter_through_onnxruntime, id="lift-flip-pruned-onnxruntime"),
    pytest.param(case_infer_show_tokens_through_onnxruntime, id="infer-show-tokens-onnxruntime"),
    pytest.param(case_lift_without_weights, id="lift-note-lifting-model-random"),
    pytest.param(case_lift_weights_is_a_folder, id="lift-weights-is-a-folder"),
    pytest.param(case_lift_out_is_a_file, id="lift-out-is-a-file"),
    pytest.param(case_lift_device_cuda_on_cpu, id="lift-device-cuda"),
    pytest.param(case_lift_reads_a_killed_runs_partial_file, id="lift-reads-partial-json"),
    pytest.param(case_lift_follows_one_person, id="lift-follows-one-person"),
    pytest.param(case_export_onnx_over_weights, id="export-onnx-over-weights"),
    pytest.param(case_export_weights_is_a_folder, id="export-weights-is-a-folder"),
    pytest.param(case_lift_json_with_a_nan_keypoint, id="lift-json-with-a-nan-keypoint"),
    *LIFT_JSON_CASES,
    pytest.param(case_lift_an_image, id="lift-an-image"),
    pytest.param(case_export_weights_where_the_data_file_goes, id="export-weights-where-the-data-file-goes"),
    pytest.param(case_export_onnx_is_a_folder, id="export-onnx-is-a-folder"),
    pytest.param(case_export_random_weights_note, id="export-random-weights-note"),
]


# ------------------------------------------------------------------------------------------------ runner
def _digest(path: Path) -> dict[str, str]:
    """SHA-256 of a file, or of every file under a folder (by relative path)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_nothing_half_written(folder: Path) -> None:
    """No temporary or partial file is left under ``folder``; every json parses, every png and mp4 decodes."""
    if not folder.is_dir():
        return
    for p in folder.rglob("*"):
        if not p.is_file():
            continue
        assert not re.search(r"\.partial|\.tmp$|posetokens-write-check", p.name), f"left behind: {p}"
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            assert cv2.imread(str(p)) is not None, f"unreadable picture {p}"
        elif p.suffix == ".mp4":
            cap = cv2.VideoCapture(str(p))
            assert cap.isOpened() and cap.read()[0], f"unplayable video {p}"
            cap.release()


@pytest.mark.parametrize("make", CASES)
def test_bad_input(make: Callable[[Assets, Path], Run], assets: Assets, tmp_path: Path,
                   capsys: pytest.CaptureFixture) -> None:
    run = make(assets, tmp_path)
    before = {p: _digest(p) for p in run.unchanged}
    capsys.readouterr()
    if run.argv is not None:
        rc = cli(run.argv)
        cap = capsys.readouterr()
        seen = cap.err + cap.out
        assert rc == run.rc, f"exit {rc}, expected {run.rc}; output:\n{seen}"
        if rc == 2:  # a user error: exactly one line, no traceback
            errors = [line for line in cap.err.splitlines() if "error:" in line]
            assert len(errors) == 1 and "Traceback" not in cap.err, cap.err
    else:
        assert run.call is not None
        if isinstance(run.rc, type):
            with pytest.raises(run.rc) as info:
                run.call()
            seen = str(info.value) + capsys.readouterr().err
        else:
            run.call()
            seen = capsys.readouterr().err
    assert re.search(run.message, seen), f"{run.message!r} not found in:\n{seen}"
    if run.not_in_output:
        assert not re.search(run.not_in_output, seen), f"{run.not_in_output!r} found in:\n{seen}"
    for p, digest in before.items():
        assert p.exists() and _digest(p) == digest, f"{p} changed"
    for p in run.exist:
        assert p.is_file(), f"{p} missing"
    for p in run.absent:
        assert not p.exists(), f"{p} should not have been written"
    for folder in [tmp_path, assets.root]:
        for out in folder.glob("out*"):
            assert_nothing_half_written(out)
    if run.check is not None:
        run.check()


# ------------------------------------------------------------------------------------------- interrupts
@pytest.mark.parametrize("sig,code,name", [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupted_video_keeps_finished_frames(sig: int, code: int, name: str, assets: Assets,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = _digest(VIDEO)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    rc, err = interrupt_when([sys.executable, "-m", "posetokens", "infer", str(VIDEO), "--weights", str(assets.w2d),
                              "--out", str(out), "--batch-size", "1"],
                             lambda proc: partial_lines(out, "sample_video.json.*.partial") >= 8, sig, env=env)
    assert rc == code, err  # interrupted once the streamed json held 8 finished frames
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(rf"posetokens infer: interrupted by {name}: the results of (\d+) finished frame\(s\) are in "
                        rf"{re.escape(str(out))}", last), err
    n = int(re.search(r"results of (\d+)", last).group(1))
    records = json.loads((out / "sample_video.json").read_text())
    assert len(records) == n >= 8 and n < 185  # every finished frame, and the run was cut short
    assert [r["frame_id"] for r in records] == list(range(n))
    cap = cv2.VideoCapture(str(out / "sample_video.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == n  # a playable mp4 holding the same frames as the json
    assert_nothing_half_written(out)
    assert _digest(VIDEO) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_the_input_of_lift_and_the_frames_read_are_lifted(sig: int, assets: Assets,
                                                                     tmp_path: Path) -> None:
    """A camera or a stream (here a file read as one, endlessly) has no end but Ctrl-C: it ends the 2D pass and
    the frames read are lifted and drawn (exit 130; only the 2D json was kept, the docs promised the 3D). SIGTERM
    stops at once, keeping the 2D of the frames done (exit 143)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    rc, err = interrupt_when([sys.executable, "-m", "posetokens", "lift", str(assets.clip), "--loop", "0", "--weights",
                              str(assets.w3d), "--pose2d-weights", str(assets.w2d), "--out", str(out),
                              "--min-track-frames", "1", "--no-progress"],
                             lambda proc: partial_lines(out, "clip.json.*.partial") >= 8, sig, env=env)
    records = json.loads((out / "clip.json").read_text())
    n = len(records)
    assert n >= 8 and [r["frame_id"] for r in records] == list(range(n))
    if sig == signal.SIGTERM:
        assert rc == 143, err
        assert err.strip().splitlines()[-1] == (f"posetokens lift: interrupted by SIGTERM: the results of {n} "
                                                f"finished frame(s) are in {out}")
        assert not (out / "clip_3d.json").exists()
        return
    assert rc == 130, err
    lines = err.strip().splitlines()
    assert lines[-2] == (f"posetokens lift: interrupted by SIGINT: the results of {n} finished frame(s) are in {out}; "
                         "lifting them (Ctrl-C again to stop)")
    assert lines[-1] == (f"posetokens lift: interrupted by SIGINT in the 2D pass: the 3D of the {n} frame(s) read is "
                         f"in {out / 'clip_3d.json'}")
    lifted = json.loads((out / "clip_3d.json").read_text())
    assert lifted["complete"] and [f["frame_id"] for f in lifted["frames"]] == list(range(n))
    assert len(video_frames(out / "clip_3d.mp4")) == n
    assert_nothing_half_written(out)


def test_weights_of_another_kind_are_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An image given as --weights: one line naming the file and what a checkpoint is (torch's own message about
    weights_only is about pickles and does not apply); a real but truncated checkpoint keeps torch's detail."""
    img = tmp_path / "000001.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert cli(["infer", str(img), "--weights", str(img), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"posetokens infer: error: {img} is not a PyTorch checkpoint: expected a .pth file written by "
                   "torch.save (a zip archive or a pickle), got another kind of file")
    ckpt = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(1000)}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:300])  # a zip, cut short
    assert cli(["infer", str(img), "--weights", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"posetokens infer: error: {ckpt} is not a readable PyTorch checkpoint (") and "\n" not in err


def test_a_fixture_missing_a_key_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`parity` on a fixture whose config.json lacks a key the handler reads: one line naming the folder and the
    key (a bare KeyError from the handler, once the CLI stopped treating every KeyError as the user's)."""
    src = PARITY / "gtpt_t_coco_256x192"
    fixture = tmp_path / "fx"
    fixture.mkdir()
    for name in ("checkpoint.pth", "inputs.pt", "outputs.pt"):
        (fixture / name).symlink_to(src / name)
    config = json.loads((src / "config.json").read_text())
    del config["stem"]
    (fixture / "config.json").write_text(json.dumps(config))
    assert cli(["parity", str(fixture)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"posetokens parity: error: {fixture}: the fixture misses the key 'stem' (in its config.json, " \
                          "inputs or outputs)"


def test_only_a_users_key_error_is_a_one_line_error(capsys: pytest.CaptureFixture) -> None:
    """An unknown name is the user's (one line, exit 2); a bare KeyError from inside is a bug of ours and keeps
    its traceback (every KeyError was once printed as a one-line user error, hiding such bugs)."""
    from posetokens.cli import user_error_message
    from posetokens.runtime import UserKeyError

    assert user_error_message(UserKeyError("unknown model 'x'")) == "unknown model 'x'"
    assert user_error_message(KeyError("instances")) is None
    assert cli(["flops", "tokenpose_s_coco_255"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posetokens flops: error: unknown model 'tokenpose_s_coco_255'") and "Traceback" not in err


def test_a_built_model_with_random_weights_says_so_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # The brief: running with random weights always says so. A model given to the API as a module says so when
    # create_model built it without weights and no parameter has changed since; loading a checkpoint or one training
    # step takes it back to silence, and a model built with weights never says it.
    from posetokens import PoseEstimator
    from posetokens.export import export_onnx
    from posetokens.inference.lifting import lift_sequence
    from posetokens.inference.online import lift_online
    from posetokens.registry import has_random_weights

    note = "has no weights given: it runs with random weights"
    torch.manual_seed(0)
    model = create_model(NAME_2D, **TINY_2D)
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 48))  # training mode: BatchNorm statistics move, the weights stay random
    assert has_random_weights(model) and has_random_weights(create_model(NAME_2D, **TINY_2D).to(torch.bfloat16))
    # a round trip through a narrower type holds the initial values rounded: still random (was silent)
    assert has_random_weights(create_model(NAME_2D, **TINY_2D).half().float())
    assert has_random_weights(create_model(NAME_2D, **TINY_2D).bfloat16().float())
    with pytest.raises(ValueError, match="keypoints"):
        PoseEstimator(model, runtime="torch", metainfo="mpii")  # refused: nothing ran, nothing said yet
    assert note not in capsys.readouterr().err
    PoseEstimator(model, runtime="torch")
    PoseEstimator(model, runtime="torch")
    err = capsys.readouterr().err
    assert err.count(note) == 1 and f"the 2D model {NAME_2D} {note}" in err  # once per model
    named = PoseEstimator(NAME_2D, runtime="torch", **TINY_2D)
    PoseEstimator(named.model, runtime="torch")  # the same model again: not said twice
    assert capsys.readouterr().err.count(note) == 1

    trained = create_model(NAME_2D, **TINY_2D)
    with torch.no_grad():
        next(trained.parameters()).add_(1e-3)  # one changed parameter, as a training step or a load would
    PoseEstimator(trained, runtime="torch")
    loaded = create_model(NAME_2D, **TINY_2D)
    loaded.load_state_dict(create_model(NAME_2D, **TINY_2D).state_dict())  # other random draws: a checkpoint
    PoseEstimator(loaded, runtime="torch")
    assert not has_random_weights(trained) and not has_random_weights(loaded)
    assert note not in capsys.readouterr().err
    assert not has_random_weights(torch.nn.Linear(2, 2))  # not ours: nothing is known of it
    quantized = create_model(NAME_2D, **TINY_2D)
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(quantized, {torch.nn.Linear}, inplace=True)
    PoseEstimator(quantized, runtime="torch")  # a model whose layers were swapped in place: no traceback

    kp = np.random.default_rng(0).uniform(0, 100, (30, 17, 2))
    lifter = create_model(NAME_3D, **TINY_3D)
    lift_sequence(lifter, kp, None, 100, 100)
    lift_sequence(lifter, kp, None, 100, 100)
    err = capsys.readouterr().err
    assert err.count(note) == 1 and f"the lifting model {NAME_3D} {note}" in err
    lift_online(create_model(NAME_3D, **TINY_3D), kp[:3], None, 100, 100)
    assert f"the lifting model {NAME_3D} {note}" in capsys.readouterr().err
    export_onnx(create_model(NAME_2D, **TINY_2D), tmp_path / "m.onnx", check=False)
    assert f"the model {NAME_2D} {note}" in capsys.readouterr().err


@pytest.mark.parametrize("writer", ["atomic_path", "atomic_write"])
def test_a_folder_made_at_the_path_while_writing_is_named_and_no_temporary_file_stays(tmp_path: Path,
                                                                                     writer: str) -> None:
    """The rename over ``path`` fails when a folder was made there after the checks: the error names ``path``
    (not the temporary file), and the temporary file is gone."""
    from posetokens.fileio import atomic_path, atomic_write

    path = tmp_path / "res.json"
    with pytest.raises(IsADirectoryError) as e:
        if writer == "atomic_path":
            with atomic_path(path) as tmp:
                tmp.write_text("[]")
                path.mkdir()
        else:
            atomic_write(path, lambda f: (f.write(b"[]"), path.mkdir()))
    assert e.value.filename == str(path) and "over a folder" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.json"] and path.is_dir()


def test_a_folder_made_at_the_path_of_a_streamed_array_keeps_the_finished_file(tmp_path: Path) -> None:
    """A video's results stream to a temporary file: when the final move fails (a folder made at the path during
    the run), the finished file is kept, complete, and the one-line message says where (it said only Python's
    'Is a directory: a.partial -> a'); a second close tries the move again."""
    from posetokens.cli import user_error_message
    from posetokens.fileio import JsonArrayWriter

    path = tmp_path / "clip.json"
    w = JsonArrayWriter(path)
    w.append({"frame_id": 0})
    path.mkdir()
    with pytest.raises(IsADirectoryError) as e:
        w.close()
    kept = [p for p in tmp_path.iterdir() if p.suffix == ".partial"]
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == [{"frame_id": 0}]
    assert user_error_message(e.value) == (f"the finished file could not be moved to {path} (Is a directory); it is "
                                           f"kept, complete, as {kept[0]}")
    path.rmdir()
    assert w.close() == path and json.loads(path.read_text()) == [{"frame_id": 0}]
    assert [p.name for p in tmp_path.iterdir()] == ["clip.json"]


def test_a_model_of_another_float_type_is_refused_in_one_line(tmp_path: Path) -> None:
    """``model.double()`` / ``.half()`` given to the inference API: PyTorch's "Input type (float) and bias type
    (double) should be the same" was the user's message; now one line naming the type and the way out."""
    from posetokens import PoseEstimator
    from posetokens.inference.lifting import lift, lift_sequence
    from posetokens.inference.online import OnlineLifter

    with pytest.raises(ValueError, match=rf"^PoseEstimator: {NAME_2D}'s parameters are float64; expected float32 "
                                         r"\(call model\.float\(\); precision chooses a reduced precision\)$"):
        PoseEstimator(create_model(NAME_2D, **TINY_2D).double())
    from posetokens.export import export_onnx

    with pytest.raises(ValueError, match=rf"^export_onnx: {NAME_2D}'s parameters are float64; expected float32"):
        export_onnx(create_model(NAME_2D, **TINY_2D).double(), tmp_path / "x.onnx")  # was onnxruntime's type error
    assert not (tmp_path / "x.onnx").exists()
    lifter = create_model(NAME_3D, **TINY_3D).half()
    with pytest.raises(ValueError, match=rf"^lift_sequence: {NAME_3D}'s parameters are float16; expected float32 "
                                         r"\(call model\.float\(\)\)$"):
        lift_sequence(lifter, np.zeros((5, 17, 2)), None, 100, 100)
    with pytest.raises(ValueError, match=r"^OnlineLifter: .*float16; expected float32"):
        OnlineLifter(lifter, 100, 100)
    records = [{"frame_id": i, "width": 100, "height": 100, "instances": [
        {"keypoints": np.full((17, 2), 50.0).tolist(), "keypoint_scores": [1.0] * 17, "bbox": [0, 0, 99, 99],
         "bbox_score": 1.0}]} for i in range(3)]
    (tmp_path / "a.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"^lift: .*float16; expected float32 \(call model\.float\(\); "
                                         r"precision chooses"):
        lift(tmp_path / "a.json", lifter, tmp_path / "out", min_track_frames=1)
    assert not (tmp_path / "out").exists()


def test_the_3d_json_says_random_weights_when_either_model_had_them(assets: Assets, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """A trained lifter on a random 2D model's keypoints wrote ``random_weights: false`` beside a 2D json that said
    true: the 3D is as meaningless as its 2D. And a 2D model of another float type given to ``lift`` is refused
    naming ``pose2d``, before any model's note and before ``out`` is made."""
    from posetokens.inference.lifting import lift

    kw = {"weights": assets.w3d, "draw": False, "min_track_frames": 1, "max_frames": 3}
    lift(assets.clip, None, tmp_path / "r", pose2d=NAME_2D, pose2d_overrides=TINY_2D, **kw)
    assert json.loads((tmp_path / "r" / "clip.json").read_text())[0]["random_weights"] is True
    assert json.loads((tmp_path / "r" / "clip_3d.json").read_text())["random_weights"] is True
    lift(assets.clip, None, tmp_path / "t", pose2d_weights=assets.w2d, **kw)
    assert json.loads((tmp_path / "t" / "clip_3d.json").read_text())["random_weights"] is False
    capsys.readouterr()
    with pytest.raises(ValueError, match=rf"^pose2d: {NAME_2D}'s parameters are float64; expected float32 \(call "
                                         r"model\.float\(\)\)$"):
        lift(assets.clip, None, tmp_path / "d", pose2d=create_model(NAME_2D, **TINY_2D).double(), **kw)
    assert not (tmp_path / "d").exists() and "random weights" not in capsys.readouterr().err
