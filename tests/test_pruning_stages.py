"""Multi-stage (H2OT-style) frame pruning: the stage API, pruning at every named stage on each lifting backbone
(token counts observed with hooks on the blocks), one recovery to all frames, forcing, hand-counted FLOPs, the
trainer and checkpoint round trip, and (slow) training on synthetic motion against the zero-motion baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from posetokens.engine.flops import linear_gflops, true_macs
from posetokens.layers import FramePruneCfg, PruneStage, select_frames
from posetokens.models.mhformer import MHFormer, MHFormerCfg
from posetokens.models.mixste import MixSTE, MixSTECfg
from posetokens.models.motionagformer import MotionAGFormer, MotionAGFormerCfg
from posetokens.models.motionbert import DSTformer, DSTformerCfg
from posetokens.registry import create_model

REPO = Path(__file__).resolve().parents[1]
F, J = 27, 5


def _x(c: int = 2, b: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, F, J, c, generator=torch.Generator().manual_seed(seed))


def _mixste(prune: FramePruneCfg) -> MixSTE:
    torch.manual_seed(0)
    cfg = MixSTECfg(num_frames=F, num_joints=J, dim=16, depth=5, heads=2, mlp_hidden=32, prune=prune)
    return MixSTE(cfg).eval()


def _motionbert(prune: FramePruneCfg) -> DSTformer:
    torch.manual_seed(0)
    cfg = DSTformerCfg(num_frames=F, num_joints=J, dim=16, depth=5, heads=2, mlp_hidden=32, dim_rep=24, prune=prune)
    return DSTformer(cfg).eval()


def _mhformer(prune: FramePruneCfg) -> MHFormer:
    torch.manual_seed(0)
    cfg = MHFormerCfg(num_frames=F, num_joints=J, channel=16, d_hid=32, mhg_depth=1, heads=2, shr_depth=3,
                      embed_norm=False, prune=prune)
    return MHFormer(cfg).eval()


def _tokens_per_block(model: nn.Module, x: torch.Tensor, **kw: object) -> tuple[list[int], object]:
    """Frames each temporal block of ``model`` sees in one pass, read from its input with forward pre-hooks."""
    b = x.shape[0]
    if isinstance(model, MixSTE):  # spatial block input (B*T, J, C)
        blocks, frames = list(model.spatial_blocks), lambda t: t.shape[0] // b
    elif isinstance(model, DSTformer):  # level input (B, T, J, C)
        blocks, frames = list(model.blocks_st), lambda t: t.shape[1]
    else:  # SHR blocks, then the CHI block: (B, T, 3C)
        blocks, frames = [*model.shr_blocks, *model.chi_blocks], lambda t: t.shape[1]
    seen: list[int] = []
    handles = [blk.register_forward_pre_hook(lambda m, a: seen.append(frames(a[0]))) for blk in blocks]
    try:
        with torch.no_grad():
            res = model.forward_trace(x, **kw)
    finally:
        for h in handles:
            h.remove()
    return seen, res


# ---------------------------------------------------------------------------------------------- config
def test_stage_api_round_trips_and_validates() -> None:
    cfg = FramePruneCfg.from_stages([(1, 13, "cluster"), {"layer": 2, "keep": 7, "strategy": "uniform"},
                                     PruneStage(4, 3, "motion")], recovery="linear")
    assert (cfg.strategy, cfg.keep, cfg.layer) == ("cluster", 13, 1)  # the first stage is the single-stage fields
    assert cfg.stages == (PruneStage(1, 13, "cluster"), PruneStage(2, 7, "uniform"), PruneStage(4, 3, "motion"))
    assert cfg.final_keep == 3 and cfg.recovery == "linear"
    assert FramePruneCfg(**dataclasses.asdict(cfg)) == cfg  # a checkpoint's plain dict rebuilds it
    single = FramePruneCfg(strategy="cluster", keep=81, layer=3)
    assert single.stages == (PruneStage(3, 81, "cluster"),) and single.final_keep == 81
    assert FramePruneCfg().stages == ()
    with pytest.raises(ValueError, match="stage layers must increase"):
        FramePruneCfg.from_stages([(2, 9), (2, 5)])
    with pytest.raises(ValueError, match="kept frames must decrease"):
        FramePruneCfg.from_stages([(1, 9), (2, 9)])
    with pytest.raises(ValueError, match="no first stage"):
        FramePruneCfg(extra_stages=((2, 5),))
    with pytest.raises(ValueError, match=r"extra_stages\[0\]: expected a stage"):
        FramePruneCfg(strategy="cluster", keep=9, layer=1, extra_stages=(5,))
    with pytest.raises(ValueError, match="PruneStage.strategy: unknown 'random'"):
        FramePruneCfg.from_stages([(1, 9), (2, 5, "random")])
    with pytest.raises(ValueError, match="MixSTECfg.prune.extra_stages: layer 5 out of range"):
        MixSTECfg(num_frames=F, depth=5, prune=FramePruneCfg.from_stages([(1, 9), (5, 3)]))


def test_zoo_overrides_take_stages_as_mappings() -> None:
    model = create_model("hot_mixste_h36m_243", num_frames=F, num_joints=J, dim=16, depth=4, heads=2, mlp_hidden=32,
                         prune={"keep": 9, "layer": 1, "extra_stages": [{"layer": 3, "keep": 3}]})
    assert model.cfg.prune.stages == (PruneStage(1, 9, "cluster"), PruneStage(3, 3, "cluster"))
    assert model.forward_frames(_x()).index.shape == (2, 3)


# ------------------------------------------------------------------------------- every stage it names
SCHEDULE = [(1, 13, "cluster"), (2, 7, "attention"), (4, 3, "uniform")]  # three strategies, three stages
SEEN = [F, 13, 7, 7, 3]  # frames entering blocks 0..4 under SCHEDULE, by hand


@pytest.mark.parametrize("recovery", ["attention", "linear", "nearest"])
@pytest.mark.parametrize("build, channels", [(_mixste, 2), (_motionbert, 3)], ids=["mixste", "motionbert"])
def test_seq2seq_prunes_at_every_stage_and_recovers_all_frames(build, channels: int, recovery: str) -> None:
    model = build(FramePruneCfg.from_stages(SCHEDULE, recovery=recovery))
    x = _x(channels)
    seen, res = _tokens_per_block(model, x)
    assert seen == SEEN
    assert res.out.shape == (2, F, J, 3) and bool(res.out.isfinite().all())  # one recovery back to all F frames
    assert [tuple(i.shape) for i in res.stage_index] == [(2, 13), (2, 7), (2, 3)]
    for outer, inner in zip(res.stage_index, res.stage_index[1:]):  # each stage keeps a subset, in time order
        assert bool((inner.diff(dim=1) > 0).all())
        assert bool((inner[:, :, None] == outer[:, None, :]).any(-1).all())
    assert torch.equal(res.index, res.stage_index[-1])
    # forcing every stage, or only the final frames, reproduces the pass (the earlier stages rank the rest)
    torch.testing.assert_close(model(x, keep_index=res.stage_index), res.out)  # the recording pass computes attention explicitly
    forced = model.forward_trace(x, keep_index=res.index)
    assert all(torch.equal(a, b) for a, b in zip(forced.stage_index, res.stage_index))
    torch.testing.assert_close(forced.out, res.out)  # the recording pass computes attention explicitly


def test_later_stage_uniform_keeps_evenly_spaced_present_frames() -> None:
    model = _mixste(FramePruneCfg.from_stages([(1, 14, "uniform"), (3, 4, "uniform")], recovery="linear"))
    res = model.forward_trace(_x())
    # 14 of 27 evenly: frames 0, 2, ..., 26; then 4 of those 14 at positions linspace(0, 13, 4) = 0, 4.33, 8.67, 13,
    # rounded 0, 4, 9, 13: frames 0, 8, 18, 26
    assert torch.equal(res.stage_index[0], torch.arange(0, 27, 2).expand(2, -1))
    assert res.stage_index[1].tolist() == [[0, 8, 18, 26]] * 2


@pytest.mark.parametrize("build", [_mixste, _mhformer], ids=["mixste", "mhformer"])
def test_seq2frame_keeps_the_centre_at_every_stage(build) -> None:
    schedule = [(1, 13, "cluster"), (2, 7, "motion"), (3, 3, "cluster")]
    model = build(FramePruneCfg.from_stages(schedule, recovery="none", pos_embed=False))
    seen, res = _tokens_per_block(model, _x(seed=3))
    assert seen[:4] == [F, 13, 7, 3]  # MHFormer: SHR 0..2, then CHI; MixSTE: temporal blocks 0..3
    assert res.out.shape == (2, 3, J, 3)
    for idx in res.stage_index:
        assert bool((idx == model.center).any(dim=1).all())
    torch.testing.assert_close(model(_x(seed=3), keep_index=res.index), res.out)  # the recording pass computes attention explicitly


def _motionagformer(prune: FramePruneCfg) -> MotionAGFormer:
    torch.manual_seed(0)
    cfg = MotionAGFormerCfg(num_frames=F, dim=16, depth=3, heads=2, mlp_hidden=32, dim_rep=24, prune=prune)  # 17 joints
    return MotionAGFormer(cfg).eval()


# each lifter with its input channels and a recovery it takes (MHFormer is seq2frame: none)
EACH_LIFTER = pytest.mark.parametrize("build, channels, recovery",
                                      [(_mixste, 2, "attention"), (_motionbert, 3, "attention"),
                                       (_mhformer, 2, "none"), (_motionagformer, 3, "attention")],
                                      ids=["mixste", "motionbert", "mhformer", "motionagformer"])


@EACH_LIFTER
def test_forced_frames_outside_the_clip_are_refused_in_one_line(build, channels: int, recovery: str) -> None:
    # frame 27 of a 27-frame clip (or -1) would index past the clip; each lifter names the range instead
    model = build(FramePruneCfg.from_stages([(1, 13, "uniform"), (2, 7, "uniform")], recovery=recovery))
    x = torch.randn(2, F, model.cfg.num_joints, channels, generator=torch.Generator().manual_seed(0))
    good = model.forward_frames(x).index  # (2, 7) final kept frames
    final = good.clone()
    final[1, -1] = F
    with pytest.raises(ValueError, match=r"keep_index holds a frame outside \[0, 27\)"):
        model(x, keep_index=final)
    first = torch.arange(0, 26, 2).expand(2, -1).clone()  # (2, 13) for the first stage
    first[0, 0] = -1
    with pytest.raises(ValueError, match=r"keep_index holds a frame outside \[0, 27\)"):
        model(x, keep_index=(first, good))
    with pytest.raises(ValueError, match=r"keep_index must be integer, of shape \(2, 7\)"):
        model(x, keep_index=good.float())
    # stage 1 forcing frame 1, which stage 0 (the even frames) dropped: refused, not a different selection
    odd = torch.arange(1, 15, 2).expand(2, -1)
    with pytest.raises(ValueError, match="keep_index stage 1 holds a frame that stage 0 did not keep"):
        model(x, keep_index=(torch.arange(0, 26, 2).expand(2, -1), odd))
    torch.testing.assert_close(model(x, keep_index=good), model(x))  # in range: the pass it forced


@EACH_LIFTER
def test_forced_frames_follow_the_input_to_its_device(build, channels: int, recovery: str) -> None:
    # a model and clip on another device (meta: shapes only) with the forced frames left on the CPU, as a user
    # passes them: moved to the input's device, per stage too
    model = build(FramePruneCfg.from_stages([(1, 13, "uniform"), (2, 7, "uniform")], recovery=recovery))
    x = torch.randn(2, F, model.cfg.num_joints, channels)
    final = model.forward_frames(x).index
    # stage 0: the final frames and the earliest others, 13 in all (each stage keeps a subset of the previous)
    first = torch.tensor([sorted(r + [f for f in range(F) if f not in r][: 13 - len(r)]) for r in final.tolist()])
    stages = (first, final)
    model = model.to("meta")
    for forced in (final, stages):
        out, index = model.forward_frames(x.to("meta"), keep_index=forced)
        assert out.device.type == "meta" and index.device.type == "meta"


def test_later_centre_is_a_position_per_row() -> None:
    # at a later stage the centre's position among the present frames differs per sample: excluded from the
    # ranking and appended, per row (row 0: centre 4, top two of the rest 0 and 1; row 1: centre 1, then 5, 4)
    score = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    assert select_frames(score, 3, torch.tensor([4, 1])).tolist() == [[0, 1, 4], [1, 4, 5]]


# ---------------------------------------------------------------------------------------- FLOPs by hand
def test_multi_stage_flops_by_hand() -> None:
    """MixSTE width C, MLP H, J joints, F frames, stages keep 5 then 3 before steps 1 and 3, recovery attention.

    Per step with T frames, Linear MACs: spatial and temporal blocks each (4 C^2 + 2 C H) per token, T J tokens.
    Attention matmuls (q k^T and attn v): spatial 2 T J^2 C, temporal 2 J T^2 C. Embedding F J Cin C, head
    F J C 3. Recovery over S = J sequences of T = 3 kept tokens: queries once F C^2, keys and values 2 S T C^2,
    matmuls 2 S F T C, output S F C^2; HoT's convention counts the query projection per sequence (S F C^2)."""
    f, j, cin, c, h = 9, 3, 2, 8, 16
    prune = FramePruneCfg.from_stages([(1, 5, "uniform"), (3, 3, "uniform")], recovery="attention")
    model = MixSTE(MixSTECfg(num_frames=f, num_joints=j, in_channels=cin, dim=c, depth=4, heads=2, mlp_hidden=h,
                             prune=prune)).eval()
    frames = [9, 5, 5, 3]
    blocks_linear = sum(2 * t * j * (4 * c * c + 2 * c * h) for t in frames)
    attn = sum(2 * t * j * j * c + 2 * j * t * t * c for t in frames)
    s, t = j, 3
    edges = f * j * cin * c + f * j * c * 3
    tra_true = f * c * c + 2 * s * t * c * c + 2 * s * f * t * c + s * f * c * c
    tra_hot = s * f * c * c + 2 * s * t * c * c + s * f * c * c
    x = torch.randn(1, f, j, cin)
    assert true_macs(model, (x,)) == edges + blocks_linear + attn + tra_true
    assert linear_gflops(model, (x,)) * 1e9 == pytest.approx(2 * (edges + blocks_linear + tra_hot))


