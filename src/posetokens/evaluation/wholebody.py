"""COCO-WholeBody (133 keypoints) AP/AR per body part, as the official evaluation computes it.

:func:`evaluate_wholebody` reproduces what MMPose's ``CocoWholeBodyMetric`` and the GTPT code do:

1. the predictions (COCO results, ``keypoints`` = 133 x [x, y, score], or the split format of the
   official tools: ``keypoints`` = 17 body + ``foot_kpts``/``face_kpts``/``lefthand_kpts``/
   ``righthand_kpts``) are rescored (``bbox_score x mean(keypoint scores > rescore_thr)``) and
   OKS-NMS'ed per image **with all 133 sigmas** (:func:`~.coco.prepare_coco_results`);
2. xtcocotools ``COCOeval`` runs six times, with iou types ``keypoints_body``, ``_foot``, ``_face``,
   ``_lefthand``, ``_righthand`` and ``_wholebody``, each with its slice of the 133 sigmas and
   ``use_area=True``.

Backends
--------
xtcocotools is used when it imports (its 1.14.3 wheel fails under numpy 2). Otherwise the same numbers
are computed with **pycocotools** ``COCOeval`` on per-part copies, which is exact because the official
part iou types differ from plain ``keypoints`` only in which keypoints they read:

* GT: ``keypoints`` := the part's block (whole-body: the 133 concatenated), ``num_keypoints`` :=
  number of part keypoints with ``v > 0`` (so a GT without a labelled part keypoint is ignored, as
  xtcocotools does). ``area`` and ``bbox`` stay the **person's** (the OKS scale of every part is the
  person area, as in jin-s13/COCO-WholeBody ``evaluation/myeval_*.py``).
* predictions: ``keypoints`` := the part's block; a prediction whose part scores are all ``<= 0`` is
  dropped (xtcocotools skips it; pycocotools would count it as a false positive); the detection
  ``area`` (only used to ignore unmatched detections outside an area range, i.e. APM/APL/ARM/ARL) is
  the extent of the **17 body keypoints**, because xtcocotools' ``loadRes`` computes it from the
  ``keypoints`` field, which holds the body in the official result format.
* ``params.kpt_oks_sigmas`` := the part's sigmas; scores = the rescored ``score`` for every part (no
  ``*_score`` fields, as in MMPose/GTPT).

Checked: on ``shared/data/coco/test_coco_wholebody.json`` (GT as predictions, and a perturbed set with
rescoring + OKS-NMS) both backends agree to 0.0 on all 60 numbers (xtcocotools 1.14.3 with numpy 1.26).

The single "hand" number
------------------------
The official tools (jin-s13/COCO-WholeBody ``evaluation_wholebody.py``, xtcocotools) and GTPT's code
(``lib/dataset/coco_wholebody.py``) report left and right hand separately, while the COCO-WholeBody
benchmark tables and the GTPT README (and paper) show one "Hand" AP/AR column. The dataset author
states the convention in jin-s13/COCO-WholeBody issues #38 ("we simply calculate their mean") and #40
(the left/right APs come from the same 133-keypoint model): **hand = arithmetic mean of the left-hand
and right-hand values**, metric by metric. It is *not* an evaluation on pooled 42-keypoint hand
instances. We expose it as ``result['hand']`` for all ten metrics; a value that is ``-1`` (no GT in
that area range) on one side is left out of the mean, and ``-1`` on both sides gives ``-1``.

Note: GTPT rescored with keypoint-score threshold 0.01 (``IN_VIS_THRE``), MMPose uses 0.2 (default here);
:func:`~.coco.evaluate_keypoints` takes the threshold, NMS and NMS area from a protocol's ``EvalRule``.
Checked against the official GTPT whole-body evaluation (fixture ``wholebody_eval_gtpt``): with
``rescore_thr=0.01`` and ``nms_area='box'`` the kept set and all 60 numbers agree to 1e-6.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .coco import (COCO_KEYPOINT_METRICS, _load_gt, load_coco_results, prepare_coco_results, validate_coco_results,
                   warn_prediction_coverage)

__all__ = [
    "WHOLEBODY_GT_KEYS",
    "WHOLEBODY_PARTS",
    "WHOLEBODY_REPORT_PARTS",
    "evaluate_wholebody",
    "merge_wholebody_keypoints",
    "wholebody_sigmas",
]

logger = logging.getLogger(__name__)

NUM_WHOLEBODY_KEYPOINTS = 133
#: evaluated parts and their ``[start, stop)`` in the 133-keypoint order (official iou-type suffixes)
WHOLEBODY_PARTS: dict[str, tuple[int, int]] = {
    "body": (0, 17),
    "foot": (17, 23),
    "face": (23, 91),
    "lefthand": (91, 112),
    "righthand": (112, 133),
    "wholebody": (0, 133),
}
#: the annotation field of each block, in the 133-keypoint order
WHOLEBODY_GT_KEYS: tuple[tuple[str, int], ...] = (
    ("keypoints", 17),
    ("foot_kpts", 6),
    ("face_kpts", 68),
    ("lefthand_kpts", 21),
    ("righthand_kpts", 21),
)
#: row order of reports (``hand`` = mean of left and right)
WHOLEBODY_REPORT_PARTS = ("body", "foot", "face", "lefthand", "righthand", "hand", "wholebody")

PathLike = str | os.PathLike


def wholebody_sigmas() -> np.ndarray:
    """The 133 COCO-WholeBody OKS sigmas (``get_metainfo('coco_wholebody')``)."""
    from posetokens.data.metainfo import get_metainfo

    return np.asarray(get_metainfo("coco_wholebody").sigmas_array, dtype=np.float64)


def merge_wholebody_keypoints(entry: Mapping[str, Any], where: str = "entry") -> np.ndarray:
    """The flat ``(399,)`` keypoints of a GT annotation or split-format result (body + 4 part fields).

    Raises ``ValueError`` naming ``where`` and the field when a field is missing or has the wrong length.
    """
    blocks = []
    for key, k in WHOLEBODY_GT_KEYS:
        if key not in entry:
            needed = ", ".join(k for k, _ in WHOLEBODY_GT_KEYS)
            raise ValueError(f"{where}: missing field '{key}' (COCO-WholeBody needs {needed})")
        v = np.asarray(entry[key], dtype=np.float64).reshape(-1)
        if v.size != 3 * k:
            raise ValueError(f"{where}: field '{key}' has {v.size} values, expected {3 * k} ({k} keypoints x 3)")
        blocks.append(v)
    return np.concatenate(blocks)


def _normalise_predictions(preds: Sequence[Mapping[str, Any]], source: str = "predictions") -> list[dict[str, Any]]:
    """Turn split-format results (``keypoints`` = body + ``*_kpts``) into 133-keypoint results (errors name
    ``source``)."""
    out = []
    for i, r in enumerate(preds):
        if isinstance(r, Mapping) and "foot_kpts" in r:
            d = {k: v for k, v in r.items() if k not in {key for key, _ in WHOLEBODY_GT_KEYS}}
            d["keypoints"] = merge_wholebody_keypoints(r, f"{source}: entry [{i}]").tolist()
            out.append(d)
        else:
            out.append(r)  # type: ignore[arg-type]
    return out


def _hand_mean(left: Mapping[str, float], right: Mapping[str, float]) -> dict[str, float]:
    """Metric-wise mean of left and right hand, skipping ``-1`` (undefined) values."""
    out = {}
    for name in left:
        vals = [v for v in (left[name], right[name]) if v > -1]
        out[name] = float(np.mean(vals)) if vals else -1.0
    return out


def _eval_pycocotools(data: dict[str, Any], gt_kpts: np.ndarray, results: list[dict[str, Any]],
                      sigmas: np.ndarray) -> dict[str, dict[str, float]]:
    """Six pycocotools runs on per-part copies (see the module docstring)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dt = np.asarray([r["keypoints"] for r in results], dtype=np.float64).reshape(-1, NUM_WHOLEBODY_KEYPOINTS, 3)
    body = dt[:, :17, :2]
    dt_area = np.ptp(body[..., 0], axis=1) * np.ptp(body[..., 1], axis=1) if len(dt) else np.zeros(0)
    out: dict[str, dict[str, float]] = {}
    for part, (a, b) in WHOLEBODY_PARTS.items():
        g = gt_kpts[:, a:b]
        n_lab = np.count_nonzero(g[..., 2] > 0, axis=1)
        anns = []
        for j, (ann, kp, n) in enumerate(zip(data["annotations"], g, n_lab)):
            d = {k: v for k, v in ann.items() if k not in {key for key, _ in WHOLEBODY_GT_KEYS}}
            # ids from 1: pycocotools reads a match with annotation id 0 as none, xtcocotools (-1 for none) does not
            d.update(keypoints=kp.reshape(-1).tolist(), num_keypoints=int(n), id=j + 1)
            d.setdefault("iscrowd", 0)
            d.setdefault("category_id", 1)
            anns.append(d)
        d_part = dt[:, a:b]
        keep = np.flatnonzero(np.count_nonzero(d_part[..., 2] > 0, axis=1) > 0)
        dets = []
        for j, i in enumerate(keep):
            x, y = d_part[i, :, 0], d_part[i, :, 1]
            dets.append({
                "id": j + 1,
                "image_id": results[i]["image_id"],
                "category_id": results[i]["category_id"],
                "keypoints": d_part[i].reshape(-1).tolist(),
                "score": results[i]["score"],
                "area": float(dt_area[i]),
                "bbox": [float(x.min()), float(y.min()), float(np.ptp(x)), float(np.ptp(y))],
            })
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_gt = COCO()
            coco_gt.dataset = {**{k: v for k, v in data.items() if k != "annotations"}, "annotations": anns}
            coco_gt.createIndex()
            coco_dt = COCO()
            coco_dt.dataset = {"images": data["images"], "categories": data["categories"], "annotations": dets}
            coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, "keypoints")
            ev.params.kpt_oks_sigmas = sigmas[a:b]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        logger.debug("pycocotools output (%s):\n%s", part, buf.getvalue())
        out[part] = dict(zip(COCO_KEYPOINT_METRICS, (float(s) for s in ev.stats)))
    return out


