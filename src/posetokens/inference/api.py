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
Records written by :meth:`PoseEstimator.infer` also carry ``"model"`` (the zoo name) and ``"keypoint_layout"``
(the metainfo name, e.g. ``"coco"``), which ``lift`` checks against its ``--layout``, and ``"keypoint_names"``
(every image's record; a video's first record).

Inputs: an image, a folder of images, a video file, or a live stream (a webcam index such as ``0``, or a stream
URL: ``rtsp://``, ``http(s)://``, ``udp://``, ...; or a video file read as a stream with ``loop``), which is read
frame by frame with no known length until it ends or is interrupted. Videos are written as H.264 (``yuv420p``, which
browsers play) through PyAV (``pip install 'posetokens[video]'``) when it has an H.264 encoder, else as OpenCV's
``mp4v``, said once on stderr (:class:`VideoWriter`).

Safety (see the README's "Errors and safety"): outputs never overwrite an input (refused, naming both paths);
every JSON and picture is written atomically (a temporary file renamed over the target); a video's per-frame JSON
is streamed (a JSON array, one record per line, flushed per frame) and its overlay mp4 is closed properly on
SIGINT/SIGTERM, so an interrupted run keeps every finished frame and raises
:class:`~posetokens.runtime.Interrupted`; unreadable and truncated images are skipped and counted (``strict``
stops at the first); images, boxes and scores given to :meth:`PoseEstimator.predict` are checked.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from posetokens.checkpoint import load_trained
from posetokens.data.datasets.coco_style import image_problem, imread_flags
from posetokens.data.metainfo import PoseMetaInfo, available_metainfo, get_metainfo, metainfo_for_model
from posetokens.fileio import (JsonArrayWriter, atomic_path, atomic_write_json,
                               check_no_overwrite, check_output_kinds, check_replaceable, looks_like_coco_results,
                               looks_like_mmpose_preds, read_json, read_json_array_lines, require_file, same_file,
                               writable_dir)
from posetokens.inference.filters import FilterConfig, as_filter
from posetokens.inference.visualize import default_kpt_thr
from posetokens.layers import optimize_for_inference
from posetokens.media import VideoWriter, write_image
from posetokens.protocols import Protocol, check_model_protocol, resolve_protocol
from posetokens.protocols.codec import build_codec
from posetokens.protocols.predict import crop_to_image, predict_outputs
from posetokens.protocols.topdown import build_pipeline
from posetokens.registry import create_model, default_protocol, has_random_weights, note_if_random_weights
from posetokens.runtime import (Interrupted, check_count, check_device, check_flag, interruptible, is_number, is_whole,
                                note, number_array, option, short_repr, signal_name, signals_deferred, warn)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DetectionsFile",
    "FrameResult",
    "PoseEstimator",
    "StreamReader",
    "VideoReader",
    "VideoWriter",
    "draw_frame",
    "image_problem",
    "is_stream",
    "load_results",
    "mmpose_frame",
    "mmpose_meta_info",
    "mmpose_predictions",
    "open_input",
    "read_image",
    "whole_frame_boxes",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".ts", ".mts", ".m2ts",
                    ".3gp", ".flv")

BoxFn = Callable[["Frame"], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Frame:
    """One decoded image or video frame (BGR uint8) and where it came from."""

    frame_id: int
    name: str  # the image file name, or the video's
    image: np.ndarray
    video: bool = False  # a video frame: detections match it by ``frame_id``
    time_s: float | None = None  # a video file's frame: seconds from the stream's start (decoder); else None


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
        self.declared_frames, self.declared_seconds = _declared(self.path)
        self.decoded_frames: int | None = None  # set when a pass reaches the end of the video

    def __iter__(self) -> Iterator[Frame]:
        cap = cv2.VideoCapture(str(self.path))
        last_ms = step_ms = 0.0  # the time of the last frame decoded, and since the one before
        try:
            i = 0
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                now = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)  # the decoded frame's presentation time
                # a time that does not go forward is none (OpenCV says 0 for a stream without timestamps)
                known = i == 0 or now > last_ms
                last_ms, step_ms = now, now - last_ms
                yield Frame(i, self.path.name, img, video=True, time_s=now / 1000 if known else None)
                i += 1
        finally:
            cap.release()
        self.decoded_frames = i  # only a pass that was not stopped early gets here
        if self.declared_frames is not None and i < self.declared_frames - 1:
            seconds = self.declared_seconds
            # it played to its end (the last frame lasts about as long as the step before it): frames came less often
            if seconds and (last_ms + 2 * max(1000 / self.fps, step_ms)) / 1000 >= seconds:
                warn(f"{self.path}: {i} frames over {seconds:.2f} s ({i / seconds:.2f} a second on average), where "
                     f"its container states {self.fps:g} a second: a variable frame rate; each frame's json record has "
                     "its time ('time_s'), which the temporal filter and an H.264 overlay video follow; the json's "
                     "'fps' and `lift` take the stated rate")
            else:
                warn(f"{self.path}: the video ended after {i} of the {self.declared_frames} frames its container "
                     "declares (a truncated or damaged file); the frames decoded were used")


def declared_frames(path: Path) -> int | None:
    """The frames a video's container declares, when its frame count and its duration times its frame rate agree
    on at least that many (the smaller of the two; an MP4 edit list can make the count exceed what plays), or
    None: PyAV is not installed, or the container declares neither. An AVI's count is its stream header's
    (``strh`` length, at the start of the file): its duration is estimated from the index, which a cut-off file
    lacks. Headers only: nothing is decoded."""
    return _declared(path)[0]


def _declared(path: Path) -> tuple[int | None, float]:
    """:func:`declared_frames` and the video's duration in seconds (0.0: not stated, or an AVI's)."""
    try:
        import av
    except ImportError:
        return None, 0.0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if "avi" in container.format.name.split(",") and stream.frames:
                return int(stream.frames), 0.0
            # the container's duration covers every stream (an MKV's audio may outlast its video): used only when
            # the video is the one stream. An MKV's runs from time 0 to its last frame's end: a recording whose
            # times start later (a cut at 5 s) has its start taken off, or 5 s of frames would seem to be missing
            lead = max(container.start_time or 0, 0) if "matroska" in container.format.name.split(",") else 0
            seconds = (float(stream.duration * stream.time_base) if stream.duration
                       else max((container.duration or 0) - lead, 0) / 1e6 if len(container.streams) == 1 else 0.0)
            by_time = round(seconds * float(stream.average_rate)) if stream.average_rate else 0
            counts = [n for n in (int(stream.frames or 0), by_time) if n > 0]
    except Exception:  # noqa: BLE001 (PyAV cannot read what OpenCV decodes: no claim to check against)
        return None, 0.0
    return (min(counts) if counts else None), seconds


STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_STREAM_URL = re.compile(rf"^({'|'.join(STREAM_SCHEMES)})://\S+$", re.IGNORECASE)


def is_stream(source: Any) -> bool:
    """Whether ``source`` names a live source rather than a file: a webcam index (``0``, or ``"0"`` where no file
    or folder of that name exists) or a stream URL (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
    ``udp://``, ``tcp://``, ``srt://``)."""
    if isinstance(source, int) and not isinstance(source, bool):
        return source >= 0
    if not isinstance(source, str):
        return False
    if source.isdigit():  # a file or folder of that name here is the user's: it wins over a webcam index
        return not Path(source).exists()
    return bool(_STREAM_URL.match(source.strip()))


def stream_stem(source: int | str | Path) -> str:
    """A file-name stem for a live source's outputs: ``webcam0``; ``stream_<host>_<last path part>`` for a URL
    (characters other than letters, digits, ``-`` and ``_`` become ``_``); a file read as a stream keeps its stem."""
    if isinstance(source, Path):
        return source.stem
    s = str(source).strip()
    if s.isdigit():
        return f"webcam{int(s)}"
    rest = s.split("://", 1)[-1].split("?", 1)[0].split("#", 1)[0]
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    last = rest.split("/", 1)[1].rstrip("/").rsplit("/", 1)[-1] if "/" in rest else ""
    last = last.rsplit(".", 1)[0] if "." in last else last
    return re.sub(r"[^A-Za-z0-9_-]+", "_", "_".join(x for x in ("stream", host, last) if x)).strip("_")[:80]


def _redact(source: str) -> str:
    """A stream URL without its password (``rtsp://user:secret@host`` -> ``rtsp://user:***@host``), for messages."""
    return re.sub(r"(://[^/:@]+:)[^/@]*@", r"\1***@", source)


class StreamReader:
    """A live source read one frame at a time through ``cv2.VideoCapture``: a webcam (an index), a stream URL, or a
    video file read as if it were a stream ``loop`` times over (``loop=0``: until interrupted), which is how a
    looping file stands in for a camera in tests and demos. Its length is unknown (:attr:`frame_count` 0); frame
    ids count from 0 across loops. The source is opened, and its first frame read, on construction, so an
    unreachable camera or URL fails at once with a ``ValueError`` naming it; a live source can be iterated once
    (a file read as a stream, any number of times). With ``replay`` a live source's frames are also recorded, as
    they are read, to a temporary H.264 (else mp4v) file, and a second iteration plays that recording back (same
    frame ids), for a command that reads its input twice (``lift``: the 2D pass, then the drawing);
    :meth:`close` removes it."""

    def __init__(self, source: int | str | Path, loop: int = 1, replay: bool = False) -> None:
        if isinstance(source, str) and source.strip().isdigit():
            source = int(source.strip())
        self.source = source
        self.loop = int(loop)
        if self.loop < 0:
            raise ValueError(f"{option('loop')} must be >= 0 (0: until interrupted), got {loop}")
        self.label = f"webcam {source}" if isinstance(source, int) else (
            str(source) if isinstance(source, Path) else _redact(source))
        self.name = stream_stem(source) if not isinstance(source, Path) else source.name
        if isinstance(source, Path) and not source.is_file():
            raise FileNotFoundError(f"video not found: {source}")
        cap = self._open()
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            cap.release()
            what = ("no camera at that index, or it is busy" if isinstance(source, int) else
                    "not a video, corrupt, or an unsupported codec" if isinstance(source, Path) else
                    "unreachable, not a video stream, or an unsupported codec")
            raise ValueError(f"{self.label}: cannot read a frame ({what})")
        self.height, self.width = first.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        self.fps = fps if np.isfinite(fps) and 0 < fps <= 240 else 25.0  # RTSP may report 90000 (its clock rate)
        self.frame_count = 0  # unknown
        self._cap: Any = cap
        self._first: np.ndarray | None = first
        self.frames_read = 0
        self.replay = bool(replay) and self.live
        self._recording: Path | None = None

    def _open(self) -> Any:
        src = str(self.source) if isinstance(self.source, Path) else self.source
        return cv2.VideoCapture(src)

    @property
    def live(self) -> bool:
        """A camera or a URL (read once), not a file read as a stream."""
        return not isinstance(self.source, Path)

    def __iter__(self) -> Iterator[Frame]:
        cap, img = self._cap, self._first
        self._cap = self._first = None
        if cap is None:
            if self._recording is not None:
                yield from self._play_back()
                return
            if self.live:
                raise ValueError(f"{self.label}: a live stream can be read only once (open it with replay=True "
                                 "to read it again)")
            cap = self._open()
        i = passes = 0
        record: VideoWriter | None = None
        if self.replay:
            import tempfile

            self._recording = Path(tempfile.mkdtemp(prefix="posetokens-stream-")) / "replay.mp4"
            record = VideoWriter(self._recording, self.fps, (self.width, self.height), crf=17, quiet=True)
        try:
            while True:
                if img is None:
                    ok, img = cap.read()
                    if not ok or img is None:
                        cap.release()
                        passes += 1
                        if self.live or (self.loop and passes >= self.loop):
                            return
                        cap = self._open()  # a file read as a stream: start it over
                        ok, img = cap.read()
                        if not ok or img is None:
                            return
                self.frames_read = i + 1
                if record is not None:
                    if (img.shape[1], img.shape[0]) != (self.width, self.height):
                        img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_AREA)
                    record.write(img)
                yield Frame(i, self.name, img, video=True)
                img = None
                i += 1
        finally:
            cap.release()
            if record is not None:
                record.close()

    def _play_back(self) -> Iterator[Frame]:
        """The recorded frames of a live source read with ``replay`` (resized back to the source's size when the
        recording had to make it even)."""
        assert self._recording is not None
        if not self._recording.is_file():  # read, but no frame recorded
            return
        cap = cv2.VideoCapture(str(self._recording))
        try:
            i = 0
            while True:
                ok, img = cap.read()
                if not ok or img is None:
                    return
                if (img.shape[1], img.shape[0]) != (self.width, self.height):
                    img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                yield Frame(i, self.name, img, video=True)
                i += 1
        finally:
            cap.release()

    def close(self) -> None:
        """Release the source if it was opened and never read; remove a replay recording."""
        if self._cap is not None:
            self._cap.release()
            self._cap = self._first = None
        if self._recording is not None:
            import shutil

            shutil.rmtree(self._recording.parent, ignore_errors=True)
            self._recording = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 (interpreter shutdown)
            pass


