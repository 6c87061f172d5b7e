"""The inference copy's fused Linear layers (posetokens.layers.fuse): values against a float64 reference computed
here, which kernel runs when, and that training, export and quantisation still see plain Linear layers."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from posetokens.engine.flops import true_macs
from posetokens.inference.precision import quantize_linear_dynamic
from posetokens.layers import FusedConv2d, FusedLinear, Mlp, fuse_conv_bn, fuse_conv_relu, fuse_linear, optimize_for_inference, unfuse_linear
from posetokens.registry import create_model

ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
ONEDNN_CONV = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class _Ops(TorchDispatchMode):
    """The names of the operators a call runs."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, gelu: str) -> torch.Tensor:
    """x @ W^T + b, then GELU, in float64 from the definitions (erf, or the tanh approximation)."""
    x, w = x.detach().double(), w.detach().double()
    y = x @ w.T + (b.detach().double() if b is not None else 0.0)
    if gelu == "none":
        return 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))
    if gelu == "tanh":
        return 0.5 * y * (1 + torch.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y**3)))
    return y


@pytest.mark.parametrize("gelu", ["", "none", "tanh"])
@pytest.mark.parametrize("bias", [True, False])
def test_values_against_float64_and_the_kernel_that_runs(gelu: str, bias: bool) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(48, 80, bias=bias)
    fused = FusedLinear.from_linear(linear, gelu)
    assert fused.weight is linear.weight and fused.bias is linear.bias  # shared, not copied
    x = torch.randn(3, 7, 48).transpose(0, 1)  # a strided 3-D input, as attention reshapes give
    ref = _reference(x, linear.weight, linear.bias, gelu)
    with torch.no_grad(), _Ops() as ops:
        got = fused(x)
    assert got.shape == (7, 3, 80) and got.dtype == torch.float32
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    if ONEDNN:  # one oneDNN call: no addmm (which copies the bias first) and no separate GELU pass
        assert ops.names == ["mkldnn._linear_pointwise"], ops.names


