"""A user-supplied ONNX person detector, run with onnxruntime (``posetokens infer --detector det.onnx``).

The contract the ONNX file must meet (checked when it is loaded; anything else is refused with an error
that names the file, what it has and what was expected):

* **One input**: float32 ``(1, 3, H, W)``, RGB, values in ``[0, 1]`` (pixel / 255), no mean/std.
  A static H, W is used as is; dynamic axes get ``input_size`` (default 640 x 640). Each frame is
  letterboxed: resized keeping its aspect ratio to fit H x W, placed top-left, padded with 114/255.
* **Outputs**, either
  - one tensor ``(N, 5)`` or ``(1, N, 5)``: ``x1, y1, x2, y2, score``; or ``(N, 6)`` / ``(1, N, 6)`` with a
    class id last (only ``person_class``, default 0, is kept); or
  - two tensors: boxes ``(N, 4)`` / ``(1, N, 4)`` and scores ``(N,)`` / ``(1, N)`` (single-class detectors).
  Boxes are corner coordinates in pixels of the letterboxed input. ``N`` may be 0 and may vary per frame
  (end-to-end exports with NMS inside, e.g. RTMDet / YOLOX / YOLOv8 with their NMS export option).
* Post-processing here: boxes are mapped back to the frame, clipped to it, thresholded at
  ``score_thr`` and suppressed by box NMS at ``nms_thr`` (harmless when the model already ran NMS).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["DetectorContractError", "ONNXDetector"]


class DetectorContractError(ValueError):
    """An ONNX detector whose inputs or outputs do not follow the documented contract."""


_CONTRACT = ("expected one float32 input (1, 3, H, W) and either one output (N, 5|6) / (1, N, 5|6) "
             "[x1, y1, x2, y2, score(, class)] or two outputs boxes (N, 4) / (1, N, 4) and scores (N,) / (1, N)")


def _describe(items: Sequence[Any]) -> str:
    return ", ".join(f"{i.name} {list(i.shape)} {i.type}" for i in items)


class ONNXDetector:
    """Person boxes from an ONNX detector (see the module doc for the contract). Call it on a frame."""

    def __init__(self, path: str | Path, score_thr: float = 0.3, nms_thr: float = 0.65, person_class: int = 0,
                 input_size: tuple[int, int] = (640, 640), providers: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads (None: PyTorch's, which ``--threads`` sets)."""
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - onnxruntime is in the [onnx] extra
            raise ImportError("--detector needs onnxruntime: pip install 'posetokens[onnx]'") from e
        from posetokens.fileio import require_file

        self.path = require_file(path, "--detector")  # a folder is named as one
        import torch

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise DetectorContractError(f"{self.path}: onnxruntime cannot load it as an ONNX model ({e})") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].type != "tensor(float)":
            raise DetectorContractError(f"{self.path}: inputs are [{_describe(inputs)}]; {_CONTRACT}")
        shape = inputs[0].shape
        if isinstance(shape[1], int) and shape[1] != 3:
            raise DetectorContractError(f"{self.path}: input {inputs[0].name} has {shape[1]} channels; {_CONTRACT}")
        if len(input_size) != 2 or min(int(v) for v in input_size) < 1:
            raise ValueError(f"{self.path}: input_size must be two sides >= 1 pixel (width, height), got {input_size}")
        h = shape[2] if isinstance(shape[2], int) else int(input_size[1])
        w = shape[3] if isinstance(shape[3], int) else int(input_size[0])
        self.input_name, self.input_hw = inputs[0].name, (h, w)
        if len(outputs) not in (1, 2):
            raise DetectorContractError(f"{self.path}: outputs are [{_describe(outputs)}]; {_CONTRACT}")
        self.score_thr, self.nms_thr, self.person_class = float(score_thr), float(nms_thr), int(person_class)

    def letterbox(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """The (1, 3, H, W) float32 RGB input in [0, 1] and the frame -> input scale."""
        h, w = self.input_hw
        ih, iw = image_bgr.shape[:2]
        r = min(h / ih, w / iw)
        nh, nw = max(1, round(ih * r)), max(1, round(iw * r))
        canvas = np.full((h, w, 3), 114, np.uint8)
        canvas[:nh, :nw] = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        return np.ascontiguousarray(x), r

    def _parse(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        def squeeze(a: np.ndarray, ndim: int) -> np.ndarray:
            return a[0] if a.ndim == ndim + 1 and a.shape[0] == 1 else a

        got = ", ".join(str(list(np.shape(o))) for o in outs)
        if len(outs) == 1:
            a = squeeze(np.asarray(outs[0]), 2)
            if a.ndim != 2 or a.shape[1] not in (5, 6):
                raise DetectorContractError(f"{self.path}: output shapes [{got}]; {_CONTRACT}")
            if a.shape[1] == 6:
                a = a[a[:, 5].round() == self.person_class]
            return a[:, :4].astype(np.float64), a[:, 4].astype(np.float64)
        boxes, scores = squeeze(np.asarray(outs[0]), 2), squeeze(np.asarray(outs[1]), 1)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.ndim != 1 or len(scores) != len(boxes):
            raise DetectorContractError(f"{self.path}: output shapes [{got}]; {_CONTRACT}")
        return boxes.astype(np.float64), scores.astype(np.float64)

    def __call__(self, frame: Any) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) ``[x1, y1, x2, y2]`` in frame pixels and scores (N,), for a frame or a BGR image."""
        image = getattr(frame, "image", frame)
        x, r = self.letterbox(image)
        boxes, scores = self._parse(self.session.run(None, {self.input_name: x}))
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise DetectorContractError(f"{self.path}: the detector returned non-finite boxes or scores")
        ih, iw = image.shape[:2]
        boxes = (boxes / r).clip(0, [iw, ih, iw, ih])
        size = boxes[:, 2:] - boxes[:, :2]  # a box clipped to a sliver or a point at the border is no person
        keep = (scores >= self.score_thr) & (size > 0).all(axis=1) & (size.max(axis=1) >= 1)
        boxes, scores = boxes[keep], scores[keep]
        if len(boxes) > 1:
            xywh = np.concatenate((boxes[:, :2], boxes[:, 2:] - boxes[:, :2]), axis=1)
            idx = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.score_thr, self.nms_thr)
            idx = np.asarray(idx, np.int64).reshape(-1)
            boxes, scores = boxes[idx], scores[idx]
        return boxes, scores
