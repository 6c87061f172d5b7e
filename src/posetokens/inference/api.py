"""Top-down 2D inference on images, folders and videos: :class:`PoseEstimator` and ``posetokens infer``.

Flow for every frame: read it (OpenCV, BGR) -> person boxes (a COCO-results detections json, an ONNX
person detector, or the whole frame) -> one affine crop per box (the library's top-down geometry,
:class:`~posetokens.data.transforms.TopdownPipeline`) -> crops batched across frames through the model
(optional flip test) -> the model's codec decodes crop keypoints, mapped back to image pixels.

Results follow the MMPose convention, one record per image or video frame::

    {"frame_id": 0, "img_path": "000000000785.jpg", "width": 640, "height": 425,
     "instances": [{"keypoints": [[x, y], ...], "keypoint_scores": [s, ...],
                    "bbox": [x1, y1, x2, y2], "bbox_score": s}, ...]}

``keypoints`` are image pixels (pixel centres at integer coordinates), K of them in the order of the
model's dataset metainfo (COCO-17 for the COCO models); ``bbox`` is the person box the crop was made from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posetokens.checkpoint import load_trained
from posetokens.data.metainfo import PoseMetaInfo, get_metainfo, metainfo_for_model
from posetokens.fileio import read_json
from posetokens.inference.visualize import default_kpt_thr
from posetokens.layers import optimize_for_inference
from posetokens.protocols import Protocol, check_model_protocol, resolve_protocol
from posetokens.protocols.codec import build_codec
from posetokens.protocols.predict import crop_to_image, predict_outputs
from posetokens.protocols.topdown import build_pipeline
from posetokens.registry import create_model, default_protocol

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DetectionsFile",
    "FrameResult",
    "PoseEstimator",
    "VideoReader",
    "draw_frame",
    "open_input",
    "whole_frame_boxes",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")

BoxFn = Callable[["Frame"], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Frame:
    """One decoded image or video frame (BGR uint8) and where it came from."""

    frame_id: int
    name: str  # the image file name, or the video's
    image: np.ndarray
    video: bool = False  # a video frame: detections match it by ``frame_id``


class VideoReader:
    """Frames of a video file through OpenCV; an unreadable file raises ``ValueError`` naming it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video not found: {self.path}")
        cap = cv2.VideoCapture(str(self.path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
        cap.release()
        if not ok or first is None:
            raise ValueError(f"{self.path}: cannot decode a frame (not a video, corrupt, or an unsupported codec)")
        self.height, self.width = first.shape[:2]
        cap = cv2.VideoCapture(str(self.path))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if np.isfinite(fps) and fps > 0 else 25.0
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))  # the container's claim; may exceed decodable
        cap.release()

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        try:
            i = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield Frame(i, self.path.name, img, video=True)
                i += 1
        finally:
            cap.release()


