"""ONNX export of every 2D and 3D zoo model (``posetokens export``), with an onnxruntime check.

What the graph holds: the network only, with a dynamic batch axis on every input. Pre-processing (the
affine crop, ImageNet normalisation, width normalisation of 2D poses) and decoding stay outside, as in
MMDeploy. Per kind of model:

=============================  =================================  ==============================================
model                          inputs                             outputs
=============================  =================================  ==============================================
TokenPose / PPT (heatmaps)     ``images`` (B, 3, H, W)            ``heatmaps`` (B, K, H/4, W/4)
GTPT (SimCC)                   ``images``                         ``simcc_x`` (B, K, 2W), ``simcc_y`` (B, K, 2H)
PCT (coordinates)              ``images``                         ``keypoints`` (B, K, 2) crop px, ``scores``
multi-view PPT                 ``images`` (B, V, 3, H, W), rays   ``heatmaps`` (B, V, K, H/4, W/4)
lifting, seq2seq               ``keypoints_2d`` (B, F, 17, C)     ``keypoints_3d`` (B, F, 17, 3)
lifting, seq2frame (TPC)       ``keypoints_2d``                   ``keypoints_3d`` (B, T, 17, 3), ``kept_frames``
=============================  =================================  ==============================================

Pruning exports as static top-k gathers (the kept counts are fixed by the config), so the batch stays
dynamic. Attention is written out (``softmax(q k^T) v``) in the graph; HoT's frame cluster uses exact
pairwise distances and ONNX TopK, whose lower-index-first rule for ties matches the eager stable sort.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["ExportResult", "check_onnx", "export_onnx", "input_spec", "io_names"]


class _Deployed(nn.Module):
    """The deployment forward of a zoo model: plain tensors in, a tuple of tensors out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        if m.task == "lifting":
            out, index = m.forward_frames(*inputs)
            return (out, index) if index is not None and m.is_seq2frame else (out,)
        if m.task == "topdown" and m.output_kind == "coords":
            return tuple(m.predict(*inputs))
        out = m(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def io_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """Input and output names of the exported graph of ``model`` (see the module table)."""
    n_in = len(model.dummy_inputs(1))
    if model.task == "lifting":
        outs = ["keypoints_3d", "kept_frames"] if model.is_seq2frame and model.prunes else ["keypoints_3d"]
        return ["keypoints_2d"], outs
    if model.task == "tokenizer":
        return ["joints", "images"][:n_in], ["joints_out", "token_indices"]
    outs = {"heatmap": ["heatmaps"], "simcc": ["simcc_x", "simcc_y"], "coords": ["keypoints", "scores"]}[model.output_kind]
    return ["images", "rays"][:n_in], outs


@dataclass
class ExportResult:
    """What ``export_onnx`` wrote and how well onnxruntime matched PyTorch."""

    path: Path
    inputs: list[str]
    outputs: list[str]
    seconds: float
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output, max over the checked batches

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"path": str(self.path), "inputs": self.inputs, "outputs": self.outputs,
                "seconds": round(self.seconds, 2), "max_abs_diff": self.max_abs_diff}


