"""MotionBERT (DSTformer) and HoT w. MotionBERT: official parity, zoo figures, strategies, conversion, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posetokens.engine.flops import paper_gflops
import torch

from posetokens.cli import main as cli
from posetokens.convert import CheckpointMismatchError, load_weights
from posetokens.engine.flops import count_params
from posetokens.layers import FramePruneCfg
from posetokens.models.motionbert import DSTformer, DSTformerCfg, checkpoint_filter_fn
from posetokens.registry import create_model, get_family

from conftest import PARITY

MB_FIXTURES = (
    [c.parent for c in sorted(PARITY.glob("*/config.json")) if json.loads(c.read_text()).get("family") == "motionbert"]
    if PARITY.is_dir()
    else []
)

TINY = dict(num_frames=27, num_joints=5, dim=16, depth=3, heads=2, mlp_hidden=32, dim_rep=24)


def tiny(**prune: object) -> DSTformer:
    cfg = DSTformerCfg(**TINY, prune=FramePruneCfg(**prune) if prune else FramePruneCfg())
    return DSTformer(cfg).eval()


def clip(b: int = 2, f: int = 27, j: int = 5, c: int = 3) -> torch.Tensor:
    return torch.randn(b, f, j, c, generator=torch.Generator().manual_seed(0))


# ----------------------------------------------------------------------------------- official parity
@pytest.mark.parametrize("fixture", MB_FIXTURES, ids=lambda p: p.name)
def test_parity_cli_on_official_fixture(fixture: Path, capsys: pytest.CaptureFixture) -> None:
    rc = cli(["parity", str(fixture), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    assert report["passed"] and report["family"] == "motionbert"
    names = set(report["results"])
    assert {"weights", "out"} <= names
    if json.loads((fixture / "config.json").read_text())["variant"] == "hot_motionbert":
        assert {"tpc/index", "index", "forced_index/out", "tpc_tokens"} <= names


def test_parity_rejects_unknown_output_key(tmp_path: Path) -> None:
    if not MB_FIXTURES:
        pytest.fail("no MotionBERT fixture")
    dst = tmp_path / "fx"
    dst.mkdir()
    for name in ("config.json", "inputs.pt", "checkpoint.pth"):
        (dst / name).symlink_to(MB_FIXTURES[0] / name)
    out = torch.load(MB_FIXTURES[0] / "outputs.pt", weights_only=True)
    out["mystery"] = torch.zeros(1)
    torch.save(out, dst / "outputs.pt")
    assert cli(["parity", str(dst)]) == 2


# ----------------------------------------------------------------------------------------- zoo figures
# HoT (CVPR'24) paper table: params (M) and FLOPs (G, 2 x MACs of the Linear layers per 243-frame clip), printed to
# 2 decimals; shared/specs/hot.md §0 reproduces both with the official code (131.09 and 63.21 G, 16.00 and 16.35 M).
# Tolerance: half a unit of the last printed digit, 0.005.
PAPER = {"motionbert_h36m_243": (16.00, 131.09), "hot_motionbert_h36m_243": (16.35, 63.21)}


@pytest.mark.parametrize("name", list(PAPER))
def test_zoo_figures_match_paper(name: str) -> None:
    paper_params_m, paper_gflops_ = PAPER[name]
    with torch.device("meta"):  # shapes only: the Linear-FLOPs hooks need no numbers (fast)
        model = create_model(name).eval()
        params_m = count_params(model) / 1e6
        gflops = paper_gflops(model, get_family("motionbert").paper_counter)
    assert abs(params_m - paper_params_m) <= 0.005, params_m
    assert abs(gflops - paper_gflops_) <= 0.005, gflops


# ------------------------------------------------------------------------------------ strategies, shapes
@pytest.mark.parametrize("strategy", ["cluster", "uniform", "attention", "motion"])
@pytest.mark.parametrize("recovery", ["attention", "nearest", "linear", "none"])
def test_strategies_shapes(strategy: str, recovery: str) -> None:
    model = tiny(strategy=strategy, keep=9, layer=1, recovery=recovery)
    x = clip()
    out, index = model.forward_frames(x)
    assert index.shape == (2, 9) and index.dtype == torch.int64
    assert bool((index[:, 1:] > index[:, :-1]).all()) and 0 <= int(index.min()) and int(index.max()) < 27
    if recovery == "none":
        assert model.is_seq2frame and out.shape == (2, 9, 5, 3)
        assert bool((index == 13).any(dim=1).all())  # the centre frame is always kept
    else:
        assert not model.is_seq2frame and out.shape == (2, 27, 5, 3)
    assert torch.isfinite(out).all()
    assert torch.equal(model(x), out)  # deterministic without noise


def test_unpruned_model_and_short_clips() -> None:
    base = tiny()
    out, index = base.forward_frames(clip())
    assert out.shape == (2, 27, 5, 3) and index is None and not base.is_seq2frame
    assert base(clip(f=20)).shape == (2, 20, 5, 3)
    hot = tiny(strategy="cluster", keep=9, layer=1)
    assert hot(clip(f=20)).shape == (2, 20, 5, 3)
    assert len(base.dummy_inputs(3)) == 1 and base.dummy_inputs(3)[0].shape == (3, 27, 5, 3)


def test_keep_index_and_noise() -> None:
    model = tiny(strategy="cluster", keep=9, layer=2)
    x = clip()
    noise = torch.rand(2, 27, generator=torch.Generator().manual_seed(1))
    a, b = model.forward_frames(x, noise=noise), model.forward_frames(x, noise=noise)
    assert torch.equal(a.index, b.index) and torch.equal(a.out, b.out)
    forced = model.forward_frames(x, keep_index=a.index.flip(1))  # forced indices are sorted
    assert torch.equal(forced.index, a.index)
    torch.testing.assert_close(forced.out, a.out)
    other = torch.arange(9).expand(2, -1) * 3
    assert torch.equal(model.forward_frames(x, keep_index=other).index, other)
    trace = model.forward_trace(x)
    assert trace.tokens.shape == (2, 27, 16)


def test_no_fuse_backward_and_drop_path() -> None:
    cfg = DSTformerCfg(**TINY, att_fuse=False, drop_path=0.2, prune=FramePruneCfg("cluster", keep=9, layer=1))
    model = DSTformer(cfg).train()
    assert model.ts_attn is None
    model(clip()).square().mean().backward()
    assert model.recovery.queries.grad is not None and model.joints_embed.weight.grad is not None


# ------------------------------------------------------------------------------------------ conversion
def _official(model: DSTformer) -> dict[str, torch.Tensor]:
    """Our state dict renamed to the official HoT layout."""
    ren = {"recovery.queries": "x_token", "kept_pos_embed": "pos_embed_token"}
    out = {}
    for k, v in model.state_dict().items():
        k = ren.get(k, k)
        k = k.replace("recovery.attn.", "cross_attention.").replace("pre_logits.", "pre_logits.fc.")
        out[k] = v.clone()
    return out


def test_convert_official_layouts() -> None:
    hot = tiny(strategy="cluster", keep=9, layer=1)
    sd = _official(hot)
    assert {"x_token", "pos_embed_token", "cross_attention.linear_q.weight", "pre_logits.fc.weight"} <= set(sd)
    conv = checkpoint_filter_fn(sd, hot)
    assert torch.equal(conv["recovery.attn.linear_q.weight"], sd["cross_attention.linear_q.weight"])
    assert torch.equal(conv["recovery.queries"], sd["x_token"])
    fresh = tiny(strategy="cluster", keep=9, layer=1)
    load_weights(fresh, sd, "motionbert")
    x = clip()
    assert torch.equal(fresh(x), hot(x))
    # a MotionBERT release: {"model_pos": {"module.<key>": ...}, "optimizer": ..., "epoch": ...}
    base = tiny()
    release = {"epoch": 3, "optimizer": {"state": {}}, "model_pos": {f"module.{k}": v for k, v in _official(base).items()}}
    fresh = tiny()
    load_weights(fresh, release, "motionbert")
    assert torch.equal(fresh(x), base(x))
    # strict: a HoT checkpoint does not fit the plain model, and a stray key is named
    with pytest.raises(CheckpointMismatchError, match="unexpected keys"):
        load_weights(tiny(), sd, "motionbert")
    with pytest.raises(CheckpointMismatchError, match="extra"):
        load_weights(tiny(), {**_official(base), "extra": torch.zeros(1)}, "motionbert")


# -------------------------------------------------------------------------------------------- errors
def test_bad_inputs() -> None:
    model = tiny(strategy="cluster", keep=9, layer=1)
    with pytest.raises(ValueError, match="joints"):
        model(clip(j=4))
    with pytest.raises(ValueError, match="channels"):
        model(clip(c=2))
    with pytest.raises(ValueError, match="at most 27"):
        model(clip(f=30))
    with pytest.raises(ValueError, match="shorter"):
        model(clip(f=8))
    with pytest.raises(ValueError, match="keep_index"):
        model(clip(), keep_index=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="keep_index"):
        model(clip(), keep_index=torch.zeros(2, 9))
    with pytest.raises(ValueError, match="noise"):
        model(clip(), noise=torch.rand(2, 20))
    with pytest.raises(ValueError, match="prunes no frames"):
        tiny()(clip(), keep_index=torch.zeros(2, 9, dtype=torch.long))


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="attention"):
        DSTformer(DSTformerCfg(**TINY, prune=FramePruneCfg("attention", keep=9, layer=0)))
    with pytest.raises(ValueError, match="layer"):
        DSTformer(DSTformerCfg(**TINY, prune=FramePruneCfg("cluster", keep=9, layer=3)))
    with pytest.raises(ValueError, match="keep"):
        DSTformer(DSTformerCfg(**TINY, prune=FramePruneCfg("cluster", keep=28, layer=1)))
    with pytest.raises(ValueError, match="divisible"):
        DSTformer(DSTformerCfg(**{**TINY, "heads": 3}))
    with pytest.raises(ValueError, match="unknown"):
        FramePruneCfg("random")
