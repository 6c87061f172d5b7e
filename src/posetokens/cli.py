"""The ``posetokens`` command line: models, flops, convert, parity, train, test, evaluate, infer, lift, export."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from posetokens.runtime import int_at_least, note


def _cmd_models(args: argparse.Namespace) -> int:
    from posetokens.registry import get_entry, list_models

    names = list_models(args.filter or "")
    if not names:
        raise ValueError(f"no zoo model name contains {args.filter!r}; `posetokens models` lists them all")
    for name in names:
        print(f"{name:32s} {get_entry(name).family}")
    return 0


def _cmd_flops(args: argparse.Namespace) -> int:
    from posetokens.engine.zoo import efficiency_table, model_figures

    if args.json:
        print(json.dumps(model_figures(args.name)))
    else:
        print(efficiency_table([args.name]))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from posetokens.convert import convert_checkpoint

    out = convert_checkpoint(args.model, args.official, args.out, overwrite=args.overwrite)
    print(f"converted {args.official} -> {out} ({args.model})")
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from posetokens.parity import run_parity

    report = run_parity(args.dir, atol=args.atol)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.table())
    return 0 if report.passed else 1


def _load_cfg(args: argparse.Namespace):
    from posetokens.engine.config import load_config

    if args.config is None:  # test --weights W alone: the recipe stored in the checkpoint
        if args.set or getattr(args, "work_dir", None):
            raise ValueError("--set and --work-dir need a CONFIG (without one, the checkpoint's recipe is used as is)")
        return None
    overrides = list(args.set or [])
    if getattr(args, "work_dir", None):
        overrides.append(f"work_dir={args.work_dir}")
    return load_config(args.config, overrides)


def _print_metrics(metrics: dict, as_json: bool) -> None:
    """The metrics as one json line, a table of body parts (COCO-WholeBody), or one row."""
    if as_json:
        print(json.dumps(metrics))
        return
    if "wholebody_AP" in metrics:  # COCO-WholeBody: the AP... keys repeat the whole-body part's
        parts: dict[str, dict[str, float]] = {}
        for key, v in metrics.items():
            if "_" in key:
                part, name = key.rsplit("_", 1)
                parts.setdefault(part, {})[name] = v
        _print_part_table(parts)
        return
    names = list(metrics)
    print("| " + " | ".join(names) + " |")
    print("|" + "---|" * len(names))
    print("| " + " | ".join(f"{metrics[n]:.4f}" for n in names) + " |")


def _cmd_train(args: argparse.Namespace) -> int:
    import logging

    from posetokens.engine.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    metrics = train(_load_cfg(args), resume=args.resume, overwrite=args.overwrite,
                    allow_config_change=args.allow_config_change)
    if metrics:
        _print_metrics(metrics, False)
    return 0


@contextlib.contextmanager
def _library_warnings() -> Iterator[None]:
    """The library logs its warnings (a loader's skips, the coverage of the predictions, the ground truth's
    quirks); on the command line they read as the others do: ``posetokens: warning: ...`` on stderr."""
    import logging

    said = logging.StreamHandler(sys.stderr)
    said.setFormatter(logging.Formatter("posetokens: warning: %(message)s"))
    said.setLevel(logging.WARNING)
    log = logging.getLogger("posetokens")
    shown = any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.stdout)
                for h in logging.getLogger().handlers)  # e.g. logging.basicConfig() in a notebook: shown there
    if shown:
        yield
        return
    log.addHandler(said)
    try:
        yield
    finally:
        log.removeHandler(said)


def _cmd_test(args: argparse.Namespace) -> int:
    from posetokens.engine.trainer import test
    from posetokens.fileio import check_no_overwrite

    if args.out:
        check_no_overwrite([("CONFIG", args.config)], [("--out", args.out)])
    with _library_warnings():
        metrics = test(_load_cfg(args), args.weights, args.out)
    _print_metrics(metrics, args.json)
    return 0


def _print_part_table(metrics: dict[str, dict[str, float]]) -> None:
    """One row per body part, one column per metric."""
    names = list(next(iter(metrics.values())))
    print("| part | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for part, m in metrics.items():
        print(f"| {part} | " + " | ".join(f"{m[n]:.4f}" for n in names) + " |")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from posetokens.data.metainfo import get_metainfo
    from posetokens.evaluation.coco import evaluate_keypoints
    from posetokens.protocols import get_protocol

    proto = get_protocol(args.protocol)
    if proto.task != "topdown":
        raise ValueError(f"--protocol {args.protocol}: a {proto.task} protocol has no COCO-style evaluation; use one of "
                         "tokenpose, gtpt, pct, mmpose")
    rule = proto.eval
    changes: dict = {}
    if args.rescore_thr is not None:
        changes["rescore_thr"] = args.rescore_thr
    if args.nms_area is not None:
        changes["nms_area"] = args.nms_area
    if args.nms_thr is not None:
        try:
            changes["nms_thr"] = None if str(args.nms_thr).lower() == "none" else float(args.nms_thr)
        except ValueError:
            raise ValueError(f"--nms-thr: expected a number or 'none', got {args.nms_thr!r}") from None
    if args.no_rescore:
        if args.rescore_thr is not None:
            raise ValueError("--no-rescore and --rescore-thr contradict each other; give one of them")
        changes["rescore_thr"] = None
    for flag, key, low in (("--rescore-thr", "rescore_thr", "[0"), ("--nms-thr", "nms_thr", "(0")):
        v = changes.get(key)  # a keypoint score (rescoring) and an OKS (NMS): both in [0, 1]
        if v is not None and not (math.isfinite(v) and (v >= 0 if low == "[0" else v > 0) and v <= 1):
            raise ValueError(f"{flag}: expected a number in {low}, 1], got {v}")
    rule = dataclasses.replace(rule, **changes)
    meta = get_metainfo("coco_wholebody" if args.dataset == "wholebody" else args.dataset)
    with _library_warnings():
        try:
            metrics = evaluate_keypoints(args.gt, args.pred, meta, rule)
        except ValueError as e:  # the library's hint names its argument; here it is a flag
            raise ValueError(str(e).replace("pass nms_area='keypoints'", "give --nms-area keypoints").replace(
                "rescore_thr=None and nms_thr=None", "--no-rescore --nms-thr none")) from None
    if args.dataset == "mpii":
        note("this is an OKS AP with MPII's sigmas; MPII's reported metric is PCKh@0.5, which `posetokens test` "
             "computes with data.mpii_headboxes")
    _print_metrics(metrics, args.json)
    return 0


def _dataset_arg(text: str) -> str:
    """``evaluate --dataset``: a built-in layout with OKS sigmas, or a skeleton file (checked when it is read)."""
    from posetokens.data.metainfo import is_skeleton_file

    if is_skeleton_file(text) or text in ("coco", "crowdpose", "mpii", "wholebody"):
        return text
    raise argparse.ArgumentTypeError(f"expected coco, crowdpose, mpii, wholebody or a skeleton file ending in .json, "
                                     f"got {text!r}")


#: the end of a video command's summary line when no person boxes were given
_WHOLE_FRAME = ("; no --boxes or --detector: each {0} was taken as one person's box (a crowd gives one pose per {0}; "
                "{1})")


def _boxes_arg(args: argparse.Namespace):
    if args.boxes and args.detector:
        raise ValueError("give either --boxes (a detections json) or --detector (an ONNX model), not both")
    if args.detector:
        from posetokens.inference.detector import ONNXDetector

        size = args.detector_size
        return ONNXDetector(args.detector, score_thr=args.bbox_thr, input_size=(size, size))
    return args.boxes


def _set_threads(args: argparse.Namespace) -> None:
    """--threads: PyTorch's intra-op threads, which onnxruntime's sessions take too (posetokens.inference.precision)."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def _cmd_infer(args: argparse.Namespace) -> int:
    from posetokens.fileio import check_folder_path
    from posetokens.inference.api import (PoseEstimator, check_outputs, check_run_options, detections_for,
                                          note_earlier_overlays, open_input)
    from posetokens.inference.filters import filter_flags_given, filter_from_args
    from posetokens.inference.precision import check_model_choice, parse_choice

    _set_threads(args)

    # everything that needs no model is checked before the model is built (no random-weights note before a refusal):
    source = open_input(args.input, loop=args.loop)  # a bad input
    check_folder_path(args.out)  # an --out that is a file; outputs that would overwrite an input
    boxes = _boxes_arg(args)
    check_outputs(source, args.out, draw=not args.no_draw, show_tokens=args.show_tokens,
                  coco_results=args.coco_results, mmpose_preds=args.mmpose_preds, boxes=boxes, weights=args.weights)
    # images: only a filter (or a filter flag) asked for reaches the check, which refuses it in one line
    smooth = filter_from_args(args) if source.kind in ("video", "stream") or filter_flags_given(args) else None
    check_run_options(source, det_every=args.det_every, smooth=smooth, max_frames=args.max_frames)
    person_boxes = detections_for(boxes, source, args.bbox_thr)  # a bad detections file, read once
    if args.no_draw:
        note_earlier_overlays(source, args.out, args.max_frames)
    check_model_choice(None, parse_choice(args.precision, args.runtime), show_tokens=args.show_tokens)  # pre-export
    est = PoseEstimator(args.model, args.weights, device=args.device, flip_test=args.flip_test,  # notes random weights
                        batch_size=args.batch_size, protocol=args.protocol, precision=args.precision,
                        runtime=args.runtime)
    summary = est.infer(source, args.out, boxes=person_boxes, bbox_thr=args.bbox_thr, kpt_thr=args.kpt_thr,
                        show_tokens=args.show_tokens, draw=not args.no_draw, coco_results=args.coco_results,
                        strict=args.strict, progress=args.progress, det_every=args.det_every,
                        mmpose_preds=args.mmpose_preds, max_frames=args.max_frames, smooth=smooth)
    skipped = summary["skipped"]
    print(f"{summary['frames']} frame(s), {summary['instances']} person instance(s) -> {args.out}"
          + (f"; skipped {len(skipped)} unreadable image(s): " + ", ".join(s["file"] for s in skipped) if skipped else "")
          + (_WHOLE_FRAME.format(*(("image", "docs/inference.md") if source.kind == "images"
                                   else ("frame", "docs/video.md"))) if boxes is None else ""))
    _print_stages(args, summary)
    return 0