def test_a_strided_bias_gives_the_right_values() -> None:
    """oneDNN reads the bias as contiguous: a user's sliced bias parameter must not give wrong outputs."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    linear.bias = nn.Parameter(torch.randn(8, 3)[:, 1], requires_grad=False)  # stride 3
    fused = FusedLinear.from_linear(linear)
    x = torch.randn(5, 16)
    with torch.no_grad():
        got = fused(x)
    ref = _reference(x, linear.weight, linear.bias, "")
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


def test_autograd_and_other_dtypes_take_the_plain_path() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(16, 32)
    fused = FusedLinear.from_linear(linear, "none")
    x = torch.randn(5, 16, requires_grad=True)
    with _Ops() as ops:
        y = fused(x)
    assert "mkldnn._linear_pointwise" not in ops.names and "aten.gelu" in ops.names
    y.sum().backward()  # the fused kernel has no backward: training must never reach it
    assert x.grad is not None and linear.weight.grad is not None
    bias_only = FusedLinear.from_linear(nn.Linear(16, 32))
    bias_only.weight.requires_grad_(False)  # only the bias trains: its gradient must still arrive
    bias_only(torch.randn(5, 16)).sum().backward()
    assert bias_only.bias.grad is not None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast's dtype, as nn.Linear gives
        assert fused(x.detach()).dtype == nn.Linear(16, 32)(x.detach()).dtype == torch.bfloat16
    half = copy.deepcopy(fused).to(torch.bfloat16)
    with torch.no_grad(), _Ops() as ops:
        out = half(x.detach().to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and "mkldnn._linear_pointwise" not in ops.names


def test_fuse_and_unfuse_keep_parameters_and_keys() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(Mlp(16, 64), nn.Linear(16, 4))
    keys = list(mlp.state_dict())
    x = torch.randn(6, 16)
    with torch.no_grad():
        want = mlp(x)
        fuse_linear(mlp)
        assert isinstance(mlp[0].act, nn.Identity) and mlp[0].fc1.gelu == "none" and mlp[0].fc2.gelu == ""
        assert type(mlp[1]) is FusedLinear and list(mlp.state_dict()) == keys
        assert torch.allclose(mlp(x), want, atol=1e-5)
        unfuse_linear(mlp)
        assert type(mlp[0].fc1) is nn.Linear and type(mlp[0].act) is nn.GELU and type(mlp[1]) is nn.Linear
        assert torch.equal(mlp(x), want) and list(mlp.state_dict()) == keys
    lone = nn.Sequential(FusedLinear.from_linear(nn.Linear(16, 4), "none"))  # a GELU with no act to return to
    with pytest.raises(ValueError, match=r"unfuse_linear: 0 fuses a GELU outside an Mlp's fc1"):
        unfuse_linear(lone)


def test_inference_copy_of_a_lifter_and_its_int8_copy() -> None:
    torch.manual_seed(0)
    model = create_model("motionbert_h36m_243", num_frames=27, depth=2, dim=32, dim_rep=64).eval()
    (x,) = model.dummy_inputs(2)
    fast = optimize_for_inference(model, channels_last=False)
    assert not any(type(m) is nn.Linear for m in fast.modules())  # every Linear fused
    assert all(type(m) is nn.Linear for m in model.modules() if isinstance(m, nn.Linear))  # the model is unchanged
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        got = fast(x)
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert true_macs(fast, (x,)) == true_macs(model, (x,))  # the fused kernel's MACs are counted like addmm's

    def int8_layers(m: nn.Module) -> int:
        return sum(type(q).__name__ == "Linear" and "quantized" in type(q).__module__ for q in m.modules())

    # dynamic quantisation swaps layers by type: the inference copy's fused layers are quantised like plain ones
    assert int8_layers(quantize_linear_dynamic(fast)) == int8_layers(quantize_linear_dynamic(model)) > 0


# ---------------------------------------------------------------------------------------------- FusedConv2d
def _conv_reference(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """relu(conv2d(x)) in float64, summed tap by tap from the definition (zero padding, groups, stride)."""
    x, w = x.detach().double(), conv.weight.detach().double()
    (ph, pw), (sh, sw), g = conv.padding, conv.stride, conv.groups
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    n, cin, hp, wp = xp.shape
    cout, cin_g, kh, kw = w.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    out = torch.zeros(n, cout, ho, wo, dtype=torch.float64)
    for o in range(cout):
        grp = o // (cout // g)
        for c in range(cin_g):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, grp * cin_g + c, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                    out[:, o] += w[o, c, i, j] * patch
    if conv.bias is not None:
        out += conv.bias.detach().double()[None, :, None, None]
    return out.clamp_min(0)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kind", ["dense", "depthwise-stride2", "pointwise-no-bias"])
def test_conv_relu_against_float64_and_the_kernel_that_runs(kind: str, channels_last: bool) -> None:
    torch.manual_seed(0)
    conv = {"dense": nn.Conv2d(3, 8, 3, 1, 1), "depthwise-stride2": nn.Conv2d(8, 8, 3, 2, 1, groups=8),
            "pointwise-no-bias": nn.Conv2d(8, 6, 1, bias=False)}[kind]
    fused = FusedConv2d.from_conv(conv)
    assert fused.weight is conv.weight and fused.bias is conv.bias  # shared, not copied
    x = torch.randn(2, conv.in_channels, 9, 7)
    if channels_last:
        x, fused = x.contiguous(memory_format=torch.channels_last), fused.to(memory_format=torch.channels_last)
    ref = _conv_reference(x, conv)
    with torch.no_grad(), _Ops() as ops:
        got = fused(x)
    assert got.shape == ref.shape and bool((got >= 0).all())
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    if ONEDNN_CONV:  # one oneDNN call: no separate ReLU pass over the output
        assert ops.names == ["mkldnn._convolution_pointwise"], ops.names
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_conv_relu_plain_path_for_training_and_odd_inputs() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 3, padding=1)
    fused = FusedConv2d.from_conv(conv)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with _Ops() as ops:
        y = fused(x)
    assert "mkldnn._convolution_pointwise" not in ops.names and "aten.relu" in ops.names
    y.sum().backward()  # the fused kernel has no backward: training must never reach it
    assert x.grad is not None and conv.weight.grad is not None
    strided = nn.Conv2d(4, 5, 3, padding=1)
    strided.bias = nn.Parameter(torch.randn(10)[::2], requires_grad=False)  # oneDNN must get it contiguous
    with torch.no_grad():
        assert torch.allclose(FusedConv2d.from_conv(strided)(x.detach()), torch.relu(strided(x.detach())), atol=1e-5)
    reflect = FusedConv2d.from_conv(nn.Conv2d(4, 5, 3, padding=1, padding_mode="reflect"))
    unbatched = torch.randn(4, 6, 6)
    with torch.no_grad(), _Ops() as ops:
        want = torch.relu(nn.Conv2d.forward(reflect, x.detach()))
        assert torch.equal(reflect(x.detach()), want)  # reflect padding is not oneDNN's zero padding
        assert fused(unbatched).shape == (5, 6, 6)  # unbatched input, as nn.Conv2d takes it
    assert "mkldnn._convolution_pointwise" not in ops.names


def test_fuse_conv_relu_folds_only_a_relu_after_a_conv() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),  # folds
                        nn.Conv2d(8, 8, 1), nn.Sigmoid(), nn.ReLU(),  # a ReLU after something else stays
                        nn.Conv2d(8, 4, 1))  # a conv with no ReLU after it stays a plain conv
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    keys = list(net.state_dict())
    x = torch.randn(2, 3, 10, 8)
    with torch.no_grad():
        want = net.eval()(x)
        fuse_conv_relu(fuse_conv_bn(net))
        assert [type(m).__name__ for m in net] == ["FusedConv2d", "Identity", "Identity", "Conv2d", "Sigmoid",
                                                   "ReLU", "Conv2d"]
        assert net[0].relu and torch.allclose(net(x), want, atol=1e-5)
    assert [k for k in keys if not k.startswith("1.")] == list(net.state_dict())  # the BN's keys went with it
    # MACs of the fused convolution, counted like aten.convolution's: 2 * 10 * 8 * (8 * 3 * 3 * 3) for the first
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    fused = fuse_conv_relu(copy.deepcopy(plain).eval())
    assert true_macs(fused, (x,)) == true_macs(plain, (x,)) == 2 * 10 * 8 * 8 * 3 * 3 * 3



def test_inference_copy_folds_gtpts_patch_norm() -> None:
    # GTPT declares its patch_norm foldable into the patch embedding (norms_to_fold): the copy has no such
    # BatchNorm pass left, and gives the model-as-built's outputs, image by image
    torch.manual_seed(0)
    model = create_model("gtpt_t_coco_256x192", image_size=(64, 48)).eval()
    for mod in model.modules():  # weights that tell images apart (GTPT's stem starts at std 0.001) and non-trivial
        with torch.no_grad():    # BatchNorm statistics and affine terms, so a fold that dropped a term would show
            if isinstance(mod, nn.Conv2d):
                mod.weight.normal_(0, (mod.weight[0].numel()) ** -0.5)
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    fast = optimize_for_inference(model)
    assert model.norms_to_fold == (("patch_norm", "patch_embed"),) and type(fast.patch_norm) is nn.Identity
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        want, got = model(x), fast(x.contiguous(memory_format=torch.channels_last))
        feat = model.stem(x)  # the embedding alone, against BatchNorm then embedding in float64
        ref = model.patch_embed.double()(model.patch_norm.double()(feat.double()))
        model.float()
        folded = fast.patch_embed(feat.contiguous(memory_format=torch.channels_last))
    assert float((folded.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert float((want[0][0] - want[0][2]).abs().max()) > 0.01 * float(want[0].abs().max())  # images that differ
    for a, b in zip(want, got, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * max(1.0, float(a.abs().max()))
    with pytest.raises(ValueError, match="BatchNorm2d of 128 channels"):
        fast.patch_embed.fold_input_norm(nn.BatchNorm2d(64))


@pytest.mark.parametrize("post_op", [True, False], ids=["post-op", "separate"])
@pytest.mark.parametrize("relu", [True, False])
def test_conv_residual_relu_against_float64_and_the_kernel_that_runs(relu: bool, post_op: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # a residual block's last convolution: relu(conv(x) + residual) in one oneDNN call (the binary "add" post-op)
    # where it pays on this CPU (timed once per process), else the convolution, an in-place sum and a ReLU
    from posetokens.layers import fuse

    monkeypatch.setattr(fuse, "residual_post_op_pays", lambda: post_op)
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 1)
    fused = FusedConv2d.from_conv(conv, relu=relu).to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 9, 7).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(2, 6, 9, 7).contiguous(memory_format=torch.channels_last)
    w, b = conv.weight.detach().double(), conv.bias.detach().double()
    ref = torch.nn.functional.conv2d(x.double(), w, b) + residual.double()
    ref = ref.clamp_min(0) if relu else ref
    with torch.no_grad(), _Ops() as ops:
        got = fused(x, residual)
    assert float((got.double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    assert bool((got < 0).any()) != relu
    if ONEDNN_CONV:
        want = ["mkldnn._convolution_pointwise"] if post_op else \
            ["mkldnn._convolution_pointwise", "aten.add_"] + (["aten.relu_"] if relu else [])
        assert ops.names == want, ops.names
    plain = fused(x.requires_grad_(), residual)  # autograd: the plain path, the same values
    assert float((plain.detach().double() - ref).abs().max()) <= 1e-5 * float(ref.abs().max())


@pytest.mark.parametrize("name", ["residual_post_op_pays", "bf16_gemm_pays", "bf16_gemm_applies"])
def test_a_choice_timed_on_this_cpu_is_timed_once_and_draws_no_random_numbers(name: str) -> None:
    # the residual post-op (HRNet's fused blocks) and the bf16-gemm default of the lifters are chosen by timing
    # both kernels once per process: a bool, cached, and nothing drawn from the caller's random number stream
    from posetokens.layers import fuse

    if not ONEDNN_CONV:
        pytest.skip("no oneDNN convolution in this build")
    timed = getattr(fuse, name)
    timed.cache_clear()
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    before = torch.backends.mkldnn.matmul.fp32_precision
    assert timed() in (True, False) and timed.cache_info().currsize == 1
    assert torch.equal(torch.rand(3), want)
    assert torch.backends.mkldnn.matmul.fp32_precision == before  # the process's math mode is left as it was



def _bf16_cpu() -> bool:
    from posetokens.inference.precision import bf16_supported

    return bf16_supported("cpu")[0]


def _gemm_mode() -> bool:
    from posetokens.layers import fuse

    return _bf16_cpu() and fuse.bf16_gemm_applies()


def _rounded(t: torch.Tensor) -> torch.Tensor:
    """``t`` rounded to bfloat16 (round to nearest even), as float64: the reference's inputs."""
    return t.detach().bfloat16().double()


