"""The precision/runtime choice (posetokens.inference.precision): outputs of every choice against a float64 run
of the same weights (the reference is computed outside the code under test), and the one-line refusals."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from posetokens.cli import main as cli
from posetokens.inference import precision
from posetokens.inference.precision import Choice, check_choice, parse_choice, prepare
from posetokens.models.backbones.swin_v2 import SwinV2Cfg
from posetokens.registry import create_model

# unpruned tiny models: a changed token selection would not measure number formats (the pruned ones run below)
TOKENPOSE = ("tokenpose_s_coco_256x192", {"image_size": [64, 48], "dim": 32, "depth": 2, "heads": 2,
                                          "patch_size": [2, 2], "head_hidden": 64,
                                          "backbone": {"stem_channels": 16, "num_blocks": [1, 4, 4, 4]}})
GTPT = ("gtpt_t_coco_256x192", {"image_size": [64, 48], "keep_rate": [1.0] * 12})
MIXSTE = ("mixste_h36m_243", {"num_frames": 27, "depth": 2, "dim": 32})
PPT = ("ppt_s_coco_256x192", {**TOKENPOSE[1], "prune": {"layers": [0], "keep_ratio": 0.7}})
HOT = ("hot_mixste_h36m_243", {**MIXSTE[1], "prune": {"keep": 9, "layer": 1}})
SMALL_PCT = ("pct_base_coco_256x256", {"backbone": SwinV2Cfg(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                                                              window_size=(8, 8, 8, 4), pretrain_window_size=(8, 8, 8, 4),
                                                              cpb_hidden=32),
                                        "in_channels": 128, "image_size": (128, 128), "tokenizer": {"guide_ratio": 0.0}})

# max |choice - float64| / max |float64| allowed. bfloat16 keeps 8 significant bits (unit roundoff 2^-8 = 0.0039):
# a few layers of it stay within 3%; int8 weights and activations (scale per tensor / per batch) within 10%;
# float32 through another runtime to float rounding.
TOLERANCE = {"fp32": 1e-5, "bf16": 0.03, "bf16-gemm": 0.03, "int8-dynamic": 0.1}
HAS_BF16 = precision.bf16_supported("cpu")[0]
# oneDNN applies its bfloat16 math mode (bf16-gemm) on the Intel Xeons with AMX timed here, not on an AMD EPYC with
# AVX512-BF16 alone, where bf16-gemm is refused (test_bf16_gemm_where_onednn_ignores_the_mode_is_refused)
GEMM_MODE = HAS_BF16 and precision.bf16_gemm_applies()


def _build(spec: tuple[str, dict]) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(spec[0], **spec[1]).eval()


def _run(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = net.forward_frames(x)[0] if net.task == "lifting" else net(x)
    return torch.cat([t.flatten(1) for t in out], 1) if isinstance(out, tuple) else out


def _relative_error(model: torch.nn.Module, choice: str, net: torch.nn.Module | None = None) -> tuple[float, torch.dtype]:
    (x,) = model.dummy_inputs(2)
    ref = _run(copy.deepcopy(model).double(), x.double())  # float64: the reference, outside the choice's code
    got = _run(prepare(model, choice, "cpu") if net is None else net, x)
    return float((got.double() - ref).abs().max() / ref.abs().max()), got.dtype


def _torch_choices() -> list[str]:
    return (["fp32/torch", "int8-dynamic/torch"] + (["bf16/torch"] if HAS_BF16 else [])
            + (["bf16-gemm/torch"] if GEMM_MODE else []))


@pytest.mark.parametrize("spec", [TOKENPOSE, GTPT, MIXSTE], ids=lambda s: s[0])
@pytest.mark.parametrize("choice", _torch_choices())
def test_choice_outputs_within_tolerance_of_float64(spec: tuple[str, dict], choice: str) -> None:
    err, dtype = _relative_error(_build(spec), choice)
    assert dtype == torch.float32  # outputs are float32 whatever ran inside
    assert err <= TOLERANCE[parse_choice(*choice.split("/")).precision], (choice, err)
    if not choice.startswith("fp32"):
        assert err > 1e-5, err  # it really ran in the reduced format


def test_fp32_torch_is_the_model_itself_and_other_choices_copy_it() -> None:
    model = _build(TOKENPOSE)
    assert prepare(model, "fp32/torch") is model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = prepare(model, "int8-dynamic/torch")
    assert net.model is not model and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert net.output_kind == model.output_kind and net.cfg == model.cfg  # attributes pass through


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bfloat16 kernels")
def test_bf16_runs_pruned_models_and_their_methods() -> None:
    """The pruned models run under bf16 through every method the library calls (forward_tokens with its
    pruning record, forward_frames with its kept frames), float32 out."""
    ppt = prepare(_build(PPT), "bf16/torch")
    (x,) = ppt.dummy_inputs(2)
    with torch.no_grad():
        out = ppt.forward_tokens(x)
    assert out.prediction.dtype == torch.float32 and out.pruned
    hot = prepare(_build(HOT), "bf16/torch")
    (x,) = hot.dummy_inputs(2)
    with torch.no_grad():
        y, _ = hot.forward_frames(x)
    assert y.dtype == torch.float32 and y.shape == (2, 27, 17, 3) and torch.isfinite(y).all()


class _CastsToFloat(torch.nn.Module):
    """A model whose own code runs a part in float32 (as PCT's Swin attention does), then a Linear layer or a
    convolution (as PCT's head after its backbone): each refuses the float32 input with its own message."""

    task, output_kind = "topdown", "heatmap"

    def __init__(self, conv: bool) -> None:
        super().__init__()
        layer = torch.nn.Conv2d if conv else torch.nn.Linear
        self.a, self.b = layer(8, 16, *((1,) if conv else ())), layer(16, 4, *((1,) if conv else ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)).float())


@pytest.fixture
def any_cpu_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """bfloat16 offered on this CPU whatever it has (emulated where it lacks the kernels: slow, not wrong), so a
    test of what ``prepare`` does around bfloat16 runs, and guards its mutant, on every CI host."""
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv"])
def test_bf16_of_a_model_that_casts_to_float32_runs_under_autocast(conv: bool, any_cpu_bf16: None) -> None:
    torch.manual_seed(0)
    model, x = _CastsToFloat(conv).eval(), torch.randn(5, 8, *((3, 3) if conv else ()))
    net = prepare(model, "bf16/torch")
    with torch.no_grad():
        ref = model(x).double()  # float32 eager (its float32 part would refuse float64)
        out = net(x)
    assert net.mixed and out.dtype == torch.float32
    assert float((out.double() - ref).abs().max() / ref.abs().max()) <= TOLERANCE["bf16"]


@pytest.mark.parametrize("inference_copy", [False, True], ids=["as-built", "inference-copy"])
def test_bf16_runs_pct(inference_copy: bool, any_cpu_bf16: None) -> None:
    """PCT under bf16: its Swin attention runs in float32 and hands float32 features to the bfloat16 head, whose
    convolution refuses them; the prepared model runs it under autocast (it failed so until 2026-12-04)."""
    from posetokens.layers import optimize_for_inference

    model = _build(SMALL_PCT)
    (x,) = model.dummy_inputs(2)
    if inference_copy:
        model, x = optimize_for_inference(model), x.contiguous(memory_format=torch.channels_last)
    net = prepare(model, "bf16/torch")
    with torch.no_grad():
        ref, out = model(x), net(x)
    assert net.mixed and all(o.dtype == torch.float32 for o in out)
    err = max(float((o.double() - r.double()).abs().max() / r.double().abs().max()) for o, r in zip(out, ref))
    assert 1e-5 < err <= TOLERANCE["bf16"], err


def test_pose_estimator_predicts_under_a_choice() -> None:
    from posetokens.inference.api import PoseEstimator

    model = _build(TOKENPOSE)
    ref = PoseEstimator(copy.deepcopy(model))
    est = PoseEstimator(model, precision="int8-dynamic")
    assert est.choice == Choice("int8-dynamic", "torch") and isinstance(est.net, precision.PreparedModel)
    img = np.random.default_rng(0).integers(0, 255, (96, 80, 3), dtype=np.uint8)
    a, b = ref.predict(img), est.predict(img)
    assert b.keypoints.shape == a.keypoints.shape and np.isfinite(b.keypoints).all()
    assert b.keypoints.dtype == np.float64


def test_compile_failure_falls_back_to_eager_once_and_counts(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    def broken(fn: object) -> object:
        def run(*a: object, **k: object) -> None:
            raise RuntimeError("no C++ compiler\nsecond line")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = _build(TOKENPOSE)
    net = prepare(model, "fp32/compile")
    (x,) = model.dummy_inputs(2)
    with torch.no_grad():
        ref = model(x)
        outs = [net(x) for _ in range(3)]
    err = capsys.readouterr().err
    assert err.count(f"torch.compile of {type(model).__name__}.forward failed (RuntimeError: no C++ compiler)") == 1
    assert net.fallbacks == 3 and all(torch.equal(o, ref) for o in outs)


# ------------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("args, message", [
    (("fp16", None), "precision='fp16': expected one of auto, fp32, bf16, bf16-backbone, bf16-gemm, int8-dynamic"),
    ((None, "tensorrt"), "runtime='tensorrt': expected one of auto, torch, compile, onnxruntime"),
])
def test_unknown_names_are_refused(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_choice(*args)


def test_aliases_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_choice("bfloat16", "ort") == Choice("bf16", "onnxruntime")
    monkeypatch.delenv("POSETOKENS_RUNTIME", raising=False)
    monkeypatch.delenv("POSETOKENS_PRECISION", raising=False)
    assert parse_choice() == precision.DEFAULT == Choice("auto", "auto")
    monkeypatch.setenv("POSETOKENS_RUNTIME", "eager")  # the environment replaces auto when no runtime is named
    monkeypatch.setenv("POSETOKENS_PRECISION", "float32")
    assert parse_choice() == Choice("fp32", "torch") and parse_choice(None, "auto") == Choice("fp32", "auto")
    assert parse_choice("auto") == Choice("auto", "torch")
    monkeypatch.setenv("POSETOKENS_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match=re.escape("POSETOKENS_RUNTIME 'tensorrt': expected one of auto, torch")):
        parse_choice()
    monkeypatch.setenv("POSETOKENS_PRECISION", "fp16")
    with pytest.raises(ValueError, match=re.escape("POSETOKENS_PRECISION 'fp16': expected one of auto, fp32, bf16")):
        parse_choice(None, "torch")


def test_auto_precision_is_bf16_gemm_for_lifters_and_pct_on_a_bf16_cpu_and_fp32_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the precision ``auto`` (the default) stands for, model by model, as each model class declares it
    (``auto_precision``; docs/speed.md "The default")."""
    from posetokens.inference.precision import resolve_precision

    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)
    monkeypatch.setattr(precision, "HAS_GEMM_MATH", True)
    monkeypatch.setattr(precision, "bf16_gemm_pays", lambda: True)  # timed on the CPU at hand (test_fused_linear)
    tokenpose, gtpt, mixste, hot, pct = _build(TOKENPOSE), _build(GTPT), _build(MIXSTE), _build(HOT), _build(SMALL_PCT)
    for runtime in ("auto", "torch"):  # the lifters and PCT run in PyTorch under both
        assert resolve_precision(mixste, Choice("auto", runtime)) == Choice("bf16-gemm", runtime)
        assert resolve_precision(hot, Choice("auto", runtime), "cpu") == Choice("bf16-gemm", runtime)
        assert resolve_precision(pct, Choice("auto", runtime)) == Choice("bf16-gemm", runtime)
        for image_model in (tokenpose, gtpt):  # exact, one precision at every batch
            assert resolve_precision(image_model, Choice("auto", runtime)) == Choice("fp32", runtime)
        # a model of the user's that declares nothing runs float32
        assert resolve_precision(torch.nn.Linear(2, 2), Choice("auto", runtime)) == Choice("fp32", runtime)
    with pytest.raises(ValueError, match=r"Linear.auto_precision 'bf16': expected 'fp32' or 'bf16-gemm'"):
        resolve_precision(type("Linear", (torch.nn.Linear,), {"auto_precision": "bf16"})(2, 2), Choice("auto", "auto"))
    assert resolve_precision(pct, Choice("auto", "auto"), "cuda") == Choice("fp32", "auto")
    for runtime in ("compile", "onnxruntime"):  # bf16-gemm runs in PyTorch eager only
        assert resolve_precision(mixste, Choice("auto", runtime)) == Choice("fp32", runtime)
    assert resolve_precision(mixste, Choice("auto", "auto"), "cuda") == Choice("fp32", "auto")
    assert resolve_precision(mixste, Choice("bf16", "torch")) == Choice("bf16", "torch")  # a named one is kept
    monkeypatch.setattr(precision, "bf16_gemm_pays", lambda: False)  # a CPU where the mode is no faster
    assert resolve_precision(mixste, Choice("auto", "auto")) == Choice("fp32", "auto")
    monkeypatch.setattr(precision, "bf16_gemm_pays", lambda: True)
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: False)
    assert resolve_precision(mixste, Choice("auto", "auto")) == Choice("fp32", "auto")
    check_choice(Choice("auto", "auto"), "cpu")  # nothing to refuse: it resolves to what the CPU runs


@pytest.mark.skipif(not GEMM_MODE, reason="oneDNN applies no bfloat16 math mode on this CPU")
def test_the_default_runs_a_lifter_in_bf16_gemm_and_says_so_once(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("POSETOKENS_PRECISION")
    monkeypatch.setattr(precision, "_SAID", set())
    monkeypatch.setattr(precision, "bf16_gemm_pays", lambda: True)  # as on the Intel Xeon with AMX
    model = _build(MIXSTE)
    net = prepare(model)  # the default precision, the tests' runtime (torch)
    assert isinstance(net, precision.PreparedModel) and net.choice == Choice("bf16-gemm", "torch")
    err, dtype = _relative_error(model, "", net)
    assert dtype == torch.float32 and 1e-5 < err <= TOLERANCE["bf16-gemm"], err
    prepare(model)
    said = capsys.readouterr().err
    assert said.count("precision auto: mixste_h36m_243 runs bf16-gemm") == 1 and "--precision fp32" in said
    tokenpose = _build(TOKENPOSE)
    assert prepare(tokenpose) is tokenpose  # an image model: float32, the model itself under torch
    monkeypatch.setenv("POSETOKENS_PRECISION", "fp32")  # the environment replaces auto when no precision is named
    assert prepare(model) is model


@pytest.mark.skipif(not GEMM_MODE, reason="oneDNN applies no bfloat16 math mode on this CPU")
def test_the_default_runs_pct_in_bf16_gemm_and_the_estimator_names_it(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """PCT declares bf16-gemm (measured on two trained PCTs, docs/speed.md "The default"): PoseEstimator's default
    runs it in the mode, in PyTorch, and its ``choice`` says so; TokenPose stays float32."""
    from posetokens.inference.api import PoseEstimator

    monkeypatch.delenv("POSETOKENS_PRECISION")
    monkeypatch.setattr(precision, "_SAID", set())
    monkeypatch.setattr(precision, "bf16_gemm_pays", lambda: True)  # as on the Intel Xeon with AMX
    model = _build(SMALL_PCT)
    est = PoseEstimator(model, runtime="auto")
    assert est.choice == Choice("bf16-gemm", "auto") and est.net.choice == Choice("bf16-gemm", "torch")
    assert "precision auto: pct_base_coco_256x256 runs bf16-gemm" in capsys.readouterr().err
    (x,) = model.dummy_inputs(2)
    ref, got = _run(model, x), _run(est.net, x)  # PCT's Swin keeps parts in float32: no float64 reference
    err = float((got - ref).abs().max() / ref.abs().max())
    assert got.dtype == torch.float32 and 1e-5 < err <= TOLERANCE["bf16-gemm"], err
    assert PoseEstimator(_build(TOKENPOSE), runtime="torch").choice == Choice("fp32", "torch")


def test_bf16_gemm_without_the_math_mode_is_refused_and_auto_stays_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    from posetokens.inference.precision import resolve_precision

    monkeypatch.setattr(precision, "HAS_GEMM_MATH", False)  # PyTorch before 2.9, or a build without oneDNN
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)
    with pytest.raises(ValueError, match=r"bf16-gemm needs oneDNN's float32 math mode \(PyTorch 2.9 or later") as e:
        check_choice(Choice("bf16-gemm", "torch"), "cpu")
    assert "\n" not in str(e.value)
    assert resolve_precision(_build(MIXSTE), Choice("auto", "auto")) == Choice("fp32", "auto")


def test_bf16_gemm_where_onednn_ignores_the_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an AMD EPYC with AVX512-BF16 (Zen 4) oneDNN ran every GEMM of bf16-gemm bitwise in float32: named, it
    ran exact float32 under the name bf16-gemm. Refused in one line; the default stays float32 there."""
    from posetokens.inference.precision import resolve_precision
    from posetokens.layers import fuse

    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)
    monkeypatch.setattr(precision, "bf16_gemm_applies", lambda: False)
    with pytest.raises(ValueError, match=r"^precision='bf16-gemm' runtime='torch' on cpu: oneDNN does not apply its "
                                         r"bfloat16 math mode on this CPU .*; use precision='fp32', or "
                                         r"precision='bf16' for bfloat16 weights") as e:
        check_choice(Choice("bf16-gemm", "torch"), "cpu")
    assert "\n" not in str(e.value)
    check_choice(Choice("bf16", "torch"), "cpu")  # full bfloat16 is another kernel: not refused
    monkeypatch.setattr(fuse, "bf16_gemm_applies", lambda: False)
    assert fuse.bf16_gemm_pays.__wrapped__() is False  # nothing to time: the default keeps float32
    # uncached: the process's cached verdict (True on a CPU with AMX) is neither read nor overwritten here
    monkeypatch.setattr(precision, "bf16_gemm_pays", fuse.bf16_gemm_pays.__wrapped__)
    assert resolve_precision(_build(MIXSTE), Choice("auto", "auto")) == Choice("fp32", "auto")


@pytest.mark.parametrize("cap, refused", [("AVX2", True), ("avx512_core", True), ("AVX512_CORE_BF16", False),
                                           ("AVX512_CORE_AMX", False), ("ALL", False)])
def test_bf16_is_refused_where_onednn_is_capped_below_it(cap: str, refused: bool,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 on a bfloat16 CPU: bf16 was accepted and emulated (4x slower than float32), and
    bf16-gemm ran plain float32; both are refused as on a CPU without bfloat16, naming the variable."""
    from posetokens.inference.precision import resolve_precision

    monkeypatch.setattr(precision, "_cpu_bf16", lambda: True)
    monkeypatch.setattr(precision, "bf16_gemm_applies", lambda: True)  # as with AMX
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    if not refused:
        check_choice(Choice("bf16-gemm", "torch"), "cpu")
        return
    for name in ("bf16", "bf16-gemm"):
        with pytest.raises(ValueError, match=rf"^precision='{name}' runtime='torch' on cpu: ONEDNN_MAX_CPU_ISA={cap} "
                                             r"keeps oneDNN below this CPU's bfloat16 instructions"):
            check_choice(Choice(name, "torch"), "cpu")
    assert resolve_precision(_build(MIXSTE), Choice("auto", "auto")) == Choice("fp32", "auto")  # not bf16-gemm


@pytest.mark.parametrize("choice, device, message", [
    (Choice("bf16", "torch"), "cpu", "this CPU has neither AVX512-BF16 nor AMX"),
    (Choice("bf16-backbone", "auto"), "cpu", "this CPU has neither AVX512-BF16 nor AMX"),
    (Choice("int8-dynamic", "torch"), "cuda", "dynamic int8 quantisation runs on the CPU only"),
    (Choice("fp32", "onnxruntime"), "cuda", "the onnxruntime runtime runs a CPU session"),
    (Choice("int8-dynamic", "compile"), "cpu", "torch.compile does not take dynamically quantised layers"),
    (Choice("bf16-gemm", "torch"), "cpu", "this CPU has neither AVX512-BF16 nor AMX"),
    (Choice("bf16-gemm", "torch"), "cuda", "bf16-gemm is oneDNN's CPU math mode; on a GPU use precision='bf16'"),
    (Choice("bf16-gemm", "compile"), "cpu", "torch.compile traces the plain layers, which ignore the mode"),
])
def test_unsupported_combinations_give_one_line(choice: Choice, device: str, message: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: False)  # a CPU without bfloat16 kernels
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        check_choice(choice, device)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("precision_name", ["bf16", "bf16-backbone", "bf16-gemm"])
def test_bf16_through_onnxruntime_is_refused(precision_name: str, tmp_path: Path) -> None:
    from posetokens.export import export_onnx

    with pytest.raises(ValueError, match=f"export --precision {precision_name}: onnxruntime's CPU kernels have no "):
        export_onnx(_build(TOKENPOSE), tmp_path / "m.onnx", precision=precision_name)
    assert not any(tmp_path.iterdir())
    if not HAS_BF16:
        pytest.skip("this CPU has no bfloat16 kernels (refused earlier, for that)")
    with pytest.raises(ValueError, match="onnxruntime's CPU kernels have no bfloat16"):
        check_choice(Choice(precision_name, "onnxruntime"), "cpu")


@pytest.mark.parametrize("spec, backbone", [(TOKENPOSE, "backbone"), (PPT, "backbone"), (GTPT, "stem")],
                         ids=["tokenpose", "ppt", "gtpt"])
def test_bf16_backbone_runs_the_cnn_in_bfloat16_and_the_rest_float32(spec: tuple[str, dict], backbone: str) -> None:
    """The reference: the float32 model with its backbone's output replaced, by a hook, with that of a plain
    bfloat16 copy of the backbone (``nn.Module.to``) on the bfloat16-rounded image; everything after it float32.
    The copy is made on any CPU (bfloat16 is emulated where it has no kernels); ``prepare`` where it has."""
    model = _build(spec)
    assert model.image_backbone == backbone  # what the model declares
    inner = precision.backbone_in_bfloat16(model)
    cnn = copy.deepcopy(getattr(model, backbone)).to(torch.bfloat16)
    hook = getattr(model, backbone).register_forward_hook(lambda m, a, out: cnn(a[0].to(torch.bfloat16)).float())
    (x,) = model.dummy_inputs(2)
    try:
        with torch.no_grad():
            ref, got = _run(model, x), _run(inner, x)
    finally:
        hook.remove()
    assert got.dtype == torch.float32 and torch.equal(got, ref)
    assert {p.dtype for n, p in inner.named_parameters() if n.startswith(f"{backbone}.")} == {torch.bfloat16}
    assert {p.dtype for n, p in inner.named_parameters() if not n.startswith(f"{backbone}.")} == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # the caller's model is not changed
    with torch.no_grad():  # the backbone's features: bfloat16's, not float32's (a random head may hide them)
        feat, feat32 = getattr(inner, backbone)(x), getattr(model, backbone)(x)
        assert torch.equal(feat, cnn(x.to(torch.bfloat16)).float()) and not torch.equal(feat, feat32)
    err, _ = _relative_error(model, "bf16-backbone/torch", inner)
    assert err <= TOLERANCE["bf16"], err
    if HAS_BF16:
        net = prepare(model, "bf16-backbone/torch", "cpu")
        with torch.no_grad():
            assert torch.equal(_run(net, x), got)


@pytest.mark.parametrize("choice", ["fp32/compile", "bf16/torch", "bf16-backbone/torch", "bf16-gemm/torch",
                                    "int8-dynamic/torch"])
def test_no_choice_changes_the_callers_model(choice: str) -> None:
    """``prepare`` wraps a copy, or for fp32/compile the caller's model itself: it puts the model in eval mode
    (documented) and changes nothing else: values, dtypes, gradient flags (compile once turned them off)."""
    if choice.startswith("bf16") and not HAS_BF16:
        pytest.skip("this CPU has no bfloat16 kernels")
    if choice.startswith("bf16-gemm") and not GEMM_MODE:
        pytest.skip("oneDNN applies no bfloat16 math mode on this CPU")
    model = _build(TOKENPOSE)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepare(model, choice, "cpu")
    assert all(p.requires_grad for p in model.parameters())
    after = model.state_dict()
    assert before.keys() == after.keys() and all(
        after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items()
    )


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bfloat16 kernels")
def test_bf16_backbone_of_a_model_without_one_runs_as_fp32_and_says_so(capsys: pytest.CaptureFixture) -> None:
    for spec, why in ((MIXSTE, "a lifter has no image backbone"), (SMALL_PCT, "it declares no image backbone")):
        model = _build(spec)
        flags = [p.requires_grad for p in model.parameters()]
        assert prepare(model, "bf16-backbone/torch", "cpu") is model  # fp32/torch: the model itself
        assert [p.requires_grad for p in model.parameters()] == flags  # nothing of the caller's model changed
        assert f"--precision bf16-backbone: {spec[0]} runs as fp32/torch ({why})" in capsys.readouterr().err
    # under auto, as fp32/auto: PCT through the onnxruntime race (made at its first call), the lifter eager
    if not precision._onnx_missing():
        assert prepare(_build(SMALL_PCT), "bf16-backbone/auto", "cpu").choice == Choice("fp32", "onnxruntime")
    lifter = _build(MIXSTE)
    assert prepare(lifter, "bf16-backbone/auto", "cpu") is lifter
    with pytest.raises(ValueError, match="declares no image backbone to run in bfloat16"):
        precision.backbone_in_bfloat16(_build(SMALL_PCT))


def test_cli_refuses_a_bad_choice_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    img = tmp_path / "000000000001.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert cli(["infer", str(img), "--model", TOKENPOSE[0], "--out", str(tmp_path / "o"), "--precision", "fp16"]) == 2
    assert capsys.readouterr().err.strip() == ("posetokens infer: error: --precision fp16: expected one of auto, "
                                               "fp32, bf16, bf16-backbone, bf16-gemm, int8-dynamic")
    monkeypatch.setattr(precision, "_cpu_bf16", lambda: False)
    assert cli(["infer", str(img), "--model", TOKENPOSE[0], "--out", str(tmp_path / "o"), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("posetokens infer: error: --precision bf16 --runtime torch on cpu: this CPU has neither")
    assert "\n" not in err and not (tmp_path / "o").exists()  # refused before any model was built
    assert cli(["export", TOKENPOSE[0], "--onnx", str(tmp_path / "m.onnx"), "--precision", "bf16"]) == 2
    assert "onnxruntime's CPU kernels have no bfloat16" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- onnxruntime
def test_onnxruntime_runtime_matches_float64_and_refuses_tokens() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _build(TOKENPOSE)
    net = prepare(model, "fp32/onnxruntime")
    err, dtype = _relative_error(model, "fp32/onnxruntime", net)
    assert dtype == torch.float32 and err <= TOLERANCE["fp32"]
    with pytest.raises(ValueError, match="the ONNX graph returns predictions only"):
        net.forward_tokens(model.dummy_inputs(1)[0])


def test_pct_flip_test_runs_through_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PCT's flip test (official ``forward_test``): the mirrored crop's keypoints, put back in the plain order
    and frame (x -> W - 1 - x), averaged with the plain ones; the scores averaged as they are (one per crop,
    repeated per keypoint); merged here by hand."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from posetokens.data.metainfo import get_metainfo

    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "cache"))
    model = _build(SMALL_PCT)
    flip = list(get_metainfo("coco").flip_indices)
    (x,) = model.dummy_inputs(2)
    with torch.no_grad():
        (k, s), (fk, fs) = model(x), model(x.flip(-1))
    w = x.shape[-1]
    want_k = torch.stack([(k[:, j, 0] + w - 1 - fk[:, flip[j], 0]) / 2 for j in range(len(flip))], dim=1)
    want_k = torch.stack((want_k, (k[..., 1] + fk[:, flip, 1]) / 2), dim=-1)
    want_s = (s + fs) / 2
    session = precision.OrtSession(model)
    for got_k, got_s in (model.predict(x, flip), session.predict(x, flip)):
        assert torch.allclose(got_k, want_k, atol=1e-4) and torch.allclose(got_s, want_s, atol=1e-5)


@pytest.mark.slow
def test_int8_onnx_export_and_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import json

    import onnx

    model = _build(MIXSTE)
    err, _ = _relative_error(model, "int8-dynamic/onnxruntime")
    assert err <= TOLERANCE["int8-dynamic"]
    from posetokens.export import export_onnx
    from posetokens.protocols.predict import predict_windows

    hot = prepare(_build(HOT), "fp32/onnxruntime")  # the flip pass would need the kept frames back in the graph
    predict_windows(hot, hot.dummy_inputs(2)[0], flip_test=False)
    with pytest.raises(ValueError, match="reuses the frames the first pass kept"):
        predict_windows(hot, hot.dummy_inputs(2)[0], flip_test=True)
    res = export_onnx(TOKENPOSE[0], tmp_path / "m.onnx", precision="int8-dynamic", **TOKENPOSE[1])
    meta = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(meta["posetokens.precision"]) == "int8-dynamic"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.onnx"]  # self-contained


# ---------------------------------------------------------------------------------------------------- auto
def test_auto_picks_onnxruntime_on_the_cpu_and_torch_where_it_cannot_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``auto`` stands for, model by model (the table in precision's module doc)."""
    from posetokens.inference.precision import resolve

    auto = Choice("fp32", "auto")
    tokenpose, mixste, hot = _build(TOKENPOSE), _build(MIXSTE), _build(HOT)
    assert resolve(tokenpose, auto, "cpu")[0] == Choice("fp32", "onnxruntime")
    assert resolve(mixste, auto, "cpu")[0] == Choice("fp32", "torch")  # lifters: measured, see docs/speed.md
    # int8 stays in PyTorch: onnxruntime's int8 differs from PyTorch's, which forward_tokens would run
    assert resolve(tokenpose, Choice("int8-dynamic", "auto"))[0] == Choice("int8-dynamic", "torch")
    assert resolve(tokenpose, auto, trained=False) == (Choice("fp32", "torch"), "random weights (a new graph every run)")
    assert resolve(tokenpose, auto, "cuda") == (Choice("fp32", "torch"), "the onnxruntime runtime is CPU-only (cuda)")
    assert resolve(tokenpose, Choice("bf16", "auto"))[0] == Choice("bf16", "torch")
    choice, why = resolve(hot, auto)  # the flip test's second pass needs the kept frames back
    assert choice == Choice("fp32", "torch") and "kept frames" in why
    assert resolve(tokenpose, Choice("fp32", "compile")) == (Choice("fp32", "compile"), "named")
    real = precision.importlib.util.find_spec
    monkeypatch.setattr(precision.importlib.util, "find_spec", lambda m: None if m == "onnxscript" else real(m))
    choice, why = resolve(tokenpose, auto)
    assert choice == Choice("fp32", "torch") and why.startswith("onnxscript is not installed")


def test_auto_exports_once_matches_float64_and_reuses_the_cached_graph(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.delenv("POSETOKENS_RUNTIME")
    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "_SAID", set())
    monkeypatch.setattr(precision, "_race_times", lambda ort, eager: (1.0, 2.0))  # onnxruntime wins (tested below)
    model = _build(TOKENPOSE)
    net = prepare(model)  # the default: auto
    assert isinstance(net, precision.PreparedModel) and net.choice == Choice("fp32", "onnxruntime")
    (x,) = model.dummy_inputs(1)
    with torch.no_grad():  # a call the graph cannot serve runs eager under auto (it is refused under onnxruntime)
        assert torch.equal(net.forward_tokens(x).prediction, model.forward_tokens(x).prediction)
    assert net.session is None  # --show-tokens alone never pays for an export
    assert "forward_tokens (the kept tokens, --show-tokens) runs in PyTorch eager" in capsys.readouterr().err
    got, _ = _relative_error(model, "fp32/auto", net)  # the first call that needs the graph exports it
    assert got <= TOLERANCE["fp32"]
    assert net.session.exported_s > 0 and net.session.path.parent.parent == tmp_path / "cache" / "onnx"
    err = capsys.readouterr().err
    assert err.count("posetokens: runtime auto: exporting") == 1 and str(net.session.path.parent) in err
    again = prepare(copy.deepcopy(model))  # same code and weights: the cached graph, no second export
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-5)
    assert again.session.exported_s == 0 and again.session.path == net.session.path
    assert "exporting" not in capsys.readouterr().err
    net.session.path.write_bytes(b"not a graph")  # a damaged cached graph is exported again, not kept
    fixed = prepare(copy.deepcopy(model))
    with torch.no_grad():
        assert torch.allclose(fixed(x), model(x), atol=1e-5)
    assert fixed.session.exported_s > 0 and "cannot be loaded; exporting again" in capsys.readouterr().err
    other = copy.deepcopy(model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert precision.graph_key(other) != precision.graph_key(model)  # other weights: another graph
    other = copy.deepcopy(model)
    name, buf = next((n, b) for n, b in other.named_buffers() if n not in other.state_dict())
    buf.mul_(0.5)  # a non-persistent buffer (not in the state dict) is in the graph too
    assert precision.graph_key(other) != precision.graph_key(model), name


def test_an_unwritable_cache_exports_for_the_run_and_touches_nothing_else(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "afile"))  # a file: no folder can be made under it
    monkeypatch.setattr(precision, "_SAID", set())
    monkeypatch.setattr(precision, "_trim_cache", lambda *a, **k: pytest.fail("trimmed outside the cache"))
    monkeypatch.setattr(precision, "_race_times", lambda ort, eager: (1.0, 2.0))
    model = _build(TOKENPOSE)
    net = prepare(model, "fp32/auto")
    (x,) = model.dummy_inputs(2)
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-5)
    err = capsys.readouterr().err
    assert "cannot be written" in err and "for this run" in err and "cached in" not in err
    assert "so onnxruntime runs them (measured for this run)" in err and net.session is not None


