"""Lifting through the shared trainer: a fast mechanics test, and the slow synthetic-motion run."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetokens.data.synthetic_motion import generate_dataset
from posetokens.engine.config import load_config
from posetokens.engine.lifting import mean_pose_baseline
from posetokens.engine.trainer import test as run_test
from posetokens.engine.trainer import train

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
    again = run_test(load_config(REPO / "configs" / f"{name}.yaml", common), str(tmp_path / "run" / "final.pth"))
    assert again["MPJPE"] == pytest.approx(metrics["MPJPE"], rel=1e-6)  # evaluation is deterministic


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
