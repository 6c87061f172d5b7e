"""COCO-style keypoint AP/AR through **pycocotools** ``COCOeval``, with the official pre-processing.

:func:`evaluate_coco` takes COCO result dicts, groups them per image, optionally rescores them
(official ``box score × mean(joint scores > thr)``) and applies OKS-NMS, then runs ``COCOeval`` with the
dataset's sigmas (``params.kpt_oks_sigmas``). pycocotools' printing is captured (logged at DEBUG level)
and the numbers are returned in a dict. :func:`select_instances` is the rescoring + OKS-NMS step alone
(rescored scores and kept indices), :func:`prepare_coco_results` turns its choice into ``loadRes`` input.
The protocol-driven entry point is :func:`posetokens.evaluation.coco.evaluate_keypoints`.

The official order (HRNet ``COCODataset.evaluate``, spec ``pipeline.md`` §1.7): images in order of first
appearance; within an image, the OKS-NMS visiting order (``np.argsort(score)[::-1]``); results handed to
COCOeval carry no ``bbox``/``area``, so ``loadRes`` gives each the keypoint extent as its area (which only
selects the M/L area ranges). The OKS-NMS area is the padded box ``prod(scale)`` (``nms_area='box'``),
read from each result's ``area`` field.

pycocotools vs xtcocotools (MMPose uses xtcocotools)
----------------------------------------------------
* xtcocotools drops predictions whose keypoint scores are all ``<= 0`` (``COCOeval._prepare``); pycocotools
  keeps them. Feeding the GT of ``test_coco.json`` back as predictions therefore gives AP 1.0 with
  xtcocotools and 0.894 with pycocotools (the two zero-keypoint annotations become false positives).
  ``coco_backend='xtcocotools'`` (PCT, MMPose) reproduces xtcocotools by dropping those predictions
  before pycocotools runs; ``'pycocotools'`` (TokenPose, PPT, GTPT COCO) keeps them.
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
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from posetokens.data.datasets.coco_style import category_ids, check_image_ids
from posetokens.fileio import atomic_write_text, check_no_overwrite, read_json
from posetokens.runtime import is_number, is_whole, short_repr, warn_once

if TYPE_CHECKING:
    from posetokens.data.metainfo import PoseMetaInfo
    from posetokens.protocols import EvalRule, Protocol

from .functional import NMS_AREA_MODES, nms_areas, oks_nms_arrays, rescore as _rescore

__all__ = [
    "PERSON_CATEGORY",
    "COCO_BACKENDS",
    "COCO_KEYPOINT_METRICS",
    "CROWDPOSE_METRICS",
    "CocoMetric",
    "evaluate_coco",
    "evaluate_keypoints",
    "load_coco_results",
    "prepare_coco_results",
    "select_instances",
    "to_coco_results",
    "validate_coco_results",
    "warn_prediction_coverage",
    "write_coco_results",
]

logger = logging.getLogger(__name__)

#: The category every prediction of ours carries (COCO's person): the ground truth's people must be of it.
PERSON_CATEGORY = 1
COCO_KEYPOINT_METRICS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "APE", "APM", "APH")
_CROWD_SPLITS = (0.2, 0.8)  # xtcocotools get_type_result(first=0.2, second=0.8)
_NO_AREA_FACTOR = 0.53  # xtcocotools' object scale when use_area=False
COCO_BACKENDS = ("pycocotools", "xtcocotools")

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
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise ValueError(f"{name}: top-level '{key}' must be a list of objects, got {type(data[key]).__name__}")
    category_ids(data, name)  # each an object with an integer id (the training loader's check)
    for i, img in enumerate(data["images"]):
        if not isinstance(img, Mapping):
            raise ValueError(f"{name}: images[{i}]: expected an object, got {type(img).__name__}")
        if "id" not in img:
            raise ValueError(f"{name}: images[{i}]: missing field 'id'")
    # integers (pycocotools matches ids by equality: "785" failed with an assertion), each given once
    check_image_ids(data["images"], name)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, Mapping):
            raise ValueError(f"{name}: annotations[{i}]: expected an object, got {type(ann).__name__}")
        for key in ("id", "image_id", "keypoints", "bbox", "num_keypoints"):  # what COCOeval reads of each
            if key not in ann:
                raise ValueError(f"{name}: annotations[{i}] (id={ann.get('id')}): missing field '{key}'")
        for key in ("id", "image_id", "num_keypoints"):
            if not is_whole(ann[key]):
                raise ValueError(f"{name}: annotations[{i}] (id={ann.get('id')}): field '{key}' must be an integer, "
                                 f"got {ann[key]!r}")
        where = f"{name}: annotations[{i}] (id={ann['id']})"
        box = ann["bbox"]
        if not (isinstance(box, (list, tuple)) and len(box) == 4
                and all(is_number(v) and math.isfinite(v) for v in box)):
            raise ValueError(f"{where}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {box!r}")
        kpts = ann["keypoints"]
        if not (isinstance(kpts, (list, tuple)) and kpts and len(kpts) % 3 == 0
                and all(is_number(v) and math.isfinite(v) for v in kpts)):
            raise ValueError(f"{where}: field 'keypoints' must be a flat list of finite numbers [x, y, v, ...] "
                             f"(3 per keypoint), got {short_repr(kpts)}")
        if "area" in ann and not (is_number(ann["area"]) and math.isfinite(ann["area"]) and ann["area"] >= 0):
            raise ValueError(f"{where}: field 'area' must be a finite number >= 0, got {ann['area']!r}")
        if "iscrowd" in ann and not (isinstance(ann["iscrowd"], bool) or (is_whole(ann["iscrowd"])
                                                                           and ann["iscrowd"] in (0, 1))):
            raise ValueError(f"{where}: field 'iscrowd' must be 0 or 1, got {short_repr(ann['iscrowd'])}")
    seen: dict[int, int] = {}
    for i, ann in enumerate(data["annotations"]):  # COCO indexes them by id: a repeated id hid a person
        j = seen.setdefault(int(ann["id"]), i)
        if j != i:
            raise ValueError(f"{name}: annotations[{i}]: field 'id' = {ann['id']} repeats annotations[{j}]'s; "
                             "expected one id per annotation (COCO's index keeps only one of them)")
    return data, name


def _check_scored_annotations(data: Mapping[str, Any], name: str, num_keypoints: int, use_area: bool,
                              crowd: bool = False) -> set[int]:
    """What COCOeval needs of each annotation under a dataset's sigmas: a category of ``categories``, an ``area``
    when ``use_area``, ``num_keypoints`` keypoints, and with ``crowd`` (CrowdPose's splits) a finite ``crowdIndex``
    on every image (``ValueError`` naming the file, the item, the field). Returns the category ids."""
    if crowd:
        for i, img in enumerate(data["images"]):
            c = img.get("crowdIndex")
            if not (is_number(c) and math.isfinite(c) and c >= 0):
                got = f"got {short_repr(c)}" if "crowdIndex" in img else "it is missing"
                raise ValueError(f"{name}: images[{i}] (id={img['id']}): field 'crowdIndex' must be a finite number "
                                 f">= 0 (CrowdPose's easy/medium/hard splits); {got}")
    categories = {int(c["id"]) for c in data["categories"]}
    for i, ann in enumerate(data["annotations"]):
        cat = ann.get("category_id", 1)
        if not (is_whole(cat) and int(cat) in categories):
            raise ValueError(f"{name}: annotations[{i}] (id={ann['id']}): field 'category_id' = "
                             f"{ann.get('category_id')!r} is not one of its 'categories' ({sorted(categories)})")
        if use_area and "area" not in ann:
            raise ValueError(
                f"{name}: annotations[{i}] (id={ann.get('id')}): missing field 'area' "
                "(a dataset without areas, such as CrowdPose: evaluate --dataset crowdpose, or use_area=False)"
            )
        if len(ann["keypoints"]) != 3 * num_keypoints:
            raise ValueError(
                f"{name}: annotations[{i}] (id={ann.get('id')}): field 'keypoints' has "
                f"{len(ann['keypoints'])} values, expected {3 * num_keypoints} for {num_keypoints} sigmas (the "
                "dataset's layout: another one needs its own, e.g. evaluate --dataset SKELETON.json)"
            )
    return categories


def _warn_pycocotools_quirks(data: Mapping[str, Any], name: str, iou_type: str) -> None:
    """Say (once) where pycocotools' COCOeval scores ground truth other than it reads (as the official evaluation
    does): an annotation id 0, and a ``num_keypoints`` that disagrees with the visibility flags about whether any
    keypoint is labelled (it ignores a person by ``num_keypoints`` = 0 whatever the flags, and keeps one whose
    flags are all 0 when ``num_keypoints`` > 0; CrowdPose's ``num_keypoints`` counts only v = 2, so not checked)."""
    anns = data["annotations"]
    zero = [i for i, a in enumerate(anns) if int(a["id"]) == 0]
    if zero:
        warn_once(logger, "%s: annotations[%d] has id 0: pycocotools' COCOeval stores a match as the annotation's "
                  "id and reads 0 as none, so that person counts as missed and its prediction as a false positive "
                  "(as in the official evaluation); renumber the ids from 1", name, zero[0])
    if iou_type != "keypoints":
        return
    odd = [i for i, a in enumerate(anns)
           if (int(a["num_keypoints"]) == 0) != (not np.any(np.asarray(a["keypoints"][2::3]) > 0))]
    if odd:
        warn_once(logger, "%s: %d annotation(s) whose 'num_keypoints' disagrees with their visibility flags about "
                  "having a labelled keypoint (the first: annotations[%d]); pycocotools decides by num_keypoints "
                  "(0: the person is ignored)", name, len(odd), odd[0])


def check_coco_ground_truth(gt: Any, metainfo: PoseMetaInfo | str | None = None,
                            coco_backend: str = "pycocotools", predicted_categories: set[int] | None = None,
                            source: str = "the predictions") -> None:
    """Check a COCO-style ground truth (json path, COCO object or dict) as the evaluation will, before any work:
    ``ValueError`` naming the file, the annotation and the field. With ``metainfo`` (a COCO-style dataset other
    than COCO-WholeBody, whose parts are checked by its own evaluation) also each annotation's category, area and
    keypoint count, as :func:`evaluate_coco` checks them under that dataset's sigmas, and (``coco_backend``
    pycocotools) what pycocotools reads in its own way, said once. With ``predicted_categories`` (what the
    predictions, named ``source``, will carry: the model's person category), people annotated under another
    category are refused, as :func:`evaluate_coco` refuses them (each would count as AP 0)."""
    from posetokens.data.metainfo import get_metainfo

    data, name = _load_gt(gt)
    mi = get_metainfo(metainfo) if isinstance(metainfo, str) else metainfo
    if mi is not None and mi.name != "coco_wholebody" and mi.sigmas is not None:
        _check_scored_annotations(data, name, len(mi.sigmas), mi.eval_use_area, mi.eval_iou_type == "keypoints_crowd")
        if coco_backend == "pycocotools":
            _warn_pycocotools_quirks(data, name, mi.eval_iou_type)
    if predicted_categories is not None:
        _check_predicted_categories(data, name, predicted_categories, source)


def _check_predicted_categories(data: Mapping[str, Any], gt_name: str, predicted: set[int], source: str) -> None:
    """COCOeval averages over every category with people: one that no prediction names counts as AP 0 (a person
    file with a second category halved the AP without a word). ``ValueError`` naming them."""
    unpredicted = sorted({int(a.get("category_id", 1)) for a in _scored_people(data)} - predicted)
    if unpredicted:
        raise ValueError(f"{gt_name}: annotated people of categor{'y' if len(unpredicted) == 1 else 'ies'} "
                         f"{unpredicted} and no prediction of {'it' if len(unpredicted) == 1 else 'them'} in "
                         f"{source} (COCOeval averages the AP over the categories, so each would count as 0); expected "
                         "the ground truth of the predicted categories only")


def warn_prediction_coverage(data: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]],
                             source: str = "predictions", gt_name: str = "the ground truth") -> int:
    """Warn (log) when ``predictions`` is empty or leaves ground-truth images with annotated people without any
    prediction (they count as missed people: a detections file or an inference run that covered only part of
    the set). Returns the number of such images."""
    listed = {int(img["id"]) for img in data["images"]}
    unlisted = sorted({int(a["image_id"]) for a in data["annotations"]} - listed)
    if unlisted:  # a val subset cut by its images: COCOeval scores the listed images only
        shown = ", ".join(str(i) for i in unlisted[:5]) + (", ..." if len(unlisted) > 5 else "")
        logger.warning("%s: annotations of %d image id(s) not in its 'images' (%s) are not scored", gt_name,
                       len(unlisted), shown)
    people = _images_with_people(data)
    covered = {int(r["image_id"]) for r in predictions}
    missing = sorted(people - covered)
    if not predictions:
        logger.warning("%s: 0 predictions (an empty results file); every metric is 0.0 (%d ground-truth images "
                       "with annotated people)", source, len(people))
    elif missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        logger.warning("%s: %d of %d ground-truth images with annotated people have no prediction (image ids %s); "
                       "their people count as missed", source, len(missing), len(people), shown)
    return len(missing)