@pytest.mark.skipif(not (ONEDNN and ONEDNN_CONV and _gemm_mode()), reason="oneDNN applies no bf16 math mode here")
@pytest.mark.parametrize("post_op", [True, False], ids=["post-op", "separate"])
def test_bf16_math_is_the_exact_product_of_bfloat16_rounded_inputs(post_op: bool,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # oneDNN's bfloat16 math mode (bf16-gemm): each layer's input and weight rounded to bfloat16, the products summed
    # in float32; so the float64 product of the rounded inputs is the reference, to float32 accumulation (1e-6)
    from posetokens.layers import fuse

    monkeypatch.setattr(fuse, "residual_post_op_pays", lambda: post_op)
    torch.manual_seed(0)
    linear, conv = nn.Linear(256, 192), nn.Conv2d(32, 64, 3, padding=1)
    fl, fc = FusedLinear.from_linear(linear, "none"), FusedConv2d.from_conv(conv, relu=True)
    fl.math = fc.math = "bf16"
    x = torch.randn(64, 256)
    xc = torch.randn(4, 32, 16, 12).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(4, 64, 16, 12).contiguous(memory_format=torch.channels_last)
    before = (torch.backends.mkldnn.matmul.fp32_precision, torch.backends.mkldnn.conv.fp32_precision)
    with torch.no_grad():
        got = {"linear": fl(x), "conv": fc(xc, residual)}
    bias, cbias = linear.bias.detach().double(), conv.bias.detach().double()
    ref = {"linear": F.gelu(_rounded(x) @ _rounded(linear.weight).T + bias),
           "conv": F.relu(F.conv2d(_rounded(xc), _rounded(conv.weight), cbias, padding=1) + residual.double())}
    exact = {"linear": F.gelu(x.double() @ linear.weight.detach().double().T + bias),
             "conv": F.relu(F.conv2d(xc.double(), conv.weight.detach().double(), cbias, padding=1) + residual.double())}
    for k in got:
        scale = float(ref[k].abs().max())
        assert float((got[k].double() - ref[k]).abs().max()) <= 1e-6 * scale, k
        assert float((got[k].double() - exact[k]).abs().max()) >= 1e-4 * scale, k  # the inputs really were rounded
    # the mode is set for each kernel call only: the process's setting is back, other matmuls stay float32
    assert (torch.backends.mkldnn.matmul.fp32_precision, torch.backends.mkldnn.conv.fp32_precision) == before
    plain = x @ linear.weight.detach().T
    assert float((plain.double() - x.double() @ linear.weight.detach().double().T).abs().max()) <= 1e-5 * scale


def test_gemm_in_bfloat16_marks_every_linear_and_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from posetokens.layers import fuse, gemm_in_bfloat16

    if not fuse.HAS_GEMM_MATH:
        pytest.skip("this PyTorch cannot set oneDNN's math mode")
    monkeypatch.setattr(fuse, "bf16_gemm_applies", lambda: True)  # as with AMX: the layers are marked wherever
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2),
                        Mlp(2, 8))
    fast = gemm_in_bfloat16(optimize_for_inference(net, channels_last=False))
    layers = [m for m in fast.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 4 and all(isinstance(m, (FusedLinear, FusedConv2d)) and m.math == "bf16" for m in layers)
    assert "math='bf16'" in repr(fast)
    assert all(getattr(m, "math", "ieee") == "ieee" for m in net.modules())  # the model itself is unchanged


@pytest.mark.skipif(not (ONEDNN and ONEDNN_CONV), reason="no oneDNN kernels in this build")
def test_each_bf16_layer_sets_its_own_knob_for_its_call_only() -> None:
    # on any CPU (where oneDNN ignores the mode, the numbers cannot show it): a Linear in the mode runs its kernel
    # with the matmul knob at bf16, a convolution with the conv knob, and both knobs are as they were after the call
    from posetokens.layers import fuse

    if not fuse.HAS_GEMM_MATH:
        pytest.skip("this PyTorch cannot set oneDNN's math mode")
    knobs = torch.backends.mkldnn.matmul, torch.backends.mkldnn.conv
    seen = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if "pointwise" in func.name():
                seen.append((func.name().split("::")[1].split(".")[0], [k.fp32_precision for k in knobs]))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    fl, fc = FusedLinear.from_linear(nn.Linear(8, 4)), FusedConv2d.from_conv(nn.Conv2d(3, 4, 3), relu=False)
    fl.math = fc.math = "bf16"
    saved = [k.fp32_precision for k in knobs]
    try:
        for k in knobs:  # a known start: a mode left set by a leaking layer would show at the next call
            k.fp32_precision = "none"
        with torch.no_grad(), Watch():
            fl(torch.randn(2, 8))
            fc(torch.randn(1, 3, 8, 8).contiguous(memory_format=torch.channels_last))
        after = [k.fp32_precision for k in knobs]
    finally:
        for k, v in zip(knobs, saved):
            k.fp32_precision = v
    assert seen == [("_linear_pointwise", ["bf16", "none"]), ("_convolution_pointwise", ["none", "bf16"])]
    assert after == ["none", "none"]


@pytest.mark.skipif(not (ONEDNN and _bf16_cpu()), reason="no oneDNN bfloat16 kernels on this CPU")
def test_bf16_math_from_several_threads_leaves_the_process_setting_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    # the mode is process-wide: threads running bf16-gemm layers at once must not leave it set when they are done
    # (each saving the other's "bf16" as the setting to restore did, before the calls were counted)
    import threading

    from posetokens.layers import fuse, gemm_in_bfloat16

    monkeypatch.setattr(fuse, "bf16_gemm_applies", lambda: True)  # the setting is what is at stake, on any CPU
    torch.manual_seed(0)
    layer = gemm_in_bfloat16(nn.Sequential(nn.Linear(64, 64))).eval()
    x = torch.randn(8, 64)
    before = torch.backends.mkldnn.matmul.fp32_precision
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        with torch.no_grad():
            for _ in range(500):
                layer(x)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    exact = x.double() @ layer[0].weight.detach().double().T
    assert float((x @ layer[0].weight.detach().T - exact).abs().max()) <= 1e-5 * float(exact.abs().max())


@pytest.mark.skipif(not (ONEDNN and ONEDNN_CONV), reason="no oneDNN kernels in this build")
def test_bf16_gemm_applies_says_whether_the_mode_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # the probe against random layers: where it says the mode applies, a Linear and a convolution in the mode differ
    # from float32; where it says not (an AMD EPYC with AVX512-BF16), they come out bitwise float32, and bf16-gemm
    # is refused rather than run as float32 under its name
    from posetokens.layers import fuse

    applies = fuse.bf16_gemm_applies()
    torch.manual_seed(0)
    linear, conv = nn.Linear(256, 192), nn.Conv2d(32, 64, 3, padding=1)
    fl, fc = FusedLinear.from_linear(linear), FusedConv2d.from_conv(conv, relu=False)
    x, xc = torch.randn(64, 256), torch.randn(4, 32, 16, 12).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        exact = fl(x), fc(xc)
        fl.math = fc.math = "bf16"
        mode = fl(x), fc(xc)
    assert [not torch.equal(a, b) for a, b in zip(exact, mode)] == [applies, applies]
    if not applies:
        with pytest.raises(RuntimeError, match=r"^oneDNN does not apply its bfloat16 math mode on this CPU"):
            fuse.gemm_in_bfloat16(nn.Linear(2, 2))
    monkeypatch.setattr(fuse, "bf16_gemm_applies", lambda: False)
    with pytest.raises(RuntimeError, match=r"^oneDNN does not apply its bfloat16 math mode on this CPU"):
        fuse.gemm_in_bfloat16(nn.Linear(2, 2))


def test_gemm_in_bfloat16_without_the_math_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from posetokens.layers import fuse

    monkeypatch.setattr(fuse, "HAS_GEMM_MATH", False)  # PyTorch before 2.9, or no oneDNN
    with pytest.raises(RuntimeError, match=r"bf16-gemm needs oneDNN's float32 math mode \(PyTorch 2.9 or later"):
        fuse.gemm_in_bfloat16(nn.Linear(2, 2))
