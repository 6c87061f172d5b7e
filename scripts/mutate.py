"""``make mutate``: plant one bug per claim in a throw-away copy of the repository and require the fast tests
that guard the claim to FAIL.

Each mutant is a named list of exact-text replacements in one file under ``src/``. Every anchor must occur
exactly once in the file, so a refactor that moves or rewrites the code stops this script (fix the anchor)
instead of silently turning the mutant into a no-op. The script copies ``src/``, ``tests/``, ``configs/`` and
``pyproject.toml`` into a temporary folder once (the working tree is never modified), runs every selected test
there without a mutant (they must pass, or a failure under a mutant would prove nothing), then for each mutant

1. writes the mutated file into the copy (it must compile);
2. runs ``pytest -x -m "not slow"`` on the mutant's selected fast tests in the copy, with ``PYTHONPATH`` set
   to the copy's ``src`` (ahead of the editable install) and a small plugin that stops the run unless
   ``posetokens`` is imported from the copy. Each run is a process forked from a server that imported torch and
   the other heavy third-party modules once (:data:`PRELOAD`; never ``posetokens`` or the tests), which saves
   most of pytest's start-up (82 mutants with ``--jobs 2``: 210 s against 304 s in fresh interpreters, the same
   first failures); ``--fresh`` runs each in a new interpreter instead;
3. counts the mutant **caught** when pytest exits 1 (tests ran and failed), **SURVIVED** when it exits 0, and
   **ERROR** otherwise (collection error, timeout, guard plugin refused);
4. restores the original file.

Output: one line per mutant (status, seconds, the first failing test), then ``N passed, N failed`` alone on a
line (a caught mutant is a pass). Exit status 0 only when every mutant is caught.

``python scripts/mutate.py [--list] [--only NAME ...] [--no-baseline] [--jobs N] [--keep] [--timeout S]``
(``--jobs 2``: two mutants at a time, each in its own copy; the first failures are the same as one at a time;
each run keeps torch's thread count, where ``make test``'s xdist workers run one thread each: at one thread the
``bf16-conv-mismatch-raised`` mutant survives, its convolution failing with another message);
``--only NAME --tests NODE ...`` runs other tests (all of them, no ``-x``) against a mutant, to see which catch it.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import functools
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("src", "tests", "configs", "scripts", "docs", "README.md", "pyproject.toml")  # docs, scripts: test_docs
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")


@dataclass(frozen=True)
class Mutant:
    """A planted bug: exact-text ``patches`` (old, new) applied to ``path`` and the fast ``tests`` that must fail."""

    name: str
    claim: str
    path: str
    patches: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "tracker-flat-sigmas", "the video tracker's OKS uses the built-in layout's evaluation sigmas (CrowdPose's, "
        "MPII's, whole-body's), not a flat 0.07",
        "src/posetokens/inference/tracking.py",
        (("            return np.asarray(meta.sigmas, np.float64)\n",
          "            return np.full(k, _DEFAULT_SIGMA)\n"),),
        ("tests/test_tracking.py::test_keypoint_similarity_uses_the_layouts_evaluation_sigmas",),
    ),
    Mutant(
        "overwrite-weights-path-stale", "a run started by --overwrite from the old run's own checkpoint records the "
        "file where it moved (archive/<time>/), not the new run's file at the old path",
        "src/posetokens/engine/trainer.py",
        (("            cfg.model.weights = moved\n", "            pass\n"),),
        ("tests/test_engine.py::test_overwrite_from_the_old_runs_own_checkpoint_records_where_it_moved",),
    ),
    Mutant(
        "optimize-false-runs-a-copy", "PoseEstimator(optimize=False) predicts with the model itself in float32 "
        "PyTorch, so its predictions follow the model's weights as they change",
        "src/posetokens/inference/api.py",
        (("        if optimize:\n            self.choice = parse_choice(",
          "        if True:\n            self.choice = parse_choice("),),
        ("tests/test_inference.py::test_optimize_false_runs_the_model_itself_as_its_weights_change",),
    ),
    Mutant(
        "out-beside-input-allowed", "infer and lift refuse an --out that holds the input file (a user's file named "
        "like an output beside it was replaced)",
        "src/posetokens/inference/api.py",
        (("    if same_file(path.parent, out):\n", "    if False:\n"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-image-into-its-own-folder]",
         "tests/test_errors_inference.py::test_bad_input[lift-video-into-its-own-folder-random-weights]"),
    ),
    Mutant(
        "onnx-inputs-undescribed", "an exported file says what its inputs hold (crop size, RGB, ImageNet's mean and "
        "std; a lifter's joints and window)",
        "src/posetokens/export/onnx.py",
        (("            description = {**description, \"inputs\": input_spec(m)}\n", ""),),
        ("tests/test_export.py::test_export_metadata_describes_the_model_it_was_given",),
    ),
    Mutant(
        "lift-2d-keypoints-checked-late", "lift refuses a 2D zoo model of another keypoint set before any model is "
        "built or says it has random weights",
        "src/posetokens/inference/lifting.py",
        (("        if k is not None and k != 17:\n", "        if False:\n"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-whole-body-2d-random-weights]",),
    ),
    Mutant(
        "export-metainfo-ignored", "export_onnx(model, out, metainfo=...) records the skeleton of a model built in "
        "Python",
        "src/posetokens/export/onnx.py",
        (("        if metainfo is not None:\n            given = get_metainfo(metainfo)\n",
          "        if False:\n            given = get_metainfo(metainfo)\n"),),
        ("tests/test_export.py::test_export_records_the_skeleton_of_a_model_built_in_python",),
    ),
    Mutant(
        "oks-nms-full-matrix", "OKS-NMS holds one OKS row at a time (the whole N x N x K tensor of 42,000 duplicates "
        "took 23 GB)",
        "src/posetokens/evaluation/functional.py",
        (("        order = rest[_oks_block(k, ar, sig, order[:1], rest, vis_thr)[0] <= thr]\n",
          "        order = rest[oks_matrix(k, ar, sig, vis_thr)[i][rest] <= thr]\n"),),
        ("tests/test_coco_eval.py::test_oks_nms_memory_grows_with_one_row",),
    ),
    Mutant(
        "other-category-trained", "annotations of a category that lists no keypoints (a 'dog') are a counted skip, "
        "not people to train on",
        "src/posetokens/data/datasets/coco_style.py",
        (("            if self._keypoint_categories is not None and int(cat) not in self._keypoint_categories:\n",
          "            if False:\n"),),
        ("tests/test_datasets.py::test_annotations_of_a_category_without_keypoints_are_no_people",),
    ),
    Mutant(
        "train-pictures-unchecked", "train looks for the pictures data.train_ann names before it starts: none there "
        "is refused, some missing said with their people",
        "src/posetokens/engine/data.py",
        (("    if not missing:\n        return\n", "    if True:\n        return\n"),),
        ("tests/test_errors_training.py::test_training_pictures_missing_from_their_folder_are_said_with_their_people",
         "tests/test_errors_training.py::test_a_start_that_saved_no_checkpoint_does_not_block_the_rerun"),
    ),
    Mutant(
        "max-steps-whole-run-unfinished", "a max_steps at the schedule's end is a whole run and writes final.pth",
        "src/posetokens/engine/trainer.py",
        (("if cfg.max_steps is not None and cfg.max_steps <= step < total_steps:",
          "if cfg.max_steps is not None and cfg.max_steps <= step:"),),
        ("tests/test_engine.py::test_resume_ends_with_identical_weights",),
    ),
    Mutant(
        "half-body-hrnet-upper-lists", "the HRNet-era half body puts every joint not in the lower body in the upper "
        "half (whole-body: face and hands too)",
        "src/posetokens/data/transforms.py",
        (('    if order == "mmpose":\n        upper = np.asarray(metainfo.upper_body_ids',
          '    if True:\n        upper = np.asarray(metainfo.upper_body_ids'),),
        ("tests/test_metainfo.py::test_wholebody",),
    ),
    Mutant(
        "triangulate-one-view", "a joint seen by one view of positive weight is refused",
        "src/posetokens/geometry.py",
        (("    if (views < 2).any():",
          "    if (views < 1).any():"),),
        ("tests/test_multiview.py::test_triangulation_rules_one_view_ties_and_dropped_views",),
    ),
    Mutant(
        "ransac-tie-larger-error", "a RANSAC tie in inliers goes to the smaller summed reprojection error",
        "src/posetokens/geometry.py",
        (("(count == best_count) & (total < best_err)",
          "(count == best_count) & (total > best_err)"),),
        ("tests/test_multiview.py::test_triangulation_rules_one_view_ties_and_dropped_views",),
    ),
    Mutant(
        "ransac-dropped-views-vote", "views of weight 0 are no RANSAC inliers",
        "src/posetokens/geometry.py",
        (("        mask = (err <= threshold) & (w > 0)",
          "        mask = err <= threshold"),),
        ("tests/test_multiview.py::test_triangulation_rules_one_view_ties_and_dropped_views",),
    ),
    Mutant(
        "quarter-top-row", "no quarter step on the border rows of a heatmap (y as x)",
        "src/posetokens/codecs/utils.py",
        (("inside = (x > lo) & (x < w - 1) & (y > lo) & (y < h - 1)",
          "inside = (x > lo) & (x < w - 1) & (y >= lo) & (y < h - 1)"),),
        ("tests/test_codecs.py::test_refine_quarter_borders_on_both_axes_and_the_far_edges",),
    ),
    Mutant(
        "quarter-last-column", "no quarter step on the last column of a heatmap",
        "src/posetokens/codecs/utils.py",
        (("inside = (x > lo) & (x < w - 1) & (y > lo) & (y < h - 1)",
          "inside = (x > lo) & (x < w) & (y > lo) & (y < h - 1)"),),
        ("tests/test_codecs.py::test_refine_quarter_borders_on_both_axes_and_the_far_edges",),
    ),
    Mutant(
        "flip-pair-negative-index", "a flip pair with a negative index is refused",
        "src/posetokens/codecs/utils.py",
        (("if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):",
          "if not (a < num_keypoints and b < num_keypoints):"),),
        ("tests/test_codecs.py::test_flip_pairs_out_of_range_are_refused_negative_ones_too",),
    ),
    Mutant(
        "heatmap-zero-map-found", "a heatmap whose maximum is 0 decodes to no keypoint",
        "src/posetokens/codecs/heatmap.py",
        (("        invalid = vals <= 0\n",
          "        invalid = vals < 0\n"),),
        ("tests/test_codecs.py::test_heatmap_decode_of_a_map_without_a_positive_maximum",),
    ),
    Mutant(
        "heatmap-nan-keypoint-trained", "a NaN keypoint gets no heatmap target",
        "src/posetokens/codecs/heatmap.py",
        (("weights = np.where((vis > 0) & ~outside & finite,",
          "weights = np.where((vis > 0) & ~outside,"),),
        ("tests/test_codecs.py::test_a_keypoint_that_is_not_a_number_gets_no_target",),
    ),
    Mutant(
        "simcc-nan-keypoint-trained", "a NaN keypoint gets no SimCC target",
        "src/posetokens/codecs/simcc.py",
        (("weights = np.where((vis > 0) & ~outside & finite,",
          "weights = np.where((vis > 0) & ~outside,"),),
        ("tests/test_codecs.py::test_a_keypoint_that_is_not_a_number_gets_no_target",),
    ),
    Mutant(
        "simcc-weight-box-short", "the SimCC weight box is [mu - 3 sigma, mu + 3 sigma + 1) bins",
        "src/posetokens/codecs/simcc.py",
        (("lo, hi, size = mu - radius, mu + radius + 1, self.num_bins",
          "lo, hi, size = mu - radius, mu + radius, self.num_bins"),),
        ("tests/test_codecs.py::test_simcc_weight_box_edges_labels_and_rounding_by_hand",),
    ),
    Mutant(
        "simcc-y-label-x-sigma", "SimCC y labels are normalised by the y sigma",
        "src/posetokens/codecs/simcc.py",
        (("ly /= self.sigma[1] * np.sqrt(2 * np.pi)",
          "ly /= self.sigma[0] * np.sqrt(2 * np.pi)"),),
        ("tests/test_codecs.py::test_simcc_weight_box_edges_labels_and_rounding_by_hand",),
    ),
    Mutant(
        "simcc-round-labels-floor", "round_labels centres on np.around(x * split), as MMPose",
        "src/posetokens/codecs/simcc.py",
        (("mu = np.round(mu)",
          "mu = np.floor(mu)"),),
        ("tests/test_codecs.py::test_simcc_weight_box_edges_labels_and_rounding_by_hand",),
    ),
    Mutant(
        "to-image-rotation-ignored", "keypoints_to_image undoes the rotation of the crop",
        "src/posetokens/protocols/codec.py",
        (("get_warp_matrix(c[i], s[i], float(r[i]), (iw, ih)",
          "get_warp_matrix(c[i], s[i], 0.0, (iw, ih)"),),
        ("tests/test_pipeline_codec.py::test_isotropic_heatmap_mapping_by_hand",),
    ),
    Mutant(
        "half-body-three-upper-refused", "the HRNet-era half body takes the upper half with 3 visible joints (> 2)",
        "src/posetokens/data/transforms.py",
        (("up_ok = n_up >= (need if",
          "up_ok = n_up > (need if"),),
        ("tests/test_pipeline_crop.py::test_hrnet_draw_order_and_boundaries",),
    ),
    Mutant(
        "mmpose-rotate-default", "the TopdownAugConfig defaults are MMPose 1.x ones (rotation 80)",
        "src/posetokens/data/transforms.py",
        (("    rotate_limit: float = 80.0\n",
          "    rotate_limit: float = 40.0\n"),),
        ("tests/test_pipeline_crop.py::test_mmpose_half_body_rules_and_defaults",),
    ),
    Mutant(
        "mmpose-upper-prob-inverted", "MMPose 1.x prefers the upper half with rand < 0.7",
        "src/posetokens/data/transforms.py",
        (("prefer_upper = rng.random() < aug.half_body_upper_prob",
          "prefer_upper = rng.random() > aug.half_body_upper_prob"),),
        ("tests/test_pipeline_crop.py::test_mmpose_half_body_rules_and_defaults",),
    ),
    Mutant(
        "mmpose-upper-min-three", "the MMPose 1.x upper half needs 2 visible joints",
        "src/posetokens/data/transforms.py",
        (("    half_body_min_upper_keypoints: int | None = 2\n",
          "    half_body_min_upper_keypoints: int | None = None\n"),),
        ("tests/test_pipeline_crop.py::test_mmpose_half_body_rules_and_defaults",),
    ),
    Mutant(
        "mmpose-neither-half-drawn", "MMPose 1.x draws no half body when neither half has enough joints",
        "src/posetokens/data/transforms.py",
        (("            if not (up_ok or n_lo >= need):\n                return None\n",
          ""),),
        ("tests/test_pipeline_crop.py::test_mmpose_half_body_rules_and_defaults",),
    ),
    Mutant(
        "track-max-age-one-short", "a track survives max_age frames without a match",
        "src/posetokens/inference/tracking.py",
        (("if self.frame - t.last_frame <= self.max_age]",
          "if self.frame - t.last_frame < self.max_age]"),),
        ("tests/test_tracking.py::test_a_track_lives_max_age_unmatched_frames",),
    ),
    Mutant(
        "track-oks-unscored-track-joints", "the OKS leaves out joints the track scored at most kpt_thr",
        "src/posetokens/inference/tracking.py",
        (("        both &= vis_a[:, None, :]",
          "        pass"),),
        ("tests/test_tracking.py::test_oks_counts_joints_scored_above_kpt_thr_on_both_sides",),
    ),
    Mutant(
        "track-oks-threshold-joints-counted", "the OKS leaves out pose joints scored exactly kpt_thr",
        "src/posetokens/inference/tracking.py",
        (("keypoint_scores > self.kpt_thr",
          "keypoint_scores >= self.kpt_thr"),),
        ("tests/test_tracking.py::test_oks_counts_joints_scored_above_kpt_thr_on_both_sides",),
    ),
    Mutant(
        "track-born-carried-velocity", "a track born on a carried frame takes no velocity from its pose-made box",
        "src/posetokens/inference/tracking.py",
        (("self.frame, int(measured), [self.frame]))",
          "self.frame, 1, [self.frame]))"),),
        ("tests/test_tracking.py::test_a_track_born_on_a_carried_frame_takes_no_velocity_from_it",),
    ),
    Mutant(
        "pose-box-threshold-joints-left-out", "a carried box holds the joints scored at least kpt_thr",
        "src/posetokens/inference/tracking.py",
        (("reshape(kp.shape[:2]) >= kpt_thr",
          "reshape(kp.shape[:2]) > kpt_thr"),),
        ("tests/test_tracking.py::test_pose_boxes_keep_joints_scored_at_the_threshold",),
    ),
    Mutant(
        "carried-dedup-strict", "two carried poses overlapping at exactly dedup_iou are one person",
        "src/posetokens/inference/tracking.py",
        (("dup = (iou[i] >= self.dedup_iou) & keep",
          "dup = (iou[i] > self.dedup_iou) & keep"),),
        ("tests/test_tracking.py::test_carried_boxes_drop_duplicates_at_dedup_iou_and_move_with_the_centre_velocity",),
    ),
    Mutant(
        "carried-box-size-velocity", "a carried box moves by the centre velocity",
        "src/posetokens/inference/tracking.py",
        (("vel = {t.track_id: t.velocity[:2]",
          "vel = {t.track_id: t.velocity[2:]"),),
        ("tests/test_tracking.py::test_carried_boxes_drop_duplicates_at_dedup_iou_and_move_with_the_centre_velocity",),
    ),
    Mutant(
        "one-euro-repeated-time-zero-step", "a decoder time that does not go forward counts as none",
        "src/posetokens/inference/filters.py",
        (("dt = np.where(elapsed > 0, elapsed, dt)",
          "dt = np.where(elapsed >= 0, elapsed, dt)"),),
        ("tests/test_filters.py::test_a_decoder_time_that_does_not_go_forward_counts_as_none",),
    ),
    Mutant(
        "filter-config-fps-overridden", "a filter config's own fps wins over the caller's",
        "src/posetokens/inference/filters.py",
        (("        rate = self.fps if self.fps is not None else fps\n        if rate is None:\n            raise ValueError(\"One-Euro filter: give the frame rate (fps); the input records none\")\n        return one_euro(",
          "        rate = fps if fps is not None else self.fps\n        if rate is None:\n            raise ValueError(\"One-Euro filter: give the frame rate (fps); the input records none\")\n        return one_euro("),),
        ("tests/test_filters.py::test_a_configs_own_frame_rate_wins_over_the_callers",),
    ),
    Mutant(
        "savgol-hold-invents-the-start", "savgol hold leaves samples before the first valid one unchanged",
        "src/posetokens/inference/filters.py",
        (("np.where((last >= 0)[..., None], held, src)",
          "held"),),
        ("tests/test_filters.py::test_savgol_hold_leaves_samples_before_the_first_valid_one_unchanged",),
    ),
    Mutant(
        "online-lookahead-newest-slot", "online seq2seq lookahead returns frame t from slot F - 1 - k",
        "src/posetokens/inference/online.py",
        (("pred[self.frames - 1 - (newest - index)]",
          "pred[self.frames - 1]"),),
        ("tests/test_online_lift.py::test_seq2seq_lookahead_returns_each_frame_from_its_own_slot",),
    ),
    Mutant(
        "online-held-on-another-frame", "online lifting says held on the frame that was held",
        "src/posetokens/inference/online.py",
        (("held = self.held[index - (self.count - len(self.held))]",
          "held = self.held[-1]"),),
        ("tests/test_online_lift.py::test_held_is_said_on_the_frame_that_was_held",),
    ),
    Mutant(
        "online-2d-filter-height-scale", "the online 2D filter measures speed in half widths",
        "src/posetokens/inference/online.py",
        (("filter2d.stream(fps, scale=self.width / 2)",
          "filter2d.stream(fps, scale=self.height / 2)"),),
        ("tests/test_online_lift.py::test_the_2d_filter_measures_speed_in_half_widths",),
    ),
    Mutant(
        "min-track-frames-rounded-down", "the default min_track_frames is half the clip rounded up",
        "src/posetokens/inference/lifting.py",
        (("return max(1, min(30, (num_frames + 1) // 2))",
          "return max(1, min(30, num_frames // 2))"),),
        ("tests/test_lift.py::test_default_min_track_frames_is_half_the_clip_rounded_up",),
    ),
    Mutant(
        "lift-2d-filter-height-scale", "lift filters 2D with scale = width / 2",
        "src/posetokens/inference/lifting.py",
        (("kp = smooth(kp, valid, fps=fps, scale=w / 2)",
          "kp = smooth(kp, valid, fps=fps, scale=h / 2)"),),
        ("tests/test_lift.py::test_lift_keeps_the_jsons_frame_ids_and_filters_2d_in_half_widths",),
    ),
    Mutant(
        "lift-frame-ids-renumbered", "the 3D json keeps the 2D json's frame ids",
        "src/posetokens/inference/lifting.py",
        (("frame_ids = [int(r.get(\"frame_id\", i)) for i, r in enumerate(records)]",
          "frame_ids = list(range(len(records)))"),),
        ("tests/test_lift.py::test_lift_keeps_the_jsons_frame_ids_and_filters_2d_in_half_widths",),
    ),
    Mutant(
        "archive-path-reused", "an archive folder made in the same second as two others is new",
        "src/posetokens/fileio.py",
        (("    while dest.exists():",
          "    if dest.exists():"),),
        ("tests/test_fileio.py::test_archive_paths_in_one_second_are_all_new",),
    ),
    Mutant(
        "two-outputs-one-path", "two outputs sharing one path are refused",
        "src/posetokens/fileio.py",
        (("        if key in seen:\n",
          "        if False:\n"),),
        ("tests/test_fileio.py::test_two_outputs_on_one_path_are_refused",),
    ),
    Mutant(
        "committed-file-private", "a committed output has the permissions of the umask",
        "src/posetokens/fileio.py",
        (("            os.chmod(self.tmp, 0o666 & ~current_umask())\n",
          ""),),
        ("tests/test_fileio.py::test_a_committed_file_has_the_umasks_permissions",),
    ),
    Mutant(
        "fixed-outputs-into-users-folder", "a fixed output name holding a folder with files is refused",
        "src/posetokens/fileio.py",
        (("if path.is_dir() and not any(path.iterdir()):",
          "if path.is_dir():"),),
        ("tests/test_fileio.py::test_fixed_outputs_refuse_a_users_folder_with_files",),
    ),
    Mutant(
        "same-file-misses-hard-links", "same_file is true for a hard link and for a path not made yet",
        "src/posetokens/fileio.py",
        (("return ka == kb or (ia is not None and ia == ib)",
          "return ka == kb and (ia is not None and ia == ib)"),),
        ("tests/test_fileio.py::test_same_file_by_any_name",),
    ),
    Mutant(
        "oks-vis-thr-prediction-scores-ignored",
        "with vis_thr, a predicted joint scored below it is left out of the OKS",
        "src/posetokens/evaluation/functional.py",
        (("        if a.shape[-1] >= 3:",
          "        if a.shape[-1] > 3:"),),
        ("tests/test_coco_eval.py::test_oks_with_vis_thr_reads_the_scores_of_both_sides",),
    ),
    Mutant(
        "nms-oks-vis-thr-one-side", "with vis_thr, OKS-NMS reads the scores of both instances",
        "src/posetokens/evaluation/functional.py",
        (("& (b[..., 2] > vis_thr)[None, :, :]",
          "& (a[..., 2] > vis_thr)[:, None, :]"),),
        ("tests/test_coco_eval.py::test_oks_with_vis_thr_reads_the_scores_of_both_sides",),
    ),
    Mutant(
        "keypoint-extent-plus-one", "the keypoint extent area is ptp(x) * ptp(y), as pycocotools loadRes",
        "src/posetokens/evaluation/functional.py",
        (("out = np.ptp(k[..., 0], axis=-1) * np.ptp(k[..., 1], axis=-1)",
          "out = (np.ptp(k[..., 0], axis=-1) + 1) * (np.ptp(k[..., 1], axis=-1) + 1)"),),
        ("tests/test_coco_eval.py::test_nms_areas_and_the_threshold_by_hand",),
    ),
    Mutant(
        "nms-auto-area-after-box", "auto OKS-NMS area takes the result's area before its box",
        "src/posetokens/evaluation/functional.py",
        (("    if inst.get(\"area\") is not None:",
          "    if inst.get(\"area\") is not None and inst.get(\"bbox\") is None:"),),
        ("tests/test_coco_eval.py::test_nms_areas_and_the_threshold_by_hand",),
    ),
    Mutant(
        "nms-box-area-zero-accepted", "nms_area box refuses an area of 0",
        "src/posetokens/evaluation/functional.py",
        (("float(a) <= 0:",
          "float(a) < 0:"),),
        ("tests/test_coco_eval.py::test_nms_areas_and_the_threshold_by_hand",),
    ),
    Mutant(
        "nms-threshold-equal-suppressed", "OKS-NMS keeps an instance whose OKS equals the threshold",
        "src/posetokens/evaluation/functional.py",
        (("vis_thr)[0] <= thr]",
          "vis_thr)[0] < thr]"),),
        ("tests/test_coco_eval.py::test_nms_areas_and_the_threshold_by_hand",),
    ),
    Mutant(
        "pck-axis-norm-swapped", "a per-axis PCK normaliser divides x by the width and y by the height",
        "src/posetokens/evaluation/functional.py",
        (("/ safe[:, None, :]",
          "/ safe[:, None, ::-1]"),),
        ("tests/test_pck.py::test_pck_with_a_per_axis_normaliser_divides_x_by_width_and_y_by_height",),
    ),
    Mutant(
        "mpii-group-count-weighted", "an MPII group is the plain mean of its left and right joints",
        "src/posetokens/evaluation/functional.py",
        (("out[name] = float(np.mean(vals)) if vals else -1.0",
          "out[name] = float(np.average(vals, weights=[count[i] for i in idx if count[i] > 0])) if vals else -1.0"),),
        ("tests/test_pck.py::test_mpii_groups_are_the_plain_mean_of_left_and_right",),
    ),
    Mutant(
        "crowdpose-scale-factor", "CrowdPose scores OKS with the object scale 0.53 w h",
        "src/posetokens/evaluation/coco.py",
        (("_NO_AREA_FACTOR = 0.53 ",
          "_NO_AREA_FACTOR = 1.0 "),),
        ("tests/test_coco_eval.py::test_crowdpose_numbers_against_pycocotools_with_its_rules",),
    ),
    Mutant(
        "crowdpose-easy-split", "CrowdPose APE is the images with crowdIndex below 0.2",
        "src/posetokens/evaluation/coco.py",
        (("\"APE\": [i for i, c in crowd.items() if c < lo],",
          "\"APE\": [i for i, c in crowd.items() if c >= hi],"),),
        ("tests/test_coco_eval.py::test_crowdpose_numbers_against_pycocotools_with_its_rules",),
    ),
    Mutant(
        "crowdpose-ap75-at-50", "CrowdPose AP75 is read at OKS 0.75",
        "src/posetokens/evaluation/coco.py",
        (("\"AP75\": _summary_value(ev.eval, ev.params, True, 0.75),",
          "\"AP75\": _summary_value(ev.eval, ev.params, True, 0.5),"),),
        ("tests/test_coco_eval.py::test_crowdpose_numbers_against_pycocotools_with_its_rules",),
    ),
    Mutant(
        "crowdpose-max-dets", "CrowdPose keeps at most 20 detections per image",
        "src/posetokens/evaluation/coco.py",
        (("ev.params.maxDets = [20]",
          "ev.params.maxDets = [100]"),),
        ("tests/test_coco_eval.py::test_crowdpose_numbers_against_pycocotools_with_its_rules",),
    ),
    Mutant(
        "protocol-backend-dropped", "evaluate_keypoints scores with the rule's COCOeval backend",
        "src/posetokens/evaluation/coco.py",
        (("coco_backend=ev.coco_backend, source=source)",
          "source=source)"),),
        ("tests/test_coco_eval.py::test_protocol_backends_categories_and_the_xtcocotools_flags",),
    ),
    Mutant(
        "nms-across-categories", "OKS-NMS runs per image and category",
        "src/posetokens/evaluation/coco.py",
        (("groups[(int(r[\"image_id\"]), int(r.get(\"category_id\", 1)))]",
          "groups[(int(r[\"image_id\"]), 1)]"),),
        ("tests/test_coco_eval.py::test_protocol_backends_categories_and_the_xtcocotools_flags",),
    ),
    Mutant(
        "xtcocotools-flag-one-ignored", "xtcocotools counts a person whose joints are flagged 1",
        "src/posetokens/evaluation/coco.py",
        (("ann[\"num_keypoints\"] = int(np.count_nonzero(np.asarray(ann[\"keypoints\"][2::3]) > 0))",
          "ann[\"num_keypoints\"] = int(np.count_nonzero(np.asarray(ann[\"keypoints\"][2::3]) > 1))"),),
        ("tests/test_coco_eval.py::test_protocol_backends_categories_and_the_xtcocotools_flags",),
    ),
    Mutant(
        "hand-mean-with-undefined", "the whole-body hand mean leaves out a side that is -1",
        "src/posetokens/evaluation/wholebody.py",
        (("for v in (left[name], right[name]) if v > -1]",
          "for v in (left[name], right[name])]"),),
        ("tests/test_wholebody_eval.py::test_hand_leaves_out_an_undefined_side",),
    ),
    Mutant(
        "accumulator-target-root-kept", "the 3D accumulator zeroes the target root too",
        "src/posetokens/evaluation/pose3d.py",
        (("            t[..., self.root_index, :] = 0.0\n",
          ""),),
        ("tests/test_pose3d_metrics.py::test_action_average_and_zero_root",),
    ),
    Mutant(
        "procrustes-scale-without-reflection-fix", "the Procrustes scale takes the reflection fix",
        "src/posetokens/evaluation/pose3d.py",
        (("    s[..., 2] *= d\n",
          ""),),
        ("tests/test_pose3d_metrics.py::test_p_mpjpe_of_a_mirrored_pose_equals_videopose3d",),
    ),
    Mutant(
        "mpjve-clip-over-f", "a clip's MPJVE is the mean over its F - 1 velocities",
        "src/posetokens/evaluation/pose3d.py",
        (("self._clip_values[m].append(per_frame.mean(axis=1))",
          "self._clip_values[m].append(per_frame.sum(axis=1) / p.shape[1])"),),
        ("tests/test_pose3d_metrics.py::test_mpjve_of_a_clip_is_the_mean_over_its_frame_differences",),
    ),
    Mutant(
        "hot-predicted-root-kept", "HoT's protocol zeroes the predicted root",
        "src/posetokens/evaluation/h36m_protocol.py",
        (("zero_root(np.asarray(pred, np.float64), root), zero_root(",
          "np.asarray(pred, np.float64), zero_root("),),
        ("tests/test_pose3d_metrics.py::test_evaluate_hot_zeroes_the_predicted_root_and_averages_p2_over_batches_of_four",),
    ),
    Mutant(
        "hot-p2-batch-default", "evaluate_hot averages P2 over HoT's test batch of 4 by default",
        "src/posetokens/evaluation/h36m_protocol.py",
        (("def evaluate_hot(pred: Any, target: Any, actions: Sequence[str], *, p2_batch_size: int = 4,",
          "def evaluate_hot(pred: Any, target: Any, actions: Sequence[str], *, p2_batch_size: int = 0,"),),
        ("tests/test_pose3d_metrics.py::test_evaluate_hot_zeroes_the_predicted_root_and_averages_p2_over_batches_of_four",),
    ),
    Mutant(
        "pct-backend-pycocotools", "PCT scores with xtcocotools",
        "src/posetokens/protocols/__init__.py",
        (("coco_backend=\"xtcocotools\", pckh_mean01_thr=0.11)",
          "coco_backend=\"pycocotools\", pckh_mean01_thr=0.11)"),),
        ("tests/test_coco_eval.py::test_protocol_backends_categories_and_the_xtcocotools_flags",),
    ),
    Mutant(
        "mpii-rotation-of-coco", "the TokenPose MPII preset rotates with std 30 up to 60",
        "src/posetokens/protocols/__init__.py",
        (("rotate_limit=60.0,\n    rotate_std=30.0)",
          "rotate_limit=90.0,\n    rotate_std=45.0)"),),
        ("tests/test_protocols.py::test_mpii_and_mmpose_values",),
    ),
    Mutant(
        "mmpose-mean01-at-011", "MMPose reads PCKh Mean@0.1 at 0.1",
        "src/posetokens/protocols/__init__.py",
        (("coco_backend=\"xtcocotools\", pckh_mean01_thr=0.10)",
          "coco_backend=\"xtcocotools\", pckh_mean01_thr=0.11)"),),
        ("tests/test_protocols.py::test_mpii_and_mmpose_values",),
    ),
    Mutant(
        "protocol-bool-as-number", "a protocol override refuses a bool where a number goes",
        "src/posetokens/protocols/__init__.py",
        (("        return isinstance(value, (int, float)) and not isinstance(value, bool)",
          "        return isinstance(value, (int, float))"),),
        ("tests/test_protocols.py::test_override_values_are_type_checked",),
    ),
    Mutant(
        "float-box-rounded", "the float_box weight rule tests the sub-pixel mean itself (MMPose DARK target)",
        "src/posetokens/codecs/heatmap.py",
        (("            ul, br = mu - radius, mu + radius + 1\n",
          "            ul, br = rounded - radius, rounded + radius + 1\n"),),
        ("tests/test_codecs.py::test_float_box_weights_are_mmposes_dark_target_rule",),
    ),
    Mutant(
        "mmpose-target-floor-box", "the mmpose protocol weights its DARK target by the box about the sub-pixel mean",
        "src/posetokens/protocols/__init__.py",
        (("full_gaussian=True, sigma=2.0, weight_rule=\"float_box\"),",
          "full_gaussian=True, sigma=2.0, weight_rule=\"floor_box\"),"),),
        ("tests/test_protocols.py::test_mpii_and_mmpose_values",),
    ),
    Mutant(
        "lift-3d-filter-across-gaps", "lift filters the 3D with the track's validity mask (a gap restarts it)",
        "src/posetokens/inference/lifting.py",
        (("pose3d = smooth(pose3d, valid, fps=fps)  # 3D metres",
          "pose3d = smooth(pose3d, None, fps=fps)  # 3D metres"),),
        ("tests/test_lift.py::test_lift_filters_the_3d_with_the_tracks_gaps",),
    ),
    Mutant(
        "detection-at-threshold-dropped", "a detection scored exactly bbox_thr is kept",
        "src/posetokens/inference/api.py",
        (("or float(score) < score_thr:",
          "or float(score) <= score_thr:"),),
        ("tests/test_inference.py::test_detections_keep_a_box_at_the_threshold_and_only_people",),
    ),
    Mutant(
        "detection-category-ignored", "detections of another category than the person are dropped",
        "src/posetokens/inference/api.py",
        (("det.get(\"category_id\", category_id) != category_id or ",
          ""),),
        ("tests/test_inference.py::test_detections_keep_a_box_at_the_threshold_and_only_people",),
    ),
    Mutant(
        "thin-box-refused", "a box at least a pixel long on one side is accepted",
        "src/posetokens/inference/api.py",
        (("np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < 1",
          "np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < 1"),),
        ("tests/test_inference.py::test_box_edges_by_hand",),
    ),
    Mutant(
        "box-ending-on-the-edge-inside", "a box that ends on the left or top edge of the image is outside it",
        "src/posetokens/inference/api.py",
        (("return (b[:, 2] <= 0) | (b[:, 3] <= 0)",
          "return (b[:, 2] < 0) | (b[:, 3] < 0)"),),
        ("tests/test_inference.py::test_box_edges_by_hand",),
    ),
    Mutant(
        "names-in-first-image-only", "every image record of a folder run names its keypoints",
        "src/posetokens/inference/api.py",
        (("**(names if src.kind == \"images\" or not frames else {})",
          "**(names if not frames else {})"),),
        ("tests/test_inference.py::test_a_folder_run_names_the_keypoints_in_every_record_and_an_empty_run_writes_its_coco_results",),
    ),
    Mutant(
        "empty-run-coco-results-unwritten", "a run that finds nobody writes its coco results as []",
        "src/posetokens/inference/api.py",
        (("if coco_results is not None and (coco or stopped is None):",
          "if coco_results is not None and coco:"),),
        ("tests/test_inference.py::test_a_folder_run_names_the_keypoints_in_every_record_and_an_empty_run_writes_its_coco_results",),
    ),
    Mutant(
        "tokens-every-shifted", "tokens pictures are for frames 0, n, 2n",
        "src/posetokens/inference/api.py",
        (("res.frame_id % max(1, tokens_every) == 0",
          "(res.frame_id + 1) % max(1, tokens_every) == 0"),),
        ("tests/test_inference.py::test_a_video_shows_the_tokens_of_frame_zero_and_every_nth",),
    ),
    Mutant(
        "infer-fixed-kpt-thr", "infer draws at the model's default_kpt_thr",
        "src/posetokens/inference/api.py",
        (("kpt_thr = self.default_kpt_thr if kpt_thr is None else kpt_thr\n        if not",
          "kpt_thr = 0.3 if kpt_thr is None else kpt_thr\n        if not"),),
        ("tests/test_inference.py::test_infer_draws_at_the_models_own_keypoint_threshold",),
    ),
    Mutant(
        "checkpoint-override-conflict-unchecked", "an override that contradicts the checkpoint is refused",
        "src/posetokens/checkpoint.py",
        (("if k in kw and _plain(kw[k]) != _plain(v):",
          "if False:"),),
        ("tests/test_protocols.py::test_a_checkpoint_refuses_a_conflicting_override_and_a_reordered_builtin_layout",),
    ),
    Mutant(
        "checkpoint-builtin-order-unchecked", "a stored built-in layout in another keypoint order is refused",
        "src/posetokens/checkpoint.py",
        (("if list(metainfo.keypoint_names) != list(mi.get(\"keypoint_names\", metainfo.keypoint_names)):",
          "if False:"),),
        ("tests/test_protocols.py::test_a_checkpoint_refuses_a_conflicting_override_and_a_reordered_builtin_layout",),
    ),
    Mutant(
        "unwrap-prefers-raw-weights", "a checkpoint's EMA copy is loaded before its raw weights",
        "src/posetokens/convert.py",
        (("_CONTAINER_KEYS = (\"state_dict_ema\", \"ema\", \"best_state_dict\", \"state_dict\", \"model\",",
          "_CONTAINER_KEYS = (\"best_state_dict\", \"state_dict\", \"model\", \"state_dict_ema\", \"ema\","),),
        ("tests/test_protocols.py::test_converted_official_files_record_their_own_protocol",),
    ),
    Mutant(
        "convert-records-tokenpose", "convert stores the zoo model's own protocol",
        "src/posetokens/convert.py",
        (("describe(name, {}, get_protocol(default_protocol(name)), metainfo)",
          "describe(name, {}, get_protocol(\"tokenpose\"), metainfo)"),),
        ("tests/test_protocols.py::test_converted_official_files_record_their_own_protocol",),
    ),
    Mutant(
        "detection-at-det-score-thr-dropped", "a val detection scored exactly det_score_thr is kept",
        "src/posetokens/data/datasets/coco_style.py",
        (("if score < self.det_score_thr:",
          "if score <= self.det_score_thr:"),),
        ("tests/test_datasets.py::test_detection_and_joint_edges_by_hand",),
    ),
    Mutant(
        "zero-height-detection-kept", "a val detection of zero width or height is skipped",
        "src/posetokens/data/datasets/coco_style.py",
        (("            if bbox[2] <= 0 or bbox[3] <= 0:\n                self._count(self._skipped, \"zero_area_bbox\")",
          "            if bbox[2] <= 0 and bbox[3] <= 0:\n                self._count(self._skipped, \"zero_area_bbox\")"),),
        ("tests/test_datasets.py::test_detection_and_joint_edges_by_hand",),
    ),
    Mutant(
        "joint-at-width-inside", "under MMPose's rule a joint at x = W is outside the image",
        "src/posetokens/data/datasets/coco_style.py",
        (("(x >= w) | (y >= h)",
          "(x > w) | (y > h)"),),
        ("tests/test_datasets.py::test_detection_and_joint_edges_by_hand",),
    ),
    Mutant(
        "mmpose0-missing-num-keypoints-skipped", "under PCT's rule only an explicit num_keypoints 0 skips a person",
        "src/posetokens/data/datasets/coco_style.py",
        (("ann.get(\"num_keypoints\", 1) == 0",
          "ann.get(\"num_keypoints\", 0) == 0"),),
        ("tests/test_datasets.py::test_detection_and_joint_edges_by_hand",),
    ),
    Mutant(
        "mpii-missing-joints-vis-invisible", "an MPII entry without joints_vis has every joint visible",
        "src/posetokens/data/datasets/mpii.py",
        (("ann.get(\"joints_vis\", np.ones(k))",
          "ann.get(\"joints_vis\", np.zeros(k))"),),
        ("tests/test_datasets.py::test_mpii_without_joints_vis_counts_every_joint",),
    ),
    Mutant(
        "val-det-score-thr-dropped", "data.det_score_thr filters the val detections",
        "src/posetokens/engine/data.py",
        (("det_file=det, det_score_thr=cfg.det_score_thr,",
          "det_file=det,"),),
        ("tests/test_datasets.py::test_build_dataset_passes_the_protocols_box_rule_and_the_detection_threshold",),
    ),
    Mutant(
        "dataset-gt-clean-dropped", "the protocol's GT box rule cleans the training boxes",
        "src/posetokens/engine/data.py",
        (("skip_bad_images=cfg.skip_bad_images, gt_clean=protocol.box.gt_clean,",
          "skip_bad_images=cfg.skip_bad_images,"),),
        ("tests/test_datasets.py::test_build_dataset_passes_the_protocols_box_rule_and_the_detection_threshold",),
    ),
    Mutant(
        "h36m-camera-1002-as-1000", "two H36M cameras are 1000 x 1002",
        "src/posetokens/data/h36m.py",
        (("    \"54138969\": (1000, 1002),",
          "    \"54138969\": (1000, 1000),"),),
        ("tests/test_h36m.py::test_camera_resolutions_are_videopose3ds",),
    ),
    Mutant(
        "flip-copy-off-by-one", "the flip copies are windows num_windows.. exactly",
        "src/posetokens/data/h36m.py",
        (("flipped = index >= self.num_windows",
          "flipped = index > self.num_windows"),),
        ("tests/test_h36m.py::test_dataset_seq2seq_items_and_flip",),
    ),
    Mutant(
        "recipe-flip-false-ignored", "data.flip_test=false turns the lifting flip test off",
        "src/posetokens/engine/lifting.py",
        (("if getattr(cfg, \"flip_test\", None) is not None:",
          "if getattr(cfg, \"flip_test\", None):"),),
        ("tests/test_h36m.py::test_a_recipe_can_turn_the_lifting_flip_test_off",),
    ),
    Mutant(
        "augmentation-same-every-epoch", "an item's augmentation draws depend on the epoch",
        "src/posetokens/engine/data.py",
        (("np.random.default_rng([self.seed, self.epoch, idx])",
          "np.random.default_rng([self.seed, idx])"),),
        ("tests/test_engine.py::test_augmentation_draws_depend_on_the_epoch",),
    ),
    Mutant(
        "motion-previous-frame-only", "a frame's motion score adds the steps to its previous and its next frame",
        "src/posetokens/layers/pruning.py",
        (("return torch.cat((pad, step), dim=1) + torch.cat((step, pad), dim=1)",
          "return torch.cat((pad, step), dim=1) + torch.cat((pad, step), dim=1)"),),
        ("tests/test_pruning_stages.py::test_motion_score_by_hand",),
    ),
    Mutant(
        "motion-norm-over-joints", "the motion score takes each joint's displacement length, then the mean over joints",
        "src/posetokens/layers/pruning.py",
        (("step = (poses[:, 1:] - poses[:, :-1]).norm(dim=-1).mean(dim=-1)",
          "step = (poses[:, 1:] - poses[:, :-1]).norm(dim=-2).mean(dim=-1)"),),
        ("tests/test_pruning_stages.py::test_motion_score_by_hand",),
    ),
    Mutant(
        "uniform-centre-replaces-first", "uniform frames with a centre: the last frame gives way to it",
        "src/posetokens/layers/pruning.py",
        (("swapped = torch.cat((idx[:, :-1], col), 1)",
          "swapped = torch.cat((idx[:, 1:], col), 1)"),),
        ("tests/test_pruning_stages.py::test_recovery_by_interpolation_and_uniform_frames_by_hand",),
    ),
    Mutant(
        "nearest-tie-to-later", "nearest recovery gives a tie to the earlier kept frame",
        "src/posetokens/layers/pruning.py",
        (("w = (w > 0.5).to(tokens.dtype)",
          "w = (w >= 0.5).to(tokens.dtype)"),),
        ("tests/test_pruning_stages.py::test_recovery_by_interpolation_and_uniform_frames_by_hand",),
    ),
    Mutant(
        "linear-span-plus-one", "linear recovery interpolates over the span between kept frames",
        "src/posetokens/layers/pruning.py",
        (("span = (right_f - left_f).clamp(min=1)",
          "span = (right_f - left_f + 1).clamp(min=1)"),),
        ("tests/test_pruning_stages.py::test_recovery_by_interpolation_and_uniform_frames_by_hand",),
    ),
    Mutant(
        "gather-out-of-range-read", "gathering a token out of range raises",
        "src/posetokens/layers/pruning.py",
        (("    flat = flat.masked_fill((idx < 0) | (idx >= n), b * n)",
          "    pass"),),
        ("tests/test_pruning_stages.py::test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults",),
    ),
    Mutant(
        "recovery-last-queries", "a clip shorter than the model takes the first recovery queries",
        "src/posetokens/layers/pruning.py",
        (("self.queries[:, :num_frames]",
          "self.queries[:, -num_frames:]"),),
        ("tests/test_pruning_stages.py::test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults",),
    ),
    Mutant(
        "stage-pos-embed-flag-ignored", "pos_embed=False gives later stages no position embedding",
        "src/posetokens/layers/pruning.py",
        (("if not (cfg.extra_stages and cfg.pos_embed):",
          "if not cfg.extra_stages:"),),
        ("tests/test_pruning_stages.py::test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults",),
    ),
    Mutant(
        "cluster-k-three", "the frame cluster's k is 2 (spec hot.md)",
        "src/posetokens/layers/pruning.py",
        (("    k: int = 2\n",
          "    k: int = 3\n"),),
        ("tests/test_pruning_stages.py::test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults",),
    ),
    Mutant(
        "true-macs-leaves-frozen", "counting MACs leaves the model's parameters trainable",
        "src/posetokens/engine/flops.py",
        (("            p.requires_grad_(True)",
          "            pass"),),
        ("tests/test_pruning_stages.py::test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults",),
    ),
    Mutant(
        "hrnet-rule-v-only", "the HRNet-era rules skip a person only when every keypoint value is 0 (coordinates too)",
        "src/posetokens/data/datasets/coco_style.py",
        (("if kpts.max() == 0 or",
          "if kpts[:, 2].max() == 0 or"),),
        ("tests/test_datasets.py::test_official_rules_skip_only_all_zero_keypoints",),
    ),
    Mutant(
        "det-without-category-dropped", "a detection without category_id is of the category asked for",
        "src/posetokens/data/datasets/coco_style.py",
        (("int(det.get(\"category_id\", category_id)) != category_id",
          "int(det.get(\"category_id\", 1)) != category_id"),),
        ("tests/test_datasets.py::test_detections_of_the_asked_category_only",),
    ),
    Mutant(
        "det-without-category-labelled-1", "a detection without category_id is labelled the category asked for",
        "src/posetokens/data/datasets/coco_style.py",
        (("int(det.get(\"category_id\", 1 if category_id is None else category_id))",
          "int(det.get(\"category_id\", 1))"),),
        ("tests/test_datasets.py::test_detections_of_the_asked_category_only",),
    ),
    Mutant(
        "mpii-centre-check-0-based", "MPII's centre moves down unless its 1-based x is -1 (tested before c -= 1)",
        "src/posetokens/data/datasets/mpii.py",
        (("            c = center.copy()\n            if c[0] != -1:\n                c[1] += 15.0 / MPII_PIXEL_STD * side\n            c -= 1.0\n",
          "            c = center.copy() - 1.0\n            if c[0] != -1:\n                c[1] += 15.0 / MPII_PIXEL_STD * side\n"),),
        ("tests/test_datasets.py::test_mpii_centre_shift_tests_the_1_based_centre",),
    ),
    Mutant(
        "sampler-seed-plus-epoch", "nearby seeds never share an epoch's data order",
        "src/posetokens/engine/data.py",
        (("manual_seed(self.seed * 100003 + self.epoch)",
          "manual_seed(self.seed + self.epoch)"),),
        ("tests/test_engine.py::test_step_sampler_seeds_never_share_an_epoch_order",),
    ),
    Mutant(
        "h36m-npz-frames-unsorted", "MMPose's H36M npz rows make clips in frame-number order",
        "src/posetokens/data/h36m.py",
        (("order = np.lexsort((frame_no, keys))",
          "order = np.argsort(keys, kind=\"stable\")"),),
        ("tests/test_h36m.py::test_mmpose_rows_in_any_order_make_clips_in_frame_order",),
    ),
    Mutant(
        "received-over-keys", "the attention a frame received is the mean over heads and queries",
        "src/posetokens/layers/attention.py",
        (("attn.mean(dim=(1, 2))",
          "attn.mean(dim=(1, 3))"),),
        ("tests/test_pruning_stages.py::test_attention_received_by_hand",),
    ),
    Mutant(
        "received-first-query", "the attention a frame received is the mean over all queries",
        "src/posetokens/layers/attention.py",
        (("attn.mean(dim=(1, 2))",
          "attn.mean(dim=1)[:, 0]"),),
        ("tests/test_pruning_stages.py::test_attention_received_by_hand",),
    ),
    Mutant(
        "readme-macs-recovery-once", "the README counter counts the recovering attention's queries once per sequence",
        "src/posetokens/engine/flops.py",
        (("            total += q.in_features * q.out_features * output.shape[1] * (output.shape[0] - 1)\n",
          "            pass\n"),),
        ("tests/test_motionagformer.py::test_readme_mac_rules_by_hand",),
    ),
    Mutant(
        "readme-macs-mul-inplace", "the README counter counts in-place multiplies",
        "src/posetokens/engine/flops.py",
        (("in (torch.ops.aten.mul, torch.ops.aten.mul_)",
          "in (torch.ops.aten.mul,)"),),
        ("tests/test_motionagformer.py::test_readme_mac_rules_by_hand",),
    ),
    Mutant(
        "readme-macs-plain-norm", "the README counter counts only norms with weights",
        "src/posetokens/engine/flops.py",
        (("elif getattr(module, \"weight\", None) is not None:  # affine",
          "else:  # affine"),),
        ("tests/test_motionagformer.py::test_readme_mac_rules_by_hand",),
    ),
    Mutant(
        "readme-macs-fused-attention", "the README counter counts attention's scaling (explicit path)",
        "src/posetokens/engine/flops.py",
        (("    with use_fused_attn(False), muls:\n",
          "    with muls:\n"),),
        ("tests/test_motionagformer.py::test_readme_mac_rules_by_hand",),
    ),
    Mutant(
        "partial-share-whole-tensor", "a partial load's share of values counts only the keypoint rows it took",
        "src/posetokens/convert.py",
        (("taken_values += value.numel() // mine.shape[axis] * len(picked)",
          "taken_values += value.numel()"),),
        ("tests/test_engine.py::test_an_official_file_starts_a_model_of_another_input_size_once_converted",),
    ),
    Mutant(
        "call-smooth-ignored", "est(video, smooth=...) smooths each track as infer does",
        "src/posetokens/inference/api.py",
        (("return self._smoothed(self.run_frames(frames, box_fn, show_tokens), smooth, src, self.default_kpt_thr)",
          "return self.run_frames(frames, box_fn, show_tokens)"),),
        ("tests/test_video_pipeline.py::test_infer_det_every_runs_the_boxes_on_every_nth_frame",),
    ),
    Mutant(
        "call-det-every-ignored", "est(video, det_every=N) runs the boxes every N frames",
        "src/posetokens/inference/api.py",
        (("box_fn = self._tracked(base_fn, src, det_every, self.default_kpt_thr)",
          "box_fn = self._tracked(base_fn, src, 1, self.default_kpt_thr)"),),
        ("tests/test_video_pipeline.py::test_infer_det_every_runs_the_boxes_on_every_nth_frame",),
    ),
    Mutant(
        "named-output-over-a-users-file", "--coco-results / --mmpose-preds replace only an earlier run's file",
        "src/posetokens/inference/api.py",
        (("    for path, what, head, kind in replaced:\n        check_replaceable(path, what, head, kind)\n",
          "    for path, what, head, kind in replaced:\n        pass\n"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-coco-results-over-a-users-file]",),
    ),
    Mutant(
        "results-head-any-list", "a detections file (a JSON list of boxes) is not a results file to replace",
        "src/posetokens/fileio.py",
        (("    return rest.startswith(\"]\") or (rest.startswith(\"{\") and \"keypoints\" in first_object_keys(rest))",
          "    return True"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-coco-results-over-a-detections-file]",),
    ),
    Mutant(
        "mkv-late-start-truncated", "an MKV whose times start late is whole (its stated duration counts from time 0)",
        "src/posetokens/inference/api.py",
        (("lead = max(container.start_time or 0, 0) if \"matroska\"",
          "lead = 0 if \"matroska\""),),
        ("tests/test_video_io.py::test_a_video_whose_times_start_late_is_whole",),
    ),
    Mutant(
        "random-after-round-trip-silent", "a model cast through float16 and back still says it has random weights",
        "src/posetokens/registry.py",
        (("for via in (b.dtype, torch.float16,",
          "for via in (b.dtype,"),),
        ("tests/test_errors_inference.py::test_a_built_model_with_random_weights_says_so_once",),
    ),
    Mutant(
        "float64-model-not-checked", "a float64 model given to PoseEstimator is refused in one line",
        "src/posetokens/inference/precision.py",
        (("                   - {\"float32\"})\n    if other:\n",
          "                   - {\"float32\"})\n    if False:\n"),),
        ("tests/test_errors_inference.py::test_a_model_of_another_float_type_is_refused_in_one_line",),
    ),
    Mutant(
        "records-without-provenance", "infer's records say which weights made them and whether they were random",
        "src/posetokens/inference/api.py",
        (("\"weights\": None if self.weights is None else str(self.weights), \"random_weights\": self.random_weights}",
          "\"weights\": None, \"random_weights\": False}"),),
        ("tests/test_inference.py::test_a_folder_run_names_the_keypoints_in_every_record_and_an_empty_run_writes_its_coco_results",),
    ),
    Mutant(
        "lift-online-text-taken", "lift(online='yes') is refused, not read as True",
        "src/posetokens/inference/lifting.py",
        (("online, draw = check_flag(online, option(\"online\")), check_flag(draw, option(\"draw\"))",
          "online, draw = online, draw"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-online-text]",),
    ),
    Mutant(
        "filter-flag-unnamed", "a bad --filter-* value names the flag that set it",
        "src/posetokens/inference/filters.py",
        (("        raise ValueError(f\"{e} ({', '.join(at_fault) or '--filter ' + name})\") from None\n",
          "        raise\n"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-filter-beta-negative]",),
    ),
    Mutant(
        "lift-max-frames-late", "lift's --max-frames / det_every are checked before any model is built",
        "src/posetokens/inference/lifting.py",
        (("    if max_frames is not None:  # both before any model is built or says a word\n        max_frames = check_count(",
          "    if False:  # both before any model is built or says a word\n        max_frames = check_count("),),
        ("tests/test_errors_inference.py::test_bad_input[lift-max-frames-0-api]",),
    ),
    Mutant(
        "detections-past-the-end-silent", "detections naming frames past a video's end are said (with the from-1 hint)",
        "src/posetokens/inference/api.py",
        (("past = sorted(i for i in self.ids if i >= len(source)) if source.kind == \"video\" and len(source) else []",
          "past = []"),),
        ("tests/test_errors_inference.py::test_bad_input[detections-past-the-end-of-the-video]",),
    ),
    Mutant(
        "folder-others-unsaid", "a folder's files that are not images (a video) are said to be left out",
        "src/posetokens/inference/api.py",
        (("        if others:  # a video in the folder was passed over without a word\n",
          "        if False:  # a video in the folder was passed over without a word\n"),),
        ("tests/test_errors_inference.py::test_bad_input[folder-with-a-video-and-a-text-file]",),
    ),
    Mutant(
        "lift-unknown-type-lists-images", "lift's unknown-type message lists what lift takes (not images or folders)",
        "src/posetokens/inference/lifting.py",
        (("    if source_in is None and not is_json and src.suffix.lower() not in VIDEO_EXTENSIONS:  # open_input's message\n",
          "    if False:  # open_input's message\n"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-of-a-script]",),
    ),
    Mutant(
        "no-draw-stale-overlay-unsaid", "a --no-draw run beside an earlier overlay says it is left as it is",
        "src/posetokens/inference/api.py",
        (("    stale = [p for p in drawn if p.is_file()]\n    if stale:\n",
          "    stale = [p for p in drawn if p.is_file()]\n    if False:\n"),),
        ("tests/test_errors_inference.py::test_bad_input[no-draw-beside-an-earlier-overlay]",),
    ),
    Mutant(
        "early-stop-counts-lost", "est(...) stopped early still says the counts it promised",
        "src/posetokens/inference/api.py",
        (("        finally:  # also when the caller stops early (itertools.islice): the counts promised, of the frames given\n",
          "        except BaseException:\n            raise\n        else:\n"),),
        ("tests/test_errors_inference.py::test_bad_input[estimator-stopped-early-still-counts]",),
    ),
    Mutant(
        "lift-failure-hides-earlier-3d",
        "a lift that finds nobody names the earlier run's 3D files left beside its 2D json",
        "src/posetokens/inference/lifting.py",
        (("            if not earlier:\n                raise\n",
          "            if True:\n                raise\n"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-of-nobody-beside-an-earlier-3d]",),
    ),
    Mutant(
        "results-key-at-any-depth", "a list whose first object nests 'keypoints' deeper is not a results file",
        "src/posetokens/fileio.py",
        (("            if depth == 1 and k < n and text[k] == \":\":",
          "            if depth >= 1 and k < n and text[k] == \":\":"),),
        ("tests/test_fileio.py::test_a_named_output_is_replaced_only_when_it_holds_what_is_written",),
    ),
    Mutant(
        "named-output-dangling-link-replaced", "a named output that is a link whose file is gone is refused",
        "src/posetokens/fileio.py",
        (("    if p.is_symlink() and not p.exists():\n        raise ValueError(f\"{what} {p} is a symbolic link",
          "    if False:\n        raise ValueError(f\"{what} {p} is a symbolic link"),),
        ("tests/test_fileio.py::test_a_named_output_is_replaced_only_when_it_holds_what_is_written",),
    ),
    Mutant(
        "write-replaces-the-link", "a write through a symbolic link keeps the link and updates its file",
        "src/posetokens/fileio.py",
        (("    if p.is_symlink() and p.exists():  # written through",
          "    if False:  # written through"),),
        ("tests/test_fileio.py::test_a_write_through_a_link_keeps_the_link",),
    ),
    Mutant(
        "counts-frames-read-ahead", "the boxes left out are counted for the frames given, not those read ahead",
        "src/posetokens/inference/api.py",
        (("                    left_out[frame.frame_id] = (len(dropped), int(off.sum()))",
          "                    specks, outside = specks + len(dropped), outside + int(off.sum())"),),
        ("tests/test_errors_inference.py::test_bad_input[estimator-stopped-early-still-counts]",),
    ),
    Mutant(
        "3d-random-ignores-2d", "the 3D json says random_weights when the 2D model had them",
        "src/posetokens/inference/lifting.py",
        (("\"random_weights\": not trained or any(bool(r.get(\"random_weights\")) for r in records),",
          "\"random_weights\": not trained,"),),
        ("tests/test_errors_inference.py::test_the_3d_json_says_random_weights_when_either_model_had_them",),
    ),
    Mutant(
        "pose2d-float-checked-late", "a float64 2D model given to lift is refused naming pose2d before any note",
        "src/posetokens/inference/lifting.py",
        (("    if isinstance(pose2d, nn.Module):  # as PoseEstimator would",
          "    if False:  # as PoseEstimator would"),),
        ("tests/test_errors_inference.py::test_the_3d_json_says_random_weights_when_either_model_had_them",),
    ),
    Mutant(
        "filter-every-flag-blamed", "a bad filter value names the flag at fault only",
        "src/posetokens/inference/filters.py",
        (("[f\"{flag[k]} {v}\" for k, v in params.items() if v is not None and re.search(rf\"\\b{k}\\b\", str(e))]",
          "[f\"{flag[k]} {v}\" for k, v in params.items() if v is not None]"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-filter-flag-at-fault]",),
    ),
    Mutant(
        "filter-flag-of-another-filter-ignored", "a --filter-* flag the chosen filter does not take is refused",
        "src/posetokens/inference/filters.py",
        (("    if unused:  # was taken and ignored without a word\n",
          "    if False:  # was taken and ignored without a word\n"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-filter-flag-of-another-filter]",),
    ),
    Mutant(
        "hidden-images-dropped", "a folder's hidden images are read, as they always were",
        "src/posetokens/inference/api.py",
        (("        imgs = [q for q in entries if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS]",
          "        imgs = [q for q in entries if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS and q.name[0] != '.']"),),
        ("tests/test_errors_inference.py::test_bad_input[folder-with-a-video-and-a-text-file]",),
    ),
    Mutant(
        "export-float64-unchecked", "export_onnx refuses a float64 model in one line",
        "src/posetokens/export/onnx.py",
        (("        check_float32(model, \"export_onnx\", precision=True)",
          "        pass"),),
        ("tests/test_errors_inference.py::test_a_model_of_another_float_type_is_refused_in_one_line",),
    ),
    Mutant(
        "no-decay-1d-ignored", "PCT's recipes give 1-D parameters and biases no weight decay",
        "src/posetokens/engine/trainer.py",
        (("    if optim.no_decay_1d:\n",
          "    if False:\n"),),
        ("tests/test_engine.py::test_optimiser_settings_reach_the_weights_by_hand",),
    ),
    Mutant(
        "optimiser-weight-decay-dropped", "the recipe's weight decay reaches the optimiser",
        "src/posetokens/engine/trainer.py",
        (("lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay, amsgrad=optim.amsgrad)",
          "lr=optim.lr, betas=optim.betas, amsgrad=optim.amsgrad)"),),
        ("tests/test_engine.py::test_optimiser_settings_reach_the_weights_by_hand",),
    ),
    Mutant(
        "optimiser-amsgrad-dropped", "optim.amsgrad (MHFormer) reaches the optimiser",
        "src/posetokens/engine/trainer.py",
        (("lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay, amsgrad=optim.amsgrad)",
          "lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)"),),
        ("tests/test_engine.py::test_optimiser_settings_reach_the_weights_by_hand",),
    ),
    Mutant(
        "n-mpjpe-scale-per-joint", "MotionBERT's scale loss takes one scale per pose",
        "src/posetokens/engine/losses.py",
        (("    num = (pred * target).sum(dim=(-1, -2), keepdim=True)\n    den = pred.square().sum(dim=(-1, -2), keepdim=True)",
          "    num = (pred * target).sum(dim=-1, keepdim=True)\n    den = pred.square().sum(dim=-1, keepdim=True)"),),
        ("tests/test_pose3d_metrics.py::test_motionbert_loss_hand_computed",),
    ),
    Mutant(
        "motionbert-velocity-weight-2", "MotionBERT's loss weighs the velocity error by 20",
        "src/posetokens/engine/losses.py",
        (("                            velocity_weight: float = 20.0) -> Tensor:",
          "                            velocity_weight: float = 2.0) -> Tensor:"),),
        ("tests/test_pose3d_metrics.py::test_motionbert_loss_hand_computed",),
    ),
    Mutant(
        "mpjve-two-frames-skipped", "two frames have one velocity step, counted",
        "src/posetokens/engine/losses.py",
        (("    if pred.shape[-3] < 2:\n        return pred.sum() * 0.0\n    return torch.linalg.vector_norm(",
          "    if pred.shape[-3] <= 2:\n        return pred.sum() * 0.0\n    return torch.linalg.vector_norm("),),
        ("tests/test_pose3d_metrics.py::test_motionbert_loss_hand_computed",),
    ),
    Mutant(
        "cosine-floor-added", "the cosine schedule with a floor starts at 1 and ends at the floor",
        "src/posetokens/engine/schedule.py",
        (("cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5",
          "cfg.min_lr_ratio + 0.5"),),
        ("tests/test_engine.py::test_lr_floor_exponential_and_defaults_hand_computed",),
    ),
    Mutant(
        "exponential-per-iteration", "the exponential lr decays once per epoch (HoT)",
        "src/posetokens/engine/schedule.py",
        (("w * cfg.gamma ** math.floor(epoch)",
          "w * cfg.gamma ** epoch"),),
        ("tests/test_engine.py::test_lr_floor_exponential_and_defaults_hand_computed",),
    ),
    Mutant(
        "prune-decay-50-epochs", "PPT's keep ratio decays over 100 epochs by default",
        "src/posetokens/engine/config.py",
        (("    prune_decay_epochs: int = 100",
          "    prune_decay_epochs: int = 50"),),
        ("tests/test_engine.py::test_lr_floor_exponential_and_defaults_hand_computed",),
    ),
    Mutant(
        "mv-val-every-32", "multi-view validation takes every 64th instant by default",
        "src/posetokens/engine/config.py",
        (("    mv_val_every: int = 64",
          "    mv_val_every: int = 32"),),
        ("tests/test_engine.py::test_lr_floor_exponential_and_defaults_hand_computed",),
    ),
    Mutant(
        "ema-buffers-not-copied", "the EMA copy takes the model's buffers (BatchNorm statistics)",
        "src/posetokens/engine/trainer.py",
        (("        for e, b in zip(self.module.buffers(), model.buffers()):\n            e.copy_(b)\n",
          "        pass\n"),),
        ("tests/test_engine.py::test_best_checkpoint_choice_and_the_ema_by_hand",),
    ),
    Mutant(
        "evaluation-of-raw-weights", "the evaluations score the EMA copy",
        "src/posetokens/engine/trainer.py",
        (("        eval_model = ema.module if ema else raw_model",
          "        eval_model = raw_model"),),
        ("tests/test_engine.py::test_best_checkpoint_choice_and_the_ema_by_hand",),
    ),
    Mutant(
        "best-recon-px-higher", "the tokenizer's best.pth has the lowest reconstruction error",
        "src/posetokens/engine/trainer.py",
        (("(\"AP\", False), (\"recon_px\", True),",
          "(\"AP\", False), (\"recon_px\", False),"),),
        ("tests/test_engine.py::test_best_checkpoint_choice_and_the_ema_by_hand",),
    ),
    Mutant(
        "best-tie-later", "a tie keeps the earlier best.pth",
        "src/posetokens/engine/trainer.py",
        (("    return metrics[key] < best[key] if lower else metrics[key] > best[key]",
          "    return metrics[key] <= best[key] if lower else metrics[key] >= best[key]"),),
        ("tests/test_engine.py::test_best_checkpoint_choice_and_the_ema_by_hand",),
    ),
    Mutant(
        "lift-flip-augment-forced", "data.flip_augment: false trains without the flipped windows",
        "src/posetokens/engine/lifting.py",
        (("flip_augment=cfg.flip_augment and train,",
          "flip_augment=train,"),),
        ("tests/test_lifting_train.py::test_training_windows_counted_by_hand",),
    ),
    Mutant(
        "lift-train-stride-lost", "MotionBERT's training clips start every 81 frames",
        "src/posetokens/engine/lifting.py",
        (("stride=(lift.train_stride or None) if train and mode != \"seq2frame\" else None",
          "stride=None"),),
        ("tests/test_lifting_train.py::test_training_windows_counted_by_hand",),
    ),
    Mutant(
        "betas-one-accepted", "optim.betas of 1 is refused",
        "src/posetokens/engine/config.py",
        (("all(_num(b) and 0 <= b < 1 for b in v)",
          "all(_num(b) and 0 <= b <= 1 for b in v)"),),
        ("tests/test_errors_training.py::test_refused_or_reported[betas-1]",),
    ),
    Mutant(
        "resume-lr-free", "--resume refuses a changed learning rate",
        "src/posetokens/engine/config.py",
        (("RESUME_FREE_FIELDS = (\"work_dir\", \"log_interval\",",
          "RESUME_FREE_FIELDS = (\"work_dir\", \"optim.lr\", \"log_interval\","),),
        ("tests/test_errors_training.py::test_refused_or_reported[resume-lr]",),
    ),
    Mutant(
        "recon-px-all-joints", "the tokenizer's recon_px is over labelled joints only",
        "src/posetokens/engine/pct.py",
        (("errors.append(err[joints[..., 2] > 0].cpu())",
          "errors.append(err.flatten().cpu())"),),
        ("tests/test_pct.py::test_tokenizer_metrics_by_hand",),
    ),
    Mutant(
        "codebook-usage-over-tokens", "codebook_usage is the codes in use over the codebook's size",
        "src/posetokens/engine/pct.py",
        (("\"codebook_usage\": used / v,",
          "\"codebook_usage\": used / max(1, int(counts.sum())),"),),
        ("tests/test_pct.py::test_tokenizer_metrics_by_hand",),
    ),
    Mutant(
        "mv-loss-weights-ignored", "the multi-view loss weighs each joint by its target weight",
        "src/posetokens/engine/multiview.py",
        (("joints_mse(out.flatten(0, 1), target.flatten(0, 1), weight.flatten(0, 1))",
          "joints_mse(out.flatten(0, 1), target.flatten(0, 1), torch.ones_like(weight.flatten(0, 1)))"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "jdr-counts-invisible", "JDR counts the visible joints only",
        "src/posetokens/engine/multiview.py",
        (("vis.append(batch[\"joints_vis\"].numpy() > 0)",
          "vis.append(batch[\"joints_vis\"].numpy() >= 0)"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "ransac-threshold-dropped", "evaluate_multiview's ransac_threshold reaches the triangulation",
        "src/posetokens/engine/multiview.py",
        (("ransac_threshold=ransac_threshold, visible=visible)", "ransac_threshold=None, visible=visible)"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "mv-every-swapped", "the train split takes every mv_train_every-th instant, val every mv_val_every-th",
        "src/posetokens/engine/multiview.py",
        (("every=cfg.mv_train_every if split == \"train\" else cfg.mv_val_every,",
          "every=cfg.mv_val_every if split == \"train\" else cfg.mv_train_every,"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "lift-silent-while-lifting", "lift --progress shows the lifting itself (a json's run was silent)",
        "src/posetokens/inference/lifting.py",
        (("    if show_progress(progress):  # the lifting itself",
          "    if False:  # the lifting itself"),),
        ("tests/test_tracking.py::test_lift_keeps_input_track_ids_and_skips_short_tracks",),
    ),
    Mutant(
        "data-imports-inference", "dependencies point down: the data package imports nothing of inference",
        "src/posetokens/data/synthetic_video.py",
        (("from posetokens.media import VideoWriter\n", "from posetokens.inference.api import VideoWriter\n"),),
        ("tests/test_layering.py::test_dependencies_point_down",),
    ),
    Mutant(
        "provenance-not-random", "est.provenance says random weights (the fields infer's records carry)",
        "src/posetokens/inference/api.py",
        (("\"weights\": None if self.weights is None else str(self.weights), \"random_weights\": self.random_weights}",
          "\"weights\": None if self.weights is None else str(self.weights), \"random_weights\": False}"),),
        ("tests/test_inference.py::test_a_folder_run_names_the_keypoints_in_every_record_and_an_empty_run_writes_its_coco_results",),
    ),
    Mutant(
        "init-files-skipped", "create_model loads the files a config names to start from (PCT's stage-1 tokenizer)",
        "src/posetokens/registry.py",
        (("    if family.init_files is not None:\n", "    if False:\n"),),
        ("tests/test_pct.py::test_stage2_checkpoint_mismatch_names_sizes",),
    ),
    Mutant(
        "mv-mpjpe-invisible-counted",
        "multi-view MPJPE counts a joint the last view marks invisible as 0 error (official estimate_tri)",
        "src/posetokens/engine/multiview.py",
        (("        visible = np.concatenate(vis)[:, -1]\n",
          "        visible = np.ones_like(np.concatenate(vis)[:, -1])\n"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "mv-mpjpe-first-view-visibility",
        "multi-view MPJPE takes the visibility of the instant's last view, as the official code",
        "src/posetokens/engine/multiview.py",
        (("        visible = np.concatenate(vis)[:, -1]\n", "        visible = np.concatenate(vis)[:, 0]\n"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "mpjpe-invisible-left-out-of-mean", "an invisible joint stays in the mean over all joints with 0 error",
        "src/posetokens/evaluation/multiview.py",
        (("    return np.where(seen, np.linalg.norm(p - g, axis=-1) * scale, 0.0).mean(axis=-1)",
          "    return np.linalg.norm(p - g, axis=-1)[seen].mean(axis=-1) * scale"),),
        ("tests/test_multiview.py::test_an_invisible_joint_counts_as_zero_error_in_the_mean_over_all_joints",),
    ),
    Mutant(
        "init-files-not-reloaded",
        "the files a recipe's overrides name (PCT's tokenizer_ckpt) win over model.weights' copies",
        "src/posetokens/engine/trainer.py",
        (("        reload_init_files(cfg, model)\n        return None\n", "        return None\n"),),
        ("tests/test_pct.py::test_stage2_files_named_by_the_recipe_win_and_frozen_random_parts_are_said",),
    ),
    Mutant(
        "frozen-random-parts-silent", "training says which frozen parts start from random values",
        "src/posetokens/engine/trainer.py",
        (("    if random:\n        logger.warning(\"model %s: the frozen part(s)",
          "    if False:\n        logger.warning(\"model %s: the frozen part(s)"),),
        ("tests/test_pct.py::test_stage2_files_named_by_the_recipe_win_and_frozen_random_parts_are_said",),
    ),
    Mutant(
        "pct-tokenizer-size-unchecked", "a PCT stage-1 file trained at another crop size is refused",
        "src/posetokens/models/pct.py",
        (("        if trained_at is not None and trained_at != tuple(cfg.image_size):", "        if False:"),),
        ("tests/test_pct.py::test_stage2_files_named_by_the_recipe_win_and_frozen_random_parts_are_said",),
    ),
    Mutant(
        "mv-joint-count-unchecked",
        "a multi-view pickle of another joint count is refused when read, naming record and field",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("                if rec.get(key) is None or np.shape(rec[key]) in allowed:", "                if True:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-reprojection-unchecked",
        "joints_3d_camera that does not project onto joints_2d (swapped axes) is refused when read",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("                if err.size and not float(np.median(err)) <= max_px:", "                if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-duplicate-record-kept", "two records of one camera and instant are refused, naming both",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("        if cam in views:", "        if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-rotation-unchecked", "a camera R that is no rotation is refused",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("                if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or not np.isclose(np.linalg.det(R), 1.0, "
          "atol=1e-4):", "                if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-cameras-choice-ignored", "data.mv_cameras picks the cameras of a multi-view sample",
        "src/posetokens/engine/multiview.py",
        (("    cameras = tuple(cfg.mv_cameras) or tuple(range(mcfg.num_views))",
          "    cameras = tuple(range(mcfg.num_views))"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "mv-cameras-file-always-read", "the cameras file is read only when a record has no camera",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("        if without:  # read only when a record needs it", "        if True:"),),
        ("tests/test_multiview.py::test_missing_camera_is_named",),
    ),
    Mutant(
        "project-shape-unchecked", "project refuses a single (3, 4) camera in one line naming the shape",
        "src/posetokens/geometry.py",
        (("    if P.ndim < 3 or P.shape[-2:] != (3, 4):", "    if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-action-rows-mixed", "the multi-view per-action MPJPE rows hold their own action's instants",
        "src/posetokens/engine/multiview.py",
        (("            metrics[f\"mpjpe_mm/{TOOLBOX_ACTIONS[a]}\"] = float(per_instant[action == a].mean())",
          "            metrics[f\"mpjpe_mm/{TOOLBOX_ACTIONS[a]}\"] = float(per_instant.mean())"),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "mv-ransac-px-dropped", "data.mv_ransac_px reaches the multi-view evaluation's triangulation",
        "src/posetokens/engine/trainer.py",
        (("                                  ransac_threshold=cfg.data.mv_ransac_px)",
          "                                  ransac_threshold=None)"),),
        ("tests/test_multiview.py::test_the_recipe_names_the_ransac_threshold_of_its_evaluation",),
    ),
    Mutant(
        "mv-span-unchecked", "a multi-view pose in metres where mm are due is refused when read",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("                if not 300.0 <= span <= 3000.0:", "                if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-views-disagree-unchecked",
        "views whose poses lie apart in world coordinates (camera T in metres) are refused",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("                if not apart <= max_mm:", "                if False:"),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-camera-to-world-transposed",
        "the ground truth is joints_3d_camera taken to world as R^T x + T (official camera_to_world_frame)",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("        return np.asarray(cam3d, np.float64).reshape(-1, 3) @ R + C",
          "        return np.asarray(cam3d, np.float64).reshape(-1, 3) @ R.T + C"),),
        ("tests/test_multiview.py::test_dataset_sample_geometry_and_targets",),
    ),
    Mutant(
        "pct-resume-reads-init-files", "a resumed run reads no stage-1 file (it may have moved): last.pth holds it",
        "src/posetokens/engine/trainer.py",
        (("    raw_model = build_model(cfg, initial_weights=False, init_files=ckpt is None)",
          "    raw_model = build_model(cfg, initial_weights=False, init_files=True)"),),
        ("tests/test_pct.py::test_train_both_stages",),
    ),
    Mutant(
        "camera-centre-column-refused", "projection_matrix takes the toolbox's (3, 1) camera centre",
        "src/posetokens/geometry.py",
        (("    if C.shape[-2:] == (3, 1):\n        C = C[..., 0]\n", ""),),
        ("tests/test_multiview.py::test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read",),
    ),
    Mutant(
        "mv-fusion-all-layers-allowed", "multi-view PPT keeps at least one per-view layer before the fusion layers",
        "src/posetokens/models/tokenpose_mv.py",
        (("if not 0 <= self.num_fusion_layers < self.depth:", "if not 0 <= self.num_fusion_layers <= self.depth:"),),
        ("tests/test_edge_rules.py::test_multiview_config_keeps_per_view_layers_and_checks_the_rays",),
    ),
    Mutant(
        "mv-prune-at-first-fusion-allowed", "multi-view PPT prunes only in its per-view layers",
        "src/posetokens/models/tokenpose_mv.py",
        (("if any(i >= first_fusion for i in self.prune.layers):", "if any(i > first_fusion for i in self.prune.layers):"),),
        ("tests/test_edge_rules.py::test_multiview_config_keeps_per_view_layers_and_checks_the_rays",),
    ),
    Mutant(
        "mv-ray-shape-unchecked", "rays of another patch grid are refused naming both shapes",
        "src/posetokens/models/tokenpose_mv.py",
        (("            if tuple(rays.shape) != want:\n", "            if False:\n"),),
        ("tests/test_edge_rules.py::test_multiview_config_keeps_per_view_layers_and_checks_the_rays",),
    ),
    Mutant(
        "ds-damaged-s9-not-dropped", "S9's damaged sequences are left out of the multi-view set (not S11's)",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("if drop_damaged and key[0] == 9 and", "if drop_damaged and key[0] == 11 and"),),
        ("tests/test_edge_rules.py::test_instants_are_sorted_and_only_s9s_damaged_sequences_are_left_out",),
    ),
    Mutant(
        "ds-instants-unsorted", "multi-view instants come sorted, so every n-th instant is one set whatever the pickle order",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("for _, g in sorted(groups.items()) if", "for _, g in groups.items() if"),),
        ("tests/test_edge_rules.py::test_instants_are_sorted_and_only_s9s_damaged_sequences_are_left_out",),
    ),
    Mutant(
        "ds-images-bgr", "a multi-view crop is normalised as RGB",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("normalize_image(crop, bgr_to_rgb=False)", "normalize_image(crop, bgr_to_rgb=True)"),),
        ("tests/test_edge_rules.py::test_a_view_crop_is_rgb_normalised_and_joints_outside_it_weigh_nothing",),
    ),
    Mutant(
        "ds-outside-crop-weighted", "a joint outside the multi-view crop has target weight 0 (official)",
        "src/posetokens/data/datasets/h36m_multiview.py",
        (("target = self.codec.encode(in_crop[None], (vis * inside)[None])", "target = self.codec.encode(in_crop[None], vis[None])"),),
        ("tests/test_edge_rules.py::test_a_view_crop_is_rgb_normalised_and_joints_outside_it_weigh_nothing",),
    ),
    Mutant(
        "pe-nan-table-accepted", "an official sine table holding a NaN is refused",
        "src/posetokens/layers/pos_embed.py",
        (("if not diff <= tol:", "if diff > tol:"),),
        ("tests/test_edge_rules.py::test_a_sine_table_with_a_nan_is_not_the_sine_table",),
    ),
    Mutant(
        "patch-fold-no-eps", "folding GTPT's patch norm keeps the BatchNorm's epsilon",
        "src/posetokens/layers/patch_embed.py",
        (("scale = bn.running_var.add(bn.eps).rsqrt()", "scale = bn.running_var.rsqrt()"),),
        ("tests/test_edge_rules.py::test_folding_a_batchnorm_keeps_its_epsilon",),
    ),
    Mutant(
        "patch-width-unchecked", "a map whose width is no multiple of the patch width is refused",
        "src/posetokens/layers/patch_embed.py",
        (("if c != self.in_channels or h % ph or w % pw:", "if c != self.in_channels or h % ph:"),),
        ("tests/test_edge_rules.py::test_patch_embedding_refuses_a_width_that_is_no_multiple_of_the_patch",),
    ),
    Mutant(
        "drop-no-rescale", "drop-path rescales kept samples by 1/(1-p)",
        "src/posetokens/layers/drop.py",
        (("return x * mask.div_(keep)", "return x * mask"),),
        ("tests/test_edge_rules.py::test_drop_path_keeps_one_minus_p_and_rescales_them",),
    ),
    Mutant(
        "drop-keep-is-p", "drop-path keeps a sample with probability 1-p",
        "src/posetokens/layers/drop.py",
        ((".bernoulli_(keep)", ".bernoulli_(p)"),),
        ("tests/test_edge_rules.py::test_drop_path_keeps_one_minus_p_and_rescales_them",),
    ),
    Mutant(
        "drop-p1-accepted", "DropPath(1.0) is refused",
        "src/posetokens/layers/drop.py",
        (("if not 0.0 <= p < 1.0:", "if not 0.0 <= p <= 1.0:"),),
        ("tests/test_edge_rules.py::test_drop_path_keeps_one_minus_p_and_rescales_them",),
    ),
    Mutant(
        "fuse-shuffle-bn-no-eps", "folding the BN after a PixelShuffle keeps its epsilon",
        "src/posetokens/layers/fuse.py",
        (("scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)", "scale = bn.weight / torch.sqrt(bn.running_var)"),),
        ("tests/test_edge_rules.py::test_folding_a_batchnorm_keeps_its_epsilon",),
    ),
    Mutant(
        "precision-key-ignores-int8", "an int8 ONNX graph is cached apart from the float32 one",
        "src/posetokens/inference/precision.py",
        (("h.update(f\"{type(model).__qualname__}|{int8}|", "h.update(f\"{type(model).__qualname__}|"),),
        ("tests/test_edge_rules.py::test_precision_helpers_keep_int8_graphs_apart_integer_inputs_and_16_wide_layers",),
    ),
    Mutant(
        "precision-casts-int-inputs", "a reduced-precision cast leaves integer inputs as they are",
        "src/posetokens/inference/precision.py",
        (("return v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v", "return v.to(dtype) if isinstance(v, torch.Tensor) else v"),),
        ("tests/test_edge_rules.py::test_precision_helpers_keep_int8_graphs_apart_integer_inputs_and_16_wide_layers",),
    ),
    Mutant(
        "precision-quant-min-features-strict", "a Linear of exactly min_features inputs is quantised",
        "src/posetokens/inference/precision.py",
        (("child.in_features >= min_features", "child.in_features > min_features"),),
        ("tests/test_edge_rules.py::test_precision_helpers_keep_int8_graphs_apart_integer_inputs_and_16_wide_layers",),
    ),
    Mutant(
        "onnx-nan-diff-passes", "the ONNX check fails a NaN difference",
        "src/posetokens/export/onnx.py",
        ((" or diff > bound or not np.isfinite(diff):", " or diff > bound:"),),
        ("tests/test_edge_rules.py::test_onnx_output_comparison_by_hand",),
    ),
    Mutant(
        "onnx-int-outputs-not-exact", "the ONNX check needs integer outputs (kept frames) to match exactly",
        "src/posetokens/export/onnx.py",
        (("if (exact and atol is not None and diff != 0) or diff > bound", "if diff > bound"),),
        ("tests/test_edge_rules.py::test_onnx_output_comparison_by_hand",),
    ),
    Mutant(
        "onnx-int8-bound-half", "the int8 ONNX check allows a quarter of the largest value",
        "src/posetokens/export/onnx.py",
        (("0.25 * float(np.abs(ref).max())", "0.5 * float(np.abs(ref).max())"),),
        ("tests/test_edge_rules.py::test_onnx_output_comparison_by_hand",),
    ),
    Mutant(
        "onnx-atol-zero-refused", "export --atol 0 (exact) is accepted",
        "src/posetokens/export/onnx.py",
        (("if atol is not None and not (math.isfinite(atol) and atol >= 0):", "if atol is not None and not (math.isfinite(atol) and atol > 0):"),),
        ("tests/test_edge_rules.py::test_onnx_output_comparison_by_hand",),
    ),
    Mutant(
        "init-conv-bias-always-zeroed", "init_conv_bn leaves conv biases unless zero_conv_bias",
        "src/posetokens/layers/init.py",
        (("if zero_conv_bias and m.bias is not None:", "if m.bias is not None:"),),
        ("tests/test_edge_rules.py::test_init_conv_bn_leaves_conv_biases_unless_asked",),
    ),
    Mutant(
        "boxes-json-error-unnamed", "a picture given for --boxes is refused naming the flag it was given for",
        "src/posetokens/inference/api.py",
        (("        data = read_json(self.path, f\"detections ({option('boxes')})\")", "        data = read_json(self.path, \"detections\")"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-a-picture-as-boxes]",),
    ),
    Mutant(
        "mv-ann-field-unnamed", "a missing multi-view pickle is named with its recipe field",
        "src/posetokens/engine/multiview.py",
        (("    require_file(ann, f\"data.{split}_ann\")  # the field, as the COCO-style sets say it\n", ""),),
        ("tests/test_multiview.py::test_multiview_loss_weights_visibility_ransac_and_instants",),
    ),
    Mutant(
        "resume-ignored", "train --resume continues from the checkpoint (step, optimiser, RNG)",
        "src/posetokens/engine/trainer.py",
        (("    if ckpt is not None:\n        # the global batch", "    if False:\n        # the global batch"),),
        ("tests/test_engine.py::test_resume_ends_with_identical_weights",),
    ),
    Mutant(
        "onnx-check-skipped", "export compares onnxruntime with PyTorch on every output",
        "src/posetokens/export/onnx.py",
        (("                diffs = check_onnx(m, staged, check_batches, 1e-4 if atol is None and precision == \"fp32\" else atol)",
          "                diffs = {}"),),
        ("tests/test_export.py::test_export_small_model_matches_pytorch[tokenpose]",  # one 2D, one lifting family
         "tests/test_export.py::test_export_small_model_matches_pytorch[hot_mixste]"),
    ),
    Mutant(
        "gtpt-rescore-0.2", "pipeline parity: GTPT rescoring threshold 0.01 (official), not the old 0.2",
        "src/posetokens/protocols/__init__.py",
        (("    eval=EvalRule(rescore_thr=0.01, nms_thr=0.9,", "    eval=EvalRule(rescore_thr=0.2, nms_thr=0.9,"),),
        ("tests/test_pipeline_eval.py::test_fixture_passes",
         "tests/test_protocol_end_to_end.py::test_evaluate_and_training_path_give_the_official_numbers"),
    ),
    Mutant(
        "pipeline-handler-compares-nothing", "a pipeline fixture passes only when its comparisons ran",
        "src/posetokens/parity/__init__.py",
        (("        comps = handler(folder, spec)\n", "        comps = []\n"),
         ("        return self.compared_values and all(c.ok for c in self.comparisons)",
          "        return all(c.ok for c in self.comparisons)")),
        ("tests/test_pipeline_crop.py::test_crop_target_fixture_passes",),
    ),
    Mutant(
        "eval-crop-coordinates", "training/test evaluation scores image-space keypoints (crop -> image mapping)",
        "src/posetokens/engine/evaluate.py",
        (('out["keypoints"].append(crop_to_image(np.asarray(kpts, np.float64), batch["warp_matrix"].numpy()))',
          'out["keypoints"].append(np.asarray(kpts, np.float64))'),),
        ("tests/test_engine_eval.py",),
    ),
    Mutant(
        "heatmap-flip-not-flipped-back", "the heatmap flip test flips the mirrored output back before averaging",
        "src/posetokens/protocols/codec.py",
        (("    return (outputs + flip_heatmaps(flipped_outputs, flip_indices, shift=rule.flip_shift)) * 0.5",
          "    return (outputs + flipped_outputs) * 0.5"),),
        ("tests/test_pipeline_codec.py::test_fixture_passes",
         "tests/test_pipeline_codec.py::test_flip_merge_heatmap_values_by_hand"),
    ),
    Mutant(
        "oks-nms-keypoint-area", "OKS-NMS uses each result's padded-box area (official), not the keypoint extent",
        "src/posetokens/evaluation/functional.py",
        (("        out[i] = float(a)\n    return out",
          "        out[i] = float(keypoint_extent_area(k[i, :, :2]))\n    return out"),),
        ("tests/test_pipeline_eval.py::test_fixture_passes",
         "tests/test_pipeline_eval.py::test_nms_area_decides_suppression"),
    ),
    Mutant(
        "pruning-keeps-lowest", "PPT keeps the visual tokens with the HIGHEST keypoint-attention scores",
        "src/posetokens/layers/pruning.py",
        ((('    """Indices (B, k) of the ``k`` highest scores per row, in descending score order."""\n'
           "    return score.topk(k, dim=-1, largest=True, sorted=True).indices"),
          ('    """Indices (B, k) of the ``k`` highest scores per row, in descending score order."""\n'
           "    return score.topk(k, dim=-1, largest=False, sorted=True).indices")),),
        ("tests/test_tokenpose.py::test_prune_topk_keeps_prefix_and_gathers_carry",
         "tests/test_tokenpose.py::test_parity_cli_on_official_fixture"),
    ),
    Mutant(
        "cluster-rows-by-tile", "identical tokens get identical rows of the cluster's GEMM distances",
        "src/posetokens/layers/pruning.py",
        (("    first = _identical_first(x)\n",
          "    first = torch.arange(n, device=x.device).expand(xd.shape[0], n)\n"),),
        ("tests/test_pruning_stages.py::test_pairwise_distances_give_identical_tokens_identical_rows",
         "tests/test_pruning_stages.py::test_pairwise_distances_rows_do_not_depend_on_the_gemm_rounding"),
    ),
    Mutant(
        "cluster-keys-trusted", "the cluster's key groups are checked bit for bit: two different tokens never merge",
        "src/posetokens/layers/pruning.py",
        (("    if not bool((bits(v[dup]) == bits(v[first[dup]])).all()):", "    if False:"),),
        ("tests/test_pruning_stages.py::test_identical_tokens_are_found_exactly_when_two_different_tokens_share_a_key",),
    ),
    Mutant(
        "cluster-check-keyed-only", "the cluster checks a would-be copy over all channels, not only the keyed ones",
        "src/posetokens/layers/pruning.py",
        (("    if not bool((bits(v[dup]) == bits(v[first[dup]])).all()):",
          "    if not bool((keyed[dup] == keyed[first[dup]]).all()):"),),
        ("tests/test_pruning_stages.py::test_pairwise_distances_edge_inputs",),
    ),
    Mutant(
        "gram-diagonal-asymmetric", "the cluster's Gram matrix is bitwise symmetric on its diagonal blocks too",
        "src/posetokens/layers/pruning.py",
        (("        diag.copy_((diag + diag.mT).mul_(0.5))\n", "        pass\n"),),
        ("tests/test_pruning_stages.py::test_pairwise_distances_rows_do_not_depend_on_the_gemm_rounding",),
    ),
    Mutant(
        "nearest-counts-self-twice", "a token's k nearest count its own zero distance once",
        "src/posetokens/layers/pruning.py",
        (('    diag.fill_(float("inf"))\n', '    diag.fill_(0.0)\n'),),
        ("tests/test_pruning_stages.py::test_nearest_squared_matches_topk_of_the_clamped_rows",
         "tests/test_pruning_stages.py::test_cluster_score_follows_the_spec_on_exact_distances"),
    ),
    Mutant(
        "cluster-root-unclamped", "the cluster clamps squared distances at 0 before their square root",
        "src/posetokens/layers/pruning.py",
        (("        return v.clamp_min(0).sqrt().div(c**0.5)\n", "        return v.sqrt().div(c**0.5)\n"),),
        ("tests/test_pruning_stages.py::test_cluster_score_is_bitwise_its_steps_on_the_distances",),
    ),
    Mutant(
        "nearest-diagonal-zeroed", "the k nearest restore the diagonal as it was (NaN for an overflowing token)",
        "src/posetokens/layers/pruning.py",
        (("        diag.copy_(own)\n", "        diag.fill_(0.0)\n"),),
        ("tests/test_pruning_stages.py::test_nearest_squared_matches_topk_of_the_clamped_rows",
         "tests/test_pruning_stages.py::test_cluster_score_is_bitwise_its_steps_on_the_distances"),
    ),
    Mutant(
        "density-ties-unbroken", "of two equally dense tokens the earlier counts as denser (the deterministic cluster)",
        "src/posetokens/layers/pruning.py",
        (("    denser = gt | (eq & earlier)\n", "    denser = gt\n"),),
        ("tests/test_pruning_stages.py::test_cluster_score_follows_the_spec_on_exact_distances",
         "tests/test_mixste.py::test_density_ties_break_by_frame_index"),
    ),
    Mutant(
        "cluster-keys-inexact",
        "the cluster's keys are exact integers: every partial sum stays within float64's 53 bits",
        "src/posetokens/layers/pruning.py",
        (("    top = 2 ** max(0, 52 - 31 - max(m - 1, 1).bit_length())",
          "    top = 2 ** max(0, 62 - 31 - max(m - 1, 1).bit_length())"),),
        ("tests/test_pruning_stages.py::test_identical_tokens_are_found_exactly_when_two_different_tokens_share_a_key",),
    ),
    Mutant(
        "patch-norm-fold-drops-shift", "GTPT's inference copy folds patch_norm's shift into the embedding's bias",
        "src/posetokens/layers/patch_embed.py",
        (("            bias = weight.double().sum((1, 2)) @ shift.double()\n",
          "            bias = weight.double().sum((1, 2)) @ shift.double() * 0\n"),),
        ("tests/test_fused_linear.py::test_inference_copy_folds_gtpts_patch_norm",),
    ),
    Mutant(
        "built-random-model-silent", "a built model with create_model's random weights says so in PoseEstimator",
        "src/posetokens/inference/api.py",
        (("        random_weights = random_weights or has_random_weights(model)\n",
          "        random_weights = random_weights\n"),),
        ("tests/test_errors_inference.py::test_a_built_model_with_random_weights_says_so_once",),
    ),
    Mutant(
        "random-sample-follows-weights", "the initial sample behind the random-weights note is a copy, not a view",
        "src/posetokens/registry.py",
        (('.to("cpu", copy=True) for p in model.parameters()', '.cpu() for p in model.parameters()'),),
        ("tests/test_errors_inference.py::test_a_built_model_with_random_weights_says_so_once",),
    ),
    Mutant(
        "residual-relu-dropped", "a fused residual block runs its ReLU after the sum inside the convolution",
        "src/posetokens/layers/fuse.py",
        (('                                "add", 1.0, "relu" if self.relu else None, [], "")\n',
          '                                "add", 1.0, None, [], "")\n'),),
        ("tests/test_fused_linear.py::test_conv_residual_relu_against_float64_and_the_kernel_that_runs[True-post-op]",),
    ),
    Mutant(
        "bf16-gemm-mode-leaks", "a bf16-gemm layer sets oneDNN's math mode for its own kernel call only",
        "src/posetokens/layers/fuse.py",
        (("            if held[0] == 0:\n                knob.fp32_precision = held[1]\n",
          "            if held[0] == 0:\n                pass\n"),),
        ("tests/test_fused_linear.py::test_bf16_math_is_the_exact_product_of_bfloat16_rounded_inputs[post-op]",
         "tests/test_fused_linear.py::test_each_bf16_layer_sets_its_own_knob_for_its_call_only"),  # without the mode
    ),
    Mutant(
        "bf16-gemm-threads-leave-it-set",
        "threads running bf16-gemm layers at once leave the process's math mode as it was",
        "src/posetokens/layers/fuse.py",
        (("        if held[0] == 0:\n            held[1] = knob.fp32_precision\n",
          "        if True:\n            held[1] = knob.fp32_precision\n"),),
        ("tests/test_fused_linear.py::test_bf16_math_from_several_threads_leaves_the_process_setting_as_it_was",),
    ),
    Mutant(
        "bf16-gemm-conv-stays-float32", "bf16-gemm runs the convolutions in the bfloat16 math mode too",
        "src/posetokens/layers/fuse.py",
        (('conv, knob = torch.ops.mkldnn._convolution_pointwise, "conv"\n',
          'conv, knob = torch.ops.mkldnn._convolution_pointwise, "matmul"\n'),),
        ("tests/test_fused_linear.py::test_bf16_math_is_the_exact_product_of_bfloat16_rounded_inputs[separate]",
         "tests/test_fused_linear.py::test_each_bf16_layer_sets_its_own_knob_for_its_call_only"),
    ),
    Mutant(
        "bf16-gemm-not-set", "--precision bf16-gemm really runs the Linear layers in the bfloat16 math mode",
        "src/posetokens/layers/fuse.py",
        (('            layer.math = "bf16"\n', '            layer.math = "ieee"\n'),),
        ("tests/test_fused_linear.py::test_gemm_in_bfloat16_marks_every_linear_and_convolution",
         "tests/test_precision.py::test_choice_outputs_within_tolerance_of_float64"),
    ),
    Mutant(
        "auto-precision-ignores-lifters",
        "the default precision runs a lifter in bf16-gemm on a CPU with bfloat16 kernels",
        "src/posetokens/inference/precision.py",
        (('    return Choice("bf16-gemm" if fast else "fp32", choice.runtime)\n',
          '    return Choice("fp32", choice.runtime)\n'),),
        ("tests/test_precision.py::test_auto_precision_is_bf16_gemm_for_lifters_and_pct_on_a_bf16_cpu_and_fp32_otherwise",),
    ),
    Mutant(
        "auto-bf16-gemm-where-it-loses", "the default precision keeps float32 on a CPU where bf16-gemm is no faster",
        "src/posetokens/inference/precision.py",
        (('            and HAS_GEMM_MATH and bf16_supported("cpu")[0] and bf16_gemm_pays())\n',
          '            and HAS_GEMM_MATH and bf16_supported("cpu")[0])\n'),),
        ("tests/test_precision.py::test_auto_precision_is_bf16_gemm_for_lifters_and_pct_on_a_bf16_cpu_and_fp32_otherwise",),
    ),
    Mutant(
        "auto-precision-ignores-the-declaration", "the default precision follows what each model class declares",
        "src/posetokens/inference/precision.py",
        (('    fast = (declared == "bf16-gemm" and torch.device(device).type == "cpu"',
          '    fast = (getattr(model, "task", None) == "lifting" and torch.device(device).type == "cpu"'),),
        ("tests/test_precision.py::test_auto_precision_is_bf16_gemm_for_lifters_and_pct_on_a_bf16_cpu_and_fp32_otherwise",),
    ),
    Mutant(
        "pct-default-float32", "PCT's default precision is bf16-gemm, as measured on two trained PCTs",
        "src/posetokens/models/pct.py",
        (('    auto_precision = "bf16-gemm"  # --precision auto', '    auto_precision = "fp32"  # --precision auto'),),
        ("tests/test_precision.py::test_the_default_runs_pct_in_bf16_gemm_and_the_estimator_names_it",
         "tests/test_precision.py::test_auto_precision_is_bf16_gemm_for_lifters_and_pct_on_a_bf16_cpu_and_fp32_"
         "otherwise"),  # runs where oneDNN ignores the mode too
    ),
    Mutant(
        "pct-warm-start-frozen", "the warm start trains PCT's Swin V2 though the recipe freezes it in stage 2",
        "src/posetokens/quickstart.py",
        (("        cnn.requires_grad_(True)  # the recipe's stage 2 freezes it",
          "        pass  # the recipe's stage 2 freezes it"),),
        ("tests/test_pct.py::test_warm_start_trains_pcts_swin_as_a_heatmap_model_for_the_synthetic_recipe",),
    ),
    Mutant(
        "bf16-gemm-skips-functional-qkv", "bf16-gemm of a model as built runs Swin V2's functional qkv in the mode too",
        "src/posetokens/layers/fuse.py",
        (('isinstance(m, FusableBlock) and not getattr(m, "fused", False)]:',
          'isinstance(m, FusableBlock) and False]:'),),
        ("tests/test_swin_v2.py::test_bf16_gemm_of_the_model_as_built_runs_its_qkv_in_the_mode_too",),
    ),
    Mutant(
        "swin-qkv-bias-dropped", "PCT's inference copy keeps Swin V2's q/v bias inside the fused qkv GEMM",
        "src/posetokens/models/backbones/swin_v2.py",
        (("        qkv.bias = nn.Parameter(self.qkv_bias().detach(), requires_grad=False)\n",
          "        qkv.bias = nn.Parameter(self.qkv_bias().detach() * 0, requires_grad=False)\n"),),
        ("tests/test_swin_v2.py::test_official_outputs",),
    ),
    Mutant(
        "post-op-timing-draws-random", "timing the residual post-op leaves the caller's random number stream alone",
        "src/posetokens/layers/fuse.py",
        (("    x = torch.full((8, 64, 32, 24), 0.5)", "    x = torch.randn(8, 64, 32, 24)"),),
        ("tests/test_fused_linear.py::test_a_choice_timed_on_this_cpu_is_timed_once_and_draws_no_random_numbers[residual_post_op_pays]",),
    ),
    Mutant(
        "shuffle-exports-as-scatter", "the inference GTPT exports without ScatterND (onnxruntime ran it 2.5x slower)",
        "src/posetokens/models/backbones/shufflenet.py",
        (("        if exporting():  # ONNX turns", "        if False:  # ONNX turns"),),
        ("tests/test_export.py::test_channels_last_gtpt_exports_without_scatter",),
    ),
    Mutant(
        "onnx-cache-key-misses-buffers", "the runtime's graph cache key covers every parameter and buffer",
        "src/posetokens/inference/precision.py",
        (("    for name, t in [*model.named_parameters(), *model.named_buffers()]:",
          "    for name, t in model.state_dict().items():"),),
        ("tests/test_precision.py::test_auto_exports_once_matches_float64_and_reuses_the_cached_graph",),
    ),
    Mutant(
        "true-macs-counts-flops", "GMACs are multiply-accumulates (FlopCounterMode counts 2 FLOPs per MAC)",
        "src/posetokens/engine/flops.py",
        (("    return counter.get_total_flops() // 2\n", "    return counter.get_total_flops()\n"),),
        ("tests/test_tokenpose.py::test_flops_and_params_match_paper",),
    ),
    Mutant(
        "h36m-flip-not-flipped-back", "the H36M flip test negates x and swaps left/right before averaging",
        "src/posetokens/evaluation/h36m_protocol.py",
        (("    merged = (out + flip_keypoints(out_flipped, flip_indices)) / 2",
          "    merged = (out + out_flipped) / 2"),),
        ("tests/test_pipeline_h36m.py::test_fixture_passes",
         "tests/test_lifting_train.py::test_predict_windows_flip_merge_values"),
    ),
    Mutant(
        "h36m-p2-per-window", "HoT's P2 is the mean over its test batch of windows (the official quirk)",
        "src/posetokens/evaluation/h36m_protocol.py",
        (("    if int(batch_size) <= 0:\n        return s / n", "    if True:\n        return s / n"),),
        ("tests/test_pipeline_h36m.py::test_fixture_passes",
         "tests/test_pipeline_h36m.py::test_hot_p2_batch_quirk_hand_computed"),
    ),
    Mutant(
        "loader-accepts-missing-keys", "a checkpoint missing weights is refused, naming the missing keys",
        "src/posetokens/convert.py",
        (("    missing = [k for k in own if k not in state_dict]", "    missing = []"),
         ("    model.load_state_dict(state_dict, strict=True)", "    model.load_state_dict(state_dict, strict=False)")),
        ("tests/test_tokenpose.py::test_wrong_checkpoint_is_refused_by_name",
         "tests/test_inference.py::test_weights_for_a_different_model",
         "tests/test_mhformer.py::test_converter_is_strict_and_unwraps_containers"),
    ),
    Mutant(
        "results-accept-wrong-keypoint-count", "COCO results with the wrong number of keypoints are refused",
        "src/posetokens/evaluation/coco.py",
        (("        if num_keypoints is not None and k.size != 3 * num_keypoints:",
          "        if num_keypoints is not None and k.size % 3:"),),
        ("tests/test_coco_eval.py::test_validation_errors_name_the_field",
         "tests/test_wholebody_eval.py::test_malformed_predictions"),
    ),
    Mutant(
        "fused-linear-drops-gelu", "the inference copy's fused fc1 applies the MLP's GELU inside the oneDNN call",
        "src/posetokens/layers/fuse.py",
        (('bias.contiguous(), "gelu" if self.gelu else "none",', 'bias.contiguous(), "none",'),),
        ("tests/test_fused_linear.py::test_values_against_float64_and_the_kernel_that_runs",
         "tests/test_fused_linear.py::test_inference_copy_of_a_lifter_and_its_int8_copy"),
    ),
    Mutant(
        "fused-conv-drops-relu", "the inference copy's fused convolution applies the ReLU after it inside oneDNN",
        "src/posetokens/layers/fuse.py",
        (('"relu" if self.relu else "none", [], "")', '"none", [], "")'),),
        ("tests/test_fused_linear.py::test_conv_relu_against_float64_and_the_kernel_that_runs",),
    ),
    Mutant(
        "gather-tokens-ignores-the-sample", "pruning gathers each sample's kept tokens from that sample",
        "src/posetokens/layers/pruning.py",
        (("flat = idx + torch.arange(b, device=idx.device).unsqueeze(1) * n",
          "flat = idx + torch.arange(b, device=idx.device).unsqueeze(1) * 0"),),
        ("tests/test_tokenpose.py::test_gather_tokens_copies_whole_tokens_as_torch_gather_does",
         "tests/test_tokenpose.py::test_prune_topk_keeps_prefix_and_gathers_carry"),
    ),
    Mutant(
        "keep-index-past-the-clip", "a forced frame must lie in the clip, [0, frames)",
        "src/posetokens/layers/pruning.py",
        (("any(bool(((t < 0) | (t >= frames)).any()) for t in stages)",
          "any(bool(((t < 0) | (t > frames)).any()) for t in stages)"),),
        ("tests/test_pruning_stages.py::test_forced_frames_outside_the_clip_are_refused_in_one_line",),
    ),
    Mutant(
        "bf16-backbone-casts-the-callers-model", "bf16-backbone runs a copy; the caller's model stays float32",
        "src/posetokens/inference/precision.py",
        (("    net = copy.deepcopy(model)\n    backbone = getattr(net, attr).to(torch.bfloat16)",
          "    net = model\n    backbone = getattr(net, attr).to(torch.bfloat16)"),),
        ("tests/test_precision.py::test_bf16_backbone_runs_the_cnn_in_bfloat16_and_the_rest_float32",),
    ),
    Mutant(
        "group-score-without-dense-queries",
        "GTPT's group-wise score pools over the sparse and the dense keypoint queries",
        "src/posetokens/models/gtpt.py",
        (("s - len(gr.sparse), s + fixed_count[gi])", "s - len(gr.sparse), s)"),),
        ("tests/test_gtpt.py::test_parity_cli[gtpt_t_wholebody_256x192]",),
    ),
    Mutant(
        "group-score-with-padded-query", "GTPT's group-wise score leaves out a group's padded sparse query, as the "
        "official mask does", "src/posetokens/models/gtpt.py",
        (("s - len(gr.sparse), s + fixed_count[gi])", "0, s + fixed_count[gi])"),),
        ("tests/test_gtpt.py::test_parity_cli[gtpt_t_coco_256x192]",
         "tests/test_gtpt.py::test_parity_cli[gtpt_t_wholebody_256x192]"),
    ),
    Mutant(
        "score-rows-not-int-pairs-accepted",
        "the grouped attention refuses score rows that are not (start, stop) int pairs",
        "src/posetokens/layers/attention.py",
        (("isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(i, int) for i in r)\n", "True\n"),),
        ("tests/test_gtpt.py::test_grouped_attention_returns_the_scores_block_of_the_logits",),
    ),
    Mutant(
        "patch-embed-pieces-in-stored-order", "the embedding of a map in pieces gives each part's channels their "
        "own weight columns", "src/posetokens/layers/patch_embed.py",
        (("        out = F.conv2d(first, take_columns(weight, where), self.bias, stride=(ph, pw))",
          "        out = F.conv2d(first, weight[:, :len(where)], self.bias, stride=(ph, pw))"),),
        ("tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces",
         "tests/test_fused_linear.py::test_inference_copy_folds_gtpts_patch_norm"),
    ),
    Mutant(
        "pieces-branch-reads-stored-order", "a ShuffleNet block on a map in pieces gives its branch's first "
        "convolution the gathered channels' weight columns", "src/posetokens/models/backbones/shufflenet.py",
        (("        weight = take_columns(first.weight, [j - h for j in where])",
          "        weight = first.weight"),),
        ("tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces",),
    ),
    Mutant(
        "pieces-select-keeps-whole-parts", "a channel range of a map in pieces narrows each part to what it still "
        "reads", "src/posetokens/layers/channel_pieces.py",
        (("            lo, hi = min(used) - starts[i], max(used) - starts[i] + 1",
          "            lo, hi = 0, sizes[i]"),),
        ("tests/test_gtpt.py::test_channel_pieces_hold_a_map_without_building_it",
         "tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces"),
    ),
    Mutant(
        "gather-run-crosses-parts", "a gather copies runs that stay inside one part",
        "src/posetokens/layers/channel_pieces.py",
        (("        if runs and runs[-1][0] == part and runs[-1][2] == p - starts[part]:",
          "        if runs and runs[-1][2] == p - starts[runs[-1][0]]:"),),
        ("tests/test_gtpt.py::test_channel_pieces_hold_a_map_without_building_it",),
    ),
    Mutant(
        "gtpt-embed-pair-skips-patch-norm", "GTPT embeds the stem's map in pieces only once patch_norm is folded",
        "src/posetokens/models/gtpt.py",
        (("        if (isinstance(self.patch_norm, nn.Identity) and self.stem.ends_in_shuffle",
          "        if (self.stem.ends_in_shuffle"),),
        ("tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces",),
    ),
    Mutant(
        "gtpt-embed-pair-never-taken", "GTPT's inference copy embeds the stem's map in pieces on a channels-last batch",
        "src/posetokens/models/gtpt.py",
        (("                and img.is_contiguous(memory_format=torch.channels_last)):",
          "                and False):"),),
        ("tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces",),
    ),
    Mutant(
        "gtpt-pieces-under-jit-trace", "GTPT builds the stem's map whole under any tracer (jit.trace included)",
        "src/posetokens/models/gtpt.py",
        (("self.stem.ends_in_shuffle and not tracing()", "self.stem.ends_in_shuffle and not exporting()"),
         ("from posetokens.layers.checks import check_image_batch, require_positive, tracing",
          "from posetokens.layers.checks import check_image_batch, exporting, require_positive, tracing"),),
        ("tests/test_gtpt.py::test_the_pieces_path_under_a_tracer_with_gradients_odd_halves_and_a_bfloat16_backbone",),
    ),
    Mutant(
        "stem-halves-from-the-down-path", "GTPT-B's stem hands over its up path's last stage in pieces",
        "src/posetokens/models/backbones/shufflenet.py",
        (("        last = len(self.down) - 1 if not len(self.up_layers) else None",
          "        last = len(self.down) - 1 if True else None"),),
        ("tests/test_gtpt.py::test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces",),
    ),
    Mutant(
        "swin-mask-cached-while-tracing", "an export leaves no fake tensor in Swin V2's shifted-window mask cache",
        "src/posetokens/models/backbones/swin_v2.py",
        (("build = shift_window_mask if tracing() else _shift_window_mask_cached",
          "build = _shift_window_mask_cached"),),
        ("tests/test_export.py::test_export_leaves_no_traced_tensor_in_the_model",),
    ),
    Mutant(
        "auto-keeps-a-slower-onnxruntime", "auto keeps onnxruntime only where it beats eager on this CPU",
        "src/posetokens/inference/precision.py",
        (('                verdict = "onnxruntime" if t_ort < t_eager else "torch"',
          '                verdict = "onnxruntime"'),),
        ("tests/test_precision.py::test_auto_keeps_onnxruntime_only_where_it_wins_on_this_cpu",),
    ),
    Mutant(
        "pct-flip-not-mirrored", "PCT's flip test mirrors the flipped crop's x back (x -> W - 1 - x) before averaging",
        "src/posetokens/models/pct.py",
        (("    fj = torch.stack((width - 1 - fj[..., 0], fj[..., 1]), dim=-1)",
          "    fj = torch.stack((fj[..., 0], fj[..., 1]), dim=-1)"),),
        ("tests/test_precision.py::test_pct_flip_test_runs_through_onnxruntime",),
    ),
    Mutant(
        "cli-hides-key-error-bugs",
        "only a UserKeyError is a one-line user error; any other KeyError keeps its traceback",
        "src/posetokens/cli.py",
        (("    if isinstance(e, UserKeyError):", "    if isinstance(e, KeyError):"),),
        ("tests/test_errors_inference.py::test_only_a_users_key_error_is_a_one_line_error",),
    ),
    Mutant(
        "compile-freezes-the-callers-model", "fp32/compile leaves the caller's model's gradient flags as they were",
        "src/posetokens/inference/precision.py",
        (("    if net is not model:  # a copy of ours", "    if True:  # a copy of ours"),),
        ("tests/test_precision.py::test_no_choice_changes_the_callers_model",),
    ),
    Mutant(
        "motionagformer-trains-with-hots-loss", "loss auto is each recipe's loss: MotionAGFormer trains with "
        "MPJPE + 0.5 N-MPJPE + 20 MPJVE, as MotionBERT",
        "src/posetokens/models/motionagformer.py",
        (('    train_loss = "motionbert"', '    train_loss = "hot"'),),
        ("tests/test_engine.py::test_every_zoo_model_declares_the_loss_of_its_recipe",),
    ),
    Mutant(
        "ppt-keep-ratio-not-annealed", "the trainer eases PPT's keep ratio from 1 to the config's over the schedule",
        "src/posetokens/models/tokenpose.py",
        (("    anneals_keep_ratio = True", "    anneals_keep_ratio = False"),),
        ("tests/test_engine.py::test_resume_ends_with_identical_weights",),
    ),
    Mutant(
        "redone-log-kept", "a resume after a crash logs each step once (the redone steps' records are moved aside)",
        "src/posetokens/engine/trainer.py",
        (("    if not path.is_file():\n        return 0\n    keep, redone",
          "    if True:\n        return 0\n    keep, redone"),),
        ("tests/test_errors_training.py::test_a_resume_after_a_crash_logs_each_step_once",),
    ),
    Mutant(
        "failed-start-blocks-rerun", "the files of a start that saved no checkpoint do not block a plain rerun",
        "src/posetokens/engine/trainer.py",
        (("    failed_start = bool(found) and not any(", "    failed_start = False and not any("),),
        ("tests/test_errors_training.py::test_a_start_that_saved_no_checkpoint_does_not_block_the_rerun",),
    ),
    Mutant(
        "eval-due-ignored", "--resume runs first an evaluation that a signal or a crash cut short",
        "src/posetokens/engine/trainer.py",
        (("    eval_due = None if ckpt is None else ckpt.get(\"eval_due\")", "    eval_due = None"),),
        ("tests/test_engine.py::test_an_evaluation_cut_short_runs_first_on_resume",),
    ),
    Mutant(
        "work-dir-not-locked", "a running training's work dir is refused to a second training",
        "src/posetokens/fileio.py",
        (("            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n", "            pass  # takes no lock\n"),),
        ("tests/test_errors_training.py::test_a_running_training_holds_its_work_dir",),
    ),
    Mutant(
        "eval-inputs-read-late",
        "a training reads its evaluation's inputs before it starts, as the evaluation reads them",
        "src/posetokens/engine/trainer.py",
        (("    if model.task == \"multiview\":\n        build_multiview_set(cfg.data, \"val\", model)\n",
          "    if model.task == \"multiview\":\n        pass  # read at the first evaluation\n"),),
        ("tests/test_multiview.py::test_a_bad_multiview_val_pickle_is_said_before_training_starts",),
    ),
    Mutant(
        "lifter-predicts-in-training-mode", "a prediction runs the model in eval mode whatever mode it is in",
        "src/posetokens/protocols/predict.py",
        (("    with evaluating(model):\n        out, index = model.forward_frames(x)",
          "    if True:\n        out, index = model.forward_frames(x)"),),
        ("tests/test_lift.py::test_lift_sequence_runs_a_model_in_training_mode_as_in_eval_and_restores_it",),
    ),
    Mutant(
        "mmpose-flip-unshifted", "the mmpose protocol's flip test shifts the flipped-back maps as MMPose 1.x does",
        "src/posetokens/protocols/__init__.py",
        (("    test=TestRule(flip_test=True, flip_shift=True, decode=\"dark\", decode_convention=\"mmpose\"),",
          "    test=TestRule(flip_test=True, flip_shift=False, decode=\"dark\", decode_convention=\"mmpose\"),"),),
        ("tests/test_pipeline_codec.py::test_mmpose_flip_test_geometry_by_hand",),
    ),
    Mutant(
        "convert-overwrites", "convert replaces an existing --out only with --overwrite",
        "src/posetokens/convert.py",
        (("    if (out.exists() or out.is_symlink()) and not overwrite:", "    if False:"),),
        ("tests/test_export.py::test_convert_never_writes_over_its_input_or_an_existing_file",),
    ),
    Mutant(
        "test-out-replaces-any-file", "test replaces only a predictions file it wrote at --out",
        "src/posetokens/engine/trainer.py",
        (("    check_replaceable(out, what, looks_like_coco_results,",
          "    (lambda *a: None)(out, what, looks_like_coco_results,"),),
        ("tests/test_errors_training.py::test_refused_or_reported[test-out-is-another-checkpoint]",
         "tests/test_errors_training.py::test_test_replaces_only_a_predictions_file"),
    ),
    Mutant(
        "eval-other-category-scored", "COCO predictions of a category the ground truth lacks are refused",
        "src/posetokens/evaluation/coco.py",
        (("        cat = r.get(\"category_id\", 1)\n        if not (is_whole(cat) and int(cat) in categories):",
          "        cat = r.get(\"category_id\", 1)\n        if False:"),),
        ("tests/test_coco_eval.py::test_validation_errors_name_the_field",),
    ),
    Mutant(
        "parity-passes-without-values", "a parity fixture passes only when some output's values were compared",
        "src/posetokens/parity/__init__.py",
        (("        return self.compared_values and all(c.ok for c in self.comparisons)",
          "        return all(c.ok for c in self.comparisons)"),),
        ("tests/test_export.py::test_parity_does_not_pass_a_fixture_that_compares_no_output_values",),
    ),
    Mutant(
        "speck-box-stops-run", "a box source's box smaller than a pixel is left out with a warning, not the run ended",
        "src/posetokens/inference/api.py",
        (("    if len(bad) and specks is not None:", "    if False:"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-box-smaller-than-a-pixel]",),
    ),
    Mutant(
        "folder-progress-drops-skips", "est(folder, progress=True)'s bar counts a skipped image as done",
        "src/posetokens/inference/api.py",
        (("            if bar is not None:  # the bar counts it as done: it ends at its total\n"
           "                bar.update(1)", "            pass"),),
        ("tests/test_inference.py::test_results_of_a_folder_skip_an_unreadable_image_as_infer_does",),
    ),
    Mutant(
        "grad-tensor-boxes-refused", "boxes given as a tensor that requires grad are read (a detector's output)",
        "src/posetokens/runtime.py",
        (("        if torch is not None and isinstance(value, torch.Tensor):  # a detector's boxes straight from a "
          "model", "        if False:"),),
        ("tests/test_inference.py::test_boxes_as_a_tensor_with_a_gradient_are_read",),
    ),
    Mutant(
        "hrnet-loader-turns-exif", "TokenPose/PPT read images as stored (the HRNet loader ignores EXIF orientation)",
        "src/posetokens/protocols/__init__.py",
        (("    warp=\"size_minus_one\",\n    exif_orientation=False,",
          "    warp=\"size_minus_one\",\n    exif_orientation=True,"),),
        ("tests/test_datasets.py::test_images_are_read_as_the_protocols_official_loader_reads_them[tokenpose-False]",),
    ),
    Mutant(
        "dataset-ignores-protocol-orientation", "training and test read images as the protocol declares",
        "src/posetokens/engine/data.py",
        (("                                  skip_bad_images=cfg.skip_bad_images, gt_clean=protocol.box.gt_clean,\n"
          "                                  exif_orientation=protocol.exif_orientation)",
          "                                  skip_bad_images=cfg.skip_bad_images, gt_clean=protocol.box.gt_clean)"),),
        ("tests/test_datasets.py::test_images_are_read_as_the_protocols_official_loader_reads_them[gtpt-False]",),
    ),
    Mutant(
        "detections-read-turned", "with a detections json, infer reads images as the protocol's loader does",
        "src/posetokens/inference/api.py",
        (("        return self.protocol.exif_orientation if isinstance(box_fn, DetectionsFile) else True",
          "        return True"),),
        ("tests/test_inference.py::test_images_with_a_detections_json_are_read_as_the_protocol_reads_them",),
    ),
    Mutant(
        "stored-protocol-default-fields", "a stored protocol without a newer field takes the registered protocol's",
        "src/posetokens/protocols/__init__.py",
        (("            data = _filled(data, registered.to_dict())", "            pass"),),
        ("tests/test_protocols.py::test_a_stored_protocol_without_a_newer_field_takes_the_registered_value",),
    ),
    Mutant(
        "stored-protocol-nested-defaults", "a stored rule without a newer field takes the registered protocol's too",
        "src/posetokens/protocols/__init__.py",
        (("            out[key] = _filled(out[key], value)", "            pass"),),
        ("tests/test_protocols.py::test_a_stored_protocol_without_a_newer_field_takes_the_registered_value",),
    ),
    Mutant(
        "image-size-unchecked", "a picture of another size than its json entry is refused, or skipped and counted",
        "src/posetokens/data/datasets/coco_style.py",
        (("        if want is not None and got != tuple(want) and not (self.exif_orientation and swapped):",
          "        if False:"),),
        ("tests/test_datasets.py::test_a_picture_of_another_size_than_its_json_entry_is_refused_or_skipped",),
    ),
    Mutant(
        "swapped-size-taken-for-exif", "a json with width and height swapped is refused even where EXIF tags turn",
        "src/posetokens/data/datasets/coco_style.py",
        (("        swapped = flipped and tag >= 5", "        swapped = flipped"),),
        ("tests/test_datasets.py::test_a_picture_of_another_size_than_its_json_entry_is_refused_or_skipped",),
    ),
    Mutant(
        "own-layout-looked-up-by-name", "a checkpoint of one's own skeleton rebuilds the layout it stored",
        "src/posetokens/checkpoint.py",
        (('    if isinstance(mi, Mapping) and str(mi.get("name")).strip().lower() not in available_metainfo():',
          '    if False:'),),
        ("tests/test_engine.py::test_a_skeleton_of_ones_own_trains_tests_and_infers",),
    ),
    Mutant(
        "skeleton-path-stored-relative", "a run stores its skeleton file's path absolute, so test finds it anywhere",
        "src/posetokens/engine/config.py",
        (('    if isinstance(data, dict) and is_skeleton_file(data.get("dataset")):', "    if False:"),),
        ("tests/test_engine.py::test_a_skeleton_of_ones_own_trains_tests_and_infers",),
    ),
    Mutant(
        "skeleton-file-flip-pairs-ignored", "a skeleton file's flip_pairs are the layout's partners",
        "src/posetokens/data/metainfo/__init__.py",
        (("            {\"keypoints\": names, \"skeleton\": links}, name=name, sigmas=sigmas, flip=flip,",
          "            {\"keypoints\": names, \"skeleton\": links}, name=name, sigmas=sigmas, flip=None,"),),
        ("tests/test_metainfo.py::test_a_skeleton_file_gives_the_layout_of_ones_own_dataset",),
    ),
    Mutant(
        "skeleton-names-unchecked", "a json naming other keypoints than its skeleton file is said",
        "src/posetokens/data/datasets/coco_style.py",
        (("        if self.metainfo.name in available_metainfo():\n            return",
          "        if True:\n            return"),),
        ("tests/test_datasets.py::test_a_json_naming_other_keypoints_than_its_skeleton_file_is_said",),
    ),
    Mutant(
        "half-body-without-parts", "a layout that names no upper or lower body joints gets no half-body crops",
        "src/posetokens/data/transforms.py",
        (("        if v is None or not parts or v.sum() < aug.half_body_min_keypoints:",
          "        if v is None or v.sum() < aug.half_body_min_keypoints:"),),
        ("tests/test_transforms.py::test_a_layout_that_names_no_body_parts_gets_no_half_body",),
    ),
    Mutant(
        "test-layout-unchecked", "test refuses a recipe of another keypoint layout than the checkpoint's",
        "src/posetokens/engine/trainer.py",
        (("        _check_test_layout(cfg, trained.metainfo, weights, given)\n", "        pass\n"),),
        ("tests/test_engine.py::test_a_skeleton_of_ones_own_trains_tests_and_infers",),
    ),
    Mutant(
        "override-groups-stay-dicts", "GTPT's groups given as mappings (a recipe, a stored config) build GroupSpecs",
        "src/posetokens/registry.py",
        (("            item = _tuple_item_type(type(cfg), key)  # tuple[SomeCfg, ...]: each mapping builds one",
          "            item = None"),),
        ("tests/test_gtpt.py::test_gtpt_takes_a_keypoint_set_of_ones_own_from_overrides",),
    ),
    Mutant(
        "exif-tag-misread", "the EXIF orientation tag is read from its IFD entry's value",
        "src/posetokens/data/datasets/coco_style.py",
        (("                    tag = int.from_bytes(tiff[e + 8:e + 10], order)",
          "                    tag = int.from_bytes(tiff[e + 8:e + 10], \"big\")"),),
        ("tests/test_datasets.py::test_the_exif_orientation_tag_is_read_as_pil_writes_it",),
    ),
    Mutant(
        "worker-skips-uncounted", "pictures DataLoader workers found unreadable are counted in the epoch's skips",
        "src/posetokens/data/datasets/coco_style.py",
        (("        self._status = self._status.share_memory_()", "        pass"),),
        ("tests/test_engine.py::test_corrupt_image_is_skipped_and_counted_not_fatal",),
    ),
    Mutant(
        "png-exif-turn-refused", "a PNG that OpenCV turns by its EXIF tag is read as the protocol's loader reads it",
        "src/posetokens/data/datasets/coco_style.py",
        (("        if flipped and tag == 1:  # a tag this reader does not parse (PNG, WebP): the decoder's own reading",
          "        if False:  # a tag this reader does not parse (PNG, WebP): the decoder's own reading"),),
        ("tests/test_datasets.py::test_a_png_turned_by_its_exif_tag_is_read_as_the_decoder_reads_it",),
    ),
    Mutant(
        "status-table-stale", "items changed after loading get a table of pictures of their own",
        "src/posetokens/data/datasets/coco_style.py",
        (("        if len(self._slot) != len(self.data_list):", "        if False:"),),
        ("tests/test_datasets.py::test_items_changed_after_loading_get_a_table_of_their_own",),
    ),
    Mutant(
        "home-path-joined-to-cwd", "a stored recipe reads ~ in a path as the home folder",
        "src/posetokens/engine/config.py",
        (("        elif isinstance(value, str) and value.startswith(\"~\"):", "        elif False:"),),
        ("tests/test_engine.py::test_a_stored_recipe_reads_home_relative_paths_as_a_shell_would",),
    ),
    Mutant(
        "tracker-ignores-own-sigmas", "a model of one's own skeleton is tracked by OKS under its file's sigmas",
        "src/posetokens/inference/api.py",
        (("        own = self.metainfo.name not in available_metainfo() and self.metainfo.sigmas is not None",
          "        own = False"),),
        ("tests/test_engine.py::test_a_skeleton_of_ones_own_trains_tests_and_infers",),
    ),
    Mutant(
        "partial-load-by-position", "a partial load gives each keypoint token the checkpoint's of the same name",
        "src/posetokens/convert.py",
        (("        return [where.get(n) for n in names[:rows]]",
          "        return [i if i < src_rows else None for i in range(rows)]"),),
        ("tests/test_engine.py::test_a_coco_run_starts_a_skeleton_of_ones_own",),
    ),
    Mutant(
        "partial-load-map-ignored", "model.weights_keypoints says which checkpoint keypoint each token starts from",
        "src/posetokens/convert.py",
        (("    if keypoint_map is not None:\n        if len(keypoint_map) != rows:",
          "    if keypoint_map is not None and False:\n        if len(keypoint_map) != rows:"),),
        ("tests/test_multiview.py::test_the_recipe_starts_from_a_coco_ppt_s_as_the_official_code_does",),
    ),
    Mutant(
        "partial-load-any-file", "a partial load refuses a file that fits less than half of the model's tensors",
        "src/posetokens/convert.py",
        (("    if fitting < MIN_PARTIAL_SHARE * weights_total or report.share < MIN_PARTIAL_VALUES:",
          "    if False:"),),
        ("tests/test_engine.py::test_a_partial_load_refuses_a_checkpoint_of_another_family",),
    ),
    Mutant(
        "resume-reads-initial-weights", "a resumed run does not read model.weights again (it may be gone)",
        "src/posetokens/engine/trainer.py",
        (("start_from_weights(cfg, raw_model) if ckpt is None else None", "start_from_weights(cfg, raw_model)"),),
        ("tests/test_engine.py::test_a_coco_run_starts_a_skeleton_of_ones_own",),
    ),
    Mutant(
        "map-applied-to-own-layout", "the multi-view recipe's COCO map is not applied to a file of H36M joints",
        "src/posetokens/convert.py",
        (("        if own_layout:  # checked entry by entry all the same",
          "        if False:  # checked entry by entry all the same"),),
        ("tests/test_multiview.py::test_the_recipe_starts_from_a_coco_ppt_s_as_the_official_code_does",),
    ),
    Mutant(
        "resume-forgets-initial-weights", "a resumed run's stored recipe keeps the weights the run started from",
        "src/posetokens/engine/trainer.py",
        (("    if ckpt is not None:  # the weights the run started from",
          "    if False:  # the weights the run started from"),),
        ("tests/test_engine.py::test_a_coco_run_starts_a_skeleton_of_ones_own",),
    ),
    Mutant(
        "own-layout-map-unchecked", "a keypoint map is checked even where the file's own layout keeps its rows",
        "src/posetokens/convert.py",
        (("        if len(keypoint_map) != rows:", "        if len(keypoint_map) != rows and not own_layout:"),),
        ("tests/test_multiview.py::test_the_recipe_starts_from_a_coco_ppt_s_as_the_official_code_does",),
    ),
    Mutant(
        "vfr-jump-kept", "a damaged stream's jump of frame times is said and closed up in the overlay",
        "src/posetokens/media.py",
        (("                if at - self._pts > MAX_GAP_S * self.fps * _TICKS:", "                if False:"),),
        ("tests/test_video_io.py::test_writer_shows_each_frame_at_its_time",),
    ),
    Mutant(
        "video-close-loses-json", "an overlay that fails to close still leaves the json of every frame",
        "src/posetokens/inference/api.py",
        (("                        stopped, video_closed = stopped or e, False", "                        raise"),),
        ("tests/test_video_pipeline.py::test_a_video_writer_that_fails_to_close_still_leaves_the_json",),
    ),
    Mutant(
        "nameless-own-layout-unsaid", "a map applied to a file without names that fits every other tensor is said",
        "src/posetokens/convert.py",
        (("        doubt = src_names is None and same_model and src_rows == rows", "        doubt = False"),),
        ("tests/test_multiview.py::test_the_recipe_starts_from_a_coco_ppt_s_as_the_official_code_does",),
    ),
    Mutant(
        "partial-load-values-ignored", "a partial load refuses a file that gives less than a quarter of the values",
        "src/posetokens/convert.py",
        (("    if fitting < MIN_PARTIAL_SHARE * weights_total or report.share < MIN_PARTIAL_VALUES:",
          "    if fitting < MIN_PARTIAL_SHARE * weights_total:"),),
        ("tests/test_engine.py::test_a_partial_load_refuses_a_checkpoint_of_another_family",),
    ),
    Mutant(
        "timeless-stream-piled-up", "a video whose decoder gives no times keeps one frame per frame of its rate",
        "src/posetokens/inference/api.py",
        (("                known = i == 0 or now > last_ms", "                known = True"),),
        ("tests/test_video_pipeline.py::test_a_video_without_frame_times_keeps_its_rate",),
    ),
    Mutant(
        "vfr-filter-at-stated-rate", "the causal filter steps by the frames' times (a variable frame rate)",
        "src/posetokens/inference/filters.py",
        (("        if t is not None:  # the decoder's times", "        if False:  # the decoder's times"),),
        ("tests/test_filters.py::test_one_euro_steps_at_the_frames_times_by_hand",),
    ),
    Mutant(
        "vfr-overlay-one-frame-per-slot",
        "an H.264 overlay shows each frame of a variable-frame-rate video at its time",
        "src/posetokens/media.py",
        (("                slot = max(self._pts + 1, at)", "                pass"),),
        ("tests/test_video_pipeline.py::test_a_variable_frame_rate_video_keeps_its_timing",),
    ),
    Mutant(
        "vfr-times-not-recorded", "each video frame's record has its decoder time (time_s)",
        "src/posetokens/inference/api.py",
        (("video=True, time_s=now / 1000 if known else None)", "video=True)"),),
        ("tests/test_video_pipeline.py::test_a_variable_frame_rate_video_keeps_its_timing",),
    ),
    Mutant(
        "bf16-gemm-noop-accepted", "bf16-gemm is refused where oneDNN does not apply its math mode (AMD EPYC, Zen 4)",
        "src/posetokens/inference/precision.py",
        (('        if choice.precision == "bf16-gemm" and dev.type == "cpu" and not bf16_gemm_applies():',
          '        if choice.precision == "bf16-gemm" and dev.type == "cpu" and False:'),),
        ("tests/test_precision.py::test_bf16_gemm_where_onednn_ignores_the_mode_is_refused",),
    ),
    Mutant(
        "gemm-in-bfloat16-noop-marked", "gemm_in_bfloat16 refuses where the mode would change nothing",
        "src/posetokens/layers/fuse.py",
        (("    if not bf16_gemm_applies():\n        raise RuntimeError(BF16_GEMM_NOOP)", "    pass"),),
        ("tests/test_fused_linear.py::test_bf16_gemm_applies_says_whether_the_mode_rounds",),
    ),
    Mutant(
        "bf16-conv-mismatch-raised", "bf16 runs a model whose float32 part feeds a convolution (PCT) under autocast",
        "src/posetokens/inference/precision.py",
        (('    named = "dtype" in text or "type (" in text\n', '    named = "dtype" in text\n'),),
        ("tests/test_precision.py::test_bf16_runs_pct[as-built]",),
    ),
    Mutant(
        "grouped-key-padding-unmasked", "the keys the grouped attention appends for the CPU kernel get no weight",
        "src/posetokens/layers/attention.py",
        (("pad_valid = x.new_ones(n - s, dtype=torch.bool), x.new_zeros(pad, dtype=torch.bool)",
          "pad_valid = x.new_ones(n - s, dtype=torch.bool), x.new_ones(pad, dtype=torch.bool)"),),
        ("tests/test_gtpt.py::test_grouped_attention_pads_its_keys_to_the_cpu_vector_width",
         "tests/test_gtpt.py::test_parity_cli[gtpt_t_coco_256x192]"),
    ),
    Mutant(
        "infer-builds-before-refusing-out-as-input", "infer refuses outputs over its inputs before the model speaks",
        "src/posetokens/cli.py",
        (("    check_outputs(source, args.out, draw=", "    (lambda *a, **k: None)(source, args.out, draw="),),
        ("tests/test_errors_inference.py::test_bad_input[infer-folder-onto-itself-random-weights]",
         "tests/test_errors_inference.py::test_bad_input[infer-overlay-onto-itself-random-weights]"),
    ),
    Mutant(
        "infer-checks-options-after-the-model", "infer refuses --det-every or a filter that cannot run before the "
        "model speaks", "src/posetokens/cli.py",
        (("    check_run_options(source, det_every=args.det_every, smooth=smooth, max_frames=args.max_frames)\n", ""),),
        ("tests/test_errors_inference.py::test_bad_input[infer-det-every-on-images-random-weights]",
         "tests/test_errors_inference.py::test_bad_input[infer-filter-on-images-random-weights]",
         "tests/test_errors_inference.py::test_bad_input[infer-savgol-on-a-video-random-weights]"),
    ),
    Mutant(
        "infer-reads-detections-after-the-model", "infer refuses a detections file before the model speaks",
        "src/posetokens/cli.py",
        (("    person_boxes = detections_for(boxes, source, args.bbox_thr)", "    person_boxes = boxes"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-detections-for-other-frames-random-weights]",),
    ),
    Mutant(
        "lift-interrupt-drops-finished-tracks", "lift stopped while lifting writes the tracks it finished",
        "src/posetokens/inference/lifting.py",
        (("    if stopped is not None and not per_track:", "    if stopped is not None:"),),
        ("tests/test_lift.py::test_an_interrupt_while_lifting_keeps_the_finished_tracks",),
    ),
    Mutant(
        "lift-partial-write-unguarded", "a second Ctrl-C while lift writes the finished tracks waits for the file",
        "src/posetokens/inference/lifting.py",
        (("    with signals_deferred(discard=True) if stopped is not None else contextlib.nullcontext():",
          "    with contextlib.nullcontext():"),),
        ("tests/test_lift.py::test_an_interrupt_while_lifting_keeps_the_finished_tracks",),
    ),
    Mutant(
        "shuffle-halves-odd-split", "a ShuffleNet block of odd half-width gets its halves from the whole interleave",
        "src/posetokens/models/backbones/shufflenet.py",
        (("    if c % 2:  # an odd count", "    if False:  # an odd count"),),
        ("tests/test_gtpt.py::test_stem_hands_each_block_its_input_halves_as_dense_tensors",),
    ),
    Mutant(
        "gtpt-kept-token-gets-group-0-gate", "GTPT gates each kept token with its own group's gate",
        "src/posetokens/models/gtpt.py",
        (("(tok * g + torch.arange(g, device=x.device)[:, None]).flatten(1)", "(tok * g).flatten(1)"),),
        ("tests/test_gtpt.py::test_parity_cli[gtpt_t_coco_256x192]",),
    ),
    Mutant(
        "shuffle-halves-swapped", "a stride-1 block gets the shuffled map's halves in channel order",
        "src/posetokens/models/backbones/shufflenet.py",
        (("    return concat_shuffle(a[:, :h], b[:, :h]), concat_shuffle(a[:, h:], b[:, h:])",
          "    return concat_shuffle(a[:, h:], b[:, h:]), concat_shuffle(a[:, :h], b[:, :h])"),),
        ("tests/test_gtpt.py::test_stem_hands_each_block_its_input_halves_as_dense_tensors",
         "tests/test_gtpt.py::test_parity_cli[gtpt_t_coco_256x192]"),
    ),
    Mutant(
        "mhformer-rates-on-the-build-device", "MHFormer builds on the meta device (drop-path rates read on the host)",
        "src/posetokens/models/mhformer.py",
        (("torch.linspace(0, cfg.drop_path_rate, cfg.mhg_depth, device=\"cpu\").tolist()",
          "torch.linspace(0, cfg.drop_path_rate, cfg.mhg_depth).tolist()"),),
        ("tests/test_mhformer.py::test_builds_on_the_meta_device_with_the_paper_parameter_count",
         "tests/test_engine.py::test_every_zoo_model_builds_on_the_meta_device"),
    ),
    Mutant(
        "interrupt-keeps-cut-step-buffers", "an interrupt saves the buffers of the last finished step (BatchNorm's "
        "running statistics a cut forward pass moved are dropped)",
        "src/posetokens/engine/trainer.py",
        (("                _restore_buffers(raw_model, buffers_at_step)  # as they were when the last finished step "
          "ended\n", ""),),
        ("tests/test_engine.py::test_sigint_after_a_forward_pass_keeps_the_buffers_of_the_last_finished_step",),
    ),
    Mutant(
        "work-dir-not-rechecked-at-lock", "a run that wrote the work dir while this one was built is found when the "
        "lock is taken",
        "src/posetokens/engine/trainer.py",
        (("    if seen is not None and not overwrite and now != seen:\n", "    if False:\n"),),
        ("tests/test_engine.py::test_a_run_that_wrote_the_work_dir_while_this_one_was_built_is_kept",),
    ),
    Mutant(
        "gt-area-unchecked", "a ground-truth area that is not a finite number >= 0 is refused (a NaN changed the AP)",
        "src/posetokens/evaluation/coco.py",
        (('        if "area" in ann and not (is_number(ann["area"]) and math.isfinite(ann["area"]) '
          'and ann["area"] >= 0):\n',
          "        if False:\n"),),
        ("tests/test_coco_eval.py::test_ground_truth_errors_name_the_field",),
    ),
    Mutant(
        "gt-checked-at-first-eval", "train and test check the ground truth as COCOeval reads it before any work",
        "src/posetokens/engine/trainer.py",
        (("                check_coco_ground_truth(cfg.data.val_ann, get_metainfo(cfg.data.dataset), protocol.eval.coco_backend,\n"
          "                                        {PERSON_CATEGORY}, \"the model's predictions\")\n",
          "                pass\n"),
         ("            check_coco_ground_truth(cfg.data.val_ann, get_metainfo(cfg.data.dataset), protocol.eval.coco_backend,\n"
          "                                    {PERSON_CATEGORY}, \"the model's predictions\")\n"
          "    metrics", "            pass\n    metrics")),
        ("tests/test_errors_training.py::test_refused_or_reported[val-ann-negative-area]",
         "tests/test_errors_training.py::test_refused_or_reported[test-val-ann-negative-area]"),
    ),
    Mutant(
        "estimator-evals-the-callers-model", "PoseEstimator leaves the caller's model in its training mode",
        "src/posetokens/inference/api.py",
        (("        self.model = model.to(self.device)  # the caller's model",
          "        self.model = model.to(self.device).eval()  #"),),
        ("tests/test_inference.py::test_the_estimator_leaves_the_callers_model_in_its_mode",),
    ),
    Mutant(
        "lift-nan-scores-taken", "lift_sequence refuses non-finite scores for a lifter that takes them",
        "src/posetokens/inference/lifting.py",
        (("        if not np.isfinite(sc).all():  # refused", "        if False:  # refused"),),
        ("tests/test_online_lift.py::test_nan_scores_and_mismatched_lengths_are_refused",),
    ),
    Mutant(
        "null-score-accepted", "a null score in COCO results is refused (a TypeError under --no-rescore, or a "
        "score silently ignored)",
        "src/posetokens/evaluation/coco.py",
        (('            if key in r and (r[key] is not None or key == "score") and (\n',
          "            if key in r and r[key] is not None and (\n"),),
        ("tests/test_coco_eval.py::test_validation_errors_name_the_field",),
    ),
    Mutant(
        "export-opset-unchecked", "export refuses a graph that came out at another opset than asked",
        "src/posetokens/export/onnx.py",
        (("        if written != opset:", "        if False:"),),
        ("tests/test_export.py::test_an_opset_the_exporter_could_not_reach_is_refused_and_nothing_written",),
    ),
    Mutant(
        "lift-json-fields-unchecked", "lift checks a json's frame_id, width, height, bbox and bbox_score by type "
        "when it reads it",
        "src/posetokens/inference/api.py",
        (('        if "frame_id" in r and not is_whole(r["frame_id"]):\n', "        if False:\n"),
         ("            if bs is not None and not (is_number(bs) and math.isfinite(bs)):\n",
          "            if False:\n")),
        ("tests/test_errors_inference.py::test_bad_input[lift-json-frame-id-string]",
         "tests/test_errors_inference.py::test_bad_input[lift-json-bbox-score-string]"),
    ),
    Mutant(
        "gt-repeated-ids-taken", "a ground truth whose annotation ids repeat is refused (COCO's index kept one person)",
        "src/posetokens/evaluation/coco.py",
        (("        if j != i:\n            raise ValueError(f\"{name}: annotations[{i}]: field 'id'",
          "        if False:\n            raise ValueError(f\"{name}: annotations[{i}]: field 'id'"),),
        ("tests/test_coco_eval.py::test_ground_truth_lists_and_ids",),
    ),
    Mutant(
        "xtcocotools-ids-from-0", "the xtcocotools emulation scores an annotation id 0 and num_keypoints against the "
        "flags as xtcocotools does",
        "src/posetokens/evaluation/coco.py",
        (('            ann["id"] = n\n', "            pass\n"),),
        ("tests/test_coco_eval.py::test_the_two_cocoevals_on_an_id_0_and_a_num_keypoints_that_disagrees",),
    ),
    Mutant(
        "mpii-zero-head-skipped", "an MPII sample with a zero head size counts its joints as wrong (the official "
        "division by 0), not left out",
        "src/posetokens/evaluation/functional.py",
        (("    return np.where(mask, d, -1.0)", "    return np.where(mask & (head_size[:, None] > 0), d, -1.0)"),),
        ("tests/test_pck.py::test_a_zero_head_size_counts_its_joints_as_wrong",),
    ),
    Mutant(
        "test-no-boxes-left", "test with detections that leave no box names the file (was NumPy's concatenate error)",
        "src/posetokens/data/datasets/coco_style.py",
        (('        if mode == "test" and not self.data_list:', '        if False:'),),
        ("tests/test_errors_training.py::test_refused_or_reported[test-val-det-empty]",),
    ),
    Mutant(
        "launcher-overrides-ignored-sigint",
        "the launcher leaves a SIGINT inherited ignored (a background job) ignored",
        "src/posetokens_launch.py",
        (("    deferring = previous is _signal.default_int_handler", "    deferring = True"),),
        ("tests/test_runtime.py::test_ctrl_c_inherited_ignored_stays_ignored",),
    ),
    Mutant(
        "gt-quirks-said-every-evaluation", "a warning about the ground truth is said once a process, not at every "
        "evaluation of a training",
        "src/posetokens/runtime.py",
        (("    if _SAID is None or text not in _SAID:", "    if True:"),),
        ("tests/test_coco_eval.py::test_the_two_cocoevals_on_an_id_0_and_a_num_keypoints_that_disagrees",),
    ),
    Mutant(
        "api-arrays-of-text-read", "the Python API refuses keypoints, scores and boxes that are not numbers (text "
        "NumPy would read as numbers, a generator, None)",
        "src/posetokens/runtime.py",
        (('    if arr.dtype.kind not in "iuf":\n        kind = {', '    if arr.dtype.kind not in "iufUSO":\n        kind = {'),),
        ("tests/test_lift.py::test_lift_sequence_says_what_is_wrong_in_one_line",),
    ),
    Mutant(
        "lift-json-frames-out-of-order", "lift refuses a json whose frame ids repeat or go back (the records are the "
        "frames in order)",
        "src/posetokens/inference/api.py",
        (("    if (steps < 1).any():", "    if False:"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-json-frame-id-repeated]",),
    ),
    Mutant(
        "unknown-option-after-missing", "an unknown option is named before a missing argument (posetokens --bogus said "
        "the command was required)",
        "src/posetokens/cli.py",
        (("            if unknown:\n                message =", "            if False:\n                message ="),),
        ("tests/test_engine.py::test_cli_names_an_unknown_option_before_a_missing_argument",),
    ),
    Mutant(
        "lift-2d-model-flag-unnamed", "lift names --pose2d-weights when it holds a model of another task (the "
        "estimator's message told the user to use lift)",
        "src/posetokens/inference/lifting.py",
        (("        except NotTopDownError as e:", "        except ZeroDivisionError as e:"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-pose2d-weights-a-lifter]",),
    ),
    Mutant(
        "streamed-results-move-unnamed", "a video's streamed results json that cannot be moved to its path is kept "
        "and named",
        "src/posetokens/fileio.py",
        (("            except OSError as e:  # e.g. a folder made",
          "            except ZeroDivisionError as e:  # e.g."),),
        ("tests/test_errors_inference.py::test_a_folder_made_at_the_path_of_a_streamed_array_keeps_the_finished_file",),
    ),
    Mutant(
        "test-coverage-names-predictions", "test's warning about images without a prediction names the detections "
        "file",
        "src/posetokens/engine/trainer.py",
        (('source=f"the predictions on {boxes}")', "source=None)"),),
        ("tests/test_errors_training.py::test_refused_or_reported[test-val-det-some-images]",),
    ),
    Mutant(
        "online-scores-checked-by-model", "online lifting checks the scores for every lifter, not only those that "
        "read them",
        "src/posetokens/inference/online.py",
        (("        if s.size != 17 or not np.isfinite(s).all():  # a NaN",
          "        if self.channels == 3 and (s.size != 17 or not np.isfinite(s).all()):  # a NaN"),),
        ("tests/test_online_lift.py::test_nan_scores_and_mismatched_lengths_are_refused",),
    ),
    Mutant(
        "lift-scores-checked-by-model", "lift_sequence checks the scores for every lifter, not only those that read "
        "them",
        "src/posetokens/inference/lifting.py",
        (("        if not np.isfinite(sc).all():  # refused",
          "        if getattr(model.cfg, \"in_channels\", 2) == 3 and not np.isfinite(sc).all():  # refused"),),
        ("tests/test_lift.py::test_lift_sequence_says_what_is_wrong_in_one_line",),
    ),
    Mutant(
        "box-outside-image-taken", "a box wholly outside its image is left out with a warning (one far off made "
        "the crop's warp singular)",
        "src/posetokens/inference/api.py",
        (("            if off.any():  # nobody to see there", "            if False:  # nobody to see there"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-box-outside-the-image]",),
    ),
    Mutant(
        "far-off-points-unclipped", "a link to a far-off point is drawn as its visible part (3e9 px overflowed "
        "cv2's int coordinates)",
        "src/posetokens/inference/visualize.py",
        (("            elif ok[a] and ok[b] and (seg := _clip_segment(pts[a], pts[b], lo, hi)) is not None:",
          "            elif ok[a] and ok[b] and (seg := (pts[a], pts[b])) is not None:"),),
        ("tests/test_quickstart.py::test_far_off_points_and_boxes_are_drawn_as_their_visible_part",),
    ),
    Mutant(
        "track-filter-blind-to-gaps", "infer's per-track filter counts the frames a track was missing (a gap "
        "restarts it, or under hold counts the elapsed time)",
        "src/posetokens/inference/api.py",
        (("        filt.skip(res.frame_id - last - 1)", "        filt.skip(0)"),),
        ("tests/test_video_pipeline.py::test_infer_filters_a_track_across_frames_without_it",),
    ),
    Mutant(
        "lift-ctrl-c-drops-the-3d", "Ctrl-C in lift's 2D pass ends the input and the frames read are lifted (a camera "
        "or a stream has no other end)",
        "src/posetokens/inference/lifting.py",
        (("            if e.signum != signal.SIGINT or not", "            if True or not"),),
        ("tests/test_errors_inference.py::test_ctrl_c_ends_the_input_of_lift_and_the_frames_read_are_lifted",),
    ),
    Mutant(
        "lift-ignores-flags", "lift refuses --image-size on a video and --lookahead without --online (both were "
        "ignored without a word)",
        "src/posetokens/inference/lifting.py",
        (("    if image_size is not None and not is_json:", "    if False:"),
         ("    if lookahead and not online:", "    if False:")),
        ("tests/test_errors_inference.py::test_bad_input[lift-video-image-size]",
         "tests/test_errors_inference.py::test_bad_input[lift-lookahead-without-online]"),
    ),
    Mutant(
        "output-kind-unchecked", "infer and lift refuse an output of the wrong kind before any work (a file where "
        "infer's tokens folder goes, a folder where lift's 3D json goes)",
        "src/posetokens/fileio.py",
        (("        if path.exists() and path.is_dir() != folder:", "        if False:"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-tokens-folder-is-a-file]",
         "tests/test_errors_inference.py::test_bad_input[lift-3d-json-is-a-folder]"),
    ),
    Mutant(
        "vfr-called-truncated", "a variable frame rate video that plays to its stated end is said as such, not as "
        "truncated",
        "src/posetokens/inference/api.py",
        (("            if seconds and (last_ms + 2 * max(1000 / self.fps, step_ms)) / 1000 >= seconds:",
          "            if False:"),),
        ("tests/test_video_io.py::test_a_variable_frame_rate_video_is_said_as_such_not_as_truncated",),
    ),
    Mutant(
        "lift-filters-infers-2d-again", "lift of infer's json filters the 3D only when the records say infer filtered "
        "the 2D",
        "src/posetokens/inference/lifting.py",
        (("                if filtered_2d is None:  # 2D pixels", "                if True:  # 2D pixels"),),
        ("tests/test_video_pipeline.py::test_lift_of_infers_json_does_not_filter_the_2d_a_second_time",),
    ),
    Mutant(
        "zoo-official-column-empty", "the zoo tables fill their 'official code' column (every row was a cell short)",
        "scripts/docs_hooks.py",
        (('                    f"{official_repo(name)} |")', '                    "")'),),
        ("tests/test_docs.py::test_zoo_tables_fill_every_column",),
    ),
    Mutant(
        "zoo-figures-rounded-twice", "the stored figures keep 6 decimals, so the tables print them without a second "
        "rounding (TokenPose-L/D6's 9.064 printed 9.065)",
        "src/posetokens/engine/zoo.py",
        (('        "paper_gflops": round(paper_gflops(model, family.paper_counter), 6),',
          '        "paper_gflops": round(paper_gflops(model, family.paper_counter), 4),'),),
        ("tests/test_docs.py::test_zoo_figures_are_current",),
    ),
    Mutant(
        "convert-errors-unnamed", "a converter's own check (the sine table's shape or values) names the file",
        "src/posetokens/convert.py",
        (('        raise CheckpointMismatchError(str(e) if source in str(e) else f"{source}: {e}") from None',
          "        raise"),),
        ("tests/test_export.py::test_convert_takes_a_half_precision_copy_and_refuses_another_encoding",),
    ),
    Mutant(
        "missing-sine-table-converts", "an official TokenPose/PPT file without its sine table is refused (a config "
        "with no encoding would have run with ours)",
        "src/posetokens/models/tokenpose.py",
        (('    if not has_pe:\n        raise missing_sine_pos_embed("TokenPose/PPT")',
          '    if False:\n        raise missing_sine_pos_embed("TokenPose/PPT")'),),
        ("tests/test_export.py::test_convert_takes_a_half_precision_copy_and_refuses_another_encoding",),
    ),
    Mutant(
        "parity-trusts-the-converter", "parity finds every official tensor in the loaded model, past the converter "
        "(a zeroed key bias passed)",
        "src/posetokens/parity/__init__.py",
        (("    return float(sum(not found(v.detach().float()) for v in official.values()",
          "    return float(sum(False for v in official.values()"),),
        ("tests/test_mixste.py::test_parity_finds_every_official_tensor_whatever_the_converter_did",),
    ),
    Mutant(
        "lift-lifts-an-earlier-json", "Ctrl-C in lift's 2D pass lifts the json this run finished, not one an earlier "
        "run left in --out",
        "src/posetokens/inference/lifting.py",
        (("            if e.signum != signal.SIGINT or not e.files:",
          '            if e.signum != signal.SIGINT or not (out / f"{stem}.json").is_file():'),
         ('            res2d = {"files": e.files[:1]}', '            res2d = {"files": [str(out / f"{stem}.json")]}')),
        ("tests/test_lift.py::test_ctrl_c_in_the_2d_pass_lifts_this_runs_frames_only",),
    ),
    Mutant(
        "predict-drops-given-boxes", "predict refuses a given box outside the image (its result has one pose per box; "
        "it was dropped)",
        "src/posetokens/inference/api.py",
        (("            if len(off):  # the result has one pose per given box", "            if False:  # the"),),
        ("tests/test_errors_inference.py::test_bad_input[predict-box-outside]",),
    ),
    Mutant(
        "lift-flip-refused-after-2d", "lift refuses the flip test of a pruned lifter through onnxruntime before "
        "anything is exported or run (it came after the whole 2D pass)",
        "src/posetokens/inference/lifting.py",
        (("    check_model_choice(lifter, choice, flip_test=flip_test)  # before the export",
          "    pass  # before the export"),),
        ("tests/test_errors_inference.py::test_bad_input[lift-flip-pruned-onnxruntime]",),
    ),
    Mutant(
        "infer-tokens-refused-after-export", "infer refuses --show-tokens through onnxruntime before the model is "
        "built and exported",
        "src/posetokens/cli.py",
        (("    check_model_choice(None, parse_choice(args.precision, args.runtime), show_tokens=args.show_tokens)",
          "    pass"),),
        ("tests/test_errors_inference.py::test_bad_input[infer-show-tokens-onnxruntime]",),
    ),
    Mutant(
        "export-leaves-eval", "export_onnx leaves the model it was given in its modes (a model being trained was left "
        "in eval)",
        "src/posetokens/export/onnx.py",
        (("    with evaluating(m):  # a model being trained", "    with torch.no_grad() if m.eval() else "
          "torch.no_grad():  # a model being trained"),),
        ("tests/test_export.py::test_export_metadata_describes_the_model_it_was_given",),
    ),
    Mutant(
        "export-metadata-without-keypoints", "an export from an official file records the zoo model's keypoint "
        "definition (it recorded null)",
        "src/posetokens/export/onnx.py",
        (("                           keypoints(m, m.zoo_name, trained.metainfo))",
          "                           trained.metainfo)"),),
        ("tests/test_export.py::test_export_metadata_describes_the_model_it_was_given",),
    ),
    Mutant(
        "export-opset-checked-late", "an opset outside what onnx and onnxruntime know is refused before anything is "
        "built (it was exported, then refused)",
        "src/posetokens/export/onnx.py",
        (("    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= newest:",
          "    if False:"),),
        ("tests/test_export.py::test_export_refuses_a_bad_opset_before_building_and_names_its_name_argument",),
    ),
    Mutant(
        "onednn-cap-ignored", "bfloat16 is refused where ONEDNN_MAX_CPU_ISA keeps oneDNN below it (it was emulated, "
        "or bf16-gemm ran float32)",
        "src/posetokens/inference/precision.py",
        (('        if cap and cap not in ("ALL", "DEFAULT")', '        if False and cap not in ("ALL", "DEFAULT")'),),
        ("tests/test_precision.py::test_bf16_is_refused_where_onednn_is_capped_below_it",),
    ),
    Mutant(
        "ctrl-c-while-loading-traces", "Ctrl-C while the command imports torch is one line, not a traceback",
        "src/posetokens_launch.py",
        (("    deferring = previous is _signal.default_int_handler", "    deferring = False"),),
        ("tests/test_runtime.py::test_ctrl_c_while_torch_loads_is_one_line",),
    ),
    # session 27: the Python API and a user's own COCO-format dataset
    Mutant(
        "lift-ignores-weights-of-a-module", "lift refuses weights given beside a built module (they were ignored)",
        "src/posetokens/inference/lifting.py",
        (("        if weights is not None:  # was ignored", "        if False:  # was ignored"),),
        ("tests/test_lift.py::test_lift_of_a_given_module_takes_no_weights_and_leaves_its_mode",),
    ),
    Mutant(
        "lift-evals-the-callers-module", "lift leaves the caller's module in its training mode",
        "src/posetokens/inference/lifting.py",
        (("optimize_for_inference(lifter.to(dev), channels_last=False)",
          "optimize_for_inference(lifter.to(dev).eval(), channels_last=False)"),),
        ("tests/test_lift.py::test_lift_of_a_given_module_takes_no_weights_and_leaves_its_mode",),
    ),
    Mutant(
        "filter-name-not-taken", "a filter name is taken wherever a FilterConfig is (infer, lift, OnlineLifter)",
        "src/posetokens/inference/filters.py",
        (("    if isinstance(value, str):\n        return make_filter(value)", "    if False:\n        pass"),),
        ("tests/test_online_lift.py::test_filter_names_and_a_push_after_flush",
         "tests/test_inference.py::test_infer_takes_a_filter_name_and_python_messages_name_python_arguments"),
    ),
    Mutant(
        "online-push-after-flush", "OnlineLifter refuses a push after flush() until reset()",
        "src/posetokens/inference/online.py",
        (("        if self.flushed:  # went on", "        if False:  # went on"),),
        ("tests/test_online_lift.py::test_filter_names_and_a_push_after_flush",),
    ),
    Mutant(
        "results-stop-at-unreadable-image", "est(folder) skips an unreadable image with a warning, as infer does",
        "src/posetokens/inference/api.py",
        (("frames(on_skip if src.kind == \"images\"", "frames(None if src.kind == \"images\""),),
        ("tests/test_inference.py::test_results_of_a_folder_skip_an_unreadable_image_as_infer_does",),
    ),
    Mutant(
        "results-of-a-video-untracked", "est(video) tracks its people as infer does (its results had no track ids)",
        "src/posetokens/inference/api.py",
        (("        if src.kind in (\"video\", \"stream\"):\n            return PoseTracker(",
          "        if False:\n            return PoseTracker("),),
        ("tests/test_inference.py::test_video_whole_frame",),
    ),
    Mutant(
        "carried-box-fixed-threshold", "a PoseTracker run by an estimator takes its default_kpt_thr (GTPT's scores)",
        "src/posetokens/inference/api.py",
        (("        if tracker is not None:  # the threshold of a kpt_thr=None tracker",
          "        if False:  # the threshold of a kpt_thr=None tracker"),),
        ("tests/test_video_pipeline.py::test_a_carried_box_takes_the_estimators_threshold",),
    ),
    Mutant(
        "infer-kpt-thr-unchecked", "infer refuses a kpt_thr that is not a number before any work",
        "src/posetokens/inference/api.py",
        (("        if not (is_number(kpt_thr) and math.isfinite(kpt_thr)):  # failed at the first drawing",
          "        if False:  # failed at the first drawing"),),
        ("tests/test_video_pipeline.py::test_a_carried_box_takes_the_estimators_threshold",),
    ),
    Mutant(
        "infer-wraps-a-given-tracker", "infer runs a PoseTracker given as boxes as it is (its det_every was dropped)",
        "src/posetokens/inference/api.py",
        (("        if isinstance(base_fn, PoseTracker):\n            if det_every != 1:",
          "        if False:\n            if det_every != 1:"),),
        ("tests/test_video_pipeline.py::test_infer_runs_a_given_pose_tracker_as_it_is",),
    ),
    Mutant(
        "unpredicted-category-counts-unscored-people", "a category whose only people COCOeval does not score (crowd, "
        "unlisted image) is not refused",
        "src/posetokens/evaluation/coco.py",
        (("    unpredicted = sorted({int(a.get(\"category_id\", 1)) for a in _scored_people(data)}",
          "    unpredicted = sorted({int(a.get(\"category_id\", 1)) for a in data[\"annotations\"] if _labelled(a)}"),),
        ("tests/test_coco_eval.py::test_a_ground_truth_category_without_predictions_is_refused",),
    ),
    Mutant(
        "python-messages-name-flags", "messages reached from Python name the Python arguments, the CLI its flags",
        "src/posetokens/runtime.py",
        (("    if _COMMAND_LINE.get():\n        flag", "    if True:\n        flag"),),
        ("tests/test_inference.py::test_infer_takes_a_filter_name_and_python_messages_name_python_arguments",),
    ),
    Mutant(
        "repeated-image-id-kept", "a repeated image id is refused (its people were paired with another picture)",
        "src/posetokens/data/datasets/coco_style.py",
        (("        if j != i:\n            raise ValueError(f\"{name}: images[{i}]", "        if False:\n            raise "
          "ValueError(f\"{name}: images[{i}]"),),
        ("tests/test_datasets.py::test_image_ids_are_integers_given_once",
         "tests/test_coco_eval.py::test_repeated_image_ids_in_the_ground_truth_are_refused"),
    ),
    Mutant(
        "train-category-unchecked", "training refuses a category_id its json does not list, as evaluation does",
        "src/posetokens/data/datasets/coco_style.py",
        (("            if self._categories is not None and not", "            if False and not"),),
        ("tests/test_datasets.py::test_a_category_not_listed_is_refused_in_training_as_in_evaluation",),
    ),
    Mutant(
        "eval-averages-an-unpredicted-category", "a ground-truth category that no prediction names is refused",
        "src/posetokens/evaluation/coco.py",
        (("    if unpredicted:\n        raise ValueError(f\"{gt_name}: annotated people of categor",
          "    if False:\n        raise ValueError(f\"{gt_name}: annotated people of categor"),),
        ("tests/test_coco_eval.py::test_a_ground_truth_category_without_predictions_is_refused",),
    ),
    Mutant(
        "truncated-jpeg-trained-on", "train and test refuse a truncated JPEG, as infer does",
        "src/posetokens/data/datasets/coco_style.py",
        (("    problem = image_problem(data)  # OpenCV", "    problem = None  # OpenCV"),),
        ("tests/test_datasets.py::test_a_truncated_jpeg_is_unreadable_for_training_and_evaluation",),
    ),
    Mutant(
        "box-beyond-image-uncounted", "a training box reaching past its image is counted",
        "src/posetokens/data/datasets/coco_style.py",
        (("                self._count(self._marked, \"bbox_beyond_image\")", "                pass"),),
        ("tests/test_datasets.py::test_boxes_beyond_their_image_are_counted",),
    ),
    Mutant(
        "training-inputs-found-late", "a missing image folder, an empty annotation list and a missing val image are "
        "refused before the first step",
        "src/posetokens/engine/data.py",
        (("    if img_dir and not Path(img_dir).is_dir():", "    if False:"),),
        ("tests/test_engine.py::test_a_dataset_that_cannot_train_is_named_before_any_step",),
    ),
)


# ------------------------------------------------------------------------------------------------ helpers
def shared_folder() -> Path:
    """The shared folder the tests read (``POSETOKENS_SHARED`` or ``../shared``), as tests/conftest.py finds it."""
    path = Path(os.environ.get("POSETOKENS_SHARED", REPO.parent / "shared")).resolve()
    if not (path / "parity").is_dir() or not (path / "data").is_dir():
        raise SystemExit(f"mutate: shared folder not found: {path} (expected ../shared beside the repo, holding "
                         "parity/ and data/; set POSETOKENS_SHARED to its path)")
    return path


def mutated_text(m: Mutant, text: str) -> str:
    """``text`` with every patch of ``m`` applied; each anchor must occur exactly once."""
    for old, new in m.patches:
        n = text.count(old)
        if n != 1:
            raise SystemExit(f"mutate: mutant {m.name}: anchor found {n} times in {m.path} (expected once; the code "
                             f"changed, update the anchor):\n{old}")
        text = text.replace(old, new)
    return text


def check_mutants(mutants: tuple[Mutant, ...]) -> None:
    """Every anchor exactly once in the working tree's file; every selected test file exists; names unique."""
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise SystemExit(f"mutate: duplicate mutant names in {names}")
    for m in mutants:
        mutated_text(m, (REPO / m.path).read_text())
        for t in m.tests:
            if not (REPO / t.split("::")[0]).is_file():
                raise SystemExit(f"mutate: mutant {m.name}: test file {t.split('::')[0]} does not exist")