def _scored_people(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The annotated people COCOeval scores: in a listed image, not a crowd region, with a labelled keypoint."""
    listed = {int(img["id"]) for img in data["images"]}
    return [a for a in data["annotations"] if not a.get("iscrowd", 0) and _labelled(a) and int(a["image_id"]) in listed]


def _images_with_people(data: Mapping[str, Any]) -> set[int]:
    """The listed images with an annotated person COCOeval scores (:func:`_scored_people`)."""
    return {int(a["image_id"]) for a in _scored_people(data)}


def _box_score(r: Mapping[str, Any]) -> float:
    """A result's box score for rescoring: its ``bbox_score``, else (missing or null) its ``score``."""
    return r["score"] if r.get("bbox_score") is None else r["bbox_score"]


def _labelled(ann: Mapping[str, Any]) -> bool:
    """Whether a GT annotation has a labelled keypoint (``num_keypoints``, else the visibility flags)."""
    if "num_keypoints" in ann:
        return bool(ann["num_keypoints"])
    try:
        return bool(np.any(np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, 2] > 0))
    except (TypeError, ValueError):
        return True


# ------------------------------------------------------------------------------------- validation
def validate_coco_results(
    results: Any,
    num_keypoints: int | None = None,
    image_ids: Iterable[int] | None = None,
    source: str = "predictions",
) -> None:
    """Check a list of COCO keypoint result dicts; raise ``ValueError`` naming source, index and field.

    Required per entry: ``image_id`` (int), ``keypoints`` (``3K`` numbers, flat or ``(K, 3)``, finite),
    ``score`` (finite number). Optional, checked when present: ``bbox`` (4 finite numbers), ``area``
    (the padded-box area OKS-NMS uses), ``bbox_score`` (finite numbers), ``center`` and ``scale`` (2 finite
    numbers each; the official results carry them, they are not used by the evaluation).

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
        if not is_whole(iid):  # a NaN id raised from int()
            raise ValueError(f"{where}: field 'image_id' must be an integer, got {iid!r}")
        if known is not None and int(iid) not in known:
            raise ValueError(f"{where}: field 'image_id' = {iid} is not an image of the ground truth")
        if "keypoints" not in r:
            raise ValueError(f"{where}: missing field 'keypoints'")
        try:
            k = np.asarray(r["keypoints"])
            if k.dtype.kind not in "iuf":  # booleans and text would be read as numbers
                raise TypeError(f"values of type {k.dtype}")
            k = k.astype(np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: field 'keypoints' is not a numeric array ({e})") from None
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
        for key in ("score", "bbox_score", "area"):  # a null bbox_score or area counts as none
            if key in r and (r[key] is not None or key == "score") and (
                    not is_number(r[key]) or not math.isfinite(r[key])):
                raise ValueError(f"{where}: field '{key}' must be a finite number, got {r[key]!r}")
        if r.get("area") is not None and r["area"] < 0:
            raise ValueError(f"{where}: field 'area' must be >= 0, got {r['area']!r}")
        for key, n, what in (("bbox", 4, "[x, y, w, h]"), ("center", 2, "[x, y]"), ("scale", 2, "[w, h]")):
            if r.get(key) is None:
                continue
            try:
                b = np.asarray(r[key], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                b = np.zeros(0)
            if b.size != n or not np.all(np.isfinite(b)):
                raise ValueError(f"{where}: field '{key}' must be {n} finite numbers {what}, got {r[key]!r}")
            if key != "center" and np.any(b[-2:] < 0):
                raise ValueError(f"{where}: field '{key}' must be {what} with sizes >= 0, got {r[key]!r}")


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
    """Validate and write COCO keypoint results as JSON, atomically (numpy values are converted; keypoints
    flattened).

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
    return atomic_write_text(p, json.dumps(out))  # readers never see half a file; an interrupt keeps the old one


