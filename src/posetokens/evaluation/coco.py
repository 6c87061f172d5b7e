"""COCO-style keypoint AP/AR through **pycocotools** ``COCOeval``, with MMPose's pre-processing.

:func:`evaluate_coco` takes COCO result dicts, groups them per image, optionally rescores them
(MMPose ``bbox_keypoint``) and applies OKS-NMS, then runs ``COCOeval`` with the dataset's sigmas
(``params.kpt_oks_sigmas``). pycocotools' printing is captured (logged at DEBUG level) and the numbers
are returned in a dict.

pycocotools vs xtcocotools (MMPose uses xtcocotools)
----------------------------------------------------
* xtcocotools drops predictions whose keypoint scores are all 0; pycocotools keeps them. Feeding the
  GT of ``test_coco.json`` back as predictions therefore gives AP 1.0 with xtcocotools and 0.894 with
  pycocotools (the two zero-keypoint annotations become false positives). We do not hide this.
* ``use_area=False`` (CrowdPose, AIC): xtcocotools takes the object scale as ``0.53 × bbox w × h`` of
  the GT box, both for the OKS and for the area ranges. We reproduce that by writing
  ``area = 0.53 * w * h`` into a private copy of the GT annotations before calling pycocotools.
* ``iou_type='keypoints_crowd'`` (CrowdPose) is emulated: one area range ("all"), ``maxDets=20``, then
  AP, AP50, AP75, AR, AR50, AR75 as usual; APE/APM/APH re-run the evaluation on the images whose
  ``crowdIndex`` is ``< 0.2`` / ``< 0.8`` / ``>= 0.8`` and take the plain mean of the precision array,
  rounded to 4 decimals (-1 when a split has no image or no GT), like xtcocotools' ``get_type_result``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from posetokens.fileio import read_json

from .functional import instance_area, oks_nms_arrays, rescore as _rescore

__all__ = [
    "COCO_KEYPOINT_METRICS",
    "CROWDPOSE_METRICS",
    "CocoMetric",
    "evaluate_coco",
    "load_coco_results",
    "prepare_coco_results",
    "to_coco_results",
    "validate_coco_results",
    "write_coco_results",
]

logger = logging.getLogger(__name__)

COCO_KEYPOINT_METRICS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "APE", "APM", "APH")
_CROWD_SPLITS = (0.2, 0.8)  # xtcocotools get_type_result(first=0.2, second=0.8)
_NO_AREA_FACTOR = 0.53  # xtcocotools' object scale when use_area=False

PathLike = str | os.PathLike


# ------------------------------------------------------------------------------------------ loading
def _load_gt(gt: Any) -> tuple[dict[str, Any], str]:
    """Return a deep copy of the GT dataset dict and a name for messages."""
    if isinstance(gt, (str, os.PathLike)):
        data = read_json(gt, "ground-truth")
        name = str(gt)
    elif hasattr(gt, "dataset") and isinstance(gt.dataset, dict):  # a pycocotools/xtcocotools COCO
        data = copy.deepcopy(gt.dataset)
        name = "<COCO object>"
    elif isinstance(gt, Mapping):
        data = copy.deepcopy(dict(gt))
        name = "<GT dict>"
    else:
        raise TypeError(f"evaluate_coco: gt must be a json path, a COCO object or a dict, got {type(gt)}")
    if not isinstance(data, dict):
        raise ValueError(f"{name}: top level must be a JSON object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if key not in data:
            raise ValueError(f"{name}: missing top-level key '{key}'")
    data.setdefault("categories", [{"id": 1, "name": "person"}])
    for i, img in enumerate(data["images"]):
        if "id" not in img:
            raise ValueError(f"{name}: images[{i}]: missing field 'id'")
    for i, ann in enumerate(data["annotations"]):
        for key in ("image_id", "keypoints", "bbox"):
            if key not in ann:
                raise ValueError(f"{name}: annotations[{i}] (id={ann.get('id')}): missing field '{key}'")
    return data, name


# ------------------------------------------------------------------------------------- validation
def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def validate_coco_results(
    results: Any,
    num_keypoints: int | None = None,
    image_ids: Iterable[int] | None = None,
    source: str = "predictions",
) -> None:
    """Check a list of COCO keypoint result dicts; raise ``ValueError`` naming source, index and field.

    Required per entry: ``image_id`` (int), ``keypoints`` (``3K`` numbers, flat or ``(K, 3)``, finite),
    ``score`` (finite number). Optional, checked when present: ``bbox`` (4 finite numbers), ``area``,
    ``bbox_score`` (finite numbers).

    Args:
        results: the parsed predictions.
        num_keypoints: expected ``K``; when ``None`` only "a multiple of 3" is checked.
        image_ids: the ground-truth image ids; ids outside it are an error.
        source: the file name (or a label) used in messages.
    """
    if not isinstance(results, (list, tuple)):
        raise ValueError(f"{source}: expected a list of result dicts, got {type(results).__name__}")
    known = None if image_ids is None else {int(i) for i in image_ids}
    for i, r in enumerate(results):
        where = f"{source}: entry [{i}]"
        if not isinstance(r, Mapping):
            raise ValueError(f"{where}: expected a dict, got {type(r).__name__}")
        if "image_id" not in r:
            raise ValueError(f"{where}: missing field 'image_id'")
        iid = r["image_id"]
        if not _is_number(iid) or int(iid) != iid:
            raise ValueError(f"{where}: field 'image_id' must be an integer, got {iid!r}")
        if known is not None and int(iid) not in known:
            raise ValueError(f"{where}: field 'image_id' = {iid} is not an image of the ground truth")
        if "keypoints" not in r:
            raise ValueError(f"{where}: missing field 'keypoints'")
        try:
            k = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: field 'keypoints' is not a numeric array ({e})") from e
        if num_keypoints is not None and k.size != 3 * num_keypoints:
            raise ValueError(
                f"{where}: field 'keypoints' has {k.size} values, expected {3 * num_keypoints} "
                f"({num_keypoints} keypoints x [x, y, score])"
            )
        if num_keypoints is None and (k.size == 0 or k.size % 3):
            raise ValueError(f"{where}: field 'keypoints' has {k.size} values, not a multiple of 3")
        if not np.all(np.isfinite(k)):
            raise ValueError(f"{where}: field 'keypoints' contains NaN or inf")
        if "score" not in r:
            raise ValueError(f"{where}: missing field 'score'")
        for key in ("score", "bbox_score", "area"):
            if key in r and r[key] is not None and (not _is_number(r[key]) or not math.isfinite(r[key])):
                raise ValueError(f"{where}: field '{key}' must be a finite number, got {r[key]!r}")
        if r.get("bbox") is not None:
            b = np.asarray(r["bbox"], dtype=np.float64).reshape(-1)
            if b.size != 4 or not np.all(np.isfinite(b)):
                raise ValueError(f"{where}: field 'bbox' must be 4 finite numbers [x, y, w, h]")


def load_coco_results(
    path: PathLike,
    num_keypoints: int | None = None,
    image_ids: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """Read and validate a COCO keypoint results file (errors name the file, the index and the field)."""
    data = read_json(path, "predictions")
    validate_coco_results(data, num_keypoints, image_ids, source=str(path))
    return data


def _to_jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, Mapping):
        return {k: _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_jsonable(v) for v in x]
    return x


def write_coco_results(path: PathLike, preds: Sequence[Mapping[str, Any]], num_keypoints: int | None = None) -> Path:
    """Validate and write COCO keypoint results as JSON (numpy values are converted; keypoints flattened).

    Returns:
        The written path (parent folders are created).
    """
    out = []
    for r in preds:
        d = _to_jsonable(dict(r))
        if "keypoints" in d:
            d["keypoints"] = np.asarray(d["keypoints"], dtype=np.float64).reshape(-1).tolist()
        out.append(d)
    validate_coco_results(out, num_keypoints, source=str(path))
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        json.dump(out, f)
    return p


def to_coco_results(
    image_ids: ArrayLike,
    keypoints: ArrayLike,
    keypoint_scores: ArrayLike,
    bbox_scores: ArrayLike,
    bboxes: ArrayLike | None = None,
    areas: ArrayLike | None = None,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """Build COCO result dicts from arrays: ``keypoints (N, K, 2)``, ``keypoint_scores (N, K)``.

    ``score`` and ``bbox_score`` are both set to the box score (rescoring happens in
    :func:`evaluate_coco`); ``bboxes`` (xywh) and ``areas`` are stored when given (used for OKS-NMS).
    """
    k = np.asarray(keypoints, dtype=np.float64)
    s = np.asarray(keypoint_scores, dtype=np.float64)
    ids = np.asarray(image_ids).reshape(-1)
    bs = np.broadcast_to(np.asarray(bbox_scores, dtype=np.float64).reshape(-1), ids.shape)
    flat = np.concatenate([k, s[..., None]], axis=-1).reshape(k.shape[0], -1)
    out = []
    for n in range(k.shape[0]):
        r: dict[str, Any] = {
            "image_id": int(ids[n]),
            "category_id": int(category_id),
            "keypoints": flat[n].tolist(),
            "score": float(bs[n]),
            "bbox_score": float(bs[n]),
        }
        if bboxes is not None:
            r["bbox"] = np.asarray(bboxes, dtype=np.float64)[n].tolist()
        if areas is not None:
            r["area"] = float(np.asarray(areas, dtype=np.float64).reshape(-1)[n])
        out.append(r)
    return out


# ------------------------------------------------------------------------------------ preparation
def prepare_coco_results(
    predictions: Sequence[Mapping[str, Any]],
    sigmas: ArrayLike,
    rescore: bool = True,
    rescore_thr: float = 0.2,
    nms_thr: float | None = 0.9,
    nms_vis_thr: float | None = None,
) -> list[dict[str, Any]]:
    """Group per (image, category), rescore and OKS-NMS; returns plain result dicts for ``loadRes``.

    * rescoring (``rescore=True``): ``score = bbox_score × mean(keypoint scores > rescore_thr)``, where
      ``bbox_score`` is the entry's ``bbox_score`` if present, else its ``score``;
    * OKS-NMS (``nms_thr`` not ``None``) per image with areas from :func:`~.functional.instance_area`.

    Output entries hold only ``image_id, category_id, keypoints, score``, ordered by image then
    decreasing score. (``bbox``/``area`` are dropped on purpose: pycocotools' ``loadRes`` treats results
    with a ``bbox`` as box results and would then take the box area instead of the keypoint extent.)
    """
    sig = np.asarray(sigmas, dtype=np.float64)
    groups: dict[tuple[int, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in predictions:
        groups[(int(r["image_id"]), int(r.get("category_id", 1)))].append(r)
    out: list[dict[str, Any]] = []
    for (iid, cid), insts in groups.items():
        kpts = np.stack([np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3) for r in insts])
        if rescore:
            box = np.asarray([float(r.get("bbox_score", r["score"])) for r in insts])
            scores = np.asarray(_rescore(kpts[..., 2], box, rescore_thr), dtype=np.float64).reshape(-1)
        else:
            scores = np.asarray([float(r["score"]) for r in insts])
        if nms_thr is not None:
            areas = np.asarray([instance_area(r, k) for r, k in zip(insts, kpts)])
            keep = oks_nms_arrays(kpts, scores, areas, sig, thr=nms_thr, vis_thr=nms_vis_thr)
        else:
            keep = np.argsort(-scores, kind="stable")
        for i in keep:
            d: dict[str, Any] = {
                "image_id": iid,
                "category_id": cid,
                "keypoints": kpts[i].reshape(-1).tolist(),
                "score": float(scores[i]),
            }
            out.append(d)
    return out


# ------------------------------------------------------------------------------------- evaluation
def _summary_value(eval_: dict[str, Any], params: Any, ap: bool, iou_thr: float | None = None) -> float:
    """pycocotools' ``_summarize`` for area index 0 and the last maxDets, without printing."""
    s = eval_["precision"] if ap else eval_["recall"]
    if iou_thr is not None:
        s = s[np.where(np.isclose(params.iouThrs, iou_thr))[0]]
    s = s[..., 0, -1]  # area range 0 ("all"), last maxDets; same trailing axes for precision and recall
    s = s[s > -1]
    return float(s.mean()) if s.size else -1.0


