"""Swin V2 backbone (PCT's SwinV2TransformerRPE2FC): official outputs, key layout, sizes, bias table.

``fixtures/swin_v2_official_tiny.pt`` was made by running the official Gengzigang/PCT @ 6f356f6
``models/pct_swin_v2.py`` (CPU, float32, eval) with PCT's settings (windows 16-16-16-8, pretrain windows
12-12-12-6, shift in stages 1-2, cosine attention, CPB "norm8_log_bylayer", post-norm) at a reduced width
(embed 8, depths 2-2-2-2, heads 1-2-2-4) and random weights, on a (2, 3, 96, 128) input: the stage-1 map
(24 x 32) is padded to the 32 x 32 window grid and shifted, stages 3-4 are padded single windows. The
state dict is the official one (relative-position-index buffers of stages 1-3 left out to keep it small).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from conftest import PARITY

from posetokens.convert import strict_load
from posetokens.layers import FusedLinear, optimize_for_inference, use_fused_attn
from posetokens.models.backbones.swin_v2 import (
    SWIN_V2_B,
    SWIN_V2_H,
    SWIN_V2_L,
    SwinV2,
    SwinV2Cfg,
    WindowAttention,
    convert_official_swin_v2,
    log_spaced_coords_table,
    relative_position_index,
)

FIXTURE = Path(__file__).parent / "fixtures" / "swin_v2_official_tiny.pt"

PCT_HEAD_README = PARITY / "pct_head" / "README.md"


def _tiny() -> tuple[SwinV2, dict]:
    fx = torch.load(FIXTURE, weights_only=True)
    c = fx["config"]
    cfg = SwinV2Cfg(embed_dim=c["embed_dim"], depths=tuple(c["depths"]), num_heads=tuple(c["num_heads"]),
                    window_size=tuple(c["window_size"]), pretrain_window_size=tuple(c["pretrain_window_size"]),
                    drop_path_rate=0.0)
    return SwinV2(cfg).eval(), fx


@pytest.mark.parametrize("inference_copy", [False, True], ids=["model", "inference-copy"])
@pytest.mark.parametrize("fused", [True, False])
def test_official_outputs(fused: bool, inference_copy: bool) -> None:
    model, fx = _tiny()
    sd = convert_official_swin_v2(fx["state_dict"], model)
    strict_load(model, sd, "official tiny Swin V2")
    net = optimize_for_inference(model) if inference_copy else model
    with torch.no_grad(), use_fused_attn(fused):
        out = net(fx["input"])
    assert out.shape == fx["output"].shape == (2, 64, 3, 4)
    assert float((out - fx["output"]).abs().max()) < 1e-4
    if inference_copy:  # the copy's qkv carries the q/0/v bias inside its fused GEMM; the model keeps its form
        attn = [m for m in net.modules() if isinstance(m, WindowAttention)]
        assert attn and all(a.fused and isinstance(a.qkv, FusedLinear) for a in attn)
        assert all(bool(a.q_bias.any() and a.v_bias.any()) for a in attn)  # the fixture's biases are not zero
        assert not any(isinstance(m, FusedLinear) or getattr(m, "fused", False) for m in model.modules())


def test_buffer_mismatch_is_named() -> None:
    model, fx = _tiny()
    sd = dict(fx["state_dict"])
    sd["layers.3.blocks.0.attn.relative_coords_table"] = sd["layers.3.blocks.0.attn.relative_coords_table"] * 2
    with pytest.raises(ValueError, match="relative_coords_table .* window 8 / pretrain window 6"):
        convert_official_swin_v2(sd, model)


def _readme_keys() -> dict[str, tuple[int, ...]]:
    """Official Swin V2-B state-dict keys and shapes from the PCT head fixture README's table."""
    keys: dict[str, tuple[int, ...]] = {}
    row = re.compile(r"^\| `([^`]+)`(?: \(i = (\d+)\.\.(\d+)\))? \| \[([\d, ]*)\] \| (\w+) \| (\w+) \|$")
    for line in PCT_HEAD_README.read_text().splitlines():
        m = row.match(line)
        if not m or m.group(5) not in ("float32", "int64"):
            continue
        pattern, lo, hi, shape = m.group(1), m.group(2), m.group(3), tuple(int(s) for s in m.group(4).split(","))
        for i in range(int(lo), int(hi) + 1) if lo else [None]:
            keys[pattern.replace("{i}", str(i)) if i is not None else pattern] = shape
    return keys