@dataclass
class InputSource:
    """What ``open_input`` found: image files (``kind="images"``), one video file (``kind="video"``), or a live
    source of unknown length (``kind="stream"``: a webcam, a URL, or a file read as a stream, a
    :class:`StreamReader` in :attr:`video`)."""

    kind: str
    path: Path
    images: list[Path] = field(default_factory=list)
    video: VideoReader | StreamReader | None = None

    def __len__(self) -> int:
        return len(self.images) if self.kind == "images" else max(self.video.frame_count, 0)  # type: ignore[union-attr]

    @property
    def stem(self) -> str:
        """The stem of a video's or stream's output files (``<stem>.json``, ``<stem>.mp4``)."""
        if self.kind == "stream":
            return stream_stem(self.video.source)  # type: ignore[union-attr]
        return self.path.stem

    @property
    def label(self) -> str:
        """How messages and progress bars name the input."""
        return self.video.label if self.kind == "stream" else self.path.name  # type: ignore[union-attr]

    def frames(self, on_skip: Callable[[Path, str], None] | None = None,
               exif_orientation: bool = True) -> Iterator[Frame]:
        """Decoded frames in order (images: sorted file names). An unreadable or truncated image raises
        ``ValueError`` naming it, or, with ``on_skip``, is passed to ``on_skip(path, reason)`` and skipped
        (``on_skip`` returns False to end the frames there). Frame ids stay the image's index in the sorted list.
        ``exif_orientation``: images turned by their EXIF tag, or read as stored (:func:`read_image`)."""
        if self.kind in ("video", "stream"):
            assert self.video is not None
            yield from self.video
            return
        for i, p in enumerate(self.images):
            try:
                img = read_image(p, exif_orientation)
            except (ValueError, OSError) as e:
                if on_skip is None:
                    raise
                if on_skip(p, str(e)) is False:
                    return
                continue
            yield Frame(i, p.name, img)


def read_image(path: str | Path, exif_orientation: bool = True) -> np.ndarray:
    """An image file as (H, W, 3) uint8 BGR, turned as its EXIF orientation tag says (as a viewer shows it) or,
    with ``exif_orientation`` False, as stored (:func:`~posetokens.data.datasets.coco_style.load_image`);
    ``ValueError`` naming the file when it is unreadable, not an image, or truncated (:func:`image_problem`)."""
    p = Path(path)
    data = p.read_bytes()
    problem = image_problem(data)
    if problem is not None:
        raise ValueError(f"{p}: {problem}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), imread_flags(exif_orientation)) if data else None
    if img is None:
        raise ValueError(f"{p}: cannot read image (corrupt, truncated or not an image)")
    return img


def open_input(path: str | Path | int, loop: int | None = None, replay: bool = False) -> InputSource:
    """An image, a folder of images, or a video, recognised by extension; a webcam index (``0``) or a stream URL
    (:func:`is_stream`) as a live stream (``replay``: recorded as read, so it can be read twice, see
    :class:`StreamReader`); with ``loop`` a video file read as a stream ``loop`` times over (0: until
    interrupted). A clear error otherwise."""
    if not isinstance(path, (str, os.PathLike, int, np.integer)) or isinstance(path, bool):
        hint = " (for an image array call PoseEstimator.predict(image))" if isinstance(path, np.ndarray) else \
            " (one path at a time; a folder of images is one source)" if isinstance(path, (list, tuple)) else ""
        raise ValueError(f"source: got a {type(path).__name__}; expected an image, a folder of images or a video "
                         f"path, a webcam index or a stream URL{hint}")
    if isinstance(path, np.integer):  # a webcam index from numpy
        path = int(path)
    if is_stream(path):
        if loop is not None:
            raise ValueError(f"--loop applies to a video file, not to a live stream ({path})")
        reader = StreamReader(path, replay=replay)  # type: ignore[arg-type]
        return InputSource("stream", Path(reader.name), video=reader)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p} (expected an image, a folder of images, a video, a webcam "
                                "index or a stream URL such as rtsp://...)")
    ext = p.suffix.lower()
    if loop is not None:
        if p.is_dir() or ext not in VIDEO_EXTENSIONS:
            raise ValueError(f"{p}: --loop reads a video file as a stream; expected a video "
                             f"({', '.join(VIDEO_EXTENSIONS)})")
        return InputSource("stream", p, video=StreamReader(p, loop=loop))
    if p.is_dir():
        entries = sorted(p.iterdir())
        imgs = [q for q in entries if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS]
        videos = [q.name for q in entries if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS]
        folders = [q.name + "/" for q in entries if q.is_dir() and not q.name.startswith(".")]
        hint = (f"; a video ({', '.join(videos[:3])}) is an input of its own" if videos else "") + \
            ("; folders in it are not searched" if folders else "")
        if not imgs:
            raise ValueError(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)}){hint}")
        others = [q.name for q in entries if q.is_file() and not q.name.startswith(".")  # not .DS_Store
                  and q.suffix.lower() not in IMAGE_EXTENSIONS] + folders
        if others:  # a video in the folder was passed over without a word
            note(f"{p}: {len(imgs)} image(s) read; {len(others)} other entr{'y' if len(others) == 1 else 'ies'} "
                 f"left out ({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}){hint}")
        return InputSource("images", p, images=imgs)
    if ext in IMAGE_EXTENSIONS:
        return InputSource("images", p, images=[p])
    if ext in VIDEO_EXTENSIONS:
        return InputSource("video", p, video=VideoReader(p))
    raise ValueError(f"{p}: unknown input type {ext!r}; expected an image ({', '.join(IMAGE_EXTENSIONS)}), "
                     f"a video ({', '.join(VIDEO_EXTENSIONS)}), a folder, a webcam index or a stream URL")


def _counted(items: Iterable[Any], bar: Any) -> Iterator[Any]:
    """``items``, each counted on the progress ``bar`` once it has been handled; the bar closed at the end."""
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