# ------------------------------------------------------------------------------------ trainer round trip
class _Cluster(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from posetokens.layers import dpc_knn_score

        return dpc_knn_score(x)


def test_true_macs_count_the_clusters_pairwise_distances() -> None:
    """HoT's deterministic DPC-kNN, by hand: a Gram matrix from its four row blocks against the columns from
    their own on (N = 10: blocks of 3, 3, 3 and 1 rows against 10, 7, 4 and 1 columns, 64 pairs of tokens, one
    multiply-accumulate per feature), and one exact key per token over evenly spaced 32-bit integers of its
    float32 values (every 4th of 200 channels: 50; all of 6); the rest of finding identical tokens is a sort."""
    b, n = 2, 10
    pairs = 3 * 10 + 3 * 7 + 3 * 4 + 1 * 1
    assert true_macs(_Cluster(), (torch.randn(b, n, 200),)) == b * pairs * 200 + b * n * 50
    assert true_macs(_Cluster(), (torch.randn(b, n, 6),)) == b * pairs * 6 + b * n * 6


def test_pairwise_distances_give_identical_tokens_identical_rows() -> None:
    """The cluster's float64 GEMM distances against torch.cdist's exact path (the squared differences summed):
    equal to 1e-9, and, as exact distances, identical rows for identical tokens with zero between them. At
    (4, 243, 256) the GEMM alone rounds one duplicate pair's rows differently on this CPU (tile position)."""
    from posetokens.layers.pruning import _identical_first, pairwise_distances

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 243, 256, generator=g)
    x[:, 1::2] = x[:, 0:242:2]  # frames 2i and 2i+1 identical
    d = pairwise_distances(x)
    xd = x.double()
    exact = torch.cdist(xd, xd, compute_mode="donot_use_mm_for_euclid_dist")
    torch.testing.assert_close(d, exact, rtol=0, atol=1e-9)
    assert torch.equal(d[:, 0:242:2], d[:, 1:243:2]) and torch.equal(d, d.mT)
    assert bool((d[:, range(0, 242, 2), range(1, 243, 2)] == 0).all())
    # the keys: -0.0 equals 0.0; one ulp apart is another token
    y = torch.zeros(1, 4, 3)
    y[0, 1, 0] = -0.0
    y[0, 2, 1] = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0))
    y[0, 3] = y[0, 2]
    assert _identical_first(y).tolist() == _identical_first(y.double()).tolist() == [[0, 0, 2, 2]]
    # across a batch: each item's own first copy; a token equal to one of another item is not its copy
    z = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]], [[3.0, 4.0], [5.0, 6.0], [3.0, 4.0]]])
    assert _identical_first(z).tolist() == [[0, 1, 0], [0, 1, 0]]
    assert _identical_first(z.mT.contiguous().mT).tolist() == [[0, 1, 0], [0, 1, 0]]  # any layout


