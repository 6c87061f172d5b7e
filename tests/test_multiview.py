"""Multi-view PPT: official parity, one view = PPT, triangulation on the real H36M cameras, JDR, FLOPs,
the multi-view H36M dataset and bad-input errors."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import pickle
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import posetokens
from posetokens.cli import main as cli
from posetokens.data.h36m import H36M_CAMERA_IDS, load_mmpose_cameras
from posetokens.evaluation.multiview import JDR_THRESHOLD_PX, joint_detection_rate, triangulated_mpjpe
from posetokens.geometry import (
    camera_from_h36m,
    check_intrinsics,
    intrinsic_matrix,
    project,
    projection_matrix,
    triangulate_dlt,
    triangulate_ransac,
)
from posetokens.models.tokenpose import TokenPose
from posetokens.models.tokenpose_mv import MultiViewPPT
from posetokens.parity.multiview import _is_multiview, mv_cfg_from_fixture
from posetokens.runtime import UserKeyError

from conftest import DATA, PARITY, REPO

# the 17 H36M joints in the toolbox order (the official h36m dataset's joint list)
H36M_NAMES = ("root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine", "thorax",
              "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
              "right_wrist")

MV_FIXTURES = [c.parent for c in sorted(PARITY.glob("*/config.json")) if _is_multiview(json.loads(c.read_text()))]
H36M = DATA / "h36m"


def _need_fixture() -> Path:
    if not MV_FIXTURES:
        pytest.fail("no multi-view PPT fixture")
    return MV_FIXTURES[0]


# ----------------------------------------------------------------------------------- official parity
@pytest.mark.parametrize("fixture", MV_FIXTURES, ids=lambda p: p.name)
def test_parity_cli_on_official_fixture(fixture: Path, capsys: pytest.CaptureFixture) -> None:
    rc = cli(["parity", str(fixture), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["family"] == "tokenpose_mv"
    names = set(report["results"])
    assert {"fused_heatmaps", "independent_heatmaps", "ray_directions_from_cameras"} <= names
    assert {f"fused_keep_patch_idx_layer{i}" for i in (3, 6, 9)} <= names


def test_parity_does_not_depend_on_folder_name(tmp_path: Path) -> None:
    dst = tmp_path / "another_multiview_fixture"
    shutil.copytree(_need_fixture(), dst)
    assert cli(["parity", str(dst)]) == 0


def test_parity_fails_on_wrong_outputs(tmp_path: Path) -> None:
    dst = tmp_path / "broken"
    shutil.copytree(_need_fixture(), dst)
    out = torch.load(dst / "outputs.pt", weights_only=True)
    out["fused_heatmaps"] = out["fused_heatmaps"] + 1e-3
    torch.save(out, dst / "outputs.pt")
    assert cli(["parity", str(dst)]) == 1


# ------------------------------------------------------------------------------ one view reduces to PPT
def _reduced_pair(num_views: int) -> tuple[TokenPose, MultiViewPPT]:
    """A reduced PPT-S (fixture sizes) and a multi-view PPT with the same weights."""
    import dataclasses

    fx = _need_fixture()
    cfg = dataclasses.replace(mv_cfg_from_fixture(json.loads((fx / "config.json").read_text())), num_views=num_views)
    base = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(posetokens.models.tokenpose.TokenPoseCfg)}
    torch.manual_seed(0)
    ppt = TokenPose(posetokens.models.tokenpose.TokenPoseCfg(**base)).eval()
    mv = MultiViewPPT(cfg).eval()
    missing, unexpected = mv.load_state_dict(ppt.state_dict(), strict=False)
    assert sorted(missing) == ["pos_3d.bias", "pos_3d.weight"] and not unexpected
    return ppt, mv


def test_one_view_without_rays_is_ppt() -> None:
    ppt, mv = _reduced_pair(1)
    x = torch.randn(2, 3, *ppt.cfg.image_size)
    with torch.no_grad():
        ref = ppt.forward_tokens(x)
        out = mv.forward_tokens(x[:, None])
    assert torch.allclose(out.heatmaps[:, 0], ref.heatmaps, atol=1e-6, rtol=0)
    assert len(out.pruned) == len(ref.pruned) > 0
    for a, b in zip(out.pruned, ref.pruned):
        assert torch.equal(a.patch_idx[:, 0], b.patch_idx)


def test_one_view_with_zero_ray_encoding_is_ppt_and_rays_matter() -> None:
    ppt, mv = _reduced_pair(1)
    x = torch.randn(2, 1, 3, *ppt.cfg.image_size)
    rays = torch.randn(2, 1, mv.num_patches, 3)
    with torch.no_grad():
        with_rays = mv(x, rays)
        torch.nn.init.zeros_(mv.pos_3d.weight)
        torch.nn.init.zeros_(mv.pos_3d.bias)
        assert torch.allclose(mv(x, rays)[:, 0], ppt(x[:, 0]), atol=1e-6, rtol=0)
    assert not torch.allclose(with_rays[:, 0], ppt(x[:, 0]), atol=1e-4)


def test_rays_and_views_of_another_type_are_named() -> None:
    """patch_rays gives float64 numpy: as a float64 tensor it was a dtype error inside a Linear, as numpy a
    TypeError from flatten(); numpy or uint8 views failed inside the stem."""
    _, mv = _reduced_pair(1)
    x = torch.randn(2, 1, 3, *mv.cfg.image_size)
    rays = np.random.default_rng(0).normal(size=(2, 1, mv.num_patches, 3))
    with pytest.raises(ValueError, match=r"^rays must be a torch tensor of the images' dtype \(torch\.float32\), got a "
                                         r"torch\.float64 tensor: torch\.as_tensor\(rays, dtype=torch\.float32\)$"):
        mv(x, torch.from_numpy(rays))
    with pytest.raises(ValueError, match=r"^rays must be a torch tensor of the images' dtype .* got a ndarray"):
        mv(x, rays)
    with pytest.raises(ValueError, match=r"expects views as a floating-point torch tensor .* got a torch\.uint8 "
                                         r"tensor$"):
        mv(x.to(torch.uint8))
    with pytest.raises(ValueError, match=r"^stack_views: expected a torch tensor \(B, V, 3, H, W\) or a list of "
                                         r"\(B, 3, H, W\) tensors, got a ndarray$"):
        mv(x.numpy())
    assert mv(x, torch.as_tensor(rays, dtype=torch.float32)).shape[:2] == (2, 1)


def test_views_are_fused_and_order_equivariant() -> None:
    from posetokens.convert import load_weights

    _, mv = _reduced_pair(3)
    load_weights(mv, _need_fixture() / "checkpoint.pth", "tokenpose_mv")  # official random weights, any V
    x = torch.randn(1, 3, 3, *mv.cfg.image_size)
    rays = torch.randn(1, 3, mv.num_patches, 3)
    perm = [2, 0, 1]
    with torch.no_grad():
        out = mv(x, rays)
        out_perm = mv(x[:, perm], rays[:, perm])
        alone = mv.forward_independent(x).heatmaps
    assert torch.allclose(out[:, perm], out_perm, atol=1e-5)  # no view embedding: permuting views permutes outputs
    assert ((out - alone).flatten(2).abs().amax(-1) > 1e-2).all()  # fusion changes every view


# ------------------------------------------------------------------ triangulation on the real H36M cameras
def _real_scene(frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """World joints (17, 3) in metres of one sample frame and the 4 cameras of its subject as P (4, 3, 4)."""
    if not H36M.is_dir():
        pytest.fail("shared H36M sample missing")
    ann = json.loads((H36M / "h36m_coco.json").read_text())
    subject = ann["images"][frame]["file_name"].split("_")[0]
    world = np.asarray(ann["annotations"][frame]["keypoints_3d"], np.float64).reshape(17, 4)[:, :3]
    K, R, C = (np.stack(a) for a in zip(*(camera_from_h36m(c) for c in load_mmpose_cameras(H36M / "cameras.pkl")[subject])))
    return world, projection_matrix(K, R, C)


def test_projection_reproduces_the_sample_2d_joints() -> None:
    world, P = _real_scene(0)
    ann = json.loads((H36M / "h36m_coco.json").read_text())
    cam_index = H36M_CAMERA_IDS.index(ann["images"][0]["file_name"].split(".")[1].split("_")[0])
    gt2d = np.asarray(ann["annotations"][0]["keypoints"], np.float64).reshape(17, 3)[:, :2]
    # shared/data/README.md: distortion-free projection reproduces `part` to within 1.2-2.4 px
    assert np.abs(project(world, P)[cam_index] - gt2d).max() < 2.5


@pytest.mark.parametrize("frame", [0, 1, 2, 3])
def test_dlt_recovers_projected_joints_under_1mm(frame: int) -> None:
    world, P = _real_scene(frame)
    recovered = triangulate_dlt(project(world, P), P)
    assert np.linalg.norm(recovered - world, axis=-1).max() * 1000 < 1.0
    error, _ = triangulated_mpjpe(project(world, P), P, world, scale=1000.0)
    assert error < 1.0


def test_an_invisible_joint_counts_as_zero_error_in_the_mean_over_all_joints() -> None:
    """The official estimate_tri multiplies both poses by the visibility, then takes the mean over the 17 joints
    (pipeline.md §5). By hand: the 2D of joint 0 is moved so that its triangulation is off; with joint 0 invisible
    its error counts as 0 and the mean is still over all joints: the error of the rest times (J - 1) / J."""
    world, P = _real_scene(0)
    uv = project(world, P) + np.random.default_rng(0).normal(0.0, 2.0, (len(P), len(world), 2))  # a few mm off
    uv[:, 0] += 40.0  # every view's joint 0 moved 40 px more
    _, points = triangulated_mpjpe(uv, P, world, scale=1000.0)
    per_joint = np.linalg.norm(points - world, axis=-1) * 1000.0
    assert per_joint[0] > 50.0 > per_joint[1:].max() and per_joint[1:].min() > 0.1
    visible = np.ones(len(world), dtype=bool)
    visible[0] = False
    error, _ = triangulated_mpjpe(uv, P, world, scale=1000.0, visible=visible)
    assert error == pytest.approx(per_joint[1:].sum() / len(world), rel=1e-12)
    with pytest.raises(ValueError, match=r"visible must be \(\.\.\., J\)"):
        triangulated_mpjpe(uv, P, world, visible=visible[:5])


def test_dlt_batched_over_samples_matches_one_by_one() -> None:
    scenes = [_real_scene(i) for i in range(4)]
    pts = np.stack([project(w, P) for w, P in scenes])
    Ps = np.stack([P for _, P in scenes])
    batched = triangulate_dlt(pts, Ps)
    for i, (w, _) in enumerate(scenes):
        assert np.allclose(batched[i], w, atol=1e-6)


def test_dlt_with_2px_noise_is_bounded() -> None:
    world, P = _real_scene(0)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(20):
        noisy = project(world, P) + rng.normal(0.0, 2.0, (4, 17, 2))
        errors.append(np.linalg.norm(triangulate_dlt(noisy, P) - world, axis=-1).mean() * 1000)
    mean_mm = float(np.mean(errors))
    print(f"DLT, 4 real H36M cameras, 2 px Gaussian noise per coordinate: MPJPE {mean_mm:.2f} mm")
    # Bound from the cameras alone: a 2-px-per-axis error moves one view's ray by 2*sqrt(2)*Z/f at depth Z;
    # 4 views must do no worse than the farthest single view.
    depth = np.linalg.norm(world[None] - np.array([-np.linalg.solve(p[:, :3], p[:, 3]) for p in P])[:, None], axis=-1)
    focal = min(c.f.min() for c in load_mmpose_cameras(H36M / "cameras.pkl")["S1"])
    assert mean_mm < 2 * np.sqrt(2) * depth.max() / focal * 1000


def test_dlt_matches_pymvg_on_noisy_points() -> None:
    """The official evaluation triangulates with pymvg (spec pipeline.md section 5): rows stacked unscaled."""
    world, P = _real_scene(0)
    noisy = project(world, P) + np.random.default_rng(0).normal(0.0, 2.0, (4, 17, 2))
    ref = []
    for j in range(17):  # pymvg MultiCameraSystem.find3d: rows x P3 - P1, y P3 - P2 of every view; last right
        A = np.concatenate([[noisy[v, j, 0] * P[v, 2] - P[v, 0], noisy[v, j, 1] * P[v, 2] - P[v, 1]] for v in range(4)])
        vt = np.linalg.svd(A)[2]  # singular vector, dehomogenised
        ref.append(vt[-1, :3] / vt[-1, 3])
    assert np.abs(triangulate_dlt(noisy, P) - np.array(ref)).max() * 1000 < 1e-6  # mm
    scaled = triangulate_dlt(noisy, P, unit_rows=True)  # the better-conditioned variant differs on noisy points
    assert np.abs(scaled - np.array(ref)).max() * 1000 > 0.1


def test_weighted_dlt_and_ransac_reject_a_wrong_view() -> None:
    world, P = _real_scene(1)
    pts = project(world, P)
    pts[2, 5] += 150.0  # view 2 misplaces joint 5 by 212 px
    plain = np.linalg.norm(triangulate_dlt(pts, P) - world, axis=-1)[5] * 1000
    assert plain > 100.0
    weights = np.ones((4, 17))
    weights[2, 5] = 0.0
    assert np.linalg.norm(triangulate_dlt(pts, P, weights) - world, axis=-1).max() * 1000 < 1.0
    robust, inliers = triangulate_ransac(pts, P, threshold=JDR_THRESHOLD_PX)
    assert np.linalg.norm(robust - world, axis=-1).max() * 1000 < 1.0
    assert not inliers[2, 5] and inliers.sum() == 4 * 17 - 1



def test_triangulation_rules_one_view_ties_and_dropped_views() -> None:
    """Hand-built cases on the real cameras: a joint with one view of positive weight is refused (one ray fixes no
    point); a tie in inliers goes to the smaller summed reprojection error; a view of weight 0 does not vote."""
    world, P = _real_scene(1)
    pts = project(world, P)
    w = np.ones((4, 17))
    w[1:, 3] = 0.0
    with pytest.raises(ValueError, match=r"1 joint\(s\) have fewer than 2 views with weight > 0"):
        triangulate_dlt(pts, P, w)
    # views 0, 1 see joint 5 at X exactly; views 2, 3 see it at Y = X + 0.5 m, 0.3 px off: two inliers each
    other = world + np.array([0.5, 0.0, 0.0])
    tie = pts.copy()
    tie[2:, 5] = project(other, P)[2:, 5] + 0.3
    robust, inliers = triangulate_ransac(tie, P, threshold=JDR_THRESHOLD_PX)
    assert np.linalg.norm(robust[5] - world[5]) * 1000 < 1e-3 and inliers[:, 5].tolist() == [True, True, False, False]
    # 7 views (cameras 0-2 again as views 4-6): X in views 0-2, Y in views 3-6, of which views 5 and 6 dropped
    P7 = np.concatenate([P, P[:3]])
    seen = np.concatenate([pts, project(other, P7[4:])])
    seen[3, 5] = project(other, P)[3, 5]
    w7 = np.ones((7, 17))
    w7[5:, 5] = 0.0
    robust, inliers = triangulate_ransac(seen, P7, w7, threshold=JDR_THRESHOLD_PX)
    assert np.linalg.norm(robust[5] - world[5]) * 1000 < 1e-3, "3 weighted views of X outvote 2 weighted of Y"
    assert inliers[:, 5].tolist() == [True, True, True, False, False, False, False]


# ------------------------------------------------------------------------------------------------ JDR
def test_jdr_hand_computed() -> None:
    gt = np.zeros((2, 2, 3, 2))  # 2 samples x 2 views x 3 joints
    pred = gt.copy()
    pred[0, 0, 0] = (12.8, 0.0)  # exactly on the threshold: detected (<=)
    pred[0, 1, 0] = (9.0, 9.1)  # 12.80 px... sqrt(81 + 82.81) = 12.799: detected
    pred[1, 0, 0] = (10.0, 8.0)  # 12.81 px: missed
    pred[1, 1, 1] = (0.0, 13.0)  # missed
    pred[0, 0, 2] = (3.0, 4.0)  # 5 px: detected
    per_joint, mean = joint_detection_rate(pred, gt)
    # joint 0: 3 of 4 detected; joint 1: 3 of 4; joint 2: 4 of 4
    assert np.allclose(per_joint, [0.75, 0.75, 1.0])
    assert mean == pytest.approx((0.75 + 0.75 + 1.0) / 3)
    mask = np.ones((2, 2, 3), bool)
    mask[1, 1, 1] = False  # the miss of joint 1 is unlabelled: 3 of 3
    assert np.allclose(joint_detection_rate(pred, gt, mask=mask)[0], [0.75, 1.0, 1.0])
    assert JDR_THRESHOLD_PX == pytest.approx(12.8)


# ------------------------------------------------------------------------------------------ FLOPs
@functools.cache
def _flops(name: str) -> dict:
    """``posetokens flops NAME --json`` (full-size 4-view models: run once per module)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli(["flops", name, "--json"]) == 0
    return json.loads(out.getvalue())