def show_progress(progress: bool | None) -> bool:
    """Whether a video command shows a progress bar: as asked, else when stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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

    Every item is checked when the file is read (an integer ``image_id``, four finite numbers in ``bbox`` with
    ``w > 0`` and ``h > 0``, a finite ``score``); a bad item is a ``ValueError`` naming the file, the item and the
    field. Boxes below ``score_thr`` and of other categories than ``category_id`` are dropped.
    """

    def __init__(self, path: str | Path, score_thr: float = 0.3, category_id: int = 1) -> None:
        if not (is_number(score_thr) and math.isfinite(score_thr)):  # a NaN threshold kept every box
            raise ValueError(f"score_thr (bbox_thr) of the detections must be a finite number, got {score_thr!r}")
        self.path = Path(path)
        data = read_json(self.path, f"detections ({option('boxes')})")
        if not isinstance(data, list):
            raise ValueError(f"{self.path}: a detections file must be a JSON list of "
                             f"{{image_id, category_id, bbox, score}}, got a {type(data).__name__}")
        self.boxes: dict[int, list[tuple[list[float], float]]] = {}
        self.ids: set[int] = set()
        for i, det in enumerate(data):
            if not isinstance(det, dict):
                raise ValueError(f"{self.path}: item {i} is not an object (expected {{image_id, bbox, score}})")
            for key in ("image_id", "bbox", "score"):
                if key not in det:
                    raise ValueError(f"{self.path}: item {i} has no {key!r} field (expected image_id, bbox, score)")
            iid = det["image_id"]
            if isinstance(iid, bool) or not isinstance(iid, (int, float, str)) or not re.fullmatch(
                    r"\s*\d+(\.0*)?\s*", str(iid)):
                raise ValueError(f"{self.path}: item {i} 'image_id' must be a non-negative integer (the digits of "
                                 f"the image's file name, or a video's frame index), got {iid!r}")
            iid = int(float(iid))
            bbox = det["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
                raise ValueError(f"{self.path}: item {i} 'bbox' must be [x, y, w, h] numbers, got {bbox!r}")
            if not all(np.isfinite(bbox)):
                raise ValueError(f"{self.path}: item {i} 'bbox' {bbox!r} is not finite (expected [x, y, w, h] numbers)")
            if bbox[2] <= 0 or bbox[3] <= 0:
                raise ValueError(f"{self.path}: item {i} 'bbox' {bbox!r} has zero or negative width/height "
                                 "(expected [x, y, w, h] with w > 0 and h > 0)")
            score = det["score"]
            if not is_number(score) or not np.isfinite(score):
                raise ValueError(f"{self.path}: item {i} 'score' must be a finite number, got {score!r}")
            self.ids.add(iid)
            if det.get("category_id", category_id) != category_id or float(score) < score_thr:
                continue
            self.boxes.setdefault(iid, []).append(([float(v) for v in bbox], float(score)))
        self.uncovered: list[str] = []  # frames seen whose id has no entry in the file (they get no person)
        self.seen = 0
        self._unit = "images"

    def check_covers(self, source: InputSource) -> None:
        """Raise ``ValueError`` when no input image (or frame) has an id in this file; warn (one line) when ids name
        frames past a video's last (with a hint when the file counts frames from 1). (Inputs that only some cover
        are counted as they run, :attr:`uncovered`, and reported by :meth:`warn_uncovered`.)"""
        if source.kind == "stream":
            return  # unknown length: frames without an entry are counted as they run
        if not self.ids:  # a detector that found nobody writes an empty list: no person anywhere, said
            warn(f"{self.path} holds no detection: no person in any input")
            return
        if source.kind == "video":
            wanted = set(range(max(len(source), 1)))
            what = f"frame indices 0..{max(len(source), 1) - 1}"
        else:
            wanted = {i for i in (image_id_from_name(p.name) for p in source.images) if i is not None}
            have = sorted(wanted)[:8]
            what = f"image ids from the file names {have}{' ...' if len(wanted) > 8 else ''}"
        if not wanted & self.ids:
            some = sorted(self.ids)[:8]
            raise ValueError(
                f"{self.path}: no detection matches the input {source.path}: the file's 'image_id' values are "
                f"{some}{' ...' if len(self.ids) > 8 else ''}, the inputs' {what}"
            )
        past = sorted(i for i in self.ids if i >= len(source)) if source.kind == "video" and len(source) else []
        if past:  # were dropped without a word; a file numbered from 1 puts every box one frame late
            n = len(source)
            late = (f": numbered from 1 (its ids run {min(self.ids)}..{max(self.ids)})? posetokens counts frames "
                    "from 0, so every box would be one frame late" if min(self.ids) == 1 and max(self.ids) == n else "")
            warn(f"{self.path}: {len(past)} image_id value(s) name frames past the last of {source.path} ({n} "
                 f"frames, indices 0..{n - 1}; e.g. {past[:3]}): their detections are not used{late}")

    def __call__(self, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) as ``[x1, y1, x2, y2]`` and scores (N,) of one frame."""
        key = frame.frame_id if frame.video else image_id_from_name(frame.name)
        self.seen += 1
        self._unit = "frames" if frame.video else "images"
        if key is None or key not in self.ids:
            self.uncovered.append(f"frame {frame.frame_id}" if frame.video else frame.name)
        dets = self.boxes.get(key, []) if key is not None else []
        if not dets:
            return np.zeros((0, 4)), np.zeros(0)
        xywh = np.asarray([d[0] for d in dets], np.float64)
        return np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), axis=1), np.asarray([d[1] for d in dets])

    def warn_uncovered(self) -> int:
        """One warning line when some of the frames seen had no entry in the file (they got no person); returns
        how many."""
        n = len(self.uncovered)
        if n and self.ids:  # an empty file was said once already ("holds no detection")
            warn(f"{self.path} covers only some inputs: {n} of {self.seen} "
                 f"{self._unit} have no entry in it and got no "
                 f"person ({', '.join(self.uncovered[:5])}{' ...' if n > 5 else ''})")
        return n


def check_image(image: Any, where: str = "image", channels: str = "BGR") -> np.ndarray:
    """``image`` when it is an (H, W, 3) uint8 array (``channels``: BGR, or RGB for the lower-level calls; the
    order itself cannot be checked); otherwise ``ValueError`` saying what was expected (no guessing: a float image
    in [0, 1] and one in [0, 255] look alike, so neither is converted)."""
    given = "as cv2.imread gives" if channels == "BGR" else "cv2.imread's image reversed: img[..., ::-1]"
    want = f"expected an (H, W, 3) uint8 {channels} image with values 0-255 ({given})"
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: got a {type(image).__name__}; {want}")
    if image.dtype != np.uint8:
        hint = {"f": "; for floats in [0, 1] convert with (img * 255).round().astype(np.uint8)",
                "u": "; for 16-bit images convert with (img // 257).astype(np.uint8)"}.get(image.dtype.kind, "")
        raise ValueError(f"{where}: dtype {image.dtype}; {want}{hint}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = {2: "; for a grey image use cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)"}.get(image.ndim, "")
        if image.ndim == 3 and image.shape[2] == 4:
            hint = "; for BGRA use cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)"
        raise ValueError(f"{where}: shape {image.shape}; {want}{hint}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{where}: empty image of shape {image.shape}; {want}")
    return image


def _two_boxes(got: Any) -> bool:
    """Whether a boxes callable's return is two boxes of 4 numbers (read as a pair: 1 box and 4 scores)."""
    try:
        return np.asarray(got, dtype=np.float64).shape == (2, 4)
    except (TypeError, ValueError):
        return False


def check_boxes(boxes: Any, scores: Any, where: str = "bboxes",
                specks: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes as (N, 4) ``[x1, y1, x2, y2]`` float64 and scores (N,) (None: all 1). Refused with a
    ``ValueError`` naming the item: another shape, a box and score count that differ, a non-finite value, a
    box with zero or negative width or height, or one smaller than a pixel. With ``specks`` (a list), boxes
    smaller than a pixel are left out instead and their indices appended (a detector's sliver at the border)."""
    if isinstance(boxes, (str, Path, dict)):
        raise ValueError(f"{where}: got a {type(boxes).__name__}; expected (N, 4) boxes [x1, y1, x2, y2] (a detections "
                         "json path goes to the estimator's call or --boxes)")
    try:  # text, complex numbers, None: float64 would read digits, drop imaginary parts
        b = number_array(boxes, where, "boxes")
    except ValueError:
        raise ValueError(f"{where}: not an array of numbers (N, 4) [x1, y1, x2, y2]; got {type(boxes).__name__} "
                         f"{short_repr(boxes)}") from None
    if b.ndim == 1 and b.shape[0] == 4:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        if b.size == 0 and b.shape[0] == 0:  # no boxes: [], (0,), (0, 0); not (3, 0)
            b = b.reshape(0, 4)
        else:
            raise ValueError(f"{where}: shape {np.shape(boxes)}, expected (N, 4) boxes [x1, y1, x2, y2]")
    try:
        s = np.ones(len(b)) if scores is None else number_array(scores, where, "box scores").reshape(-1)
    except ValueError:
        raise ValueError(f"{where}: the box scores are not numbers (N,); got {type(scores).__name__} "
                         f"{short_repr(scores)}") from None
    if len(s) != len(b):
        raise ValueError(f"{where}: {len(b)} box(es) but {len(s)} box score(s); expected one score per box")
    bad = np.flatnonzero(~np.isfinite(b).all(axis=1))
    if len(bad):
        raise ValueError(f"{where}[{bad[0]}] = {b[bad[0]].tolist()} is not finite; expected [x1, y1, x2, y2] numbers")
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        raise ValueError(f"{where}: box score {bad[0]} is {s[bad[0]]}; expected a finite number")
    bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
    if len(bad):
        raise ValueError(f"{where}[{bad[0]}] = {b[bad[0]].tolist()} has zero or negative width/height; expected "
                         "[x1, y1, x2, y2] with x2 > x1 and y2 > y1")
    bad = np.flatnonzero(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) < 1)
    if len(bad) and specks is not None:
        specks.extend(bad.tolist())
        keep = np.ones(len(b), bool)
        keep[bad] = False
        return b[keep], s[keep]
    if len(bad):
        raise ValueError(f"{where}[{bad[0]}] = {b[bad[0]].tolist()} is smaller than a pixel; expected a person's box, "
                         "at least 1 px wide or high")
    return b, s


def boxes_outside(b: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which boxes (N, 4) ``[x1, y1, x2, y2]`` lie wholly outside a ``width`` x ``height`` image (N,) bool (one
    touching its border has no area inside)."""
    return (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= width) | (b[:, 1] >= height)


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
    track_ids: np.ndarray | None = None  # (N,) track id of each person (videos and streams)
    kpt_thr: float = 0.3  # the drawing threshold for these scores (PoseEstimator.default_kpt_thr: GTPT's are ~0.1)
    time_s: float | None = None  # a video file's frame: seconds from the stream's start (decoder)

    def to_dict(self, decimals: int = 3) -> dict[str, Any]:
        """The JSON record ``{frame_id, img_path, width, height, instances: [...]}`` (each instance with its
        ``track_id`` when the frame was tracked; ``time_s`` after ``frame_id`` for a video file's frame)."""
        decimals = check_count(decimals, "to_dict: decimals", low=0)
        r = lambda a: np.round(np.asarray(a, np.float64), decimals).tolist()  # noqa: E731
        instances = [
            {"keypoints": r(k), "keypoint_scores": r(s), "bbox": r(b), "bbox_score": round(float(bs), decimals)}
            for k, s, b, bs in zip(self.keypoints, self.keypoint_scores, self.bboxes, self.bbox_scores)
        ]
        if self.track_ids is not None:
            for inst, tid in zip(instances, self.track_ids):
                inst["track_id"] = int(tid)
        timed = {} if self.time_s is None else {"time_s": round(float(self.time_s), 6)}
        return {"frame_id": self.frame_id, **timed, "img_path": self.img_path, "width": self.width,
                "height": self.height, "instances": instances}


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


class NotTopDownError(ValueError):
    """A model given where a top-down 2D model (image crops in) is needed; ``name`` and ``task`` say what it is."""

    def __init__(self, message: str, name: str, task: object) -> None:
        super().__init__(message)
        self.name, self.task = name, task


class PoseEstimator:
    """A 2D top-down model ready for images and videos, with its protocol's crop, flip test and decoding.

    Args:
        model: a zoo name (``posetokens models``), a built model, or None with ``weights`` of ours (a checkpoint
            we wrote names its model, overrides, protocol and metainfo).
        weights: checkpoint to load (ours or an official release); None keeps random weights.
        device: torch device.
        flip_test: average with the prediction on the mirrored crop. False by default (half the work); None:
            the protocol's own setting (every official protocol flips, as its paper's numbers do).
        batch_size: crops per forward pass (crops of consecutive frames share a batch).
        metainfo: keypoint definition (default: the checkpoint's, else from the keypoint count).
        protocol: a protocol name or object (default: the checkpoint's, else the zoo model's official one): it
            fixes the crop geometry, padding, decoding and flip rule.
        bbox_padding: box -> crop padding (default: the protocol's test padding, 1.25; PCT 1.12).
        optimize: predict with :func:`posetokens.layers.optimize_for_inference`'s copy (conv-BN folded,
            channels-last convolutions; equal outputs to float rounding, about 1.1x faster on CPU). ``model``
            stays the original, in the training mode it was in; the copy, ``net``, costs one more set of weights
            and is made once, here: after changing ``model`` (weights, device), build a new estimator. False:
            predictions run ``model`` itself, put in eval mode, in float32 PyTorch (what a check during training
            wants: they follow its weights as they change); a precision or runtime naming anything else is
            refused.
        precision, runtime: number format (``auto``, ``fp32``, ``bf16``, ``bf16-backbone``, ``bf16-gemm``,
            ``int8-dynamic``) and runtime (``auto``, ``torch``, ``compile``, ``onnxruntime``) of ``net``
            (:mod:`posetokens.inference.precision`; None: its measured default, ``auto/auto``: for TokenPose, PPT
            and GTPT float32 through onnxruntime or PyTorch, whichever is faster on this CPU at the batch size (the
            graph is exported once and cached); for PCT ``bf16-gemm`` in PyTorch on a CPU with bfloat16 kernels
            where the mode pays, else the same as the others). Outputs stay float32. A choice the device cannot
            run is a one-line ``ValueError``. The attribute ``choice`` holds the choice with ``auto``'s precision
            resolved.
        **overrides: model config fields to replace (as in :func:`posetokens.create_model`).
    """

    def __init__(self, model: str | nn.Module | None = None, weights: str | Path | None = None,
                 device: str | torch.device = "cpu", flip_test: bool | None = False, batch_size: int = 16,
                 metainfo: PoseMetaInfo | str | None = None, protocol: Protocol | str | None = None,
                 bbox_padding: float | None = None, optimize: bool = True, precision: str | None = None,
                 runtime: str | None = None, **overrides: Any) -> None:
        from posetokens.inference.precision import (Choice, check_choice, check_float32, parse_choice, prepare,
                                                    resolve_precision)

        stored_protocol, stored_metainfo, random_weights = None, None, False
        self.batch_size = check_count(batch_size, "PoseEstimator: batch_size")  # before any loading, as below
        if flip_test is not None:
            flip_test = check_flag(flip_test, "PoseEstimator: flip_test")
        self.device = check_device(device)
        optimize = check_flag(optimize, "PoseEstimator: optimize")
        if optimize:
            self.choice = parse_choice(precision, runtime)  # a bad or unsupported choice fails before any loading
        else:  # the model itself: float32 PyTorch, whatever POSETOKENS_PRECISION / _RUNTIME say
            self.choice = parse_choice("fp32" if precision is None else precision,
                                       "torch" if runtime is None else runtime)
            if self.choice != Choice("fp32", "torch"):
                raise ValueError(f"PoseEstimator: optimize=False runs the model itself, in float32 PyTorch; "
                                 f"precision={precision!r} runtime={runtime!r} run a copy: leave them out, or "
                                 "optimize=True")
        check_choice(self.choice, self.device)
        self.weights = None if weights is None else require_file(weights, option("weights"))
        if model is None or isinstance(model, str):
            if weights is None and model is None:
                raise ValueError("PoseEstimator: give a zoo model name, or weights of ours that name their model")
            if weights is not None:
                trained = load_trained(weights, model, overrides or None)
                model, stored_protocol, stored_metainfo = trained.model, trained.protocol, trained.metainfo
            else:
                zoo = model
                model = create_model(zoo, **overrides)
                random_weights = True  # said once the estimator is built (below)
        elif not isinstance(model, nn.Module):
            raise ValueError(f"PoseEstimator: model must be a zoo model name or a torch model (nn.Module), got "
                             f"{type(model).__name__} {short_repr(model)}")
        elif weights is not None:
            raise ValueError("PoseEstimator: pass weights with a zoo name, or load them into the model yourself")
        elif overrides:  # were ignored without a word
            raise ValueError(f"PoseEstimator: model config overrides ({', '.join(sorted(overrides))}) apply to a zoo "
                             "name; a built model has its config")
        name = getattr(model, "zoo_name", type(model).__name__)
        task = getattr(model, "task", None)
        if task != "topdown":
            hint = {"multiview": " (synchronised views and camera rays in): call it directly",
                    "tokenizer": " (a PCT tokenizer, joints in and out): use a pct_*_coco model for images",
                    "lifting": " (2D keypoints in): use posetokens lift"}.get(str(task), "")
            raise NotTopDownError(f"PoseEstimator needs a top-down 2D model (image crops in); {name} is a {task} model"
                                  f"{hint}", name, task)
        check_float32(model, "PoseEstimator", precision=True)
        # a built model that create_model made without weights, and that nothing has changed since, is random too
        random_weights = random_weights or has_random_weights(model)
        self.random_weights = random_weights  # written into every record infer writes
        self.model = model.to(self.device)  # the caller's model: its training mode is left as it was
        # what predictions run: an eval-mode copy, or (optimize=False) the model itself, put in eval mode
        self.net = optimize_for_inference(self.model) if optimize else self.model.eval()
        # float32 eager: unchanged; else a copy (auto: onnxruntime's session made at the first prediction)
        self.net = prepare(self.net, self.choice, self.device, trained=not random_weights)
        self.choice = resolve_precision(self.model, self.choice, self.device)  # the precision auto stood for
        self.name = name
        k = model.cfg.num_keypoints
        if metainfo is not None:
            self.metainfo = get_metainfo(metainfo)
        else:
            self.metainfo = stored_metainfo or metainfo_for_model(k, str(getattr(model, "zoo_name", "")))
        if self.metainfo.num_keypoints != k:
            raise ValueError(f"PoseEstimator: metainfo {self.metainfo.name!r} has {self.metainfo.num_keypoints} "
                             f"keypoints but {name} predicts {k}")
        # a checkpoint of ours records what it was trained on (a plain state dict or random weights: the user's word)
        if stored_metainfo is not None and self.metainfo.name != stored_metainfo.name \
                and self.metainfo.name in available_metainfo():
            raise ValueError(f"PoseEstimator: metainfo {self.metainfo.name!r} but the checkpoint's model predicts "
                             f"{stored_metainfo.name!r} keypoints: their names and flip pairs would be wrong; leave "
                             "metainfo out")
        default = default_protocol(model.zoo_name) if hasattr(model, "zoo_name") else "mmpose"
        self.protocol = resolve_protocol(protocol if protocol is not None else stored_protocol, default=default)
        if flip_test is not None:
            self.protocol = self.protocol.replace({"test": {"flip_test": flip_test}})
        check_model_protocol(model, self.protocol)
        if bbox_padding is not None:
            if isinstance(bbox_padding, bool) or not isinstance(bbox_padding, (int, float)) \
                    or not math.isfinite(bbox_padding) or bbox_padding <= 0:
                raise ValueError(f"PoseEstimator: bbox_padding must be a number > 0 (the box -> crop scale, 1.25 "
                                 f"in the official protocols), got {bbox_padding!r}")
            self.protocol = self.protocol.replace({"box": {"test_padding": float(bbox_padding)}})
        self.codec = build_codec(self.protocol, model.cfg.image_size, getattr(model.cfg, "heatmap_size", None))
        self.pipeline = build_pipeline(self.protocol, model.cfg.image_size, self.metainfo, normalize=False)
        if random_weights:  # said once everything above was accepted, and once per model
            note_if_random_weights(model, "the 2D model")

    @property
    def flip_test(self) -> bool:
        """Whether predictions average with the mirrored crop's (the protocol's test rule)."""
        return self.protocol.test.flip_test

    @property
    def default_kpt_thr(self) -> float:
        """The drawing threshold when none is given, from the codec's score scale (:func:`default_kpt_thr`)."""
        return default_kpt_thr(self.codec.score_scale)

    @property
    def provenance(self) -> dict[str, Any]:
        """Where this estimator's poses come from, the fields ``infer`` adds to every record: ``model``,
        ``keypoint_layout`` (the metainfo name), ``weights`` (the file, or None) and ``random_weights``. A json of
        ``est(...)`` records of your own takes them as ``{**frame.to_dict(), **est.provenance}``."""
        return {"model": self.name, "keypoint_layout": self.metainfo.name,
                "weights": None if self.weights is None else str(self.weights), "random_weights": self.random_weights}

    def tracker_args(self) -> dict[str, Any]:
        """What this estimator's video tracker is built with (:class:`~posetokens.inference.tracking.Tracker`): its
        keypoint layout, and for a layout of one's own (a skeleton file) that layout's OKS sigmas (the tracker takes a
        built-in layout's from its metainfo: COCO's, CrowdPose's, MPII's, COCO-WholeBody's; 0.07 for H36M)."""
        own = self.metainfo.name not in available_metainfo() and self.metainfo.sigmas is not None
        return {"layout": self.metainfo.name, "sigmas": self.metainfo.sigmas if own else None}

    @property
    def can_show_tokens(self) -> bool:
        """Whether the model prunes visual tokens and reports which it kept (PPT, GTPT): what it declares as
        ``prunes`` (TokenPose and PCT keep every token)."""
        return bool(getattr(self.model, "prunes", False))

    # -- crops
    def crops(self, image_rgb: np.ndarray, bboxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB crops (N, h, w, 3) and image->crop warps (N, 2, 3) of ``[x1, y1, x2, y2]`` boxes."""
        check_image(image_rgb, "crops: image_rgb", channels="RGB")
        bboxes, _ = check_boxes(bboxes, None, "crops: bboxes")
        w, h = self.pipeline.input_size
        crops, warps = np.zeros((len(bboxes), h, w, 3), np.uint8), np.zeros((len(bboxes), 2, 3))
        for i, (x1, y1, x2, y2) in enumerate(bboxes):
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
        self._check_crops(crops, warps)
        if len(crops) == 0:
            return np.zeros((0, k, 2)), np.zeros((0, k)), [] if show_tokens else None
        if show_tokens and not self.can_show_tokens:
            raise ValueError(f"{self.name} has no token pruning to show ({option('show_tokens')} needs a PPT or GTPT "
                             "model)")
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        flip = list(self.metainfo.flip_indices)
        kpts, scores, tokens = [], [], []
        for s in range(0, len(crops), self.batch_size):
            # a copy where the caller's view runs backwards (crops[..., ::-1] from BGR), which torch cannot wrap
            x = torch.from_numpy(np.ascontiguousarray(crops[s:s + self.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float()
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

    def _check_crops(self, crops: Any, warps: Any) -> None:
        w, h = self.pipeline.input_size
        if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[1:] != (h, w, 3):
            got = f"{type(crops).__name__}" + (f" {crops.dtype} of shape {crops.shape}" if isinstance(crops, np.ndarray) else "")
            raise ValueError(f"predict_crops: crops must be a uint8 RGB numpy array (N, {h}, {w}, 3) as crops() returns "
                             f"them; got {got}")
        if not isinstance(warps, np.ndarray) or warps.shape != (len(crops), 2, 3) or not np.isfinite(warps).all():
            got = f"{type(warps).__name__}" + (f" of shape {warps.shape}" if isinstance(warps, np.ndarray) else "")
            raise ValueError(f"predict_crops: warps must be a finite numpy array ({len(crops)}, 2, 3), one image->crop "
                             f"warp per crop as crops() returns them; got {got}")
        singular = np.flatnonzero(np.linalg.det(warps[:, :, :2].astype(np.float64)) == 0)
        if len(singular):  # its crop cannot be mapped back to the image
            i = singular[0]
            raise ValueError(f"predict_crops: warps[{i}] = {warps[i].tolist()} is singular; expected an invertible "
                             "image->crop warp as crops() returns them")

    def predict(self, image: np.ndarray, bboxes: np.ndarray | None = None, bbox_scores: np.ndarray | None = None,
                show_tokens: bool = False) -> FrameResult:
        """People in one image: ``image`` (H, W, 3) uint8 BGR (as ``cv2.imread`` gives; other dtypes are refused,
        not guessed), ``bboxes`` (N, 4) ``[x1, y1, x2, y2]`` (or one box (4,)) with optional ``bbox_scores`` (N,),
        or the whole image when None; the result has one pose per box, in order. Non-finite or empty boxes, boxes
        outside the image and a score count that differs from the box count are refused with a ``ValueError``
        naming the box."""
        frame = Frame(0, "image", check_image(image, "predict: image"))
        if bboxes is not None:
            b, s = check_boxes(bboxes, bbox_scores, "predict: bboxes")
            h, w = frame.image.shape[:2]
            off = np.flatnonzero(boxes_outside(b, w, h))
            if len(off):  # the result has one pose per given box: refused, as a box smaller than a pixel is
                raise ValueError(f"predict: bboxes[{off[0]}] = {b[off[0]].tolist()} lies outside the {w}x{h} image; "
                                 "expected boxes that overlap it")
            boxes: BoxFn = lambda f: (b, s)  # noqa: E731
        elif bbox_scores is not None:
            raise ValueError("predict: bbox_scores given without bboxes")
        else:
            boxes = whole_frame_boxes
        return next(self.run_frames([frame], boxes, show_tokens=show_tokens))

    @staticmethod
    def _track_filter(filters: dict[int, tuple[Any, int]], tid: int, res: FrameResult, smooth: Any, fps: float) -> Any:
        """Track ``tid``'s causal filter at frame ``res.frame_id``, told of the frames the track was not seen in
        since its last (so a gap restarts it, or under ``hold`` counts the elapsed time)."""
        filt, last = filters.get(tid, (None, res.frame_id - 1))
        if filt is None:
            filt = smooth.stream(fps=fps, scale=res.width / 2)
        filt.skip(res.frame_id - last - 1)
        filters[tid] = (filt, res.frame_id)
        return filt

    # -- streams
    def run_frames(self, frames: Iterable[Frame], boxes: BoxFn = whole_frame_boxes, show_tokens: bool = False,
                   keep_images: bool = True, timer: Any = None) -> Iterator[FrameResult]:
        """Results for ``frames`` in order; crops of consecutive frames are batched together. ``boxes`` may be a
        :class:`~posetokens.inference.tracking.PoseTracker`: every result then carries its people's track ids
        (poses it drops as duplicates are left out), and with its detector every N frames each frame is finished
        before the next one's boxes are carried from its poses. ``timer``: a
        :class:`~posetokens.inference.stages.StageTimer` that gets the detector, 2D model and tracking times."""
        from posetokens.inference.tracking import PoseTracker

        tracker = boxes if isinstance(boxes, PoseTracker) else None
        if tracker is not None:  # the threshold of a kpt_thr=None tracker: this model's scores' (GTPT's are low)
            tracker.fallback_thr = self.default_kpt_thr
        each_frame = tracker is not None and tracker.needs_feedback
        clock = timer.stage if timer is not None else _no_stage
        pending: list[tuple[Frame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        count, specks, outside = 0, 0, 0  # boxes left out of the frames delivered (said at the end)
        said_speck = said_outside = False
        left_out: dict[int, tuple[int, int]] = {}  # frame id -> boxes left out of a frame read, not yet delivered

        def deliver(results: Iterable[FrameResult]) -> Iterator[FrameResult]:
            nonlocal specks, outside
            for res in results:
                sp, of = left_out.pop(res.frame_id, (0, 0))
                specks, outside = specks + sp, outside + of
                yield res

        try:
            for frame in frames:
                where = f"{frame.name} frame {frame.frame_id}" if frame.video else frame.name
                check_image(frame.image, where)
                with clock("detector"):
                    dropped: list[int] = []
                    got = boxes(frame)
                    two = _two_boxes(got)  # a user's callable returning two boxes, read as (1 box, 4 scores)
                    if not (isinstance(got, (tuple, list)) and len(got) == 2) or two:
                        hint = "; two boxes without scores are (boxes, None)" if two else ""
                        raise ValueError(f"{where}: the boxes callable returned {short_repr(got)}; expected a pair "
                                         f"(boxes (N, 4) [x1, y1, x2, y2], scores (N,) or None){hint}")
                    b, s = check_boxes(*got, where=f"{where}: boxes", specks=dropped)
                if dropped and not said_speck:  # no person fits in less than a pixel, and the crop cannot take it
                    warn(f"{where}: a box smaller than a pixel was left out (box {dropped[0]}); any later ones "
                         "are counted at the end")
                    said_speck = True
                h, w = frame.image.shape[:2]
                off = boxes_outside(b, w, h)
                if off.any():  # nobody to see there (a box far off made the crop's warp singular)
                    if not said_outside:
                        i = int(np.flatnonzero(off)[0])
                        box = np.round(b[i], 2).tolist()
                        warn(f"{where}: a box outside the {w}x{h} image was left out ({box}); any later ones are "
                             "counted at the end")
                        said_outside = True
                    b, s = b[~off], s[~off]
                if dropped or off.any():
                    left_out[frame.frame_id] = (len(dropped), int(off.sum()))
                with clock("2D model"):
                    c, w = self.crops(np.ascontiguousarray(frame.image[..., ::-1]), b)
                pending.append((frame, b, s, c, w))
                count += len(b)
                if count >= self.batch_size or each_frame:
                    yield from deliver(self._flush(pending, show_tokens, keep_images, tracker, clock))
                    pending, count = [], 0
            yield from deliver(self._flush(pending, show_tokens, keep_images, tracker, clock))
        finally:  # also when the caller stops early (itertools.islice): the counts promised, of the frames given
            if specks > 1:
                warn(f"{specks} boxes smaller than a pixel were left out in all")
            if outside > 1:
                warn(f"{outside} boxes outside their image were left out in all")

    def _flush(self, pending: list, show_tokens: bool, keep_images: bool, tracker: Any = None,
               clock: Callable[[str], Any] | None = None) -> Iterator[FrameResult]:
        if not pending:
            return
        clock = clock or _no_stage
        n = [len(p[1]) for p in pending]
        crops = np.concatenate([p[3] for p in pending])
        with clock("2D model"):
            kp, sc, tok = self.predict_crops(crops, np.concatenate([p[4] for p in pending]), show_tokens)
        ends = np.cumsum(n)
        for (frame, b, s, c, _), e, m in zip(pending, ends, n):
            h, w = frame.image.shape[:2]
            res = FrameResult(
                frame.frame_id, frame.name, w, h,
                kp[e - m:e], sc[e - m:e], b, s, frame.image if keep_images else None,
                c if show_tokens else None, tok[e - m:e] if tok is not None else None, kpt_thr=self.default_kpt_thr,
                time_s=frame.time_s,
            )
            if tracker is not None:
                with clock("tracking"):
                    ids, keep = tracker.update(res.bboxes, res.keypoints, res.keypoint_scores, res.bbox_scores)
                if not keep.all():
                    res.keypoints, res.keypoint_scores = res.keypoints[keep], res.keypoint_scores[keep]
                    res.bboxes, res.bbox_scores = res.bboxes[keep], res.bbox_scores[keep]
                    if res.crops is not None:
                        res.crops = res.crops[keep]
                    if res.kept_tokens is not None:
                        res.kept_tokens = [t for t, k in zip(res.kept_tokens, keep) if k]
                res.track_ids = ids[keep]
            yield res

    def _exif_orientation(self, box_fn: Any) -> bool:
        """Whether images are read turned by their EXIF tag: with a detections json, as the protocol's official
        loader reads them (COCO's detections, like its annotations, are on the stored pixels: TokenPose, PPT and
        GTPT ignore the tag); otherwise turned, as a viewer shows them."""
        return self.protocol.exif_orientation if isinstance(box_fn, DetectionsFile) else True

    def __call__(self, source: str | Path | InputSource, boxes: BoxFn | str | Path | None = None,
                 bbox_thr: float = 0.3, show_tokens: bool = False, progress: bool = False,
                 strict: bool = False, det_every: int = 1,
                 smooth: FilterConfig | str | None = None) -> Iterator[FrameResult]:
        """Results for every image or frame of ``source``; ``boxes`` is a detections json path, a callable
        (frame -> (boxes xyxy, scores)) such as an :class:`~posetokens.inference.detector.ONNXDetector`,
        or None for the whole frame. A video or stream is tracked as :meth:`infer` tracks it (a
        :class:`~posetokens.inference.tracking.PoseTracker` at :attr:`default_kpt_thr`, unless ``boxes`` is one):
        each result carries its people's ``track_ids``; ``det_every`` and ``smooth`` act as in :meth:`infer` (None:
        the model's keypoints; the command line smooths videos with ``one_euro``). An image of a folder that
        cannot be read is skipped with a warning, as :meth:`infer` skips it (``strict``: a ``ValueError`` naming it
        ends the results there); a single image given that cannot be read is a ``ValueError``. Stop early with
        :func:`itertools.islice` (``infer``'s ``max_frames``)."""
        src = source if isinstance(source, InputSource) else open_input(source)
        base_fn = detections_for(boxes, src, bbox_thr)
        exif = self._exif_orientation(base_fn)
        smooth = as_filter(smooth, "smooth")
        check_run_options(src, det_every=det_every, smooth=smooth)
        box_fn = self._tracked(base_fn, src, det_every, self.default_kpt_thr)
        strict = check_flag(strict, "strict")

        bar = None

        def on_skip(path: Path, why: str) -> None:  # the generator ended at the first unreadable image
            warn(f"skipped {why}")
            if bar is not None:  # the bar counts it as done: it ends at its total
                bar.update(1)

        frames: Iterable[Frame] = src.frames(on_skip if src.kind == "images" and src.path.is_dir() and not strict
                                             else None, exif)  # one image given: its error
        if progress:  # updated by hand: tqdm's own iteration keeps its count apart and would drop the skips
            from tqdm import tqdm

            bar = tqdm(total=len(src) or None, unit="frame", desc=src.label)
            frames = _counted(frames, bar)
        return self._smoothed(self.run_frames(frames, box_fn, show_tokens), smooth, src, self.default_kpt_thr)

    def _tracked(self, base_fn: BoxFn, src: InputSource, det_every: int, kpt_thr: float) -> BoxFn:
        """The box function of a run: a video or stream's is tracked (a
        :class:`~posetokens.inference.tracking.PoseTracker` with the boxes every ``det_every`` frames), unless
        ``base_fn`` is a tracker already; images keep ``base_fn``."""
        from posetokens.inference.tracking import PoseTracker

        if isinstance(base_fn, PoseTracker):
            if det_every != 1:
                raise ValueError(f"{option('det_every')} {det_every} with a PoseTracker as boxes: give it to the "
                                 "PoseTracker (it runs its detector itself)")
            return base_fn
        if src.kind in ("video", "stream"):
            return PoseTracker(base_fn, det_every, kpt_thr=kpt_thr, **self.tracker_args())
        return base_fn

    def _smoothed(self, results: Iterable[FrameResult], smooth: FilterConfig | None, src: InputSource,
                  kpt_thr: float) -> Iterator[FrameResult]:
        """``results`` with each track's 2D keypoints filtered frame by frame by ``smooth`` (a causal
        :class:`~posetokens.inference.filters.FilterConfig`; None or off: untouched) at the video's rate and its
        frames' times; joints scored below ``kpt_thr`` follow the filter's ``gap`` rule."""
        if smooth is None or smooth.is_off:
            yield from results
            return
        filters: dict[int, tuple[Any, int]] = {}  # track id -> its filter, the last frame it was seen in
        rate = src.video.fps  # type: ignore[union-attr]
        for res in results:
            if res.track_ids is not None and len(res.track_ids):
                res.keypoints = np.stack([
                    self._track_filter(filters, int(tid), res, smooth, rate).step(kp, sc >= kpt_thr, res.time_s)
                    for tid, kp, sc in zip(res.track_ids, res.keypoints, res.keypoint_scores)
                ]).astype(res.keypoints.dtype)
            yield res

    def coco_results(self, res: FrameResult, image_id: int) -> list[dict[str, Any]]:
        """One frame's people as COCO keypoint results (``posetokens evaluate`` scores them): keypoints with
        per-joint scores, ``score`` and ``bbox_score`` (the box score; evaluation rescores), ``bbox`` (xywh) and
        ``area``, the padded box the protocol's OKS-NMS uses."""
        from posetokens.evaluation.coco import PERSON_CATEGORY

        out = []
        for k, s, (x1, y1, x2, y2), bs in zip(res.keypoints, res.keypoint_scores, res.bboxes, res.bbox_scores):
            _, scale = self.pipeline.box_center_scale([x1, y1, x2 - x1, y2 - y1])
            out.append({"image_id": int(image_id), "category_id": PERSON_CATEGORY,
                        "keypoints": np.concatenate([k, s[:, None]], axis=1).reshape(-1).tolist(),
                        "score": float(bs), "bbox_score": float(bs), "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": float(np.prod(scale))})
        return out

    def infer(self, source: str | Path | int | InputSource, out_dir: str | Path,
              boxes: BoxFn | str | Path | None = None,
              bbox_thr: float = 0.3, kpt_thr: float | None = None, show_tokens: bool = False, draw: bool = True,
              progress: bool | None = None, tokens_every: int = 25,
              coco_results: str | Path | None = None, strict: bool = False, det_every: int = 1,
              mmpose_preds: str | Path | None = None, max_frames: int | None = None,
              timer: Any = None, smooth: Any = None) -> dict[str, Any]:
        """Run on ``source`` and write results to ``out_dir``: ``<stem>.json`` per image (one record) or per video
        (a list of records, one per decoded frame); with ``draw`` the overlays ``<stem>.png`` / ``<stem>.mp4``;
        with ``show_tokens`` ``<stem>_tokens.png`` (videos: ``<stem>_tokens/frame_NNNNNN.png`` every
        ``tokens_every`` frames); with ``coco_results`` every person in the COCO results format
        (:meth:`coco_results`), which ``posetokens evaluate`` scores. Images of a folder that share a stem
        (``a.jpg``, ``a.png``) get ``<stem>_<ext>`` names instead. ``kpt_thr`` (the least keypoint score drawn)
        defaults to :attr:`default_kpt_thr`. ``smooth`` (a :class:`~posetokens.inference.filters.FilterConfig`
        or a filter name, ``one_euro``; None or ``off``: untouched, bit-identical; the command line's default for
        videos is ``one_euro``, so ``smooth="one_euro"`` writes what it writes) filters each track's 2D
        keypoints of a video or stream frame by frame (causal One-Euro, speed in half frame widths per second;
        joints scored below ``kpt_thr`` follow the filter's ``gap`` rule) before they are drawn and written;
        Savitzky-Golay needs future frames and is refused.

        Nothing is lost: an output that would overwrite an input (the image, video, detections file, detector or
        weights) is refused before anything runs; every file is written atomically; unreadable or truncated images
        are skipped, counted and named (``strict``: a ``ValueError`` at the first, after writing the earlier
        images' results); a video's JSON is streamed (a JSON array, one record per line) and, on SIGINT/SIGTERM,
        the JSON and the mp4 are finished for the frames done before :class:`~posetokens.runtime.Interrupted` is
        raised. Returns a summary: written files, frame / instance counts and ``skipped`` (``{file, reason}``).

        ``source`` may also be a live stream (a webcam index or a stream URL, :func:`is_stream`) or an
        :class:`InputSource` from :func:`open_input` (``loop=N``: a video file read as a stream): read frame by frame
        until it ends or SIGINT/SIGTERM, written like a video under :attr:`InputSource.stem` (``webcam0.json``).
        ``progress`` (a bar on stderr; for streams, without a total) defaults to on for videos and streams when
        stderr is a terminal; with it, the time of every stage is shown as it runs
        (:class:`~posetokens.inference.stages.StageTimer`; ``timer``: one to add to, as ``lift`` does) and the
        summary's ``stages`` holds the final figures.

        Videos and streams are tracked (:class:`~posetokens.inference.tracking.PoseTracker`): every instance gets
        a ``track_id``; ``det_every=N`` runs the person boxes (detector, detections file or whole frame) on frames
        0, N, 2N, ... only and carries each person's box from their pose in between. ``mmpose_preds``: also write
        an MMPose-style prediction file (:func:`mmpose_predictions`). ``max_frames``: stop after that many frames
        (images or video frames)."""
        from posetokens.inference.stages import StageTimer
        from posetokens.inference.tracking import PoseTracker

        draw, show_tokens = check_flag(draw, "draw"), check_flag(show_tokens, "show_tokens")  # "no" was True
        kpt_thr = self.default_kpt_thr if kpt_thr is None else kpt_thr
        if not (is_number(kpt_thr) and math.isfinite(kpt_thr)):  # failed at the first drawing, or never
            raise ValueError(f"{option('kpt_thr')}: expected a number (the least keypoint score drawn), got "
                             f"{short_repr(kpt_thr)}")
        if max_frames is not None:
            max_frames = check_count(max_frames, option("max_frames"))
        src = source if isinstance(source, InputSource) else open_input(source)
        video_like = src.kind in ("video", "stream")
        if show_tokens and not self.can_show_tokens:
            raise ValueError(f"{self.name} has no token pruning to show ({option('show_tokens')} needs a PPT or GTPT "
                             "model)")
        if show_tokens:  # a named onnxruntime cannot give them: said before the graph is exported
            from posetokens.inference.precision import check_model_choice

            check_model_choice(self.model, self.choice, show_tokens=True)
        out = Path(out_dir)
        stems = check_outputs(src, out, draw=draw, show_tokens=show_tokens, coco_results=coco_results,
                              mmpose_preds=mmpose_preds, boxes=boxes, weights=self.weights)
        base_fn = detections_for(boxes, src, bbox_thr)  # a bad detections file is refused before any folder is made
        exif = self._exif_orientation(base_fn)
        smooth = as_filter(smooth, "smooth")  # a name as --filter takes it; it failed on 'is_off'
        check_run_options(src, det_every=det_every, smooth=smooth)
        box_fn = self._tracked(base_fn, src, det_every, kpt_thr)
        if smooth is not None and smooth.is_off:
            smooth = None
        if coco_results is not None:  # the extra files' folders first: a refusal there leaves no empty --out
            writable_dir(Path(coco_results).parent, f"folder of {option('coco_results')}")
        if mmpose_preds is not None:
            writable_dir(Path(mmpose_preds).parent, f"folder of {option('mmpose_preds')}")
        writable_dir(out)
        progress = video_like and show_progress(progress)
        timer = timer if timer is not None else StageTimer(live=progress)
        mm_frames: list[dict[str, Any]] = []  # with mmpose_preds only
        track_ids: set[int] = set()
        written: list[str] = []
        skipped: list[dict[str, str]] = []
        frames = instances = 0
        writer: VideoWriter | None = None
        stream: JsonArrayWriter | None = None
        coco: list[dict[str, Any]] = []
        tag = self.provenance  # where the poses came from
        if video_like and src.video is not None:  # what `lift` of this json runs its filter and video at
            tag["fps"] = float(src.video.fps)
            if smooth is not None:  # so that `lift` of this json does not filter the 2D a second time
                tag["filter"] = {**smooth.describe(), "fps": smooth.fps or float(src.video.fps)}
        names = {"keypoint_names": list(self.metainfo.keypoint_names)}  # every image's record; a video's first

        stop: list[ValueError] = []

        def on_skip(path: Path, why: str) -> bool:
            if strict:  # stop reading; what came before is still written, then the error is raised
                stop.append(ValueError(f"{why} ({option('strict')} stops at the first unreadable image)"))
                return False
            skipped.append({"file": str(path), "reason": why})
            warn(f"skipped {why}")
            return True

        stopped: BaseException | None = None
        with interruptible():
            try:
                if video_like:
                    stream = JsonArrayWriter(out / f"{src.stem}.json")
                stream_frames = timer.timed(itertools.islice(src.frames(on_skip, exif), max_frames), "decode")
                if progress:
                    from tqdm import tqdm

                    total = min(len(src) or max_frames or 0, max_frames or len(src)) or None
                    stream_frames = tqdm(stream_frames, total=total, unit="frame", desc=src.label)
                    timer.attach(stream_frames)
                results = self.run_frames(stream_frames, box_fn, show_tokens, timer=timer)
                for res in self._smoothed(results, smooth, src, kpt_thr):
                    record = {**res.to_dict(), **tag, **(names if src.kind == "images" or not frames else {})}
                    if res.track_ids is not None:
                        track_ids.update(int(i) for i in res.track_ids)
                    mm_record = mmpose_frame(record, 1 + res.frame_id, not video_like) \
                        if mmpose_preds is not None else None
                    if coco_results is not None:
                        iid = res.frame_id if video_like else image_id_from_name(Path(res.img_path).name)
                        people = self.coco_results(res, iid)
                    if src.kind == "images":
                        stem = stems[src.images[res.frame_id]]
                        pictures = []
                        if draw:
                            pictures.append((out / f"{stem}.png", draw_frame(res, self.metainfo, kpt_thr)))
                        if show_tokens and len(res.bboxes):
                            pictures.append((out / f"{stem}_tokens.png", self.tokens_figure(res)))
                        with signals_deferred():  # one image's files are written (and counted) together
                            atomic_write_json(out / f"{stem}.json", record)
                            written.append(str(out / f"{stem}.json"))
                            for path, picture in pictures:
                                write_image(path, picture)
                                written.append(str(path))
                            frames, instances = frames + 1, instances + len(res.bboxes)
                            if mm_record is not None:
                                mm_frames.append(mm_record)
                            if coco_results is not None:
                                coco += people
                    else:
                        drawn = None
                        if draw:
                            with timer.stage("drawing"):
                                drawn = draw_frame(res, self.metainfo, kpt_thr)
                        if drawn is not None and writer is None:
                            fps = src.video.fps  # type: ignore[union-attr]
                            writer = VideoWriter(out / f"{src.stem}.mp4", fps, (res.width, res.height))
                        with signals_deferred():  # the mp4 and the json hold the same frames, all counted
                            if drawn is not None:
                                with timer.stage("encode"):
                                    writer.write(drawn, res.time_s)  # type: ignore[union-attr]
                            stream.append(record)  # type: ignore[union-attr]
                            frames, instances = frames + 1, instances + len(res.bboxes)
                            if mm_record is not None:
                                mm_frames.append(mm_record)
                            if coco_results is not None:
                                coco += people
                        timer.frame_done()
                        if show_tokens and len(res.bboxes) and res.frame_id % max(1, tokens_every) == 0:
                            tdir = out / f"{src.stem}_tokens"
                            tdir.mkdir(exist_ok=True)
                            write_image(tdir / f"frame_{res.frame_id:06d}.png", self.tokens_figure(res))
                            written.append(str(tdir / f"frame_{res.frame_id:06d}.png"))
            except BaseException as e:  # noqa: BLE001 (finish the files of what was done, then raise it again)
                stopped = e
            with signals_deferred(discard=isinstance(stopped, KeyboardInterrupt)):  # a second Ctrl-C waits
                video_closed = True
                if writer is not None:
                    try:
                        writer.close()
                    except Exception as e:  # noqa: BLE001 (the json is still finished; then it is raised)
                        stopped, video_closed = stopped or e, False
                if stream is not None:
                    if stream.count or stopped is None:
                        written.insert(0, str(stream.close()))
                    else:
                        stream.discard()
                if writer is not None and writer.frames and video_closed:
                    written.insert(1, str(writer.path))
                if coco_results is not None and (coco or stopped is None):
                    from posetokens.evaluation.coco import write_coco_results

                    with atomic_path(Path(coco_results)) as tmp:
                        write_coco_results(tmp, coco, self.metainfo.num_keypoints)
                    written.append(str(coco_results))
                if mmpose_preds is not None and (mm_frames or stopped is None):
                    atomic_write_json(Path(mmpose_preds), mmpose_predictions(self.metainfo, mm_frames))
                    written.append(str(mmpose_preds))
        if isinstance(stopped, KeyboardInterrupt):
            signum = getattr(stopped, "signum", signal.SIGINT)
            kept = f"the results of {frames} finished frame(s) are in {out}" if frames else "no frame was finished"
            raise Interrupted(signum, f"interrupted by {signal_name(signum)}: {kept}",
                              files=written if frames else ()) from None  # a video's: its results json first
        if stopped is not None:
            raise stopped
        if stop:
            raise ValueError(f"{stop[0]}; the results of the {frames} image(s) before it are in {out}")
        if skipped and not frames:
            raise ValueError(f"none of the {len(skipped)} input image(s) could be read: "
                             + "; ".join(s["reason"] for s in skipped[:3]) + (" ..." if len(skipped) > 3 else ""))
        uncovered = base_fn.warn_uncovered() if isinstance(base_fn, DetectionsFile) else 0
        if skipped:
            warn(f"skipped {len(skipped)} of {len(src.images)} image(s) that could not be read: "
                 + ", ".join(Path(s["file"]).name for s in skipped))
        return {"input": src.label if src.kind == "stream" else str(src.path), "kind": src.kind,
                "frames": frames, "instances": instances, "files": written,
                "skipped": skipped, "uncovered": uncovered, "stages": timer.summary(),
                "tracks": len(track_ids),
                "detector_frames": box_fn.detector_frames if isinstance(box_fn, PoseTracker) else frames}

    def tokens_figure(self, res: FrameResult, max_people: int = 6) -> np.ndarray:
        """One row per person (up to ``max_people``): the crop, then the patches kept at each pruning layer
        (BGR, ready for ``cv2.imwrite``)."""
        from posetokens.inference.visualize import draw_kept_tokens, tile_images

        max_people = check_count(max_people, "tokens_figure: max_people")
        if res.crops is None or res.kept_tokens is None:
            raise ValueError("tokens_figure needs a result computed with show_tokens=True")
        if not len(res.crops):
            raise ValueError(f"tokens_figure: {res.img_path} holds no person, so no kept tokens to show")
        grid = tuple(self.model.cfg.patch_grid)
        rows = [draw_kept_tokens(c, grid, kept, scale=2) for c, kept in zip(res.crops[:max_people], res.kept_tokens)]
        return np.ascontiguousarray(tile_images(rows, cols=1)[..., ::-1])


def mmpose_frame(record: dict[str, Any], frame_id: int, keep_path: bool = False) -> dict[str, Any]:
    """One frame of an MMPose-style prediction file: ``{"frame_id", "instances": [{"keypoints",
    "keypoint_scores", "bbox": [[x1, y1, x2, y2]], "bbox_score"(, "track_id")}]}`` (``bbox`` is a list holding
    one box, as MMPose's ``split_instances`` writes it); ``keep_path``: also the record's ``img_path`` (images)."""
    insts = [{"keypoints": i["keypoints"], "keypoint_scores": i["keypoint_scores"], "bbox": [i["bbox"]],
              "bbox_score": i["bbox_score"], **({"track_id": i["track_id"]} if "track_id" in i else {})}
             for i in record["instances"]]
    out: dict[str, Any] = {"frame_id": int(frame_id), "instances": insts}
    if keep_path and "img_path" in record:
        out["img_path"] = record["img_path"]
    return out


def mmpose_meta_info(meta: PoseMetaInfo) -> dict[str, Any]:
    """The dataset metainfo as MMPose's ``parse_pose_metainfo`` gives it (``dataset_name``, ``num_keypoints``,
    ``keypoint_id2name``, ``keypoint_name2id``, ``upper_body_ids``, ``lower_body_ids``, ``flip_indices``,
    ``flip_pairs``, ``keypoint_colors``, ``num_skeleton_links``, ``skeleton_links``, ``skeleton_link_colors``,
    ``dataset_keypoint_weights``, ``sigmas``), arrays as plain lists; colours RGB."""
    names = list(meta.keypoint_names)
    sig = meta.sigmas_array
    return {"dataset_name": meta.name, "num_keypoints": meta.num_keypoints,
            "keypoint_id2name": {str(i): n for i, n in enumerate(names)},
            "keypoint_name2id": {n: i for i, n in enumerate(names)},
            "upper_body_ids": list(meta.upper_body_ids), "lower_body_ids": list(meta.lower_body_ids),
            "flip_indices": list(meta.flip_indices), "flip_pairs": [list(p) for p in meta.flip_pairs],
            "keypoint_colors": [list(c) for c in meta.keypoint_colors], "num_skeleton_links": len(meta.skeleton),
            "skeleton_links": [list(p) for p in meta.skeleton],
            "skeleton_link_colors": [list(c) for c in meta.link_colors],
            "dataset_keypoint_weights": [1.0] * meta.num_keypoints if meta.joint_weights is None
            else np.asarray(meta.joint_weights, np.float64).round(6).tolist(),
            "sigmas": [] if sig is None else np.asarray(sig, np.float64).round(6).tolist()}


def mmpose_predictions(meta: PoseMetaInfo, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """An MMPose-style prediction file, as MMPose 1.x's ``demo/topdown_demo_with_mmdet.py --save-predictions``
    writes it: ``{"meta_info": mmpose_meta_info(meta), "instance_info": [mmpose_frame(...), ...]}``; video frame
    ids count from 1, as that demo counts them (our per-frame json counts from 0)."""
    return {"meta_info": mmpose_meta_info(meta), "instance_info": frames}


@contextlib.contextmanager
def _no_stage(name: str) -> Iterator[None]:
    """A stage clock that times nothing (no :class:`~posetokens.inference.stages.StageTimer` given)."""
    yield


def note_earlier_overlays(src: InputSource, out: str | Path, max_frames: int | None = None) -> None:
    """Say (one note line) that ``out`` holds an earlier run's overlays of the inputs a run without drawing will
    write results for (``infer --no-draw``): its new json would otherwise sit beside an overlay of other frames."""
    inputs = src.images[:max_frames] if src.kind == "images" else []
    stems = _output_stems(src)
    drawn = [Path(out) / f"{stems[i]}.png" for i in inputs] if src.kind == "images" else \
        [Path(out) / f"{src.stem}.mp4"]
    stale = [p for p in drawn if p.is_file()]
    if stale:
        which = f"{stale[0]} and {len(stale) - 1} more: earlier runs' overlays" if len(stale) > 1 else \
            f"{stale[0]}: an earlier run's overlay"
        note(f"{which}, left as {'they are' if len(stale) > 1 else 'it is'} (this run draws none)")


def check_run_options(src: InputSource, *, det_every: int = 1, smooth: Any = None, max_frames: Any = None) -> None:
    """Refuse a ``det_every`` or ``max_frames`` that is not a whole number >= 1, the :meth:`PoseEstimator.infer`
    options that need frames in time when ``src`` is images (a ``det_every`` other than 1, a temporal filter) and a
    filter that cannot run frame by frame (Savitzky-Golay). Needs no model, so the ``infer`` command runs it before
    it builds one (no random-weights note first)."""
    check_count(det_every, option("det_every"))
    if max_frames is not None:
        check_count(max_frames, option("max_frames"))
    video_like = src.kind in ("video", "stream")
    if det_every != 1 and not video_like:
        raise ValueError(f"{option('det_every')} applies to videos and streams; {src.path} is {src.kind}")
    if smooth is not None and not smooth.is_off:
        if not video_like:
            raise ValueError(f"a temporal filter applies to videos and streams; {src.path} is {src.kind} "
                             f"(use {option('smooth', 'off')})")
        smooth.stream(fps=25.0)  # refuses Savitzky-Golay (it needs the future) before anything runs


def detections_for(boxes: BoxFn | str | Path | None, src: InputSource, bbox_thr: float = 0.3) -> BoxFn:
    """The person-box function of :meth:`PoseEstimator.infer`'s ``boxes``: the whole frame for None, a
    :class:`DetectionsFile` read and checked against ``src`` for a path (one-line errors for a bad file or one that
    matches no input), a callable as it is. Needs no model (the ``infer`` command reads the file before it builds
    one, and hands ``infer`` the result)."""
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
def _output_stems(src: InputSource) -> dict[Path, str]:
    """The output stem of every input image: its own stem, or ``<stem>_<ext>`` when images of the folder share
    a stem (``a.jpg`` and ``a.png`` would both write ``a.json``)."""
    if src.kind != "images":
        return {}
    count = Counter(p.stem for p in src.images)
    return {p: p.stem if count[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}" for p in src.images}


def check_outputs(src: InputSource, out: str | Path, *, draw: bool = True, show_tokens: bool = False,
                  coco_results: str | Path | None = None, mmpose_preds: str | Path | None = None, boxes: Any = None,
                  weights: str | Path | None = None) -> dict[Path, str]:
    """Refuse the outputs of :meth:`PoseEstimator.infer` that would overwrite an input (the pictures, the video,
    the detections file, the detector, ``weights``) or each other, an ``out`` that is the input folder of images
    or the folder holding an input image or video file (a file of the user's there would be overwritten),
    and COCO results whose images lack distinct ids; return each input image's output stem. Needs no model, so
    the ``infer`` command runs it before it builds one (no random-weights note before a refusal)."""
    out = Path(out)
    if src.kind == "images" and src.path.is_dir() and same_file(src.path, out):
        raise ValueError(f"the output folder {out} is the input folder {src.path}: its overlays would overwrite "
                         "input pictures of the same name and be read as inputs by the next run; choose another "
                         f"{option('out_dir')}")
    stems = _output_stems(src)
    outputs: list[tuple[str, Path, str]] = []  # (what, path, the remedy for a clash with an input)
    remedy = f"give {option('out_dir')} another folder"
    replaced: list[tuple[Any, str, Any, str]] = []  # a file named by the user, replaced only if it is one of ours
    if src.kind == "images":
        for img in src.images:
            outputs.append(("result json", out / f"{stems[img]}.json", remedy))
            if draw:
                outputs.append(("overlay picture", out / f"{stems[img]}.png", remedy))
            if show_tokens:
                outputs.append(("tokens picture", out / f"{stems[img]}_tokens.png", remedy))
    else:
        outputs.append(("result json", out / f"{src.stem}.json", remedy))
        if draw:
            outputs.append(("overlay video", out / f"{src.stem}.mp4", remedy))
        if show_tokens:
            outputs.append(("tokens folder", out / f"{src.stem}_tokens", remedy))
    if coco_results is not None:
        if Path(coco_results).is_dir() or str(coco_results).endswith(("/", os.sep)):
            raise ValueError(f"{option('coco_results', coco_results)} is a folder; expected a json file path")
        if Path(coco_results).resolve() == Path(out).resolve():  # not a folder yet: --out makes it one
            raise ValueError(f"{option('coco_results', coco_results)} is the {option('out_dir')} folder; expected "
                             "a json file path (e.g. "
                             f"{Path(out) / 'coco_results.json'})")
        replaced.append((coco_results, option("coco_results"), looks_like_coco_results,
                         f"a COCO keypoint results file (a JSON list, what {option('coco_results')} writes)"))
        outputs.append(("COCO results file", Path(coco_results), f"choose another {option('coco_results')} path"))
        if src.kind == "images":  # every image needs its own id, checked before anything runs
            ids: dict[int, Path] = {}
            for p in src.images:
                iid = image_id_from_name(p.name)
                if iid is None:
                    raise ValueError(f"{p}: COCO results need an image id in the file name (e.g. "
                                     "000000000785.jpg)")
                if iid in ids:
                    raise ValueError(f"{p} and {ids[iid]} both name image id {iid}: their COCO results would "
                                     "merge; rename one")
                ids[iid] = p
    if mmpose_preds is not None:
        if Path(mmpose_preds).is_dir() or str(mmpose_preds).endswith(("/", os.sep)):
            raise ValueError(f"{option('mmpose_preds', mmpose_preds)} is a folder; expected a json file path")
        if Path(mmpose_preds).resolve() == Path(out).resolve():  # not a folder yet: --out makes it one
            raise ValueError(f"{option('mmpose_preds', mmpose_preds)} is the {option('out_dir')} folder; expected a "
                             "json file path (e.g. "
                             f"{Path(out) / 'mmpose_preds.json'})")
        replaced.append((mmpose_preds, option("mmpose_preds"), looks_like_mmpose_preds,
                         f"an MMPose prediction file (what {option('mmpose_preds')} writes)"))
        outputs.append(("MMPose prediction file", Path(mmpose_preds), f"choose another {option('mmpose_preds')} path"))
    inputs: list[tuple[str, Any]] = [("input image", p) for p in src.images] if src.kind == "images" else \
        [("input video", src.path if src.kind == "video" or not src.video.live else None)]  # type: ignore
    inputs += [("detections file", boxes if isinstance(boxes, (str, Path)) else None),
               ("detector", getattr(boxes, "path", None)), ("weights", weights)]
    check_no_overwrite(inputs, outputs)
    for path, what, head, kind in replaced:
        check_replaceable(path, what, head, kind)
    check_output_kinds(outputs)  # a file where the tokens folder goes failed after the first frame
    if src.path.is_file():  # one image, a video, or a video file read as a stream (--loop)
        check_out_beside_input(src.path, out, [p.name for _, p, _ in outputs if p.parent == out])
    return stems


def check_out_beside_input(path: Path, out: str | Path, names: Sequence[str]) -> None:
    """Refuse an output folder ``out`` that holds the input file ``path``: outputs ``names`` written beside it
    would overwrite the user's files of those names there, and a later run on the folder would read them as
    inputs."""
    if same_file(path.parent, out):
        raise ValueError(f"the output folder {out} holds the input {path.name}: its outputs ({', '.join(names)}) "
                         "would overwrite files of those names beside it and be read as inputs by a run on the "
                         f"folder; choose another {option('out_dir')}")


def draw_frame(res: FrameResult, metainfo: PoseMetaInfo | str, kpt_thr: float | None = None,
               boxes: bool = True) -> np.ndarray:
    """The frame (BGR) with every person's box and skeleton (links and colours from ``metainfo``); a tracked
    person's box is drawn in their track's colour, with their id. Keypoints scoring below ``kpt_thr`` are left
    out (None: ``res.kpt_thr``, the estimator's threshold for its codec's scores, 0.03 for GTPT's)."""
    kpt_thr = res.kpt_thr if kpt_thr is None else kpt_thr
    if not (is_number(kpt_thr) and math.isfinite(kpt_thr)):
        raise ValueError(f"draw_frame: kpt_thr must be a finite number (the least score drawn), got "
                         f"{short_repr(kpt_thr)}")
    from posetokens.inference.visualize import draw_skeleton, draw_track_label, track_colour

    if res.image is None:
        raise ValueError("draw_frame needs the frame image (keep_images=True)")
    canvas = res.image.copy()
    t = max(1, round(min(res.width, res.height) / 300))
    colours = [(0, 200, 0)] * len(res.bboxes) if res.track_ids is None else \
        [track_colour(int(i), "bgr") for i in res.track_ids]
    if boxes:  # clipped just beyond the frame (the visible lines are the same): far-off ones overflowed cv2's ints
        edge = np.array([res.width, res.height] * 2) + t + 2
        for (x1, y1, x2, y2), c in zip(np.clip(np.round(res.bboxes), -t - 2, edge).astype(int), colours):
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), c, t, cv2.LINE_AA)
    if len(res.keypoints):
        canvas = draw_skeleton(canvas, res.keypoints, res.keypoint_scores, metainfo, kpt_thr=kpt_thr, channel_order="bgr")
    if res.track_ids is not None:
        for b, tid, c in zip(res.bboxes, res.track_ids, colours):
            canvas = draw_track_label(canvas, np.array([[(b[0] + b[2]) / 2, b[1] + 14]]), f"id {int(tid)}", c)
    return canvas


def load_results(path: str | Path, max_frames: int | None = None) -> list[dict[str, Any]]:
    """Frame records from a results json written by ``infer`` (a list, or one image's record), checked; with
    ``max_frames`` the first that many only. A video's ``.partial`` file left by a killed run (a JSON array without
    its closing ``]``) gives its complete records, with a warning."""
    try:
        data = read_json(path, "2D keypoints")
    except ValueError:
        try:
            data, dropped = read_json_array_lines(path, "2D keypoints")
        except ValueError:
            data = None
        if not data:
            raise
        warn(f"{path}: an unfinished results file (a run that was killed?): read its {len(data)} complete "
             f"record(s){'; dropped a half-written last line' if dropped else ''}")
    if isinstance(data, dict) and "instance_info" in data and "instances" not in data:  # said: no 'instances'
        raise ValueError(f"{path}: an MMPose prediction file (meta_info, instance_info: what infer --mmpose-preds "
                         "writes); expected infer's results json, a list of {frame_id, instances} records "
                         "(<stem>.json)")
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: expected a list of {{frame_id, instances}} records (or one record)")
    records = records if max_frames is None else records[:check_count(max_frames, "max_frames")]
    for i, r in enumerate(records):
        if not isinstance(r, dict) or "instances" not in r or not isinstance(r["instances"], list):
            raise ValueError(f"{path}: record {i} has no 'instances' list (expected {{frame_id, instances: [...]}})")
        for j, inst in enumerate(r["instances"]):
            if not isinstance(inst, dict):
                raise ValueError(f"{path}: record {i} instance {j} is not an object (expected {{keypoints, "
                                 "keypoint_scores, bbox, bbox_score})")
            for key in ("keypoints", "keypoint_scores"):
                if key not in inst:
                    raise ValueError(f"{path}: record {i} instance {j} has no {key!r} field")
            bs, box = inst.get("bbox_score"), inst.get("bbox")
            if bs is not None and not (is_number(bs) and math.isfinite(bs)):
                raise ValueError(f"{path}: record {i} instance {j}: 'bbox_score' = {short_repr(bs)}; expected a finite "
                                 "number (null or none: 1)")
            if isinstance(box, list) and len(box) == 1 and isinstance(box[0], list):
                box = box[0]  # MMPose's one box in a list ([[x1, y1, x2, y2]], what --mmpose-preds writes)
            if box is not None and not (isinstance(box, list) and len(box) == 4 and all(map(is_number, box))):
                raise ValueError(f"{path}: record {i} instance {j}: 'bbox' = {short_repr(inst['bbox'])}; expected "
                                 "[x1, y1, x2, y2] or MMPose's [[x1, y1, x2, y2]] (null or none: the keypoints' "
                                 "extent)")
        if "frame_id" in r and not is_whole(r["frame_id"]):
            raise ValueError(f"{path}: record {i}: 'frame_id' = {short_repr(r['frame_id'])}; expected a whole number "
                             "(none: the record's place in the list)")
        for key in ("width", "height"):
            if key in r and not (is_whole(r[key]) and r[key] >= 1):
                raise ValueError(f"{path}: record {i}: {key!r} = {short_repr(r[key])}; expected a whole number of "
                                 "pixels >= 1")
    # the records are the frames in the order shown: a repeated or earlier id is refused, a skipped frame said
    ids = [int(r.get("frame_id", i)) for i, r in enumerate(records)]
    steps = np.diff(np.array(ids, np.int64))
    if (steps < 1).any():
        i = int(np.argmax(steps < 1)) + 1
        def named(j: int) -> str:
            return f"'frame_id' = {ids[j]}" if "frame_id" in records[j] else f"no 'frame_id' (its place, {j})"

        raise ValueError(f"{path}: record {i}: {named(i)} after record {i - 1}'s {named(i - 1)}; expected increasing "
                         "frame ids, one record per frame, in the order the frames were shown")
    if (steps > 1).any():
        i = int(np.argmax(steps > 1)) + 1
        warn(f"{path}: the frame ids skip {int((steps - 1).sum())} frame(s) (the first after frame {ids[i - 1]}): "
             "the records are lifted as consecutive frames")
    return records


def stack_instances(records: Sequence[dict[str, Any]], num_keypoints: int, path: str = "results") -> list[dict]:
    """Validate every instance: (K, 2) keypoints and (K,) scores, all finite (one line naming the record, the
    instance and the first keypoint that is not)."""
    for i, r in enumerate(records):
        for j, inst in enumerate(r["instances"]):
            arrays = []
            for key, shape in (("keypoints", f"({num_keypoints}, 2) [x, y] pairs"), ("keypoint_scores",
                                                                                     f"({num_keypoints},) scores")):
                try:  # text: float64 would read the digits of "12.5"
                    arrays.append(number_array(inst[key], path, shape))
                except ValueError:
                    raise ValueError(f"{path}: record {i} instance {j}: {key!r} = {short_repr(inst[key])}; expected "
                                     f"numbers, {shape}") from None
            k, s = arrays
            if k.shape != (num_keypoints, 2) or s.shape != (num_keypoints,):
                raise ValueError(f"{path}: record {i} instance {j}: keypoints {k.shape} / keypoint_scores {s.shape}, "
                                 f"expected ({num_keypoints}, 2) / ({num_keypoints},)")
            for key, bad in (("keypoints", ~np.isfinite(k).all(axis=1)), ("keypoint_scores", ~np.isfinite(s))):
                if bad.any():
                    n = int(bad.argmax())
                    raise ValueError(f"{path}: record {i} instance {j}: '{key}'[{n}] = "
                                     f"{np.asarray(inst[key], np.float64)[n].tolist()} is not finite; expected "
                                     "finite numbers (a joint that was not found keeps its position with a low score)")
    return list(records)