def _eval_xtcocotools(data: dict[str, Any], results: list[dict[str, Any]],
                      sigmas: np.ndarray) -> dict[str, dict[str, float]]:
    """Six xtcocotools runs with the official part iou types, on split-format results (as MMPose)."""
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval

    out: dict[str, dict[str, float]] = {}
    for part, (a, b) in WHOLEBODY_PARTS.items():
        split = []
        for r in results:
            k = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
            d = {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"]}
            start = 0
            for key, n in WHOLEBODY_GT_KEYS:
                d[key] = k[3 * start:3 * (start + n)].tolist()
                start += n
            split.append(d)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            coco_gt = COCO()
            coco_gt.dataset = data
            coco_gt.createIndex()
            if split:
                coco_dt = coco_gt.loadRes(split)
            else:
                coco_dt = COCO()
                coco_dt.dataset = {"images": data["images"], "categories": data["categories"], "annotations": []}
                coco_dt.createIndex()
            ev = COCOeval(coco_gt, coco_dt, f"keypoints_{part}", sigmas[a:b], use_area=True)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        logger.debug("xtcocotools output (%s):\n%s", part, buf.getvalue())
        out[part] = dict(zip(COCO_KEYPOINT_METRICS, (float(s) for s in ev.stats)))
    return out


def _xtcocotools_available() -> bool:
    try:
        import xtcocotools.cocoeval  # noqa: F401
    except Exception:  # ImportError, or numpy-ABI errors of the 1.14.3 wheel under numpy 2
        return False
    return True


def evaluate_wholebody(
    gt: Any,
    predictions: Sequence[Mapping[str, Any]] | PathLike,
    rescore: bool = True,
    nms_thr: float | None = 0.9,
    rescore_thr: float = 0.2,
    nms_vis_thr: float | None = None,
    backend: str = "auto",
    nms_area: str = "auto",
    *,
    source: str | None = None,
) -> dict[str, dict[str, float]]:
    """COCO-WholeBody AP/AR for body, foot, face, left/right hand, hand (mean) and whole body.

    Args:
        gt: COCO-WholeBody GT (json path, COCO object or dict; never modified). Every annotation needs
            ``keypoints`` (51), ``foot_kpts`` (18), ``face_kpts`` (204), ``lefthand_kpts`` and
            ``righthand_kpts`` (63), ``bbox`` and ``area``.
        predictions: COCO result dicts with 133x3 ``keypoints`` (or the official split format), or a
            path to such a json. Validated first (wrong lengths raise ``ValueError``).
        rescore: MMPose ``bbox_keypoint`` rescoring over the 133 keypoint scores.
        nms_thr: OKS-NMS threshold with the 133 sigmas (``None``: no NMS).
        rescore_thr: keypoint-score threshold of the rescoring (MMPose 0.2; GTPT used 0.01).
        nms_vis_thr: optional per-joint score threshold inside OKS-NMS (official: ``None``).
        nms_area: the OKS-NMS area: ``'box'`` (official: each result's ``area``, the padded box
            ``prod(scale)``; an error when missing), ``'keypoints'`` (the 133-keypoint extent) or ``'auto'``
            (``area``, else ``bbox`` w×h, else the keypoint extent; the default, as before protocols).
        backend: ``'auto'`` (xtcocotools if it imports, else pycocotools), ``'xtcocotools'`` or
            ``'pycocotools'``.
        source: what the messages call the predictions (default: the results file, or ``'predictions'``).

    Returns:
        ``{part: {'AP', 'AP50', 'AP75', 'APM', 'APL', 'AR', 'AR50', 'AR75', 'ARM', 'ARL'}}`` for the parts
        of :data:`WHOLEBODY_REPORT_PARTS`; ``hand`` is the mean of ``lefthand`` and ``righthand``.
    """
    if backend not in ("auto", "xtcocotools", "pycocotools"):
        raise ValueError(f"evaluate_wholebody: backend must be 'auto', 'xtcocotools' or 'pycocotools', got {backend!r}")
    use_xt = backend == "xtcocotools" or (backend == "auto" and _xtcocotools_available())
    if backend == "xtcocotools" and not _xtcocotools_available():
        raise ImportError("evaluate_wholebody: backend='xtcocotools' requested but xtcocotools does not import")

    sigmas = wholebody_sigmas()
    data, gt_name = _load_gt(gt)
    gt_rows = []
    for i, ann in enumerate(data["annotations"]):
        where = f"{gt_name}: annotations[{i}] (id={ann.get('id')})"
        if "area" not in ann:
            raise ValueError(f"{where}: missing field 'area'")
        gt_rows.append(merge_wholebody_keypoints(ann, where))
    gt_kpts = np.asarray(gt_rows, dtype=np.float64).reshape(-1, NUM_WHOLEBODY_KEYPOINTS, 3)
    image_ids = [int(img["id"]) for img in data["images"]]

    if isinstance(predictions, (str, os.PathLike)):
        raw = load_coco_results(predictions, None, image_ids)
        src = source or str(predictions)
    else:
        raw, src = predictions, source or "predictions"
    preds = _normalise_predictions(raw, src)  # type: ignore[arg-type]
    validate_coco_results(preds, NUM_WHOLEBODY_KEYPOINTS, image_ids, source=src)
    warn_prediction_coverage(data, preds, src, gt_name)
    results = prepare_coco_results(preds, sigmas, rescore, rescore_thr, nms_thr, nms_vis_thr, nms_area, src)
    if results and not any(np.any(np.asarray(r["keypoints"][2::3]) > 0) for r in results):
        logger.warning("%s: no prediction has a keypoint score > 0; the whole-body evaluation (xtcocotools' rule) "
                       "drops such predictions, so every metric is 0.0", src)

    if use_xt:
        out = _eval_xtcocotools(data, results, sigmas)
    else:
        out = _eval_pycocotools(data, gt_kpts, results, sigmas)
    out["hand"] = _hand_mean(out["lefthand"], out["righthand"])
    return {p: out[p] for p in WHOLEBODY_REPORT_PARTS}