@dataclass
class InputSource:
    """What ``open_input`` found: image files (``kind="images"``) or one video (``kind="video"``)."""

    kind: str
    path: Path
    images: list[Path] = field(default_factory=list)
    video: VideoReader | None = None

    def __len__(self) -> int:
        return len(self.images) if self.kind == "images" else max(self.video.frame_count, 0)  # type: ignore[union-attr]

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in order (images: sorted file names)."""
        if self.kind == "video":
            assert self.video is not None
            yield from self.video
            return
        for i, p in enumerate(self.images):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{p}: cannot read image (corrupt or not an image)")
            yield Frame(i, p.name, img)


def open_input(path: str | Path) -> InputSource:
    """An image, a folder of images, or a video, recognised by extension; a clear error otherwise."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p} (expected an image, a folder of images or a video)")
    if p.is_dir():
        imgs = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        if not imgs:
            raise ValueError(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return InputSource("images", p, images=imgs)
    ext = p.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return InputSource("images", p, images=[p])
    if ext in VIDEO_EXTENSIONS:
        return InputSource("video", p, video=VideoReader(p))
    raise ValueError(f"{p}: unknown input type {ext!r}; expected an image ({', '.join(IMAGE_EXTENSIONS)}), "
                     f"a video ({', '.join(VIDEO_EXTENSIONS)}) or a folder")


# ------------------------------------------------------------------------------------------------- boxes
def whole_frame_boxes(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """The whole frame as one person box ``[0, 0, W, H]`` with score 1."""
    h, w = frame.image.shape[:2]
    return np.array([[0.0, 0.0, float(w), float(h)]]), np.ones(1)


def image_id_from_name(name: str) -> int | None:
    """COCO's image id from a file name: the digits of its stem (``000000000785.jpg`` -> 785)."""
    m = re.fullmatch(r"\D*?(\d+)", Path(name).stem)
    return int(m.group(1)) if m else None


class DetectionsFile:
    """Person boxes from a COCO-results detections json: a list of ``{image_id, category_id, bbox [x, y, w, h],
    score}``. Images are matched by the id in their file name, video frames by their 0-based index.

    Boxes below ``score_thr`` and of other categories than ``category_id`` are dropped.
    """

    def __init__(self, path: str | Path, score_thr: float = 0.3, category_id: int = 1) -> None:
        self.path = Path(path)
        data = read_json(self.path, "detections")
        if not isinstance(data, list):
            raise ValueError(f"{self.path}: a detections file must be a JSON list of "
                             "{image_id, category_id, bbox, score}, got a {type(data).__name__}")
        self.boxes: dict[int, list[tuple[list[float], float]]] = {}
        for i, det in enumerate(data):
            if not isinstance(det, dict):
                raise ValueError(f"{self.path}: item {i} is not an object")
            for key in ("image_id", "bbox", "score"):
                if key not in det:
                    raise ValueError(f"{self.path}: item {i} has no {key!r} field (expected image_id, bbox, score)")
            bbox = det["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
                raise ValueError(f"{self.path}: item {i} 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
            if det.get("category_id", category_id) != category_id or float(det["score"]) < score_thr:
                continue
            self.boxes.setdefault(int(det["image_id"]), []).append((bbox, float(det["score"])))
        self.ids = {int(d["image_id"]) for d in data}

    def check_covers(self, source: InputSource) -> None:
        """Raise ``ValueError`` when no input image (or frame) has an id in this file."""
        if source.kind == "video":
            wanted = set(range(max(len(source), 1)))
            what = "frame indices 0.."
        else:
            wanted = {i for i in (image_id_from_name(p.name) for p in source.images) if i is not None}
            what = "image ids from the file names "
        if not wanted & self.ids:
            some = sorted(self.ids)[:8]
            have = sorted(wanted)[:8]
            raise ValueError(
                f"{self.path}: no detection matches the input {source.path}: the file's 'image_id' values are "
                f"{some}{' ...' if len(self.ids) > 8 else ''}, the inputs' {what}{have}"
                f"{' ...' if len(wanted) > 8 else ''}"
            )

    def __call__(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) as ``[x1, y1, x2, y2]`` and scores (N,) of one frame."""
        key = frame.frame_id if frame.video else image_id_from_name(frame.name)
        dets = self.boxes.get(key, []) if key is not None else []
        if not dets:
            return np.zeros((0, 4)), np.zeros(0)
        xywh = np.asarray([d[0] for d in dets], np.float64)
        return np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), axis=1), np.asarray([d[1] for d in dets])


# ------------------------------------------------------------------------------------------------ results
@dataclass
class FrameResult:
    """The people found in one frame, and the frame itself (for drawing)."""

    frame_id: int
    img_path: str
    width: int
    height: int
    keypoints: np.ndarray  # (N, K, 2) image pixels
    keypoint_scores: np.ndarray  # (N, K)
    bboxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    bbox_scores: np.ndarray  # (N,)
    image: np.ndarray | None = None  # BGR frame
    crops: np.ndarray | None = None  # (N, h, w, 3) RGB model crops, with ``show_tokens``
    kept_tokens: list[list[np.ndarray]] | None = None  # per instance, per pruning layer: kept patch ids

    def to_dict(self, decimals: int = 3) -> dict[str, Any]:
        """The JSON record ``{frame_id, img_path, width, height, instances: [...]}``."""
        r = lambda a: np.round(np.asarray(a, np.float64), decimals).tolist()  # noqa: E731
        instances = [
            {"keypoints": r(k), "keypoint_scores": r(s), "bbox": r(b), "bbox_score": round(float(bs), decimals)}
            for k, s, b, bs in zip(self.keypoints, self.keypoint_scores, self.bboxes, self.bbox_scores)
        ]
        return {"frame_id": self.frame_id, "img_path": self.img_path, "width": self.width, "height": self.height,
                "instances": instances}


# -------------------------------------------------------------------------------------------------- model
def kept_patch_ids(record: Any, b: int) -> np.ndarray:
    """Patch ids kept by one pruning record for sample ``b``: PPT's (B, K) rows, or the union of GTPT's
    per-group (B, G, K) rows (the first ``counts[g]`` of group g)."""
    ids = record.patch_idx[b].cpu().numpy()
    if ids.ndim == 2:
        counts = getattr(record, "counts", ()) or (ids.shape[1],) * ids.shape[0]
        ids = np.concatenate([row[:c] for row, c in zip(ids, counts)])
    return np.unique(ids[ids >= 0])


class _RecordTokens(nn.Module):
    """A pruning model whose first call runs ``forward_tokens``, keeps its pruning record in ``pruned`` and
    returns what ``forward`` would; later calls (the flip test's mirrored pass) run ``forward``. So the kept
    tokens of a batch cost no extra forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.output_kind = model.output_kind
        self.pruned: list | None = None

    def forward(self, x: torch.Tensor) -> Any:
        """The model's prediction for ``x``; the first call also records the kept tokens."""
        if self.pruned is not None:
            return self.model(x)
        out = self.model.forward_tokens(x)
        self.pruned = out.pruned
        return out.prediction


class PoseEstimator:
    """A 2D top-down model ready for images and videos, with its protocol's crop, flip test and decoding.

    Args:
        model: a zoo name (``posetokens models``), a built model, or None with ``weights`` of ours (a checkpoint
            we wrote names its model, overrides, protocol and metainfo).
        weights: checkpoint to load (ours or an official release); None keeps random weights.
        device: torch device.
        flip_test: average with the prediction on the mirrored crop (None: the protocol's setting is not used for
            speed; False by default, as before).
        batch_size: crops per forward pass (crops of consecutive frames share a batch).
        metainfo: keypoint definition (default: the checkpoint's, else from the keypoint count).
        protocol: a protocol name or object (default: the checkpoint's, else the zoo model's official one): it
            fixes the crop geometry, padding, decoding and flip rule.
        bbox_padding: box -> crop padding (default: the protocol's test padding, 1.25; PCT 1.12).
        optimize: predict with :func:`posetokens.layers.optimize_for_inference`'s copy (conv-BN folded,
            channels-last convolutions; equal outputs to float rounding, about 1.1x faster on CPU). ``model``
            stays the original; the copy, ``net``, costs one more set of weights and is made once, here: after
            changing ``model`` (weights, device), build a new estimator.
        **overrides: model config fields to replace (as in :func:`posetokens.create_model`).
    """

    def __init__(self, model: str | nn.Module | None = None, weights: str | Path | None = None,
                 device: str | torch.device = "cpu", flip_test: bool = False, batch_size: int = 16,
                 metainfo: PoseMetaInfo | str | None = None, protocol: Protocol | str | None = None,
                 bbox_padding: float | None = None, optimize: bool = True, **overrides: Any) -> None:
        stored_protocol, stored_metainfo = None, None
        if model is None or isinstance(model, str):
            if weights is None and model is None:
                raise ValueError("PoseEstimator: give a zoo model name, or weights of ours that name their model")
            if weights is not None:
                trained = load_trained(weights, model, overrides or None)
                model, stored_protocol, stored_metainfo = trained.model, trained.protocol, trained.metainfo
            else:
                model = create_model(model, **overrides)
        elif weights is not None:
            raise ValueError("PoseEstimator: pass weights with a zoo name, or load them into the model yourself")
        name = getattr(model, "zoo_name", type(model).__name__)
        task = getattr(model, "task", None)
        if task != "topdown":
            hint = {"multiview": " (synchronised views and camera rays in): call it directly",
                    "tokenizer": " (a PCT tokenizer, joints in and out): use a pct_*_coco model for images",
                    "lifting": " (2D keypoints in): use posetokens lift"}.get(str(task), "")
            raise ValueError(f"PoseEstimator needs a top-down 2D model (image crops in); {name} is a {task} model{hint}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.net = optimize_for_inference(self.model) if optimize else self.model  # what predictions run
        self.name = name
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if metainfo is not None:
            self.metainfo = get_metainfo(metainfo)
        else:
            self.metainfo = stored_metainfo or metainfo_for_model(model.cfg.num_keypoints, str(getattr(model, "zoo_name", "")))
        default = default_protocol(model.zoo_name) if hasattr(model, "zoo_name") else "mmpose"
        self.protocol = resolve_protocol(protocol if protocol is not None else stored_protocol, default=default)
        self.protocol = self.protocol.replace({"test": {"flip_test": bool(flip_test)}})
        check_model_protocol(model, self.protocol)
        if bbox_padding is not None:
            self.protocol = self.protocol.replace({"box": {"test_padding": float(bbox_padding)}})
        self.codec = build_codec(self.protocol, model.cfg.image_size, getattr(model.cfg, "heatmap_size", None))
        self.pipeline = build_pipeline(self.protocol, model.cfg.image_size, self.metainfo, normalize=False)

    @property
    def flip_test(self) -> bool:
        """Whether predictions average with the mirrored crop's (the protocol's test rule)."""
        return self.protocol.test.flip_test

    @property
    def default_kpt_thr(self) -> float:
        """The drawing threshold when none is given, from the codec's score scale (:func:`default_kpt_thr`)."""
        return default_kpt_thr(self.codec.score_scale)

    @property
    def can_show_tokens(self) -> bool:
        """Whether the model prunes visual tokens and reports which it kept (PPT, GTPT)."""
        return hasattr(self.model, "forward_tokens")

    # -- crops
    def crops(self, image_rgb: np.ndarray, bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops (N, h, w, 3) and image->crop warps (N, 2, 3) of ``[x1, y1, x2, y2]`` boxes."""
        w, h = self.pipeline.input_size
        crops, warps = np.zeros((len(bboxes), h, w, 3), np.uint8), np.zeros((len(bboxes), 2, 3))
        for i, (x1, y1, x2, y2) in enumerate(np.asarray(bboxes, np.float64)):
            out = self.pipeline(image_rgb, [x1, y1, x2 - x1, y2 - y1])
            crops[i], warps[i] = out["image"], out["warp_matrix"]
        return crops, warps

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray, warps: np.ndarray,
                      show_tokens: bool = False) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]] | None]:
        """Image-pixel keypoints (N, K, 2), scores (N, K) and (with ``show_tokens``) kept patch ids of uint8
        RGB crops (N, h, w, 3) with their image->crop warps (N, 2, 3); runs in batches of ``batch_size``."""
        from posetokens.data.transforms import IMAGENET_MEAN, IMAGENET_STD

        k = self.metainfo.num_keypoints
        if len(crops) == 0:
            return np.zeros((0, k, 2)), np.zeros((0, k)), [] if show_tokens else None
        if show_tokens and not self.can_show_tokens:
            raise ValueError(f"{self.name} has no token pruning to show (--show-tokens needs a PPT or GTPT model)")
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        flip = list(self.metainfo.flip_indices)
        kpts, scores, tokens = [], [], []
        for s in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(crops[s:s + self.batch_size]).to(self.device).permute(0, 3, 1, 2).float()
            x = (x - mean) / std
            net = _RecordTokens(self.net) if show_tokens else self.net
            kp, sc = self.codec.decode(predict_outputs(net, x, self.protocol.test, flip))
            kpts.append(np.asarray(kp, np.float64))
            scores.append(np.asarray(sc, np.float64))
            if show_tokens:
                tokens += [[kept_patch_ids(rec, b) for rec in net.pruned] for b in range(x.shape[0])]
        kp_img = crop_to_image(np.concatenate(kpts), warps)
        sc = np.concatenate(scores)
        if not (np.isfinite(kp_img).all() and np.isfinite(sc).all()):
            raise ValueError(f"{self.name} produced non-finite keypoints or scores (broken weights?)")
        return kp_img, sc, tokens if show_tokens else None

    def predict(self, image: np.ndarray, bboxes: np.ndarray | None = None, bbox_scores: np.ndarray | None = None,
                show_tokens: bool = False) -> FrameResult:
        """People in one BGR image: ``bboxes`` (N, 4) ``[x1, y1, x2, y2]``, or the whole image when None."""
        frame = Frame(0, "image", np.asarray(image))
        boxes = (lambda f: (np.asarray(bboxes, np.float64).reshape(-1, 4),
                            np.ones(len(bboxes)) if bbox_scores is None else np.asarray(bbox_scores, np.float64))
                 ) if bboxes is not None else whole_frame_boxes
        return next(self.run_frames([frame], boxes, show_tokens=show_tokens))

    # -- streams
    def run_frames(self, frames: Iterable[Frame], boxes: BoxFn = whole_frame_boxes, show_tokens: bool = False,
                   keep_images: bool = True) -> Iterator[FrameResult]:
        """Results for ``frames`` in order; crops of consecutive frames are batched together."""
        pending: list[tuple[Frame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        count = 0
        for frame in frames:
            if frame.image is None or frame.image.ndim != 3 or frame.image.shape[2] != 3:
                raise ValueError(f"{frame.name}: expected an (H, W, 3) BGR image")
            b, s = boxes(frame)
            b, s = np.asarray(b, np.float64).reshape(-1, 4), np.asarray(s, np.float64).reshape(-1)
            c, w = self.crops(np.ascontiguousarray(frame.image[..., ::-1]), b)
            pending.append((frame, b, s, c, w))
            count += len(b)
            if count >= self.batch_size:
                yield from self._flush(pending, show_tokens, keep_images)
                pending, count = [], 0
        yield from self._flush(pending, show_tokens, keep_images)

    def _flush(self, pending: list, show_tokens: bool, keep_images: bool) -> Iterator[FrameResult]:
        if not pending:
            return
        n = [len(p[1]) for p in pending]
        crops = np.concatenate([p[3] for p in pending])
        kp, sc, tok = self.predict_crops(crops, np.concatenate([p[4] for p in pending]), show_tokens)
        ends = np.cumsum(n)
        for (frame, b, s, c, _), e, m in zip(pending, ends, n):
            h, w = frame.image.shape[:2]
            yield FrameResult(
                frame.frame_id, frame.name, w, h,
                kp[e - m:e], sc[e - m:e], b, s, frame.image if keep_images else None,
                c if show_tokens else None, tok[e - m:e] if tok is not None else None,
            )

    def __call__(self, source: str | Path | InputSource, boxes: BoxFn | str | Path | None = None,
                 bbox_thr: float = 0.3, show_tokens: bool = False, progress: bool = False) -> Iterator[FrameResult]:
        """Results for every image or frame of ``source``; ``boxes`` is a detections json path, a callable
        (frame -> (boxes xyxy, scores)) such as an :class:`~posetokens.inference.detector.ONNXDetector`,
        or None for the whole frame."""
        src = source if isinstance(source, InputSource) else open_input(source)
        box_fn = _box_fn(boxes, src, bbox_thr)
        frames: Iterable[Frame] = src.frames()
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, total=len(src) or None, unit="frame", desc=src.path.name)
        return self.run_frames(frames, box_fn, show_tokens)

    def coco_results(self, res: FrameResult, image_id: int) -> list[dict[str, Any]]:
        """One frame's people as COCO keypoint results (``posetokens evaluate`` scores them): keypoints with
        per-joint scores, ``score`` and ``bbox_score`` (the box score; evaluation rescores), ``bbox`` (xywh) and
        ``area``, the padded box the protocol's OKS-NMS uses."""
        out = []
        for k, s, (x1, y1, x2, y2), bs in zip(res.keypoints, res.keypoint_scores, res.bboxes, res.bbox_scores):
            _, scale = self.pipeline.box_center_scale([x1, y1, x2 - x1, y2 - y1])
            out.append({"image_id": int(image_id), "category_id": 1,
                        "keypoints": np.concatenate([k, s[:, None]], axis=1).reshape(-1).tolist(),
                        "score": float(bs), "bbox_score": float(bs), "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": float(np.prod(scale))})
        return out

    def infer(self, source: str | Path, out_dir: str | Path, boxes: BoxFn | str | Path | None = None,
              bbox_thr: float = 0.3, kpt_thr: float | None = None, show_tokens: bool = False, draw: bool = True,
              progress: bool | None = None, tokens_every: int = 25,
              coco_results: str | Path | None = None) -> dict[str, Any]:
        """Run on ``source`` and write results to ``out_dir``: ``<stem>.json`` per image (one record) or per video
        (a list of records, one per decoded frame); with ``draw`` the overlays ``<stem>.png`` / ``<stem>.mp4``;
        with ``show_tokens`` ``<stem>_tokens.png`` (videos: ``<stem>_tokens/frame_NNNNNN.png`` every
        ``tokens_every`` frames); with ``coco_results`` every person in the COCO results format
        (:meth:`coco_results`), which ``posetokens evaluate`` scores. ``kpt_thr`` (the least keypoint score drawn)
        defaults to :attr:`default_kpt_thr`. Returns a summary: written files and frame / instance counts."""
        kpt_thr = self.default_kpt_thr if kpt_thr is None else kpt_thr
        src = open_input(source)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if show_tokens and not self.can_show_tokens:
            raise ValueError(f"{self.name} has no token pruning to show (--show-tokens needs a PPT or GTPT model)")
        progress = src.kind == "video" if progress is None else progress
        written: list[str] = []
        frames = instances = 0
        writer: VideoWriter | None = None
        records: list[dict[str, Any]] = []
        coco: list[dict[str, Any]] = []
        try:
            for res in self(src, boxes, bbox_thr, show_tokens, progress):
                frames += 1
                instances += len(res.bboxes)
                if coco_results is not None:
                    iid = res.frame_id if src.kind == "video" else image_id_from_name(Path(res.img_path).name)
                    if iid is None:
                        raise ValueError(f"{res.img_path}: COCO results need an image id in the file name "
                                         "(e.g. 000000000785.jpg)")
                    coco += self.coco_results(res, iid)
                if src.kind == "images":
                    stem = Path(res.img_path).stem
                    _write_json(out / f"{stem}.json", res.to_dict())
                    written.append(str(out / f"{stem}.json"))
                    if draw:
                        cv2.imwrite(str(out / f"{stem}.png"), draw_frame(res, self.metainfo, kpt_thr))
                        written.append(str(out / f"{stem}.png"))
                    if show_tokens and len(res.bboxes):
                        cv2.imwrite(str(out / f"{stem}_tokens.png"), self.tokens_figure(res))
                        written.append(str(out / f"{stem}_tokens.png"))
                    continue
                records.append(res.to_dict())
                if draw:
                    if writer is None:
                        writer = VideoWriter(out / f"{src.path.stem}.mp4", src.video.fps, (res.width, res.height))  # type: ignore[union-attr]
                    writer.write(draw_frame(res, self.metainfo, kpt_thr))
                if show_tokens and len(res.bboxes) and res.frame_id % max(1, tokens_every) == 0:
                    tdir = out / f"{src.path.stem}_tokens"
                    tdir.mkdir(exist_ok=True)
                    cv2.imwrite(str(tdir / f"frame_{res.frame_id:06d}.png"), self.tokens_figure(res))
                    written.append(str(tdir / f"frame_{res.frame_id:06d}.png"))
        finally:
            if writer is not None:
                writer.close()
        if src.kind == "video":
            _write_json(out / f"{src.path.stem}.json", records)
            written.insert(0, str(out / f"{src.path.stem}.json"))
            if writer is not None:
                written.insert(1, str(writer.path))
        if coco_results is not None:
            from posetokens.evaluation.coco import write_coco_results

            written.append(str(write_coco_results(coco_results, coco, self.metainfo.num_keypoints)))
        return {"input": str(src.path), "kind": src.kind, "frames": frames, "instances": instances, "files": written}

    def tokens_figure(self, res: FrameResult, max_people: int = 6) -> np.ndarray:
        """One row per person (up to ``max_people``): the crop, then the patches kept at each pruning layer
        (BGR, ready for ``cv2.imwrite``)."""
        from posetokens.inference.visualize import draw_kept_tokens, tile_images

        if res.crops is None or res.kept_tokens is None:
            raise ValueError("tokens_figure needs a result computed with show_tokens=True")
        grid = tuple(self.model.cfg.patch_grid)
        rows = [draw_kept_tokens(c, grid, kept, scale=2) for c, kept in zip(res.crops[:max_people], res.kept_tokens)]
        return np.ascontiguousarray(tile_images(rows, cols=1)[..., ::-1])


def _box_fn(boxes: BoxFn | str | Path | None, src: InputSource, bbox_thr: float) -> BoxFn:
    if boxes is None:
        return whole_frame_boxes
    if isinstance(boxes, (str, Path)):
        det = DetectionsFile(boxes, score_thr=bbox_thr)
        det.check_covers(src)
        return det
    if callable(boxes):
        return boxes
    raise ValueError(f"boxes must be a detections json path, a callable or None, got {type(boxes).__name__}")


# ---------------------------------------------------------------------------------------------- writing
def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


class VideoWriter:
    """An MP4 (``mp4v``) writer that refuses to start silently broken."""

    def __init__(self, path: str | Path, fps: float, size_wh: tuple[int, int]) -> None:
        self.path = Path(path)
        self.size = (int(size_wh[0]) // 2 * 2, int(size_wh[1]) // 2 * 2)  # even: mp4v drops an odd row or column
        self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), self.size)
        if not self._w.isOpened():
            raise ValueError(f"{self.path}: OpenCV cannot open an mp4v video writer here")
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame of the writer's size."""
        if (frame_bgr.shape[1], frame_bgr.shape[0]) != self.size:
            frame_bgr = cv2.resize(frame_bgr, self.size, interpolation=cv2.INTER_AREA)
        self._w.write(np.ascontiguousarray(frame_bgr))
        self.frames += 1

    def close(self) -> None:
        """Finish the file."""
        self._w.release()


def draw_frame(res: FrameResult, metainfo: PoseMetaInfo | str, kpt_thr: float = 0.3,
               boxes: bool = True) -> np.ndarray:
    """The frame (BGR) with every person's box and skeleton (links and colours from ``metainfo``)."""
    from posetokens.inference.visualize import draw_skeleton

    if res.image is None:
        raise ValueError("draw_frame needs the frame image (keep_images=True)")
    canvas = res.image.copy()
    t = max(1, round(min(res.width, res.height) / 300))
    if boxes:
        for x1, y1, x2, y2 in np.round(res.bboxes).astype(int):
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), (0, 200, 0), t, cv2.LINE_AA)
    if len(res.keypoints):
        canvas = draw_skeleton(canvas, res.keypoints, res.keypoint_scores, metainfo, kpt_thr=kpt_thr, channel_order="bgr")
    return canvas


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Frame records from a results json written by ``infer`` (a list, or one image's record), checked."""
    data = read_json(path, "2D keypoints")
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a list of {{frame_id, instances}} records (or one record)")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "instances" not in r or not isinstance(r["instances"], list):
            raise ValueError(f"{path}: record {i} has no 'instances' list (expected {{frame_id, instances: [...]}})")
        for j, inst in enumerate(r["instances"]):
            for key in ("keypoints", "keypoint_scores"):
                if key not in inst:
                    raise ValueError(f"{path}: record {i} instance {j} has no {key!r} field")
    return records


def stack_instances(records: Sequence[dict[str, Any]], num_keypoints: int, path: str = "results") -> list[dict]:
    """Validate keypoint shapes of every instance: (K, 2) keypoints and (K,) scores."""
    for i, r in enumerate(records):
        for j, inst in enumerate(r["instances"]):
            k = np.asarray(inst["keypoints"], np.float64)
            s = np.asarray(inst["keypoint_scores"], np.float64)
            if k.shape != (num_keypoints, 2) or s.shape != (num_keypoints,):
                raise ValueError(f"{path}: record {i} instance {j}: keypoints {k.shape} / keypoint_scores {s.shape}, "
                                 f"expected ({num_keypoints}, 2) / ({num_keypoints},)")
    return list(records)
