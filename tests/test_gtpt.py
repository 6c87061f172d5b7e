"""GTPT: official parity (COCO, whole-body), zoo FLOPs/params rows, shapes, token counts, bad inputs."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch

from posetokens.cli import main as cli
from posetokens.engine.flops import paper_gflops, paper_params
from posetokens.layers import Attention, group_slot_index, group_topk, softmax_pool, use_fused_attn
from posetokens.registry import create_model, get_family

from conftest import PARITY  # the one way to find shared/ (POSETOKENS_SHARED overrides)
NAMES = [
    "gtpt_t_coco_256x192", "gtpt_s_coco_256x192", "gtpt_b_coco_256x192",
    "gtpt_t_wholebody_256x192", "gtpt_s_wholebody_256x192", "gtpt_b_wholebody_256x192",
]
# shared/specs/gtpt.md §0 "Measured vs paper", thop-style params (M) measured from the official code, printed to
# 3 decimals: tolerance half a unit of the last digit, 0.0005 M
THOP_PARAMS = {"t": 2.371, "s": 5.426, "b": 8.315}
# (paper "GFLOPs" = thop MACs, GTPT (ECCV'24) tables, printed to 1 decimal; thop MACs (G) measured from the official
# code, shared/specs/gtpt.md §0, printed to 3 decimals: tolerance 0.0005 G)
PAPER_GFLOPS = {
    "gtpt_t_coco_256x192": (0.7, 0.663), "gtpt_s_coco_256x192": (1.6, 1.626), "gtpt_b_coco_256x192": (3.6, 3.647),
    "gtpt_t_wholebody_256x192": (0.8, 0.832), "gtpt_s_wholebody_256x192": (2.0, 1.994),
    "gtpt_b_wholebody_256x192": (4.0, 4.015),
}


@pytest.mark.parametrize("fixture", ["gtpt_t_coco_256x192", "gtpt_t_wholebody_256x192"])
def test_parity_cli(fixture: str, capsys: pytest.CaptureFixture) -> None:
    folder = PARITY / fixture
    if not folder.is_dir():
        pytest.fail(f"fixture {folder} not present")
    rc = cli(["parity", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["passed"], report
    assert report["family"] == "gtpt"
    keys = set(torch.load(folder / "outputs.pt", weights_only=True))
    assert keys <= set(report["results"])  # every official output compared


@pytest.mark.parametrize("name", NAMES)
def test_zoo_rows_flops_params_and_shapes(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    fam = get_family("gtpt")
    paper, official = PAPER_GFLOPS[name]
    gflops = paper_gflops(model, fam.paper_counter)
    assert round(gflops, 1) == paper
    assert abs(gflops - official) <= 0.0005, (gflops, official)
    params = paper_params(model, fam.param_counter) / 1e6
    assert abs(params - THOP_PARAMS[name.split("_")[1]]) <= 0.0005, params
    k = model.cfg.num_keypoints
    assert k == (17 if "coco" in name else 133)
    with torch.no_grad():
        x, y = model(torch.randn(1, 3, 256, 192))
    assert x.shape == (1, k, 384) and y.shape == (1, k, 512)
    assert model.input_size == (256, 192) and model.dummy_inputs(3)[0].shape == (3, 3, 256, 192)


def test_token_counts_and_switch() -> None:
    """Spec §2: COCO 256 -> 179 -> 3x76 -> 3x25; whole-body 3 x (dense + image) = 128 then 76 slots."""
    torch.manual_seed(0)
    img = torch.randn(1, 3, 256, 192)
    coco = create_model("gtpt_t_coco_256x192").eval()
    with torch.no_grad():
        out = coco.forward_tokens(img)
    assert [tuple(r.keep_idx.shape[1:]) for r in out.pruned] == [(179,), (3, 76), (3, 25)]
    assert [r.block for r in out.pruned] == [3, 6, 9]
    coco.set_pruning(False)
    with torch.no_grad():
        full = coco.forward_tokens(img)
    assert full.pruned == [] and full.simcc_x.shape == (1, 17, 384)
    wb = create_model("gtpt_t_wholebody_256x192").eval()
    with torch.no_grad():
        out = wb.forward_tokens(img)
    assert out.pruned[1].counts == (60, 86, 122) and out.pruned[2].counts == (8, 34, 70)
    assert bool((out.pruned[1].patch_idx[:, 0, :60] >= 0).all())
    (a, b), (c, d) = wb.forward_train(img)  # train path: pruned and unpruned branches from one stem pass
    assert a.shape == c.shape == (1, 133, 384) and b.shape == d.shape == (1, 133, 512)


def test_pruning_helpers() -> None:
    logits = torch.tensor([[[1.0, 5.0], [40.0, 45.0]]])  # (1, Q=2, N=2); the excluded query's logits are large
    valid = torch.tensor([True, False])[None, :, None]
    assert torch.equal(softmax_pool(logits, 1, valid), logits[:, 0])  # all weight on the one valid query
    score = torch.tensor([[[0.1, 0.9, 0.5], [0.3, 0.2, 0.8]]])
    idx = group_topk(score, [1, 2])
    assert idx.tolist() == [[[1, 2], [2, 0]]]
    slot = group_slot_index(idx, fixed_start=[0, 4], fixed_count=[2, 1], offset=10, num_slots=3)
    assert slot.tolist() == [[[0, 1, 11], [4, 12, 10]]]


def test_grouped_attention_returns_the_scores_block_of_the_logits() -> None:
    """The logits GTPT's group-wise pruning scores (each group's own rows of queries against its own keys) from the
    fused path equal the explicit path's and a float64 q.k from the weights; the outputs agree."""
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=True).eval()
    b, g, s, n = 2, 3, 2, 7
    rows = ((1, 5), (0, 2), (0, 7))  # a different query range per group (whole-body: sparse and dense counts differ)
    x = torch.randn(b, g, n, 32)
    key_valid = torch.tensor([False, True, True, True, True, True])  # (G * s,): one padded shared token
    with torch.no_grad():
        out, lg = attn.forward_grouped(x, s, key_valid, score_rows=rows)
        with use_fused_attn(False):
            out_e, lg_e = attn.forward_grouped(x, s, key_valid, score_rows=rows)
        _, none = attn.forward_grouped(x, s, key_valid)
    assert none == () and [t.shape for t in lg] == [t.shape for t in lg_e] == [(b, 4, z - a, n - s) for a, z in rows]
    qkv = (x.double() @ attn.qkv.weight.detach().double().T + attn.qkv.bias.detach().double()).reshape(b, g, n, 3, 4, 8)
    q, k = qkv[..., 0, :, :], qkv[..., 1, :, :]  # (B, G, L, H, d)
    for i, (a, z) in enumerate(rows):
        ref = torch.einsum("bqhd,bkhd->bhqk", q[:, i, a:z], k[:, i, s:]) * attn.scale
        assert float((lg[i].double() - ref).abs().max()) < 1e-5 and float((lg_e[i].double() - ref).abs().max()) < 1e-5
    assert torch.allclose(out, out_e, atol=1e-5)
    bad_rows = (((0, 8), (0, 1), (0, 1)), ((2, 1), (0, 1), (0, 1)), ((0, 1), (0, 1)), ((0, 1), (3, 3), (0, 1)),
                ((0, 1, 2), (0, 1), (0, 1)), ((0.0, 1.0), (0, 1), (0, 1)), ((0, 1), 2, (0, 1)))  # not pairs of ints
    refusal = r"score_rows .* are not 3 non-empty ranges \(start, stop\) of ints in \[0, 7\]"
    for bad in bad_rows:
        with pytest.raises(ValueError, match=refusal):
            attn.forward_grouped(x, s, key_valid, score_rows=bad)


