"""HRNet backbone: official state-dict layout, output shapes, parameter counts, forward/backward sanity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from posetokens.models.backbones.hrnet import (
    HRNet,
    HRNetCfg,
    hrnet_stem,
    hrnet_w32,
    hrnet_w32_truncated,
    hrnet_w48,
    hrnet_w48_truncated,
)

from conftest import PARITY  # the one way to find shared/ (POSETOKENS_SHARED overrides)
B_CKPT = PARITY / "tokenpose_ppt_b_w16_d128_coco_256x192" / "checkpoint.pth"
S_CKPT = PARITY / "tokenpose_ppt_s_coco_256x192" / "checkpoint.pth"
STEM_KEYS = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.")


def _backbone_sd(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    if not path.exists():
        pytest.fail(f"parity fixture {path} not available")
    sd = torch.load(path, weights_only=True)
    out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    return {k: v for k, v in out.items() if k.startswith(STEM_KEYS + ("transition", "stage"))}


def _n_params(cfg: HRNetCfg) -> int:
    with torch.device("meta"):
        model = HRNet(cfg)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("path", "prefix", "cfg"),
    [(B_CKPT, "pre_feature.", HRNetCfg(width=16, num_stages=3)), (S_CKPT, "features.", hrnet_stem())],
    ids=["w16_3stage", "stem"],
)
def test_state_dict_matches_official(path: Path, prefix: str, cfg: HRNetCfg) -> None:
    ref = _backbone_sd(path, prefix)
    model = HRNet(cfg)
    ours = model.state_dict()
    assert list(ours) == list(ref)  # same keys, same order
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    model.load_state_dict(ref, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref[k])


def test_official_weights_forward_finite_deterministic() -> None:
    ref = _backbone_sd(B_CKPT, "pre_feature.")
    model = HRNet(HRNetCfg(width=16, num_stages=3))
    model.load_state_dict(ref, strict=True)
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        y1 = model(x)
        y2 = model(x)
        y3 = model(x.contiguous(memory_format=torch.channels_last))
    assert y1.shape == (2, 16, 64, 48)
    assert torch.isfinite(y1).all()
    assert torch.equal(y1, y2)
    # fp32 reordering noise only: outputs reach |y| ~ 50 with these re-drawn weights (fp64 ref differs by ~3e-4 too)
    torch.testing.assert_close(y3, y1, atol=2e-3, rtol=1e-4)


def test_output_shapes() -> None:
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        stem = HRNet(hrnet_stem()).eval()
        assert stem.out_channels == 256
        assert stem(x).shape == (1, 256, 64, 48)
        w16 = HRNet(HRNetCfg(width=16, num_stages=3)).eval()
        assert w16.out_channels == 16
        assert w16(x).shape == (1, 16, 64, 48)


def test_multi_scale_and_odd_sizes() -> None:
    cfg = HRNetCfg(width=8, num_stages=4, num_modules=(1, 1, 1, 1), num_blocks=(1, 1, 1, 1), multi_scale_output=True)
    model = HRNet(cfg).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 64, 48))  # stride-32 map is 2x2 (ceil), not 2x1.5
    assert [tuple(f.shape) for f in feats] == [(1, 8, 16, 12), (1, 16, 8, 6), (1, 32, 4, 3), (1, 64, 2, 2)]
    assert not hasattr(model, "final_layer") or model.final_layer is None


def test_structure_truncation() -> None:
    with torch.device("meta"):
        m3 = HRNet(hrnet_w32_truncated())
        m4 = HRNet(hrnet_w32(17))
    keys3 = m3.state_dict().keys()
    assert not any(k.startswith(("transition3", "stage4", "final_layer")) for k in keys3)
    assert not any(k.startswith("stage3.3.fuse_layers.1") for k in keys3)  # last module: fused hi-res only
    assert any(k.startswith("stage3.2.fuse_layers.2") for k in keys3)
    keys4 = m4.state_dict().keys()
    assert {"final_layer.weight", "final_layer.bias"} <= set(keys4)
    assert any(k.startswith("transition3.3.0.0") for k in keys4)
    assert m3.out_channels == 32 and m4.out_channels == 17 and m4.feature_channels == 32


def test_param_counts() -> None:
    stem = _n_params(hrnet_stem())
    assert stem == 325_056
    assert abs(stem - 325_000) / 325_000 < 0.005
    w32 = _n_params(hrnet_w32(17))
    assert abs(w32 - 28.5e6) / 28.5e6 < 0.01
    w48 = _n_params(hrnet_w48(17))
    assert abs(w48 - 63.6e6) / 63.6e6 < 0.01
    assert _n_params(hrnet_w48_truncated()) > _n_params(hrnet_w32_truncated())


@pytest.mark.parametrize(
    "cfg",
    [
        HRNetCfg(width=16, num_stages=3),
        HRNetCfg(width=8, num_stages=4, num_modules=(1, 1, 2, 1), num_blocks=(2, 1, 1, 1), final_conv=17),
    ],
    ids=["w16_3stage", "w8_4stage_head"],
)
def test_eval_deterministic_and_grad_flows(cfg: HRNetCfg) -> None:
    torch.manual_seed(0)
    model = HRNet(cfg)
    x = torch.randn(1, 3, 64, 48)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (1, model.out_channels, 16, 12)
    assert torch.isfinite(a).all() and torch.equal(a, b)

    model.train()
    y = model(x)
    (y * torch.randn_like(y)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_inference_copy_runs_each_residual_block_as_fused_convolutions() -> None:
    # optimize_for_inference folds every block's BatchNorms and runs its ReLUs and its residual sum inside the
    # convolutions (oneDNN post-ops on the CPU); on the official weights the output is the float64 model's
    from posetokens.layers import FusedConv2d, optimize_for_inference
    from posetokens.models.backbones.hrnet import BasicBlock, Bottleneck

    model = HRNet(HRNetCfg(width=16, num_stages=3))
    model.load_state_dict(_backbone_sd(B_CKPT, "pre_feature."), strict=True)
    model.eval()
    fast = optimize_for_inference(model)
    blocks = [m for m in fast.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert {type(b) for b in blocks} == {BasicBlock, Bottleneck} and all(b.fused for b in blocks)
    assert all(isinstance(b.conv1, FusedConv2d) and b.conv1.relu and not isinstance(b.bn1, torch.nn.BatchNorm2d)
               for b in blocks)
    assert not any(getattr(m, "fused", False) for m in model.modules())  # the model itself is not changed
    torch.manual_seed(0)
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = HRNet(HRNetCfg(width=16, num_stages=3)).double().eval()
        ref.load_state_dict(model.state_dict())
        want = ref(x.double())
        got = fast(x.contiguous(memory_format=torch.channels_last))
    assert float((got.double() - want).abs().max()) <= 2e-3 and float(want.abs().max()) > 1  # fp32 rounding only
