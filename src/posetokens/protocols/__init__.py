"""Protocols: each method family's whole pipeline around the network, declared once.

A :class:`Protocol` says how a method's official code turns a box into a crop (centre, GT-box cleaning,
padding, warp), how it draws its training augmentation, how it builds targets and their weights, how it
decodes and flip-tests, and how it turns per-box predictions into the numbers it reports (rescoring,
OKS-NMS, the COCO/PCKh/H36M evaluation). Training, ``test``, ``evaluate``, ``infer``, ``lift`` and ``export``
read the same object; every checkpoint we write carries it (:meth:`Protocol.to_dict`).

Each zoo family declares its official protocol (``Family.protocol`` in :mod:`posetokens.registry`); MMPose 1.x's
conventions are the named alternative ``mmpose``. Every value comes from ``shared/specs/pipeline.md``, which names
the official file it was read from; the short source notes below repeat where.

Protocols know no engine and no inference code: they are plain frozen dataclasses, below both.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posetokens.data.transforms import TopdownAugConfig
from posetokens.registry import replace_nested
from posetokens.runtime import UserKeyError

__all__ = [
    "BoxRule",
    "EvalRule",
    "LiftRule",
    "Protocol",
    "TargetRule",
    "TestRule",
    "aug_preset",
    "check_model_protocol",
    "get_protocol",
    "list_protocols",
    "register_protocol",
    "resolve_protocol",
]

WARPS = ("size_minus_one", "standard", "udp")
GT_CLEAN = ("hrnet", "hrnet_w_minus_1", "mmpose0", "mmpose", "none")
CODECS = ("heatmap", "simcc", "coords", "none")
HEATMAP_MAPPINGS = ("isotropic_size_minus_one", "per_axis_size_minus_one", "stride")
WEIGHT_RULES = ("int_box", "int_box_input_px", "msra", "floor_box", "float_box", "visibility")
DECODES = ("dark", "argmax_quarter", "simcc_softmax", "coords", "none")
NMS_AREAS = ("box", "keypoints")
COCO_BACKENDS = ("pycocotools", "xtcocotools")
H36M_PROTOCOLS = ("hot", "motionbert")


@dataclass(frozen=True)
class BoxRule:
    """Box -> centre/scale and GT-box cleaning (spec §1.1-1.2, §4).

    ``center = xy + (wh - center_offset) / 2``: 1.0 is TokenPose/PPT's ``x + (w-1)/2``, 0.0 is
    GTPT/PCT/MMPose's ``x + w/2``. ``gt_clean`` is how training (or ``use_gt_bbox`` testing) clips a GT box
    to the image: ``hrnet`` keeps ``w`` inside the image (TokenPose/PPT), ``hrnet_w_minus_1`` gives ``w - 1``
    (GTPT), ``mmpose0`` is mmpose 0.x's ``x1 + w`` with ``x2 > x1`` (PCT), ``mmpose`` MMPose 1.x's clip.
    """

    center_offset: float = 0.0
    gt_clean: str = "mmpose"
    padding: float = 1.25  # training
    test_padding: float = 1.25  # val/test (PCT: 1.12)
    float32: bool = False  # keep centre and scale in float32, as the HRNet-era JointsDataset does (TokenPose, GTPT)
    move_invisible_joints: bool = True  # False: the official code moves only visible joints through the affine


@dataclass(frozen=True)
class TargetRule:
    """Training targets and their weights (spec §1.5).

    ``heatmap_mapping`` maps input-crop pixels to heatmap pixels: ``isotropic_size_minus_one`` is
    TokenPose's separate heatmap affine (ratio ``(w-1)/(W-1)`` on both axes, centred), ``per_axis_size_minus_one``
    MMPose's UDP, ``stride`` HRNet's ``x * w / W``. ``weight_rule``: ``int_box`` is the official
    ``adjust_target_weight`` (``int()`` truncation, in map units), ``int_box_input_px`` GTPT's same test in
    input pixels with the radius ``3 * simcc_sigma``, ``msra`` HRNet's integer-centred patch, ``floor_box`` the
    rounding rule, ``float_box`` the box about the sub-pixel mean (MMPose 1.x's DARK target), ``visibility``
    visibility only (PCT).
    """

    codec: str = "heatmap"
    heatmap_mapping: str = "stride"
    full_gaussian: bool = True  # sub-pixel Gaussian on the whole grid; False: MSRA's integer-centred 3-sigma patch
    sigma: float = 2.0  # heatmap pixels
    simcc_split: float = 2.0  # SimCC bins per input pixel
    simcc_sigma: float = 4.0  # SimCC label std, in bins
    weight_rule: str = "int_box"


@dataclass(frozen=True)
class TestRule:
    """Test-time flip, decoding and mapping back (spec §1.6)."""

    flip_test: bool = True
    flip_shift: bool = False  # one-pixel (one-bin) shift of the flipped-back output (GTPT: True)
    decode: str = "dark"
    blur_kernel: int = 11  # DARK
    decode_convention: str = "hrnet"  # hrnet: an empty map decodes to (0, 0), quarter step inside 1 < x < w-1;
    # mmpose: -1 and MMPose 1.x's quarter border


@dataclass(frozen=True)
class EvalRule:
    """Per-box predictions -> reported numbers (spec §1.7-1.8, §6-7)."""

    rescore_thr: float | None = 0.2  # score = box x mean(joint scores > thr); GTPT's SimCC peaks need 0.01; None: off
    nms_thr: float | None = 0.9  # OKS-NMS; None disables it
    nms_area: str = "box"  # box: prod of the padded box (official, MMPose); keypoints: the keypoint extent
    coco_backend: str = "pycocotools"
    pckh_mean01_thr: float = 0.11  # the official MPII "Mean@0.1" reads pckAll[11] of arange(0, 0.51, 0.01)


@dataclass(frozen=True)
class LiftRule:
    """2D->3D lifting protocol (spec §6-7). ``h36m`` names the H36M evaluation: ``hot`` (HoT's
    ``main_mixste.test``: per-window P1, the P2 batch-mean quirk, mean over all 15 actions) or ``motionbert``
    (MotionBERT's ``train.evaluate``: 2.5D-factor GT, S9 block list, trailing clip dropped, per-frame mean)."""

    h36m: str = "hot"
    train_flip: str = "copies"  # copies: every window plain and flipped (HoT); random: flip with p 0.5 (MotionBERT)
    train_windows: str = "seq2seq"  # seq2seq: centred edge-padded windows (HoT); clips: consecutive, tail dropped
    train_stride: int = 0  # training window step; 0: the window length (HoT 243; MotionBERT 81)
    test_flip: bool = True
    p2_batch_size: int = 4  # HoT's test batch, over which the P2 quirk averages; 0: per window
    skip_sources: tuple[str, ...] = ()  # videos (MotionBERT source[:-6]) whose clips are not scored: its S9 block list


@dataclass(frozen=True)
class Protocol:
    """One method family's official pipeline (see the module docstring)."""

    name: str
    family: str
    task: str  # topdown, multiview, lifting, tokenizer
    description: str = ""
    warp: str = "standard"
    # images turned by their EXIF orientation tag (mmcv's 'color' flag: PCT, MMPose) or read as stored (HRNet's
    # cv2.IMREAD_IGNORE_ORIENTATION: TokenPose, PPT, GTPT, multi-view PPT)
    exif_orientation: bool = True
    box: BoxRule = field(default_factory=BoxRule)
    aug: TopdownAugConfig | None = None  # None: no random augmentation
    target: TargetRule = field(default_factory=TargetRule)
    test: TestRule = field(default_factory=TestRule)
    eval: EvalRule = field(default_factory=EvalRule)
    lift: LiftRule | None = None
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.warp, WARPS, "warp"),
            (self.box.gt_clean, GT_CLEAN, "box.gt_clean"),
            (self.target.codec, CODECS, "target.codec"),
            (self.target.heatmap_mapping, HEATMAP_MAPPINGS, "target.heatmap_mapping"),
            (self.target.weight_rule, WEIGHT_RULES, "target.weight_rule"),
            (self.test.decode, DECODES, "test.decode"),
            (self.test.decode_convention, ("hrnet", "mmpose"), "test.decode_convention"),
            (self.eval.nms_area, NMS_AREAS, "eval.nms_area"),
            (self.eval.coco_backend, COCO_BACKENDS, "eval.coco_backend"),
        ):
            if value not in allowed:
                raise ValueError(f"protocol {self.name!r}: {what} must be one of {list(allowed)}, got {value!r}")
        _check_types(self, f"protocol {self.name!r}")
        if self.lift is not None and (self.lift.train_flip not in ("copies", "random")
                                      or self.lift.train_windows not in ("seq2seq", "clips")):
            raise ValueError(f"protocol {self.name!r}: lift.train_flip must be copies or random and lift.train_windows "
                             f"seq2seq or clips, got {self.lift.train_flip!r}, {self.lift.train_windows!r}")
        if self.lift is not None and self.lift.h36m not in H36M_PROTOCOLS:
            raise ValueError(f"protocol {self.name!r}: lift.h36m must be one of {list(H36M_PROTOCOLS)}, got {self.lift.h36m!r}")

    def replace(self, overrides: Mapping[str, Any] | None = None, where: str = "protocol") -> Protocol:
        """A copy with ``overrides`` applied; a nested mapping reaches a rule (``{"eval": {"rescore_thr": 0.01}}``).
        An unknown field raises ``ValueError`` naming it and the known ones."""
        if not overrides:
            return self
        return replace_nested(self, overrides, where)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what checkpoints store); :meth:`from_dict` reads it back."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "protocol") -> Protocol:
        """Rebuild a protocol from :meth:`to_dict`; unknown keys raise ``ValueError`` naming ``where``. A field the
        dict lacks, at any depth (stored by an older version: ``exif_orientation`` before 2026-12-06,
        ``box.move_invisible_joints``, ``lift.train_windows``), takes the value of the registered protocol of the
        same name, the official one, else the field's default; a value the dict has, ``None`` included, is kept."""
        name = data.get("name") if isinstance(data, Mapping) else None
        registered = _PROTOCOLS.get(name) if isinstance(name, str) else None
        if registered is not None:
            data = _filled(data, registered.to_dict())
        return _build(cls, data, where)