def test_flops_cli_reports_per_view_and_paper_figures() -> None:
    fig = _flops("ppt_multiview_h36m_256x256")
    assert fig["num_views"] == 4
    # PPT paper, multi-view H36M table: 9.7 G for a sample of 4 views (thop-style MACs), printed to 0.1 G
    assert abs(fig["paper_gflops"] - 9.7) <= 0.05, fig["paper_gflops"]
    assert fig["paper_gflops_per_view"] == pytest.approx(fig["paper_gflops"] / 4, abs=1e-4)  # (--json: 4 decimals)
    # spec s.1: official multi-view PPT-S, 4 views, true GMACs 10.45 fused
    assert abs(fig["gmacs"] / 10.45 - 1) < 0.005
    assert fig["gmacs_per_view"] == pytest.approx(fig["gmacs"] / 4, abs=1e-3)
    # spec s.1: 7.811M total including the 49,152-value sine PE buffer
    assert abs(fig["params_m"] - (7.811 - 0.049152)) < 0.002


# thop-style MACs per token of one PPT-S layer (dim 192, MLP 576), spec §2/§5: LayerNorm 4 x 192 (thop counts
# 2 x elements, doubled for the affine), to_qkv 192 x 576, proj 192 x 192 | LayerNorm, MLP 192 x 576 + 576 x 192
_ATTN_PART = 4 * 192 + 192 * 576 + 192 * 192
_MLP_PART = 4 * 192 + 192 * 576 + 576 * 192