def test_whole_body_gtpt_fused_and_explicit_attention_agree() -> None:
    """Whole-body GTPT-T's deployed path (fused SDPA, each group's own score rows) and its explicit attention path
    (what FLOP counting runs) keep the same tokens at every step, with the same scores and outputs to float
    rounding."""
    torch.manual_seed(0)
    model = create_model("gtpt_t_wholebody_256x192").eval()
    img = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        fused = model.forward_tokens(img)
        with use_fused_attn(False):
            explicit = model.forward_tokens(img)
    assert [r.block for r in fused.pruned] == [r.block for r in explicit.pruned] and len(fused.pruned) == 3
    for a, b in zip(fused.pruned, explicit.pruned):
        assert torch.equal(a.keep_idx, b.keep_idx) and torch.equal(a.patch_idx, b.patch_idx) and a.counts == b.counts
        finite = torch.isfinite(b.score)
        assert torch.equal(torch.isfinite(a.score), finite)
        assert torch.allclose(a.score[finite], b.score[finite], rtol=1e-5, atol=1e-6)
    assert torch.allclose(fused.simcc_x, explicit.simcc_x, atol=1e-5)
    assert torch.allclose(fused.simcc_y, explicit.simcc_y, atol=1e-5)


def test_grouped_attention_pads_its_keys_to_the_cpu_vector_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch's CPU SDPA runs keys past the last full vector in a scalar loop: the grouped attention appends masked
    zero keys up to the width when the remainder is at least a quarter of it; the output does not change."""
    import torch.nn.functional as F

    from posetokens.layers import attention as A

    cpu = torch.device("cpu")
    for width, cases in ((16, {94: 2, 43: 5, 82: 0, 84: 12, 96: 0, 17: 0}), (8, {94: 2, 82: 6, 43: 5, 81: 0})):
        monkeypatch.setattr(A, "_cpu_vector_width", lambda w=width: w)
        assert {n: A.key_padding(n, cpu) for n in cases} == cases
    assert A.key_padding(94, torch.device("meta")) == 0  # off the CPU: nothing
    monkeypatch.setattr(A, "_cpu_vector_width", lambda: 16)
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kw):
        seen.append((k.shape[-2], attn_mask))
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    torch.manual_seed(0)
    attn = Attention(32, num_heads=4).eval()
    b, g, s, n = 2, 3, 6, 82  # GTPT-T's pruned group blocks: 18 shared + 76 own = 94 keys, one shared one padded
    x = torch.randn(b, g, n, 32)
    key_valid = torch.ones(g * s, dtype=torch.bool)
    key_valid[5] = False
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        out, _ = attn.forward_grouped(x, s, key_valid)
        monkeypatch.setattr(A, "key_padding", lambda num, dev: 0)
        unpadded, _ = attn.forward_grouped(x, s, key_valid)
        with use_fused_attn(False):
            explicit, _ = attn.forward_grouped(x, s, key_valid)
    (keys, mask), (keys0, mask0) = seen
    assert keys == 96 and mask.tolist() == [[True] * 5 + [False] + [True] * 88 + [False] * 2]
    assert keys0 == 94 and mask0.shape == (1, 94)
    assert torch.allclose(out, unpadded, atol=1e-6) and torch.allclose(out, explicit, atol=1e-6)


def test_stem_hands_each_block_its_input_halves_as_dense_tensors() -> None:
    """``shuffle_halves`` is ``concat_shuffle``'s two channel halves, each dense; ``run_blocks`` gives what the
    Sequential gives, bitwise, in both layouts and through GTPT-B's up path (a fuse conv before the blocks)."""
    from posetokens.layers import optimize_for_inference
    from posetokens.models.backbones.shufflenet import ShuffleStemCfg, concat_shuffle, run_blocks, shuffle_halves

    torch.manual_seed(0)
    cl = torch.channels_last
    a, b = torch.randn(2, 8, 5, 4), torch.randn(2, 8, 5, 4)
    for layout in (torch.contiguous_format, cl):
        a_, b_ = a.contiguous(memory_format=layout), b.contiguous(memory_format=layout)
        lo, hi = shuffle_halves(a_, b_)
        ref = concat_shuffle(a_, b_)
        assert torch.equal(lo, ref[:, :8]) and torch.equal(hi, ref[:, 8:])
        assert lo.is_contiguous(memory_format=layout) and hi.is_contiguous(memory_format=layout)
    odd = create_model("gtpt_t_coco_256x192", stem=ShuffleStemCfg(stage_channels=(130,))).eval()  # halves of 65
    with torch.no_grad():
        feat = odd.stem.conv1(torch.randn(1, 3, 32, 24))
        assert torch.equal(run_blocks(odd.stem.down[0], feat), odd.stem.down[0](feat))
    model = create_model("gtpt_b_coco_256x192", image_size=(64, 48)).eval()
    fast = optimize_for_inference(model)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        for stem, inp in ((model.stem, x), (fast.stem, x.contiguous(memory_format=cl))):
            feat = stem.conv1(inp)
            for stage in stem.down:  # the Sequential's own forward chunks and interleaves whole maps
                assert torch.equal(run_blocks(stage, feat), stage(feat))
                feat = stage(feat)
            fuse = next(m for m in stem.up_layers[0].modules() if isinstance(m, torch.nn.Conv2d))
            layout = cl if inp.is_contiguous(memory_format=cl) else torch.contiguous_format
            up = torch.randn(2, fuse.in_channels, 8, 6).contiguous(memory_format=layout)
            assert torch.equal(run_blocks(stem.up_layers[0], up), stem.up_layers[0](up))


