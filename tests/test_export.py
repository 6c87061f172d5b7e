"""Deployment: ONNX export checked with onnxruntime against PyTorch (1e-4, dynamic batch), and ``convert``
of the official release layouts of every family (fixtures made with the official code in shared/parity).

The export tests use one small config per family (full-size zoo models: the ``slow`` sweep at the end).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import posetokens
from posetokens.checkpoint import describe
from posetokens.cli import main as cli
from posetokens.convert import convert_checkpoint
from posetokens.data.metainfo import get_metainfo
from posetokens.export import check_onnx, export_onnx, io_names
from posetokens.protocols import get_protocol
from posetokens.registry import default_protocol

from conftest import PARITY

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# one small config per family; the pruned ones keep their top-k (PPT, GTPT) or frame cluster (HoT, TPC)
SMALL = {
    "tokenpose": ("tokenpose_s_coco_256x192", dict(image_size=(64, 48), dim=32, depth=2, heads=4)),
    "ppt": ("ppt_s_coco_256x192", dict(image_size=(64, 48), dim=32, depth=3, heads=4,
                                       prune={"layers": (1, 2), "keep_ratio": 0.7})),
    "gtpt": ("gtpt_t_coco_256x192", dict(image_size=(128, 96), dim=32, heads=4)),
    "hot_mixste": ("hot_mixste_h36m_243", dict(num_frames=27, dim=32, depth=4, heads=4, mlp_hidden=64,
                                               prune={"keep": 9, "layer": 2})),
    "tpc_mixste": ("tpc_mixste_h36m_243", dict(num_frames=27, dim=32, depth=3, heads=4, mlp_hidden=64,
                                               prune={"keep": 9, "layer": 2})),
    "hot_motionbert": ("hot_motionbert_h36m_243", dict(num_frames=27, dim=32, depth=2, heads=4, dim_rep=32,
                                                       prune={"keep": 9, "layer": 1})),
    "tpc_mhformer": ("tpc_mhformer_h36m_351", dict(num_frames=27, channel=32, d_hid=64, mhg_depth=1, mhg_heads=3,
                                                   prune={"keep": 9})),
}
if "pct_base_coco_256x256" in posetokens.list_models():
    from posetokens.models.backbones.swin_v2 import SwinV2Cfg

    _SWIN = SwinV2Cfg(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window_size=(8, 8, 8, 4),
                      pretrain_window_size=(8, 8, 8, 4), cpb_hidden=32)
    SMALL["pct"] = ("pct_base_coco_256x256", dict(backbone=_SWIN, in_channels=_SWIN.num_features, image_size=(128, 128),
                                                  tokenizer={"guide_ratio": 0.0}))
if "ppt_multiview_h36m_256x256" in posetokens.list_models():
    SMALL["ppt_multiview"] = ("ppt_multiview_h36m_256x256", dict(image_size=(64, 48), dim=32, depth=3, heads=4, num_views=2,
                                                                 num_fusion_layers=1, prune={"layers": (1,), "keep_ratio": 0.7}))

# the graph outputs each family must have (export/onnx.py module table): every one of them is compared
GRAPH_OUTPUTS = {"tokenpose": ["heatmaps"], "ppt": ["heatmaps"], "gtpt": ["simcc_x", "simcc_y"],
                 "hot_mixste": ["keypoints_3d"], "hot_motionbert": ["keypoints_3d"],
                 "tpc_mixste": ["keypoints_3d", "kept_frames"], "tpc_mhformer": ["keypoints_3d", "kept_frames"],
                 "pct": ["keypoints", "scores"], "ppt_multiview": ["heatmaps"]}


def _onnx_outputs(path: Path) -> list[str]:
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [o.name for o in sess.get_outputs()]


def _own_max_abs_diff(model: torch.nn.Module, path: Path, batches: tuple[int, ...], seed: int = 0) -> dict[str, float]:
    """The test's own comparison of onnxruntime with PyTorch eager (the deployment forward), on the inputs
    ``check_onnx`` draws (``torch.manual_seed(seed + b)``, then ``dummy_inputs(b)``): max abs difference per output."""
    from posetokens.export.onnx import _Deployed

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names_in, names_out = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
    worst = {n: 0.0 for n in names_out}
    for b in batches:
        torch.manual_seed(seed + b)
        inputs = model.dummy_inputs(b)
        with torch.no_grad():
            ref = _Deployed(model).eval()(*inputs)
        got = sess.run(None, {n: t.numpy() for n, t in zip(names_in, inputs)})
        assert len(ref) == len(got) == len(names_out)
        for n, r, g in zip(names_out, ref, got):
            assert g.shape[0] == b  # the dynamic batch axis
            worst[n] = max(worst[n], float(np.abs(r.numpy().astype(np.float64) - g.astype(np.float64)).max()))
    return worst


@pytest.mark.parametrize("family", list(SMALL))
def test_export_small_model_matches_pytorch(family: str, tmp_path: Path) -> None:
    name, overrides = SMALL[family]
    torch.manual_seed(0)
    res = export_onnx(name, tmp_path / f"{family}.onnx", check_batches=(1, 3), **overrides)
    assert res.path.is_file() and res.outputs == _onnx_outputs(res.path)
    torch.manual_seed(0)
    model = posetokens.create_model(name, **overrides).eval()  # the exported weights (same seed)
    outputs = io_names(model)[1]
    assert outputs == res.outputs
    # the check compared every output of the graph, by name (an empty or partial report is a comparison that
    # did not run), and reports what an independent comparison on the same inputs finds
    assert list(res.max_abs_diff) == outputs == GRAPH_OUTPUTS[family]
    own = _own_max_abs_diff(model, res.path, (1, 3))
    for out in outputs:
        assert res.max_abs_diff[out] == pytest.approx(own[out], rel=1e-9, abs=1e-12), (out, res.max_abs_diff, own)
    assert all(v <= 1e-4 for v in own.values()), own
    sess = onnxruntime.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    assert not isinstance(shape[0], int)  # a symbolic (dynamic) batch axis
    # the check refuses a graph that does not compute the model: the same family with other weights
    other = posetokens.create_model(name, **overrides).eval()
    with pytest.raises(ValueError, match=f"onnxruntime differs from PyTorch on output '{outputs[0]}'"):
        check_onnx(other, res.path)


def test_channels_last_gtpt_exports_without_scatter(tmp_path: Path) -> None:
    """The inference path's GTPT (conv-BN folded, channels-last, as PoseEstimator and the onnxruntime runtime
    export it) interleaves its ShuffleNet branches with two strided copies in eager; exported, those became
    ScatterND nodes that made onnxruntime 2.5x slower than PyTorch. The graph must hold none and still match."""
    import onnx

    from posetokens.layers import optimize_for_inference

    name, overrides = SMALL["gtpt"]
    torch.manual_seed(0)
    model = optimize_for_inference(posetokens.create_model(name, **overrides).eval())
    res = export_onnx(model, tmp_path / "gtpt.onnx", check_batches=(1, 2))
    ops = {n.op_type for n in onnx.load(str(res.path)).graph.node}
    assert not ops & {"ScatterND", "ScatterElements"}, sorted(ops)
    assert all(v <= 1e-4 for v in res.max_abs_diff.values()), res.max_abs_diff


def test_pruned_export_keeps_the_topk_counts(tmp_path: Path) -> None:
    """The PPT graph holds static top-k gathers: kept counts ceil(N * 0.7) per pruning layer."""
    import onnx

    name, overrides = SMALL["ppt"]
    res = export_onnx(name, tmp_path / "ppt.onnx", check=False, **overrides)
    graph = onnx.load(str(res.path)).graph
    ks = sorted(int(onnx.numpy_helper.to_array(i).reshape(-1)[0]) for i in graph.initializer
                if any(n.op_type == "TopK" and n.input[1] == i.name for n in graph.node))
    consts = [n for n in graph.node if n.op_type == "TopK"]
    assert len(consts) == 2  # one per pruning layer
    # 16 patches (4x4 grid) -> ceil(16 * 0.7) = 12 -> ceil(12 * 0.7) = 9: static k's, stored as initializers
    assert ks == [9, 12]


def test_tpc_exports_kept_frames_exactly(tmp_path: Path) -> None:
    name, overrides = SMALL["tpc_mixste"]
    res = export_onnx(name, tmp_path / "tpc.onnx", **overrides)
    assert res.outputs == ["keypoints_3d", "kept_frames"] and res.max_abs_diff["kept_frames"] == 0.0
    sess = onnxruntime.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    x = torch.zeros(2, 27, 17, 2)  # identical frames: every density ties; ties go to the earlier frame
    kept = sess.run(["kept_frames"], {"keypoints_2d": x.numpy()})[0]
    model = posetokens.create_model(name, **overrides).eval()
    with torch.no_grad():
        np.testing.assert_array_equal(kept, model.forward_frames(x).index.numpy())


def test_check_onnx_catches_a_wrong_graph(tmp_path: Path) -> None:
    name, overrides = SMALL["tokenpose"]
    res = export_onnx(name, tmp_path / "a.onnx", check=False, **overrides)
    other = posetokens.create_model(name, **overrides).eval()  # different random weights
    with pytest.raises(ValueError, match="onnxruntime differs from PyTorch on output 'heatmaps'"):
        check_onnx(other, res.path)


def test_cli_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["export", "tokenpose_s_coco_255", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in posetokens.list_models() if "tokenizer" not in n])
def test_export_full_size_zoo_model(name: str, tmp_path: Path) -> None:
    assert cli(["export", name, "--onnx", str(tmp_path / f"{name}.onnx")]) == 0


# --------------------------------------------------------------------------------------------- convert
def _fixture(name: str) -> Path:
    path = PARITY / name
    if not (path / "checkpoint.pth").is_file():
        pytest.fail(f"parity fixture {name} not found")
    return path


def _cfg(fixture: Path) -> dict:
    return json.loads((fixture / "config.json").read_text())


def test_convert_ppt_resume_file_with_module_prefix(tmp_path: Path) -> None:
    """HowieMa/PPT and TokenPose save ``checkpoint.pth`` as {epoch, state_dict: module.*, best_state_dict}."""
    fx = _fixture("tokenpose_ppt_s_coco_256x192")
    sd = torch.load(fx / "checkpoint.pth", weights_only=True)
    resume = {"epoch": 3, "model": "pose_tokenpose_s", "perf": 0.7, "optimizer": {},
              "state_dict": {f"module.{k}": v for k, v in sd.items()}}
    src = tmp_path / "checkpoint.pth"
    torch.save(resume, src)
    out = convert_checkpoint("ppt_s_coco_256x192", src, tmp_path / "ppt_s.pth")
    model = posetokens.create_model("ppt_s_coco_256x192", weights=out).eval()
    images = torch.load(fx / "inputs.pt", weights_only=True)["images"]
    ref = torch.load(fx / "outputs.pt", weights_only=True)["ppt_heatmaps"]
    with torch.no_grad():
        assert (model(images) - ref).abs().max() < 1e-4


def test_convert_never_writes_over_its_input_or_an_existing_file(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--out as the --official file is refused (it was replaced by the converted one); an existing --out is
    replaced only with --overwrite; both before anything is loaded, each in one line."""
    src = tmp_path / "official.pth"
    shutil.copy(_fixture("tokenpose_ppt_s_coco_256x192") / "checkpoint.pth", src)
    mine = tmp_path / "mine.pth"
    mine.write_text("a file of mine")
    before = src.read_bytes()
    base = ["convert", "--model", "ppt_s_coco_256x192", "--official", str(src), "--out"]
    assert cli(base + [str(src)]) == 2
    assert cli(base + [str(src), "--overwrite"]) == 2
    assert cli(base + [str(mine)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert re.search(r"the --out \S+official.pth would overwrite the --official \S+official.pth; choose another --out "
                     r"path$", err[0]) and err[1] == err[0], err
    assert re.search(r"--out \S+mine.pth exists; choose another path, or pass --overwrite to replace it$", err[2]), err
    assert src.read_bytes() == before and mine.read_text() == "a file of mine"
    assert cli(base + [str(mine), "--overwrite"]) == 0
    assert torch.load(mine, weights_only=True)["converted_from"] == str(src)


def test_convert_takes_a_half_precision_copy_and_refuses_another_encoding(tmp_path: Path) -> None:
    """A float16 copy of the official PPT-S stores the sine table rounded to float16 (2.4e-4 off): it converts. A
    float32 table off by the same amount is another encoding and is refused, naming the tolerance."""
    sd = torch.load(_fixture("tokenpose_ppt_s_coco_256x192") / "checkpoint.pth", weights_only=True)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, tmp_path / "half.pth")
    out = convert_checkpoint("ppt_s_coco_256x192", tmp_path / "half.pth", tmp_path / "ppt_s.pth")
    assert torch.load(out, weights_only=True)["state_dict"]["blocks.0.attn.qkv.weight"].dtype == torch.float32
    key = next(k for k in sd if k.endswith("pos_embedding"))
    torch.save({**sd, key: sd[key] + 2.4e-4}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"^\S+other\.pth: official pos_embedding differs from the 2-D sine PE by "
                                         r"0\.00024 \(tolerance 1e-05 in float32\): only the 'sine-full'"):
        convert_checkpoint("ppt_s_coco_256x192", tmp_path / "other.pth", tmp_path / "other_ours.pth")
    # a file without its table converted silently (a config with no encoding would have run with ours)
    torch.save({k: v for k, v in sd.items() if k != key}, tmp_path / "no_pe.pth")
    with pytest.raises(ValueError, match=r"^\S+no_pe\.pth: no pos_embedding: every official TokenPose/PPT checkpoint "
                                         r"of the supported 'sine-full' configs stores its sine table"):
        convert_checkpoint("ppt_s_coco_256x192", tmp_path / "no_pe.pth", tmp_path / "no_pe_ours.pth")
    gtpt = torch.load(_fixture("gtpt_t_coco_256x192") / "checkpoint.pth", weights_only=True)
    torch.save({k: v for k, v in gtpt.items() if not k.endswith("pos_embedding")}, tmp_path / "gtpt_no_pe.pth")
    with pytest.raises(ValueError, match=r"gtpt_no_pe\.pth: no pos_embedding: every official GTPT checkpoint"):
        convert_checkpoint("gtpt_t_coco_256x192", tmp_path / "gtpt_no_pe.pth", tmp_path / "gtpt_ours.pth")
    # the wrong model's file: its table's shape, said with the file (it named neither)
    with pytest.raises(ValueError, match=r"^\S+tokenpose_ppt_b_w16_d128_coco_256x192/checkpoint\.pth: official "
                                         r"pos_embedding has shape \(1, 256, 128\), but this config's sine PE is "
                                         r"\(1, 256, 192\)"):
        convert_checkpoint("ppt_s_coco_256x192", _fixture("tokenpose_ppt_b_w16_d128_coco_256x192") / "checkpoint.pth",
                           tmp_path / "b_as_s.pth")
    # a missing key is named as this library names it, and the message says so
    torch.save({k: v for k, v in sd.items() if not k.endswith("mlp_head.3.bias")}, tmp_path / "no_bias.pth")
    with pytest.raises(ValueError, match=r"missing keys \(1 in posetokens' names, after converting the file's\): "
                                         r"head\.3\.bias$"):
        convert_checkpoint("ppt_s_coco_256x192", tmp_path / "no_bias.pth", tmp_path / "no_bias_ours.pth")


def test_parity_does_not_pass_a_fixture_that_compares_no_output_values(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A fixture whose outputs.pt lost its heatmaps (only kept indices left) or holds nothing reported PASSED, or
    FAILED with no reason: PASSED must mean some output's values were compared."""
    fx = _fixture("tokenpose_ppt_s_coco_256x192")
    work = tmp_path / "fx"
    work.mkdir()
    for name in ("config.json", "checkpoint.pth", "inputs.pt"):
        shutil.copy(fx / name, work / name)
    outputs = torch.load(fx / "outputs.pt", weights_only=True)
    for kept, reason in (({"ppt_keep_idx_layer3": outputs["ppt_keep_idx_layer3"]}, " besides kept indices"), ({}, "")):
        torch.save(kept, work / "outputs.pt")
        assert cli(["parity", str(work)]) == 1
        table = capsys.readouterr().out.splitlines()
        assert table[-2:] == ["  no output's values were compared: the fixture holds none of the outputs this family "
                              f"checks{reason}", "FAILED"], table


def test_convert_gtpt_picks_the_ema_copy(tmp_path: Path) -> None:
    fx = _fixture("gtpt_t_coco_256x192")
    sd = torch.load(fx / "checkpoint.pth", weights_only=True)
    assert any(k.startswith("ema_") for k in sd) and any(k.startswith("features.") for k in sd)
    src = tmp_path / "checkpoint.pth"  # the official resume-file layout
    torch.save({"epoch": 1, "model": "gtpt", "state_dict": {f"module.{k}": v for k, v in sd.items()},
                "best_state_dict": sd, "perf": 0.5, "optimizer": {}}, src)
    assert cli(["convert", "--model", "gtpt_t_coco_256x192", "--official", str(src), "--out", str(tmp_path / "g.pth")]) == 0
    ours = torch.load(tmp_path / "g.pth", weights_only=True)["state_dict"]
    assert torch.equal(ours["head_x.1.weight"], sd["ema_mlp_head_x.1.weight"])
    assert not torch.equal(ours["head_x.1.weight"], sd["mlp_head_x.1.weight"])
    assert torch.equal(ours["blocks.0.attn.qkv.weight"], sd["ema_features.transformer.layers.0.0.fn.fn.to_qkv.weight"])


@pytest.mark.parametrize("fixture,zoo", [("hot_mixste_t81", "hot_mixste_h36m_243"),
                                         ("hot_motionbert_t243", "hot_motionbert_h36m_243"),
                                         ("mixste_t81", "mixste_h36m_243"),
                                         ("motionbert_t243", "motionbert_h36m_243")])
@pytest.mark.parametrize("wrap", ["model_pos_module"])  # flat files: the parity tests of each family
def test_convert_hot_release_layouts(fixture: str, zoo: str, wrap: str, tmp_path: Path) -> None:
    """HoT saves flat state dicts; the MixSTE / MotionBERT repos save {"model_pos": {"module.<key>"}}."""
    from posetokens.parity import run_parity

    fx = _fixture(fixture)
    sd = torch.load(fx / "checkpoint.pth", weights_only=True)
    obj = sd if wrap == "flat" else {"epoch": 9, "lr": 1e-4, "optimizer": {}, "model_pos": {f"module.{k}": v for k, v in sd.items()}}
    work = tmp_path / fixture
    work.mkdir()
    for f in ("config.json", "inputs.pt", "outputs.pt"):
        (work / f).write_bytes((fx / f).read_bytes())
    torch.save(obj, work / "checkpoint.pth")
    assert run_parity(work).passed  # the wrapped release converts to the official function (reduced size)
    with pytest.raises(ValueError, match="does not fit model"):  # reduced fixture sizes do not fit the zoo size
        convert_checkpoint(zoo, work / "checkpoint.pth", tmp_path / "out.pth")


def test_convert_pct_official_layouts(tmp_path: Path) -> None:
    from posetokens.parity import run_parity

    fx = _fixture("pct_head")
    sd = torch.load(fx / "checkpoint.pth", weights_only=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    work = tmp_path / "pct_head"
    work.mkdir()
    for f in fx.iterdir():
        if f.is_file() and f.name != "checkpoint.pth":
            (work / f.name).write_bytes(f.read_bytes())
    torch.save({"meta": {"epoch": 210}, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, work / "checkpoint.pth")
    report = run_parity(work)
    assert report.passed, report.table()


def test_failed_export_leaves_the_earlier_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export that fails (or is interrupted) keeps the earlier ONNX file as it was and leaves no temporary files."""
    out = tmp_path / "m.onnx"
    out.write_bytes(b"earlier export")

    def broken(*args, **kwargs):
        Path(args[2]).write_bytes(b"half")  # the exporter got as far as writing something
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_onnx("tokenpose_s_coco_256x192", out, check=False, dim=48, depth=1, heads=2)
    assert out.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_an_opset_the_exporter_could_not_reach_is_refused_and_nothing_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where PyTorch's exporter cannot convert a graph to the opset asked for, it logs a traceback and writes its
    own opset (a pruned PPT asked for opset 17 came out at 18): refused in one line, no file left."""
    import onnx
    from onnx import TensorProto, helper

    def exports_opset_18(model, args, path, **kwargs):
        assert kwargs["opset_version"] == 17
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)

    monkeypatch.setattr(torch.onnx, "export", exports_opset_18)
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match=r"^--opset 17: PyTorch's exporter could not write this model at opset 17 "
                                         r"\(it came out at opset 18\); nothing was written; use --opset 18$"):
        export_onnx("tokenpose_s_coco_256x192", out, check=False, opset=17, dim=48, depth=1, heads=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_the_real_exporter_cannot_write_a_pruned_ppt_at_opset_17(tmp_path: Path) -> None:
    """PyTorch's exporter (torch 2.13, onnxscript's converter) logs a traceback and writes opset 18 for a pruned
    PPT asked for at opset 17: refused in one line, no file left (the monkeypatched test above pins the check)."""
    with pytest.raises(ValueError, match=r"^--opset 17: PyTorch's exporter could not write this model at opset 17"):
        export_onnx("ppt_s_coco_256x192", tmp_path / "m.onnx", check=False, opset=17, image_size=[64, 48], dim=32,
                    depth=2, heads=2, prune={"layers": [0], "keep_ratio": 0.7})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("out", "atol", "message"), [
    ("victim.yaml", None, r"^--onnx .*victim\.yaml: expected a path ending in \.onnx \(an earlier \.onnx file there "
                          r"is replaced\)$"),
    ("m.onnx", float("nan"), r"^--atol nan: expected a finite number >= 0"),
    ("m.onnx", -1.0, r"^--atol -1\.0: expected a finite number >= 0"),
])
def test_export_refuses_a_path_not_ending_in_onnx_and_a_bad_atol(tmp_path: Path, out: str, atol: float | None,
                                                                 message: str) -> None:
    """An --onnx path of a user's file given by mistake (a config) was replaced, with a .data file beside it; an
    --atol of NaN turned the check off and a negative one failed every graph: each refused before anything is
    built, the file as it was."""
    (tmp_path / "victim.yaml").write_text("model: ppt\n")
    with pytest.raises(ValueError, match=message):
        export_onnx("tokenpose_s_coco_256x192", tmp_path / out, atol=atol, dim=48, depth=1, heads=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.yaml"]
    assert (tmp_path / "victim.yaml").read_text() == "model: ppt\n"


def test_a_graph_that_fails_its_check_is_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The onnxruntime check runs before the graph is moved into place: a failing graph never replaces an
    earlier export, and the message names the user's path, not the staging folder."""
    import posetokens.export.onnx as onnx_export

    out = tmp_path / "m.onnx"
    out.write_bytes(b"earlier export")
    (tmp_path / "m.onnx.data").write_bytes(b"earlier weights")
    checked = []

    def failing(model, path, *args, **kwargs):
        checked.append(Path(path))
        raise ValueError(f"{path}: onnxruntime differs from PyTorch on output 'heatmaps' by 0.5")

    monkeypatch.setattr(onnx_export, "check_onnx", failing)
    name, overrides = SMALL["tokenpose"]
    with pytest.raises(ValueError) as e:
        export_onnx(name, out, **overrides)
    assert checked and checked[0] != out  # the staged graph was checked
    assert str(e.value) == (f"{out}: onnxruntime differs from PyTorch on output 'heatmaps' by 0.5; the graph was not "
                            f"kept ({out} is the earlier file, unchanged)")
    assert out.read_bytes() == b"earlier export" and (tmp_path / "m.onnx.data").read_bytes() == b"earlier weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_export_without_onnxruntime_is_refused_before_exporting(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The check (and int8) need onnxruntime: said before the 10-60 s export, not after it (a traceback)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "onnxruntime" else real(m, *a))
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: pytest.fail("exported"))
    name, overrides = SMALL["tokenpose"]
    with pytest.raises(ValueError, match=r"onnxruntime is not installed .*check needs it \(or give --no-check\)"):
        export_onnx(name, tmp_path / "m.onnx", **overrides)
    assert not any(tmp_path.iterdir())


def test_export_refuses_weights_where_its_data_file_goes(tmp_path: Path) -> None:
    name, overrides = SMALL["tokenpose"]
    weights = tmp_path / "m.onnx.data"
    torch.save(posetokens.create_model(name, **overrides).state_dict(), weights)
    before = weights.read_bytes()
    with pytest.raises(ValueError, match=r"the ONNX data file .*m\.onnx\.data would overwrite the --weights"):
        export_onnx(name, tmp_path / "m.onnx", weights=weights, **overrides)
    assert weights.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx.data"]


@pytest.mark.skipif("pct" not in SMALL, reason="PCT not registered")
def test_export_leaves_no_traced_tensor_in_the_model(tmp_path: Path) -> None:
    """An export traces the model with fake tensors: nothing it builds may outlive it. Swin V2's shifted-window
    mask is cached per size; built first inside an export it was a FakeTensor, and every later eager call of any
    PCT in the process computed on fakes (no numbers at all, 6x 'faster'): what `auto` did when its race
    ran eager after the export."""
    from posetokens.models.backbones import swin_v2

    name, overrides = SMALL["pct"]
    swin = dataclasses.replace(overrides["backbone"], depths=(2, 2, 1, 1))  # two blocks: the second one shifts
    torch.manual_seed(0)
    model = posetokens.create_model(name, **{**overrides, "backbone": swin}).eval()
    (x,) = model.dummy_inputs(2)
    swin_v2._shift_window_mask_cached.cache_clear()  # the export is the first call at this size
    export_onnx(model, tmp_path / "pct.onnx", check=False)
    with torch.no_grad():
        after = model(x)
        swin_v2._shift_window_mask_cached.cache_clear()
        fresh = model(x)
    assert all(type(t) is torch.Tensor for t in after), [type(t).__name__ for t in after]
    for a, b in zip(after, fresh):
        assert torch.equal(a, b)


def test_int8_export_over_a_float32_one_removes_the_earlier_data_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A float32 export is a graph plus <name>.data; an int8 export is one file. Written over the float32 one, the
    earlier graph's data file is removed (said on stderr), not left beside it unused; a data file the earlier
    graph did not read is the user's and stays."""
    import onnx

    from posetokens.export.onnx import _external_files

    name, overrides = SMALL["tokenpose"]
    out, data = tmp_path / "m.onnx", tmp_path / "m.onnx.data"
    export_onnx(name, out, check=False, **overrides)
    assert _external_files(out) == {"m.onnx.data"} and data.is_file()
    export_onnx(name, out, check=False, precision="int8-dynamic", **overrides)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert f"removed {data}, the weights of the graph {out} replaced" in capsys.readouterr().err
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["posetokens.precision"] == '"int8-dynamic"'
    assert _external_files(out) == set()  # so a m.onnx.data written beside it later would not be removed


def test_export_metadata_describes_the_model_it_was_given(tmp_path: Path) -> None:
    """The ONNX file's description: a built model records the overrides it was built with (a 27-frame lifter
    recorded {}); an official file (a bare state dict here) records the zoo model's keypoint definition (it
    recorded null); the caller's model is left in its modes (it was left in eval)."""
    import onnx

    name = "hot_mixste_h36m_243"
    overrides = dict(num_frames=27, dim=16, depth=2, heads=2, mlp_hidden=32, prune={"keep": 9, "layer": 1})
    model = posetokens.create_model(name, **overrides)  # in training mode, as create_model gives it
    next(iter(model.children())).eval()  # a frozen part, in eval while the rest trains
    modes = {n: m.training for n, m in model.named_modules()}
    export_onnx(model, tmp_path / "lift.onnx", check=False)
    assert {n: m.training for n, m in model.named_modules()} == modes

    def meta(path: Path) -> dict:
        return {p.key: json.loads(p.value) for p in onnx.load(str(path), load_external_data=False).metadata_props}

    assert meta(tmp_path / "lift.onnx")["posetokens.model_overrides"] == json.loads(json.dumps(overrides))
    name2d, small = SMALL["tokenpose"]
    torch.save(posetokens.create_model(name2d, **small).state_dict(), tmp_path / "bare.pth")
    export_onnx(name2d, tmp_path / "bare.onnx", weights=tmp_path / "bare.pth", check=False, **small)
    got = meta(tmp_path / "bare.onnx")["posetokens.metainfo"]
    assert got["name"] == "coco" and len(got["keypoint_names"]) == 17 and got["flip_indices"][1] == 2
    # what a deployment without posetokens needs beside the protocol: the crop's size (the graph's own input
    # shape), RGB, and ImageNet's normalisation (0.485, 0.456, 0.406 / 0.229, 0.224, 0.225 of 255); a lifter's joints
    # (Human3.6M's; it recorded null), window and 2D normalisation
    images = meta(tmp_path / "bare.onnx")["posetokens.inputs"]["images"]
    graph = onnx.load(str(tmp_path / "bare.onnx"), load_external_data=False).graph.input[0].type.tensor_type.shape
    assert images["size_hw"] == [d.dim_value for d in graph.dim][2:] and images["channels"] == "RGB"
    np.testing.assert_allclose(images["mean"], np.array([0.485, 0.456, 0.406]) * 255)
    np.testing.assert_allclose(images["std"], np.array([0.229, 0.224, 0.225]) * 255)
    lifted = meta(tmp_path / "lift.onnx")
    assert lifted["posetokens.metainfo"]["name"] == "h36m" and len(lifted["posetokens.metainfo"]["keypoint_names"]) == 17
    assert lifted["posetokens.inputs"]["keypoints_2d"]["frames"] == 27
    assert lifted["posetokens.inputs"]["keypoints_2d"]["channels"] == 2


def test_export_records_the_skeleton_of_a_model_built_in_python(tmp_path: Path) -> None:
    """A model of a skeleton of one's own built in Python recorded no keypoint definition (metainfo null): given
    ``metainfo`` (a skeleton file here) the file records its names and sigmas; one of another keypoint count, or
    other names than a checkpoint of ours records, is refused in one line before the export."""
    import onnx

    names = ["head", "left_shoulder", "right_shoulder", "left_hand", "right_hand", "left_hip", "right_hip"]
    sigmas = [0.03, 0.08, 0.08, 0.06, 0.06, 0.1, 0.1]
    (tmp_path / "upper7.json").write_text(json.dumps({"keypoints": names, "sigmas": sigmas}))
    name, small = SMALL["tokenpose"]
    model = posetokens.create_model(name, **small, num_keypoints=7)
    export_onnx(model, tmp_path / "seven.onnx", check=False, metainfo=tmp_path / "upper7.json")
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(tmp_path / "seven.onnx"),
                                                          load_external_data=False).metadata_props}
    assert meta["posetokens.metainfo"]["keypoint_names"] == names and meta["posetokens.metainfo"]["sigmas"] == sigmas
    assert meta["posetokens.metainfo"]["flip_indices"] == [0, 2, 1, 4, 3, 6, 5]  # found from left/right
    with pytest.raises(ValueError, match=r"^export: metainfo 'coco' has 17 keypoints but tokenpose_s_coco_256x192 "
                                         r"predicts 7$"):
        export_onnx(model, tmp_path / "x.onnx", check=False, metainfo="coco")
    torch.save({**describe(name, {**small, "num_keypoints": 7}, get_protocol(default_protocol(name)),
                           get_metainfo(tmp_path / "upper7.json")), "state_dict": model.state_dict()},
               tmp_path / "seven.pth")
    (tmp_path / "other7.json").write_text(json.dumps({"keypoints": [f"j{i}" for i in range(7)], "sigmas": sigmas}))
    with pytest.raises(ValueError, match=r"^export: metainfo 'other7' but the checkpoint's model predicts 'upper7' "
                                         r"keypoints \(its own record\); leave metainfo out$"):
        export_onnx(None, tmp_path / "y.onnx", weights=tmp_path / "seven.pth", check=False,
                    metainfo=tmp_path / "other7.json")
    lifter = posetokens.create_model("mixste_h36m_243", num_frames=9, depth=1, dim=16, heads=2, mlp_hidden=32)
    with pytest.raises(ValueError, match=r"^export: metainfo 'coco' for mixste_h36m_243, a lifter: lifters take and "
                                         r"give Human3\.6M's 17 joints \('h36m'\); leave metainfo out$"):
        export_onnx(lifter, tmp_path / "z.onnx", check=False, metainfo="coco")
    assert not any((tmp_path / n).exists() for n in ("x.onnx", "y.onnx", "z.onnx"))


def test_export_refuses_a_bad_opset_before_building_and_names_its_name_argument(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    """--opset 0 was taken, the model exported (10 s) and then refused; a bare state dict's hint named --model,
    which export does not have (it takes the name as its argument)."""
    assert cli(["export", "tokenpose_s_coco_256x192", "--onnx", str(tmp_path / "x.onnx"), "--opset", "0"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"^posetokens export: error: --opset 0: expected an ONNX opset from 7 \(onnxruntime's oldest\) "
                     r"to \d+ \(this onnx's newest\); the default is 18$", err, re.M) and "random weights" not in err
    name, small = SMALL["tokenpose"]
    torch.save(posetokens.create_model(name, **small).state_dict(), tmp_path / "bare.pth")
    assert cli(["export", "--weights", str(tmp_path / "bare.pth"), "--onnx", str(tmp_path / "y.onnx")]) == 2
    assert "give its zoo model name as well (--model with --weights, --pose2d with --pose2d-weights, export's name " \
           "argument)" in capsys.readouterr().err