def test_flops_tokenpose_multiview_baseline() -> None:
    """The multi-view TokenPose baseline counts 11.29 G where the PPT paper prints 11.5 G: a documented gap.

    What pruning removes is counted by hand (spec §5): 17 keypoint + 256 visual tokens per view; PPT prunes in
    layers 3, 6, 9 (attention on all tokens, then the MLP on the kept ones) to 180, 126, 89 visual tokens; the
    last 2 layers fuse the 4 views' kept tokens. The convention that gives PPT's own row at its printed digit
    (9.73 -> 9.7, test above) therefore puts the unpruned baseline at 9.7 +- 0.05 + 1.558 = 11.21..11.31 G, never
    11.5: the paper's baseline figure was not counted like its PPT row (or is not this layout), and the spec has
    no official count of it. We assert our count and keep the gap in view instead of a 3% tolerance."""
    tp, ppt = _flops("tokenpose_multiview_h36m_256x256"), _flops("ppt_multiview_h36m_256x256")
    attn_tokens = [273] * 4 + [197] * 3 + [143] * 3 + [106] * 2  # per view, PPT, layers 0-11
    mlp_tokens = [273] * 3 + [197] * 3 + [143] * 3 + [106] * 3
    removed = 4 * sum((273 - a) * _ATTN_PART + (273 - m) * _MLP_PART for a, m in zip(attn_tokens, mlp_tokens))
    assert removed == 1_557_894_144
    assert tp["paper_gflops"] - ppt["paper_gflops"] == pytest.approx(removed / 1e9, abs=1e-4)  # (4-decimal JSON)
    # PPT paper, multi-view H36M table: "TokenPose + cross-view transformers" 11.5 G (4 views, printed to 0.1 G).
    # KNOWN GAP (-1.8%): our count rounds to 11.3, not 11.5 (see the docstring).
    assert round(tp["paper_gflops"], 1) == 11.3 != 11.5
    assert tp["paper_gflops"] == pytest.approx(11.2923, abs=1e-4)  # regression guard: our own count (README FLOPs)