def _print_stages(args: argparse.Namespace, summary: dict) -> None:
    """The per-stage time table of a video command run with --progress."""
    from posetokens.inference.api import show_progress
    from posetokens.inference.stages import stage_table

    if summary.get("stages", {}).get("frames") and summary.get("kind", "video") != "images" \
            and show_progress(args.progress):
        print(stage_table(summary["stages"]))


def _cmd_lift(args: argparse.Namespace) -> int:
    from posetokens.inference.filters import filter_from_args
    from posetokens.inference.lifting import lift  # notes each model that runs with random weights

    _set_threads(args)

    size = None
    if args.image_size:
        try:
            size = tuple(int(v) for v in args.image_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2:
            raise ValueError(f"--image-size must be WIDTHxHEIGHT, e.g. 1280x720, got {args.image_size!r}")
    extra = {"smooth": filter_from_args(args), "online": args.online, "lookahead": args.lookahead}  # One-Euro default
    extra.update(precision=args.precision, runtime=args.runtime)
    boxes = _boxes_arg(args)
    summary = lift(args.input, args.model, args.out, weights=args.weights, pose2d=args.pose2d,
                   pose2d_weights=args.pose2d_weights, boxes=boxes, bbox_thr=args.bbox_thr,
                   layout=args.layout, image_size=size, fps=args.fps, flip_test=args.flip_test, device=args.device,
                   draw=not args.no_draw, kpt_thr=args.kpt_thr, min_track_frames=args.min_track_frames,
                   progress=args.progress, loop=args.loop, det_every=args.det_every, max_frames=args.max_frames,
                   max_panels=args.max_panels, **extra)
    short = summary["tracks_skipped"]
    whole = boxes is None and not summary.get("from_json")
    print(f"{summary['frames']} frame(s), {summary['frames_with_person']} with a person; {summary['tracks']} "
          f"track(s) lifted" + (f", {short} shorter than {summary['min_track_frames']} frames skipped" if short else "")
          + f" -> {args.out}" + (_WHOLE_FRAME.format("frame", "docs/video.md") if whole else ""))
    _print_stages(args, summary)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from posetokens.export import export_onnx

    res = export_onnx(args.name, args.onnx, weights=args.weights, opset=args.opset, check=not args.no_check,
                      precision=args.precision,
                      atol=args.atol)
    diffs = ", ".join(f"{k} {v:.2g}" for k, v in res.max_abs_diff.items())
    print(f"exported {args.name or args.weights} -> {res.path} ({res.seconds:.1f} s)" + (f"; onnxruntime vs PyTorch max |diff|: {diffs}" if diffs else ""))
    return 0


def _unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (a score threshold)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _add_box_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--boxes", help="person boxes: a COCO-results detections json (image_id from the file name; "
                                   "videos: the 0-based frame index)")
    s.add_argument("--detector", help="person boxes from an ONNX detector (contract: posetokens.inference.detector)")
    s.add_argument("--detector-size", type=int_at_least(1), default=640,
                   help="detector input side in pixels for dynamic-size models (default 640)")
    s.add_argument("--bbox-thr", type=_unit_float, default=0.3, help="minimum box score (default 0.3)")
    s.add_argument("--kpt-thr", type=_unit_float, default=None,
                   help="minimum keypoint score drawn (default 0.3 of the model's best score: 0.3 for heatmap "
                        "models, about 0.03 for GTPT's SimCC softmax peaks)")
    s.add_argument("--flip-test", action="store_true", help="average with the prediction on the mirrored input")
    s.add_argument("--device", default="cpu", help="where the models run: cpu (default), cuda, cuda:1, ...")
    s.add_argument("--no-draw", action="store_true", help="write the json only, no pictures")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr with the time of each stage (decode, detector, 2D model, tracking, "
                        "lifting, drawing, encode), and the per-stage table at the end (default: on when stderr is "
                        "a terminal)")
    s.add_argument("--det-every", type=int_at_least(1), default=1, metavar="N",
                   help="videos: person boxes (detector, --boxes or the whole frame) on every N-th frame only; in "
                        "between each tracked person's box is carried from their pose (default 1: every frame)")
    s.add_argument("--max-frames", type=int_at_least(1), default=None, metavar="N", help="stop after N frames (or images)")


def _add_precision_args(s: argparse.ArgumentParser, export: bool = False) -> None:
    """--precision (and, but for export, --runtime): the choice of posetokens.inference.precision (its names are
    checked there, so building the parser imports no torch)."""
    if export:
        s.add_argument("--precision", default="fp32", help="fp32 (default; auto is fp32 too: a graph is float32) or "
                                                           "int8-dynamic (onnxruntime's dynamic int8 quantisation of "
                                                           "the MatMul/Gemm weights)")
        return
    s.add_argument("--precision", default=None, help="number format of the models: auto (default: bf16-gemm for PCT "
                                                     "and the lifters on a CPU with AMX where it pays, "
                                                     "else fp32), fp32, bf16, "
                                                     "bf16-backbone (the image backbone in bfloat16, the rest float32), "
                                                     "bf16-gemm (float32 with each Linear and 2-D convolution in "
                                                     "oneDNN's bfloat16 math mode; a CPU with AMX, "
                                                     "PyTorch eager only) or int8-dynamic (bf16 needs AVX512-BF16/AMX "
                                                     "or a GPU; outputs are float32 either way; docs/speed.md)")
    s.add_argument("--threads", type=int_at_least(1), default=None, metavar="N",
                   help="CPU threads for the models (PyTorch and onnxruntime; default: PyTorch's, the cores "
                        "OMP_NUM_THREADS allows)")
    s.add_argument("--runtime", default=None, help="what runs them: auto (default: float32 image models through "
                                                   "onnxruntime on the CPU where it is installed, exported once and "
                                                   "cached; else torch), "
                                                   "torch (PyTorch eager), compile (torch.compile, at the first "
                                                   "batch) or onnxruntime")


def _add_filter_args(s: argparse.ArgumentParser, default: str) -> None:
    """Temporal filter flags (posetokens.inference.filters) and online lifting."""
    s.add_argument("--filter", choices=["off", "one_euro", "savgol"], default=None,
                   help=f"temporal filter of the 2D and 3D keypoints (default: {default}; off: bit-identical outputs)")
    s.add_argument("--filter-min-cutoff", type=float, help="One-Euro minimum cutoff, Hz (default 1.0)")
    s.add_argument("--filter-beta", type=float, help="One-Euro speed coefficient (default 20; speed in metres, "
                                                     "or half frame widths for 2D, per second)")
    s.add_argument("--filter-d-cutoff", type=float, help="One-Euro cutoff of the speed, Hz (default 1.0)")
    s.add_argument("--filter-window", type=int, help="Savitzky-Golay window, odd number of frames (default 9)")
    s.add_argument("--filter-order", type=int, help="Savitzky-Golay polynomial order (default 2)")
    s.add_argument("--filter-gap", choices=["restart", "hold"],
                   help="at frames without the person: restart the filter after the gap (default) or hold its state")


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but an unknown option is named before a missing argument: ``posetokens --bogus`` said
    "the following arguments are required: command", and ``infer x --bogus`` that ``--out`` is required."""

    argv: Sequence[str] = ()  # the command line being parsed (set by build_parser's caller, main)

    def error(self, message: str) -> NoReturn:
        if message.startswith("the following arguments are required"):
            words = list(self.argv)
            words = words[:words.index("--")] if "--" in words else words
            known = list(self._option_string_actions)
            unknown = [w for w in words if w.startswith("-") and " " not in w  # argparse reads those as values
                       and not self._negative_number_matcher.match(w)
                       and not any(k.startswith(w.split("=", 1)[0]) for k in known)]  # abbreviations are known
            if unknown:
                message = f"unrecognized arguments: {' '.join(unknown)}"
        super().error(message)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser of the ``posetokens`` command (``argv``: the command line it will parse, so that an
    unknown option is named before a missing argument)."""
    _Parser.argv = list(argv)
    from posetokens import __version__

    p = _Parser(prog="posetokens", description="Efficient token-based human pose estimation.")
    p.add_argument("--version", action="version", version=f"posetokens {__version__} (torch {_torch_version()})")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("models", help="list the zoo model names")
    s.add_argument("filter", nargs="?", help="only names containing this text")
    s.set_defaults(fn=_cmd_models)

    s = sub.add_parser("flops", help="params, true GMACs and paper-convention GFLOPs of a zoo model")
    s.add_argument("name", help="zoo model name (posetokens models lists them)")
    s.add_argument("--json", action="store_true", help='print {"model", "params_m", "gmacs", "paper_gflops"}')
    s.set_defaults(fn=_cmd_flops)

    s = sub.add_parser("convert", help="convert an official checkpoint to ours")
    s.add_argument("--model", required=True, help="zoo model name")
    s.add_argument("--official", required=True, help="official checkpoint (.pth)")
    s.add_argument("--out", required=True, help="output file (never the --official file)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.set_defaults(fn=_cmd_convert)

    s = sub.add_parser("parity", help="compare against a fixture made with the official code")
    s.add_argument("dir", help="fixture folder: a model fixture (config.json, checkpoint.pth, inputs.pt, outputs.pt) "
                               "or a pipeline fixture (inputs.json with kind and method)")
    s.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    s.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (default 1e-4; a fixture "
                                                            "README's tighter tolerance wins)")
    s.set_defaults(fn=_cmd_parity)

    s = sub.add_parser("train", help="train a recipe (torchrun-ready)")
    s.add_argument("config", help="YAML recipe, e.g. configs/ppt_s_coco_256x192.yaml")
    s.add_argument("--work-dir", help="output folder (overrides work_dir)")
    s.add_argument("--resume", action="store_true", help="continue exactly from WORK_DIR/last.pth")
    s.add_argument("--overwrite", action="store_true",
                   help="start a new run in a WORK_DIR that holds one: its files move to WORK_DIR/archive/<time>/")
    s.add_argument("--allow-config-change", action="store_true",
                   help="--resume under a config that differs from the stored one (the changes are logged)")
    s.add_argument("--set", action="append", metavar="A.B=VALUE", help="override a config field (repeatable)")
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("test", help="evaluate weights on the recipe's val/test set")
    s.add_argument("config", nargs="?", help="YAML recipe; optional for checkpoints we wrote (they carry theirs)")
    s.add_argument("--weights", required=True, help="checkpoint: ours (any trainer output) or official (needs CONFIG)")
    s.add_argument("--out", help="predictions json (COCO results format; COCO-style top-down models only); default "
                                 "WORK_DIR/test_predictions.json")
    s.add_argument("--work-dir", help="output folder (overrides work_dir)")
    s.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    s.add_argument("--set", action="append", metavar="A.B=VALUE", help="override a config field (repeatable)")
    s.set_defaults(fn=_cmd_test)

    s = sub.add_parser("evaluate", help="score a COCO-results predictions file against COCO-format GT")
    s.add_argument("--gt", required=True, help="COCO-format keypoint ground truth json")
    s.add_argument("--pred", required=True, help="predictions json in the COCO results format")
    s.add_argument("--dataset", default="coco", type=_dataset_arg, metavar="{coco,crowdpose,mpii,wholebody,FILE.json}",
                   help="selects the OKS sigmas and the COCOeval mode; 'wholebody' = COCO-WholeBody, "
                        "AP/AR per part (body, foot, face, left/right hand, hand = their mean, whole body); or a "
                        "skeleton file of your own (a COCO categories entry with 'sigmas', docs/training.md)")
    s.add_argument("--protocol", default="tokenpose",
                   help="whose rescoring, OKS-NMS and COCOeval: tokenpose (default: thr 0.2, pycocotools), gtpt "
                        "(thr 0.01), pct or mmpose (thr 0.2, xtcocotools rules); all use OKS-NMS 0.9 on the padded "
                        "box area that each result's 'area' carries")
    s.add_argument("--rescore-thr", type=float, help="keypoint-score threshold of the box x keypoint rescoring")
    s.add_argument("--nms-area", choices=["box", "keypoints"],
                   help="OKS-NMS area: 'box' (each result's 'area', the padded box; official) or 'keypoints' "
                        "(the keypoint extent, for results without 'area')")
    s.add_argument("--no-rescore", action="store_true", help="keep the given scores (no box x keypoint rescoring)")
    s.add_argument("--nms-thr", default=None, help="OKS-NMS threshold, or 'none' (default: the protocol's, 0.9)")
    s.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    s.set_defaults(fn=_cmd_evaluate)

    s = sub.add_parser("infer", help="2D poses on an image, a folder of images or a video (json + pictures)")
    s.add_argument("input", help="an image, a folder of images, a video, a webcam index (0) or a stream URL "
                                 "(rtsp://, http(s)://, udp://, ...)")
    s.add_argument("--model", help="2D zoo model name (optional with --weights of ours: they name their model)")
    s.add_argument("--weights", help="checkpoint (ours or official); none: random weights")
    s.add_argument("--protocol", help="crop, decoding and flip rule (default: the checkpoint's, else the model's "
                                      "official protocol)")
    s.add_argument("--coco-results", help="also write every person as COCO keypoint results (json) that "
                                          "`posetokens evaluate` scores")
    s.add_argument("--mmpose-preds", help="also write an MMPose-style prediction file (json: meta_info and "
                                          "instance_info per frame, with track ids), as MMPose's demo writes")
    s.add_argument("--out", required=True, help="output folder")
    _add_box_args(s)
    s.add_argument("--batch-size", type=int_at_least(1), default=16, help="crops per forward pass (default 16)")
    s.add_argument("--show-tokens", action="store_true", help="also draw the tokens kept at each pruning layer")
    s.add_argument("--loop", type=int_at_least(0), default=None, metavar="N",
                   help="read the input video as a live stream (frame by frame, no known length), N times over "
                        "(0: until Ctrl-C); stands in for a webcam or stream URL")
    s.add_argument("--strict", action="store_true", help="stop at the first unreadable or truncated image (default: "
                                                         "skip it, count it and name it in the summary)")
    _add_filter_args(s, "one_euro on videos and streams")
    _add_precision_args(s)
    s.set_defaults(fn=_cmd_infer)

    s = sub.add_parser("lift", help="3D poses from a video (through a 2D model) or a 2D-keypoint json")
    s.add_argument("input", help="a video, a json written by `posetokens infer`, a webcam index (0) or a stream URL")
    s.add_argument("--model", help="lifting zoo model, e.g. hot_mixste_h36m_243 (optional with --weights of ours)")
    s.add_argument("--weights", help="lifting checkpoint; none: random weights")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--pose2d", help="COCO-17 2D model for video input (default: the one --pose2d-weights names, "
                                    "else tokenpose_s_coco_256x192)")
    s.add_argument("--pose2d-weights", help="2D model checkpoint")
    s.add_argument("--layout", default=None, choices=["coco", "h36m"],
                   help="keypoint layout of a json input (default: the one the json records, else coco)")
    s.add_argument("--image-size", help="WIDTHxHEIGHT of the frames, for a json without width/height")
    s.add_argument("--fps", type=float, default=None,
                   help="frame rate of a json's frames (default: the records' 'fps', which infer writes for a "
                        "video, else 25)")
    s.add_argument("--min-track-frames", type=int_at_least(1), default=None,
                   help="lift every tracked person seen in at least this many frames (default 30, at most half "
                        "the clip); shorter tracks are skipped and counted")
    s.add_argument("--loop", type=int_at_least(0), default=None, metavar="N",
                   help="read the input video as a live stream, N times over (0: until Ctrl-C)")
    _add_box_args(s)
    _add_filter_args(s, "one_euro")
    s.add_argument("--online", action="store_true", help="lift with causal windows (each frame's 3D from the frames "
                                                         "up to it, as a live system would; prints the latency)")
    s.add_argument("--lookahead", type=int_at_least(0), default=0, help="online: frames of the future each 3D waits for "
                                                            "(the latency; default 0)")
    s.add_argument("--max-panels", type=int_at_least(1), default=4, metavar="N",
                   help="video: at most N 3D panels, one per lifted person (the N best-scored tracks; default 4)")
    _add_precision_args(s)
    s.set_defaults(fn=_cmd_lift)

    s = sub.add_parser("export", help="export a zoo model to ONNX and check it with onnxruntime")
    s.add_argument("name", nargs="?", help="zoo model name (optional with --weights of ours: they name their model)")
    s.add_argument("--weights", help="checkpoint; none: random weights")
    s.add_argument("--onnx", required=True, help="output .onnx file")
    s.add_argument("--opset", type=int, default=18, help="ONNX opset of the graph (default 18)")
    s.add_argument("--atol", type=float, default=None, help="max |onnxruntime - PyTorch| allowed (default 1e-4; "
                                                            "int8-dynamic: a quarter of the largest output)")
    s.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    _add_precision_args(s, export=True)
    s.set_defaults(fn=_cmd_export)
    return p


def user_error_message(e: BaseException) -> str | None:
    """The one-line message of an error a user can cause (bad input, a file that cannot be read or written), or
    None for anything else: those are our bugs and keep their traceback. The one place the CLI decides this."""
    import zipfile

    from posetokens.runtime import UserKeyError

    if isinstance(e, UserKeyError):  # any other KeyError is a bug of ours: its traceback stays
        return str(e)
    if isinstance(e, OSError) and not isinstance(e, (BlockingIOError, ConnectionError)) and \
            (e.filename is not None or isinstance(e, FileNotFoundError)):
        what = e.strerror or str(e)
        where = f": {e.filename}" if e.filename is not None else ""
        return str(e) if not where else what if str(e.filename) in what else f"{what}{where}"
    if isinstance(e, zipfile.BadZipFile):
        return f"not a readable npz/zip file ({e})"
    if isinstance(e, (ValueError, FileNotFoundError)):  # ValueError includes JSON and Unicode decoding errors
        return str(e)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one clear line and exit 2 (:func:`user_error_message`)."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(argv).parse_args(argv)
    except SystemExit as e:  # argparse said why (usage line and one error line on stderr); --help exits 0
        return e.code if isinstance(e.code, int) else 2
    if args.command in ("infer", "lift"):  # train/test apply it in the trainer
        from posetokens.runtime import retain_freed_memory

        retain_freed_memory()
    return run_command(f"posetokens {args.command}", lambda: args.fn(args))


def run_command(prog: str, fn: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``fn()``'s exit code; a user error is one line on stderr (``PROG: error: ...``, exit 2), an interrupt one line
    (its own account of what was kept, else ``interrupted``; exit 130, or 143 for SIGTERM), our bugs a traceback."""
    from posetokens.runtime import command_line

    try:
        with command_line():  # messages name the flags (--weights), not the Python arguments (weights)
            return fn()
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM during a run (posetokens.runtime.Interrupted): files finished
        print(f"{prog}: {str(e) or interrupted}", file=sys.stderr)
        return int(getattr(e, "exit_code", 130))
    except Exception as e:  # noqa: BLE001 (re-raised unless it is a user error)
        msg = user_error_message(e)
        if msg is None:
            raise
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