def test_pairwise_distances_rows_do_not_depend_on_the_gemm_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same property on any CPU: a GEMM that rounds each entry by its position (as a tiled float64 GEMM can;
    on an Intel Xeon of 2026-12-04 the one above rounded duplicates alike, so only this test shows the rows
    follow each token's first copy there). Each product is moved by a few float64 ulps that depend on its row and
    column; identical tokens must still get identical rows and zero distance between them."""
    from posetokens.layers.pruning import pairwise_distances

    real = torch.Tensor.__matmul__

    def tiled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = real(a, b)
        if out.shape[-1] == 1:  # only the Gram matrix's blocks, not the keys' exact GEMV
            return out
        i = torch.arange(out.shape[-2], dtype=out.dtype)[:, None]
        j = torch.arange(out.shape[-1], dtype=out.dtype)[None, :]
        return out * (1 + 2.0**-50 * ((7 * i + 13 * j) % 5))

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 81, 64, generator=g)
    x[:, 1::2] = x[:, 0:80:2]  # frames 2i and 2i+1 identical
    monkeypatch.setattr(torch.Tensor, "__matmul__", tiled)
    d = pairwise_distances(x)
    monkeypatch.undo()
    assert torch.equal(d[:, 0:80:2], d[:, 1:81:2]) and torch.equal(d, d.mT)
    assert bool((d[:, range(0, 80, 2), range(1, 81, 2)] == 0).all())


def test_identical_tokens_are_found_exactly_when_two_different_tokens_share_a_key() -> None:
    """The keys group candidates; the bits decide. Token 1 differs from token 0 in two channels, built by hand so
    that both get the same key (bits + w[1] in channel 0, - w[0] in channel 1); token 2 is token 0 again. Token 1
    must stay its own first copy, and token 2 must still find token 0."""
    from posetokens.layers.pruning import _identical_first, _key_weights, pairwise_distances

    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 3, 8, generator=g) + 4.0  # normal floats far from 0: a few units of their bits stay finite
    w = _key_weights(8).long().squeeze(1)
    bits = x.view(torch.int32)
    bits[0, 1] = bits[0, 0]
    bits[0, 1, 0] += w[1]
    bits[0, 1, 1] -= w[0]
    bits[0, 2] = bits[0, 0]
    keys = (x.view(torch.int32)[0].double() @ _key_weights(8)).squeeze(1)
    assert keys[0] == keys[1] and not torch.equal(x[0, 0], x[0, 1])  # a collision, as built
    assert _identical_first(x).tolist() == [[0, 1, 0]]
    d = pairwise_distances(x)
    assert d[0, 0, 1] > 0 and d[0, 0, 2] == 0 and torch.equal(d[0, 0], d[0, 2])
    with pytest.raises(ValueError, match="2\\*\\*21"):  # wider keys could round
        _key_weights(2**21 + 1)
    for m in (1, 2, 3, 4, 5, 1024, 1025, 1536, 2**16, 2**21):  # every partial sum of the key is an exact integer
        w = _key_weights(m)
        assert w.shape == (m, 1) and bool((w >= 1).all()) and m * 2**31 * float(w.max()) <= 2**52, m


def test_pairwise_distances_edge_inputs() -> None:
    """Near-duplicates, other dtypes and layouts, tokens differing only in channels the keys do not read, and no
    autograd."""
    from posetokens.layers import dpc_knn_score
    from posetokens.layers.pruning import _identical_first, pairwise_distances

    g = torch.Generator().manual_seed(3)
    x = (torch.randn(1, 1, 256, generator=g) * 10).repeat(1, 20, 1)
    for i in range(1, 20):  # each frame one float32 ulp above the one before, in 3 channels
        x[0, i, :3] = torch.nextafter(x[0, i - 1, :3], torch.full((3,), float("inf")))
    d = pairwise_distances(x)
    assert bool(torch.isfinite(d).all()) and bool((d >= 0).all())  # GEMM rounding goes below 0 here: clamped
    assert _identical_first(x) is None  # near is not identical
    # float64 tokens closer than float32 precision are still distinct; a float64 transposed view works
    y = torch.randn(1, 4, 8, generator=g, dtype=torch.float64)
    y[0, 1] = y[0, 0] + 1e-12
    assert _identical_first(y) is None
    yt = y.mT.contiguous().mT  # same values, last dim not stride 1
    assert torch.equal(pairwise_distances(yt), pairwise_distances(y))
    for dtype in (torch.float32, torch.float64):  # the layout changes no rounding at sizes over one Gram block either
        v = torch.randn(2, 9, 70, generator=g, dtype=dtype)
        assert torch.equal(pairwise_distances(v.mT.contiguous().mT), pairwise_distances(v)), dtype
    # no tokens, or tokens without channels: all distances 0
    assert torch.equal(pairwise_distances(torch.randn(2, 3, 0)), torch.zeros(2, 3, 3, dtype=torch.float64))
    assert pairwise_distances(torch.randn(2, 0, 4)).shape == (2, 0, 0)
    assert torch.equal(dpc_knn_score(yt.bfloat16()), dpc_knn_score(y.bfloat16().contiguous()))
    # wide tokens: keys over 64 of 65536 channels, checked over all; one ulp away in an unkeyed channel stays apart
    w = torch.randn(1, 4, 2**16, generator=g)
    w[0, 2], w[0, 3] = w[0, 0], w[0, 0]
    w[0, 3, -1] = torch.nextafter(w[0, 3, -1], torch.tensor(float("inf")))
    assert _identical_first(w).tolist() == [[0, 1, 0, 3]]
    exact = torch.cdist(w.double(), w.double(), compute_mode="donot_use_mm_for_euclid_dist")
    d = pairwise_distances(w)
    sq = w.double().square().sum(-1).max()  # a dot product of C terms rounds by at most C * eps * |a| |b|
    torch.testing.assert_close(d.square(), exact.square(), rtol=0, atol=w.shape[-1] * 2.0**-52 * float(sq))
    assert torch.equal(d[0, 0], d[0, 2]) and d[0, 0, 2] == 0 and torch.equal(d, d.mT)
    # a score for a discrete choice: no graph, so no NaN gradient from the zero self-distances
    z = torch.randn(2, 9, 16, generator=g, requires_grad=True)
    assert not dpc_knn_score(z).requires_grad


def _dpc_reference(x: torch.Tensor, k: int) -> torch.Tensor:
    """The deterministic DPC-kNN score as the HoT spec states it, written out on exact distances (the squared
    differences summed in float64, no GEMM), with density ties to the earlier frame, token by token."""
    xd = x.double()
    dist = torch.cdist(xd, xd, compute_mode="donot_use_mm_for_euclid_dist") / x.shape[-1] ** 0.5
    b, n = x.shape[:2]
    density = (-(dist.sort(dim=-1).values[..., :k] ** 2).mean(dim=-1)).exp()
    score = torch.empty(b, n, dtype=torch.float64)
    for s in range(b):
        for i in range(n):
            rho = density[s]
            denser = [j for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
            delta = dist[s, i, denser].min() if denser else dist[s].max()
            score[s, i] = delta * density[s, i]
    return score


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_cluster_score_follows_the_spec_on_exact_distances(k: int) -> None:
    """``dpc_knn_score`` (float64 GEMM distances, its k nearest and denser tokens found on squared distances)
    against the spec's steps on exact distances: equal to rounding, with the same frames kept; duplicated
    frames tie exactly and the earlier copy counts as denser. A NaN token makes every score of its sample NaN,
    and no other sample's."""
    from posetokens.layers import dpc_knn_score, select_frames

    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 40, 24, generator=g).cumsum(1)
    x[:, 20:24] = x[:, 10:14]  # four frames repeated ten frames later
    x[1, 30:33] = x[1, 29]  # a frozen stretch: three copies
    got, want = dpc_knn_score(x, k), _dpc_reference(x, k)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    assert torch.equal(select_frames(got, 13), select_frames(want, 13))
    y = x.clone()
    y[2, 5, 3] = float("nan")
    nan = dpc_knn_score(y, k)
    assert bool(nan[2].isnan().all()) and torch.equal(nan[:2], dpc_knn_score(x[:2], k))