# ------------------------------------------------------------------------------------ dataset
def _toolbox_pickle(tmp_path: Path, with_camera: bool = True, images: list[str] | None = None) -> Path:
    """A one-instant H36M-Toolbox pickle from the real S1 frame and the real S1 cameras (mm)."""
    world, P = _real_scene(0)
    cams = load_mmpose_cameras(H36M / "cameras.pkl")["S1"]
    pts = project(world, P)
    image = "S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
    db = []
    for v, cam in enumerate(cams):
        lo, hi = pts[v].min(0), pts[v].max(0)
        in_camera = (world - cam.T.reshape(1, 3)) @ cam.R * 1000.0  # the toolbox's frame: R world -> camera = cam.R.T
        rec = dict(subject=1, action=2, subaction=1, image_id=1, camera_id=v, image=(images or [image] * 4)[v],
                   joints_2d=pts[v], joints_vis=np.ones((17, 3)), joints_3d_camera=in_camera,
                   joints_3d=in_camera * 0.98,  # the toolbox's "universal" skeleton, not read
                   center=(lo + hi) / 2, scale=np.full(2, (hi - lo).max() * 1.25 / 200))
        if with_camera:
            rec["camera"] = dict(R=cam.R.T, T=cam.T.reshape(3, 1) * 1000.0, fx=cam.f[0], fy=cam.f[1], cx=cam.c[0], cy=cam.c[1],
                                 k=cam.k, p=cam.p)
        db.append(rec)
    path = tmp_path / "h36m_validation.pkl"
    path.write_bytes(pickle.dumps(db))
    return path


