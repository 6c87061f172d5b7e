"""Pipeline parity of the H36M lifting evaluation protocols (kind ``h36m_protocol``).

* method ``hot`` (fixture ``h36m_protocol_hot``, HoT's ``main_mixste.test``): the fixture's sequences
  (``gt_3d_XX``) are cut into seq2seq windows of ``official_config.frames`` at ``stride``; the network outputs
  ``out`` / ``out_flipped`` are flip-merged and scored by :func:`~posetokens.evaluation.h36m_protocol.evaluate_hot`
  with the P2 quirk over batches of ``official_config.batch_size`` windows. Compared: the windows
  (sequence, start, end; exact), the window and batch counts (exact), P1/P2 overall and per action
  (1e-4 mm), the per-action window counts (exact).
* method ``motionbert`` (fixture ``h36m_protocol_motionbert``, MotionBERT's ``train.evaluate``): the test
  split is cut by ``split_clips`` (clip length = the prediction's, stride = ``data_stride_test`` of the
  official call), and ``pred`` / ``pred_flipped`` go through
  :func:`~posetokens.evaluation.h36m_protocol.evaluate_motionbert`. Compared: the clip frame lists (exact),
  the clip and frame counts (exact), e1/e2 overall and per action (1e-4 mm).

The protocol settings (flip test, whether the P2 quirk applies, the block list) come from
``get_protocol(method).lift`` (or a ``protocol`` given to the compare functions, which is how the tests
plant bugs); sizes come from the fixture.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from posetokens.data.h36m import seq2seq_starts
from posetokens.evaluation import h36m_protocol as hp
from posetokens.parity import Comparison
from posetokens.parity.pipeline import load_arrays, load_json, register_pipeline_handler
from posetokens.protocols import LiftRule, Protocol, get_protocol

__all__ = ["compare_h36m_hot", "compare_h36m_motionbert"]

# h36m_protocol_hot README, "Tolerance": "Windows: exact. p1/p2: 1e-4 mm. Per action: 1e-4 mm."
HOT_MM_TOL = 1e-4
# h36m_protocol_motionbert README, "Tolerance": "1e-4 mm on every number."
MOTIONBERT_MM_TOL = 1e-4
# window / clip frame lists and counts are integers: exact (hot README "Windows: exact")
EXACT = 0.0


def _lift(spec: dict[str, Any], protocol: Protocol | LiftRule | None) -> LiftRule:
    if protocol is None:
        protocol = get_protocol(str(spec["method"]))
    lift = protocol.lift if isinstance(protocol, Protocol) else protocol
    if lift is None:
        raise ValueError(f"protocol {getattr(protocol, 'name', protocol)!r} has no lifting rule (lift=None)")
    return lift


def _mm(name: str, ours: float, official: float, tol: float) -> Comparison:
    """|ours - official|; NaN on both sides agrees (MotionBERT's empty action), NaN on one side fails."""
    ours, official = float(ours), float(official)
    if math.isnan(ours) and math.isnan(official):
        return Comparison(name, 0.0, tol)
    return Comparison(name, abs(ours - official) if not (math.isnan(ours) or math.isnan(official)) else math.inf, tol)


def _ints(name: str, ours: Any, official: Any) -> Comparison:
    """Mismatched elements of two integer arrays; a shape difference (the counts say which) is a failing ``inf``."""
    a, b = np.asarray(ours), np.asarray(official)
    if a.shape != b.shape:
        return Comparison(name, math.inf, EXACT, "mismatched_indices")
    return Comparison(name, float((a != b).sum()), EXACT, "mismatched_indices")


def _need(arrays: dict[str, np.ndarray], names: tuple[str, ...], path: Path) -> None:
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}")


def _field(mapping: dict[str, Any], key: str, path: Path, where: str) -> Any:
    if key not in mapping:
        raise ValueError(f"{path}: {where} has no field {key!r}")
    return mapping[key]


