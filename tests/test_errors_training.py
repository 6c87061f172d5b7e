"""Issue 18, the training side: work dirs, resume, config values, checkpoints and evaluation inputs.

One table of hostile command lines (:data:`CASES`). Each row gives the arguments, the exit code, a regex the
one-line message (or the logged warning) must match, and whether every file of the sandbox must stay as it was:
a refused command leaves every byte where it was (hashed before and after) and creates nothing, not even the
work dir. The expected messages are written here from the issue's cases, not copied from the code.

Runs in-process through ``posetokens.cli.main`` (the CLI's one place for user errors), on a 64x48 PPT trained once
for one epoch on 12 synthetic images.
"""

from __future__ import annotations

import hashlib
import json
import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA

from posetokens import create_model
from posetokens.checkpoint import atomic_save, describe
from posetokens.cli import main as cli
from posetokens.data.synthetic import generate_splits
from posetokens.protocols import get_protocol

REPO = Path(__file__).resolve().parents[1]
LIFTER_SMALL = {"num_frames": 9, "dim": 16, "depth": 2, "heads": 2, "mlp_hidden": 32, "prune": {"keep": 3, "layer": 1}}
GT_COCO = DATA / "coco" / "test_coco.json"

# the recipe of tests/test_engine.py's TINY, for one epoch: 12 images, batch 4
TINY_YAML = """\
model:
  name: ppt_s_coco_256x192
  overrides: {{image_size: [64, 48], dim: 32, depth: 2, heads: 2, patch_size: [2, 2], head_hidden: 64,
              prune: {{layers: [0], keep_ratio: 0.7}}, backbone: {{stem_channels: 16, num_blocks: [1, 4, 4, 4]}}}}
data:
  train_ann: {train_ann}
  train_img_dir: {train_img_dir}
  val_ann: {val_ann}
  val_img_dir: {val_img_dir}
  batch_size: 4
  val_batch_size: 16
  aug: tokenpose_coco
schedule: {{epochs: 1, kind: cosine, warmup_iters: 2}}
optim: {{grad_clip: 1.0}}
eval_interval: 0
threads: 1
log_interval: 1
"""