GUARD = '''"""pytest plugin of scripts/mutate.py: refuse to run unless posetokens comes from the mutated copy."""
import os

import pytest


def pytest_configure(config):
    import posetokens

    root = os.environ["POSETOKENS_MUTATE_ROOT"]
    where = os.path.realpath(posetokens.__file__)
    if not where.startswith(root + os.sep):
        raise pytest.UsageError(f"mutate: posetokens imported from {where}, not from the mutated copy {root}")
'''


def make_copy(root: Path) -> None:
    """Copy what the tests need into ``root``; write the guard plugin beside it."""
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=IGNORED)
        else:
            shutil.copy2(src, root / name)
    (root / "_mutate_plugin").mkdir()
    (root / "_mutate_plugin" / "_mutate_guard.py").write_text(GUARD)


def first_failure(output: str) -> str:
    """The first ``FAILED``/``ERROR`` node of pytest's short summary, or the last output line."""
    for line in output.splitlines():
        if re.match(r"^(FAILED|ERROR) ", line):
            return line.split(" - ")[0]
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


#: heavy third-party modules the tests import, imported once by the server every pytest run is forked from
#: (unless ``--fresh``); never ``posetokens`` or the tests, which each run imports from its copy
PRELOAD = ("torch", "numpy", "cv2", "yaml", "pytest", "pycocotools.coco", "matplotlib", "onnx", "scipy.stats")