# ===================================================================================== HoT
def compare_h36m_hot(folder: Path, spec: dict[str, Any] | None = None,
                     protocol: Protocol | LiftRule | None = None) -> list[Comparison]:
    """Run HoT's protocol on the ``h36m_protocol_hot`` fixture's inputs and compare every output."""
    folder = Path(folder)
    spec = load_json(folder / "inputs.json") if spec is None else spec
    lift = _lift(spec, protocol)
    src = folder / "inputs.json"
    cfg = _field(spec, "official_config", src, "inputs.json")
    frames = int(_field(cfg, "frames", src, "official_config"))
    stride = int(_field(cfg, "stride", src, "official_config"))
    batch = int(_field(cfg, "batch_size", src, "official_config"))
    root = int(cfg.get("root_joint", 0))
    flip = hp.flip_indices_from_pairs(cfg["joints_left"], cfg["joints_right"]) if "joints_left" in cfg else None
    arrays = load_arrays(folder / "inputs.npz")
    _need(arrays, ("out", "out_flipped"), folder / "inputs.npz")
    outputs = load_json(folder / "outputs.json")
    windows = load_arrays(folder / "outputs.npz")
    _need(windows, ("window_seq", "window_start", "window_end"), folder / "outputs.npz")

    # windows in loader order: sequences in the fixture's order, each cut by generator_stride
    seq_ids, starts, targets, actions = [], [], [], []
    for s in _field(spec, "sequences", src, "inputs.json"):
        index = int(s["index"])
        key = next((k for k in arrays if k.startswith("gt_3d_") and int(k[6:]) == index), None)
        if key is None:
            raise ValueError(f"{folder / 'inputs.npz'}: no gt_3d_* array for sequence index {index}")
        gt = arrays[key]
        if len(gt) != int(s.get("frames", len(gt))):
            raise ValueError(f"{folder / 'inputs.npz'}: {key} has {len(gt)} frames, inputs.json says {s['frames']}")
        st = seq2seq_starts(len(gt), frames, stride)
        seq_ids.append(np.full(len(st), index))
        starts.append(st)
        targets.append(gt[np.clip(st[:, None] + np.arange(frames), 0, len(gt) - 1)])
        actions += [str(s["action"])] * len(st)
    seq, start = np.concatenate(seq_ids), np.concatenate(starts)
    comps = [_ints("window_seq", seq, windows["window_seq"]), _ints("window_start", start, windows["window_start"]),
             _ints("window_end", start + frames, windows["window_end"])]

    out, out_f = arrays["out"], arrays["out_flipped"]
    target = np.concatenate(targets)
    if out.shape != target.shape:  # our windows do not line up with the network outputs: nothing to score
        comps.append(Comparison(f"windows vs out: {target.shape} vs {out.shape}", math.inf, EXACT,
                                "mismatched_indices"))
        return comps
    # the flip test as the protocol says, unless the official run was made without it (--test_augmentation)
    if lift.test_flip and bool(cfg.get("test_augmentation", True)):
        pred = hp.flip_merge(out, out_f, flip, root)
    else:
        pred = hp.zero_root(out, root)
    # the quirk's batch is the official loader's (the fixture's); the protocol says whether the quirk applies
    res = hp.evaluate_hot(pred, target, actions, p2_batch_size=batch if lift.p2_batch_size > 0 else 0,
                          all_actions=hp.HOT_ACTIONS, root=root)
    comps.append(_ints("num_windows", int(res.info["num_windows"]), int(outputs["num_windows"])))
    comps.append(_ints("num_batches", -(-int(res.info["num_windows"]) // batch), int(outputs["num_batches"])))
    comps.append(_mm("p1_mm", res.p1, outputs["p1_mm"], HOT_MM_TOL))
    comps.append(_mm("p2_mm", res.p2, outputs["p2_mm"], HOT_MM_TOL))
    official = outputs["per_action"]
    for action in sorted(set(official) | set(res.per_action_p1)):
        o = official.get(action, {"p1_mm": 0.0, "p2_mm": 0.0, "p1_count": 0, "p2_count": 0})  # HoT prints 0
        comps.append(_mm(f"per_action/{action}/p1_mm", res.per_action_p1.get(action, 0.0), o["p1_mm"], HOT_MM_TOL))
        comps.append(_mm(f"per_action/{action}/p2_mm", res.per_action_p2.get(action, 0.0), o["p2_mm"], HOT_MM_TOL))
        n = res.counts.get(action, 0)
        comps.append(_ints(f"per_action/{action}/p1_count", n, int(o["p1_count"])))
        comps.append(_ints(f"per_action/{action}/p2_count", n, int(o["p2_count"])))
    return comps


# ============================================================================== MotionBERT
_MB_ARRAYS = ("pred", "pred_flipped", "joints_25d_image", "factor_25d", "source", "action", "camera_name")


def _call_arg(call: str, name: str) -> int | None:
    """An integer keyword of the official call as the fixture spells it (``data_stride_test=243``)."""
    m = re.search(rf"\b{name}\s*=\s*(\d+)", call)
    return int(m.group(1)) if m else None


def _call_flag(call: str, name: str) -> bool | None:
    """A boolean argument of the official call as the fixture spells it (``args.flip=True``)."""
    m = re.search(rf"\b{name}\s*=\s*(True|False)\b", call)
    return None if m is None else m.group(1) == "True"


def compare_h36m_motionbert(folder: Path, spec: dict[str, Any] | None = None,
                            protocol: Protocol | LiftRule | None = None) -> list[Comparison]:
    """Run MotionBERT's protocol on the ``h36m_protocol_motionbert`` fixture's inputs and compare every output."""
    folder = Path(folder)
    spec = load_json(folder / "inputs.json") if spec is None else spec
    lift = _lift(spec, protocol)
    a = load_arrays(folder / "inputs.npz")
    _need(a, _MB_ARRAYS, folder / "inputs.npz")
    outputs = load_json(folder / "outputs.json")
    official_split = load_arrays(folder / "outputs.npz").get("split_id_test")
    if official_split is None:
        raise ValueError(f"{folder / 'outputs.npz'}: missing array 'split_id_test'")
    call = str(spec.get("official_config", {}).get("function", ""))
    clip_len = int(a["pred"].shape[1])
    n_frames = _call_arg(call, "n_frames")
    if n_frames is not None and n_frames != clip_len:
        raise ValueError(f"{folder}: pred clips have {clip_len} frames but the official call says n_frames={n_frames}")
    stride = _call_arg(call, "data_stride_test") or clip_len
    if _call_flag(call, "rootrel") is False:
        raise ValueError(f"{folder / 'inputs.json'}: the official call has rootrel=False; only MotionBERT's "
                         "rootrel evaluation (MB_ft_h36m.yaml) is implemented")
    flip = lift.test_flip and _call_flag(call, "flip") is not False  # as the protocol says, unless run without

    source = a["source"].astype(str)
    clips = hp.split_clips(source, clip_len, stride)
    comps = [_ints("split_id_test", clips, official_split),
             _ints("num_clips", len(clips), int(outputs["num_clips"])),
             _ints("num_test_frames", len(source), int(outputs["num_test_frames"]))]
    if len(clips) != len(a["pred"]):  # our clips do not line up with the network outputs: nothing to score
        comps.append(Comparison(f"clips vs pred: {len(clips)} vs {len(a['pred'])}", math.inf, EXACT,
                                "mismatched_indices"))
        return comps
    res = hp.evaluate_motionbert(a["pred"], a["pred_flipped"] if flip else None, a["joints_25d_image"],
                                 a["factor_25d"], source, a["action"], a["camera_name"], clips,
                                 skip_sources=lift.skip_sources)
    comps.append(_mm("e1_mpjpe_mm", res.p1, outputs["e1_mpjpe_mm"], MOTIONBERT_MM_TOL))
    comps.append(_mm("e2_p_mpjpe_mm", res.p2, outputs["e2_p_mpjpe_mm"], MOTIONBERT_MM_TOL))
    for key, ours in (("per_action_p1_mm", res.per_action_p1), ("per_action_p2_mm", res.per_action_p2)):
        official = outputs[key]
        for action in sorted(set(official) | set(ours)):
            comps.append(_mm(f"{key}/{action}", ours.get(action, math.nan), official.get(action, math.inf),
                             MOTIONBERT_MM_TOL))
    return comps


@register_pipeline_handler("h36m_protocol", "hot")
def _h36m_hot(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return compare_h36m_hot(folder, spec)


@register_pipeline_handler("h36m_protocol", "motionbert")
def _h36m_motionbert(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return compare_h36m_motionbert(folder, spec)