def evaluate_coco(
    gt: Any,
    predictions: Sequence[Mapping[str, Any]] | PathLike,
    sigmas: ArrayLike,
    iou_type: str = "keypoints",
    use_area: bool = True,
    rescore: bool = True,
    rescore_thr: float = 0.2,
    nms_thr: float | None = 0.9,
    nms_vis_thr: float | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR with pycocotools, after MMPose-style rescoring and OKS-NMS.

    Args:
        gt: a COCO-format GT json path, a pycocotools ``COCO`` object or a GT dict (never modified).
        predictions: COCO result dicts (``image_id, category_id, keypoints (3K), score``, optional
            ``bbox_score``/``bbox``/``area``) or a path to a results json. They are validated first
            (:func:`validate_coco_results`).
        sigmas: ``(K,)`` per-joint sigmas, passed as ``params.kpt_oks_sigmas``.
        iou_type: ``'keypoints'`` or ``'keypoints_crowd'`` (CrowdPose, emulated; see the module doc).
        use_area: use the GT ``area``; ``False`` uses ``0.53 × bbox w × h`` (xtcocotools' convention).
        rescore: apply ``bbox_keypoint`` rescoring (see :func:`prepare_coco_results`).
        rescore_thr: keypoint-score threshold of the rescoring (0.2).
        nms_thr: OKS-NMS threshold (0.9), ``None`` disables NMS.
        nms_vis_thr: optional per-joint score threshold inside OKS-NMS.

    Returns:
        ``{'AP', 'AP50', 'AP75', 'APM', 'APL', 'AR', 'AR50', 'AR75', 'ARM', 'ARL'}`` for ``'keypoints'``,
        ``{'AP', 'AP50', 'AP75', 'AR', 'AR50', 'AR75', 'APE', 'APM', 'APH'}`` for ``'keypoints_crowd'``.
        If no prediction is left every value is 0.0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("keypoints", "keypoints_crowd"):
        raise ValueError(f"evaluate_coco: iou_type must be 'keypoints' or 'keypoints_crowd', got {iou_type!r}")
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    data, gt_name = _load_gt(gt)
    for i, ann in enumerate(data["annotations"]):
        if use_area:
            if "area" not in ann:
                raise ValueError(
                    f"{gt_name}: annotations[{i}] (id={ann.get('id')}): missing field 'area' "
                    "(use use_area=False for datasets without areas, e.g. CrowdPose)"
                )
        else:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3]) * _NO_AREA_FACTOR
        ann.setdefault("iscrowd", 0)
        ann.setdefault("category_id", 1)
        if len(ann["keypoints"]) != 3 * sig.size:
            raise ValueError(
                f"{gt_name}: annotations[{i}] (id={ann.get('id')}): field 'keypoints' has "
                f"{len(ann['keypoints'])} values, expected {3 * sig.size} for {sig.size} sigmas"
            )
    image_ids = [int(img["id"]) for img in data["images"]]

    if isinstance(predictions, (str, os.PathLike)):
        preds = load_coco_results(predictions, sig.size, image_ids)
    else:
        validate_coco_results(predictions, sig.size, image_ids)
        preds = list(predictions)
    results = prepare_coco_results(preds, sig, rescore, rescore_thr, nms_thr, nms_vis_thr)
    names = COCO_KEYPOINT_METRICS if iou_type == "keypoints" else CROWDPOSE_METRICS
    if not results:
        logger.warning("evaluate_coco: no prediction left to evaluate; reporting 0.0")
        return dict.fromkeys(names, 0.0)

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = sig
        if iou_type == "keypoints":
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            stats = dict(zip(names, (float(x) for x in ev.stats)))
        else:
            ev.params.areaRng = [[0.0, 1e10]]
            ev.params.areaRngLbl = ["all"]
            ev.params.maxDets = [20]
            ev.evaluate()
            ev.accumulate()
            stats = {
                "AP": _summary_value(ev.eval, ev.params, True),
                "AP50": _summary_value(ev.eval, ev.params, True, 0.5),
                "AP75": _summary_value(ev.eval, ev.params, True, 0.75),
                "AR": _summary_value(ev.eval, ev.params, False),
                "AR50": _summary_value(ev.eval, ev.params, False, 0.5),
                "AR75": _summary_value(ev.eval, ev.params, False, 0.75),
            }
            crowd = {int(img["id"]): float(img.get("crowdIndex", -1.0)) for img in data["images"]}
            if any(v < 0 for v in crowd.values()):
                missing = [k for k, v in crowd.items() if v < 0][:5]
                raise ValueError(
                    f"{gt_name}: iou_type='keypoints_crowd' needs field 'crowdIndex' on every image "
                    f"(missing on image ids {missing})"
                )
            lo, hi = _CROWD_SPLITS
            splits = {
                "APE": [i for i, c in crowd.items() if c < lo],
                "APM": [i for i, c in crowd.items() if lo <= c < hi],
                "APH": [i for i, c in crowd.items() if c >= hi],
            }
            for key, ids in splits.items():
                ev.params.imgIds = sorted(ids)
                ev.evaluate()
                ev.accumulate()
                stats[key] = round(float(np.mean(ev.eval["precision"][:, :, :, 0, :])), 4) if ids else -1.0
    logger.debug("pycocotools output:\n%s", buf.getvalue())
    return stats