def to_coco_results(
    image_ids: ArrayLike,
    keypoints: ArrayLike,
    keypoint_scores: ArrayLike,
    bbox_scores: ArrayLike,
    bboxes: ArrayLike | None = None,
    areas: ArrayLike | None = None,
    category_id: int = 1,
    centers: ArrayLike | None = None,
    scales: ArrayLike | None = None,
) -> list[dict[str, Any]]:
    """Build COCO result dicts from arrays: ``keypoints (N, K, 2)``, ``keypoint_scores (N, K)``.

    ``score`` and ``bbox_score`` are both set to the box score (rescoring happens in
    :func:`evaluate_coco`). Stored when given: ``bboxes`` (xywh), ``areas`` ``(N,)`` — the OKS-NMS area,
    officially the padded, aspect-fixed box ``prod(scale)`` in px² (``prod(s * 200)`` in the /200 unit) —
    and ``centers``/``scales`` ``(N, 2)`` (written by the official code, informational).
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
        if centers is not None:
            r["center"] = np.asarray(centers, dtype=np.float64).reshape(-1, 2)[n].tolist()
        if scales is not None:
            r["scale"] = np.asarray(scales, dtype=np.float64).reshape(-1, 2)[n].tolist()
        out.append(r)
    return out


# ------------------------------------------------------------------------------------ preparation
def _check_modes(nms_area: str, coco_backend: str, fn: str) -> None:
    if nms_area not in NMS_AREA_MODES:
        raise ValueError(f"{fn}: nms_area must be one of {list(NMS_AREA_MODES)}, got {nms_area!r}")
    if coco_backend not in COCO_BACKENDS:
        raise ValueError(f"{fn}: coco_backend must be one of {list(COCO_BACKENDS)}, got {coco_backend!r}")


def select_instances(
    predictions: Sequence[Mapping[str, Any]],
    sigmas: ArrayLike,
    rescore: bool = True,
    rescore_thr: float = 0.2,
    nms_thr: float | None = 0.9,
    nms_vis_thr: float | None = None,
    nms_area: str = "box",
    source: str = "predictions",
) -> tuple[np.ndarray, np.ndarray]:
    """Rescoring and OKS-NMS of the official evaluation (spec §1.7), as indices into ``predictions``.

    * grouping: per (image, category), groups in order of first appearance;
    * rescoring (``rescore=True``): ``score = bbox_score × mean(keypoint scores > rescore_thr)``, 0 when
      no joint passes; ``bbox_score`` is the entry's ``bbox_score`` if present, else its ``score``;
    * OKS-NMS (``nms_thr`` not ``None``) per group, over all K joints (``nms_vis_thr=None``, official),
      in the order ``np.argsort(score)[::-1]``; areas by ``nms_area`` (:func:`~.functional.nms_areas`:
      ``box`` = each entry's ``area``, an error naming the entry when missing; ``keypoints`` = keypoint
      extent; ``auto`` = ``area``, else ``bbox`` w×h, else keypoint extent). Without NMS every instance
      is kept, in input order within its group (COCOeval ranks them itself, ties in that order).

    Returns:
        ``(scores (N,), keep (M,))``: the (re)scored score of every entry in input order, and the kept
        entries' indices in the official results order (groups in order of first appearance, then the
        NMS visiting order, i.e. decreasing score; input order when NMS is off).
    """
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, r in enumerate(predictions):
        groups[(int(r["image_id"]), int(r.get("category_id", 1)))].append(i)
    n = len(predictions)
    kpts_all = [np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3) for r in predictions]
    scores = np.zeros(n, dtype=np.float64)
    keep_all: list[np.ndarray] = []
    for idx in groups.values():
        ids = np.asarray(idx, dtype=np.int64)
        kpts = np.stack([kpts_all[i] for i in idx])
        if rescore:
            box = np.asarray([float(_box_score(predictions[i])) for i in idx])
            s = np.asarray(_rescore(kpts[..., 2], box, rescore_thr), dtype=np.float64).reshape(-1)
        else:
            s = np.asarray([float(predictions[i]["score"]) for i in idx], dtype=np.float64)
        scores[ids] = s
        if nms_thr is not None:
            areas = nms_areas([predictions[i] for i in idx], kpts, nms_area,
                              where=[f"{source}: entry [{i}]" for i in idx])
            keep = oks_nms_arrays(kpts, s, areas, sig, thr=nms_thr, vis_thr=nms_vis_thr)
        else:
            keep = np.arange(len(idx))  # no NMS (MMPose nms_mode='none'): input order, COCOeval ranks
        keep_all.append(ids[keep])
    keep_out = np.concatenate(keep_all) if keep_all else np.zeros(0, dtype=np.int64)
    return scores, keep_out.astype(np.int64)


def prepare_coco_results(
    predictions: Sequence[Mapping[str, Any]],
    sigmas: ArrayLike,
    rescore: bool = True,
    rescore_thr: float = 0.2,
    nms_thr: float | None = 0.9,
    nms_vis_thr: float | None = None,
    nms_area: str = "auto",
    source: str = "predictions",
) -> list[dict[str, Any]]:
    """Group per (image, category), rescore and OKS-NMS (:func:`select_instances`); plain result dicts
    for ``loadRes``.

    Output entries hold only ``image_id, category_id, keypoints, score``, in the official results order
    (images in order of first appearance, then decreasing score). ``bbox``/``area`` are dropped on
    purpose, as the official code writes its results: pycocotools' ``loadRes`` treats results with a
    ``bbox`` as box results and would then take the box area instead of the keypoint extent.
    ``nms_area`` defaults to ``auto`` (the behaviour before protocols); the official rule is ``box``.
    """
    _check_modes(nms_area, COCO_BACKENDS[0], "prepare_coco_results")
    scores, keep = select_instances(predictions, sigmas, rescore, rescore_thr, nms_thr, nms_vis_thr,
                                    nms_area, source)
    out: list[dict[str, Any]] = []
    for i in keep:
        r = predictions[int(i)]
        out.append({
            "image_id": int(r["image_id"]),
            "category_id": int(r.get("category_id", 1)),
            "keypoints": np.asarray(r["keypoints"], dtype=np.float64).reshape(-1).tolist(),
            "score": float(scores[i]),
        })
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
    nms_area: str = "auto",
    coco_backend: str = "pycocotools",
    *,
    source: str | None = None,
) -> dict[str, float]:
    """COCO keypoint AP/AR with pycocotools, after the official rescoring and OKS-NMS.

    For a method's official settings use :func:`posetokens.evaluation.coco.evaluate_keypoints`, which
    calls this with a protocol's ``EvalRule``.

    Args:
        gt: a COCO-format GT json path, a pycocotools ``COCO`` object or a GT dict (never modified).
        predictions: COCO result dicts (``image_id, category_id, keypoints (3K), score``, optional
            ``bbox_score``/``bbox``/``area``) or a path to a results json. They are validated first
            (:func:`validate_coco_results`).
        sigmas: ``(K,)`` per-joint sigmas, passed as ``params.kpt_oks_sigmas``.
        iou_type: ``'keypoints'`` or ``'keypoints_crowd'`` (CrowdPose, emulated; see the module doc).
        use_area: use the GT ``area``; ``False`` uses ``0.53 × bbox w × h`` (xtcocotools' convention).
        rescore: apply ``bbox_keypoint`` rescoring (see :func:`select_instances`).
        rescore_thr: keypoint-score threshold of the rescoring (0.2; GTPT 0.01).
        nms_thr: OKS-NMS threshold (0.9), ``None`` disables NMS.
        nms_vis_thr: optional per-joint score threshold inside OKS-NMS (official: ``None``).
        nms_area: the OKS-NMS area, ``'box'`` (official: each result's ``area``, the padded box; a result
            without one is an error), ``'keypoints'`` (keypoint extent) or ``'auto'`` (``area``, else
            ``bbox`` w×h, else the keypoint extent: the default, as before protocols existed).
        coco_backend: ``'pycocotools'`` or ``'xtcocotools'`` (emulated: predictions whose keypoint scores
            are all ``<= 0`` are dropped before COCOeval, as xtcocotools does).
        source: what the messages call the predictions (default: the results file, or ``'predictions'``).

    Returns:
        ``{'AP', 'AP50', 'AP75', 'APM', 'APL', 'AR', 'AR50', 'AR75', 'ARM', 'ARL'}`` for ``'keypoints'``,
        ``{'AP', 'AP50', 'AP75', 'AR', 'AR50', 'AR75', 'APE', 'APM', 'APH'}`` for ``'keypoints_crowd'``.
        If no prediction is left every value is 0.0.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("keypoints", "keypoints_crowd"):
        raise ValueError(f"evaluate_coco: iou_type must be 'keypoints' or 'keypoints_crowd', got {iou_type!r}")
    _check_modes(nms_area, coco_backend, "evaluate_coco")
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    data, gt_name = _load_gt(gt)
    categories = _check_scored_annotations(data, gt_name, sig.size, use_area, iou_type == "keypoints_crowd")
    if coco_backend == "xtcocotools":
        for n, ann in enumerate(data["annotations"], 1):
            # xtcocotools marks "no match" with -1 where pycocotools uses 0: renumbered from 1, an annotation id 0
            # matches here as it does there
            ann["id"] = n
            if iou_type == "keypoints":  # it ignores a person without a labelled keypoint by the flags (v > 0)
                ann["num_keypoints"] = int(np.count_nonzero(np.asarray(ann["keypoints"][2::3]) > 0))
    else:
        _warn_pycocotools_quirks(data, gt_name, iou_type)
    for ann in data["annotations"]:
        if not use_area:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3]) * _NO_AREA_FACTOR
        ann.setdefault("iscrowd", 0)
        ann.setdefault("category_id", 1)
    image_ids = [int(img["id"]) for img in data["images"]]

    if isinstance(predictions, (str, os.PathLike)):
        preds = load_coco_results(predictions, sig.size, image_ids)
        source = source or str(predictions)
    else:
        source = source or "predictions"
        validate_coco_results(predictions, sig.size, image_ids, source=source)
        preds = list(predictions)
    for i, r in enumerate(preds):  # COCOeval scores each category apart: another id would score 0 without a word
        cat = r.get("category_id", 1)
        if not (is_whole(cat) and int(cat) in categories):
            raise ValueError(f"{source}: entry [{i}]: field 'category_id' = {cat!r} is not a category of the ground "
                             f"truth {gt_name} ({sorted(categories)})")
    if preds:
        _check_predicted_categories(data, gt_name, {int(r.get("category_id", 1)) for r in preds}, source)
    warn_prediction_coverage(data, preds, source, gt_name)
    results = prepare_coco_results(preds, sig, rescore, rescore_thr, nms_thr, nms_vis_thr, nms_area, source)
    if coco_backend == "xtcocotools":  # xtcocotools COCOeval._prepare skips detections without a positive score
        results = [r for r in results if np.any(np.asarray(r["keypoints"][2::3]) > 0)]
    names = COCO_KEYPOINT_METRICS if iou_type == "keypoints" else CROWDPOSE_METRICS
    if not results:
        if preds:  # (an empty file was reported above)
            logger.warning("%s: no prediction left to evaluate (%d given, none with a keypoint score > 0 under "
                           "the xtcocotools rule); every metric is 0.0", source, len(preds))
        return dict.fromkeys(names, 0.0)
    if not _images_with_people(data):
        logger.warning("%s: no annotated person in its listed images (none with a labelled keypoint outside crowd "
                       "regions); COCOeval has nothing to recall: every metric is -1 (undefined)", gt_name)

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
            crowd = {int(img["id"]): float(img["crowdIndex"]) for img in data["images"]}  # checked above
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