def test_dataset_sample_geometry_and_targets(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    ds = MultiViewH36M(_toolbox_pickle(tmp_path), H36M)
    s = ds[0]
    assert len(ds) == 1 and s["images"].shape == (4, 3, 256, 256) and s["heatmaps"].shape == (4, 17, 64, 64)
    assert s["rays"].shape == (4, 256, 3) and torch.allclose(s["rays"].norm(dim=-1), torch.ones(4, 256))
    # P from the pickle's cameras re-projects the world joints (mm) onto the stored 2D joints
    assert np.abs(project(s["joints_3d"].numpy(), s["P"].numpy()) - s["joints_2d"].numpy()).max() < 1e-6
    # the ray through the patch centre nearest the root points at the root
    root_dir = s["joints_3d"][0].numpy() - np.linalg.solve(s["P"][0, :, :3].numpy(), -s["P"][0, :, 3].numpy())
    root_dir /= np.linalg.norm(root_dir)
    assert float((s["rays"][0].double().numpy() @ root_dir).max()) > np.cos(np.radians(2.0))
    # the heatmap peaks are the joints mapped into the 64x64 map, from the crop affine
    peaks = s["heatmaps"].flatten(2).argmax(-1)
    crop = (s["joints_2d"].numpy() - s["crop_to_image"][..., 2][:, None].numpy()) @ np.linalg.inv(
        s["crop_to_image"][..., :2].numpy()).transpose(0, 2, 1)
    expect = np.floor(crop / 4 + 0.5).astype(int)
    assert (peaks.numpy() == expect[..., 1] * 64 + expect[..., 0]).all()


def test_dataset_cameras_from_cameras_pkl_match_the_record_cameras(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    a = MultiViewH36M(_toolbox_pickle(tmp_path), H36M)[0]
    (tmp_path / "b").mkdir()
    b = MultiViewH36M(_toolbox_pickle(tmp_path / "b", with_camera=False), H36M, cameras_pkl=H36M / "cameras.pkl")[0]
    assert torch.allclose(a["P"], b["P"]) and torch.allclose(a["rays"], b["rays"])


# ------------------------------------------------------------------------------------------ bad input
def test_missing_camera_is_named(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    without = _toolbox_pickle(tmp_path, with_camera=False)
    with pytest.raises(UserKeyError, match=r"record 0 \(and 3 more\) has no 'camera' .*data\.cameras.*missing camera"):
        MultiViewH36M(without, H36M)  # said when the set is built, before any training
    with pytest.raises(FileNotFoundError,
                       match=r"4 record\(s\) have no 'camera' .*gone\.pkl \(cameras_pkl; data\.cameras\)"):
        MultiViewH36M(without, H36M, cameras_pkl=tmp_path / "gone.pkl")
    assert len(MultiViewH36M(without, H36M, cameras_pkl=H36M / "cameras.pkl")) == 1
    # records that carry their camera need no cameras file: a missing one named in the recipe is not read
    assert len(MultiViewH36M(_toolbox_pickle(tmp_path), H36M, cameras_pkl=tmp_path / "gone.pkl")) == 1
    db = pickle.loads((tmp_path / "h36m_validation.pkl").read_bytes())
    (tmp_path / "three.pkl").write_bytes(pickle.dumps(db[:3]))  # camera 3 absent from the only instant
    with pytest.raises(ValueError, match=r"no instant is seen by all cameras \[0, 1, 2, 3\]; the file holds camera "
                                         r"ids \[0, 1, 2\]"):
        MultiViewH36M(tmp_path / "three.pkl", H36M)
    assert MultiViewH36M(tmp_path / "three.pkl", H36M, cameras=(2, 0, 1)).num_views == 3  # a choice of cameras


def test_a_pickle_of_other_joints_units_or_axes_is_refused_when_read(tmp_path: Path) -> None:
    """Each file error is one line naming the file, the record and the field, before any training: a joint count
    other than the model's (the official 20-slot order), (x, y, v) rows, the camera centre in metres where the
    joints are in mm (the views' poses, taken to world with the real S1 cameras, then lie metres apart),
    joints_3d_camera in metres, x/y swapped 2D joints, an R that is no rotation, two records of one camera and
    instant. A record without 3D (None) and a camera centre given as (3,) are accepted."""
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    path = _toolbox_pickle(tmp_path)
    good = pickle.loads(path.read_bytes())
    world, _ = _real_scene(0)  # the sample person's size in metres, between its two farthest joints
    span_m = float(np.linalg.norm(world[:, None] - world[None], axis=-1).max())

    def written(change: object) -> Path:
        db = pickle.loads(pickle.dumps(good))
        change(db)
        path.write_bytes(pickle.dumps(db))
        return path

    def twenty(db: list) -> None:
        for r in db:
            r["joints_2d"], r["joints_vis"], r["joints_3d_camera"] = (np.concatenate([r[k], r[k][:3]]) for k in
                                                                       ("joints_2d", "joints_vis", "joints_3d_camera"))

    def metres_t(db: list) -> None:
        for r in db:
            r["camera"]["T"] = r["camera"]["T"] / 1000.0

    def metres_joints(db: list) -> None:
        for r in db:
            r["joints_3d_camera"] = r["joints_3d_camera"] / 1000.0

    def swapped(db: list) -> None:
        for r in db:
            r["joints_2d"] = r["joints_2d"][:, ::-1]

    def sheared(db: list) -> None:
        db[2]["camera"]["R"] = db[2]["camera"]["R"] @ np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def twice(db: list) -> None:
        db.append(dict(db[1]))

    def with_visibility(db: list) -> None:
        db[0]["joints_2d"] = np.concatenate([db[0]["joints_2d"], np.ones((17, 1))], axis=1)

    record = r"h36m_validation\.pkl: record 0 \(S1/S1_Directions_1\.54138969/S1_Directions_1\.54138969_000001\.jpg\)"
    for change, said in (
            (twenty, record + r": 'joints_2d' has shape \(20, 2\); expected \(17, 2\): .*20-slot union order"),
            (metres_t, r"record 1 \(.*\): its joints taken to world coordinates with its camera lie \d+ mm "
                       r"\(median\) from record 0's; expected one pose: camera R world -> camera and T the camera "
                       r"centre, both in mm"),
            (metres_joints, record + rf": 'joints_3d_camera' spans {span_m:.3g} between its farthest joints; "
                            r"expected a person in mm \(0\.3-3 m\)$"),
            (swapped, record + r": 'joints_3d_camera' projected .* lands \d+ px .*joints_2d as \(x, y\) pixels"),
            (sheared, r"record 2 .*: the camera's R is not a rotation"),
            (twice, r"records 1 and 4 are both camera 1 of subject 1, action 2, subaction 1, image_id 1"),
            (with_visibility, record + r": 'joints_2d' has shape \(17, 3\); expected \(17, 2\): \(x, y\) per joint$")):
        with pytest.raises(ValueError, match=said):
            MultiViewH36M(written(change), H36M)
    assert len(MultiViewH36M(written(lambda db: None), H36M)) == 1

    def loose(db: list) -> None:
        db[3]["joints_3d_camera"] = None
        for r in db:
            r["camera"]["T"] = r["camera"]["T"].reshape(3)

    assert MultiViewH36M(written(loose), H36M)[0]["joints_3d"].shape == (17, 3)  # from the first view's 3D
    cam = good[0]["camera"]  # projection_matrix takes the toolbox's (3, 1) camera centre as it is stored
    K = intrinsic_matrix([cam["fx"], cam["fy"]], [cam["cx"], cam["cy"]])
    assert np.array_equal(projection_matrix(K, cam["R"], cam["T"]), projection_matrix(K, cam["R"], cam["T"].ravel()))
    with pytest.raises(ValueError, match=r"the camera centre C must be \(\.\.\., 3\) or \(3, 1\), got shape \(4,\)"):
        projection_matrix(K, cam["R"], np.zeros(4))
    with pytest.raises(ValueError,
                       match=r"project: P must be camera matrices \(\.\.\., V, 3, 4\) \(one camera: P\[None\]\)"):
        project(np.zeros((17, 3)), np.zeros((3, 4)))


def test_non_invertible_intrinsics_are_refused(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    with pytest.raises(ValueError, match="not invertible"):
        intrinsic_matrix([0.0, 1145.0], [512.0, 515.0])
    with pytest.raises(ValueError, match="not invertible"):
        check_intrinsics(np.zeros((2, 3, 3)))
    path = _toolbox_pickle(tmp_path)
    db = pickle.loads(path.read_bytes())
    db[1]["camera"]["fy"] = 0.0
    path.write_bytes(pickle.dumps(db))
    with pytest.raises(ValueError, match="camera 1.*not invertible"):
        MultiViewH36M(path, H36M)


def test_views_with_mismatched_image_sizes_are_refused(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M

    s8 = "S8/S8_WalkDog_1.55011271/S8_WalkDog_1.55011271_000026.jpg"  # 1000 rows; S1's frame has 1002
    s1 = "S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg"
    path = _toolbox_pickle(tmp_path, images=[s1, s8, s8, s8])
    with pytest.raises(ValueError, match="different image sizes"):
        MultiViewH36M(path, H36M, max_rows=None)[0]
    assert MultiViewH36M(path, H36M)[0]["images"].shape[0] == 4  # cut to 1000 rows, as the official code
    model = posetokens.create_model("ppt_multiview_h36m_256x256", num_views=2)
    with pytest.raises(ValueError, match="mismatched sizes: view 1 is"):
        model([torch.randn(1, 3, 256, 256), torch.randn(1, 3, 256, 192)])
    with pytest.raises(ValueError, match="num_views=2, got 3 views"):
        model(torch.randn(1, 3, 3, 256, 256))


# ------------------------------------------------------------------------------------------ training
def test_train_step_on_a_dataset_sample(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M
    from posetokens.engine.losses import joints_mse

    batch = torch.utils.data.default_collate([MultiViewH36M(_toolbox_pickle(tmp_path), H36M)[0]])
    model = posetokens.create_model("ppt_multiview_h36m_256x256").train()
    out = model(batch["images"], batch["rays"])
    assert out.shape == batch["heatmaps"].shape
    loss = joints_mse(out.flatten(0, 1), batch["heatmaps"].flatten(0, 1), batch["target_weight"].flatten(0, 1))
    loss.backward()
    assert torch.isfinite(loss) and model.pos_3d.weight.grad is not None and model.pos_3d.weight.grad.abs().sum() > 0


def test_multiview_loss_and_evaluation_on_a_dataset_sample(tmp_path: Path) -> None:
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M
    from posetokens.engine.multiview import evaluate_multiview, multiview_loss

    ds = MultiViewH36M(_toolbox_pickle(tmp_path), H36M)
    batch = torch.utils.data.default_collate([ds[0]])
    model = posetokens.create_model("ppt_multiview_h36m_256x256").train()
    loss = multiview_loss(model, batch, torch.device("cpu"))
    loss.backward()
    assert torch.isfinite(loss) and model.pos_3d.weight.grad.abs().sum() > 0
    evaluate_multiview(model, ds, torch.device("cpu"))
    assert model.training  # evaluation hands the model back in training mode (the trainer relies on it)

    class Oracle(torch.nn.Module):  # returns the ground-truth targets: decoding + JDR + triangulation must agree
        cfg = SimpleNamespace(ray_pe=False)  # what the evaluation reads of a model: no ray input

        def forward(self, images: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
            return batch["heatmaps"]

    metrics = evaluate_multiview(Oracle(), ds, torch.device("cpu"))
    assert metrics["jdr"] == 1.0
    # Rounded targets put the peak within half a heatmap cell of the joint and the quarter shift moves it by
    # a quarter cell: <= 0.75 cell = 3 crop px per axis, i.e. 3 * box / 256 image px. Through the cameras that
    # is at most (that error) * depth / focal in 3D.
    box = max(float(r["scale"][0]) * 200 for r in pickle.loads((tmp_path / "h36m_validation.pkl").read_bytes()))
    px = 3 * box / 256 * np.sqrt(2)
    world, P = _real_scene(0)
    centres = np.array([-np.linalg.solve(p[:, :3], p[:, 3]) for p in P])
    depth = np.linalg.norm(world[None] - centres[:, None], axis=-1).max() * 1000
    focal = min(c.f.min() for c in load_mmpose_cameras(H36M / "cameras.pkl")["S1"])
    print(f"oracle heatmaps: triangulated MPJPE {metrics['mpjpe_mm']:.1f} mm, bound {px * depth / focal:.1f} mm")
    assert metrics["mpjpe_mm"] < px * depth / focal


def test_multiview_loss_weights_visibility_ransac_and_instants(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The multi-view loss is V x JointsMSE with the target weights (a joint of weight 0 adds nothing: the official
    ``JointsMSELoss(use_target_weight)``), by hand from the batch; JDR counts visible joints only (a wrong joint 0
    marked invisible leaves JDR at 1); ``ransac_threshold`` reaches the triangulation (one view moved far off: RANSAC
    drops it, plain DLT does not); the train split takes every ``mv_train_every``-th instant, val every
    ``mv_val_every``-th (spec pipeline.md section 5)."""
    from posetokens.data.datasets import h36m_multiview
    from posetokens.data.datasets.h36m_multiview import MultiViewH36M
    from posetokens.engine.config import DataCfg, load_config, validate_config
    from posetokens.engine.multiview import build_multiview_set, evaluate_multiview, multiview_loss

    ds = MultiViewH36M(_toolbox_pickle(tmp_path), H36M)
    batch = torch.utils.data.default_collate([ds[0]])
    batch["target_weight"] = batch["target_weight"].clone()
    batch["target_weight"][..., 0] = 0.0  # joint 0 of every view weighs nothing

    class Fixed(torch.nn.Module):
        cfg = SimpleNamespace(ray_pe=False)

        def __init__(self, heatmaps: torch.Tensor) -> None:
            super().__init__()
            self.heatmaps = heatmaps

        def forward(self, images: torch.Tensor, rays: torch.Tensor | None = None) -> torch.Tensor:
            return self.heatmaps

    zeros = torch.zeros_like(batch["heatmaps"])
    t = batch["heatmaps"].double().numpy()
    w = batch["target_weight"].double().numpy().reshape(t.shape[:3])
    hand = t.shape[1] * np.mean(0.5 * w * (t ** 2).mean(axis=(-1, -2)))
    assert float(multiview_loss(Fixed(zeros), batch, torch.device("cpu"))) == pytest.approx(hand, rel=1e-5)
    wrong0 = batch["heatmaps"].clone()
    wrong0[:, :, 0] = wrong0[:, :, 0].roll(wrong0.shape[-1] // 2, dims=-1)  # joint 0 half a map away
    hidden = [dict(ds[i], joints_vis=ds[i]["joints_vis"].clone()) for i in range(len(ds))]
    for item in hidden:
        item["joints_vis"][..., 0] = 0

    class Items(list):
        codec = ds.codec

    assert evaluate_multiview(Fixed(wrong0), Items(hidden), torch.device("cpu"))["jdr"] == 1.0
    assert evaluate_multiview(Fixed(wrong0), ds, torch.device("cpu"))["jdr"] < 1.0
    view0_off = batch["heatmaps"].clone()
    view0_off[:, 0] = view0_off[:, 0].roll(view0_off.shape[-1] // 2, dims=-1)  # every joint of view 0 far off
    plain = evaluate_multiview(Fixed(view0_off), ds, torch.device("cpu"))["mpjpe_mm"]
    robust = evaluate_multiview(Fixed(view0_off), ds, torch.device("cpu"), ransac_threshold=JDR_THRESHOLD_PX)
    oracle = evaluate_multiview(Fixed(batch["heatmaps"]), ds, torch.device("cpu"))["mpjpe_mm"]
    print(f"oracle {oracle:.2f} mm, one view off: RANSAC {robust['mpjpe_mm']:.2f} mm, DLT {plain:.2f} mm")
    assert robust["mpjpe_mm"] < 2 * oracle + 1.0 < plain
    # MPJPE: a joint the instant's last view marks invisible counts as 0 error (the official estimate_tri multiplies
    # both poses by the last record's joints_vis); another view's mark does not change it
    far = evaluate_multiview(Fixed(wrong0), ds, torch.device("cpu"))["mpjpe_mm"]
    marked = {}
    for view in (0, -1):
        items = [dict(ds[i], joints_vis=ds[i]["joints_vis"].clone()) for i in range(len(ds))]
        for item in items:
            item["joints_vis"][view, 0] = 0
        marked[view] = evaluate_multiview(Fixed(wrong0), Items(items), torch.device("cpu"))["mpjpe_mm"]
    assert marked[-1] <= oracle < far == marked[0]
    # the per-action table groups instants by their action: a second instant (action 14, Walking) whose ground truth
    # is moved 50 mm has its own row; Directions keeps the one instant's value; the mean is over all instants
    moved = dict(ds[0], action=torch.tensor(14), joints_3d=ds[0]["joints_3d"] + torch.tensor([50.0, 0.0, 0.0]))
    two = evaluate_multiview(Fixed(batch["heatmaps"]), Items([ds[0], moved]), torch.device("cpu"), batch_size=1)
    assert two["mpjpe_mm/Directions"] == pytest.approx(oracle, rel=1e-12)
    assert two["mpjpe_mm/Walking"] > 40.0 > oracle and two["instants"] == 2.0
    assert two["mpjpe_mm"] == pytest.approx((two["mpjpe_mm/Directions"] + two["mpjpe_mm/Walking"]) / 2, rel=1e-12)
    every: dict[str, int] = {}
    monkeypatch.setattr(h36m_multiview, "MultiViewH36M", lambda ann, *a, **k: every.setdefault(ann, k["every"]))
    model = posetokens.create_model("ppt_multiview_h36m_256x256", num_views=2)
    t_pkl, v_pkl = tmp_path / "t.pkl", tmp_path / "v.pkl"
    t_pkl.touch()
    v_pkl.touch()
    cfg = DataCfg(format="h36m_multiview", train_ann=str(t_pkl), val_ann=str(v_pkl), mv_train_every=5, mv_val_every=64)
    build_multiview_set(cfg, "train", model)
    build_multiview_set(cfg, "val", model)
    assert every == {str(t_pkl): 5, str(v_pkl): 64}
    with pytest.raises(FileNotFoundError, match=r"^data\.val_ann \S+gone\.pkl does not exist$"):  # names the field
        build_multiview_set(dataclasses.replace(cfg, val_ann=str(tmp_path / "gone.pkl")), "val", model)
    # data.mv_cameras picks the cameras of a sample, in view order (default the first num_views ids); the model's
    # joint count reaches the set's checks; data.cameras may be null (records that carry their cameras)
    kwargs: dict[str, object] = {}
    monkeypatch.setattr(h36m_multiview, "MultiViewH36M", lambda ann, *a, **k: kwargs.update(k))
    build_multiview_set(cfg, "val", model)
    assert kwargs["cameras"] == (0, 1) and kwargs["num_joints"] == 17 and kwargs["cameras_pkl"] is None
    build_multiview_set(dataclasses.replace(cfg, mv_cameras=(3, 1), cameras=None), "val", model)
    assert kwargs["cameras"] == (3, 1)
    with pytest.raises(ValueError, match=r"data\.mv_cameras lists 3 camera\(s\) \[0, 2, 3\] but the model takes 2 "
                                         r"views \(model\.overrides\.num_views\)"):
        build_multiview_set(dataclasses.replace(cfg, mv_cameras=(0, 2, 3)), "val", model)
    recipe = load_config(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml", ["data.cameras=null",
                                                                               "data.mv_cameras=[0, 2, 3, 1]"])
    assert recipe.data.cameras is None and recipe.data.mv_cameras == (0, 2, 3, 1)
    with pytest.raises(ValueError, match=r"data\.mv_cameras.*distinct camera ids"):
        validate_config(load_config(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml", ["data.mv_cameras=[0, 0]"]))


@pytest.mark.parametrize("bad, message", [
    (b"not a pickle", r"bad\.pkl: not a readable H36M-Toolbox pickle \(truncated or corrupt\? UnpicklingError"),
    (pickle.dumps([{"image": "x.jpg"}]), r"bad\.pkl: record 0 misses field\(s\) \['subject'"),
], ids=["not-a-pickle", "fields-missing"])
def test_a_bad_multiview_val_pickle_is_said_before_training_starts(tmp_path: Path, bad: bytes, message: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The val pickle is read as the evaluation will read it, before the run starts: one line naming the file,
    and no run is begun (it used to show at the first evaluation, after an epoch of training)."""
    pkl, val = _toolbox_pickle(tmp_path), tmp_path / "bad.pkl"
    val.write_bytes(bad)
    args = ["train", str(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml"), "--work-dir", str(tmp_path / "run")]
    for kv in (f"data.train_ann={pkl}", f"data.val_ann={val}", f"data.train_img_dir={H36M}",
               f"data.val_img_dir={H36M}", f"data.cameras={H36M / 'cameras.pkl'}", "data.batch_size=1",
               "data.mv_train_every=1", "eval_interval=1", "threads=1"):
        args += ["--set", kv]
    assert cli(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err and re.search(message, lines[0]), err
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_trainer_trains_and_tests_multiview_ppt_on_a_toolbox_pickle(tmp_path: Path) -> None:
    # the shared trainer routes the multi-view model: (B, V, ...) batches from MultiViewH36M, JointsMSE over
    # views, then JDR and triangulated MPJPE on the val pickle; `test` reports the same figures.
    from posetokens.engine.config import load_config
    from posetokens.engine.trainer import test, train

    pkl = _toolbox_pickle(tmp_path)
    cfg = load_config(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml", [
        f"data.train_ann={pkl}", f"data.val_ann={pkl}", f"data.train_img_dir={H36M}", f"data.val_img_dir={H36M}",
        f"data.cameras={H36M / 'cameras.pkl'}", "data.batch_size=1", "data.val_batch_size=1",
        "data.mv_train_every=1", "data.mv_val_every=1",
        "schedule.epochs=1", "eval_interval=1", "threads=1", f"work_dir={tmp_path / 'run'}"])
    metrics = train(cfg)
    assert 0.0 <= metrics["jdr"] <= 1.0 and np.isfinite(metrics["mpjpe_mm"])
    assert [k for k in metrics if k.startswith("jdr/")] == [f"jdr/{n}" for n in H36M_NAMES]
    assert metrics["instants"] == 1.0  # the one instant of the pickle
    again = test(cfg, str(tmp_path / "run" / "final.pth"))
    # the values, from outside the evaluation code: the final weights' JDR and MPJPE written out by hand
    jdr, per_joint, mpjpe_mm = _hand_jdr_and_mpjpe(tmp_path / "run" / "final.pth", cfg)
    for got in (again, metrics):  # `test` from the checkpoint alone, and training's own evaluation
        assert got["jdr"] == pytest.approx(jdr, abs=1e-12)
        assert [got[f"jdr/{n}"] for n in H36M_NAMES] == pytest.approx(per_joint, abs=1e-12)
        assert got["mpjpe_mm"] == pytest.approx(mpjpe_mm, rel=1e-9)
        # the per-action table: the pickle's one instant is action 2 (Directions), so its row is the whole mean
        assert [k for k in got if k.startswith("mpjpe_mm/")] == ["mpjpe_mm/Directions"]
        assert got["mpjpe_mm/Directions"] == pytest.approx(mpjpe_mm, rel=1e-9)


def _hand_jdr_and_mpjpe(weights: Path, cfg: object) -> tuple[float, list[float], float]:
    """JDR and triangulated MPJPE of ``weights`` on the recipe's val set, as the spec describes the official
    evaluation (pipeline.md §5, tokenpose_ppt.md §5): HRNet argmax (coordinates zeroed where the maximum is
    <= 0) plus a quarter pixel towards the higher neighbour inside the border, heatmap px x 4 (the stride) into
    the crop, the crop -> image affine; JDR: share of labelled (instant, view) pairs within 12.8 px, per joint,
    then the mean over joints; 3D: DLT over all 4 views (``triangulate_dlt``, checked on the real cameras
    above), MPJPE in world mm without root alignment, 0 error where the last view marks a joint invisible. The
    crops, cameras and affines come from the dataset (its geometry is checked in
    test_dataset_sample_geometry_and_targets)."""
    from posetokens.checkpoint import load_trained
    from posetokens.engine.multiview import build_multiview_set

    model = load_trained(str(weights)).model.eval()
    ds = build_multiview_set(cfg.data, "val", model)
    hits, labelled, errors = np.zeros(17), np.zeros(17), []
    for i in range(len(ds)):
        s = ds[i]
        inputs = (s["images"][None], s["rays"][None]) if getattr(model, "pos_3d", None) is not None else (s["images"][None],)
        with torch.no_grad():
            hm = model(*inputs)[0].double().numpy()  # (V, J, h, w)
        v, j, h, w = hm.shape
        flat = hm.reshape(v, j, -1)
        idx, peak = flat.argmax(-1), flat.max(-1)
        xy = np.stack([idx % w, idx // w], -1).astype(np.float64)
        xy[peak <= 0] = 0.0
        for a in range(v):
            for b in range(j):
                px, py = int(xy[a, b, 0]), int(xy[a, b, 1])
                if 1 < px < w - 1 and 1 < py < h - 1:
                    xy[a, b, 0] += 0.25 * np.sign(hm[a, b, py, px + 1] - hm[a, b, py, px - 1])
                    xy[a, b, 1] += 0.25 * np.sign(hm[a, b, py + 1, px] - hm[a, b, py - 1, px])
        crop = xy * 4.0
        m = s["crop_to_image"].double().numpy()  # (V, 2, 3)
        img = np.einsum("vij,vkj->vki", m[:, :, :2], crop) + m[:, None, :, 2]
        vis = s["joints_vis"].numpy() > 0
        near = np.linalg.norm(img - s["joints_2d"].numpy(), axis=-1) <= 12.8
        hits += (near & vis).sum(0)
        labelled += vis.sum(0)
        world = triangulate_dlt(img, s["P"].double().numpy())
        error = np.linalg.norm(world - s["joints_3d"].double().numpy(), axis=-1)
        errors.append(error * vis[-1])  # the official estimate_tri: the last view's visibility, 0 error where invisible
    per_joint = (hits / labelled).tolist()
    return float(np.mean(per_joint)), per_joint, float(np.mean(errors))


# HowieMa/PPT multi-view-PPT/lib/models/multiview_ppt.py, TokenPose_S.init_weights: the COCO joint each H36M
# keypoint token starts from ("Human 36M -> COCO" map_idx; root and spine from the hips, thorax from the left eye).
OFFICIAL_COCO_TO_H36M = [12, 12, 14, 16, 11, 13, 15, 11, 1, 0, 2, 5, 7, 9, 6, 8, 10]


def test_the_recipe_starts_from_a_coco_ppt_s_as_the_official_code_does(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The multi-view recipe's start (``model.weights_strict: false`` with its keypoint map), from an official
    single-view PPT-S release (the parity fixture, 256x192, so the model is built at that size): every keypoint
    token is the official file's row of the COCO joint the official ``init_weights`` maps it from, every other
    tensor is the file's (as the strictly loaded single-view model has it), and the 3-D PE, which the file lacks,
    keeps its initialisation."""
    from posetokens.engine.config import load_config
    from posetokens.engine.trainer import build_model
    from posetokens.registry import create_model

    official = PARITY / "tokenpose_ppt_s_coco_256x192" / "checkpoint.pth"
    if not official.exists():
        pytest.skip("the PPT-S parity fixture is not in shared/")
    recipe = load_config(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml", [
        f"model.weights={official}", "model.overrides={image_size: [256, 192], patch_size: [4, 3]}"])
    assert list(recipe.model.weights_keypoints) == OFFICIAL_COCO_TO_H36M and not recipe.model.weights_strict
    torch.manual_seed(recipe.seed)
    fresh = create_model(recipe.model.name, **recipe.model.overrides).state_dict()
    torch.manual_seed(recipe.seed)
    got = build_model(recipe).state_dict()
    raw = torch.load(official, map_location="cpu", weights_only=True)
    assert torch.equal(got["keypoint_token"][0], raw["features.keypoint_token"][0, OFFICIAL_COCO_TO_H36M])
    single = create_model("ppt_s_coco_256x192", weights=official).state_dict()
    assert set(got) - set(single) == {"pos_3d.weight", "pos_3d.bias"}
    assert all(torch.equal(got[k], v) for k, v in single.items() if k != "keypoint_token")
    assert torch.equal(got["pos_3d.weight"], fresh["pos_3d.weight"])
    # a multi-view checkpoint of ours (H36M joints) starts the recipe with its tokens as they are: the map is for
    # a file of another layout, and says it was not applied
    from posetokens.checkpoint import describe
    from posetokens.data.metainfo import get_metainfo
    from posetokens.protocols import get_protocol

    torch.save({**describe(recipe.model.name, dict(recipe.model.overrides), get_protocol("multiview_ppt"),
                           get_metainfo("h36m")), "state_dict": got}, tmp_path / "mv.pth")
    recipe.model.weights = str(tmp_path / "mv.pth")
    with caplog.at_level("WARNING"):
        again = build_model(recipe).state_dict()
    assert all(torch.equal(again[k], v) for k, v in got.items())
    assert any("model.weights_keypoints not applied: the file stores the model's own layout" in r.getMessage()
               for r in caplog.records)
    recipe.model.weights_keypoints = (12, 12)  # a map of another length is refused all the same
    with pytest.raises(ValueError, match=r"model.weights_keypoints: 2 entries for 17 keypoint rows of keypoint_token"):
        build_model(recipe)
    recipe.model.weights_keypoints = tuple(OFFICIAL_COCO_TO_H36M)
    # a file that stores no names but fits every other tensor (a multi-view release) may be of either layout:
    # the map is applied, as the recipe asks, and the log says how to keep its rows
    torch.save(got, tmp_path / "bare.pth")
    recipe.model.weights = str(tmp_path / "bare.pth")
    caplog.clear()
    with caplog.at_level("WARNING"):
        again = build_model(recipe).state_dict()
    assert torch.equal(again["keypoint_token"][0], got["keypoint_token"][0, OFFICIAL_COCO_TO_H36M])
    assert any("if it is of the model's own layout (an official multi-view release), drop the map "
               "(model.weights_keypoints=null) or convert the file first" in r.getMessage() for r in caplog.records)
    # an official file stores no keypoint names: a map names its rows by index
    named = load_config(REPO / "configs" / "ppt_multiview_h36m_256x256.yaml", [
        f"model.weights={official}", "model.overrides={image_size: [256, 192], patch_size: [4, 3]}",
        "model.weights_keypoints=[right_hip, 12, 14, 16, 11, 13, 15, 11, 1, 0, 2, 5, 7, 9, 6, 8, 10]"])
    with pytest.raises(ValueError, match=r"weights_keypoints\[0\]: 'right_hip' is a name, but model.weights \S+"
                                         r"checkpoint.pth stores no keypoint names .*give the checkpoint keypoint's"):
        build_model(named)


def test_the_recipe_names_the_ransac_threshold_of_its_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    """``data.mv_ransac_px`` reaches the triangulation of training's and ``test``'s evaluation (None: plain DLT,
    the official pymvg rule); a threshold <= 0 is refused with the field."""
    from posetokens.engine import trainer
    from posetokens.engine.config import load_config, validate_config

    seen: dict[str, object] = {}
    monkeypatch.setattr(trainer, "evaluate_multiview", lambda *a, **k: seen.update(k) or {})
    monkeypatch.setattr(trainer, "build_multiview_set", lambda *a, **k: None)
    recipe = REPO / "configs" / "ppt_multiview_h36m_256x256.yaml"
    for given, want in (([], None), (["data.mv_ransac_px=12.8"], 12.8)):
        trainer.evaluate_model(SimpleNamespace(task="multiview"), load_config(recipe, given), None,
                               torch.device("cpu"), Path("unused.json"))
        assert seen["ransac_threshold"] == want
    with pytest.raises(ValueError, match=r"data\.mv_ransac_px"):
        validate_config(load_config(recipe, ["data.mv_ransac_px=0"]))
