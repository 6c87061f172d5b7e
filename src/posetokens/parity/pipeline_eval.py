"""Pipeline parity of the 2D evaluation protocol: COCO / COCO-WholeBody evaluation and MPII PCKh.

Fixture kinds (``shared/parity/pipeline/<name>/inputs.json``):

* ``coco_eval`` (methods ``tokenpose``, ``gtpt``) and ``wholebody_eval`` (``gtpt``): per-box predictions
  (``inputs.npz``: ``keypoints``, ``keypoint_scores``, ``bbox_score``, ``image_id``, ``area``, ``center``,
  ``scale``) through the official ``COCODataset.evaluate``. Compared: the COCOeval stats (10, or 10 per
  whole-body part), the rescored score of every row, and the rows kept by OKS-NMS (as a set, and in order
  within each image).
* ``mpii_pckh`` (``tokenpose``, ``gtpt``): the official ``MPIIDataset.evaluate`` name/value report.

Every setting comes from the method's :class:`~posetokens.protocols.Protocol` (``get_protocol(method)``),
and is cross-checked against the fixture's ``official_config``: a disagreement is a failing ``config/*``
comparison, not a silent switch to the fixture's value.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from posetokens.data.metainfo import get_metainfo
from posetokens.evaluation.coco import COCO_KEYPOINT_METRICS, evaluate_keypoints, select_instances, to_coco_results
from posetokens.evaluation.functional import MPII_PCKH_THRESHOLDS, pckh
from posetokens.parity import Comparison
from posetokens.parity.pipeline import load_arrays, load_json, max_abs, max_rel, register_pipeline_handler, shared_path
from posetokens.protocols import EvalRule, get_protocol

__all__ = ["compare_coco_eval", "compare_mpii_pckh"]

# coco_eval_* / wholebody_eval_* README, "Tolerance": "`stats`: 1e-6 absolute." / "`stats`: 1e-6."
STATS_TOL = 1e-6
# coco_eval_* README: "`rescored_score`: 1e-6 relative."
RESCORED_REL_TOL = 1e-6
# coco_eval_* README: "`kept_index`: equal as a set, and equal in order within each image." (wholebody:
# "Kept set: exact.")
KEPT_TOL = 0.0
# mpii_pckh README, "Tolerance": "1e-6 on every number."
PCKH_TOL = 1e-6
# settings that are exact (a threshold either is the official one or it is not)
CONFIG_TOL = 0.0

# the metainfo each evaluation kind scores with
_KIND_METAINFO = {"coco_eval": "coco", "wholebody_eval": "coco_wholebody"}
_COCO_ARRAYS = ("keypoints", "keypoint_scores", "bbox_score", "image_id", "area")
_MPII_ARRAYS = ("preds", "gt_joints", "gt_joints_vis", "head_boxes")
# the official MPII script's constants (HRNet mpii.py: SC_BIAS 0.6, threshold 0.5)
_MPII_SC_BIAS = 0.6
_MPII_THR = 0.5


def _spec(folder: Path, spec: dict[str, Any] | None) -> dict[str, Any]:
    return load_json(folder / "inputs.json") if spec is None else spec


def _rule(spec: dict[str, Any], rule: EvalRule | None) -> EvalRule:
    return get_protocol(str(spec["method"])).eval if rule is None else rule


def _arrays(folder: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    arrays = load_arrays(folder / "inputs.npz")
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{folder / 'inputs.npz'}: missing array(s) {missing}; expected {list(names)}")
    return arrays


def _config_value(cfg: dict[str, Any], key: str, folder: Path) -> Any:
    if key not in cfg:
        raise ValueError(f"{folder / 'inputs.json'}: official_config has no field {key!r}")
    return cfg[key]


def _exact(name: str, ours: float | None, official: float | None) -> Comparison:
    """A setting that must equal the official one (``None`` on one side only never does)."""
    if ours is None or official is None:
        value = 0.0 if ours is None and official is None else float("inf")
    else:
        value = abs(float(ours) - float(official))
    return Comparison(name, value, CONFIG_TOL, "abs_diff")


def _config_comparisons(folder: Path, spec: dict[str, Any], rule: EvalRule, n_sigmas: int) -> list[Comparison]:
    """The protocol's rule against the fixture's ``official_config`` (IN_VIS_THRE, OKS_THRE, SOFT_NMS, the
    NMS area and sigma count, and for ``coco_eval`` the COCOeval package)."""
    cfg = spec.get("official_config")
    if not isinstance(cfg, dict):
        raise ValueError(f"{folder / 'inputs.json'}: missing object 'official_config'")
    out = [
        _exact("config/IN_VIS_THRE", rule.rescore_thr, _config_value(cfg, "IN_VIS_THRE", folder)),
        _exact("config/OKS_THRE", rule.nms_thr, _config_value(cfg, "OKS_THRE", folder)),
        # soft NMS is not implemented: an official run with it cannot be reproduced
        Comparison("config/SOFT_NMS", float(bool(cfg.get("SOFT_NMS", False))), CONFIG_TOL, "mismatch"),
    ]
    area = str(cfg.get("nms_area", "")).lower()
    if area:  # "prod(scale * 200) of the padded box (...)" -> box; a keypoint-extent area -> keypoints
        official_area = "box" if ("prod" in area or "box" in area) else "keypoints" if "keypoint" in area else area
        out.append(Comparison("config/nms_area", float(rule.nms_area != official_area), CONFIG_TOL, "mismatch"))
    sig = re.match(r"\s*(\d+)", str(cfg.get("nms_sigmas", "")))
    if sig:  # "17 COCO sigmas (...)" / "133 COCO-WholeBody sigmas (...)"
        out.append(_exact("config/nms_sigmas", n_sigmas, int(sig.group(1))))
    if spec["kind"] == "coco_eval" and cfg.get("cocoeval"):  # whole-body always follows xtcocotools per part
        pkg = str(cfg["cocoeval"]).split()[0].lower()
        out.append(Comparison("config/cocoeval", float(pkg != rule.coco_backend), CONFIG_TOL, "mismatch"))
    return out


def _within_image_order_mismatch(ours: np.ndarray, official: np.ndarray, image_id: np.ndarray) -> float:
    """Positions at which the kept rows of each image differ, in their written order (a length difference
    counts the longer list's extra entries)."""
    def per_image(keep: np.ndarray) -> dict[int, list[int]]:
        d: dict[int, list[int]] = defaultdict(list)
        for i in keep:
            d[int(image_id[int(i)])].append(int(i))
        return d

    a, b = per_image(ours), per_image(official)
    bad = 0
    for img in set(a) | set(b):
        x, y = a.get(img, []), b.get(img, [])
        bad += sum(p != q for p, q in zip(x, y)) + abs(len(x) - len(y))
    return float(bad)


def compare_coco_eval(folder: str | Path, spec: dict[str, Any] | None = None,
                      rule: EvalRule | None = None) -> list[Comparison]:
    """Comparisons of a ``coco_eval`` / ``wholebody_eval`` fixture.

    Args:
        folder: the fixture folder.
        spec: its parsed ``inputs.json`` (read when ``None``).
        rule: the evaluation rule to run; default the protocol of the fixture's ``method``. Passing another
            rule (a wrong threshold, a wrong NMS area) is how tests show that the comparison catches it.
    """
    folder = Path(folder)
    spec = _spec(folder, spec)
    kind = str(spec["kind"])
    if kind not in _KIND_METAINFO:
        raise ValueError(f"{folder / 'inputs.json'}: kind {kind!r} is not one of {sorted(_KIND_METAINFO)}")
    rule = _rule(spec, rule)
    meta = get_metainfo(_KIND_METAINFO[kind])
    a = _arrays(folder, _COCO_ARRAYS)
    n, k = a["keypoints"].shape[:2]
    if "num_keypoints" in spec and int(spec["num_keypoints"]) != k:
        raise ValueError(f"{folder / 'inputs.npz'}: 'keypoints' has K={k}, inputs.json says num_keypoints="
                         f"{spec['num_keypoints']}")
    if k != meta.num_keypoints:
        raise ValueError(f"{folder / 'inputs.npz'}: 'keypoints' has K={k}; kind {kind!r} is scored with "
                         f"{meta.name} ({meta.num_keypoints} keypoints)")
    outputs = load_json(folder / "outputs.json")
    for key in ("stats", "rescored_score", "kept_index"):
        if key not in outputs:
            raise ValueError(f"{folder / 'outputs.json'}: missing field {key!r}")

    results = to_coco_results(a["image_id"], a["keypoints"], a["keypoint_scores"], a["bbox_score"],
                              areas=a["area"], centers=a.get("center"), scales=a.get("scale"))
    source = str(folder / "inputs.npz")
    scores, keep = select_instances(results, meta.sigmas_array, rescore=True, rescore_thr=rule.rescore_thr,
                                    nms_thr=rule.nms_thr, nms_area=rule.nms_area, source=source)
    stats = evaluate_keypoints(shared_path(folder, str(spec["gt"])), results, meta, rule)

    comps = _config_comparisons(folder, spec, rule, meta.sigmas_array.size)
    official_stats = outputs["stats"]
    if kind == "wholebody_eval":
        for part, values in official_stats.items():
            ours = [stats.get(f"{part}_{m}", np.nan) for m in values]
            comps.append(Comparison(f"stats/{part}", max_abs(ours, list(values.values()), f"stats/{part}"), STATS_TOL))
    else:
        names = [m for m in COCO_KEYPOINT_METRICS if m in official_stats] + \
            [m for m in official_stats if m not in COCO_KEYPOINT_METRICS]
        ours = [stats.get(m, np.nan) for m in names]
        comps.append(Comparison("stats", max_abs(ours, [official_stats[m] for m in names], "stats"), STATS_TOL))
    comps.append(Comparison("rescored_score", max_rel(scores, outputs["rescored_score"], "rescored_score"),
                            RESCORED_REL_TOL, "max_rel_diff"))
    official_keep = np.asarray(outputs["kept_index"], dtype=np.int64)
    if official_keep.size and (official_keep.min() < 0 or official_keep.max() >= n):
        raise ValueError(f"{folder / 'outputs.json'}: 'kept_index' has rows outside 0..{n - 1}")
    comps.append(Comparison("kept_index/set", float(len(set(keep.tolist()) ^ set(official_keep.tolist()))),
                            KEPT_TOL, "mismatched_indices"))
    comps.append(Comparison("kept_index/order_within_image",
                            _within_image_order_mismatch(keep, official_keep, a["image_id"]),
                            KEPT_TOL, "mismatched_indices"))
    return comps


def compare_mpii_pckh(folder: str | Path, spec: dict[str, Any] | None = None,
                      rule: EvalRule | None = None) -> list[Comparison]:
    """Comparisons of an ``mpii_pckh`` fixture: every official ``name_value`` entry, plus the protocol's
    ``pckh_mean01_thr`` against the ``pckAll[i]`` row the fixture's ``official_config`` names.

    The predictions are 0-based, as the official ``validate()`` passes them; the official script adds 1
    (in their own dtype) before comparing with the 1-based Matlab GT, and so does this handler.
    """
    folder = Path(folder)
    spec = _spec(folder, spec)
    rule = _rule(spec, rule)
    a = _arrays(folder, _MPII_ARRAYS)
    outputs = load_json(folder / "outputs.json")
    if not isinstance(outputs.get("name_value"), dict):
        raise ValueError(f"{folder / 'outputs.json'}: missing object 'name_value'")
    cfg = spec.get("official_config") or {}

    comps: list[Comparison] = []
    if "SC_BIAS" in cfg:
        comps.append(_exact("config/SC_BIAS", _MPII_SC_BIAS, cfg["SC_BIAS"]))
    if "threshold" in cfg:
        comps.append(_exact("config/threshold", _MPII_THR, cfg["threshold"]))
    row = re.search(r"pckAll\[(\d+)\]", str(cfg.get("Mean@0.1", "")))
    if row:  # "pckAll[11] of np.arange(0, 0.51, 0.01), i.e. threshold 0.11"
        i = int(row.group(1))
        official = float(MPII_PCKH_THRESHOLDS[i]) if i < MPII_PCKH_THRESHOLDS.size else None
        comps.append(_exact("config/Mean@0.1_threshold", rule.pckh_mean01_thr, official))

    preds = np.asarray(a["preds"])[..., :2]
    preds = preds + preds.dtype.type(1)  # 0-based -> 1-based, in the array's dtype as the official code does
    report = pckh(preds, a["gt_joints"], np.asarray(a["gt_joints_vis"]) > 0, head_boxes=a["head_boxes"],
                  thr=_MPII_THR, sc_bias=_MPII_SC_BIAS, mean01_thr=rule.pckh_mean01_thr)
    for name, value in outputs["name_value"].items():
        ours = report.get(name, np.nan)
        comps.append(Comparison(f"name_value/{name}", max_abs(ours, value, name), PCKH_TOL))
    return comps


@register_pipeline_handler("coco_eval", "tokenpose", "gtpt")
def _coco_eval(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return compare_coco_eval(folder, spec)


@register_pipeline_handler("wholebody_eval", "gtpt")
def _wholebody_eval(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return compare_coco_eval(folder, spec)


@register_pipeline_handler("mpii_pckh", "tokenpose", "gtpt")
def _mpii_pckh(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return compare_mpii_pckh(folder, spec)