def _model(model: str | nn.Module | None, weights: str | Path | None, overrides: dict[str, Any],
           metainfo: Any = None) -> tuple[nn.Module, dict]:
    """The model to export and what the ONNX file will say about it (zoo name, overrides, protocol, metainfo:
    ``metainfo`` when given, checked against the model's keypoint count and a checkpoint's own)."""
    from posetokens.checkpoint import describe, load_trained
    from posetokens.data.metainfo import BUILTIN_KEYPOINT_COUNTS, H36M, get_metainfo, metainfo_for_model
    from posetokens.fileio import require_file
    from posetokens.inference.precision import check_float32
    from posetokens.protocols import get_protocol
    from posetokens.registry import config_overrides, create_model, default_protocol, note_if_random_weights

    def keypoints(m: nn.Module, name: str, stored: Any = None) -> Any:  # the metainfo of its keypoint count
        if metainfo is not None:
            given = get_metainfo(metainfo)
            k = 17 if m.task == "lifting" else int(m.cfg.num_keypoints)
            if given.num_keypoints != k:
                raise ValueError(f"export: metainfo {given.name!r} has {given.num_keypoints} keypoints but {name} "
                                 f"predicts {k}")
            if stored is not None and list(stored.keypoint_names) != list(given.keypoint_names):
                raise ValueError(f"export: metainfo {given.name!r} but the checkpoint's model predicts "
                                 f"{stored.name!r} keypoints (its own record); leave metainfo out")
            if m.task == "lifting" and list(given.keypoint_names) != list(H36M.keypoint_names):
                raise ValueError(f"export: metainfo {given.name!r} for {name}, a lifter: lifters take and give "
                                 "Human3.6M's 17 joints ('h36m'); leave metainfo out")
            return given
        if stored is not None:
            return stored
        if m.task == "lifting":
            return H36M  # every lifter takes and gives Human3.6M's 17 joints
        if m.cfg.num_keypoints not in BUILTIN_KEYPOINT_COUNTS:
            return None  # a built model of a skeleton of one's own does not carry its layout (its checkpoint does)
        return metainfo_for_model(m.cfg.num_keypoints, name)

    if isinstance(model, nn.Module):
        if weights is not None or overrides:
            raise ValueError("export_onnx: weights and overrides apply to a zoo name, not to a built model")
        check_float32(model, "export_onnx", precision=True)  # was onnxruntime's multi-line type error
        name = getattr(model, "zoo_name", None)
        if not name:
            if metainfo is not None:
                raise ValueError("export: metainfo is recorded with a zoo model's description; this model has no "
                                 "zoo_name (build it with posetokens.create_model)")
            note_if_random_weights(model, "the model")
            return model, {}
        # what it was built with (a 27-frame lifter said {}), and its keypoints (it said none)
        described = describe(name, config_overrides(name, model.cfg), get_protocol(default_protocol(name)),
                             keypoints(model, name))
        note_if_random_weights(model, "the model")  # create_model's, without weights, unchanged since: once accepted
        return model, described
    if weights is not None:
        require_file(weights, "--weights")
        trained = load_trained(weights, model, overrides or None)
        m = trained.model
        # an official file or a bare state dict records no metainfo: the zoo model's, as for a name (it said null)
        return m, describe(m.zoo_name, trained.meta.get("model_overrides", overrides), trained.protocol,
                           keypoints(m, m.zoo_name, trained.metainfo))
    if model is None:
        raise ValueError("export: give a zoo model name, or weights of ours that name their model")
    m = create_model(model, **overrides)
    described = describe(model, overrides, get_protocol(default_protocol(model)), keypoints(m, model))
    note_if_random_weights(m, "the model")  # said once per model, once the description is accepted
    return m, described