def _pytest_env(root: Path, shared: Path) -> dict[str, str]:
    """The environment of a pytest run in the copy at ``root``: its ``src`` and the guard plugin ahead of the
    editable install (for the subprocesses tests start as well)."""
    return {"PYTHONPATH": os.pathsep.join([str(root / "src"), str(root / "_mutate_plugin")]),
            "POSETOKENS_SHARED": str(shared), "POSETOKENS_MUTATE_ROOT": str(root.resolve()),
            "PYTHONDONTWRITEBYTECODE": "1"}


def _pytest_args(args: list[str]) -> list[str]:
    return ["-q", "-m", "not slow", "-p", "no:cacheprovider", "-p", "_mutate_guard", *args]


def _forked_pytest(root: str, env: dict[str, str], args: list[str], out: str) -> None:
    """The body of a forked run: pytest in this process, in the copy at ``root``, output into the file ``out`` and
    pytest's exit code into ``out + ".rc"`` (the only code the parent trusts: a child that fails before or after
    pytest, here or in multiprocessing, writes none, which counts as an ERROR, never as caught).

    The process is made to look like ``python -m pytest`` started in ``root``: its argv, ``sys.path`` (the copy's
    root, ``src`` and the guard plugin first; not this script's folder), multiprocessing's default start method
    (the forkserver's children inherit "forkserver"), and the atexit handlers run at the end. What differs is that
    :data:`PRELOAD` is imported already and ``__main__`` is this script."""
    code = 70
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(root)
        os.environ.update(env)
        here = str(Path(__file__).resolve().parent)
        sys.path[:] = [root, *env["PYTHONPATH"].split(os.pathsep), *(p for p in sys.path if p and p != here)]
        sys.argv[:] = ["pytest", *_pytest_args(args)]
        sys.dont_write_bytecode = True
        multiprocessing.set_start_method(None, force=True)
        import pytest

        code = int(pytest.main(_pytest_args(args)))
        atexit._run_exitfuncs()
        Path(out + ".rc").write_text(str(code))
    except BaseException:  # noqa: BLE001 (the script's own failure: said in the output, and an ERROR)
        traceback.print_exc()
    sys.exit(code)  # through multiprocessing's exit, which runs the finalizers (semaphores the tests made)