def test_an_interrupted_export_leaves_no_graph_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    import posetokens.export

    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "_SAID", set())
    (tmp_path / "cache" / "onnx" / ("0" * 32)).mkdir(parents=True)  # another graph's folder is not touched

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(posetokens.export, "export_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        precision.OrtSession(_build(TOKENPOSE))
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == ["0" * 32]


def test_auto_keeps_onnxruntime_only_where_it_wins_on_this_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """onnxruntime ran image models at 0.50-0.92x PyTorch's speed on an Intel Xeon; on an AMD EPYC it won at batch 1
    and 8 and lost at batch 32. ``auto`` races the two at the first call of each batch bucket (1, up to 8, more),
    runs each bucket's winner, and keeps the verdicts beside the graph, per CPU."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.delenv("POSETOKENS_RUNTIME")
    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "_SAID", set())
    ort_calls: list[int] = []
    real_forward = precision.OrtSession.forward

    def counted(self: object, *inputs: torch.Tensor) -> object:
        ort_calls.append(int(inputs[0].shape[0]))
        return real_forward(self, *inputs)

    monkeypatch.setattr(precision.OrtSession, "forward", counted)
    raced: list[tuple] = []

    def ort_loses(ort: object, eager: object) -> tuple[float, float]:
        raced.append((ort(), eager()))  # both really run, on the bucket's inputs
        return 2.0, 1.0

    monkeypatch.setattr(precision, "_race_times", ort_loses)
    model = _build(TOKENPOSE)
    big = precision.RACE_BUCKETS[-1]
    n = big + 2
    (x,) = model.dummy_inputs(n)
    net = prepare(model)
    with torch.no_grad():
        assert torch.allclose(net(x), model(x), atol=1e-5)  # the raced call itself: onnxruntime's output
        assert torch.equal(net(x), model(x))  # from then on PyTorch eager, exactly
    assert ort_calls == [n, big]  # the call, then the race on the bucket's size of its first inputs
    assert len(raced) == 1 and all(len(t) == big for t in raced[0])
    assert net.choice == Choice("fp32", "torch") and net.verdicts == {big: "torch"}
    err = capsys.readouterr().err
    assert (f"tokenpose_s_coco_256x192 on this CPU, batches of more than 8 (timed on {big}): "
            "onnxruntime 2000 ms, PyTorch eager 1000 ms a call, so PyTorch eager runs them (measured once, kept in ") in err
    (kept,) = (tmp_path / "cache" / "onnx").glob(f"*/race-*-b{big}.json")
    record = json.loads(kept.read_text())
    assert record["verdict"] == "torch" and record["inputs"] == big
    assert record["host"] == precision.host_key(torch.get_num_threads())
    # one input is its own bucket: raced on its own, and here onnxruntime wins it; the larger batches stay eager
    monkeypatch.setattr(precision, "_race_times", lambda ort, eager: (1.0, 3.0))
    ort_calls.clear()
    with torch.no_grad():
        net(x[:1])
        net(x[:1])
        assert torch.equal(net(x), model(x))
    assert ort_calls == [1, 1] and net.verdicts == {big: "torch", 1: "onnxruntime"}
    assert "one input: onnxruntime 1000 ms, PyTorch eager 3000 ms a call, so onnxruntime runs them" in capsys.readouterr().err
    assert [precision.race_bucket((torch.zeros(k),)) for k in (1, 2, 8, 9, 100)] == [1, 8, 8, 32, 32]
    # a first call smaller than its bucket races on its inputs repeated up to the bucket's size; an empty batch
    # races nothing and runs eager
    raced.clear()
    monkeypatch.setattr(precision, "_race_times", ort_loses)
    ort_calls.clear()
    with torch.no_grad():
        net(x[:3])
        assert net(x[:0]).shape[0] == 0
    assert ort_calls == [3, 8] and all(len(t) == 8 for t in raced[0]) and 0 not in net.verdicts
    assert "batches of 2 to 8 (timed on 8)" in capsys.readouterr().err
    # the same graph on the same CPU: the kept verdicts, no second race
    monkeypatch.setattr(precision, "_race_times", lambda *a: pytest.fail("raced twice on one CPU"))
    again = prepare(copy.deepcopy(model))
    ort_calls.clear()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
        again(x[:1])
    assert ort_calls == [1] and again.verdicts == {big: "torch", 1: "onnxruntime"}
    assert "runs them" not in capsys.readouterr().err
    # another CPU races again; a damaged verdict is raced again, not trusted
    this_cpu = precision._cpu_identity
    monkeypatch.setattr(precision, "_cpu_identity", lambda: "another CPU")
    monkeypatch.setattr(precision, "_race_times", lambda ort, eager: (1.0, 3.0))
    other = prepare(copy.deepcopy(model))
    with torch.no_grad():
        assert torch.allclose(other(x), model(x), atol=1e-5)
    assert other.choice == Choice("fp32", "onnxruntime")
    assert len(list((tmp_path / "cache" / "onnx").glob("*/race-*.json"))) == 4  # b1, b8, b32 here; b32 there
    kept.write_text("{not json")
    monkeypatch.setattr(precision, "_cpu_identity", this_cpu)
    fixed = prepare(copy.deepcopy(model))
    with torch.no_grad():
        fixed(x)
    assert fixed.verdicts == {big: "onnxruntime"} and json.loads(kept.read_text())["verdict"] == "onnxruntime"


def test_other_input_sizes_run_eager_under_auto_and_are_refused_in_one_line_when_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setattr(precision, "_SAID", set())
    model = _build(MIXSTE)
    (x,) = model.dummy_inputs(2)
    short = x[:, :20]  # the graph is exported for 27 frames; eager MixSTE takes fewer
    net = prepare(model, "fp32/onnxruntime")
    with torch.no_grad():
        assert torch.allclose(net.forward_frames(x)[0], model.forward_frames(x)[0], atol=1e-5)
        with pytest.raises(ValueError, match=re.escape("input keypoints_2d of shape (2, 20, 17, 2): the graph was "
                                                       "exported for (B, 27, 17, 2); use runtime='torch'")):
            net.forward_frames(short)
        net.eager_otherwise = True  # what auto sets
        assert torch.equal(net.forward_frames(short)[0], model.forward_frames(short)[0])
    assert "on inputs of another shape runs in PyTorch eager" in capsys.readouterr().err


def test_auto_falls_back_to_eager_in_one_line_when_the_export_fails(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture) -> None:
    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("unsupported operator aten::foo\ndetails")

    monkeypatch.setattr(precision, "OrtSession", broken)
    monkeypatch.setattr(precision, "_onnx_missing", lambda: "")
    monkeypatch.setattr(precision, "_SAID", set())
    model = _build(TOKENPOSE)
    net = prepare(model, "fp32/auto")
    (x,) = model.dummy_inputs(1)
    with torch.no_grad():  # the export is tried at the first call, once; that call and the rest run eager
        assert torch.equal(net(x), model(x)) and torch.equal(net(x), model(x)) and net.session is None
    err = capsys.readouterr().err.strip()
    assert err == ("posetokens: runtime auto: onnxruntime could not take tokenpose_s_coco_256x192 (RuntimeError: "
                   "unsupported operator aten::foo); running PyTorch eager")
    with pytest.raises(RuntimeError, match="aten::foo"):  # named, it is not hidden
        prepare(model, "fp32/onnxruntime")


class _PredictOnly(torch.nn.Module):
    task = "topdown"

    def predict(self, x: torch.Tensor, flip_indices: object = None) -> torch.Tensor:
        return x * (2 if flip_indices is None else 3)


class _NoFlipSession:
    def predict(self, x: torch.Tensor, flip_indices: object = None) -> torch.Tensor:
        if flip_indices is not None:
            raise precision.OrtUnsupported("the graph has no flip test", "with the flip test")
        return x * 2


def test_a_call_the_graph_cannot_serve_runs_eager_under_auto_only(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(precision, "_SAID", set())
    x = torch.ones(2)
    auto = precision.PreparedModel(_PredictOnly(), Choice("fp32", "onnxruntime"), session=_NoFlipSession(),
                                   eager_otherwise=True)
    assert torch.equal(auto.predict(x), x * 2) and torch.equal(auto.predict(x, [0]), x * 3)
    assert torch.equal(auto.predict(x, [0]), x * 3)
    assert capsys.readouterr().err.strip() == ("posetokens: runtime auto: _PredictOnly.predict with the flip test "
                                               "runs in PyTorch eager (the ONNX graph cannot)")  # said once
    named = precision.PreparedModel(_PredictOnly(), Choice("fp32", "onnxruntime"), session=_NoFlipSession())
    with pytest.raises(ValueError, match="no flip test"):
        named.predict(x, [0])


def test_the_cache_keeps_the_most_recently_used_graphs(tmp_path: Path) -> None:
    import os

    root = tmp_path / "onnx"
    folders = []
    for i in range(precision.CACHE_GRAPHS + 4):
        f = root / f"{i:032d}"
        f.mkdir(parents=True)
        os.utime(f, (1000 + i, 1000 + i))
        folders.append(f)
    (root / "not-a-graph").mkdir()
    new = root / ("f" * 32)
    new.mkdir()
    os.utime(new, (0, 0))  # the graph just written is kept whatever its time
    precision._trim_cache(root, keep=new)
    left = sorted(p.name for p in root.iterdir())
    newest = [f.name for f in folders[-(precision.CACHE_GRAPHS - 1):]]
    assert left == sorted(newest + ["not-a-graph", new.name])