def input_spec(model: nn.Module) -> dict[str, Any]:
    """What the exported graph's inputs hold and its outputs mean, beyond their shapes (``posetokens.inputs`` in
    its metadata): for image models the crop's size, channel order and normalisation (the crop geometry and the
    decoding are the ``protocol``'s, docs/protocols.md); for lifters the 2D's normalisation and the 3D's root."""
    from posetokens.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    if model.task == "lifting":
        return {"keypoints_2d": {"joints": "h36m (the metainfo's order)", "frames": int(model.cfg.num_frames),
                                 "pixels": "x / w * 2 - 1, y / w * 2 - h / w (w, h: the frame's width and height)",
                                 "channels": int(model.cfg.in_channels),
                                 "channel_3": "the 2D keypoint score (3-channel models)"},
                "keypoints_3d": "metres in the camera's axes; posetokens sets joint 0 (pelvis) to 0 after the graph "
                                "(root-relative), it does not subtract it"}
    h, w = (int(v) for v in model.cfg.image_size)
    return {"images": {"size_hw": [h, w], "channels": "RGB", "layout": "NCHW" if model.task == "topdown" else
                       "N, views, C, H, W", "dtype": "float32", "pixels": "(value - mean) / std, values 0-255",
                       "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}


def export_onnx(model: str | nn.Module | None, out: str | Path, weights: str | Path | None = None, opset: int = 18,
                check: bool = True, atol: float | None = None, check_batches: tuple[int, ...] = (1, 3),
                precision: str = "fp32", metainfo: Any = None, **overrides: Any) -> ExportResult:
    """Export a zoo model (name, built, or None with ``weights`` of ours, which name their model) to ONNX at
    ``out`` with a dynamic batch axis; the file's ``metadata_props`` carry ``posetokens.zoo_name``,
    ``posetokens.protocol`` and the rest of the checkpoint description (JSON). With ``check``,
    compare onnxruntime (CPU) with PyTorch on random inputs of each of ``check_batches`` and raise
    ``ValueError`` if any output differs by more than ``atol`` (integer outputs must match exactly). A zoo model
    built without ``weights`` says on stderr that it exports random weights; an ``out`` that is a folder, does not
    end in ``.onnx``, or is the ``weights`` file itself, and an ``atol`` that is not a finite number >= 0, are
    refused before anything is built; an ``opset`` the exporter could not convert the graph to, after the export
    (nothing is written).

    ``precision``: ``fp32`` (default), or ``int8-dynamic``: onnxruntime's dynamic quantisation of the graph's
    MatMul/Gemm weights to int8 (one self-contained file, ``posetokens.precision`` in its metadata); its check
    is a sanity bound (``atol`` default: a quarter of the largest PyTorch output), not an accuracy figure
    (``benchmarks/precision.py`` measures that); ``auto`` is ``fp32``. ``bf16``, ``bf16-backbone`` and
    ``bf16-gemm`` are refused (onnxruntime's CPU kernels have no bfloat16).
    ``atol`` None: 1e-4 for fp32. ``metainfo`` (a :class:`~posetokens.data.metainfo.PoseMetaInfo`, a built-in name
    or a skeleton file): the keypoint definition the file records, for a model of a skeleton of one's own built
    in Python (default: a checkpoint's own record, else the zoo model's of its keypoint count, else none)."""
    from posetokens.fileio import check_no_overwrite, writable_dir
    from posetokens.inference.precision import BF16_PRECISIONS, parse_choice
    from posetokens.protocols.predict import evaluating

    precision = parse_choice(precision, "torch").precision  # the runtime is not this function's
    if precision == "auto":  # what auto resolves to for onnxruntime (resolve_precision): a float32 graph
        precision = "fp32"
    if precision in BF16_PRECISIONS:
        raise ValueError(f"export --precision {precision}: onnxruntime's CPU kernels have no bfloat16; export fp32 "
                         f"(or int8-dynamic) and run bfloat16 in PyTorch (infer or lift --precision {precision})")
    if (check or precision == "int8-dynamic") and importlib.util.find_spec("onnxruntime") is None:  # before the export
        raise ValueError("onnxruntime is not installed (pip install 'posetokens[onnx]'): the export's check needs it"
                         + (" (or give --no-check)" if precision == "fp32" else ", and so does int8-dynamic"))
    try:
        import onnx

        newest = int(onnx.defs.onnx_opset_version())
    except ImportError:  # the exporter needs it and says so
        newest = 10**6
    if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= newest:  # said after the export
        raise ValueError(f"--opset {opset!r}: expected an ONNX opset from 7 (onnxruntime's oldest) to {newest} (this "
                         "onnx's newest); the default is 18")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--onnx {out} is a folder; expected the path of the .onnx file to write")
    if atol is not None and not (math.isfinite(atol) and atol >= 0):
        raise ValueError(f"--atol {atol}: expected a finite number >= 0 (the largest |onnxruntime - PyTorch| allowed)")
    # the graph's weights go beside it in <name>.data (the exporter's external-data file): an input there is refused too
    check_no_overwrite([("--weights", weights)],
                       [("ONNX file", out, "choose another --onnx path"),
                        ("ONNX data file", out.with_name(out.name + ".data"), "choose another --onnx path")])
    if out.suffix.lower() != ".onnx":  # a file of the user's given by mistake (a config, a checkpoint) is not replaced
        raise ValueError(f"--onnx {out}: expected a path ending in .onnx (an earlier .onnx file there is replaced)")
    writable_dir(out.parent, "folder of --onnx")
    m, description = _model(model, weights, overrides, metainfo)
    with evaluating(m):  # a model being trained goes back to its modes (it was left in eval)
        return _export(m, description, out, opset, check, atol, check_batches, precision)


def _export(m: nn.Module, description: dict, out: Path, opset: int, check: bool, atol: float | None,
            check_batches: tuple[int, ...], precision: str) -> ExportResult:
    """:func:`export_onnx` once its arguments are checked and ``m`` (in eval mode) and its description built."""
    from posetokens.layers.attention import use_fused_attn

    names_in, names_out = io_names(m)
    example = tuple(t.cpu() for t in m.dummy_inputs(2))
    batch = torch.export.Dim("batch", min=1, max=4096)
    wrapper = _Deployed(copy.deepcopy(m).cpu()).eval()  # a copy: the caller's model stays on its device
    start = time.perf_counter()
    # written in a temporary folder beside ``out`` under its final name (the graph names its external-data file),
    # then moved into place: an interrupted or failed export leaves any earlier file as it was
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        staged = Path(tmp) / out.name
        registration = logging.getLogger("torch.onnx._internal.exporter._registration")
        converter = logging.getLogger("onnxscript.version_converter")  # its traceback when an opset is out of reach
        levels = registration.level, converter.level
        registration.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms", x4
        converter.setLevel(logging.CRITICAL)  # said below in one line: the graph's opset is checked
        with warnings.catch_warnings(), use_fused_attn(False), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(wrapper, example, str(staged), input_names=names_in, output_names=names_out,
                                  opset_version=opset, dynamo=True, dynamic_shapes=(tuple({0: batch} for _ in example),),
                                  optimize=True, verbose=False)
            finally:
                registration.setLevel(levels[0])
                converter.setLevel(levels[1])
        written = _opset(staged)
        if written != opset:  # the exporter writes its own opset when converting the graph to ``opset`` fails
            raise ValueError(f"--opset {opset}: PyTorch's exporter could not write this model at opset {opset} (it "
                             f"came out at opset {written}); nothing was written; use --opset {written}")
        if precision == "int8-dynamic":  # one self-contained file: int8 weights are small
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(tmp) / "quantized" / out.name
            quantized.parent.mkdir()
            logging.disable(logging.WARNING)  # onnxruntime's advice to pre-process, said on the root logger
            try:
                quantize_dynamic(str(staged), str(quantized), weight_type=QuantType.QInt8,
                                 op_types_to_quantize=["MatMul", "Gemm"])
            finally:
                logging.disable(logging.NOTSET)
            for f in Path(tmp).iterdir():
                if f.is_file():
                    f.unlink()
            os.replace(quantized, staged)
            quantized.parent.rmdir()
            description = {**description, "precision": precision}
        if description:  # the pipeline around the graph travels with it (metadata_props, JSON values)
            description = {**description, "inputs": input_spec(m)}
            import json

            import onnx

            proto = onnx.load(str(staged), load_external_data=False)  # the weights stay in their data file
            for key, value in description.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = f"posetokens.{key}", json.dumps(value)
            onnx.save(proto, str(staged))
        seconds = time.perf_counter() - start
        diffs = None
        if check:  # on the staged graph: one that fails is not kept, and an earlier file at ``out`` stays
            try:
                diffs = check_onnx(m, staged, check_batches, 1e-4 if atol is None and precision == "fp32" else atol)
            except ValueError as e:
                raise ValueError(str(e).replace(str(staged), str(out)) + "; the graph was not kept"
                                 + (f" ({out} is the earlier file, unchanged)" if out.exists() else "")) from None
        from posetokens.fileio import current_umask

        data = out.with_name(out.name + ".data")
        # an earlier graph at ``out`` whose weights are in <name>.data, replaced by one file (int8): that data file
        # would be left beside it, unused; it goes with the graph it belonged to
        orphan = not (Path(tmp) / data.name).exists() and data.is_file() and data.name in _external_files(out)
        for f in sorted(Path(tmp).iterdir(), key=lambda p: p == staged):  # the graph last: its data is in place first
            os.chmod(f, 0o666 & ~current_umask())
            os.replace(f, out.parent / f.name)
    if orphan:
        data.unlink(missing_ok=True)
        print(f"posetokens: removed {data}, the weights of the graph {out} replaced (the new graph is one file)",
              file=sys.stderr)
    return ExportResult(out, names_in, names_out, seconds, diffs or {})


def _opset(path: Path) -> int | None:
    """The default-domain (``ai.onnx``) opset of the ONNX graph at ``path`` (None if it imports none)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _external_files(path: Path) -> set[str]:
    """The external-data file names the ONNX graph at ``path`` reads its tensors from (empty if it has none or
    is not an ONNX file)."""
    if not path.is_file():
        return set()
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a graph onnx can read: it names no data file of ours
        return set()
    return {e.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
            for e in t.external_data if e.key == "location"}


@torch.no_grad()
def check_onnx(model: nn.Module, path: str | Path, batches: tuple[int, ...] = (1, 3), atol: float | None = 1e-4,
               seed: int = 0) -> dict[str, float]:
    """Max abs difference per output between onnxruntime (CPU) and PyTorch eager on random inputs of each
    batch size; raises ``ValueError`` naming the output when it exceeds ``atol`` (None, for a quantised graph:
    a quarter of the largest PyTorch value of that output, and integer outputs such as kept frames may differ)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names_in = [i.name for i in sess.get_inputs()]
    names_out = [o.name for o in sess.get_outputs()]
    wrapper = _Deployed(model).eval()
    worst: dict[str, float] = {n: 0.0 for n in names_out}
    for b in batches:
        torch.manual_seed(seed + b)
        inputs = tuple(t.cpu() for t in model.dummy_inputs(b))
        ref = wrapper(*inputs)
        got = sess.run(None, {n: t.numpy() for n, t in zip(names_in, inputs)})
        for name, r, g in zip(names_out, ref, got):
            worst[name] = max(worst[name], output_difference(r.numpy(), g, atol, str(path), name, b))
    return worst


def output_difference(ref: np.ndarray, got: np.ndarray, atol: float | None, path: str, name: str, batch: int) -> float:
    """Max abs difference between PyTorch's ``ref`` and onnxruntime's ``got`` of output ``name``; ``ValueError``
    naming the graph and the output when the shapes differ, the difference is not finite, it exceeds ``atol``, or
    an integer output (kept frames) differs at all. ``atol`` None (a quantised graph): a quarter of the largest
    ``|ref|``, and integer outputs may differ."""
    if ref.shape != got.shape:
        raise ValueError(f"{path}: output {name!r} has shape {got.shape} in onnxruntime, {ref.shape} in PyTorch "
                         f"(batch {batch})")
    exact = not np.issubdtype(ref.dtype, np.floating)
    diff = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max()) if ref.size else 0.0
    bound = atol if atol is not None else (math.inf if exact else 0.25 * float(np.abs(ref).max()))
    if (exact and atol is not None and diff != 0) or diff > bound or not np.isfinite(diff):
        raise ValueError(f"{path}: onnxruntime differs from PyTorch on output {name!r} by {diff:.3g} "
                         f"(batch {batch}; allowed {0 if exact else bound:.3g})")
    return diff
