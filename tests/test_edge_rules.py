"""Hand cases for rules a mutation hunt found unguarded (session 34): multi-view PPT's config and ray checks, the
multi-view dataset's instants, colours and target weights, the shared layers (drop-path, init, patch embedding,
conv-BN folding, the sine-table check), the precision helpers and the ONNX output comparison. Every expected value
is computed here by hand or by a plain PyTorch reference (``nn.BatchNorm2d`` in eval mode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from posetokens.data.datasets.h36m_multiview import crop_view, group_records
from posetokens.export.onnx import export_onnx, output_difference
from posetokens.inference.precision import _cast_inputs, graph_key, quantize_linear_dynamic
from posetokens.layers.drop import DropPath, drop_path
from posetokens.layers.fuse import _fuse_conv_shuffle_bn
from posetokens.layers.init import init_conv_bn
from posetokens.layers.patch_embed import PatchEmbed
from posetokens.layers.pos_embed import check_sine_pos_embed, sine_pos_embed_2d
from posetokens.registry import create_model


# ----------------------------------------------------------------------------------------- multi-view PPT
def test_multiview_config_keeps_per_view_layers_and_checks_the_rays() -> None:
    """At least one per-view layer before the fusion layers; pruning only in the per-view layers (a prune at the
    first fusion layer would never run); rays of another patch grid are refused, naming both shapes."""
    with pytest.raises(ValueError, match=r"num_fusion_layers must be in \[0, depth=12\), got 12"):
        create_model("ppt_multiview_h36m_256x256", num_fusion_layers=12)
    with pytest.raises(ValueError, match=r"prune\.layers \(3, 6, 10\): pruning must happen in the per-view layers "
                                         r"0\.\.9, before the 2 fusion layers"):
        create_model("ppt_multiview_h36m_256x256", prune={"layers": [3, 6, 10]})
    model = create_model("ppt_multiview_h36m_256x256", num_views=2, depth=3, num_fusion_layers=1,
                         prune={"layers": [1]}).eval()
    images = torch.zeros(1, 2, 3, 256, 256)
    with pytest.raises(ValueError, match=r"rays must have shape \(1, 2, 256, 3\) \(B, V, patches, xyz\), got "
                                         r"\(1, 2, 300, 3\)"):
        model(images, torch.zeros(1, 2, 300, 3))


def _records(keys: list[tuple[int, int, int, int]]) -> list[dict]:
    return [dict(subject=s, action=a, subaction=sa, image_id=i, camera_id=0) for s, a, sa, i in keys]


def test_instants_are_sorted_and_only_s9s_damaged_sequences_are_left_out() -> None:
    """Instants come in (subject, action, subaction, image id) order whatever the pickle's order (so every n-th
    instant is the same set); S9's damaged Greeting-2 (5, 2) is left out, S11's same sequence is kept."""
    db = _records([(1, 2, 1, 3), (1, 2, 1, 1), (1, 2, 1, 2), (9, 5, 2, 1), (11, 5, 2, 1), (9, 5, 1, 1)])
    groups = group_records(db, (0,))
    assert [db[g[0]]["image_id"] for g in groups[:3]] == [1, 2, 3]
    assert [(db[g[0]]["subject"], db[g[0]]["subaction"]) for g in groups[3:]] == [(9, 1), (11, 2)]
    assert len(group_records(db, (0,), drop_damaged=False)) == 6


def test_a_view_crop_is_rgb_normalised_and_joints_outside_it_weigh_nothing(tmp_path) -> None:
    """``crop_view`` normalises RGB as given (ImageNet mean and std on 0-255: channel 0 of a uniform (200, 100, 0)
    image is (200 - 123.675) / 58.395); the dataset's target weight is 0 for a joint outside the crop (the official
    code zeroes joints outside [0, 256))."""
    image = np.zeros((400, 400, 3), np.uint8)
    image[...] = (200, 100, 0)
    K = np.array([[1000.0, 0, 200], [0, 1000.0, 200], [0, 0, 1]])
    crop, rays, _ = crop_view(image, (200.0, 200.0), (300.0, 300.0), K, np.eye(3))
    want = [(200 - 123.675) / 58.395, (100 - 116.28) / 57.12, (0 - 103.53) / 57.375]
    np.testing.assert_allclose(crop[:, 128, 128], want, rtol=1e-5)
    assert crop.shape == (3, 256, 256) and rays.shape == (256, 3)

    import pickle

    from test_multiview import H36M, _toolbox_pickle

    from posetokens.data.datasets.h36m_multiview import MultiViewH36M
    from posetokens.data.transforms import PIXEL_STD, get_affine_transform

    path = _toolbox_pickle(tmp_path)
    db = pickle.loads(path.read_bytes())
    for r in db:
        r["scale"] = np.asarray(r["scale"]) * 0.55  # a box too small for the person
    path.write_bytes(pickle.dumps(db))
    sample = MultiViewH36M(path, H36M)[0]
    for v, r in enumerate(db):
        trans = get_affine_transform(np.asarray(r["center"]), np.asarray(r["scale"]) * PIXEL_STD, 0.0, (256, 256))
        uv = np.asarray(r["joints_2d"]) @ trans[:, :2].T + trans[:, 2]
        inside = (uv >= 0).all(-1) & (uv < 256).all(-1)
        assert not inside.all() and inside.any()
        assert sample["target_weight"][v].reshape(-1).tolist() == inside.astype(float).tolist()


# ------------------------------------------------------------------------------------------------ layers
def test_drop_path_keeps_one_minus_p_and_rescales_them() -> None:
    """Training: a sample is kept with probability 1 - p and scaled by 1 / (1 - p), so the mean stays 1; p = 1
    (every branch dropped, a division by 0) is refused."""
    torch.manual_seed(0)
    y = drop_path(torch.ones(100_000, 1), 0.2, training=True)
    kept = y > 0
    assert abs(float(kept.float().mean()) - 0.8) < 0.01
    assert torch.all(y[kept] == 1 / 0.8) and abs(float(y.mean()) - 1.0) < 0.02
    with pytest.raises(ValueError, match=r"DropPath: p must be in \[0, 1\), got 1.0"):
        DropPath(1.0)


def test_init_conv_bn_leaves_conv_biases_unless_asked() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    before = conv.bias.detach().clone()
    init_conv_bn([conv])
    assert torch.equal(conv.bias, before) and before.abs().sum() > 0
    init_conv_bn([conv], zero_conv_bias=True)
    assert torch.equal(conv.bias, torch.zeros(4))


def _bn(channels: int, var: float) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.running_var.fill_(var)
        bn.running_mean.uniform_(-1, 1)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return bn


def test_folding_a_batchnorm_keeps_its_epsilon() -> None:
    """Folds against ``nn.BatchNorm2d`` itself at a running variance of 1e-4, where eps (1e-5) changes the scale
    by 5 %: the patch embedding's input norm (GTPT's patch_norm) and the BN after a PixelShuffle (GTPT-B's stem)."""
    torch.manual_seed(0)
    embed, bn = PatchEmbed(4, (2, 2), 8).eval(), _bn(4, 1e-4)
    x = torch.randn(2, 4, 6, 8)
    want = embed(bn(x))
    embed.fold_input_norm(bn)
    torch.testing.assert_close(embed(x), want, rtol=1e-4, atol=1e-4)
    conv, shuffle, bn2 = nn.Conv2d(3, 16, 3, padding=1).eval(), nn.PixelShuffle(2), _bn(4, 1e-4)
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(shuffle(_fuse_conv_shuffle_bn(conv, 4, bn2)(x)), bn2(shuffle(conv(x))),
                               rtol=1e-4, atol=1e-4)


def test_patch_embedding_refuses_a_width_that_is_no_multiple_of_the_patch() -> None:
    embed = PatchEmbed(4, (2, 2), 8)
    for x in (torch.zeros(1, 4, 4, 5), torch.zeros(1, 4, 4, 5).to(memory_format=torch.channels_last)):
        with pytest.raises(ValueError, match=r"H a multiple of 2 and W of 2, got \(1, 4, 4, 5\)"):
            embed(x)


def test_a_sine_table_with_a_nan_is_not_the_sine_table() -> None:
    ours = sine_pos_embed_2d(8, 4, 16)
    bad = ours.clone()
    bad.view(-1)[5] = float("nan")
    check_sine_pos_embed(ours.clone(), ours)
    with pytest.raises(ValueError):
        check_sine_pos_embed(bad, ours)


# --------------------------------------------------------------------------------------- precision, ONNX
def test_precision_helpers_keep_int8_graphs_apart_integer_inputs_and_16_wide_layers() -> None:
    """The ONNX graph cache keys an int8 graph apart from the float32 one; a reduced-precision cast leaves integer
    inputs (frame indices) as they are; a Linear of exactly ``min_features`` (16) inputs is quantised."""
    model = nn.Sequential(nn.Linear(16, 4), nn.Linear(4, 4))
    assert graph_key(model, True) != graph_key(model, False)
    idx, x = torch.tensor([5, 257]), torch.ones(2)
    (a, b), _ = _cast_inputs((idx, x), {}, torch.bfloat16)
    assert a.dtype == torch.int64 and a.tolist() == [5, 257] and b.dtype == torch.bfloat16
    q = quantize_linear_dynamic(model)
    assert type(q[0]) is not nn.Linear and type(q[1]) is nn.Linear


def test_onnx_output_comparison_by_hand() -> None:
    """A NaN difference fails; an integer output (kept frames) must match exactly whatever ``atol``; a quantised
    graph (``atol`` None) may differ by a quarter of the largest |PyTorch| value (0.25 of 1.0 here), and its
    integer outputs may differ; ``--atol 0`` (exact) is a valid choice."""
    ref = np.array([1.0, -0.5], np.float32)
    with pytest.raises(ValueError, match=r"on output 'heatmaps' by nan"):
        output_difference(ref, np.array([1.0, np.nan], np.float32), 1e-4, "g.onnx", "heatmaps", 1)
    frames = np.array([0, 4, 8])
    with pytest.raises(ValueError, match=r"on output 'kept_frames' by 1 \(batch 3; allowed 0\)"):
        output_difference(frames, np.array([0, 5, 8]), 1e9, "g.onnx", "kept_frames", 3)
    assert output_difference(frames, np.array([0, 5, 8]), None, "g.onnx", "kept_frames", 3) == 1.0
    assert output_difference(ref, ref + np.float32(0.2), None, "g.onnx", "heatmaps", 1) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"allowed 0\.25\)"):
        output_difference(ref, ref + np.float32(0.3), None, "g.onnx", "heatmaps", 1)
    with pytest.raises(ValueError, match=r"--atol -1\.0: expected a finite number >= 0"):
        export_onnx("tokenpose_s_coco_256x192", "x.onnx", atol=-1.0, check=False)
    with pytest.raises(ValueError) as got:  # 0 passes the atol rule; the next rule (the path) says no
        export_onnx("tokenpose_s_coco_256x192", "x.txt", atol=0.0, check=False)
    assert "--atol" not in str(got.value) and "expected a path ending in .onnx" in str(got.value)