def _digest(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``root`` (folders by their files)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shared inputs: synthetic data, the recipe (and two broken copies), a finished run (trained under umask
    022), a truncated npz, predictions files and a GT with string ids."""
    root = tmp_path_factory.mktemp("world")
    data = generate_splits(root / "syn", num_train=12, num_val=4, seed=3, image_size=(96, 96))
    recipe = root / "tiny.yaml"
    recipe.write_text(TINY_YAML.format(**{k: data[k] for k in ("train_ann", "train_img_dir", "val_ann",
                                                                "val_img_dir")}))
    (root / "bad_keys.yaml").write_text(recipe.read_text() + "\non: 1\nfoo: 2\n")  # YAML reads `on` as true
    (root / "bad_override.yaml").write_text(recipe.read_text().replace(  # the recipe's own bad protocol override
        "  aug: tokenpose_coco\n", "  aug: tokenpose_coco\n  protocol_overrides: {target: {sigma: wide}}\n"))
    (root / "bad_type.yaml").write_text(recipe.read_text().replace("schedule: {epochs: 1,", "schedule: {epochs: ten,"))
    (root / "bad_yaml.yaml").write_text(recipe.read_text().replace("optim: {grad_clip: 1.0}", "optim: {grad_clip: 1.0"))
    (root / "bad_range.yaml").write_text(recipe.read_text().replace("optim: {grad_clip: 1.0}",
                                                                    "optim: {grad_clip: 1.0, lr: -0.001}"))
    old = os.umask(0o022)
    try:
        assert cli(["train", str(recipe), "--work-dir", str(root / "finished")]) == 0
    finally:
        os.umask(old)
    # predictions: the GT itself (all 4 images), only the first image, none, and one with a string image id
    gt = json.loads(GT_COCO.read_text())
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"]]
    (root / "empty.json").write_text("[]")
    first = preds[0]["image_id"]
    (root / "partial.json").write_text(json.dumps([p for p in preds if p["image_id"] == first]))
    bad = [dict(p) for p in preds]
    bad[1]["image_id"] = str(bad[1]["image_id"])
    (root / "string_id.json").write_text(json.dumps(bad))
    (root / "all.json").write_text(json.dumps(preds))
    gt_str = json.loads(json.dumps(gt))
    for img in gt_str["images"]:
        img["id"] = str(img["id"])
    for ann in gt_str["annotations"]:
        ann["image_id"] = str(ann["image_id"])
    (root / "gt_string_ids.json").write_text(json.dumps(gt_str))
    buf = root / "full.npz"
    np.savez_compressed(buf, positions_3d=np.zeros((50, 17, 3)), noise=np.random.default_rng(0).random(4000))
    (root / "truncated.npz").write_bytes(buf.read_bytes()[: buf.stat().st_size // 2])
    (root / "a_file").write_text("not a folder")
    (root / "dangling.json").symlink_to(root / "moved_away.json")  # a link whose file is gone
    lifter = create_model("hot_mixste_h36m_243", **LIFTER_SMALL)  # one of ours, of another task
    atomic_save({**describe("hot_mixste_h36m_243", LIFTER_SMALL, get_protocol("hot")),
                 "state_dict": lifter.state_dict()}, root / "lifter.pth")
    bad_val = json.loads(Path(data["val_ann"]).read_text())  # a keypoints row short of one keypoint
    bad_val["annotations"][0]["keypoints"] = bad_val["annotations"][0]["keypoints"][:48]
    (root / "val_48.json").write_text(json.dumps(bad_val))
    other_cat = json.loads(Path(data["val_ann"]).read_text())  # checked under the dataset's categories
    other_cat["annotations"][1]["category_id"] = 3
    (root / "val_other_category.json").write_text(json.dumps(other_cat))
    bad_area = json.loads(Path(data["val_ann"]).read_text())  # what only COCOeval's reading of it checks
    bad_area["annotations"][1]["area"] = -5.0
    (root / "val_bad_area.json").write_text(json.dumps(bad_area))
    (root / "no_dets.json").write_text("[]")  # a detector that found nobody
    (root / "cut.json").write_text('{"images": [{"id": 1, "file_na')  # a download cut short
    val = json.loads(Path(data["val_ann"]).read_text())  # a detector that found the first image's people only
    (root / "first_dets.json").write_text(json.dumps([
        {"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 1.0} for a in val["annotations"]
        if a["image_id"] == val["images"][0]["id"]]))
    upper7 = {"keypoints": ["head", "left_shoulder", "right_shoulder", "left_hand", "right_hand", "left_hip",
                            "right_hip"], "sigmas": [0.05] * 7}  # a skeleton file of one's own
    (root / "upper7.json").write_text(json.dumps(upper7))
    (root / "no_sigmas.json").write_text(json.dumps({"keypoints": upper7["keypoints"]}))
    wide = json.loads(Path(data["val_ann"]).read_text())  # a picture of another size than its entry says
    wide["images"][0]["width"] *= 2
    (root / "val_wide.json").write_text(json.dumps(wide))
    id0 = json.loads(Path(data["val_ann"]).read_text())  # ids from 0, as some conversions write them
    for i, ann in enumerate(id0["annotations"]):
        ann["id"] = i
    (root / "val_id0.json").write_text(json.dumps(id0))
    (root / "cut_run").mkdir()  # a run whose last.pth was cut off (a full disk, a copy stopped half-way)
    (root / "cut_run" / "last.pth").write_bytes((root / "finished" / "last.pth").read_bytes()[:5000])
    return {"root": root, "recipe": recipe, "finished": root / "finished"}


@dataclass
class Case:
    """One hostile command line: ``args`` with ``{recipe}``, ``{run}`` (a copy of the finished run), ``{fresh}``
    (a folder that does not exist), ``{root}`` (the shared inputs) and ``{gt}``; the exit code; a regex for the
    message (stderr, or a logged warning); whether the sandbox must be left byte for byte (a refusal)."""

    id: str
    args: list[str]
    code: int
    message: str
    untouched: bool = True
    check: Callable[[Path, dict[str, Path], dict[str, str]], None] | None = field(default=None, repr=False)


LIFT_TINY = "{num_frames: 9, dim: 16, depth: 2, heads: 2, mlp_hidden: 32, prune: {keep: 3, layer: 1}}"
E = r"^posetokens (train|test|evaluate): error: "  # the one line of a user error


def _overwrite_archived(sandbox: Path, world: dict[str, Path], before: dict[str, str]) -> None:
    run = sandbox / "run"
    archives = list((run / "archive").iterdir())
    assert len(archives) == 1, archives
    old = {k.removeprefix("run/"): v for k, v in before.items() if k.startswith("run/")}
    assert _digest(archives[0]) == old, "--overwrite must move the old run's files, unchanged, into archive/<time>/"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "step" in r] == [1, 2, 3, 4, 5]  # a new log, not the old one continued
    assert {"final.pth", "last.pth", "config.json"} <= {p.name for p in run.iterdir()}


def _resumed_under_change(sandbox: Path, world: dict[str, Path], before: dict[str, str]) -> None:
    run = sandbox / "run"
    assert not (run / "archive").exists()
    old_log = (world["finished"] / "log.jsonl").read_text()
    log = (run / "log.jsonl").read_text()
    assert log.startswith(old_log), "the resumed run must append to the log, not replace it"
    records = [json.loads(line) for line in log.splitlines()]
    assert [r for r in records if "config_changes" in r] == [
        {"at_step": 5, "config_changes": {"schedule.epochs": [1, 2]}}]
    assert [r["step"] for r in records if "step" in r] == list(range(1, 11))  # steps 1-5 kept, 6-10 appended
    assert torch.load(run / "last.pth", weights_only=False)["step"] == 10
    assert json.loads((run / "config.json").read_text())["schedule"]["epochs"] == 2


CASES = [
    # ---- work dirs
    Case("finished-run-without-resume", ["train", "{recipe}", "--work-dir", "{run}"], 2,
         E + r"work_dir \S+ already holds a run \(last.pth, final.pth, log.jsonl, config.json\); pass --resume .* "
         r"--overwrite"),
    Case("resume-and-overwrite", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--overwrite"], 2,
         E + r"--resume and --overwrite exclude each other"),
    Case("resume-nothing-there", ["train", "{recipe}", "--work-dir", "{fresh}", "--resume"], 2,
         E + r"--resume: no checkpoint at \S+last.pth"),
    Case("resume-finished-run", ["train", "{recipe}", "--work-dir", "{run}", "--resume"], 2,
         E + r"--resume: the run in \S+ has finished .*nothing to train"),
    Case("work-dir-is-a-file", ["train", "{recipe}", "--work-dir", "{root}/a_file"], 2,
         E + r"work_dir \S+a_file is a file; expected a folder"),
    Case("overwrite-bad-config", ["train", "{recipe}", "--work-dir", "{run}", "--overwrite", "--set",
                                  "schedule.epochs=0"], 2, E + r"--set: schedule.epochs must be an integer >= 1"),
    # an error found after the model is built: the old run is still in place, not archived
    Case("overwrite-missing-data", ["train", "{recipe}", "--work-dir", "{run}", "--overwrite", "--set",
                                    "data.train_ann={root}/missing.json"], 2,
         E + r"data\.train_ann \S+missing\.json does not exist$"),
    Case("late-error-fresh-dir", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.protocol=tokenpos"], 2,
         E + r"config: data.protocol: unknown protocol 'tokenpos'"),  # a late error creates no work dir either
    Case("overwrite-archives", ["train", "{recipe}", "--work-dir", "{run}", "--overwrite"], 0,
         r"--overwrite: moved the previous run's files \(last.pth, final.pth, log.jsonl, config.json, tb\) to "
         r"\S+archive/", untouched=False, check=_overwrite_archived),
    # ---- resume under another config
    Case("resume-batch-size", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--set", "data.batch_size=8"],
         2, E + r"--resume: the config differs from the one \S+last.pth was trained with \(data.batch_size: 4 -> 8\)"
         r".*--allow-config-change"),
    Case("resume-schedule", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--set", "schedule.epochs=3",
                             "--set", "schedule.kind=multistep", "--set", "log_interval=7"], 2,  # log_interval: free
         E + r"--resume: the config differs from the one \S+last.pth was trained with "
         r"\(schedule.epochs: 1 -> 3; schedule.kind: 'cosine' -> 'multistep'\)"),
    Case("resume-lr", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--set", "optim.lr=0.01"], 2,
         E + r"--resume: the config differs from the one \S+last.pth was trained with \(optim.lr: [0-9.e-]+ -> 0.01\)"
         r".*--allow-config-change"),  # the learning rate is part of the run: not free
    Case("resume-model", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--set",
                          ("model.overrides={image_size: [64, 48], dim: 48, depth: 2, heads: 2, patch_size: [2, 2], "
                           "head_hidden: 64, prune: {layers: [0], keep_ratio: 0.7}, backbone: {stem_channels: 16, "
                           "num_blocks: [1, 4, 4, 4]}}")], 2,
         E + r"--resume: the config differs from the one \S+last.pth was trained with "
         r"\(model.overrides.dim: 32 -> 48\)"),
    Case("resume-model-allowed", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--allow-config-change",
                                  "--set", "schedule.epochs=2", "--set",
                                  ("model.overrides={image_size: [64, 48], dim: 48, depth: 2, heads: 2, patch_size: "
                                   "[2, 2], head_hidden: 64, prune: {layers: [0], keep_ratio: 0.7}, backbone: "
                                   "{stem_channels: 16, num_blocks: [1, 4, 4, 4]}}")], 2,  # its reason was cut off
         E + r"--resume: \S+last.pth does not fit model ppt_s_coco_256x192: .*shape mismatches \(\d+\): keypoint_token: "
         r"checkpoint \(1, 17, 32\) vs model \(1, 17, 48\).* \(the model was changed under --allow-config-change\)$"),
    Case("resume-allowed-change", ["train", "{recipe}", "--work-dir", "{run}", "--resume", "--set", "schedule.epochs=2",
                                   "--allow-config-change"], 0,
         r"continuing after step 5 under changed fields: schedule.epochs: 1 -> 2", untouched=False,
         check=_resumed_under_change),
    # ---- config values: type and range, before any model is built, naming --set or the file and the field
    Case("epochs-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "schedule.epochs=0"], 2,
         E + r"--set: schedule.epochs must be an integer >= 1, got 0$"),
    Case("max-steps-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "max_steps=0"], 2,
         E + r"--set: max_steps must be an integer >= 1 or null, got 0$"),
    Case("lr-string", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.lr=fast"], 2,
         E + r"--set optim.lr: expected float, got 'fast'$"),
    Case("betas-1", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.betas=[0.9, 1.0]"], 2,
         E + r"--set: optim.betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)$"),  # beta 1 never forgets
    Case("lr-negative", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.lr=-1e-3"], 2,
         E + r"--set: optim.lr must be a number > 0, got -0.001$"),
    Case("lr-nan", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.lr=.nan"], 2,
         E + r"--set: optim.lr must be a number > 0, got nan$"),
    Case("batch-size-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.batch_size=0"], 2,
         E + r"--set: data.batch_size must be an integer >= 1, got 0$"),
    Case("batch-size-above-the-set", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.batch_size=1000"], 2,
         E + r"the training set has \d+ samples, fewer than one global batch of 1000 \(data.batch_size 1000 x 1 "
         r"processes x optim.grad_accum 1\); lower data.batch_size$"),
    Case("batch-size-float", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.batch_size=2.5"], 2,
         E + r"--set data.batch_size: expected int, got 2.5$"),
    Case("grad-accum-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.grad_accum=0"], 2,
         E + r"--set: optim.grad_accum must be an integer >= 1, got 0$"),
    Case("log-interval-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "log_interval=0"], 2,
         E + r"--set: log_interval must be an integer >= 1, got 0$"),
    Case("ratio-above-1", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.det_score_thr=1.5"], 2,
         E + r"--set: data.det_score_thr must be in \[0, 1\], got 1.5$"),
    Case("ratio-below-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "schedule.warmup_ratio=-0.1"], 2,
         E + r"--set: schedule.warmup_ratio must be in \[0, 1\], got -0.1$"),
    Case("ema-above-1", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.ema_decay=1.5"], 2,
         E + r"--set: optim.ema_decay must be in \[0, 1\] or null, got 1.5$"),
    Case("unknown-set-key", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "foo=1"], 2,
         E + r"--set: unknown key\(s\) \['foo'\]"),
    Case("unknown-nested-set-key", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "optim.lrr=0.1"], 2,
         E + r"--set optim: unknown key\(s\) \['lrr'\]"),
    Case("model-override-string", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                   "model.overrides={prune: {keep_ratio: most}}"], 2,
         E + r"--set model.overrides.prune.keep_ratio: expected float, got 'most'$"),
    Case("model-override-unknown", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "model.overrides={dimm: 3}"],
         2, E + r"--set model.overrides: unknown config field 'dimm'"),
    Case("model-override-unknown-dotted", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                           "model.overrides.dimm=3"],
         2, E + r"--set model.overrides: unknown config field 'dimm'"),  # not blamed on the recipe, which lacks it
    # ranges and sizes of the model config, found by its validate() before the model is built
    Case("model-override-range", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                  "model.overrides.prune.keep_ratio=1.5"], 2,
         E + r"--set model.overrides.prune.keep_ratio: PruneCfg.keep_ratio must be in \(0, 1\], got 1.5$"),
    Case("model-override-heads", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "model.overrides.heads=3"], 2,
         E + r"--set model.overrides.heads: TokenPoseCfg.dim 32 is not divisible by heads 3$"),
    Case("model-override-heads-0", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "model.overrides.heads=0"], 2,
         E + r"--set model.overrides.heads: TokenPoseCfg.heads must be >= 1, got 0$"),
    Case("model-override-negative", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                     "model.overrides.head_hidden=-1"], 2,
         E + r"--set model.overrides.head_hidden: TokenPoseCfg.head_hidden must be >= 1, got -1$"),
    Case("model-override-backbone-width", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                           "model.overrides.backbone.width=0"], 2,  # it failed in the first step
         E + r"--set model.overrides.backbone.width: HRNetCfg.width must be an integer >= 1, got 0$"),
    Case("model-override-strategy", ["train", str(REPO / "configs" / "hot_mixste_synthetic_27.yaml"), "--work-dir",
                                     "{fresh}", "--set", "model.overrides.prune.strategy=unifrom"], 2,
         E + r"--set model.overrides.prune.strategy: FramePruneCfg.strategy: unknown 'unifrom'; known: \['none', "
         r"'cluster', 'uniform', 'attention', 'motion'\]$"),
    Case("protocol-override-string", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                      "data.protocol_overrides={target: {sigma: wide}}"], 2,
         E + r"--set data.protocol_overrides: .*target.sigma: expected float, got 'wide'$"),
    Case("protocol-override-dotted-set", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                          "data.protocol_overrides.eval.rescore_thr=abc"], 2,  # blamed on the recipe
         E + r"--set data.protocol_overrides: .*rescore_thr.*'abc'"),
    Case("yaml-string-number", ["train", "{root}/bad_type.yaml", "--work-dir", "{fresh}"], 2,
         E + r"\S+bad_type.yaml.schedule.epochs: expected int, got 'ten'$"),
    Case("yaml-non-string-key", ["train", "{root}/bad_keys.yaml", "--work-dir", "{fresh}"], 2,  # was a TypeError
         E + r"\S+bad_keys.yaml: unknown key\(s\) \[True, 'foo'\]; known: \[.*\]; YAML reads an unquoted "
         r"on/off/yes/no/true/false as a boolean: quote such a key$"),
    Case("yaml-negative-lr", ["train", "{root}/bad_range.yaml", "--work-dir", "{fresh}"], 2,
         E + r"\S+bad_range.yaml: optim.lr must be a number > 0, got -0.001$"),
    Case("yaml-malformed", ["train", "{root}/bad_yaml.yaml", "--work-dir", "{fresh}"], 2,  # PyYAML's report, one line
         E + r"\S+bad_yaml.yaml: malformed YAML at line 15, column 14: expected ',' or '\}', but got ':' \(while "
         r"parsing a flow mapping at line 14, column 8\)$"),
    Case("set-malformed-yaml", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "model.overrides={dim: 32"], 2,
         E + r"--set model.overrides: the value '\{dim: 32' is not valid YAML \(line 1, column 9: expected ',' or "
         r"'\}', but got '<stream end>'"),
    Case("set-not-blamed-on-yaml", ["train", "{root}/bad_range.yaml", "--work-dir", "{fresh}", "--set", "optim.lr=0.1",
                                    "--set", "schedule.gamma=-2"], 2,
         E + r"--set: schedule.gamma must be a number > 0, got -2.0$"),
    # ---- inputs that are not what they claim
    Case("truncated-npz", ["train", str(REPO / "configs" / "hot_mixste_synthetic_27.yaml"), "--work-dir", "{fresh}",
                           "--set", f"model.overrides={LIFT_TINY}", "--set", "data.keypoints_3d={root}/truncated.npz",
                           "--set", "data.keypoints_2d={root}/truncated.npz", "--set", "data.cameras={root}/a_file"],
         2, E + r"\S+truncated.npz: not a readable npz file \(truncated or corrupt\?"),
    Case("resume-truncated-checkpoint", ["train", "{recipe}", "--work-dir", "{root}/cut_run", "--resume"], 2,
         E + r"\S+cut_run/last.pth is not a readable PyTorch checkpoint \(truncated or corrupt\? 5000 bytes"),
    Case("weights-directory", ["test", "--weights", "{run}"], 2,
         E + r"checkpoint \S+run is a directory, expected a checkpoint file"),
    # ---- a loss that does not fit the model: said before the work dir is started (it used to fail at step 1)
    Case("loss-for-another-model", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "loss=mpjpe"], 2,
         E + r"config: loss 'mpjpe' does not apply to heatmap models \(TokenPose\); use auto or joints_mse$"),
    # ---- the evaluation's files, checked before the run starts (not at the first evaluation, epochs later)
    Case("skeleton-file-of-another-count", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                            "data.dataset={root}/upper7.json"], 2,
         E + r"config: model \S+ predicts 17 keypoints but data.dataset='\S+upper7.json' has 7; set "
         r"model.overrides.num_keypoints=7 to train it on that layout$"),
    Case("skeleton-file-without-sigmas", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                          "data.dataset={root}/no_sigmas.json"], 2,
         E + r"--set data.dataset: \S+no_sigmas.json: missing field 'sigmas': 7 OKS sigmas, one per keypoint"),
    Case("val-ann-missing", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.val_ann={root}/missing.json",
                             "--set", "eval_interval=1"], 2, E + r"data.val_ann \S+missing.json does not exist$"),
    Case("train-ann-not-json", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.train_ann={root}/cut.json"],
         2, E + r"data.train_ann \S+cut.json: malformed JSON \(Unterminated string starting at: line 1 column 23 "
         r"\(char 22\)\)$"),  # named by its field, as a missing one is
    Case("val-ann-malformed", ["train", "{recipe}", "--work-dir", "{fresh}", "--set", "data.val_ann={root}/val_48.json",
                               "--set", "eval_interval=1"], 2,
         E + r"data.val_ann \S+val_48.json: annotations\[0\] \(id=\d+\): field 'keypoints' has 48 values, expected 51"),
    # an area below 0, which the val set's loader takes and COCOeval's reading refuses: said before training
    # starts (the fresh work dir is not made) and before test predicts, not at the first evaluation
    Case("val-ann-negative-area", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                   "data.val_ann={root}/val_bad_area.json", "--set", "eval_interval=1"], 2,
         E + r"data.val_ann \S+val_bad_area.json: annotations\[1\] \(id=\d+\): field 'area' must be a finite number >= 0, got "
         r"-5\.0$"),
    Case("test-val-ann-negative-area", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out",
                                        "{fresh}/preds.json", "--set", "data.val_ann={root}/val_bad_area.json"], 2,
         E + r"data.val_ann \S+val_bad_area.json: annotations\[1\] \(id=\d+\): field 'area' must be a finite number >= 0"),
    Case("test-val-image-of-another-size", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out",
                                            "{fresh}/preds.json", "--set", "data.val_ann={root}/val_wide.json"], 2,
         E + r"\S+\.jpg: (\d+)x\d+ pixels \(width x height\), but \S+val_wide.json gives width \d+, height \d+ for "
         r"image id \d+; expected the picture the annotations were made on; an evaluation scores every image, so an "
         r"image of another size than its annotations stops it"),
    # ---- test --out: never over one of the test's inputs (checked before the model is built)
    Case("test-val-det-missing", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out", "{fresh}/preds.json",
                                  "--set", "data.val_det={root}/missing_dets.json"], 2,  # named by its field
         E + r"data.val_det \S+missing_dets.json does not exist \(a detections json in the COCO results format; "
         r"--set data.val_det=null evaluates on the ground-truth boxes\)$"),
    Case("test-val-det-empty", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out", "{fresh}/preds.json",
                                "--set", "data.val_det={root}/no_dets.json"], 2,  # was NumPy's concatenate error
         E + r"data.val_det \S+no_dets.json: no detection left to evaluate; expected at least one person box to predict$"),
    Case("test-val-det-some-images", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out", "{fresh}/preds.json",
                                      "--set", "data.val_det={root}/first_dets.json"], 0,  # said "predictions"
         r"^the predictions on data.val_det \S+first_dets.json: 3 of 4 ground-truth images with annotated people "
         r"have no prediction \(image ids 2, 3, 4\); their people count as missed$", untouched=False),
    Case("test-val-ann-other-category", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out",
                                         "{fresh}/preds.json", "--set", "data.val_ann={root}/val_other_category.json"],
         2, E + r"data.val_ann \S+val_other_category.json: annotations\[1\] \(id=\d+\): field 'category_id' = 3 is not one of "
         r"its 'categories' \(\[1\]\)$"),  # said before predicting (the untouched sandbox: no predictions file)
    Case("protocol-override-bad-in-recipe", ["train", "{root}/bad_override.yaml", "--work-dir", "{fresh}", "--set",
                                             "data.protocol_overrides.eval.rescore_thr=0.1"], 2,  # a valid --set
         E + r"\S+bad_override.yaml.data.protocol_overrides: .*target.sigma: expected float, got 'wide'$"),
    Case("test-out-is-the-weights", ["test", "--weights", "{run}/final.pth", "--out", "{run}/final.pth"], 2,
         E + r"the predictions file --out \S+final.pth would overwrite the --weights \S+final.pth"),
    Case("test-out-is-the-gt", ["test", "--weights", "{run}/final.pth", "--out", "{root}/syn/val.json"], 2,
         E + r"the predictions file --out \S+val.json would overwrite the data.val_ann \S+val.json"),
    Case("test-out-is-an-image", ["test", "--weights", "{run}/final.pth", "--out", "{root}/syn/train/000002.jpg"], 2,
         E + r"--out \S+000002.jpg is in the image folder data.train_img_dir \S+train; choose a path outside it$"),
    Case("test-out-is-the-config", ["test", "{recipe}", "--weights", "{run}/final.pth", "--out", "{recipe}"], 2,
         E + r"the --out \S+tiny.yaml would overwrite the CONFIG \S+tiny.yaml"),
    Case("test-out-is-another-checkpoint", ["test", "--weights", "{run}/final.pth", "--out", "{run}/last.pth"], 2,
         E + r"--out \S+last.pth exists and is not a predictions file \(a JSON list of keypoint "
         r"results, what test writes\); choose another path$"),
    Case("test-out-is-the-runs-config", ["test", "--weights", "{run}/final.pth", "--out", "{run}/config.json"], 2,
         E + r"--out \S+config.json exists and is not a predictions file"),
    Case("test-out-is-a-dangling-link", ["test", "--weights", "{run}/final.pth", "--out", "{root}/dangling.json"], 2,
         E + r"--out \S+dangling.json is a symbolic link to \S+moved_away.json, which does not exist; writing would "
         r"replace the link: choose another path or remove the link$"),
    Case("test-out-is-a-folder", ["test", "--weights", "{run}/final.pth", "--out", "{run}"], 2,
         E + r"--out \S+run is a folder; expected the path of a .json file to write$"),
    Case("test-config-of-another-model", ["test", "{recipe}", "--weights", "{root}/lifter.pth"], 2,
         E + r"\S+lifter.pth: the checkpoint holds 'hot_mixste_h36m_243' but CONFIG's model.name is "
         r"'ppt_s_coco_256x192'; give a recipe of that model, or test it on this recipe's data with --set "
         r"model.name=hot_mixste_h36m_243 \(a converted official checkpoint carries no recipe\)$"),
    Case("test-run-of-another-model", ["test", str(REPO / "configs" / "hot_mixste_synthetic_27.yaml"), "--weights",
                                       "{run}/final.pth"], 2,
         E + r"\S+final.pth: the checkpoint holds 'ppt_s_coco_256x192' but CONFIG's model.name is "
         r"'hot_mixste_h36m_243'; leave out CONFIG \(the checkpoint carries its recipe\)"),
    Case("weights-of-another-model", ["train", "{recipe}", "--work-dir", "{fresh}", "--set",
                                      "model.weights={root}/lifter.pth"], 2,
         E + r"model.weights \S+lifter.pth does not fit model ppt_s_coco_256x192: missing keys \(\d+\): .*; "
         r"unexpected keys "
         r"\(\d+\): .*; the checkpoint holds 'hot_mixste_h36m_243'$"),
    # ---- evaluation inputs
    Case("empty-predictions", ["evaluate", "--gt", "{gt}", "--pred", "{root}/empty.json"], 0,
         r"empty.json: 0 predictions \(an empty results file\); every metric is 0.0"),
    Case("partial-predictions", ["evaluate", "--gt", "{gt}", "--pred", "{root}/partial.json", "--nms-area",
                                 "keypoints"], 0,
         r"partial.json: 3 of 4 ground-truth images with annotated people have no prediction"),
    Case("string-image-id-prediction", ["evaluate", "--gt", "{gt}", "--pred", "{root}/string_id.json"], 2,
         E + r"\S+string_id.json: entry \[1\]: field 'image_id' must be an integer, got '40083'$"),
    Case("string-image-id-gt", ["evaluate", "--gt", "{root}/gt_string_ids.json", "--pred", "{root}/all.json"], 2,
         E + r"\S+gt_string_ids.json: images\[0\]: field 'id' must be an integer, got '785'$"),
    # thresholds out of range used to be taken as given (perfect predictions scored AP 0.87 under --rescore-thr nan)
    Case("rescore-thr-nan", ["evaluate", "--gt", "{gt}", "--pred", "{root}/all.json", "--rescore-thr", "nan"], 2,
         E + r"--rescore-thr: expected a number in \[0, 1\], got nan$"),
    Case("rescore-thr-above-one", ["evaluate", "--gt", "{gt}", "--pred", "{root}/all.json", "--rescore-thr", "5"], 2,
         E + r"--rescore-thr: expected a number in \[0, 1\], got 5\.0$"),
    Case("nms-thr-negative", ["evaluate", "--gt", "{gt}", "--pred", "{root}/all.json", "--nms-thr", "-1"], 2,
         E + r"--nms-thr: expected a number in \(0, 1\], got -1\.0$"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_or_reported(case: Case, world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture,
                             caplog: pytest.LogCaptureFixture) -> None:
    sandbox = tmp_path / "sandbox"
    shutil.copytree(world["finished"], sandbox / "run")
    names = {"recipe": world["recipe"], "run": sandbox / "run", "fresh": sandbox / "fresh", "root": world["root"],
             "gt": GT_COCO}
    args = list(case.args)
    for key, value in names.items():
        args = [a.replace("{" + key + "}", str(value)) for a in args]
    before, inputs = _digest(sandbox), _digest(world["root"])
    caplog.set_level("INFO")
    code = cli(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("posetokens ")]
    said = "\n".join(lines + [r.getMessage() for r in caplog.records])
    assert code == case.code, f"exit {code}, expected {case.code}; stderr:\n{err[-2000:]}"
    assert re.search(case.message, said, re.MULTILINE), f"no match for {case.message!r} in:\n{said}"
    if code == 2:
        assert len(lines) == 1 and "Traceback" not in err, err  # one line, no traceback
    assert _digest(world["root"]) == inputs, "an input file changed"
    if case.untouched:
        assert _digest(sandbox) == before, "a refused command changed or created a file"
        assert not (sandbox / "fresh").exists(), "a refused run created its work dir"
    if case.check is not None:
        case.check(sandbox, world, before)


def test_the_ground_truths_pycocotools_readings_are_said_once_before_test_predicts(
        world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Annotation ids from 0 (as some conversions write them): pycocotools' reading is kept (the official
    evaluation's) and said, once, by the early check before any prediction (the evaluation does not say it again)."""
    from posetokens.engine import trainer

    shutil.copytree(world["finished"], tmp_path / "run")
    args = ["test", str(world["recipe"]), "--weights", str(tmp_path / "run" / "final.pth"), "--out",
            str(tmp_path / "preds.json"), "--set", f"data.val_ann={world['root']}/val_id0.json"]
    said = r"posetokens: warning: \S+val_id0\.json: annotations\[0\] has id 0: pycocotools' COCOeval stores a match .*"

    def not_yet(*a: object, **k: object) -> None:
        raise ValueError("stopped before predicting")

    with monkeypatch.context() as m:
        m.setattr(trainer, "evaluate_model", not_yet)
        assert cli(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if re.fullmatch(said, line)] and err[-1].endswith("stopped before predicting"), err
    assert cli(args) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if re.fullmatch(said, line)]) == 1, err


