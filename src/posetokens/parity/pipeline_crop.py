"""Pipeline parity of the top-down training crop: fixtures of kind ``crop_target`` (methods ``tokenpose``, ``gtpt``).

Each fixture ran the official ``JointsDataset.__getitem__`` on the GT annotations of a COCO json with a scripted
augmentation per sample (half body, scale factor, rotation, flip). Here the same samples go through OUR dataset
loading (the protocol's GT-box cleaning), :func:`posetokens.protocols.topdown.build_pipeline` with those values fixed
(:class:`~posetokens.data.transforms.AugDraws`) and the protocol's codec
(:func:`posetokens.protocols.codec.build_codec`), and every official output is compared: the box before
augmentation, the centre/scale/rotation used, the network input, the crop-space joints and visibility, the targets
and their weights. The official scale is in units of 200 px; ours is in pixels (converted here only).

Sizes come from the fixture's ``official_config`` (``IMAGE_SIZE``/``HEATMAP_SIZE`` as [w, h], ``SIGMA``,
``SIMDR_SPLIT_RATIO``); everything else from the method's registered protocol.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posetokens.data.datasets.coco_style import imread_flags
from posetokens.data.transforms import PIXEL_STD, AugDraws
from posetokens.parity import Comparison
from posetokens.parity.pipeline import load_arrays, max_abs, mismatches, register_pipeline_handler, shared_path
from posetokens.protocols import Protocol, get_protocol

__all__ = ["crop_target_comparisons", "crop_target_outputs"]


# Tolerances, from the crop_target_* READMEs ("## Tolerance"):
TOL_GEOMETRY = 1e-4  # "`center`/`scale`/`rotation`: 1e-4."
TOL_JOINTS = 1e-3  # "`joints` (visible): 1e-3 px."
TOL_TARGETS = 1e-5  # "Targets: 1e-5 where both weights are 1."
TOL_WEIGHTS = 0.0  # "Weights: exact."
TOL_INPUT_MEAN = 0.01  # "`input`: per sample mean |d| <= 0.01 ...
TOL_INPUT_MAX = 0.1  # ... and max |d| <= 0.1 in normalised units."


def _wh(cfg: dict[str, Any], key: str, where: Path) -> tuple[int, int] | None:
    if key not in cfg:
        return None
    v = cfg[key]
    if not (isinstance(v, list) and len(v) == 2):
        raise ValueError(f"{where}: official_config.{key} must be [w, h], got {v!r}")
    return int(v[0]), int(v[1])


def fixture_protocol(spec: dict[str, Any], folder: Path, protocol: Protocol | None = None) -> Protocol:
    """The method's protocol with the fixture's target sizes (``SIGMA``, ``SIMDR_SPLIT_RATIO``) applied."""
    proto = protocol if protocol is not None else get_protocol(str(spec["method"]))
    cfg = spec.get("official_config", {})
    target: dict[str, Any] = {}
    if "SIGMA" in cfg:
        target["simcc_sigma" if proto.target.codec == "simcc" else "sigma"] = float(cfg["SIGMA"])
    if "SIMDR_SPLIT_RATIO" in cfg:
        target["simcc_split"] = float(cfg["SIMDR_SPLIT_RATIO"])
    return proto.replace({"target": target} if target else None, f"{folder / 'inputs.json'}: protocol")


def crop_target_outputs(folder: Path, spec: dict[str, Any], protocol: Protocol | None = None) -> dict[str, Any]:
    """Our outputs for every sample of a ``crop_target`` fixture, stacked like the official ``outputs.npz``
    (``box_center``, ``box_scale`` and ``scale`` in /200 units, ``center``, ``rotation``, ``input``, ``joints``
    (K, 2), ``joints_vis`` (K,), the codec's targets, ``target_weight`` (K,), heatmap-px ``joints_target`` for
    heatmap codecs), plus ``kept_ids`` (the annotation ids our loader keeps) and ``image_md5_ok``.

    ``protocol`` replaces the method's registered protocol (planted-bug tests)."""
    from posetokens.protocols.codec import build_codec
    from posetokens.protocols.topdown import build_coco_dataset, build_pipeline

    folder = Path(folder)
    where = folder / "inputs.json"
    for key in ("gt", "samples", "official_config"):
        if key not in spec:
            raise ValueError(f"{where}: missing field {key!r}")
    proto = fixture_protocol(spec, folder, protocol)
    cfg = spec["official_config"]
    in_wh = _wh(cfg, "IMAGE_SIZE", where)
    if in_wh is None:
        raise ValueError(f"{where}: official_config.IMAGE_SIZE ([w, h]) is required")
    hm_wh = _wh(cfg, "HEATMAP_SIZE", where)
    input_hw = (in_wh[1], in_wh[0])
    heatmap_hw = (hm_wh[1], hm_wh[0]) if hm_wh is not None and proto.target.codec == "heatmap" else None
    codec = build_codec(proto, input_hw, heatmap_hw)

    gt = shared_path(folder, str(spec["gt"]))
    ds = build_coco_dataset(proto, gt, gt.parent, "coco", mode="train")
    by_id = {int(ds.get_data_info(i)["id"]): i for i in range(len(ds))}
    pipe = build_pipeline(proto, input_hw, ds.metainfo, codec=codec, train=True)

    md5 = spec.get("decoded_image_md5", {})
    images: dict[str, np.ndarray] = {}
    md5_ok = True
    rows: dict[str, list[Any]] = {}
    for k, smp in enumerate(spec["samples"]):
        for key in ("annotation_id", "image", "half_body", "scale_factor", "rotation", "flip"):
            if key not in smp:
                raise ValueError(f"{where}: samples[{k}] is missing field {key!r}")
        ann = int(smp["annotation_id"])
        if ann not in by_id:
            raise ValueError(f"{where}: samples[{k}] annotation {ann} is not among the annotations our loader keeps "
                             f"from {gt} (gt_clean={proto.box.gt_clean!r})")
        item = ds.get_data_info(by_id[ann])
        path = str(smp["image"])
        if path not in images:
            bgr = cv2.imread(str(shared_path(folder, path)), imread_flags(proto.exif_orientation))  # as it reads
            if bgr is None:
                raise ValueError(f"{where}: samples[{k}] image {path} cannot be decoded")
            name = Path(path).name
            if name in md5:
                md5_ok &= hashlib.md5(bgr.tobytes()).hexdigest() == md5[name]
            images[path] = np.ascontiguousarray(bgr[..., ::-1])  # COLOR_RGB: true
        draws = AugDraws(half_body=smp["half_body"], scale_factor=float(smp["scale_factor"]),
                         rotation=float(smp["rotation"]), flip=bool(smp["flip"]))
        out = pipe.run_item(item, draws=draws, image=images[path])
        row = {
            "box_center": out["box_center"], "box_scale": np.asarray(out["box_scale"]) / PIXEL_STD,
            "center": out["center"], "scale": np.asarray(out["scale"]) / PIXEL_STD, "rotation": out["rotation"],
            "input": out["image"], "joints": out["keypoints"], "joints_vis": out["keypoints_visible"],
            "target_weight": out["keypoint_weights"],
        }
        for key in codec.label_keys:
            if key != "keypoint_weights":
                row[key] = out[key]
        if hasattr(codec, "input_to_heatmap"):
            row["joints_target"] = codec.input_to_heatmap(np.asarray(out["keypoints"], np.float64))
        for key, v in row.items():
            rows.setdefault(key, []).append(np.asarray(v))
    res: dict[str, Any] = {key: np.stack(v) for key, v in rows.items()}
    res["kept_ids"] = sorted(by_id)
    res["image_md5_ok"] = md5_ok
    return res


