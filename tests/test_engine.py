"""Trainer: exact resume, DDP equivalence, schedules, loss, configs and bad input."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA
from posetokens.cli import main as cli
from posetokens.data.synthetic import generate_splits
from posetokens.engine.config import ScheduleCfg, load_config
from posetokens.engine.data import StepSampler
from posetokens.engine.losses import joints_mse
from posetokens.engine.schedule import keep_ratio_at, lr_factor
from posetokens.engine.trainer import train

REPO = Path(__file__).resolve().parents[1]

# A tiny PPT: 64x48 input, 8x6 patches of 2x2, 2 layers, pruning after layer 0; EMA decay ramped 0.9 -> 0.99.
TINY = [
    "model.name=ppt_s_coco_256x192",
    "model.overrides={image_size: [64, 48], dim: 32, depth: 2, heads: 2, patch_size: [2, 2], head_hidden: 64, "
    "prune: {layers: [0], keep_ratio: 0.7}, backbone: {stem_channels: 16, num_blocks: [1, 4, 4, 4]}}",
    "data.batch_size=4", "data.val_batch_size=16", "data.aug=tokenpose_coco", "eval_interval=0",
    "schedule.epochs=3", "schedule.kind=cosine", "schedule.warmup_iters=3", "schedule.prune_start_epoch=1",
    "schedule.prune_decay_epochs=1", "optim.grad_clip=1.0", "optim.ema_decay=0.9", "optim.ema_decay_end=0.99",
    "threads=1", "log_interval=1",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return generate_splits(tmp_path_factory.mktemp("syn"), num_train=12, num_val=4, seed=3, image_size=(96, 96))


def _cfg(data: dict, work_dir: Path, *extra: str):
    paths = [f"data.train_ann={data['train_ann']}", f"data.train_img_dir={data['train_img_dir']}",
             f"data.val_ann={data['val_ann']}", f"data.val_img_dir={data['val_img_dir']}", f"work_dir={work_dir}"]
    return load_config(None, TINY + paths + list(extra))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _step_records(work_dir: Path) -> list[dict]:
    """The per-step records of ``log.jsonl`` (every step with ``log_interval=1``), in the order written."""
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if "step" in rec]


def _adam_steps(ckpt: dict) -> set[int]:
    """The step counts held in an Adam state dict (one per parameter with state)."""
    return {int(s["step"]) for s in ckpt["optimizer"]["state"].values()}


def test_resume_ends_with_identical_weights(tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped after k of n steps and resumed CONTINUES at step k + 1 (the log's step numbers, the
    checkpoint's step counter and Adam's per-parameter step count say so), does only the n - k remaining steps
    with the uninterrupted run's losses, and ends with its weights bit for bit. (A resume that silently starts
    over also ends with these weights: the step checks are what catch it.) The PPT ran every step at the
    schedule's keep ratio, 1 in epoch 0 and 0.7 at the end."""
    from posetokens.models.tokenpose import TokenPose

    ratios: list[float] = []
    set_keep_ratio = TokenPose.set_keep_ratio
    monkeypatch.setattr(TokenPose, "set_keep_ratio", lambda self, r: (ratios.append(r), set_keep_ratio(self, r))[1])
    train(_cfg(tiny_data, tmp_path / "full"))
    monkeypatch.undo()
    full = _weights(tmp_path / "full" / "final.pth")
    full_log = _step_records(tmp_path / "full")
    n = full_log[-1]["step"]
    per_epoch = sum(r["epoch"] == 0 for r in full_log)
    assert [r["step"] for r in full_log] == list(range(1, n + 1)) and n == 3 * per_epoch > 4
    assert ratios == [r["keep_ratio"] for r in full_log] + [0.7]  # each step's, then the config's for the weights
    assert ratios[:per_epoch] == [1.0] * per_epoch and ratios[-2] == 0.7  # prune_start_epoch 1, decay 1 epoch
    # a max_steps at the schedule's last step is a whole run: final.pth, the same weights
    train(_cfg(tiny_data, tmp_path / "whole", f"max_steps={n}"))
    assert (tmp_path / "whole" / "final.pth").is_file(), "max_steps = every step of the schedule is a finished run"
    assert all(torch.equal(full[k], v) for k, v in _weights(tmp_path / "whole" / "final.pth").items())
    # stop in the middle of epoch 1 (after the keep-ratio schedule started), then resume
    k = n // 2 + 1
    train(_cfg(tiny_data, tmp_path / "split", f"max_steps={k}"))
    assert (tmp_path / "split" / "last.pth").is_file()
    assert not (tmp_path / "split" / "final.pth").is_file()  # an interrupted run leaves no final weights
    assert [r["step"] for r in _step_records(tmp_path / "split")] == list(range(1, k + 1))
    mid = torch.load(tmp_path / "split" / "last.pth", weights_only=False)
    assert (mid["epoch"], mid["step_in_epoch"], mid["step"]) == (1, k - per_epoch, k)
    assert _adam_steps(mid) == {k}, "the interrupted run's optimiser state should hold k Adam steps"

    train(_cfg(tiny_data, tmp_path / "split"), resume=True)
    # a clean stop leaves no record past its checkpoint, so the resume moves none aside (a resume that started over
    # would move steps 1..k to log.redone.jsonl as steps it redoes)
    assert not (tmp_path / "split" / "log.redone.jsonl").exists()
    assert [r["step"] for r in _step_records(tmp_path / "split")] == list(range(1, n + 1))
    resumed_log = _step_records(tmp_path / "split")[k:]  # log.jsonl is appended to: the resumed run's records
    assert [r["step"] for r in resumed_log] == list(range(k + 1, n + 1)), (
        f"the resumed run should log steps {k + 1}..{n} only (it continues from step {k}); it logged "
        f"{[r['step'] for r in resumed_log]}")
    assert [r["epoch"] for r in resumed_log] == [r["epoch"] for r in full_log[k:]]
    assert [r["lr"] for r in resumed_log] == [r["lr"] for r in full_log[k:]]
    assert [r["loss"] for r in resumed_log] == [r["loss"] for r in full_log[k:]]  # the same steps, bit for bit
    end = torch.load(tmp_path / "split" / "last.pth", weights_only=False)
    assert end["step"] == n
    assert _adam_steps(end) == {n}, "Adam's step count should continue from k (the optimiser state was loaded)"
    resumed = _weights(tmp_path / "split" / "final.pth")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    assert {"model", "optimizer", "scaler", "ema", "rng", "epoch", "step"} <= set(end)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process_with_same_global_batch(tiny_data: dict, tmp_path: Path) -> None:
    common = ["schedule.epochs=1", "optim.ema_decay=null", "optim.ema_decay_end=null", "data.batch_size=2"]
    # one process, global batch 4 as 2 accumulated micro-batches of 2 (BatchNorm sees 2 samples either way)
    train(_cfg(tiny_data, tmp_path / "single", *common, "optim.grad_accum=2"))
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text("{}\n")
    paths = [f"data.train_ann={tiny_data['train_ann']}", f"data.train_img_dir={tiny_data['train_img_dir']}",
             f"work_dir={tmp_path / 'ddp'}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "posetokens", "train", str(cfg_file)]
    for item in TINY + paths + common:
        cmd += ["--set", item]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, ddp = _weights(tmp_path / "single" / "final.pth"), _weights(tmp_path / "ddp" / "final.pth")
    params = [k for k in single if "running_" not in k and "num_batches" not in k]
    worst = max(float((single[k] - ddp[k]).abs().max()) for k in params)
    assert worst < 1e-5, worst


def test_step_sampler_splits_global_batches_identically() -> None:
    one = list(StepSampler(20, batch=2, world=1, rank=0, accum=2, seed=1))
    r0 = list(StepSampler(20, batch=2, world=2, rank=0, accum=1, seed=1))
    r1 = list(StepSampler(20, batch=2, world=2, rank=1, accum=1, seed=1))
    assert len(one) == 20 and len(r0) == len(r1) == 10
    for step in range(5):  # step s: micro-batch 0 == rank 0, micro-batch 1 == rank 1
        assert one[4 * step:4 * step + 2] == r0[2 * step:2 * step + 2]
        assert one[4 * step + 2:4 * step + 4] == r1[2 * step:2 * step + 2]
    s = StepSampler(20, batch=2, seed=1)
    s.set_epoch(0, start_step=3)
    assert list(s) == list(StepSampler(20, batch=2, seed=1))[6:]
    # the remainder is left out of the epoch (docs/training.md): 7 samples at batch 4 make one step of 4 distinct
    # samples, and another epoch leaves out others
    seven = StepSampler(7, batch=4, seed=0)
    epochs = []
    for e in range(4):
        seven.set_epoch(e)
        epochs.append(list(seven))
    assert seven.steps_per_epoch == 1 and all(len(set(x)) == 4 and set(x) <= set(range(7)) for x in epochs)
    assert len({frozenset(x) for x in epochs}) > 1


def test_step_sampler_seeds_never_share_an_epoch_order() -> None:
    """Two runs with nearby seeds see different orders in every epoch: a sampler seeded with ``seed + epoch`` (as
    ``DistributedSampler``) gives seed 1's epoch 0 to seed 0's epoch 1, so a "second seed" repeats the first one's
    data order shifted by an epoch."""
    orders = set()
    for seed in range(3):
        s = StepSampler(50, batch=5, seed=seed)
        for e in range(4):
            s.set_epoch(e)
            orders.add(tuple(s))
    assert len(orders) == 12


def test_lr_schedules_hand_computed() -> None:
    ms = ScheduleCfg(epochs=300, kind="multistep", milestones=(200, 260), gamma=0.1)
    assert lr_factor(199 * 10, 10, ms) == 1.0
    assert math.isclose(lr_factor(200 * 10, 10, ms), 0.1)
    assert math.isclose(lr_factor(265 * 10, 10, ms), 0.01)
    cos = ScheduleCfg(epochs=10, kind="cosine", warmup_iters=10, warmup_ratio=0.0)
    assert lr_factor(0, 10, cos) == 0.0
    assert math.isclose(lr_factor(5, 10, cos), 0.5 * 0.5 * (1 + math.cos(math.pi * 5 / 100)))
    assert math.isclose(lr_factor(50, 10, cos), 0.5)  # half-way through the cosine
    assert lr_factor(100, 10, cos) == 0.0


def test_lr_floor_exponential_and_defaults_hand_computed() -> None:
    """mmcv's CosineAnnealing with ``min_lr_ratio`` m: ``m + (1 - m) (1 + cos(pi t / T)) / 2``, 1 at the start, m at
    the end (PCT: 1e-5); HoT's x0.99 decays once per epoch (its scheduler steps after each epoch), not per
    iteration. Defaults the recipes rely on: PPT's keep ratio from epoch 10 over 100 epochs (spec tokenpose_ppt.md),
    the multi-view instants every 5th / 64th (spec pipeline.md section 5)."""
    from posetokens.engine.config import DataCfg

    floor = ScheduleCfg(epochs=10, kind="cosine", min_lr_ratio=0.1)
    assert lr_factor(0, 10, floor) == 1.0 and math.isclose(lr_factor(50, 10, floor), 0.55)
    assert math.isclose(lr_factor(100, 10, floor), 0.1)
    exp = ScheduleCfg(epochs=10, kind="exponential", gamma=0.99)
    assert lr_factor(5, 10, exp) == 1.0 and lr_factor(15, 10, exp) == 0.99 and math.isclose(lr_factor(25, 10, exp),
                                                                                          0.99 ** 2)
    d = ScheduleCfg()
    assert (d.prune_start_epoch, d.prune_decay_epochs) == (10, 100)
    assert (DataCfg().mv_train_every, DataCfg().mv_val_every) == (5, 64)


def test_keep_ratio_schedule_matches_ppt() -> None:
    # PPT/EViT: 1.0 for epochs 0-9, cosine from 1 to 0.7 over 100 epochs, then 0.7
    assert keep_ratio_at(9 * 100 + 99, 100, 0.7, 10, 100) == 1.0
    assert keep_ratio_at(10 * 100, 100, 0.7, 10, 100) == 1.0
    assert math.isclose(keep_ratio_at(60 * 100, 100, 0.7, 10, 100), 0.85)
    assert math.isclose(keep_ratio_at(110 * 100, 100, 0.7, 10, 100), 0.7)
    assert math.isclose(keep_ratio_at(299 * 100, 100, 0.7, 10, 100), 0.7)


def test_joints_mse_hand_computed() -> None:
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2)
    weight = torch.tensor([[1.0, 0.0]])
    # joint 0: 0.5 * mean(1) = 0.5; joint 1 weighted out: 0; mean over joints = 0.25
    assert math.isclose(float(joints_mse(pred, target, weight)), 0.25)


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml.optim: unknown key\(s\) \['lrr'\]"):
        load_config(bad)
    with pytest.raises(ValueError, match="schedule.epochs: expected int"):
        load_config(None, ["schedule.epochs=many"])
    with pytest.raises(ValueError, match="unknown config field 'dimm'"):
        train(load_config(None, ["model.overrides={dimm: 3}", "data.train_ann=x"]))
    with pytest.raises(ValueError, match=r"--set model.overrides.groups\[0\]: missing key\(s\) \['sparse'\]"):
        load_config(None, ["model.name=gtpt_t_coco_256x192", "model.overrides.groups=[{name: all}]"])  # a traceback
    with pytest.raises(ValueError, match=r"--set model.overrides.groups\[1\].sparse\[1\]: expected int, got '2'$"):
        load_config(None, ["model.name=gtpt_t_coco_256x192",  # which group and which id
                           "model.overrides.groups=[{name: a, sparse: [0]}, {name: b, sparse: [1, '2']}]"])