@functools.cache
def _fork_context() -> multiprocessing.context.ForkServerContext:
    """The forkserver context (multiprocessing starts its server, which imports :data:`PRELOAD`, on the first run)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["__main__", *PRELOAD])
    return ctx


def run_pytest_forked(root: Path, shared: Path, args: list[str], timeout: float) -> tuple[int | None, str]:
    """:func:`run_pytest`, forked from a server that imported :data:`PRELOAD` once (about 2.5 s less start-up per
    run than a fresh interpreter). A run whose exit status the server lost (multiprocessing reports 255 when it
    cannot read it) is run once more: seen once, on the first run of a fresh clone's CI, where pytest had written
    its code; the second run must give its own verdict."""
    code, output = _run_pytest_forked_once(root, shared, args, timeout)
    if code == 70 and "ended with exit code 255 and pytest's code" in output:
        code, output = _run_pytest_forked_once(root, shared, args, timeout)
    return code, output


def _run_pytest_forked_once(root: Path, shared: Path, args: list[str], timeout: float) -> tuple[int | None, str]:
    out, rc = root / "_mutate_output.txt", root / "_mutate_output.txt.rc"
    rc.unlink(missing_ok=True)
    proc = _fork_context().Process(target=_forked_pytest, args=(str(root), _pytest_env(root, shared), args, str(out)))
    proc.start()
    proc.join(timeout)
    timed_out = proc.is_alive()
    if timed_out:
        proc.kill()
        proc.join()
    output = out.read_text(errors="replace") if out.exists() else ""
    code = rc.read_text() if rc.exists() else ""
    out.unlink(missing_ok=True)
    rc.unlink(missing_ok=True)
    if timed_out:
        return None, output + f"\n(timed out after {timeout:.0f} s)"
    if not code.isdigit() or int(code) != proc.exitcode:
        return 70, output + (f"\n(the forked run ended with exit code {proc.exitcode} and pytest's code "
                             f"{code or 'unwritten'}: no verdict)")
    return int(code), output


def run_pytest(root: Path, shared: Path, args: list[str], timeout: float) -> tuple[int | None, str]:
    """``python -m pytest -q ARGS`` in the copy at ``root`` importing the copy's ``posetokens``; returns (exit code,
    output), exit code None on timeout."""
    env = dict(os.environ, **_pytest_env(root, shared))
    cmd = [sys.executable, "-m", "pytest", *_pytest_args(args)]
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out + f"\n(timed out after {timeout:.0f} s)"
    return proc.returncode, proc.stdout + proc.stderr


def last_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def run_mutant(m: Mutant, root: Path, shared: Path, timeout: float,
               explore: bool = False, fresh: bool = False) -> tuple[str, float, str, str]:
    """Apply ``m`` in the copy at ``root``, run its tests, restore; returns (status, seconds, detail, output).
    ``explore``: run every selected test (no ``-x``) and print each failure and the slowest durations.
    ``fresh``: pytest in a fresh interpreter instead of forked from the preloaded server."""
    target = root / m.path
    original = target.read_text()
    mutated = mutated_text(m, original)
    t0 = time.perf_counter()
    try:
        compile(mutated, str(target), "exec")  # a mutant that does not compile would be "caught" for nothing
    except SyntaxError as e:
        return "ERROR", 0.0, f"the mutated {m.path} does not compile: {e}", ""
    target.write_text(mutated)
    try:
        run = run_pytest if fresh else run_pytest_forked
        rc, output = run(root, shared, [*(["-rf", "--durations=15"] if explore else ["-x"]), *m.tests], timeout)
    finally:
        target.write_text(original)
    status = {1: "caught", 0: "SURVIVED"}.get(rc, "ERROR")  # 1: tests ran and failed; 2-5: no verdict
    detail = first_failure(output) if status == "caught" else last_line(output)
    if status == "ERROR":
        detail = f"pytest exit {rc}: {detail}"
    return status, time.perf_counter() - t0, detail, output


def run_baseline(mutants: tuple[Mutant, ...], root: Path, shared: Path, timeout: float, fresh: bool = False) -> bool:
    """Every selected test, unmutated, in the copy: they must pass, or a failure under a mutant proves nothing."""
    tests = list(dict.fromkeys(t for m in mutants for t in m.tests))
    t0 = time.perf_counter()
    rc, output = (run_pytest if fresh else run_pytest_forked)(root, shared, tests, timeout)
    ok = rc == 0
    print(f"{'ok' if ok else 'BROKEN':<8} {'baseline (no mutant)':<{max(len(m.name) for m in mutants)}} "
          f"{time.perf_counter() - t0:6.1f} s  {last_line(output)}", flush=True)
    if not ok:
        print(output[-4000:], flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command line entry (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python scripts/mutate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests, then exit")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the first run of every selected test without a mutant (it must pass)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant before it counts as ERROR")
    ap.add_argument("--jobs", type=int, default=1,
                    help="mutants run at a time, each in its own copy (a mutant's tests are mostly start-up)")
    ap.add_argument("--fresh", action="store_true",
                    help="run pytest in a fresh interpreter each time, not forked from one that imported torch once")
    ap.add_argument("-v", "--verbose", action="store_true", help="print pytest's output of every mutant")
    ap.add_argument("--tests", nargs="+", metavar="NODE",
                    help="explore: run these tests (all, no -x) against the --only mutants instead of their own")
    args = ap.parse_args(argv)

    mutants = MUTANTS
    if args.tests:
        if not args.only:
            ap.error("--tests needs --only")
        mutants = tuple(dataclasses.replace(m, tests=tuple(args.tests)) for m in MUTANTS)
    check_mutants(mutants if not args.only else tuple(m for m in mutants if m.name in args.only))
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTANTS})
        if unknown:
            ap.error(f"unknown mutant(s) {unknown}; known: {[m.name for m in MUTANTS]}")
        mutants = tuple(m for m in mutants if m.name in args.only)
    width = max(len(m.name) for m in mutants)
    if args.list:
        for m in mutants:
            print(f"{m.name:<{width}}  {m.path}: {m.claim}\n{'':<{width}}  tests: {' '.join(m.tests)}")
        return 0

    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    shared = shared_folder()
    roots = [Path(tempfile.mkdtemp(prefix="posetokens-mutate-")) for _ in range(min(args.jobs, len(mutants)))]
    root = roots[0]
    t_all = time.perf_counter()
    results: list[tuple[Mutant, str]] = []
    try:
        for r in roots:
            make_copy(r)
        print(f"mutate: {len(mutants)} mutants in {len(roots)} cop{'y' if len(roots) == 1 else 'ies'} at "
              f"{', '.join(map(str, roots))} (shared: {shared})", flush=True)
        if (not args.tests and not args.no_baseline
                and not run_baseline(mutants, root, shared, args.timeout, args.fresh)):
            print("mutate: the selected tests fail without a mutant; fix them first")
            print(f"0 passed, {len(mutants)} failed")
            return 1
        free: queue.Queue[Path] = queue.Queue()
        for r in roots:
            free.put(r)
        if not args.fresh:  # the fork server started here, not by two jobs' first runs at once
            _fork_context()
            multiprocessing.forkserver.ensure_running()

        def run_in_a_free_copy(m: Mutant) -> tuple[str, float, str, str]:
            r = free.get()  # each copy holds one mutant at a time
            try:
                return run_mutant(m, r, shared, args.timeout, explore=bool(args.tests), fresh=args.fresh)
            finally:
                free.put(r)

        with ThreadPoolExecutor(len(roots)) as pool:  # results in the table's order
            outcomes = pool.map(run_in_a_free_copy, mutants)
            for m, (status, seconds, detail, output) in zip(mutants, outcomes):
                results.append((m, status))
                print(f"{status:<8} {m.name:<{width}} {seconds:6.1f} s  {detail}", flush=True)
                if args.verbose or args.tests or status == "ERROR":
                    print(output[-4000:], flush=True)
    finally:
        for r in roots:
            if args.keep:
                print(f"mutate: copy kept at {r}")
            else:
                shutil.rmtree(r, ignore_errors=True)
    caught = sum(s == "caught" for _, s in results)
    missed = [m.name for m, s in results if s != "caught"]
    print(f"mutate: {caught}/{len(results)} mutants caught in {time.perf_counter() - t_all:.0f} s"
          + (f"; not caught: {', '.join(missed)}" if missed else ""))
    print(f"{caught} passed, {len(results) - caught} failed")
    return 0 if not missed else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # the copies are removed on the way out; the working tree was never touched
        raise SystemExit("mutate: interrupted; no verdict (the temporary copies are removed)") from None