def _dpc_on_distances(x: torch.Tensor, k: int) -> torch.Tensor:
    """The deterministic score's steps taken the direct way, on the (B, N, N) distances of
    ``pairwise_distances``: the k nearest by ``topk``, the denser tokens, the nearest denser's distance."""
    from posetokens.layers.pruning import pairwise_distances

    dist = pairwise_distances(x) / x.shape[-1] ** 0.5
    density = (-(dist.topk(k, dim=-1, largest=False).values ** 2).mean(dim=-1)).exp()
    idx = torch.arange(x.shape[1])
    denser = (density[:, None, :] > density[:, :, None]) | (
        (density[:, None, :] == density[:, :, None]) & (idx[None, :] < idx[:, None]))
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    return torch.where(denser, dist, dist_max).min(dim=-1).values * density


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_cluster_score_is_bitwise_its_steps_on_the_distances(k: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dpc_knn_score`` finds its nearest and denser tokens on squared distances and takes the clamp, root and
    scale afterwards: bitwise the score of the direct steps on ``pairwise_distances``, also where rounding puts
    squared distances below 0 and where a token's squared norm overflows (its sample's scores all NaN, as the
    direct steps give). The rounding below 0 is made certain on any CPU by a GEMM that rounds every product off
    the diagonal up by a few ulps: tokens one float32 ulp apart then get squared distances below 0, and finite
    scores."""
    from posetokens.layers import dpc_knn_score

    g = torch.Generator().manual_seed(11)
    walk = torch.randn(2, 30, 16, generator=g).cumsum(1)
    walk[:, 12:15] = walk[:, 3:6]
    huge = torch.randn(2, 9, 4, generator=g, dtype=torch.float64)
    huge[0, 4, 1] = 1e200
    for x in (walk, huge):
        got, want = dpc_knn_score(x, k), _dpc_on_distances(x, k)
        assert torch.equal(got.nan_to_num(-1.0), want.nan_to_num(-1.0)), (tuple(x.shape), k)
    assert bool(dpc_knn_score(huge, k)[0].isnan().all()) and bool(dpc_knn_score(huge, k)[1].isfinite().all())

    from posetokens.layers.pruning import _squared_distances

    real = torch.Tensor.__matmul__

    def rounds_up(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = real(a, b)
        if out.shape[-1] == 1:  # the keys' exact GEMV
            return out
        i, j = torch.arange(out.shape[-2])[:, None], torch.arange(out.shape[-1])[None, :]
        return torch.where(i == j, out, out * (1 + 2.0**-50))  # a Gram block starts on the diagonal: not there

    near = (torch.randn(1, 1, 64, generator=g) * 10).repeat(2, 20, 1)
    for i in range(1, 20):  # each frame one float32 ulp above the one before, in 3 channels
        near[:, i, :3] = torch.nextafter(near[:, i - 1, :3], torch.full((3,), float("inf")))
    monkeypatch.setattr(torch.Tensor, "__matmul__", rounds_up)
    assert bool((_squared_distances(near) < 0).any())
    got, want = dpc_knn_score(near, k), _dpc_on_distances(near, k)
    monkeypatch.undo()
    assert torch.equal(got, want) and bool(got.isfinite().all())


def test_nearest_squared_matches_topk_of_the_clamped_rows() -> None:
    """The k smallest clamped entries of rows with an exactly zero diagonal and rounding below 0 off it (a tied
    pair, and a near pair that the GEMM put at -1e-15), in the order ``topk`` gives them."""
    from posetokens.layers.pruning import _nearest_squared

    g = torch.Generator().manual_seed(5)
    d2 = torch.rand(2, 6, 6, generator=g, dtype=torch.float64)
    d2 = d2 + d2.mT
    d2[:, 0, 3] = d2[:, 3, 0] = -1e-15
    d2[:, 1, 2] = d2[:, 2, 1] = 0.0
    d2.diagonal(dim1=1, dim2=2).zero_()
    for k in range(1, 7):
        want = d2.clamp_min(0).topk(k, dim=-1, largest=False).values
        got = _nearest_squared(d2.clone(), k)
        assert torch.equal(got, want), k
    before = d2.clone()
    d2[1, 2, 2] = before[1, 2, 2] = float("nan")  # a token whose squared norm overflowed
    _nearest_squared(d2, 2)
    assert torch.equal(d2.nan_to_num(-1.0), before.nan_to_num(-1.0))  # its diagonal is restored as it was


class _Cdist(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")


def test_true_macs_count_cdist() -> None:
    """torch.cdist off its matmul path (the cluster under the official numerics at small N), which the FLOP
    counter does not see by itself: one multiply-accumulate per pair and feature, B * N * N * C by hand."""
    b, n, c = 2, 10, 6
    assert true_macs(_Cdist(), (torch.randn(b, n, c),)) == b * n * n * c


def test_multi_stage_trains_resumes_and_tests_through_the_trainer(tmp_path: Path) -> None:
    from posetokens.checkpoint import load_trained
    from posetokens.data.synthetic_motion import generate_dataset
    from posetokens.engine.config import load_config
    from posetokens.engine.trainer import test as run_test
    from posetokens.engine.trainer import train

    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1", "S9"), seed=0, frames=40, sequences_per_action=1)
    overrides = ("{num_frames: 9, dim: 16, depth: 3, heads: 2, mlp_hidden: 32, prune: {keep: 5, layer: 1, "
                 "extra_stages: [{layer: 2, keep: 3, strategy: uniform}]}}")
    common = [f"model.overrides={overrides}", "data.train_subjects=[S1]", "data.test_subjects=[S9]",
              "data.batch_size=8", "threads=1", "eval_interval=1", "schedule.epochs=1",
              f"data.keypoints_3d={data / 'data_3d_h36m.npz'}", f"data.keypoints_2d={data / 'data_2d_h36m_gt.npz'}",
              f"data.cameras={data / 'cameras.json'}"]
    cfg_path = REPO / "configs" / "hot_mixste_h36m_243.yaml"
    metrics = train(load_config(cfg_path, [*common, f"work_dir={tmp_path / 'run'}"]))
    model = load_trained(str(tmp_path / "run" / "final.pth")).model
    assert model.cfg.prune.stages == (PruneStage(1, 5, "cluster"), PruneStage(2, 3, "uniform"))
    again = run_test(load_config(cfg_path, common), str(tmp_path / "run" / "final.pth"))
    assert again["MPJPE"] == pytest.approx(metrics["MPJPE"], rel=1e-6)


@pytest.mark.slow
def test_multi_stage_hot_mixste_on_synthetic_motion_beats_the_zero_motion_baseline(tmp_path: Path) -> None:
    """The HoT-MixSTE synthetic recipe with a three-stage schedule (27 -> 13 -> 9 -> 5 frames before steps 1, 2, 3)."""
    from posetokens.data.synthetic_motion import generate_dataset
    from posetokens.engine.config import load_config
    from posetokens.engine.lifting import mean_pose_baseline
    from posetokens.engine.trainer import train

    data = tmp_path / "motion"
    generate_dataset(data, subjects=("S1", "S5", "S6", "S7", "S8", "S9", "S11"), seed=0)
    overrides = ("{num_frames: 27, dim: 64, depth: 4, heads: 4, mlp_hidden: 128, prune: {keep: 13, layer: 1, "
                 "extra_stages: [{layer: 2, keep: 9}, {layer: 3, keep: 5}]}}")
    cfg = load_config(REPO / "configs" / "hot_mixste_synthetic_27.yaml",
                      [f"model.overrides={overrides}", f"data.keypoints_3d={data / 'data_3d_h36m.npz'}",
                       f"data.keypoints_2d={data / 'data_2d_h36m_gt.npz'}", f"data.cameras={data / 'cameras.json'}",
                       f"work_dir={tmp_path / 'run'}", "threads=1"])
    assert cfg.model.overrides["prune"]["extra_stages"][1] == {"layer": 3, "keep": 5}
    metrics = train(cfg)
    baseline = mean_pose_baseline(cfg.data)
    assert metrics["MPJPE"] < 0.5 * baseline["MPJPE"], (metrics, baseline)


# ------------------------------------------------------------------ hand-computed rules (mutation hunt)
def test_motion_score_by_hand() -> None:
    """The mean joint displacement to the previous frame plus that to the next: steps 0, 1, 1 give 0, 1, 2, 1;
    two joints stepping (3, 4) and (0, 0), then (3, 0) and (0, 3.5), give 2.5, 5.75, 3.25."""
    from posetokens.layers.pruning import motion_score

    x = torch.tensor([0.0, 0.0, 1.0, 2.0])
    poses = torch.stack((x, torch.zeros(4)), -1).reshape(1, 4, 1, 2)
    assert motion_score(poses)[0].tolist() == [0.0, 1.0, 2.0, 1.0]
    steps = torch.tensor([[[3.0, 4.0], [0.0, 0.0]], [[3.0, 0.0], [0.0, 3.5]]])
    poses = torch.cat((torch.zeros(1, 2, 2), steps.cumsum(0)))[None]
    torch.testing.assert_close(motion_score(poses)[0], torch.tensor([2.5, 5.75, 3.25]))


def test_attention_received_by_hand() -> None:
    """The ``attention`` strategy's score: the post-softmax map averaged over heads and queries, one value per key.
    Two heads of size 1 reading q = k = v = x, scale 1, tokens (a, 0) and (0, 0) with a^2 = ln 3: head 0's rows
    are (3/4, 1/4) and (1/2, 1/2), received (5/8, 3/8); head 1 is uniform (1/2, 1/2); the mean (9/16, 7/16).
    Averaging over keys instead would give 1/2 everywhere."""
    from posetokens.layers.attention import Attention

    attn = Attention(2, num_heads=2, scale=1.0)
    with torch.no_grad():
        attn.qkv.weight.copy_(torch.eye(2).repeat(3, 1))
        attn.proj.weight.copy_(torch.eye(2))
        attn.proj.bias.zero_()
    a = torch.tensor(3.0).log().sqrt()
    x = torch.tensor([[[a, 0.0], [0.0, 0.0]]])
    out, received = attn.forward_received(x)
    torch.testing.assert_close(received, torch.tensor([[9 / 16, 7 / 16]]))
    torch.testing.assert_close(out, attn(x))  # the same output as the plain path
    torch.testing.assert_close(out[0, :, 0], torch.stack((0.75 * a, 0.5 * a)))


def test_recovery_by_interpolation_and_uniform_frames_by_hand() -> None:
    """Kept frames 0 and 2 holding 0 and 10: linear gives 0, 5, 10; nearest gives 0, 0, 10 (a tie goes to the
    earlier frame). Uniform 4 of 9 is 0, 3, 5, 8; with centre 4 the last gives way: 0, 3, 4, 5."""
    from posetokens.layers.pruning import choose_frames, recover_by_interpolation

    tokens, idx = torch.tensor([[[0.0], [10.0]]]), torch.tensor([[0, 2]])
    assert recover_by_interpolation(tokens, idx, 3)[0, :, 0].tolist() == [0.0, 5.0, 10.0]
    assert recover_by_interpolation(tokens, idx, 3, "nearest")[0, :, 0].tolist() == [0.0, 0.0, 10.0]
    cfg = FramePruneCfg(strategy="uniform", keep=4, layer=1)
    assert choose_frames(cfg, torch.zeros(1, 9, 4))[0].tolist() == [0, 3, 5, 8]
    assert choose_frames(cfg, torch.zeros(1, 9, 4), center=4)[0].tolist() == [0, 3, 4, 5]


def test_gather_out_of_range_recovery_queries_later_stage_embeddings_and_defaults() -> None:
    """A frame index out of range raises (it read another sample's token); a clip shorter than the model takes
    the first recovery queries; ``pos_embed=False`` gives later stages no embedding; the cluster's k is 2 (spec
    hot.md); counting MACs leaves a model trainable."""
    from posetokens.layers.pruning import TokenRecoveryAttention, gather_tokens, stage_pos_embeds

    with pytest.raises(IndexError):
        gather_tokens(torch.arange(6.0).reshape(2, 3, 1), torch.tensor([[0], [-1]]))
    torch.manual_seed(0)
    six = TokenRecoveryAttention(6, 8, 2)
    nn.init.normal_(six.queries)
    three = TokenRecoveryAttention(3, 8, 2)
    three.load_state_dict({**six.state_dict(), "queries": six.queries[:, :3]})
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(six(x, 3), three(x))
    cfg = FramePruneCfg.from_stages([(1, 6, "cluster"), (2, 3, "cluster")], pos_embed=False)
    assert stage_pos_embeds(cfg, 8) is None and len(stage_pos_embeds(dataclasses.replace(cfg, pos_embed=True), 8)) == 1
    assert FramePruneCfg().k == 2
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    true_macs(model, torch.randn(1, 4))
    assert all(p.requires_grad for p in model.parameters())