def crop_target_comparisons(folder: Path, spec: dict[str, Any], protocol: Protocol | None = None
                            ) -> list[Comparison]:
    """The comparisons of a ``crop_target`` fixture (tolerances from its README)."""
    folder = Path(folder)
    off = load_arrays(folder / "outputs.npz")
    ours = crop_target_outputs(folder, spec, protocol)
    comps: list[Comparison] = []

    n = len(spec["samples"])
    sample_ids = {int(s["annotation_id"]) for s in spec["samples"]}
    # The fixture's samples are the annotations the official loader keeps (README "Inputs"): when the samples are
    # that whole set, ours must keep exactly those.
    if len(sample_ids) == n:
        comps.append(Comparison("kept_annotations", float(len(set(ours["kept_ids"]) ^ sample_ids)), 0.0,
                                "mismatched_indices"))
    comps.append(Comparison("decoded_image_md5", 0.0 if ours["image_md5_ok"] else 1.0, 0.0, "mismatched_indices"))

    for name in ("box_center", "box_scale", "center", "scale", "rotation"):
        comps.append(Comparison(name, max_abs(ours[name], off[name], name), TOL_GEOMETRY))

    d = np.abs(ours["input"].astype(np.float64) - off["input"].astype(np.float64))
    if d.shape != off["input"].shape:
        raise ValueError(f"output 'input': shape {ours['input'].shape} vs official {off['input'].shape}")
    comps.append(Comparison("input_mean_abs_worst_sample", float(d.reshape(n, -1).mean(1).max()), TOL_INPUT_MEAN,
                            "mean_abs_diff"))
    comps.append(Comparison("input", float(d.max()), TOL_INPUT_MAX))

    vis_off = off["joints_vis"][..., 0]
    comps.append(Comparison("joints_vis", mismatches(ours["joints_vis"], vis_off, "joints_vis"), 0.0,
                            "mismatched_indices"))
    vis = vis_off > 0
    comps.append(Comparison("joints (visible)", max_abs(ours["joints"][vis], off["joints"][..., :2][vis], "joints"),
                            TOL_JOINTS))
    if "joints_target" in ours:  # heatmap px from the separate heatmap affine (TokenPose)
        comps.append(Comparison("joints_target (visible)", max_abs(ours["joints_target"][vis],
                                                                   off["joints_target"][..., :2][vis],
                                                                   "joints_target"), TOL_JOINTS))
    w_off = off["target_weight"][..., 0]
    comps.append(Comparison("target_weight", mismatches(ours["target_weight"], w_off, "target_weight"), TOL_WEIGHTS,
                            "mismatched_indices"))
    both = (ours["target_weight"] > 0) & (w_off > 0)
    pairs = ([("heatmaps", "target")] if "heatmaps" in ours
             else [("keypoint_x_labels", "target_x"), ("keypoint_y_labels", "target_y")])
    for mine, theirs in pairs:
        if theirs not in off:
            raise ValueError(f"{folder / 'outputs.npz'}: missing {theirs!r} for a {mine!r} codec")
        comps.append(Comparison(f"{theirs} (both weights 1)", max_abs(ours[mine][both], off[theirs][both], theirs),
                                TOL_TARGETS))
    return comps


@register_pipeline_handler("crop_target", "tokenpose", "gtpt")
def _crop_target(folder: Path, spec: dict[str, Any]) -> list[Comparison]:
    return crop_target_comparisons(folder, spec)
