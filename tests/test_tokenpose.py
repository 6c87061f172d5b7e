"""TokenPose / PPT: official parity, pruning semantics, zoo figures and error messages."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import posetokens
from posetokens.cli import main as cli
from posetokens.convert import CheckpointMismatchError
from posetokens.layers import Attention, gather_tokens, keep_counts, keypoint_attention_score, prune_topk, sine_pos_embed_2d, use_fused_attn
from posetokens.runtime import UserKeyError

from conftest import parity_fixtures

TOKENPOSE_FIXTURES = parity_fixtures("pose_tokenpose")


# ----------------------------------------------------------------------------------- official parity
@pytest.mark.parametrize("fixture", TOKENPOSE_FIXTURES, ids=lambda p: p.name)
def test_parity_cli_on_official_fixture(fixture: Path, capsys: pytest.CaptureFixture) -> None:
    rc = cli(["parity", str(fixture), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["passed"]
    names = set(report["results"])
    # heatmaps of both models, and the kept-token sets of all three pruning layers, were compared
    assert {"ppt_heatmaps", "tokenpose_heatmaps", "tokenpose_repo_layout/tokenpose_heatmaps"} <= names
    assert {f"ppt_keep_patch_idx_layer{i}" for i in (3, 6, 9)} <= names


def test_parity_does_not_depend_on_folder_name(tmp_path: Path) -> None:
    if not TOKENPOSE_FIXTURES:
        pytest.fail("no TokenPose fixture")
    src = TOKENPOSE_FIXTURES[0]
    dst = tmp_path / "some_other_fixture"
    shutil.copytree(src, dst)
    assert cli(["parity", str(dst)]) == 0


def test_parity_fails_on_wrong_outputs(tmp_path: Path) -> None:
    if not TOKENPOSE_FIXTURES:
        pytest.fail("no TokenPose fixture")
    dst = tmp_path / "broken"
    shutil.copytree(TOKENPOSE_FIXTURES[0], dst)
    out = torch.load(dst / "outputs.pt", weights_only=True)
    out["ppt_heatmaps"] = out["ppt_heatmaps"] + 1e-3
    torch.save(out, dst / "outputs.pt")
    assert cli(["parity", str(dst)]) == 1


def test_convert_cli_then_create_model(tmp_path: Path) -> None:
    fx = next((f for f in TOKENPOSE_FIXTURES if json.loads((f / "config.json").read_text())["dim"] == 192), None)
    if fx is None:
        pytest.fail("no full-size PPT-S fixture")
    out = tmp_path / "ppt_s.pth"
    assert cli(["convert", "--model", "ppt_s_coco_256x192", "--official", str(fx / "checkpoint.pth"), "--out", str(out)]) == 0
    model = posetokens.create_model("ppt_s_coco_256x192", weights=out).eval()
    images = torch.load(fx / "inputs.pt", weights_only=True)["images"]
    ref = torch.load(fx / "outputs.pt", weights_only=True)["ppt_heatmaps"]
    with torch.no_grad():
        assert (model(images) - ref).abs().max() < 1e-4


def test_sine_pe_matches_official_tensor() -> None:
    if not TOKENPOSE_FIXTURES:
        pytest.fail("no TokenPose fixture")
    sd = torch.load(TOKENPOSE_FIXTURES[0] / "checkpoint.pth", weights_only=True)
    official = next(v for k, v in sd.items() if k.endswith("pos_embedding"))
    ours = sine_pos_embed_2d(16, 16, official.shape[-1])
    assert (ours - official).abs().max() < 1e-6


# ------------------------------------------------------------------------------------ pruning semantics
def test_keep_counts_compound_as_in_the_paper() -> None:
    assert keep_counts(256, 0.7, 3) == [180, 126, 89]  # spec: 256 -> 180 -> 126 -> 89


def test_keypoint_attention_score_hand_computed() -> None:
    # B=1, 2 heads, J=2 keypoint queries, keys = [kp0, kp1, v0, v1, v2]
    rows = torch.tensor(
        [[[[0.1, 0.1, 0.5, 0.2, 0.1], [0.2, 0.2, 0.1, 0.4, 0.1]],
          [[0.0, 0.2, 0.3, 0.2, 0.3], [0.1, 0.1, 0.3, 0.2, 0.3]]]]
    )
    # head mean: kp0 -> [0.4, 0.2, 0.2], kp1 -> [0.2, 0.3, 0.2]; sum over keypoints -> [0.6, 0.5, 0.4]
    assert torch.allclose(keypoint_attention_score(rows, 2), torch.tensor([[0.6, 0.5, 0.4]]))


def test_prune_topk_keeps_prefix_and_gathers_carry() -> None:
    x = torch.arange(2 * 6 * 1, dtype=torch.float32).reshape(2, 6, 1)  # 2 prefix + 4 visual tokens
    score = torch.tensor([[0.1, 0.9, 0.5, 0.3], [0.8, 0.1, 0.2, 0.7]])
    ids = torch.arange(4).expand(2, -1)
    kept, idx, (ids_kept,) = prune_topk(x, score, 2, 0.5, (ids,))
    assert idx.tolist() == [[1, 2], [0, 3]]
    assert ids_kept.tolist() == [[1, 2], [0, 3]]
    assert kept[0, :, 0].tolist() == [0, 1, 3, 4] and kept[1, :, 0].tolist() == [6, 7, 8, 11]


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace. is deprecated:DeprecationWarning")
def test_gather_tokens_copies_whole_tokens_as_torch_gather_does() -> None:
    """gather_tokens takes whole tokens per sample (one index_select over B * N tokens): the same values as an
    element-wise torch.gather, for a strided slice and 4-D tokens, and under tracing (its exportable form)."""
    torch.manual_seed(0)
    x = torch.randn(3, 9, 4, 5)[:, 2:]  # (B, 7, 4, 5), a slice along the token axis as prune_topk passes
    idx = torch.tensor([[6, 0, 3], [1, 1, 5], [2, 4, 0]])  # repeats allowed
    want = x.gather(1, idx[:, :, None, None].expand(-1, -1, 4, 5))
    assert torch.equal(gather_tokens(x, idx), want)
    assert torch.equal(gather_tokens(x[:, :, 0, 0], idx), x[:, :, 0, 0].gather(1, idx))  # (B, N) scores, ids
    traced = torch.jit.trace(gather_tokens, (x, idx), check_trace=False)
    assert torch.equal(traced(x, idx), want)
    for bad in (7, -1):  # out of range raises, as torch.gather does, instead of reading a neighbour's token
        with pytest.raises((IndexError, RuntimeError)):
            gather_tokens(x, idx.clone().index_fill_(1, torch.tensor([0]), bad))


def test_scored_attention_rows_equal_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = Attention(32, 4, scale=32**-0.5).eval()
    x = torch.randn(2, 10, 32)
    out, rows = attn.forward_scored(x, 3)
    q, k, _ = attn._qkv(x)
    ref = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)[:, :, :3]
    assert torch.allclose(rows, ref, atol=1e-6)
    with use_fused_attn(False):
        explicit = attn(x)
    assert torch.allclose(out, explicit, atol=1e-5)


def test_ppt_with_keep_ratio_one_equals_tokenpose() -> None:
    torch.manual_seed(0)
    tp = posetokens.create_model("tokenpose_s_coco_256x192").eval()
    ppt = posetokens.create_model("ppt_s_coco_256x192").eval()
    ppt.load_state_dict(tp.state_dict())
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ppt.set_keep_ratio(1.0)
        assert torch.equal(ppt(x), tp(x))
        ppt.set_keep_ratio(0.7)
        out = ppt.forward_tokens(x)
    assert [p.keep_idx.shape[1] for p in out.pruned] == [180, 126, 89]
    assert not torch.allclose(out.heatmaps, tp(x))


# ---------------------------------------------------------------------------------------- zoo figures
# Paper rows (PPT ECCV'22 Table 1) and figures measured from the official code (shared/specs/tokenpose_ppt.md).
PAPER = {
    # name: (official total params M, paper GFLOPs or None, official repo counter, official true GMACs)
    "tokenpose_s_coco_256x192": (6.670, 2.2, 2.226, 2.726),
    "tokenpose_b_coco_256x192": (13.514, 5.7, 5.655, 6.276),
    "tokenpose_l_d6_coco_256x192": (20.865, 9.1, 9.064, 9.867),
    "ppt_s_coco_256x192": (6.670, 1.6, 1.614, 2.186),
    "ppt_b_coco_256x192": (13.514, 5.0, 5.043, 5.736),
    "ppt_l_d6_coco_256x192": (20.865, 8.7, None, 9.55),
    "tokenpose_s_mpii_256x256": (7.810, None, 2.528, 3.118),
    "ppt_s_mpii_256x256": (7.810, None, 1.919, 2.578),
}
PAPER_PARAMS = {"s": 6.6, "b": 13.5, "l": 20.8}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_flops_and_params_match_paper(name: str, capsys: pytest.CaptureFixture) -> None:
    assert cli(["flops", name, "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    assert set(fig) == {"model", "params_m", "gmacs", "paper_gflops"}
    official_params, paper_gflops, official_counter, official_gmacs = PAPER[name]
    # params_m counts trainable parameters: the official total less the frozen sine PE (49,152 values, spec §1);
    # the official figure is printed to 3 decimals (0.0005), the JSON to 4 (0.00005)
    assert abs(fig["params_m"] - (official_params - 0.049152)) <= 0.00055, fig["params_m"]
    if "coco" in name:  # the paper prints params to 0.1 M, counting trainable parameters
        assert round(fig["params_m"], 1) == PAPER_PARAMS[name.split("_")[1]]
    if paper_gflops is not None:  # printed to 0.1 G
        assert abs(fig["paper_gflops"] - paper_gflops) <= 0.05, fig["paper_gflops"]
    if official_counter is not None:  # the repo counter, printed to 3 decimals (+ the JSON's 4-decimal rounding)
        assert abs(fig["paper_gflops"] - official_counter) <= 0.00055, fig["paper_gflops"]
    # true MACs count everything; the pruning layers' keypoint rows add ~0.1%
    assert abs(fig["gmacs"] / official_gmacs - 1) < 0.005


@pytest.mark.parametrize(  # single-view family only: multi-view models (tokenpose_mv) take (B, V, ...) views
    "name", [n for n in posetokens.list_models() if posetokens.registry.get_entry(n).family == "tokenpose"]
)
def test_every_zoo_model_runs_forward_and_backward(name: str) -> None:
    model = posetokens.create_model(name)
    (x,) = model.dummy_inputs(1)
    out = model(x)
    h, w = model.cfg.heatmap_size
    assert out.shape == (1, model.cfg.num_keypoints, h, w)
    out.square().mean().backward()
    assert model.keypoint_token.grad is not None and torch.isfinite(model.keypoint_token.grad).all()


# ---------------------------------------------------------------------------------------- bad input
def test_unknown_model_name_suggests_close_names() -> None:
    with pytest.raises(UserKeyError, match="Did you mean: ppt_s_coco_256x192"):
        posetokens.create_model("ppt_s_coco_265x192")


def test_wrong_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    model = posetokens.create_model("tokenpose_s_coco_256x192")
    sd = model.state_dict()
    del sd["blocks.3.attn.qkv.weight"]
    sd["blocks.0.mlp.fc1.weight"] = torch.zeros(10, 10)
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as e:
        posetokens.create_model("tokenpose_s_coco_256x192", weights=tmp_path / "bad.pth")
    msg = str(e.value)
    assert "missing keys (1): blocks.3.attn.qkv.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "blocks.0.mlp.fc1.weight: checkpoint (10, 10) vs model (576, 192)" in msg


def test_official_checkpoint_of_other_model_is_refused() -> None:
    fx = next((f for f in TOKENPOSE_FIXTURES if "_b_" in f.name), None)
    if fx is None:
        pytest.fail("no PPT-B fixture")
    with pytest.raises(ValueError, match="does not fit|pos_embedding"):
        posetokens.create_model("ppt_b_coco_256x192", weights=fx / "checkpoint.pth")


def test_missing_checkpoint_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        posetokens.create_model("ppt_s_coco_256x192", weights=tmp_path / "nope.pth")


@pytest.mark.parametrize("shape", [(1, 3, 256, 256), (1, 1, 256, 192), (3, 256, 192)])
def test_wrong_input_shape_names_the_expected_shape(shape: tuple[int, ...]) -> None:
    model = posetokens.create_model("ppt_s_coco_256x192")
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, 256, 192\)"):
        model(torch.randn(*shape))


def test_ppt_l_d6_prunes_three_times() -> None:
    model = posetokens.create_model("ppt_l_d6_coco_256x192")
    assert len(model.cfg.prune.layers) == 3 and model.token_counts() == [180, 126, 89]
    assert math.isclose(model.keep_ratio, 0.7)


@pytest.mark.parametrize("fixture", TOKENPOSE_FIXTURES, ids=lambda p: p.name)
def test_optimized_inference_copy_matches_official_outputs(fixture: Path) -> None:
    from posetokens.convert import load_weights
    from posetokens.layers import optimize_for_inference
    from posetokens.models.tokenpose import TokenPose
    from posetokens.parity.tokenpose import cfg_from_fixture

    model = TokenPose(cfg_from_fixture(json.loads((fixture / "config.json").read_text()))).eval()
    load_weights(model, fixture / "checkpoint.pth", "tokenpose")
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    images = torch.load(fixture / "inputs.pt", weights_only=True)["images"]
    ref = torch.load(fixture / "outputs.pt", weights_only=True)["ppt_heatmaps"]
    with torch.no_grad():
        out = fast(images.contiguous(memory_format=torch.channels_last))
    assert (out - ref).abs().max() < 1e-4


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_patch_embed_matches_a_hand_flattened_patch(channels_last: bool) -> None:
    """Every token is W @ (the patch flattened row, column, channel) + b, in both execution layouts."""
    from posetokens.layers import PatchEmbed

    torch.manual_seed(0)
    embed = PatchEmbed(5, (4, 3), 7).double()
    feat = torch.randn(2, 5, 8, 9, dtype=torch.float64)
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    out = embed(feat)
    assert out.shape == (2, 2 * 3, 7)
    for b in range(2):
        for r in range(2):
            for c in range(3):
                patch = feat[b, :, 4 * r:4 * r + 4, 3 * c:3 * c + 3].permute(1, 2, 0).reshape(-1)
                want = embed.weight @ patch + embed.bias
                assert torch.allclose(out[b, r * 3 + c], want, atol=1e-12)
    with pytest.raises(ValueError, match="multiple of 4"):
        embed(feat[:, :, :7])