def test_official_b_layout_and_params() -> None:
    """Every key of the documented official Swin V2-B layout maps onto ours (471 entries, 86,893,816 params)."""
    if not PCT_HEAD_README.is_file():
        pytest.fail("pct_head fixture README not present")
    keys = _readme_keys()
    assert len(keys) == 471
    with torch.device("meta"):
        model = SwinV2(SWIN_V2_B)
    assert sum(p.numel() for p in model.parameters()) == 86_893_816
    official = {k: torch.empty(s) for k, s in keys.items()}
    mapped = convert_official_swin_v2(official)  # buffers dropped, names mapped
    own = model.state_dict()
    assert set(mapped) == set(own)
    assert all(tuple(mapped[k].shape) == tuple(own[k].shape) for k in own)


def test_l_h_params() -> None:
    """Spec §3: Swin V2-L 195.2 M and -H 649.5 M parameters (official code, measured)."""
    with torch.device("meta"):
        n_l = sum(p.numel() for p in SwinV2(SWIN_V2_L).parameters())
        n_h = sum(p.numel() for p in SwinV2(SWIN_V2_H).parameters())
    assert round(n_l / 1e6, 1) == 195.2 and round(n_h / 1e6, 1) == 649.5
    assert SWIN_V2_B.num_features == 1024 and SWIN_V2_L.num_features == 1536 and SWIN_V2_H.num_features == 2048


def test_log_spaced_table_hand_computed() -> None:
    """window 16, pretrain 12: offset 15 -> 15/11*8 = 10.909 -> log2(11.909)/3; offset -1 -> -log2(1+8/11)/3."""
    t = log_spaced_coords_table(16, 12)
    assert t.shape == (1, 31, 31, 2)
    assert math.isclose(float(t[0, 30, 15, 0]), math.log2(1 + 15 / 11 * 8) / 3, rel_tol=1e-6)
    assert math.isclose(float(t[0, 15, 14, 1]), -math.log2(1 + 8 / 11) / 3, rel_tol=1e-6)
    assert float(t[0, 15, 15].abs().sum()) == 0.0
    idx = relative_position_index(2)  # 2x2 window: (dy+1)*3 + (dx+1)
    assert idx.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


def test_shape_and_bad_cfg() -> None:
    torch.manual_seed(0)
    model = SwinV2(SwinV2Cfg(embed_dim=8, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2), drop_path_rate=0.1)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 64, 8, 8)
    with pytest.raises(ValueError, match="num_heads needs 4 entries"):
        SwinV2(SwinV2Cfg(num_heads=(4, 8)))


def test_bf16_gemm_of_the_model_as_built_runs_its_qkv_in_the_mode_too() -> None:
    # gemm_in_bfloat16 switches each block to its inference form first: the qkv that the as-built attention calls
    # functionally (F.linear with the q/0/v bias) becomes a layer, so no GEMM of the backbone stays exact float32
    from posetokens.layers import fuse

    if not fuse.HAS_GEMM_MATH:
        pytest.skip("this PyTorch cannot set oneDNN's math mode")
    applies = fuse.bf16_gemm_applies()
    model, fx = _tiny()
    strict_load(model, convert_official_swin_v2(fx["state_dict"], model), "official tiny Swin V2")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fuse, "bf16_gemm_applies", lambda: True)  # the layers are marked on any CPU
        net = fuse.gemm_in_bfloat16(model)
    attn = [m for m in net.modules() if isinstance(m, WindowAttention)]
    assert attn and all(a.fused and isinstance(a.qkv, FusedLinear) and a.qkv.math == "bf16" for a in attn)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(isinstance(m, FusedLinear) and m.math == "bf16" for m in linears)
    if not applies:
        pytest.skip("the numbers: oneDNN applies no bfloat16 math mode on this CPU")
    model, _ = _tiny()
    strict_load(model, convert_official_swin_v2(fx["state_dict"], model), "official tiny Swin V2")
    with torch.no_grad():
        out = net(fx["input"])
        full_bf16 = model.bfloat16()(fx["input"].bfloat16()).float()  # every activation in bfloat16 (PyTorch's cast)
    err = float((out - fx["output"]).abs().max() / fx["output"].abs().max())
    # this random 8-block cosine-attention model amplifies rounding (full bfloat16: about 7% from the official
    # output); rounding only the GEMM inputs stays below that, and is not float32 (it really ran in the mode)
    assert 1e-4 < err < float((full_bf16 - fx["output"]).abs().max() / fx["output"].abs().max()), err