def test_checkpoints_honour_the_umask(world: dict[str, Path], tmp_path: Path) -> None:
    """Trained under umask 022, every checkpoint is 0644 (mkstemp alone gives 0600); and atomic_save follows
    the umask of the moment."""
    for name in ("last.pth", "final.pth", "config.json"):
        assert (world["finished"] / name).stat().st_mode & 0o777 == 0o644, name
    for mask, mode in ((0o027, 0o640), (0o002, 0o664)):
        old = os.umask(mask)
        try:
            path = atomic_save({"x": torch.zeros(1)}, tmp_path / f"m{mask:o}.pth")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode, (oct(mask), oct(path.stat().st_mode))


def test_empty_predictions_warning_reaches_a_real_terminal(world: dict[str, Path]) -> None:
    """Outside pytest's log capture: the warning is on stderr of the real command."""
    proc = subprocess.run([sys.executable, "-m", "posetokens", "evaluate", "--gt", str(GT_COCO), "--pred",
                           str(world["root"] / "empty.json")], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"empty.json: 0 predictions", proc.stderr), proc.stderr
    assert "| 0.0000 |" in proc.stdout


def test_training_pictures_missing_from_their_folder_are_said_with_their_people(
        world: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Some pictures the training json names are not in data.train_img_dir: the run goes on (each epoch skips them
    as bad images, as before) but says at the start how many pictures and how many of the json's people, counted
    here from the json itself; every epoch's warning named only the pictures that epoch happened to draw."""
    from posetokens.engine.config import load_config

    cfg = load_config(world["recipe"])
    gt = json.loads(Path(cfg.data.train_ann).read_text())
    names = sorted({img["file_name"] for img in gt["images"]})
    part = tmp_path / "part"
    part.mkdir()
    for name in names[2:]:
        shutil.copy(Path(cfg.data.train_img_dir) / name, part / name)
    gone = {img["id"] for img in gt["images"] if img["file_name"] in names[:2]}
    people = [a for a in gt["annotations"] if not a.get("iscrowd") and max(a["keypoints"]) > 0]
    lost = sum(a["image_id"] in gone for a in people)
    caplog.set_level("WARNING")
    assert cli(["train", str(world["recipe"]), "--work-dir", str(tmp_path / "run"), "--set",
                f"data.train_img_dir={part}", "--set", "max_steps=1"]) == 0
    # a stop by max_steps is no finished run: said once, with the checkpoint and the way on
    stopped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stopped at max_steps")]
    assert len(stopped) == 1 and re.search(r"^stopped at max_steps=1 \(epoch 0, step 1 of \d+; no final\.pth\): "
                                           r"\S+run/last\.pth is the run at this step; --resume with a larger "
                                           r"max_steps", stopped[0]), stopped
    assert not (tmp_path / "run" / "final.pth").exists()
    # testing that last.pth scores the weights of an unfinished run: said, with where it stands
    assert cli(["test", "--weights", str(tmp_path / "run" / "last.pth"), "--out", str(tmp_path / "p.json")]) == 0
    unfinished = [r.getMessage() for r in caplog.records if "has not finished" in r.getMessage()]
    assert len(unfinished) == 1 and re.search(r"^\S+run/last\.pth is the last\.pth of a run that has not finished "
                                              r"\(epoch 0 of \d+, step 1\): ", unfinished[0]), unfinished
    said = [r.getMessage() for r in caplog.records if "lacks" in r.getMessage()]
    assert len(said) == 1 and re.search(rf"data.train_img_dir \S+part lacks 2 of the {len(names)} pictures "
                                        rf"data.train_ann \S+ names \(first: \S+\): their {lost} of {len(people)} "
                                        r"people are skipped as bad images$", said[0]), said


def test_a_start_that_saved_no_checkpoint_does_not_block_the_rerun(world: dict[str, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A first start that fails at its first step leaves config.json and log.jsonl but no checkpoint. --resume says
    so and how to go on; the corrected plain rerun trains, after moving those files, byte for byte, to archive/."""
    run, empty = tmp_path / "run", tmp_path / "no_images"
    empty.mkdir()
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--set", f"data.train_img_dir={empty}"]) == 2
    assert re.search(r"data.train_img_dir \S+no_images holds none of the \d+ pictures data.train_ann \S+ names "
                     r"\(first: \S+\)$", capsys.readouterr().err, re.M)  # found before anything is written
    assert not run.exists()
    from posetokens.engine.config import load_config

    images = Path(load_config(world["recipe"]).data.train_img_dir)
    for picture in images.iterdir():  # there, but unreadable: found at the first step, once the run has begun
        (empty / picture.name).write_bytes(b"not a picture")
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--set", f"data.train_img_dir={empty}"]) == 2
    assert "data.train_img_dir" in capsys.readouterr().err
    assert {p.name for p in run.iterdir()} >= {"config.json", "log.jsonl"}
    assert not list(run.glob("*.pth"))
    left = _digest(run)
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--resume"]) == 2
    assert re.search(r"--resume: no checkpoint at \S+last.pth \(it holds log.jsonl, config.json of a start that saved "
                     r"no checkpoint; run without --resume", capsys.readouterr().err)
    caplog.set_level("INFO")
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run)]) == 0
    archives = list((run / "archive").iterdir())
    assert len(archives) == 1 and _digest(archives[0]) == left
    assert any(re.search(r"held the files of an earlier run but no checkpoint \(log.jsonl, config.json, tb; a start "
                         r"that failed before its first save\); moved them to \S+archive/", r.getMessage())
               for r in caplog.records)
    # a config.json of the user's own (not a recipe) is still refused, as a run, and left where it is
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text('{"camera": "front"}')
    assert cli(["train", str(world["recipe"]), "--work-dir", str(own)]) == 2
    assert "already holds a run (config.json)" in capsys.readouterr().err
    assert [p.name for p in own.iterdir()] == ["config.json"]
    assert (run / "final.pth").is_file() and not (run / ".posetokens.lock").exists()  # the lock goes with the run


def test_a_running_training_holds_its_work_dir(world: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """While a process holds the work dir (a live training), --overwrite, --resume and a plain start there are
    refused, naming its pid; once that process is killed (-9) the kernel drops its lock and the folder is free."""
    run = tmp_path / "run"
    shutil.copytree(world["finished"], run)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from posetokens.fileio import FolderLock; lock = FolderLock(sys.argv[1]); print('held', "
        "flush=True); time.sleep(600)"), str(run)], stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _digest(run)
        for extra in (["--overwrite"], ["--resume", "--set", "schedule.epochs=2", "--allow-config-change"]):
            assert cli(["train", str(world["recipe"]), "--work-dir", str(run), *extra]) == 2
            err = capsys.readouterr().err
            assert re.search(rf"error: work_dir \S+run is in use by a running process \(pid {holder.pid}\); wait for it "
                             r"to end or choose another work_dir$", err, re.MULTILINE), err
        assert _digest(run) == before
    finally:
        holder.kill()
        holder.wait()
    assert (run / ".posetokens.lock").exists()  # a killed holder leaves its file, but no live lock
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--resume", "--set", "schedule.epochs=2",
                "--allow-config-change"]) == 0
    assert torch.load(run / "last.pth", weights_only=False)["epoch"] == 2


def test_a_resume_after_a_crash_logs_each_step_once(world: dict[str, Path], tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A run killed without a signal (kill -9, a crash) has logged steps after its last checkpoint, and their
    TensorBoard events; the resumed run redoes those steps. log.jsonl then holds each step once, the records it
    redoes (and a half-written last line) are kept in log.redone.jsonl, and the resumed run's TensorBoard writer
    starts with a purge at the first step it redoes (step 4), which hides the old events of steps 4 and 5."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    run = tmp_path / "run"
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--set", "max_steps=3"]) == 0
    assert torch.load(run / "last.pth", weights_only=False)["step"] == 3
    # what the process would have gone on to write before it was killed: steps 4 and 5, the last line cut short
    ghosts = [json.dumps({"step": 4, "epoch": 0, "loss": 99.0}) + "\n", json.dumps({"step": 5, "epoch": 0})[:9]]
    with (run / "log.jsonl").open("a") as f:
        f.writelines(ghosts)
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(run / "tb")) as w:
        w.add_scalar("train/loss", 99.0, 4)
    caplog.set_level("INFO")
    assert cli(["train", str(world["recipe"]), "--work-dir", str(run), "--resume", "--set", "max_steps=5"]) == 0
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "step" in r] == [1, 2, 3, 4, 5]
    assert all(r.get("loss") != 99.0 for r in records)
    assert (run / "log.redone.jsonl").read_text() == ghosts[0] + ghosts[1] + "\n"
    assert any("2 record(s)" in r.getMessage() and "log.redone.jsonl" in r.getMessage() for r in caplog.records)
    starts = [e.step for f in sorted((run / "tb").iterdir()) for e in EventFileLoader(str(f)).Load()
              if e.HasField("session_log") and e.session_log.status == e.session_log.START]
    assert starts == [4], starts  # only the resumed writer purges, from step 4 (its checkpoint's step 3, plus 1)


def test_a_recipe_with_relative_paths_tests_from_any_folder(world: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    """Trained from the data's folder with relative paths, the checkpoint stores them absolute, so `test --weights`
    alone works from another folder, and writes its predictions beside the weights (the stored work dir is not
    where the user is)."""
    root = world["root"]
    recipe = tmp_path / "relative.yaml"
    text = world["recipe"].read_text()
    for key in ("train_ann", "train_img_dir", "val_ann", "val_img_dir"):
        value = re.search(rf"  {key}: (\S+)", text).group(1)
        text = text.replace(f"{key}: {value}", f"{key}: {Path(value).relative_to(root)}")
    assert "syn/train.json" in text
    recipe.write_text(text)
    monkeypatch.chdir(root)
    assert cli(["train", str(recipe), "--work-dir", str(tmp_path / "rel_run")]) == 0
    stored = torch.load(tmp_path / "rel_run" / "final.pth", weights_only=False)["config"]
    assert stored["data"]["val_ann"] == str(root / "syn" / "val.json")
    assert json.loads((tmp_path / "rel_run" / "config.json").read_text())["data"]["train_img_dir"] == str(
        root / "syn" / "train")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert cli(["test", "--weights", str(tmp_path / "rel_run" / "final.pth")]) == 0
    assert f"predictions written to {tmp_path / 'rel_run' / 'test_predictions.json'}" in capsys.readouterr().err
    assert len(json.loads((tmp_path / "rel_run" / "test_predictions.json").read_text())) > 0
    assert list(elsewhere.iterdir()) == []
    # resuming from the data's folder with the relative recipe is the same config (no change reported)
    monkeypatch.chdir(root)
    assert cli(["train", str(recipe), "--work-dir", str(tmp_path / "rel_run"), "--resume", "--set",
                "schedule.epochs=2", "--allow-config-change"]) == 0
    changes = [json.loads(line) for line in (tmp_path / "rel_run" / "log.jsonl").read_text().splitlines()
               if "config_changes" in line]
    assert changes == [{"at_step": 5, "config_changes": {"schedule.epochs": [1, 2]}}]


def test_a_lock_file_is_never_followed_and_an_unlockable_folder_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """A .posetokens.lock that is a symbolic link (to a user's file) is refused and the file is left as it was; on a
    filesystem without flock (some NFS, Lustre and FUSE mounts: ENOLCK) the run goes on unlocked and says so."""
    import errno

    import posetokens.fileio as fileio

    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    run = tmp_path / "run"
    run.mkdir()
    (run / fileio.LOCK_NAME).symlink_to(notes)
    with pytest.raises(ValueError, match=r"\.posetokens\.lock is a symbolic link; remove it"):
        fileio.FolderLock(run, "work_dir")
    assert notes.read_text() == "mine" and fileio.lock_holder(run) is None

    def no_locks(*args, **kwargs):
        raise OSError(errno.ENOLCK, "No locks available")

    other = tmp_path / "nfs"
    other.mkdir()
    monkeypatch.setattr(fileio.fcntl, "flock", no_locks)
    lock = fileio.FolderLock(other, "work_dir")
    assert "not locked against a second run (No locks available: this filesystem does not support flock)" in \
        capsys.readouterr().err
    lock.release()
    assert list(other.iterdir()) == [] and fileio.lock_holder(other) is None


def test_test_replaces_only_a_predictions_file(world: dict[str, Path], tmp_path: Path) -> None:
    """`test` run again replaces the predictions it wrote before (a JSON list); any other file at that path (a
    checkpoint, a run's config, a user's own json: the CASES rows) is refused."""
    run = tmp_path / "run"
    shutil.copytree(world["finished"], run)
    (run / "test_predictions.json").write_text("  [\n]")
    for _ in range(2):
        assert cli(["test", "--weights", str(run / "final.pth")]) == 0
        preds = json.loads((run / "test_predictions.json").read_text())
        assert isinstance(preds, list) and preds and {"image_id", "keypoints", "score"} <= set(preds[0])
    (run / "mine.json").write_text('{"mine": 1}')
    assert cli(["test", "--weights", str(run / "final.pth"), "--out", str(run / "mine.json")]) == 2
    assert (run / "mine.json").read_text() == '{"mine": 1}'


def test_test_refuses_an_unwritable_predictions_folder_before_predicting(world: dict[str, Path], tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """`test --weights` without --out writes beside the weights; a folder it cannot write (a shared, read-only run
    folder) is said before any model is built. A file is made there to find out (os.access said yes to root on
    /proc, where no file can be made): mkstemp's refusal stands in for the read-only folder, as tests run as root."""
    import tempfile

    import posetokens.engine.trainer as trainer_mod

    run = tmp_path / "shared_run"
    shutil.copytree(world["finished"], run)
    mkstemp = tempfile.mkstemp

    def read_only(*a: object, dir: object = None, **k: object) -> object:
        if dir is not None and Path(str(dir)) == run:
            raise PermissionError(errno.EACCES, "Permission denied")
        return mkstemp(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(trainer_mod, "load_trained", lambda *a, **k: pytest.fail("built the model first"))
    assert cli(["test", "--weights", str(run / "final.pth")]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^posetokens test: error: the folder of the predictions file test_predictions.json is not "
                     r"writable \(Permission denied\); give --out elsewhere: " + re.escape(str(run)) + "$", err,
                     re.MULTILINE), err