def test_a_stored_recipe_reads_home_relative_paths_as_a_shell_would(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``~`` in a path field (a skeleton file in data.dataset too) is the home folder, not a folder named ``~``
    under the current one (it was made /cwd/~/s.json, which then did not exist)."""
    from posetokens.engine.config import absolute_paths

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    got = absolute_paths({"data": {"dataset": "~/s.json", "train_ann": "~/a.json", "val_ann": "v.json"}})["data"]
    assert got == {"dataset": str(tmp_path / "home" / "s.json"), "train_ann": str(tmp_path / "home" / "a.json"),
                   "val_ann": str(tmp_path / "v.json")}


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_is_skipped_and_counted_not_fatal(workers: int, tiny_data: dict, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """One unreadable picture in training: skipped, and counted once in each epoch's ``skipped`` record, also when
    DataLoader workers (each with its own copy of the dataset) read it (until 2026-12-06 they counted in their
    copies, and log.jsonl said nothing). The warning is said when the count changes, not again every epoch."""
    data = dict(tiny_data)
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for f in Path(tiny_data["train_img_dir"]).iterdir():
        (img_dir / f.name).write_bytes(f.read_bytes())
    victim = sorted(img_dir.iterdir())[0]
    victim.write_bytes(b"not a jpeg")
    data["train_img_dir"] = str(img_dir)
    with caplog.at_level(logging.WARNING, logger="posetokens"):
        train(_cfg(data, tmp_path / "run", "schedule.epochs=2", f"data.num_workers={workers}"))
    assert (tmp_path / "run" / "final.pth").is_file()
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [rec["skipped"].get("bad_image") for rec in logs if "skipped" in rec] == [1, 1]  # one picture, 2 epochs
    said = [r.getMessage() for r in caplog.records if "skipped samples" in r.getMessage()]
    assert said == ["epoch 0: skipped samples {'bad_image': 1}"], said


def test_cli_evaluate_matches_pycocotools(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_file = shared_data / "coco" / "test_coco.json"
    gt = json.loads(gt_file.read_text())
    preds = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"]]
    pred_file = tmp_path / "pred.json"
    pred_file.write_text(json.dumps(preds))
    assert cli(["evaluate", "--gt", str(gt_file), "--pred", str(pred_file), "--no-rescore", "--nms-thr", "none",
                "--json"]) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    coco = COCO(str(gt_file))
    ev = COCOeval(coco, coco.loadRes(str(pred_file)), "keypoints")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert math.isclose(ours["AP"], ev.stats[0], abs_tol=1e-12)
    assert math.isclose(ours["AR"], ev.stats[5], abs_tol=1e-12)


def test_cli_evaluate_says_its_warnings_and_hints_as_the_other_commands(shared_data: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    gt_file = shared_data / "coco" / "test_coco.json"
    gt = json.loads(gt_file.read_text())
    first = gt["annotations"][0]
    pred_file = tmp_path / "pred.json"  # one image of the set, no 'area': the official box-area NMS needs it
    pred_file.write_text(json.dumps([{"image_id": first["image_id"], "category_id": 1, "keypoints": first["keypoints"],
                                      "score": 1.0}]))
    people = {a["image_id"] for a in gt["annotations"] if a.get("num_keypoints", 1) and not a.get("iscrowd", 0)}
    assert cli(["evaluate", "--gt", str(gt_file), "--pred", str(pred_file)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"posetokens: warning: {pred_file}: {len(people) - 1} of {len(people)} ground-truth "
                             "images with annotated people have no prediction")
    assert err[1].startswith("posetokens evaluate: error: ") and "give --nms-area keypoints" in err[1]
    # the official code's results are rescored and NMS'd already: the way to score them as they are is named too
    assert err[1].endswith("or, for results already rescored and NMS'd (what the official code writes), --no-rescore "
                           "--nms-thr none to score them as they are")
    assert len(err) == 2


@pytest.mark.parametrize(("argv", "said"), [
    (["--bogus"], "posetokens: error: unrecognized arguments: --bogus"),  # was: required: command
    (["infer", "--bogus", "x"], "posetokens infer: error: unrecognized arguments: --bogus"),  # was: required: --out
    (["infer", "x", "--ou", "o", "--bogus=3"], "posetokens: error: unrecognized arguments: --bogus=3"),
    (["infer", "x", "--wei", "w"], "posetokens infer: error: the following arguments are required: --out"),
    (["evaluate", "--gt", "a", "--rescore-thr", "-1"], "posetokens evaluate: error: the following arguments are "
                                                       "required: --pred"),  # a negative number is a value
    (["lift", "--", "--x"], "posetokens lift: error: the following arguments are required: --out"),
    (["infer", "--out", "-my out"], "posetokens infer: error: the following arguments are required: input"),
])
def test_cli_names_an_unknown_option_before_a_missing_argument(argv: list[str], said: str,
                                                               capsys: pytest.CaptureFixture) -> None:
    assert cli(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == said


def test_cli_version_names_the_package_and_torch(capsys: pytest.CaptureFixture) -> None:
    import posetokens

    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"posetokens {posetokens.__version__} (torch {torch.__version__})"


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_loads_and_names_a_zoo_model(path: Path) -> None:
    import posetokens

    cfg = load_config(path)
    assert cfg.model.name in posetokens.list_models()


def test_optimiser_settings_reach_the_weights_by_hand() -> None:
    """``build_optimizer``: one AdamW step with zero gradients moves nothing but the decoupled weight decay,
    ``p <- p (1 - lr wd)`` (torch.optim.AdamW's definition): lr 1 and wd 0.1 scale every parameter by 0.9, and with
    ``no_decay_1d`` (PCT's recipes: mmcv's constructor gives 1-D parameters and biases no decay, spec pct.md) only the
    weight matrices and the 3-D token; ``amsgrad`` and betas reach the optimiser. The PCT recipes set it, no other."""
    import yaml

    from posetokens.engine.config import OptimCfg
    from torch import nn

    from posetokens.engine.trainer import build_optimizer

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.norm = nn.Linear(2, 3), nn.LayerNorm(3)
            self.token = nn.Parameter(torch.ones(1, 1, 3))

    for flat, decayed in ((False, {"fc.weight", "fc.bias", "norm.weight", "norm.bias", "token"}),
                          (True, {"fc.weight", "token"})):
        torch.manual_seed(0)
        m = Head()
        with torch.no_grad():
            for q in m.parameters():
                q.uniform_(0.5, 1.0)
        before = {n: q.detach().clone() for n, q in m.named_parameters()}
        opt = build_optimizer(m, OptimCfg(name="adamw", lr=1.0, weight_decay=0.1, betas=(0.8, 0.9), amsgrad=True,
                                          no_decay_1d=flat))
        assert opt.defaults["amsgrad"] is True and opt.defaults["betas"] == (0.8, 0.9)
        for q in m.parameters():
            q.grad = torch.zeros_like(q)
        opt.step()
        for n, q in m.named_parameters():
            torch.testing.assert_close(q.detach(), before[n] * (0.9 if n in decayed else 1.0), msg=n)
    for path in sorted((REPO / "configs").glob("*.yaml")):
        optim = yaml.safe_load(path.read_text()).get("optim", {})
        assert bool(optim.get("no_decay_1d")) == path.name.startswith("pct_"), path.name


def test_best_checkpoint_choice_and_the_ema_by_hand(tiny_data: dict, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``best.pth`` follows the first metric an evaluation holds: MPJPE and the tokenizer's ``recon_px`` lower, AP,
    PCKh and JDR higher; a tie keeps the earlier epoch. ``ModelEMA.update``: ``e <- d e + (1 - d) p`` for the
    parameters, buffers (BatchNorm's statistics) copied. The evaluations score the EMA copy: the last one's
    weights are ``final.pth``'s (which holds the EMA)."""
    import posetokens.engine.trainer as trainer_mod
    from torch import nn

    from posetokens.engine.trainer import ModelEMA, improves

    assert improves({"MPJPE": 50.0}, {}) and improves({"MPJPE": 40.0}, {"MPJPE": 50.0})
    assert not improves({"MPJPE": 60.0}, {"MPJPE": 50.0}) and not improves({"MPJPE": 50.0}, {"MPJPE": 50.0})
    assert improves({"recon_px": 3.0}, {"recon_px": 4.0}) and not improves({"recon_px": 5.0}, {"recon_px": 4.0})
    assert improves({"AP": 0.5, "AR": 0.1}, {"AP": 0.4}) and not improves({"AP": 0.4}, {"AP": 0.4})
    assert improves({"PCKh": 0.9}, {"PCKh": 0.8}) and improves({"jdr": 0.7}, {"jdr": 0.6})
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, 0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    start = ema.module[0].weight.clone()
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, 0.9 * start + 0.1 * model[0].weight)
    assert ema.module[1].running_mean.tolist() == [3.0, 3.0]
    scored: list[dict[str, torch.Tensor]] = []
    evaluate_model = trainer_mod.evaluate_model
    monkeypatch.setattr(trainer_mod, "evaluate_model", lambda m, *a, **k: (
        scored.append({n: t.detach().clone() for n, t in m.state_dict().items()}), evaluate_model(m, *a, **k))[1])
    train(_cfg(tiny_data, tmp_path / "run", "eval_interval=3"))
    final = _weights(tmp_path / "run" / "final.pth")
    assert len(scored) == 1 and all(torch.equal(scored[0][n], final[n]) for n in final)


def test_mpii_format_trains_and_evaluates_on_real_sample(shared_data: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "heads.npy", np.tile(np.array([[[0.0, 0.0], [30.0, 40.0]]]), (5, 1, 1)))
    cfg = load_config(REPO / "configs" / "ppt_s_mpii_256x256.yaml", [
        f"data.train_ann={shared_data / 'mpii' / 'test_mpii.json'}", f"data.train_img_dir={shared_data / 'mpii'}",
        f"data.val_ann={shared_data / 'mpii' / 'test_mpii.json'}", f"data.val_img_dir={shared_data / 'mpii'}",
        f"data.mpii_headboxes={tmp_path / 'heads.npy'}", "eval_interval=1",
        "model.overrides={image_size: [64, 64], dim: 32, depth: 2, heads: 2, patch_size: [2, 2], head_hidden: 64, "
        "prune: {layers: [0]}, backbone: {stem_channels: 16, num_blocks: [1, 4, 4, 4]}}",
        "data.batch_size=2", "schedule.epochs=1", f"work_dir={tmp_path}", "threads=1",
    ])
    metrics = train(cfg)
    assert (tmp_path / "final.pth").is_file()
    assert {"Head", "Wrist", "Mean", "PCKh"} <= set(metrics) and 0.0 <= metrics["PCKh"] <= 100.0


def test_mpii_pckh_hand_computed(shared_data: Path, tmp_path: Path) -> None:
    from posetokens.data.datasets import MpiiDataset
    from posetokens.engine.evaluate import mpii_metrics
    from posetokens.protocols import get_protocol

    ds = MpiiDataset(shared_data / "mpii" / "test_mpii.json", shared_data / "mpii", "mpii", mode="test")
    gt = np.stack([ds.get_data_info(i)["keypoints"] for i in range(len(ds))])
    vis = np.stack([ds.get_data_info(i)["keypoints_visible"] for i in range(len(ds))]) > 0
    # head box 30 x 40 -> diagonal 50 -> head size 0.6 * 50 = 30 px -> PCKh@0.5 radius 15 px
    boxes = np.tile(np.array([[[0.0, 0.0], [30.0, 40.0]]]), (len(ds), 1, 1))
    np.save(tmp_path / "heads.npy", boxes)
    pred = gt.copy()
    pred[:, :, 0] += 10.0  # 10 px: correct ...
    pred[:, 10:, 0] += 10.0  # ... except the six arm joints (10-15), now 20 px off
    rule = get_protocol("tokenpose").eval
    m = mpii_metrics(ds, pred, str(tmp_path / "heads.npy"), rule)
    assert m["Head"] == 100.0 and m["Hip"] == 100.0 and m["Knee"] == 100.0
    assert m["Shoulder"] == 0.0 and m["Elbow"] == 0.0 and m["Wrist"] == 0.0
    # Mean: labelled joints other than pelvis/thorax; correct = legs, hips, neck, head top
    counted = vis.copy()
    counted[:, [6, 7]] = False
    expected = 100.0 * counted[:, :10].sum() / counted.sum()
    assert math.isclose(m["Mean"], expected)
    with pytest.raises(ValueError, match="mpii_headboxes"):
        mpii_metrics(ds, pred, None, rule)


# The loss each paper's recipe trains with (../shared/specs): JointsMSE for TokenPose/PPT (tokenpose_ppt.md) and
# multi-view PPT; GTPT's three KL terms (gtpt.md, section 7); PCT's stage losses (pct.md); HoT's MixSTE loss
# and MHFormer's plain MPJPE (hot.md, section 5); MotionBERT's MPJPE + 0.5 N-MPJPE + 20 MPJVE, which
# MotionAGFormer's recipe also uses (motionagformer_h2ot.md, section 1.10).
RECIPE_LOSS = {"tokenpose": "joints_mse", "tokenpose_mv": "joints_mse", "gtpt": "gtpt", "pct": "pct",
               "mixste": "hot", "mhformer": "mpjpe", "motionbert": "motionbert", "motionagformer": "motionbert",
               "hot_motionagformer": "motionbert"}


def test_every_zoo_model_declares_the_loss_of_its_recipe() -> None:
    from types import SimpleNamespace

    from posetokens.registry import get_entry, get_family, list_models

    seen = set()
    for name in list_models():
        entry = get_entry(name)
        cls = get_family(entry.family).build
        declared = cls.train_loss
        if isinstance(declared, property):  # GTPT: read off the config (every zoo GTPT prunes)
            shell = SimpleNamespace(cfg=entry.cfg)
            shell.prunes = cls.prunes.fget(shell)
            declared = declared.fget(shell)
        assert declared == RECIPE_LOSS[entry.family], name
        seen.add(entry.family)
    assert seen == set(RECIPE_LOSS)


def test_every_zoo_model_builds_on_the_meta_device() -> None:
    # a model built under ``torch.device("meta")`` allocates nothing (counting, sharded or lazy loading); a
    # constructor that reads a tensor's values on the host (``.tolist()``, ``.item()``) fails there
    from posetokens import create_model, list_models

    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        assert all(p.is_meta for p in model.parameters()), name


def test_trainer_auto_loss_is_the_declared_one_and_a_model_without_one_is_refused() -> None:
    from torch import nn

    from posetokens.engine.trainer import TrainStep

    class Declares(nn.Linear):
        task, train_loss = "lifting", "mpjpe"

    class Silent(nn.Linear):
        task = "lifting"

    assert TrainStep(Declares(1, 1), "auto").loss == "mpjpe"
    assert TrainStep(Declares(1, 1), "hot").loss == "hot"  # a config's own loss wins
    with pytest.raises(TypeError, match="Silent declares no train_loss"):
        TrainStep(Silent(1, 1), "auto")

    class Coords(nn.Linear):  # PCT's kind: its stage losses only, so a config's other loss is refused, not ignored
        task, output_kind, train_loss = "topdown", "coords", "pct"

    with pytest.raises(ValueError, match=r"loss 'joints_mse' does not apply to coords models \(Coords\); use auto or pct"):
        TrainStep(Coords(1, 1), "joints_mse")


def test_sigterm_mid_epoch_keeps_the_finished_steps_and_resume_ends_with_identical_weights(
        tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (what SLURM and Kubernetes send) in the middle of an epoch: the run writes last.pth at the last
    finished step, says where in one line, and exits 143; --resume then ends with the uninterrupted run's weights
    bit for bit (the RNG state saved is the one of that step boundary)."""
    import signal

    import posetokens.engine.trainer as trainer_mod
    from posetokens.runtime import Interrupted

    train(_cfg(tiny_data, tmp_path / "full"))
    full = _weights(tmp_path / "full" / "final.pth")
    per_epoch = sum(r["epoch"] == 0 for r in _step_records(tmp_path / "full"))
    k = per_epoch + 1  # one step into epoch 1
    lr_factor = trainer_mod.lr_factor

    def lr_factor_then_sigterm(step: int, *args, **kwargs):  # called at the start of each step, with steps done
        if step == k:
            os.kill(os.getpid(), signal.SIGTERM)
        return lr_factor(step, *args, **kwargs)

    monkeypatch.setattr(trainer_mod, "lr_factor", lr_factor_then_sigterm)
    with pytest.raises(Interrupted) as e:
        train(_cfg(tiny_data, tmp_path / "split"))
    monkeypatch.undo()
    last = tmp_path / "split" / "last.pth"
    assert e.value.exit_code == 143
    assert str(e.value) == (f"interrupted by SIGTERM: kept {last} at epoch 1, step {k} (1 of {per_epoch} in the "
                            "epoch); continue with --resume")
    mid = torch.load(last, weights_only=False)
    assert (mid["epoch"], mid["step_in_epoch"], mid["step"]) == (1, 1, k) and _adam_steps(mid) == {k}
    assert not (tmp_path / "split" / "final.pth").exists()
    train(_cfg(tiny_data, tmp_path / "split"), resume=True)
    resumed = _weights(tmp_path / "split" / "final.pth")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


@pytest.mark.parametrize("accum", [1, 2])
def test_sigint_after_a_forward_pass_keeps_the_buffers_of_the_last_finished_step(
        tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accum: int) -> None:
    """SIGINT right after a training forward pass, whose BatchNorm layers have already moved their running
    statistics (and, with gradient accumulation, after the first micro-batch of a step): last.pth holds the
    buffers of the last finished step, so --resume, which runs the cut step again, ends with the uninterrupted
    run's weights and buffers bit for bit."""
    import signal

    import posetokens.engine.trainer as trainer_mod
    from posetokens.runtime import Interrupted

    extra = (f"optim.grad_accum={accum}",)
    train(_cfg(tiny_data, tmp_path / "full", *extra))
    full = _weights(tmp_path / "full" / "final.pth")
    assert any(k.endswith("running_mean") for k in full)  # the stem's BatchNorm: what a cut step moved
    forward, calls = trainer_mod.TrainStep.forward, []

    def forward_then_sigint(self, batch):
        out = forward(self, batch)
        calls.append(1)
        if len(calls) == 3 * accum + 1:  # the forward pass of step 4 (its first micro-batch)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer_mod.TrainStep, "forward", forward_then_sigint)
    with pytest.raises(Interrupted):
        train(_cfg(tiny_data, tmp_path / "split", *extra))
    monkeypatch.undo()
    mid = torch.load(tmp_path / "split" / "last.pth", weights_only=False)
    assert mid["step"] == 3
    tracked = [v for k, v in mid["model"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == 3 * accum for v in tracked)  # one per micro-batch of the 3 finished steps
    train(_cfg(tiny_data, tmp_path / "split", *extra), resume=True)
    resumed = _weights(tmp_path / "split" / "final.pth")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


@pytest.mark.parametrize("stop", ["sigterm-in-eval", "crash-in-eval", "sigint-in-save", "crash-after-eval"])
def test_an_evaluation_cut_short_runs_first_on_resume(tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     stop: str) -> None:
    """An evaluation stopped by SIGTERM or a crash while it runs, by SIGINT while the epoch-end last.pth (which marks
    it due) is written, or by a crash after it logged but before last.pth was cleared, is run first by --resume on
    the weights it was scoring: the log then holds the uninterrupted run's evaluations, once each, and the run ends
    with its weights bit for bit."""
    import signal

    import posetokens.engine.trainer as trainer_mod
    from posetokens.runtime import Interrupted

    train(_cfg(tiny_data, tmp_path / "full", "eval_interval=1"))
    full = _weights(tmp_path / "full" / "final.pth")
    evals = [r for r in map(json.loads, (tmp_path / "full" / "log.jsonl").read_text().splitlines()) if "eval" in r]
    assert [r["epoch"] for r in evals] == [1, 2, 3]
    evaluate_model, atomic_save = trainer_mod.evaluate_model, trainer_mod.atomic_save
    fired: list[str] = []

    def evaluate_then_stop(*args, **kwargs):
        if stop.endswith("-in-eval") and not fired and len(
                [r for r in map(json.loads, (tmp_path / "split" / "log.jsonl").read_text().splitlines())
                 if "eval" in r]) == 1:  # epoch 2's evaluation
            fired.append(stop)
            if stop == "sigterm-in-eval":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("the machine went away")
        return evaluate_model(*args, **kwargs)

    def save_then_stop(obj, path):
        if not fired and Path(path).name == "last.pth" and (obj["epoch"], obj["step_in_epoch"]) == (2, 0):
            if stop == "sigint-in-save" and obj["eval_due"] == 2:
                fired.append(stop)
                os.kill(os.getpid(), signal.SIGINT)
            elif stop == "crash-after-eval" and obj["eval_due"] is None:  # epoch 2's evaluation is logged
                fired.append(stop)
                raise RuntimeError("the machine went away")
        return atomic_save(obj, path)

    monkeypatch.setattr(trainer_mod, "evaluate_model", evaluate_then_stop)
    monkeypatch.setattr(trainer_mod, "atomic_save", save_then_stop)
    with pytest.raises(Interrupted if stop.startswith("sig") else RuntimeError) as e:
        train(_cfg(tiny_data, tmp_path / "split", "eval_interval=1"))
    monkeypatch.undo()
    assert fired == [stop]
    if stop.startswith("sig"):
        assert str(e.value).endswith("(0 of 5 in the epoch); the evaluation of epoch 2 did not finish and runs first; "
                                     "continue with --resume"), str(e.value)
    mid = torch.load(tmp_path / "split" / "last.pth", weights_only=False)
    assert (mid["epoch"], mid["step_in_epoch"], mid["eval_due"]) == (2, 0, 2)
    train(_cfg(tiny_data, tmp_path / "split", "eval_interval=1"), resume=True)
    again = [r for r in map(json.loads, (tmp_path / "split" / "log.jsonl").read_text().splitlines()) if "eval" in r]
    assert again == evals
    assert torch.load(tmp_path / "split" / "last.pth", weights_only=False)["eval_due"] is None
    resumed = _weights(tmp_path / "split" / "final.pth")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_a_signal_during_an_update_keeps_the_steps_log_whole(tiny_data: dict, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT while an optimiser update is applied lands after that step is logged: the step the checkpoint holds
    is in the log, and after --resume every step is logged once."""
    import signal

    import posetokens.engine.trainer as trainer_mod
    from posetokens.runtime import Interrupted

    calls: list[int] = []
    rng_state = trainer_mod._rng_state

    def rng_state_then_sigint():  # called inside the update's deferred block, once per step (and at the start)
        calls.append(1)
        if len(calls) == 8:
            os.kill(os.getpid(), signal.SIGINT)
        return rng_state()

    monkeypatch.setattr(trainer_mod, "_rng_state", rng_state_then_sigint)
    with pytest.raises(Interrupted):
        train(_cfg(tiny_data, tmp_path / "run"))
    monkeypatch.undo()
    held = torch.load(tmp_path / "run" / "last.pth", weights_only=False)["step"]
    assert [r["step"] for r in _step_records(tmp_path / "run")] == list(range(1, held + 1)) and held > 2
    train(_cfg(tiny_data, tmp_path / "run"), resume=True)
    n = torch.load(tmp_path / "run" / "last.pth", weights_only=False)["step"]
    assert [r["step"] for r in _step_records(tmp_path / "run")] == list(range(1, n + 1))


@pytest.mark.parametrize("other", ["started", "finished"])
def test_a_run_that_wrote_the_work_dir_while_this_one_was_built_is_kept(
        tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, other: str) -> None:
    """Two trainings started into one new work dir: the work dir is judged before the model and data are built, and
    locked after. Another run that started (its config.json and log.jsonl) or even finished (its checkpoints, lock
    released) in between is found when this one takes the lock: refused in one line, the other run's files
    untouched, nothing of this run written."""
    import posetokens.engine.trainer as trainer_mod

    work = tmp_path / "run"
    build = trainer_mod.build_model

    def build_while_another_run_writes(cfg, **kw):
        work.mkdir(exist_ok=True)
        for name in ("config.json", "log.jsonl") + (("last.pth", "final.pth") if other == "finished" else ()):
            (work / name).write_text(f"the other run's {name}")
        return build(cfg, **kw)

    monkeypatch.setattr(trainer_mod, "build_model", build_while_another_run_writes)
    written = "config.json, final.pth, last.pth, log.jsonl" if other == "finished" else "config.json, log.jsonl"
    with pytest.raises(ValueError, match=rf"^work_dir {re.escape(str(work))}: another run wrote or removed {written} "
                                         r"there while this one was being built; nothing was written"):
        train(_cfg(tiny_data, work))
    assert sorted(p.name for p in work.iterdir()) == sorted(written.split(", "))
    assert all(p.read_text() == f"the other run's {p.name}" for p in work.iterdir())
    monkeypatch.undo()
    train(_cfg(tiny_data, work, "max_steps=1"), overwrite=True)  # the lock was released; --overwrite archives it
    assert (work / "archive").is_dir() and (work / "last.pth").is_file()


def test_overwrite_from_the_old_runs_own_checkpoint_records_where_it_moved(tiny_data: dict, tmp_path: Path) -> None:
    """``--overwrite`` of a run started from that run's own ``last.pth``: the file is read, then moves with the old
    run to ``archive/<time>/``; the new run's recipe (``config.json``, its checkpoints) and its ``log.jsonl``
    name the archived file, which is the old one byte for byte, not the new run's ``last.pth`` now at the path."""
    work = tmp_path / "run"
    train(_cfg(tiny_data, work, "max_steps=1"))
    old = (work / "last.pth").read_bytes()
    train(_cfg(tiny_data, work, "max_steps=1", f"model.weights={work / 'last.pth'}", "model.weights_strict=false"),
          overwrite=True)
    (archived,) = (work / "archive").iterdir()
    moved = str(archived.resolve() / "last.pth")
    assert (archived / "last.pth").read_bytes() == old != (work / "last.pth").read_bytes()
    assert json.loads((work / "config.json").read_text())["model"]["weights"] == moved
    assert torch.load(work / "last.pth", map_location="cpu", weights_only=False)["config"]["model"]["weights"] == moved
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert [r["initial_weights"]["source"] for r in records if "initial_weights" in r] == [f"model.weights {moved}"]


def test_a_weights_link_among_the_moved_files_is_recorded_by_its_file(tmp_path: Path) -> None:
    """Where ``model.weights`` lies once an old run's files move to archive/ (found before they move): a run file
    moves with them, given absolute or relative; a run file that is a relative link to a file outside moves as a
    link (then dangling), so the recipe records the file it names; a file outside the run stays put."""
    from posetokens.engine.trainer import _moved_with

    run, ext = tmp_path / "run", tmp_path / "ext"
    run.mkdir()
    ext.mkdir()
    (run / "last.pth").write_text("x")
    (ext / "init.pth").write_text("y")
    (run / "final.pth").symlink_to("../ext/init.pth")
    dest, moved = run / "archive" / "t", ["last.pth", "final.pth", "tb"]
    assert _moved_with(str(run / "last.pth"), run, moved, dest) == str(dest.resolve() / "last.pth")
    assert _moved_with(str(run / "final.pth"), run, moved, dest) == str((ext / "init.pth").resolve())
    assert _moved_with(str(ext / "init.pth"), run, moved, dest) is None
    cwd = os.getcwd()
    try:
        os.chdir(run)
        assert _moved_with("last.pth", Path("."), ["last.pth"], Path("archive/t")) == str(dest.resolve() / "last.pth")
    finally:
        os.chdir(cwd)


def test_resume_refuses_another_global_batch(tiny_data: dict, tmp_path: Path) -> None:
    """A run saved by 2 DDP processes (one RNG state each) resumed by 1 would halve the global batch and stretch
    the schedule without a word: refused, unless --allow-config-change."""
    train(_cfg(tiny_data, tmp_path / "run", "max_steps=2"))
    last = tmp_path / "run" / "last.pth"
    ckpt = torch.load(last, weights_only=False)
    ckpt["rng"] = ckpt["rng"] * 2  # as two processes save it
    torch.save(ckpt, last)
    with pytest.raises(ValueError, match=r"global batch of 8 \(2 process\(es\)\), this run has 4 \(1\); the steps per "
                                         r"epoch and the schedule would change: start as many processes"):
        train(_cfg(tiny_data, tmp_path / "run"), resume=True)


# ------------------------------------------------------------------ a user's own dataset (session 27's review)
def test_a_dataset_that_cannot_train_is_named_before_any_step(tiny_data: dict, tmp_path: Path) -> None:
    """An image folder that does not exist printed one warning per image, then 'none could be read'; an empty
    'annotations' list said to lower data.batch_size; a missing val image was found at the first evaluation,
    epochs in. Each is refused before the first step, naming the field."""
    with pytest.raises(FileNotFoundError, match=r"data.train_img_dir .*nope is not a folder"):
        train(_cfg(tiny_data, tmp_path / "a", f"data.train_img_dir={tmp_path / 'nope'}"))
    empty = json.loads(Path(tiny_data["train_ann"]).read_text())
    empty["annotations"] = []
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    with pytest.raises(ValueError, match=r"data.train_ann .*empty.json: no person to train on"):
        train(_cfg(tiny_data, tmp_path / "b", f"data.train_ann={tmp_path / 'empty.json'}"))
    val = json.loads(Path(tiny_data["val_ann"]).read_text())
    val["images"][1]["file_name"] = "not_there.jpg"
    (tmp_path / "val.json").write_text(json.dumps(val))
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*not_there.jpg \(data.val_img_dir"):
        train(_cfg(tiny_data, tmp_path / "c", f"data.val_ann={tmp_path / 'val.json'}", "eval_interval=1"))
    assert not (tmp_path / "c" / "last.pth").exists()


def test_a_val_set_that_is_the_train_set_is_said(tiny_data: dict, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Evaluating on the training people measures fit: said once (by another path to the same file too)."""
    link = tmp_path / "same.json"
    link.symlink_to(tiny_data["train_ann"])
    with caplog.at_level(logging.WARNING, logger="posetokens"):
        train(_cfg(tiny_data, tmp_path / "a", "max_steps=1"))
        assert not [r for r in caplog.records if "is data.train_ann" in r.getMessage()]
        train(_cfg(tiny_data, tmp_path / "b", "max_steps=1", f"data.val_ann={link}",
                   f"data.val_img_dir={tiny_data['train_img_dir']}"))
    said = [r.getMessage() for r in caplog.records if "is data.train_ann" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"data.val_ann {link} is data.train_ann: "), said


UPPER7 = ["head", "left_shoulder", "right_shoulder", "left_hand", "right_hand", "left_hip", "right_hip"]
UPPER7_SIGMAS = [0.03, 0.08, 0.08, 0.06, 0.06, 0.1, 0.1]


def _upper7(tiny_data: dict, tmp_path: Path) -> dict:
    """The synthetic people cut to 7 renamed joints (COCO's nose, shoulders, wrists and hips), their jsons in
    ``tmp_path`` and the skeleton file ``tmp_path/upper7.json``; the data dict with the new jsons."""
    keep = [0, 5, 6, 9, 10, 11, 12]
    data = dict(tiny_data)
    for split in ("train_ann", "val_ann"):
        d = json.loads(Path(tiny_data[split]).read_text())
        d["categories"] = [{"id": 1, "name": "person", "keypoints": UPPER7, "skeleton": [[2, 3], [6, 7]]}]
        for a in d["annotations"]:
            a["keypoints"] = [v for i in keep for v in a["keypoints"][3 * i: 3 * i + 3]]
            a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
        data[split] = str(tmp_path / f"{split}.json")
        Path(data[split]).write_text(json.dumps(d))
    (tmp_path / "upper7.json").write_text(json.dumps({"keypoints": UPPER7, "sigmas": UPPER7_SIGMAS,
                                                       "skeleton": [[2, 3], [6, 7]]}))
    return data


def test_a_skeleton_of_ones_own_trains_tests_and_infers(tiny_data: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A dataset of another keypoint set (the synthetic people cut to 7 renamed joints) with its skeleton file:
    training, ``test --weights`` from another folder (the run stored the file's path absolute and the layout
    whole), whose AP is pycocotools' under the file's sigmas, and ``PoseEstimator`` on the checkpoint alone."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from posetokens.inference.api import PoseEstimator

    data = _upper7(tiny_data, tmp_path)
    names, sigmas = UPPER7, UPPER7_SIGMAS
    monkeypatch.chdir(tmp_path)
    train(_cfg(data, tmp_path / "run", "schedule.epochs=1", "data.dataset=upper7.json",
               "model.overrides.num_keypoints=7"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    preds = tmp_path / "preds.json"
    capsys.readouterr()
    assert cli(["test", "--weights", str(tmp_path / "run" / "final.pth"), "--out", str(preds), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads(preds.read_text())
    assert results and all(len(r["keypoints"]) == 21 for r in results)
    coco = COCO(data["val_ann"])
    ev = COCOeval(coco, coco.loadRes(str(preds)), "keypoints")
    ev.params.kpt_oks_sigmas = np.array(sigmas)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert math.isclose(ours["AP"], ev.stats[0], abs_tol=1e-12) and math.isclose(ours["AR"], ev.stats[5], abs_tol=1e-12)
    # a non-trivial AP (the ground truth moved by a few pixels) through `evaluate --dataset FILE`: pycocotools' too
    rng = np.random.default_rng(0)
    moved = [{"image_id": a["image_id"], "category_id": 1, "score": 1.0,
              "keypoints": [v + (rng.normal(0, 2) if i % 3 < 2 else 0) for i, v in enumerate(a["keypoints"])]}
             for a in coco.dataset["annotations"]]
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    assert cli(["evaluate", "--gt", data["val_ann"], "--pred", str(tmp_path / "moved.json"), "--dataset",
                str(tmp_path / "upper7.json"), "--no-rescore", "--nms-thr", "none", "--json"]) == 0
    ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ev = COCOeval(coco, coco.loadRes(str(tmp_path / "moved.json")), "keypoints")
    ev.params.kpt_oks_sigmas = np.array(sigmas)
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert 0.05 < ev.stats[0] < 0.95 and math.isclose(ours["AP"], ev.stats[0], abs_tol=1e-12)
    # test with a recipe of another layout: one line (it failed in the flip test, or blamed the predictions)
    recipe = tmp_path / "coco.yaml"
    recipe.write_text(json.dumps({"model": {"name": "ppt_s_coco_256x192"}, "data": {
        "dataset": "coco", "val_ann": str(tiny_data["val_ann"]), "val_img_dir": str(tiny_data["val_img_dir"])}}))
    from posetokens.engine.trainer import test as run_test

    with pytest.raises(ValueError, match=r"final.pth: the model predicts the 7 keypoints of 'upper7' but "
                                         r"data.dataset='coco' has 17 others \(joint 0 is 'head' in the model, "
                                         r"'nose' in data.dataset\); leave out CONFIG"):
        run_test(load_config(str(recipe)), str(tmp_path / "run" / "final.pth"), str(tmp_path / "p2.json"))
    # the skeleton file replaced since training by one of the same joints in another order, no CONFIG given
    (tmp_path / "upper7.json").write_text(json.dumps({"keypoints": names[::-1], "sigmas": sigmas}))
    with pytest.raises(ValueError, match=r"has 7 others \(joint 0 is 'head' in the model, 'right_hip' in "
                                         r"data.dataset\); the skeleton file has changed since training"):
        run_test(None, str(tmp_path / "run" / "final.pth"), str(tmp_path / "p2.json"))
    # the skeleton file edited since training: scored with the file's sigmas, and said
    (tmp_path / "upper7.json").write_text(json.dumps({"keypoints": names, "sigmas": [0.5] * 7,
                                                       "skeleton": [[2, 3], [6, 7]]}))
    with caplog.at_level("WARNING"):
        assert cli(["test", "--weights", str(tmp_path / "run" / "final.pth"), "--out", str(preds)]) == 0
    assert any("its OKS sigmas differ from those stored in" in r.getMessage() for r in caplog.records)
    est = PoseEstimator(weights=str(tmp_path / "run" / "final.pth"))
    assert est.metainfo.name == "upper7" and est.metainfo.keypoint_names == tuple(names)
    assert est.metainfo.flip_indices == [0, 2, 1, 4, 3, 6, 5] and est.metainfo.sigmas == tuple(sigmas)
    # its video tracker matches poses by OKS under the layout's own sigmas (a built-in layout keeps the tracker's)
    import posetokens.inference.tracking as tracking

    made = []
    real_init = tracking.Tracker.__init__
    monkeypatch.setattr(tracking.Tracker, "__init__",
                        lambda self, *a, **k: (made.append(k.get("sigmas")), real_init(self, *a, **k))[1])
    frames = list(est(str(DATA / "video" / "mmpose_demo.mp4")))
    assert frames and made == [tuple(sigmas)] and all(r.track_ids is not None for r in frames)
    assert PoseEstimator("ppt_s_coco_256x192").tracker_args() == {"layout": "coco", "sigmas": None}


def test_gtpt_trains_on_a_skeleton_of_ones_own(tiny_data: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """GTPT on the 7-joint layout: ``num_body`` and ``groups`` from the recipe, one epoch, then ``test`` on the
    checkpoint alone writes 7-joint results and ``PoseEstimator`` reads the layout it stored."""
    from posetokens.inference.api import PoseEstimator

    data = _upper7(tiny_data, tmp_path)
    paths = [f"data.train_ann={data['train_ann']}", f"data.train_img_dir={data['train_img_dir']}",
             f"data.val_ann={data['val_ann']}", f"data.val_img_dir={data['val_img_dir']}",
             f"work_dir={tmp_path / 'run'}"]
    train(load_config(None, [
        "model.name=gtpt_t_coco_256x192", "model.overrides={image_size: [64, 48], num_body: 7, groups: [{name: head, "
        "sparse: [0]}, {name: upper, sparse: [1, 2, 3, 4]}, {name: lower, sparse: [5, 6]}]}",
        f"data.dataset={tmp_path / 'upper7.json'}", "data.batch_size=4", "schedule.epochs=1", "eval_interval=0",
        "threads=1", *paths]))
    preds = tmp_path / "preds.json"
    assert cli(["test", "--weights", str(tmp_path / "run" / "final.pth"), "--out", str(preds), "--json"]) == 0
    results = json.loads(preds.read_text())
    assert results and all(len(r["keypoints"]) == 21 for r in results)
    est = PoseEstimator(weights=str(tmp_path / "run" / "final.pth"))
    assert est.metainfo.keypoint_names == tuple(UPPER7) and est.model.cfg.num_keypoints == 7


COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]  # COCO's keypoint order (the dataset's categories entry)


def test_a_coco_run_starts_a_skeleton_of_ones_own(tiny_data: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  capsys: pytest.CaptureFixture) -> None:
    """``model.weights_strict: false``: a COCO checkpoint starts a 7-joint model; every tensor that fits is the
    file's, the keypoint tokens of joints COCO names (shoulders, hips) are the file's rows of those names, the
    others start from initialisation, and the log says which. A map names the rows instead. The strict default
    refuses with the way out; a resumed run does not read the file again (it may be gone)."""
    from posetokens.engine.trainer import build_model
    from posetokens.registry import create_model

    train(_cfg(tiny_data, tmp_path / "coco", "schedule.epochs=1"))
    coco = _weights(tmp_path / "coco" / "final.pth")
    data = _upper7(tiny_data, tmp_path)
    own = [f"data.dataset={tmp_path / 'upper7.json'}", "model.overrides.num_keypoints=7",
           f"model.weights={tmp_path / 'coco' / 'final.pth'}"]
    with pytest.raises(ValueError, match=r"model.weights .*final.pth does not fit model ppt_s_coco_256x192: shape "
                                         r"mismatches \(1\): keypoint_token: checkpoint \(1, 17, 32\) vs model "
                                         r"\(1, 7, 32\); .*set model.weights_strict=false to load what fits"):
        build_model(_cfg(data, tmp_path / "own", *own))
    cfg = _cfg(data, tmp_path / "own", *own, "model.weights_strict=false")
    torch.manual_seed(cfg.seed)
    fresh = create_model(cfg.model.name, **cfg.model.overrides).state_dict()
    torch.manual_seed(cfg.seed)
    with caplog.at_level("WARNING"):
        model = build_model(cfg)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in coco.items() if k != "keypoint_token")
    for i, name in enumerate(UPPER7):
        expected = coco["keypoint_token"][0, COCO_NAMES.index(name)] if name in COCO_NAMES else fresh[
            "keypoint_token"][0, i]
        assert torch.equal(got["keypoint_token"][0, i], expected), name
    said = " ".join(r.getMessage() for r in caplog.records)
    assert ("keypoint_token: 4 keypoint rows taken (left_shoulder<-left_shoulder, right_shoulder<-right_shoulder, "
            "left_hip<-left_hip, right_hip<-right_hip), 3 start from initialisation (head, left_hand, right_hand)"
            in said)
    # a map: the head from the nose, the hands from the wrists, by name or index; null keeps initialisation
    cfg = _cfg(data, tmp_path / "own", *own, "model.weights_strict=false",
               "model.weights_keypoints=[nose, left_shoulder, 6, left_wrist, null, 11, right_hip]")
    got = build_model(cfg).state_dict()["keypoint_token"][0]
    assert all(torch.equal(got[i], coco["keypoint_token"][0, j]) for i, j in enumerate([0, 5, 6, 9]))
    assert torch.equal(got[5:], coco["keypoint_token"][0, [11, 12]])
    assert not any(torch.equal(got[4], row) for row in coco["keypoint_token"][0])
    for bad, said in [("[nose]", r"1 entries for 7 keypoint rows of keypoint_token"),
                      ("[nose, 1, 2, 3, 4, 5, 6, 7]", r"8 entries for 7 keypoint rows of keypoint_token"),
                      ("[nose, 1, 2, 3, 4, 5, true]",
                       r"--set model.weights_keypoints\[6\]: expected int or str or null, got True"),
                      ("[nose, 1, 2, 3, 4, 5, 17]", r"weights_keypoints\[6\]: 17 is outside the 17 keypoint rows"),
                      ("[nose, 1, 2, 3, 4, 5, tail]", r"weights_keypoints\[6\]: .* has no keypoint 'tail'")]:
        with pytest.raises(ValueError, match=said):
            build_model(_cfg(data, tmp_path / "own", *own, "model.weights_strict=false",
                             f"model.weights_keypoints={bad}"))
    with pytest.raises(ValueError, match=r"--set: model.weights_keypoints maps keypoints of "
                                         r"a partial load: set model.weights_strict: false"):
        _cfg(data, tmp_path / "own", *own, "model.weights_keypoints=[0, 1, 2, 3, 4, 5, 6]")
    # the keypoint count is checked before the file is read: no summary of a load into the wrong model
    caplog.clear()
    with caplog.at_level("WARNING"), pytest.raises(ValueError, match=r"predicts 17 keypoints but data.dataset=.* has "
                                                                     r"7; set model.overrides.num_keypoints=7"):
        build_model(_cfg(data, tmp_path / "own", *own[:1], *own[2:], "model.weights_strict=false"))
    assert not any("keypoint rows taken" in r.getMessage() for r in caplog.records)
    # the options without model.weights: said to do nothing
    with caplog.at_level("WARNING"):
        build_model(_cfg(data, tmp_path / "own", *own[:2], "model.weights_strict=false"))
    assert any("model.weights is not set: the recipe's partial start (model.weights_strict: false, "
               "model.weights_keypoints) has no file to apply to" in r.getMessage() for r in caplog.records)
    # a run from it trains (its log keeps what it started from), stops, and resumes with the file gone and the
    # options dropped (a resumed run does not read them); its stored recipe still names the weights it started from
    cfg = _cfg(data, tmp_path / "own", *own, "model.weights_strict=false", "schedule.epochs=2", "max_steps=2")
    train(cfg)
    records = [json.loads(line) for line in (tmp_path / "own" / "log.jsonl").read_text().splitlines()]
    began = [r["initial_weights"] for r in records if "initial_weights" in r]
    assert len(began) == 1 and began[0]["fresh_keypoints"] == {"keypoint_token": ["head", "left_hand", "right_hand"]}
    (tmp_path / "coco" / "final.pth").unlink()
    train(_cfg(data, tmp_path / "own", *own[:2], "schedule.epochs=2"), resume=True)
    assert (tmp_path / "own" / "final.pth").exists()
    stored = json.loads((tmp_path / "own" / "config.json").read_text())["model"]
    assert stored["weights"] == str(tmp_path / "coco" / "final.pth") and stored["weights_strict"] is False


def test_a_partial_load_refuses_a_checkpoint_of_another_family(tmp_path: Path) -> None:
    """Less than half of the model's weight tensors fit the file by name and shape: another family's file, or one
    of other widths, said, not a model started from it (a model of another input size fits most of them, whatever
    share of its values its larger head holds)."""
    from posetokens.convert import CheckpointMismatchError, load_matching
    from posetokens.registry import create_model

    ppt = create_model("ppt_s_coco_256x192", image_size=(64, 48), dim=32, depth=2, heads=2, patch_size=(2, 2),
                       head_hidden=64, prune={"layers": [0], "keep_ratio": 0.7},
                       backbone={"stem_channels": 16, "num_blocks": [1, 4, 4, 4]})
    torch.save(ppt.state_dict(), tmp_path / "ppt.pth")
    gtpt = create_model("gtpt_t_coco_256x192")
    with pytest.raises(CheckpointMismatchError, match=r"ppt.pth fits only 0 of model gtpt_t_coco_256x192's \d+ "
                                                      r"weight tensors by name and shape \(0.0% of its values\); a "
                                                      r"partial load needs at least 50% of them and 25% of the "
                                                      r"values"):
        load_matching(gtpt, tmp_path / "ppt.pth", "gtpt")
    # the same family at other widths (PPT-S's 192 channels for a 32-channel model): names fit, shapes do not
    torch.save(create_model("ppt_s_coco_256x192").state_dict(), tmp_path / "ppt_s.pth")
    with pytest.raises(CheckpointMismatchError, match=r"ppt_s.pth fits only \d of model ppt_s_coco_256x192's \d+ "
                                                      r"weight tensors .*another family or of other widths"):
        load_matching(ppt, tmp_path / "ppt_s.pth", "tokenpose")
    # a transformer of other widths on the same backbone: most tensors (the CNN's) fit, few of the values
    wider = create_model("ppt_s_coco_256x192", image_size=(64, 48), dim=48, depth=2, heads=2, patch_size=(2, 2),
                         head_hidden=64, prune={"layers": [0], "keep_ratio": 0.7},
                         backbone={"stem_channels": 16, "num_blocks": [1, 4, 4, 4]})
    with pytest.raises(CheckpointMismatchError, match=r"ppt.pth fits only \d+ of model ppt_s_coco_256x192's \d+ "
                                                      r"weight tensors by name and shape \((\d|1\d|2[0-4])\.\d% of "
                                                      r"its values\)"):
        load_matching(wider, tmp_path / "ppt.pth", "tokenpose")


def test_an_official_file_starts_a_model_of_another_input_size_once_converted(tmp_path: Path) -> None:
    """The official PPT-S release (256x192) for a 384x288 model: refused as it is (its stored sine table is
    checked for the model's 24x24 grid) with the way out, and started from once converted at its own size: the
    keypoint tokens and the transformer are the file's, the head of the larger heatmap starts afresh."""
    from posetokens.convert import CheckpointMismatchError, convert_checkpoint, load_matching
    from posetokens.registry import create_model

    from conftest import PARITY

    official = PARITY / "tokenpose_ppt_s_coco_256x192" / "checkpoint.pth"
    if not official.exists():
        pytest.skip("the PPT-S parity fixture is not in shared/")
    large = create_model("ppt_s_coco_256x192", image_size=(384, 288))
    with pytest.raises(CheckpointMismatchError, match=r"official pos_embedding has shape \(1, 256, 192\), but this "
                                                      r"config's sine PE is \(1, 576, 192\).*; to start a model of "
                                                      r"other sizes from an official file, convert it at its own "
                                                      r"size first"):
        load_matching(large, official, "tokenpose")
    ours = convert_checkpoint("ppt_s_coco_256x192", official, tmp_path / "ppt_s.pth")
    report = load_matching(large, ours, "tokenpose", keypoint_names=COCO_NAMES)
    raw = torch.load(official, map_location="cpu", weights_only=True)
    assert torch.equal(large.keypoint_token, raw["features.keypoint_token"])
    assert torch.equal(large.blocks[11].attn.qkv.weight, raw["features.transformer.layers.11.0.fn.to_qkv.weight"])
    assert any(k.startswith("head.") and "file (3072," in k and "model (6912," in k for k in report.kept), report.kept
    assert report.rows["keypoint_token"] == [(n, n) for n in COCO_NAMES]
    # 7 keypoints of which 5 are in the file: all values come from it but the 2 fresh 192-wide token rows
    names = ["nose", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist", "tail", "horn"]
    seven = create_model("ppt_s_coco_256x192", num_keypoints=7)
    report = load_matching(seven, ours, "tokenpose", keypoint_names=names)
    assert report.rows["keypoint_token"] == [(n, n) for n in names[:5]] and report.fresh["keypoint_token"] == names[5:]
    values = sum(t.numel() for t in seven.state_dict().values())
    assert report.share == pytest.approx((values - 2 * 192) / values, abs=1e-12) and report.loaded
    # the official file stores no keypoint names: 17 rows in order for 17 joints, none for 7 (said, with the way)
    report = load_matching(create_model("ppt_s_coco_256x192"), official, "tokenpose", keypoint_names=COCO_NAMES)
    assert report.how["keypoint_token"].endswith("taken in order") and len(report.rows["keypoint_token"]) == 17
    report = load_matching(create_model("ppt_s_coco_256x192", num_keypoints=7), official, "tokenpose",
                           keypoint_names=UPPER7)
    assert report.rows["keypoint_token"] == [] and report.fresh["keypoint_token"] == UPPER7
    assert "keypoint_token: 0 keypoint rows taken, 7 start from initialisation (head, left_shoulder" in report.summary()
    assert "model.weights_keypoints gives each keypoint's row by index" in report.summary()


def test_augmentation_draws_depend_on_the_epoch(tiny_data: dict) -> None:
    """An item's augmentation is a function of (seed, epoch, index): the same in a rerun of an epoch, another in
    the next epoch (docs/training.md)."""
    from posetokens.engine.data import build_samples, model_codec
    from posetokens.engine.trainer import build_model
    from posetokens.protocols import get_protocol

    cfg = _cfg(tiny_data, Path("unused"))
    model = build_model(cfg, initial_weights=False)
    protocol = get_protocol("tokenpose")
    samples = build_samples(cfg.data, "train", model.cfg.image_size, protocol, model_codec(protocol, model), seed=3)
    warps = []
    for epoch in (0, 0, 1):
        samples.set_epoch(epoch)
        warps.append(samples[0]["warp_matrix"])
    np.testing.assert_array_equal(warps[0], warps[1])
    assert not np.array_equal(warps[0], warps[2])