def test_channel_pieces_hold_a_map_without_building_it() -> None:
    """``ChannelPieces`` against maps built by hand: the interleave of two maps (channel 2i from the first, 2i + 1
    from the second, written with torch.stack), a channel range of it with each part narrowed to what is still
    read, and a gather that copies runs in stored order and says which channel each is; one whole part is handed
    back without a copy."""
    from posetokens.layers import ChannelPieces

    torch.manual_seed(0)
    cl = torch.channels_last
    a, b, c = (torch.randn(2, 8, 3, 4).contiguous(memory_format=cl) for _ in range(3))
    by_hand = torch.stack((a, b), dim=2).flatten(1, 2)  # channels a0 b0 a1 b1 ... a7 b7
    ab = ChannelPieces.of(a).interleave(b)
    assert ab.channels == 16 and ab.order[:4] == (0, 8, 1, 9) and torch.equal(ab.dense(), by_hand)
    upper = ab.select(8, 16)  # a4 b4 ... a7 b7: a[:, 4:] and b[:, 4:], narrowed
    assert [tuple(p.shape) for p in upper.parts] == [(2, 4, 3, 4)] * 2 and upper.order == (0, 4, 1, 5, 2, 6, 3, 7)
    assert torch.equal(upper.dense(), by_hand[:, 8:])
    three = ab.select(0, 8).interleave(c)  # a0 c0 b0 c1 a1 c2 b1 c3 ...
    assert torch.equal(three.dense(), torch.stack((by_hand[:, :8], c), dim=2).flatten(1, 2))
    got, where = three.gather([1, 2, 5, 6])  # c0, b0, c2, b1: b's run first (stored before c), then c's
    assert where == (2, 6, 1, 5) and torch.equal(got, torch.stack((b[:, 0], b[:, 1], c[:, 0], c[:, 2]), dim=1))
    part, where = three.gather(range(1, 16, 2))  # all of c, in its own order: c itself, not a copy
    assert part is c and where == tuple(range(1, 16, 2))
    whole, rest = three.whole_parts()  # c is read whole; a and b are slices (a[:, :4], b[:, :4])
    assert len(whole) == 1 and whole[0][0] is c and whole[0][1] == tuple(range(1, 16, 2))
    assert rest == tuple(range(0, 16, 2))
    with pytest.raises(ValueError, match="ChannelPieces.interleave: 16 channels against 8"):
        ab.interleave(c)


