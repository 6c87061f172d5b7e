"""Evaluation: pure-numpy functions (:mod:`.functional`) and stateful metrics (:mod:`.coco`, :mod:`.wholebody`, :mod:`.pck`)."""

from .coco import (
    COCO_KEYPOINT_METRICS,
    CROWDPOSE_METRICS,
    CocoMetric,
    evaluate_coco,
    load_coco_results,
    prepare_coco_results,
    to_coco_results,
    validate_coco_results,
    write_coco_results,
)
from .functional import (
    MPII_REPORT_GROUPS,
    compute_oks,
    head_size_from_boxes,
    instance_area,
    oks_matrix,
    oks_nms,
    oks_nms_arrays,
    pck_accuracy,
    pckh,
    pckh_per_joint,
    rescore,
)
from .pck import MpiiPCKh, PCKAccuracy, bbox_size_norm
from .wholebody import WHOLEBODY_PARTS, WHOLEBODY_REPORT_PARTS, evaluate_wholebody

__all__ = [
    "COCO_KEYPOINT_METRICS",
    "CROWDPOSE_METRICS",
    "MPII_REPORT_GROUPS",
    "CocoMetric",
    "MpiiPCKh",
    "PCKAccuracy",
    "WHOLEBODY_PARTS",
    "WHOLEBODY_REPORT_PARTS",
    "bbox_size_norm",
    "compute_oks",
    "evaluate_coco",
    "evaluate_wholebody",
    "head_size_from_boxes",
    "instance_area",
    "load_coco_results",
    "oks_matrix",
    "oks_nms",
    "oks_nms_arrays",
    "pck_accuracy",
    "pckh",
    "pckh_per_joint",
    "prepare_coco_results",
    "rescore",
    "to_coco_results",
    "validate_coco_results",
    "write_coco_results",
]