def evaluate_keypoints(
    gt: Any,
    results: Sequence[Mapping[str, Any]] | PathLike,
    metainfo: PoseMetaInfo | str,
    rule: EvalRule | Protocol,
    *,
    source: str | None = None,
) -> dict[str, float]:
    """AP/AR of per-box predictions under a protocol's evaluation rule: the one entry point for
    ``posetokens evaluate``/``test`` and training-time validation of COCO-style datasets.

    The rule supplies the rescoring threshold (``rescore_thr``; ``None``: keep the given scores, no
    rescoring), OKS-NMS (``nms_thr``, ``None``: off) and
    its area (``nms_area``: ``'box'`` reads each result's ``area`` — the padded box ``prod(scale)``, see
    :func:`to_coco_results` — and a result without it is an error; ``'keypoints'`` uses the keypoint
    extent), and the COCOeval flavour (``coco_backend``). Dispatch on ``metainfo``:

    * ``coco_wholebody`` (133 keypoints): rescoring and OKS-NMS on all 133 joints with the 133 sigmas,
      then one evaluation per part with that part's sigmas and ``use_area=True``
      (:func:`~.wholebody.evaluate_wholebody`; always xtcocotools' per-part semantics, the only
      whole-body evaluator, whatever ``coco_backend`` says);
    * every other dataset with sigmas (COCO, CrowdPose, custom COCO-style layouts): :func:`evaluate_coco`
      with the metainfo's sigmas, ``eval_iou_type`` and ``eval_use_area``.

    MPII's reported metric is PCKh (:func:`~.functional.pckh` with ``mean01_thr=rule.pckh_mean01_thr``); here a
    COCO-format MPII file gets an OKS AP with MPII's sigmas.

    Args:
        gt: GT json path, COCO object or dict (never modified).
        results: COCO result dicts (``image_id, category_id, keypoints (3K), score``, ``bbox_score``,
            ``area``; optional ``bbox``, ``center``, ``scale``) or a results json path.
        metainfo: a :class:`~posetokens.data.metainfo.PoseMetaInfo` or its name.
        rule: an :class:`~posetokens.protocols.EvalRule`, or a :class:`~posetokens.protocols.Protocol`
            (its ``eval`` rule is used).
        source: what the messages call the results (default: the results file, or ``'predictions'``).

    Returns:
        COCO: ``AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL``. CrowdPose (``keypoints_crowd``):
        ``AP, AP50, AP75, AR, AR50, AR75, APE, APM, APH``. COCO-WholeBody: the ten COCO keys holding the
        whole-body figures, plus ``{part}_{metric}`` for every part of ``body, foot, face, lefthand,
        righthand, hand, wholebody`` (``hand`` = mean of left and right) and each of the ten metrics.
    """
    from posetokens.data.metainfo import get_metainfo

    meta = get_metainfo(metainfo) if isinstance(metainfo, str) else metainfo
    ev = getattr(rule, "eval", rule)
    for name in ("rescore_thr", "nms_thr", "nms_area", "coco_backend"):
        if not hasattr(ev, name):
            raise TypeError(f"evaluate_keypoints: rule must be an EvalRule or a Protocol, got {type(rule).__name__}")
    # MPII's reported metric is PCKh (posetokens.evaluation.pckh, as `test` and training use); COCO-format MPII
    # results still get an OKS AP here with MPII's sigmas, as `posetokens evaluate --dataset mpii` always gave
    if meta.sigmas is None:
        raise ValueError(f"evaluate_keypoints: metainfo {meta.name!r} has no OKS sigmas, so no COCO-style evaluation")
    rescore = ev.rescore_thr is not None
    thr = float(ev.rescore_thr) if rescore else 0.0
    if meta.name == "coco_wholebody":
        from .wholebody import evaluate_wholebody

        parts = evaluate_wholebody(gt, results, rescore=rescore, nms_thr=ev.nms_thr, rescore_thr=thr,
                                   nms_area=ev.nms_area, source=source)
        flat = {f"{part}_{k}": v for part, stats in parts.items() for k, v in stats.items()}
        return {**parts["wholebody"], **flat}
    return evaluate_coco(gt, results, meta.sigmas_array, iou_type=meta.eval_iou_type, use_area=meta.eval_use_area,
                         rescore=rescore, rescore_thr=thr, nms_thr=ev.nms_thr, nms_area=ev.nms_area,
                         coco_backend=ev.coco_backend, source=source)


class CocoMetric:
    """Stateful COCO keypoint metric: ``update`` with result dicts, ``compute`` runs :func:`evaluate_coco`.

    Args:
        gt: GT json path / COCO object / dict.
        sigmas: ``(K,)`` sigmas (e.g. ``get_metainfo('coco').sigmas``).
        outfile: optional path; ``compute`` then also writes the accumulated results there, as given (before
            rescoring and OKS-NMS; refused when it is the ground-truth file).
        **kwargs: forwarded to :func:`evaluate_coco` (``iou_type``, ``use_area``, ``rescore``, ``nms_thr``...).
    """

    def __init__(self, gt: Any, sigmas: ArrayLike, outfile: PathLike | None = None, **kwargs: Any) -> None:
        self.gt = gt
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        if outfile is not None and isinstance(gt, (str, os.PathLike)):
            check_no_overwrite([("ground truth", gt)], [("outfile", outfile)])  # it would be replaced, then lost
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