def test_the_stem_hands_its_last_stage_to_the_patch_embedding_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stem called with ``pieces=True`` returns its map in pieces, equal to its output to float rounding (each
    block's first convolution reads its input channels in stored order): GTPT-T's one stage and GTPT-B's up path,
    the model as built and the inference copy. Each block gathers only its branch's half: GTPT-T's map ends as the
    last block's 64 channels whole plus half of each earlier block's (32, 16) and an eighth of the stride-2 block's
    two maps (8, 8). ``PatchEmbed.forward_pieces`` is the embedding of the map (float64 reference); GTPT's inference
    copy takes it on a channels-last float32 batch only, and keeps the plain path for an NCHW or bfloat16 batch, a
    patch_norm that is not folded, or a stem that does not end in a block."""
    from posetokens.layers import ChannelPieces, PatchEmbed, optimize_for_inference
    from posetokens.models.backbones.shufflenet import InvertedResidual, ShuffleStemCfg

    calls: list[int] = []  # calls of the pieces path, counted
    in_pieces = PatchEmbed.forward_pieces
    monkeypatch.setattr(PatchEmbed, "forward_pieces", lambda self, x: calls.append(1) or in_pieces(self, x))
    torch.manual_seed(0)
    cl = torch.channels_last
    embed = PatchEmbed(16, (2, 3), 5)
    ref = PatchEmbed(16, (2, 3), 5).double()
    ref.load_state_dict(embed.state_dict())
    a, b, c = (torch.randn(2, 8, 6, 9).contiguous(memory_format=cl) for _ in range(3))
    for x in (ChannelPieces.of(a).interleave(b), ChannelPieces.of(a).interleave(b).select(0, 8).interleave(c)):
        with torch.no_grad():
            want, got = ref(x.dense().double()), embed(x)  # (2, 3 * 3, 5)
        assert got.shape == want.shape and float((got.double() - want).abs().max()) < 1e-5
    with pytest.raises(ValueError, match=r"PatchEmbed.forward_pieces: expected a map of 16 channels"):
        embed(ChannelPieces.of(a))
    with pytest.raises(ValueError, match="forward_pieces: needs stride 1 and an even channel count"):
        InvertedResidual(8, 8, 2).forward_pieces(ChannelPieces.of(a))

    for name in ("gtpt_t_coco_256x192", "gtpt_b_coco_256x192"):
        model = create_model(name, image_size=(64, 48)).eval()
        for mod in model.modules():  # weights that tell channels apart, and a patch_norm that is not the identity
            with torch.no_grad():
                if isinstance(mod, torch.nn.Conv2d):
                    mod.weight.normal_(0, (mod.weight[0].numel()) ** -0.5)
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 2.0)
        fast = optimize_for_inference(model)
        x = torch.randn(2, 3, 64, 48)
        with torch.no_grad():
            for stem, inp in ((model.stem, x), (fast.stem, x.contiguous(memory_format=cl))):
                whole, split = stem(inp), stem(inp, pieces=True)
                assert float((split.dense() - whole).abs().max()) <= 1e-5 * float(whole.abs().max())
                if name == "gtpt_t_coco_256x192":
                    assert [p.shape[1] for p in split.parts] == [8, 8, 16, 32, 64]
            want = model.embed(x)
            calls.clear()
            for inp in (x, x.contiguous(memory_format=cl)):  # unfolded patch_norm: the plain path in both layouts
                assert float((model.embed(inp) - want).abs().max()) <= 1e-5 * float(want.abs().max())
            assert float((fast.embed(x) - want).abs().max()) <= 1e-5 * float(want.abs().max())  # NCHW: plain too
            half = copy.deepcopy(fast).to(torch.bfloat16)  # bfloat16: plain
            half.embed(x.to(torch.bfloat16).contiguous(memory_format=cl))
            assert not calls
            got = fast.embed(x.contiguous(memory_format=cl))  # the pieces path
            assert calls == [1] and float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())
    no_blocks = ShuffleStemCfg(stage_channels=(256, 384, 512), up_blocks=0)
    bare = create_model("gtpt_b_coco_256x192", image_size=(64, 48), stem=no_blocks)
    bare_fast = optimize_for_inference(bare.eval())
    assert not bare.stem.ends_in_shuffle and model.stem.ends_in_shuffle
    with pytest.raises(ValueError, match="pieces=True needs a stem that ends in a ShuffleNet block"):
        bare.stem(x, pieces=True)
    with torch.no_grad():  # no block after the last fuse conv: the copy embeds the whole map
        want = bare.embed(x)
        got = bare_fast.embed(x.contiguous(memory_format=cl))
        assert float((got - want).abs().max()) <= 1e-5 * float(want.abs().max())


def test_the_pieces_path_under_a_tracer_with_gradients_odd_halves_and_a_bfloat16_backbone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pieces path beside what else runs a GTPT: ``torch.jit.trace`` of the inference copy takes the plain path
    (its shapes are not ints) and gives the eager output; an inference-mode call leaves nothing that breaks a later
    call with gradients, whose weight gradients equal the plain stem's; a stem whose halves split into odd counts
    (60 channels: 30, then 15) equals its plain output; the bf16-backbone copy takes the pieces path (its hooks cast
    each part back to float32) and stays within bfloat16's rounding of the float32 copy."""
    from posetokens.inference.precision import backbone_in_bfloat16
    from posetokens.layers import PatchEmbed, optimize_for_inference
    from posetokens.models.backbones.shufflenet import ShuffleStemCfg

    calls: list[int] = []
    in_pieces = PatchEmbed.forward_pieces
    monkeypatch.setattr(PatchEmbed, "forward_pieces", lambda self, x: calls.append(1) or in_pieces(self, x))
    torch.manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(2, 3, 64, 48)
    xc = x.contiguous(memory_format=cl)
    model = create_model("gtpt_t_coco_256x192", image_size=(64, 48)).eval()
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            torch.nn.init.normal_(mod.weight, 0, mod.weight[0].numel() ** -0.5)
    fast = optimize_for_inference(model)
    with torch.no_grad():
        eager = fast.embed(xc)
        assert calls == [1]
        with warnings.catch_warnings():  # jit.trace is deprecated; what it sees is what an old exporter sees
            warnings.simplefilter("ignore")
            traced = torch.jit.trace_module(fast, {"embed": (xc,)}, check_trace=False)
        assert float((traced.embed(xc) - eager).abs().max()) <= 1e-5 * float(eager.abs().max())
    assert calls == [1]  # the trace ran the plain path

    with torch.inference_mode():
        model.stem(xc, pieces=True)
    grads = []
    for pieces in (True, False):
        model.zero_grad()
        out = model.stem(xc, pieces=True).dense() if pieces else model.stem(xc)
        (out * torch.linspace(-1, 1, out.shape[1])[:, None, None]).sum().backward()
        grads.append([p.grad.clone() for p in model.stem.parameters()])
    for g_pieces, g_plain in zip(*grads):
        assert float((g_pieces - g_plain).abs().max()) <= 1e-4 * float(g_plain.abs().max()) + 1e-12

    odd = create_model("gtpt_t_coco_256x192", image_size=(64, 48), stem=ShuffleStemCfg(stage_channels=(60,))).eval()
    with torch.no_grad():
        whole, split = odd.stem(xc), odd.stem(xc, pieces=True)
    # the last block's 30 whole; of the earlier ones, what survives halving the first half: 15 of b2, 7 of b1
    # (channels 0-14 of an interleave whose even channels come first: 8 + 7), and 4 of each stride-2 map
    assert [p.shape[1] for p in split.parts] == [4, 4, 7, 15, 30]
    assert float((split.dense() - whole).abs().max()) <= 1e-5 * float(whole.abs().max())

    half = backbone_in_bfloat16(fast)
    calls.clear()
    with torch.no_grad():
        got = half.embed(xc)
    assert calls == [1] and got.dtype == torch.float32
    assert float((got - eager).abs().max()) <= 2e-2 * float(eager.abs().max())


def test_bad_inputs() -> None:
    model = create_model("gtpt_t_coco_256x192").eval()
    with pytest.raises(ValueError, match="expects images of shape"):
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ValueError, match="expects images of shape"):
        model(torch.randn(3, 256, 192))
    with pytest.raises(ValueError, match="keep_rate"):
        create_model("gtpt_t_coco_256x192", keep_rate=(1.0, 0.5))