class CocoMetric:
    """Stateful COCO keypoint metric: ``update`` with result dicts, ``compute`` runs :func:`evaluate_coco`.

    Args:
        gt: GT json path / COCO object / dict.
        sigmas: ``(K,)`` sigmas (e.g. ``get_metainfo('coco').sigmas``).
        outfile: optional path; ``compute`` then also writes the prepared-for-eval input there.
        **kwargs: forwarded to :func:`evaluate_coco` (``iou_type``, ``use_area``, ``rescore``, ``nms_thr``...).
    """

    def __init__(self, gt: Any, sigmas: ArrayLike, outfile: PathLike | None = None, **kwargs: Any) -> None:
        self.gt = gt
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.outfile = outfile
        self.kwargs = kwargs
        self.results: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Drop the accumulated results."""
        self.results = []

    def update(self, results: Iterable[Mapping[str, Any]]) -> None:
        """Add COCO result dicts (see :func:`to_coco_results` to build them from arrays)."""
        self.results.extend(_to_jsonable(dict(r)) for r in results)

    def compute(self) -> dict[str, float]:
        """Evaluate everything accumulated so far."""
        if self.outfile is not None:
            write_coco_results(self.outfile, self.results, self.sigmas.size)
        return evaluate_coco(self.gt, self.results, self.sigmas, **self.kwargs)
