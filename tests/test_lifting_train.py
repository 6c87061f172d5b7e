"""Lifting through the shared trainer: a fast mechanics test, the slow synthetic-motion run, the flip test's
values and the evaluation protocol a LiftRule selects."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import posetokens.engine.lifting as lifting
from posetokens.data.h36m import H36MClip
from posetokens.data.synthetic_motion import generate_dataset
from posetokens.engine.config import DataCfg, load_config
from posetokens.engine.lifting import mean_pose_baseline
from posetokens.engine.trainer import test as run_test
from posetokens.engine.trainer import train
from posetokens.protocols import get_protocol

REPO = Path(__file__).resolve().parents[1]


def _paths(root: Path) -> list[str]:
    return [f"data.keypoints_3d={root / 'data_3d_h36m.npz'}", f"data.keypoints_2d={root / 'data_2d_h36m_gt.npz'}",
            f"data.cameras={root / 'cameras.json'}"]


@pytest.mark.parametrize("name, overrides", [
    ("hot_mixste_h36m_243", "{num_frames: 9, dim: 16, depth: 2, heads: 2, mlp_hidden: 32, prune: {keep: 3, layer: 1}}"),
    ("tpc_mixste_h36m_243", "{num_frames: 9, dim: 16, depth: 2, heads: 2, mlp_hidden: 32, prune: {keep: 3, layer: 1}}"),
    ("hot_motionbert_h36m_243", "{num_frames: 9, dim: 16, depth: 2, heads: 2, dim_rep: 16, prune: {keep: 3, layer: 1}}"),
])
def test_lifting_trains_resumes_and_tests(name: str, overrides: str, tmp_path: Path) -> None:
    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1", "S9"), seed=0, frames=40, sequences_per_action=1)
    common = [f"model.overrides={overrides}", "data.train_subjects=[S1]", "data.test_subjects=[S9]",
              "data.batch_size=8", "threads=1", "eval_interval=1", "schedule.epochs=1", *_paths(data)]
    metrics = train(load_config(REPO / "configs" / f"{name}.yaml", [*common, f"work_dir={tmp_path / 'run'}"]))
    assert metrics["MPJPE"] > 0 and metrics["P-MPJPE"] > 0
    cfg = load_config(REPO / "configs" / f"{name}.yaml", common)
    again = run_test(cfg, str(tmp_path / "run" / "final.pth"))
    with pytest.raises(ValueError, match=r"--out \S+p.json: a lifting model's test scores without writing predictions"):
        run_test(cfg, str(tmp_path / "run" / "final.pth"), str(tmp_path / "p.json"))  # it would be ignored
    # the value, from outside the scorer: HoT's P1 by hand on the final weights (training evaluated them too)
    hand = _hand_hot_p1(tmp_path / "run" / "final.pth", cfg)
    assert again["MPJPE"] == pytest.approx(hand, rel=1e-6)
    assert metrics["MPJPE"] == pytest.approx(hand, rel=1e-6)


def test_missing_test_subjects_are_found_before_training(tmp_path: Path) -> None:
    """A lifting file without the test subjects is refused before the first step (it used to fail after a whole
    epoch, at the first evaluation), and no work dir is made."""
    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1", "S5"), seed=0, frames=40, sequences_per_action=1)
    cfg = load_config(REPO / "configs" / "hot_mixste_synthetic_27.yaml",
                      [*_paths(data), "eval_interval=1", "data.train_subjects=[S1, S5]",
                       f"work_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyError, match=r"no test subjects \('S9', 'S11'\) in positions_3d \(found: \['S1', 'S5'\]\)"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def _hand_hot_p1(weights: Path, cfg: object) -> float:
    """HoT's P1 (shared/specs/pipeline.md §6) written out: every test window scored, root joint zeroed in
    prediction and target, the window's mean over frames and joints in mm (seq2frame: its centre frame); per
    action class (the name before the first space) the mean over its windows; overall the mean over the
    classes (the synthetic classes are not HoT's 15, so the classes present). The windows and the flip-merged
    predictions come from ``build_test_windows`` and ``predict_windows`` (flip merge checked by hand below)."""
    from posetokens.checkpoint import load_trained

    model = load_trained(str(weights)).model.eval()
    lift, flip = lifting.lifting_protocol(None, cfg.data, model)
    assert lift.h36m == "hot" and flip  # HoT-family models: HoT's protocol, with the flip test
    windows = lifting.build_test_windows(cfg.data, model.cfg.num_frames, bool(model.is_seq2frame), lift)
    per_class: dict[str, list[float]] = {}
    for i in range(len(windows)):
        w = windows[i]
        pred = lifting.predict_windows(model, w["input_2d"][None], flip)[0].double().numpy()
        target = w["target_3d"].double().numpy()
        if model.is_seq2frame:
            target = target[target.shape[0] // 2][None]
        pred, target = pred - pred[:, :1], target - target[:, :1]
        err = 1000.0 * np.sqrt(((pred - target) ** 2).sum(-1)).mean()
        per_class.setdefault(str(w["action"]).split(" ")[0], []).append(float(err))
    return float(np.mean([np.mean(v) for v in per_class.values()]))


@pytest.mark.slow
def test_hot_mixste_on_synthetic_motion_beats_the_zero_motion_baseline(tmp_path: Path) -> None:
    """The documented CPU run (README): reduced HoT-MixSTE on 5 synthetic training subjects."""
    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1", "S5", "S6", "S7", "S8", "S9", "S11"), seed=0)
    cfg = load_config(REPO / "configs" / "hot_mixste_synthetic_27.yaml",
                      [*_paths(data), f"work_dir={tmp_path / 'run'}", "threads=2"])
    metrics = train(cfg)
    baseline = mean_pose_baseline(cfg.data)
    assert metrics["MPJPE"] < 0.5 * baseline["MPJPE"], (metrics, baseline)


# ----------------------------------------------------------------------------- flip test and protocol choice
# the official pairs (HoT test / MotionBERT flip_data): [4,5,6,11,12,13] <-> [1,2,3,14,15,16]
_PERM = np.arange(17)
_PERM[[4, 5, 6, 11, 12, 13, 1, 2, 3, 14, 15, 16]] = [1, 2, 3, 14, 15, 16, 4, 5, 6, 11, 12, 13]


class _Stub(nn.Module):
    """A seq2seq 'lifter' with a known, mirror-asymmetric output: joint j -> (x_j + j, y_j, 10 j), or zeros."""

    is_seq2frame = False

    def __init__(self, frames: int, zeros: bool = False) -> None:
        super().__init__()
        self.cfg = types.SimpleNamespace(num_frames=frames, in_channels=2)
        self.zeros = zeros
        self.w = nn.Parameter(torch.zeros(1))

    def forward_frames(self, x: torch.Tensor, keep_index: object = None) -> tuple[torch.Tensor, None]:
        if self.zeros:
            return torch.zeros(*x.shape[:-1], 3), None
        j = torch.arange(17.0).expand_as(x[..., 0])
        return torch.stack((x[..., 0] + j, x[..., 1], 10 * j), dim=-1), None


def test_predict_windows_flip_merge_values() -> None:
    """Plain output P_j = (x_j + j, y_j, 10j); on the mirrored input Q_j = (-x_p(j) + j, y_p(j), 10j); flipped
    back Q'_j = (x_j - p(j), y_j, 10 p(j)); merged (x_j + (j - p(j))/2, y_j, 5 (j + p(j))), joint 0 zeroed."""
    x = torch.tensor(np.random.default_rng(0).normal(size=(2, 3, 17, 2)), dtype=torch.float32)
    j = np.arange(17)
    z = np.broadcast_to(5.0 * (j + _PERM), x.shape[:-1])
    want = np.stack([x[..., 0].numpy() + (j - _PERM) / 2, x[..., 1].numpy(), z], -1)
    want[..., 0, :] = 0.0
    got = lifting.predict_windows(_Stub(3), x, flip_test=True).numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    plain = lifting.predict_windows(_Stub(3), x, flip_test=False).numpy()
    np.testing.assert_allclose(plain[..., 1:, 0], x[..., 1:, 0].numpy() + j[1:], atol=1e-6)
    assert np.all(plain[..., 0, :] == 0)


def _clips_with_known_error(length: int, action: str) -> list[H36MClip]:
    """One clip whose frame t, predicted as all zeros, has MPJPE (t + 1) * 16/17 mm (16 joints 1 mm x (t+1))."""
    k3 = np.zeros((length, 17, 3))
    k3[:, 0] = [0.1, 0.2, 5.0]
    k3[:, 1:] = k3[:, :1] + np.array([0.001, 0.0, 0.0]) * (np.arange(length) + 1)[:, None, None]
    k2 = np.full((length, 17, 2), 500.0)
    return [H36MClip(subject="S9", action=action, camera=0, keypoints_2d=k2, keypoints_3d=k3, width=1000, height=1000)]


def test_evaluate_lifting_takes_the_protocol(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """10 frames, windows of 4. HoT: windows [0,0,1,2] [3,4,5,6] [7,8,9,9] (centred, edge-padded) with means
    1.75, 5.5, 9.25 (x 16/17 mm), action mean 5.5 x 16/17, overall over 15 classes. MotionBERT: clips [0..3],
    [4..7], frames 8, 9 dropped: per-frame mean 4.5 x 16/17."""
    monkeypatch.setattr(lifting, "load_clips", lambda cfg, split: _clips_with_known_error(10, "Walking 1"))
    model, cfg, cpu = _Stub(4, zeros=True), DataCfg(), torch.device("cpu")
    unit = 16 / 17
    hot = lifting.evaluate_lifting(model, cfg, cpu, 2)  # the trainer's call: no protocol -> hot for a stub model
    assert hot["MPJPE/Walking"] == pytest.approx(5.5 * unit) and hot["MPJPE"] == pytest.approx(5.5 * unit / 15)
    # HoT's 0 for the 14 absent classes is said, with the mean over the one present (5.5 x 16/17 = 5.18 mm)
    err = capsys.readouterr().err
    assert re.search(r"^posetokens: warning: 14 of the 15 action classes have no window \(Directions, Discussion, "
                     r".*WalkTogether\): they count as 0 in MPJPE and P-MPJPE, as in HoT's print_error_action; over "
                     r"the 1 present they are 5\.18 and \d+\.\d\d mm$", err, re.MULTILINE), err
    mb = lifting.evaluate_lifting(model, cfg, cpu, 3, protocol=get_protocol("motionbert"))
    assert "warning" not in capsys.readouterr().err  # MotionBERT averages the actions present
    assert mb["MPJPE/Walking"] == pytest.approx(4.5 * unit) and mb["MPJPE"] == pytest.approx(4.5 * unit)
    assert lifting.evaluate_lifting(model, cfg, cpu, 1, protocol="motionbert") == pytest.approx(mb)
    lift, flip = lifting.lifting_protocol(get_protocol("motionbert").replace({"test": {"flip_test": False}}), cfg)
    assert lift.h36m == "motionbert" and not flip
    with pytest.raises(ValueError, match="no lifting rule"):
        lifting.evaluate_lifting(model, cfg, cpu, 2, protocol="tokenpose")


def test_training_windows_counted_by_hand(tmp_path: Path) -> None:
    """Training windows of clips of L frames at 9 frames (pipeline.md section 6): HoT's seq2seq windows are
    ceil(L / 9) per clip, each also flipped, or unflipped only with ``data.flip_augment: false``; MotionBERT's clips
    start every ``train_stride`` = 81 frames, the remainder dropped: floor((L - 9) / 81) + 1 (at the window length
    they started every 9 frames)."""
    import math

    from posetokens.engine.trainer import build_model

    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1",), seed=0, frames=40, sequences_per_action=1)
    hot = "{num_frames: 9, dim: 16, depth: 2, heads: 2, mlp_hidden: 32, prune: {keep: 3, layer: 1}}"
    mb = "{num_frames: 9, dim: 16, depth: 2, heads: 2, dim_rep: 16}"
    for name, overrides, per_clip, extra in (
            ("hot_mixste_h36m_243", hot, lambda n: 2 * math.ceil(n / 9), []),
            ("hot_mixste_h36m_243", hot, lambda n: math.ceil(n / 9), ["data.flip_augment=false"]),
            ("motionbert_h36m_243", mb, lambda n: (n - 9) // 81 + 1, [])):
        cfg = load_config(REPO / "configs" / f"{name}.yaml",
                          [f"model.overrides={overrides}", "data.train_subjects=[S1]", *_paths(data), *extra])
        model = build_model(cfg, initial_weights=False)
        clips = lifting.load_clips(cfg.data, "train")
        assert clips and min(c.length for c in clips) >= 9
        want = sum(per_clip(c.length) for c in clips)
        assert len(lifting.build_lifting_set(cfg.data, "train", model)) == want, (name, extra)