def test_concat_shuffle_equals_cat_then_shuffle_in_both_layouts() -> None:
    from posetokens.models.backbones.shufflenet import channel_shuffle, concat_shuffle

    torch.manual_seed(0)
    a, b = torch.randn(2, 6, 5, 4), torch.randn(2, 6, 5, 4)
    ref = channel_shuffle(torch.cat((a, b), 1), 2)
    assert torch.equal(concat_shuffle(a, b), ref)
    cl = torch.channels_last
    for dtype in (torch.float32, torch.float64, torch.bfloat16):  # the complex-interleave path, and the copies
        x1, _ = torch.cat((a, b), 1).to(dtype).contiguous(memory_format=cl).chunk(2, 1)  # a stride-1 block's chunk
        out = concat_shuffle(x1, b.to(dtype).contiguous(memory_format=cl))
        assert torch.equal(out, ref.to(dtype)) and out.is_contiguous(memory_format=cl) and out.dtype == dtype
    # inputs of two dtypes: the output takes the second's, as the strided copies give
    x1, _ = torch.cat((a, b), 1).contiguous(memory_format=cl).chunk(2, 1)
    out = concat_shuffle(x1, b.double().contiguous(memory_format=cl))
    assert out.dtype == torch.float64 and torch.equal(out, ref.double())
    # gradients reach both inputs unchanged (each output channel is one input channel)
    ga, gb = a.contiguous(memory_format=cl).requires_grad_(), b.contiguous(memory_format=cl).requires_grad_()
    weight = torch.randn(2, 12, 5, 4)
    (concat_shuffle(ga, gb) * weight).sum().backward()
    assert torch.equal(ga.grad, weight[:, 0::2]) and torch.equal(gb.grad, weight[:, 1::2])