# ------------------------------------------------------------------------------------------ helpers
def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _check_types(obj: Any, where: str) -> None:
    """Every field of ``obj`` and of its nested rules has its declared type; else ``ValueError`` naming the field
    (an override typo is caught when the protocol is made, not at the end of a training run)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{where}.{f.name}")
        elif not _type_ok(value, hints[f.name]):
            raise ValueError(f"{where}.{f.name}: expected {_type_name(hints[f.name])}, got {value!r}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _field_type(cls: type, name: str) -> Any:
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and args else hint


def _filled(stored: Mapping[str, Any], registered: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` with each key it lacks taken from ``registered``, recursing where both hold a mapping."""
    out = dict(stored)
    for key, value in registered.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = _filled(out[key], value)
    return out


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        tp = _field_type(cls, key)
        if value is not None and dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{where}.{key}")
        elif isinstance(value, list):
            kwargs[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------- registry
_PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    """Register a named protocol."""
    if protocol.name in _PROTOCOLS:
        raise ValueError(f"protocol {protocol.name!r} is registered twice")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def list_protocols() -> list[str]:
    """Sorted protocol names."""
    return sorted(_PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The registered protocol ``name``; an unknown name raises ``KeyError`` listing the known ones."""
    if name not in _PROTOCOLS:
        raise UserKeyError(f"unknown protocol {name!r}; known: {list_protocols()}")
    return _PROTOCOLS[name]


def resolve_protocol(value: Protocol | str | Mapping[str, Any] | None, default: str | None = None,
                     overrides: Mapping[str, Any] | None = None, where: str = "protocol") -> Protocol:
    """A protocol from a name, a stored dict (checkpoints) or an object; ``None``/``"auto"`` takes ``default``
    (a family's declared protocol). ``overrides`` are applied last."""
    if value is None or value == "auto":
        if default is None:
            raise ValueError(f"{where}: no protocol given and no default to fall back to")
        value = default
    if isinstance(value, str):
        proto = get_protocol(value)
    elif isinstance(value, Protocol):
        proto = value
    else:
        proto = Protocol.from_dict(value, where)
    return proto.replace(overrides, where)


# ------------------------------------------------------------------------------ the official protocols
_HRNET_AUG = dict(  # JointsDataset.__getitem__ (TokenPose, PPT, GTPT; COCO yamls): clipped normals, HRNet order
    order="hrnet", sampler="clipped", flip_prob=0.5, half_body_prob=0.3, half_body_min_keypoints=9,
    half_body_min_part_keypoints=3, half_body_min_upper_keypoints=None, half_body_upper_prob=0.6915,
    half_body_padding=1.5, shift_prob=0.0,
    scale_range=(0.65, 1.35), scale_std=0.35, scale_prob=1.0, rotate_limit=90.0, rotate_std=45.0, rotate_prob=0.6,
)

register_protocol(Protocol(
    name="tokenpose",
    family="tokenpose",
    task="topdown",
    description="TokenPose / PPT single view: 'size-1' isotropic crop, full-grid Gaussian heatmaps at 47/191, "
                "int() weights, flip without shift, DARK k11, rescoring 0.2, OKS-NMS 0.9 on the padded box",
    warp="size_minus_one",
    exif_orientation=False,  # JointsDataset.__getitem__: cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    box=BoxRule(center_offset=1.0, gt_clean="hrnet", padding=1.25, test_padding=1.25, float32=True,
                move_invisible_joints=False),
    aug=TopdownAugConfig(**_HRNET_AUG, half_body_extent_offset=1.0),
    target=TargetRule(codec="heatmap", heatmap_mapping="isotropic_size_minus_one", full_gaussian=True, sigma=2.0,
                      weight_rule="int_box"),
    test=TestRule(flip_test=True, flip_shift=False, decode="dark", blur_kernel=11),
    eval=EvalRule(rescore_thr=0.2, nms_thr=0.9, nms_area="box", coco_backend="pycocotools", pckh_mean01_thr=0.11),
    sources=("TokenPose lib/dataset/{coco,JointsDataset,mpii}.py", "lib/utils/transforms.py", "lib/core/{function,inference}.py",
             "lib/nms/nms.py"),
))

register_protocol(Protocol(
    name="gtpt",
    family="gtpt",
    task="topdown",
    description="GTPT: standard crop, x+w/2 boxes (GT w-1), SA-SimDR labels (split 2, sigma 4 bins) with the weight "
                "tested in input px, flip with a one-bin shift and logit average, softmax peaks, rescoring 0.01",
    warp="standard",
    exif_orientation=False,  # JointsDataset.__getitem__: cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    box=BoxRule(center_offset=0.0, gt_clean="hrnet_w_minus_1", padding=1.25, test_padding=1.25, float32=True,
                move_invisible_joints=False),
    aug=TopdownAugConfig(**_HRNET_AUG, half_body_extent_offset=0.0),
    target=TargetRule(codec="simcc", simcc_split=2.0, simcc_sigma=4.0, weight_rule="int_box_input_px"),
    test=TestRule(flip_test=True, flip_shift=True, decode="simcc_softmax"),
    eval=EvalRule(rescore_thr=0.01, nms_thr=0.9, nms_area="box", coco_backend="pycocotools", pckh_mean01_thr=0.10),
    sources=("GTPT lib/dataset/{coco,coco_wholebody,JointsDataset}.py", "lib/core/function.py validate_sa_simdr"),
))

register_protocol(Protocol(
    name="pct",
    family="pct",
    task="topdown",
    description="PCT (mmpose 0.29): x+w/2 boxes padded 1.25 (train) / 1.12 (test), standard crop, shift-flip-half body-"
                "scale/rotation draws, crop-pixel joint targets, averaged flip coordinates, rescoring 0.2 on logit scores",
    warp="standard",
    box=BoxRule(center_offset=0.0, gt_clean="mmpose0", padding=1.25, test_padding=1.12, move_invisible_joints=False),
    aug=TopdownAugConfig(order="mmpose0", sampler="clipped", flip_prob=0.5, half_body_prob=0.3,
                         half_body_min_keypoints=9, half_body_min_part_keypoints=3,
                         half_body_min_upper_keypoints=None, half_body_upper_prob=0.6915,
                         half_body_padding=1.5, half_body_extent_offset=0.0, shift_factor=0.16, shift_prob=0.3,
                         shift_sampler="uniform", scale_range=(0.5, 1.5), scale_std=0.5, scale_prob=1.0,
                         rotate_limit=80.0, rotate_std=40.0, rotate_prob=0.6),
    target=TargetRule(codec="coords", weight_rule="visibility"),
    test=TestRule(flip_test=True, flip_shift=False, decode="coords"),
    eval=EvalRule(rescore_thr=0.2, nms_thr=0.9, nms_area="box", coco_backend="xtcocotools", pckh_mean01_thr=0.11),
    sources=("PCT configs/pct_*_classifier.py", "models/pct_detector.py", "mmpose 0.29 top_down_transform.py"),
))

register_protocol(Protocol(
    name="multiview_ppt",
    family="tokenpose_mv",
    task="multiview",
    description="Multi-view PPT (H36M): given centre/scale, standard crop, no augmentation, MSRA heatmaps, "
                "argmax + quarter offset, no flip test; JDR at 12.8 px and triangulated MPJPE",
    warp="standard",
    exif_orientation=False,  # joints_dataset.py __getitem__: cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    box=BoxRule(center_offset=0.0, gt_clean="none", padding=1.0, test_padding=1.0, move_invisible_joints=False),
    aug=None,
    target=TargetRule(codec="heatmap", heatmap_mapping="stride", full_gaussian=False, sigma=2.0, weight_rule="msra"),
    test=TestRule(flip_test=False, decode="argmax_quarter"),
    eval=EvalRule(rescore_thr=0.2, nms_thr=None, nms_area="box"),
    sources=("multi-view-PPT lib/dataset/{joints_dataset,multiview_h36m}.py", "run/pose2d/valid.py",
             "run/pose3d/estimate_tri.py"),
))

register_protocol(Protocol(
    name="hot",
    family="lifting",
    task="lifting",
    description="HoT repo (MixSTE, HoT-MixSTE, HoT-MotionBERT, MHFormer, TPC): every window also flipped in training, "
                "flip test averaged with the root zeroed, P1 per window, P2 with the batch-mean quirk, mean of 15 actions",
    target=TargetRule(codec="none", weight_rule="visibility"),
    test=TestRule(flip_test=True, decode="none"),
    eval=EvalRule(nms_thr=None),
    lift=LiftRule(h36m="hot", train_flip="copies", test_flip=True, p2_batch_size=4),
    sources=("HoT main_mixste.py test", "common/generator_stride.py", "common/utils.py"),
))

register_protocol(Protocol(
    name="motionbert",
    family="motionbert",
    task="lifting",
    description="MotionBERT: 243-frame clips (trailing remainder dropped), random flip 0.5 in training, flip test, "
                "x 2.5D factor, S9 block list, per-frame MPJPE averaged per action",
    target=TargetRule(codec="none", weight_rule="visibility"),
    test=TestRule(flip_test=True, decode="none"),
    eval=EvalRule(nms_thr=None),
    lift=LiftRule(h36m="motionbert", train_flip="random", train_windows="clips", train_stride=81, test_flip=True,
                  p2_batch_size=0,
                  skip_sources=("s_09_act_05_subact_02", "s_09_act_10_subact_02", "s_09_act_13_subact_01")),
    sources=("MotionBERT train.py evaluate", "lib/data/datareader_h36m.py", "lib/utils/utils_data.py"),
))

register_protocol(Protocol(
    name="mmpose",
    family="mmpose",
    task="topdown",
    description="MMPose 1.x conventions: x+w/2 boxes, standard crop, truncated-normal draws, UDP-free MSRA/DARK "
                "heatmaps weighted by the box about the sub-pixel mean, rescoring 0.2, OKS-NMS on the padded box",
    warp="standard",
    box=BoxRule(center_offset=0.0, gt_clean="mmpose", padding=1.25, test_padding=1.25),
    aug=TopdownAugConfig(),
    target=TargetRule(codec="heatmap", heatmap_mapping="stride", full_gaussian=True, sigma=2.0, weight_rule="float_box"),
    # the MSRA/DARK configs' test_cfg (td-hm_hrnet-w32_dark-8xb64-210e_coco-256x192.py): shift_heatmap=True
    test=TestRule(flip_test=True, flip_shift=True, decode="dark", decode_convention="mmpose"),
    eval=EvalRule(rescore_thr=0.2, nms_thr=0.9, nms_area="box", coco_backend="xtcocotools", pckh_mean01_thr=0.10),
    sources=("MMPose 1.x mmpose/datasets/transforms", "mmpose/codecs", "mmpose/evaluation/metrics/coco_metric.py"),
))


# ------------------------------------------------------------------------------- augmentation presets
_MPII_AUG = dataclasses.replace(  # TokenPose/PPT MPII yamls: ROT 30, SCALE 0.25, PROB_HALF_BODY -1 (off)
    get_protocol("tokenpose").aug, half_body_prob=0.0, scale_range=(0.75, 1.25), scale_std=0.25, rotate_limit=60.0,
    rotate_std=30.0)

AUG_PRESETS: dict[str, TopdownAugConfig | None] = {
    "none": None,
    "synthetic": TopdownAugConfig.synthetic(),  # the quickstart's synthetic people: small shift and scale only
    "tokenpose_mpii": _MPII_AUG,
    # older recipe names, kept as aliases of the protocols' own draws
    "tokenpose_coco": get_protocol("tokenpose").aug,
    "pct_coco": get_protocol("pct").aug,
}


def aug_preset(name: str) -> TopdownAugConfig | None:
    """The augmentation of a named preset (:data:`AUG_PRESETS`) or of the top-down protocol ``name``."""
    if name in AUG_PRESETS:
        return AUG_PRESETS[name]
    if name in _PROTOCOLS and _PROTOCOLS[name].aug is not None:
        return _PROTOCOLS[name].aug
    known = sorted(AUG_PRESETS) + [n for n in list_protocols() if _PROTOCOLS[n].aug is not None]
    raise ValueError(f"unknown augmentation {name!r}; known: {known} ('protocol' keeps the protocol's own)")


# what each model output needs from a protocol's target codec
_CODEC_OF_OUTPUT = {"heatmap": "heatmap", "simcc": "simcc", "coords": "coords"}


def check_model_protocol(model: Any, protocol: Protocol) -> None:
    """Refuse a protocol that cannot serve ``model``: a task other than the model's, or a codec that cannot
    decode its output (a SimCC protocol on a heatmap model). One line naming both."""
    name = getattr(model, "zoo_name", type(model).__name__)
    task = model.task
    ok_tasks = {"topdown": ("topdown",), "tokenizer": ("topdown",), "multiview": ("multiview",), "lifting": ("lifting",)}
    if protocol.task not in ok_tasks.get(task, (task,)):
        raise ValueError(f"protocol {protocol.name!r} is a {protocol.task} protocol; {name} is a {task} model")
    kind = getattr(model, "output_kind", None)
    if task == "topdown" and kind in _CODEC_OF_OUTPUT and protocol.target.codec != _CODEC_OF_OUTPUT[kind]:
        raise ValueError(f"protocol {protocol.name!r} decodes {protocol.target.codec} outputs, but {name} outputs "
                         f"{kind}; choose a {kind} protocol (e.g. "
                         f"{[n for n in list_protocols() if _PROTOCOLS[n].target.codec == _CODEC_OF_OUTPUT[kind]]})")