def test_stem_inference_rewrites_keep_outputs() -> None:
    # conv-BN folding (including BN after PixelShuffle in GTPT-B's up path) and channels-last: same stem output
    from posetokens.layers import optimize_for_inference

    torch.manual_seed(0)
    model = create_model("gtpt_b_coco_256x192", image_size=(64, 48)).eval()
    for mod in model.stem.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):  # non-trivial statistics, so a wrong fold shows
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.stem.modules())
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ref, out = model.stem(x), fast.stem(x.contiguous(memory_format=torch.channels_last))
    assert (ref - out).abs().max().item() < 1e-5 * max(1.0, ref.abs().max().item())


def test_gtpt_takes_a_keypoint_set_of_ones_own_from_overrides() -> None:
    """GTPT's keypoint count is its body keypoints in groups: ``num_body`` and ``groups`` given as plain mappings
    (a recipe's YAML, a checkpoint's JSON) build the groups (until 2026-12-06 a traceback in ``validate``), and the
    model predicts that many keypoints; an unknown or a missing group field is one line naming it."""
    from posetokens.models.gtpt import GroupSpec
    from posetokens.registry import create_model, model_config

    groups = [{"name": "head", "sparse": [0]}, {"name": "upper", "sparse": [1, 2, 3, 4]},
              {"name": "lower", "sparse": [5, 6]}]
    cfg = model_config("gtpt_t_coco_256x192", num_body=7, groups=groups)
    assert cfg.groups == (GroupSpec("head", (0,)), GroupSpec("upper", (1, 2, 3, 4)), GroupSpec("lower", (5, 6)))
    assert cfg.num_keypoints == 7
    model = create_model("gtpt_t_coco_256x192", num_body=7, groups=groups, image_size=(64, 48)).eval()
    with torch.no_grad():
        x_logits, y_logits = model(torch.randn(1, 3, 64, 48))
    assert x_logits.shape == (1, 7, 96) and y_logits.shape == (1, 7, 128)  # SimCC bins: 48 and 64 px at split 2
    with pytest.raises(ValueError, match=r"gtpt_t_coco_256x192.groups\[1\]: unknown field 'nam'; known: "):
        model_config("gtpt_t_coco_256x192", num_body=7, groups=[groups[0], {"nam": "x", "sparse": [1]}])
    with pytest.raises(ValueError, match=r"gtpt_t_coco_256x192.groups\[0\]: missing field 'sparse' \(GroupSpec "):
        model_config("gtpt_t_coco_256x192", num_body=7, groups=[{"name": "all"}])
    assert model_config("gtpt_t_coco_256x192", num_body=7, groups=tuple(groups)).groups == cfg.groups  # a tuple too
    import numpy as np

    from_python = [GroupSpec("head", [0]), GroupSpec("upper", np.arange(1, 5)), GroupSpec("lower", (5, 6))]
    assert model_config("gtpt_t_coco_256x192", num_body=7, groups=from_python).groups == cfg.groups  # lists, NumPy
    with pytest.raises(ValueError, match=r"unknown config field 'num_keypoints'; .*GTPT's keypoint count is num_body"):
        model_config("gtpt_t_coco_256x192", num_keypoints=7)
    for bad, said in (({"name": "head", "sparse": []}, r"groups\[0\] \('head'\) has no body keypoints"),
                      ({"name": "head", "sparse": [0], "parts": [3]}, r"groups\[0\].parts: expected none \(num_parts"),
                      ({"name": "head", "sparse": ["0"]}, r"groups\[0\]: GroupSpec 'head'.sparse: expected a list of"),
                      ({"name": "head", "sparse": 0}, r"groups\[0\]: GroupSpec 'head'.sparse: expected a list of"),
                      ({"name": "head", "sparse": [9]}, r"groups\[0\].sparse: expected ids from 0 to num_body - 1")):
        with pytest.raises(ValueError, match=said):  # tracebacks (IndexError, TypeError) or a silent wrong query
            model_config("gtpt_t_coco_256x192", num_body=7, groups=[bad, *groups[1:]])
