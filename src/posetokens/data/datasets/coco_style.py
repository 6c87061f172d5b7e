"""Top-down datasets over COCO-format keypoint json files (COCO, COCO-WholeBody, CrowdPose, custom).

The classes here only parse annotations into per-instance dicts and load images; cropping, flipping
and target encoding belong to the ``transform`` callable given in.

Item dict (what :meth:`TopDownDataset.get_data_info` returns; ``__getitem__`` adds ``img`` (H, W, 3)
uint8 **RGB** and ``img_shape`` (h, w), then applies ``transform``):

=====================  =========================================================================
``img_path``           str, image file
``img_id``             int, COCO image id
``id``                 int, annotation id (GT boxes) or running index of the detection (det boxes)
``category_id``        int
``bbox``               float64 (4,), **xywh** in pixels (float64, as the official loaders: float32 moves a
                       box centre by up to 1e-4 px on a 2000-px image)
``bbox_score``         float (1.0 for GT boxes, the detector score otherwise)
``keypoints``          float64 (K, 2), pixels, 0-based
``keypoints_visible``  float32 (K,), ``min(1, v)`` of the COCO visibility (0 = not labelled)
``area``               float (GT ``area``; ``w*h`` of the box when the json has none / detections)
``num_keypoints``      int, labelled joints after the out-of-image marking below
``ori_shape``          (h, w) from the json's image entry
``crowd_index``        float, only when the image entry has ``crowdIndex`` (CrowdPose)
=====================  =========================================================================

Documented cleaning (every case is counted in ``dataset.skipped`` / ``dataset.marked`` and logged once):

* GT boxes are cleaned by the rule ``gt_clean`` (a protocol's ``BoxRule.gt_clean``; :func:`clean_gt_bbox`):
  ``mmpose`` (the default; MMPose 1.x) clips to ``[0, W-1] × [0, H-1]``, ``hrnet`` (TokenPose/PPT) and
  ``hrnet_w_minus_1`` (GTPT) are the official HRNet-era ``x2 = min(W-1, x1 + max(0, w-1))`` clip, ``mmpose0``
  (PCT) mmpose 0.x's ``x2 = min(W-1, x1 + max(0, w))``, ``none`` keeps the raw box. A box the rule rejects is
  skipped (``'zero_area_bbox'``). Detection boxes are never cleaned.
* GT boxes of a category whose ``categories`` entry lists no keypoints (a 'dog' beside the person), where some
  entry lists them, are no people: skipped (``'other_category'``), as the official HRNet loader keeps only the
  person category.
* train mode, GT boxes: skip ``iscrowd`` annotations (``'crowd'``), rejected boxes, and annotations without
  keypoints (``'no_visible_keypoints'``): with ``mmpose``/``none``, no labelled joint left after the marking below;
  with the official rules (``hrnet``, ``hrnet_w_minus_1``, ``mmpose0``) all keypoint values 0 (``mmpose0`` also
  ``num_keypoints == 0``), which the official loaders apply to GT boxes at test time too.
* test mode without a detection file: GT boxes; skip ``'crowd'`` and rejected boxes (and, with an official rule,
  annotations without keypoints).
* test mode with detections: keep detections with ``score >= det_score_thr`` (``'low_score_detection'``
  counts the others), of category ``det_category_id`` (``'other_category'``) and with a positive box
  (``'zero_area_bbox'``).
* Visibility is ``min(v, 1)``. With ``mmpose``/``none`` a labelled joint outside ``[0, W) × [0, H)`` keeps its
  coordinates but gets ``keypoints_visible = 0``; ``marked['keypoints_outside_image']`` counts such joints. The
  official rules keep it visible, as the official loaders do.
* With ``skip_bad_images=True`` a missing/corrupt image is counted once per file in
  ``skipped['bad_image']`` and the next item is returned instead (DataLoader workers write one table in shared
  memory, so the count is the same with workers). A picture read at another size than its json entry's
  ``width``/``height`` is a bad image too (``skipped['image_size_mismatch']``; without ``skip_bad_images``, and
  always in test mode, a ``ValueError`` naming both sizes), unless its EXIF tag swaps width and height under
  ``exif_orientation=True`` (MMPose's reading). Every picture read turned by its EXIF tag is marked once
  (``marked['exif_turned_image']``).

CrowdPose is ``CocoStyleDataset(ann_file, img_dir, 'crowdpose')``: its json has no ``area``, so
``area`` falls back to the box area.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import cv2
import numpy as np

from posetokens.fileio import read_json
from posetokens.runtime import check_count, is_whole, short_repr
import torch
from torch.utils.data import Dataset

__all__ = [
    "COCO_WHOLEBODY_FIELDS",
    "GT_CLEAN_RULES",
    "CocoStyleDataset",
    "TopDownDataset",
    "clean_gt_bbox",
    "imread_flags",
    "load_image",
    "read_json",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
COCO_WHOLEBODY_FIELDS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


GT_CLEAN_RULES = ("hrnet", "hrnet_w_minus_1", "mmpose0", "mmpose", "none")
_OFFICIAL_RULES = ("hrnet", "hrnet_w_minus_1", "mmpose0")


def clean_gt_bbox(bbox: Any, image_size_hw: tuple[int, int] | None, rule: str = "mmpose",
                  area: float | None = None) -> np.ndarray | None:
    """Clean a GT ``[x, y, w, h]`` box by a protocol's ``BoxRule.gt_clean`` rule; ``None`` when it rejects the box.

    * ``hrnet`` (TokenPose/PPT ``COCODataset._load_coco_keypoint_annotation_kernal``): ``x1 = max(0, x)``,
      ``y1 = max(0, y)``, ``x2 = min(W-1, x1 + max(0, w-1))``, ``y2 = min(H-1, y1 + max(0, h-1))``; kept if
      ``area > 0`` and ``x2 >= x1`` and ``y2 >= y1``; box ``[x1, y1, x2-x1+1, y2-y1+1]`` (``w`` unchanged inside
      the image).
    * ``hrnet_w_minus_1`` (GTPT): the same clip, box ``[x1, y1, x2-x1, y2-y1]`` (``w - 1``).
    * ``mmpose0`` (mmpose 0.x, PCT): ``x2 = min(W-1, x1 + max(0, w))``, box ``[x1, y1, x2-x1, y2-y1]``; kept if
      ``area > 0`` and ``x2 > x1`` and ``y2 > y1``.
    * ``mmpose`` (MMPose 1.x): ``x1 = clip(x, 0, W-1)``, ``x2 = clip(x + w, 0, W-1)``, box ``[x1, y1, x2-x1,
      y2-y1]``; kept if both sides are positive.
    * ``none``: the raw box, kept if both sides are positive.

    Args:
        bbox: (4,) ``[x, y, w, h]``.
        image_size_hw: ``(H, W)`` of the image; ``None`` (unknown) leaves the far sides unclipped.
        rule: one of :data:`GT_CLEAN_RULES`.
        area: the annotation's ``area`` (the official rules need ``area > 0``); ``None`` uses ``w * h``.
    Returns:
        float64 (4,) box, or ``None``.
    """
    if rule not in GT_CLEAN_RULES:
        raise ValueError(f"gt_clean rule must be one of {list(GT_CLEAN_RULES)}, got {rule!r}")
    b = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if b.shape != (4,):
        raise ValueError(f"bbox must be [x, y, w, h], got shape {np.shape(bbox)}")
    x, y, w, h = (float(v) for v in b)
    if rule == "none":
        return b.copy() if w > 0 and h > 0 else None
    H, W = (math.inf, math.inf) if image_size_hw is None else (float(image_size_hw[0]), float(image_size_hw[1]))
    if rule == "mmpose":
        if image_size_hw is None:  # nothing to clip to
            return b.copy() if w > 0 and h > 0 else None
        x1, y1 = min(max(x, 0.0), W - 1), min(max(y, 0.0), H - 1)
        x2, y2 = min(max(x + w, 0.0), W - 1), min(max(y + h, 0.0), H - 1)
        return np.array([x1, y1, x2 - x1, y2 - y1]) if x2 > x1 and y2 > y1 else None
    a = w * h if area is None else float(area)
    x1, y1 = max(0.0, x), max(0.0, y)
    if rule == "mmpose0":
        x2, y2 = min(W - 1, x1 + max(0.0, w)), min(H - 1, y1 + max(0.0, h))
        return np.array([x1, y1, x2 - x1, y2 - y1]) if a > 0 and x2 > x1 and y2 > y1 else None
    x2, y2 = min(W - 1, x1 + max(0.0, w - 1)), min(H - 1, y1 + max(0.0, h - 1))
    if not (a > 0 and x2 >= x1 and y2 >= y1):
        return None
    plus = 1.0 if rule == "hrnet" else 0.0
    return np.array([x1, y1, x2 - x1 + plus, y2 - y1 + plus])


# -------------------------------------------------------------------------------------------- I/O
def image_problem(data: bytes) -> str | None:
    """Why encoded image bytes cannot be trusted, or None. JPEGs are walked marker by marker from start-of-image
    to end-of-image (OpenCV decodes a truncated JPEG without an error, its missing part grey); other formats are
    left to the decoder, which refuses truncated PNG, BMP, TIFF and WebP files."""
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        return None  # not a JPEG
    i = 2
    while True:
        if i >= n:
            return "truncated JPEG (the file ends before its end-of-image marker)"
        if data[i] != 0xFF:
            return f"corrupt JPEG (byte {i} is not a marker)"
        while i < n and data[i] == 0xFF:  # fill bytes before a marker
            i += 1
        if i >= n:
            continue
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI
            return None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a segment
            continue
        if i + 2 > n:
            i = n
            continue
        length = (data[i] << 8) | data[i + 1]
        if length < 2:
            return f"corrupt JPEG (segment 0xFF{marker:02X} at byte {i - 2} has length {length})"
        i += length
        if marker != 0xDA:
            continue
        while True:  # SOS: entropy-coded data runs to the next marker other than a stuffed 0xFF00 or RSTn
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                i = n
                break
            nxt = data[j + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                i = j + 2
            elif nxt == 0xFF:
                i = j + 1
            else:
                i = j
                break


def exif_orientation_tag(data: bytes) -> int:
    """The EXIF orientation tag (1-8; 1: as stored, 3: turned 180 degrees, 5-8: width and height swapped) of JPEG
    bytes, or 1 when there is none (other formats, no EXIF segment, a malformed one): what OpenCV's ``IMREAD_COLOR``
    turns the picture by."""
    if data[:2] != b"\xff\xd8":
        return 1
    i, n = 2, len(data)
    while i + 4 <= n and data[i] == 0xFF:
        while i + 1 < n and data[i + 1] == 0xFF:  # fill bytes before the marker
            i += 1
        if i + 4 > n:
            return 1
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xDA, 0xD9) or length < 2:  # image data, or the end: no EXIF before it
            return 1
        seg = data[i + 4:i + 2 + length]
        if marker == 0xE1 and seg[:6] == b"Exif\x00\x00":
            tiff = seg[6:]
            order = {b"II": "little", b"MM": "big"}.get(bytes(tiff[:2]))
            if order is None or len(tiff) < 8:
                return 1
            ifd = int.from_bytes(tiff[4:8], order)
            count = int.from_bytes(tiff[ifd:ifd + 2], order) if ifd + 2 <= len(tiff) else 0
            for e in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
                if int.from_bytes(tiff[e:e + 2], order) == 0x0112:
                    tag = int.from_bytes(tiff[e + 8:e + 10], order)
                    return tag if 1 <= tag <= 8 else 1
            return 1
        i += 2 + length
    return 1


def imread_flags(exif_orientation: bool = True) -> int:
    """OpenCV's read flags for a colour picture turned by its EXIF orientation tag (``IMREAD_COLOR``, as mmcv reads),
    or read as stored (``| IMREAD_IGNORE_ORIENTATION``, as the HRNet loader reads): :func:`load_image`'s choice."""
    return cv2.IMREAD_COLOR | (0 if exif_orientation else cv2.IMREAD_IGNORE_ORIENTATION)


class ImageSizeMismatch(ValueError):
    """A picture read at another size than its json entry's ``width``/``height``."""


def load_image(path: PathLike, exif_orientation: bool = True) -> np.ndarray:
    """Read an image with OpenCV and return it as ``(H, W, 3)`` uint8 **RGB**. ``exif_orientation``: turned as
    its EXIF orientation tag says (OpenCV's ``IMREAD_COLOR``, which mmcv and MMPose read with), or False: as
    stored (``IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION``, the HRNet loader TokenPose, PPT and GTPT read with; COCO's
    annotations are on the stored pixels). A protocol declares which (``Protocol.exif_orientation``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot decode it (corrupt, truncated or not an image).
    """
    return _load_image(path, exif_orientation)[0]


def _load_image(path: PathLike, exif_orientation: bool = True) -> tuple[np.ndarray, int]:
    """:func:`load_image`, and the picture's EXIF orientation tag (:func:`exif_orientation_tag`)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    data = p.read_bytes()
    problem = image_problem(data)  # OpenCV decodes a truncated JPEG without an error, its end grey
    if problem is not None:
        raise ValueError(f"{p}: {problem}")
    img = cv2.imread(str(p), imread_flags(exif_orientation))
    if img is None or img.size == 0:
        raise ValueError(f"cannot decode image (corrupt, truncated or not an image): {p}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), exif_orientation_tag(data)


def _numeric(value: Any, where: str, field: str, size: int | None = None) -> np.ndarray:
    """``value`` as a finite float64 vector (of ``size`` values), else ``ValueError`` naming the field."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: field '{field}' is not numeric ({e})") from e
    if size is not None and arr.size != size:
        raise ValueError(f"{where}: field '{field}' has {arr.size} values, expected {size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: field '{field}' contains NaN or inf")
    return arr


def check_image_ids(images: Sequence[Any], name: str) -> dict[int, int]:
    """Each image's ``id`` of a COCO-format ``images`` list, checked: an integer, and given once (a repeated id
    paired one image's people with another picture). Returns {index in the list: id}; ``ValueError`` naming the
    file ``name``, the item and the field."""
    first: dict[int, int] = {}
    for i, img in enumerate(images):
        iid = img.get("id") if isinstance(img, Mapping) else None
        if not is_whole(iid):
            raise ValueError(f"{name}: images[{i}]: field 'id' must be an integer, got {short_repr(iid)}")
        j = first.setdefault(int(iid), i)
        if j != i:
            raise ValueError(f"{name}: images[{i}]: field 'id' = {iid} repeats images[{j}]'s; expected one id per "
                             "image (its people would be paired with the other picture)")
    return {i: iid for iid, i in first.items()}


def category_ids(data: Mapping[str, Any], name: str) -> set[int] | None:
    """The category ids a COCO-format json lists (None: it has no ``categories``); ``ValueError`` for an entry
    without an integer ``id``."""
    cats = data.get("categories")
    if cats is None:
        return None
    if not isinstance(cats, list):
        raise ValueError(f"{name}: top-level 'categories' must be a list of objects, got {type(cats).__name__}")
    for i, cat in enumerate(cats):
        if not (isinstance(cat, Mapping) and is_whole(cat.get("id"))):
            raise ValueError(f"{name}: categories[{i}]: expected an object with an integer 'id', got {short_repr(cat)}")
    return {int(c["id"]) for c in cats}


def _require(d: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    """Refuse (one line naming ``where`` and the key) a JSON object that lacks one of ``keys``."""
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
    for k in keys:
        if k not in d:
            raise ValueError(f"{where}: missing field '{k}'")


def _resolve_metainfo(metainfo: Any) -> Any:
    """A dataset's metainfo from a name, a skeleton file or a :class:`PoseMetaInfo` (returned as given)."""
    if isinstance(metainfo, str):
        from posetokens.data.metainfo import get_metainfo

        return get_metainfo(metainfo)
    if not hasattr(metainfo, "num_keypoints"):
        raise TypeError(f"metainfo must be a name or a PoseMetaInfo, got {type(metainfo).__name__}")
    return metainfo


# ------------------------------------------------------------------------------------------- base
class TopDownDataset(Dataset):
    """Shared base: a list of instance dicts, lazy image loading, bad-image skipping, skip counters."""

    def __init__(self, transform: Callable[[dict[str, Any]], Any] | None, skip_bad_images: bool,
                 exif_orientation: bool = True) -> None:
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.exif_orientation = exif_orientation  # images turned by their EXIF tag (load_image)
        self.mode = "train"  # or "test" (set by the subclass): an evaluation never skips an image
        self.data_list: list[dict[str, Any]] = []
        self._skipped: dict[str, int] = {}  # counted while loading the annotations
        self._marked: dict[str, int] = {}
        # What the pictures turned out to be, one byte per picture (at its first item), bits _BAD, _MISMATCH and
        # _TURNED; in shared memory, so DataLoader workers (each with its own copy of the dataset) write one table
        self._slot = np.zeros(0, np.int64)  # item -> its picture's slot
        self._status = torch.zeros(0, dtype=torch.uint8)

    _BAD, _MISMATCH, _TURNED = 1, 2, 4
    _FOUND = {_BAD: ("skipped", "bad_image"), _MISMATCH: ("skipped", "image_size_mismatch"),
              _TURNED: ("marked", "exif_turned_image")}

    def _count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def _found(self, kind: str) -> dict[str, int]:
        """What reading the pictures found so far, in every process, counted once per picture."""
        status = self._status.numpy()
        return {key: int(np.count_nonzero(status & bit)) for bit, (table, key) in self._FOUND.items()
                if table == kind and np.any(status & bit)}

    @property
    def skipped(self) -> Mapping[str, int]:
        """Items left out, by reason: while loading (``crowd``, ``zero_area_bbox``, ...) and pictures found
        unreadable (``bad_image``) or of another size than their annotations (``image_size_mismatch``), once per
        picture, whichever DataLoader worker read them."""
        return MappingProxyType({**self._skipped, **self._found("skipped")})  # read-only: count in _skipped

    @property
    def marked(self) -> Mapping[str, int]:
        """Items kept with a note, by reason (``keypoints_outside_image``, ``exif_turned_image`` ...)."""
        return MappingProxyType({**self._marked, **self._found("marked")})

    def _table(self) -> None:
        """The shared table of pictures for the items there are (made by :meth:`_finish` after loading; made again
        here, unshared, for items changed since: a subclass that fills ``data_list`` itself, a filtered list)."""
        if len(self._slot) != len(self.data_list):
            first: dict[str, int] = {}
            paths = [d["img_path"] for d in self.data_list]
            self._slot = np.fromiter((first.setdefault(p, i) for i, p in enumerate(paths)), np.int64, len(paths))
            self._status = torch.zeros(len(paths), dtype=torch.uint8)

    def _note(self, j: int, bit: int) -> bool:
        """Set ``bit`` for item ``j``'s picture; whether it was new (so its warning is said once)."""
        slot = int(self._slot[j])
        if int(self._status[slot]) & bit:
            return False
        self._status[slot] |= bit
        return True

    def _finish(self, source: PathLike) -> None:
        """After the items are loaded: the table of pictures (:meth:`_note`) in shared memory, so that every
        DataLoader worker writes the same one, and the summary line."""
        self._table()
        self._status = self._status.share_memory_()
        self._log_summary(source)

    def _check_size(self, info: Mapping[str, Any], img: np.ndarray, tag: int = 1, j: int = 0) -> None:
        """Raise :class:`ImageSizeMismatch` when the picture read is not the size its json entry gives
        (``ori_shape``; unchecked without one): the boxes and keypoints would sit on other pixels. A picture its EXIF
        tag ``tag`` turns, read turned (``exif_orientation``, as MMPose reads), is the official reading: marked once
        per file (``marked['exif_turned_image']``) with a warning, and of the json's size as stored when the turn
        swaps width and height (tags 5-8)."""
        want = info.get("ori_shape")
        got = tuple(int(v) for v in img.shape[:2])
        path = info["img_path"]
        flipped = want is not None and got == tuple(want)[::-1] and got != tuple(want)
        if flipped and tag == 1:  # a tag this reader does not parse (PNG, WebP): the decoder's own reading decides
            other = cv2.imread(path, imread_flags(exif_orientation=not self.exif_orientation))
            if other is not None and tuple(other.shape[:2]) == (tuple(want) if self.exif_orientation else got[::-1]):
                tag = 6  # turned by a quarter: some tag of 5-8
        swapped = flipped and tag >= 5
        if want is not None and got != tuple(want) and not (self.exif_orientation and swapped):
            hint = (" (its EXIF orientation tag turns it to that size, but this protocol reads pictures as stored, as "
                    "its official loader does: the annotations were made on the turned picture)") if swapped else ""
            src = getattr(self, "ann_file", "the annotations")
            raise ImageSizeMismatch(f"{path}: {got[1]}x{got[0]} pixels (width x height), but {src} gives width "
                                    f"{want[1]}, height {want[0]} for image id {info.get('img_id')}{hint}; expected "
                                    "the picture the annotations were made on")
        if self.exif_orientation and tag > 1 and self._note(j, self._TURNED):
            logger.warning("%s: read turned by its EXIF orientation tag (%d), as this protocol's official loader "
                           "(MMPose) reads it; COCO-style annotations are made on the stored pixels, so its boxes may "
                           "not fit the turned picture (Protocol.exif_orientation)", path, tag)

    def _log_summary(self, source: PathLike) -> None:
        said = [f"{what} {dict(table)}" for what, table in (("skipped", self.skipped), ("marked", self.marked))
                if table]
        if said:
            logger.warning("%s: %d items; %s", source, len(self.data_list), "; ".join(said))

    def __len__(self) -> int:
        return len(self.data_list)

    def get_data_info(self, idx: int) -> dict[str, Any]:
        """The item dict without the image (arrays are copies)."""
        info = self.data_list[idx]
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in info.items()}

    def __getitem__(self, idx: int) -> Any:
        n = len(self.data_list)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for {type(self).__name__} of length {n}")
        j = idx % n
        self._table()
        for _ in range(n):
            info = self.get_data_info(j)
            if int(self._status[self._slot[j]]) & (self._BAD | self._MISMATCH):  # known bad: not retried
                j = (j + 1) % n
                continue
            try:
                img, tag = _load_image(info["img_path"], self.exif_orientation)
                self._check_size(info, img, tag, j)
            except (FileNotFoundError, ValueError) as err:
                mismatch = isinstance(err, ImageSizeMismatch)
                if self.mode == "test":  # another item in its place would be scored as it
                    what = "an image of another size than its annotations" if mismatch else "an unreadable one"
                    raise ValueError(f"{err}; an evaluation scores every image, so {what} stops it (fix the file, "
                                     "or drop its entries from the annotations)") from None
                if not self.skip_bad_images:
                    raise
                if self._note(j, self._MISMATCH if mismatch else self._BAD):
                    logger.warning("skipping %s image: %s", "mismatched" if mismatch else "unreadable", err)
                j = (j + 1) % n
                continue
            info["img"] = img
            info["img_shape"] = img.shape[:2]
            return self.transform(info) if self.transform is not None else info
        raise ValueError(f"{type(self).__name__}: none of the {n} items' images could be read at its annotated size "
                         f"(the first: {self.data_list[0]['img_path']}); check the image folder (data.train_img_dir)")


# ------------------------------------------------------------------------------------ COCO style
class CocoStyleDataset(TopDownDataset):
    """Top-down instances from any COCO-format keypoint json (see the module doc for the item dict).

    Args:
        ann_file: COCO-format json with ``images`` and ``annotations``.
        img_dir: folder joined with each image's ``file_name``.
        metainfo: a ``PoseMetaInfo`` or a name for ``get_metainfo`` (``'coco'``, ``'crowdpose'`` ...).
        mode: ``'train'`` (GT boxes, cleaned) or ``'test'`` (detections, or GT boxes when ``det_file``
            is ``None``).
        det_file: COCO detection results json (a list of ``image_id, bbox, score[, category_id]``).
        det_score_thr: keep detections with ``score >= det_score_thr``.
        det_category_id: keep detections of this category, one without ``category_id`` counting as of it
            (``None`` keeps all).
        transform: callable applied to each item dict (after the image is loaded).
        skip_bad_images: count-and-skip unreadable images instead of raising.
        keypoint_fields: annotation fields concatenated into the K keypoints; default ``('keypoints',)``,
            or :data:`COCO_WHOLEBODY_FIELDS` for the ``coco_wholebody`` metainfo.
        gt_clean: how GT boxes are cleaned and which annotations are skipped (a protocol's
            ``BoxRule.gt_clean``; :func:`clean_gt_bbox` and the module doc). Default ``'mmpose'``.
        exif_orientation: images turned by their EXIF orientation tag (MMPose's reading, the default) or read as
            stored (the HRNet loader's); a protocol's ``exif_orientation`` (:func:`load_image`).

    Raises:
        FileNotFoundError: missing ``ann_file``/``det_file``.
        ValueError: malformed json, missing keys, keypoint arrays of the wrong length, NaN values,
            unknown image ids; the message names the file, the entry and the field.
    """

    def __init__(
        self,
        ann_file: PathLike,
        img_dir: PathLike,
        metainfo: Any,
        mode: str = "train",
        det_file: PathLike | None = None,
        det_score_thr: float = 0.0,
        det_category_id: int | None = 1,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        skip_bad_images: bool = False,
        keypoint_fields: Sequence[str] | None = None,
        gt_clean: str = "mmpose",
        exif_orientation: bool = True,
    ) -> None:
        super().__init__(transform, skip_bad_images, exif_orientation)
        if mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
        if gt_clean not in GT_CLEAN_RULES:
            raise ValueError(f"gt_clean must be one of {list(GT_CLEAN_RULES)}, got {gt_clean!r}")
        self.gt_clean = gt_clean
        self.ann_file = str(ann_file)
        self.img_dir = str(img_dir)
        self.metainfo = _resolve_metainfo(metainfo)
        self.mode = mode
        self.det_file = None if det_file is None else str(det_file)
        self.det_score_thr = float(det_score_thr)
        if keypoint_fields is None:
            wholebody = getattr(self.metainfo, "name", "") == "coco_wholebody"
            keypoint_fields = COCO_WHOLEBODY_FIELDS if wholebody else ("keypoints",)
        self.keypoint_fields = tuple(keypoint_fields)
        self.num_keypoints = int(self.metainfo.num_keypoints)

        self.images = self._parse_images(read_json(self.ann_file))
        if mode == "test" and det_file is not None:
            self._load_detections(read_json(det_file, "detection"), det_category_id)
        else:
            self._load_gt()
        self._finish(self.det_file or self.ann_file)
        if mode == "test" and not self.data_list:  # nothing to predict: the evaluation would stop in NumPy
            what = "detection" if det_file is not None else "annotated person"
            why = f" (skipped: {dict(self.skipped)})" if self.skipped else ""
            raise ValueError(f"{self.det_file or self.ann_file}: no {what} left to evaluate{why}; expected at least "
                             "one person box to predict")

    # ---------------------------------------------------------------------------------- parsing
    def _parse_images(self, data: Any) -> dict[int, dict[str, Any]]:
        src = self.ann_file
        if not isinstance(data, dict):
            raise ValueError(f"{src}: top level must be a JSON object with 'images' and 'annotations'")
        for key in ("images", "annotations"):
            if key not in data:
                raise ValueError(f"{src}: missing top-level key '{key}'")
            if not isinstance(data[key], list):
                raise ValueError(f"{src}: top-level key '{key}' must be a list")
        self._annotations = data["annotations"]
        for i, img in enumerate(data["images"]):
            _require(img, ("id", "file_name"), f"{src}: images[{i}]")
            for field in ("height", "width"):  # the picture's size in pixels, which the boxes are checked against
                if field in img:
                    check_count(img[field], f"{src}: images[{i}].{field} (pixels)")
        images = {iid: data["images"][i] for i, iid in check_image_ids(data["images"], str(src)).items()}
        self._categories = category_ids(data, str(src))
        self._check_keypoint_names(data["categories"] if self._categories is not None else [])
        # the categories whose entries list keypoints (COCO's person): another one's annotations (a 'dog' box) are
        # no people to train on (the official HRNet loader drops every category but the person); none listing any:
        # every category counts
        listed = [c for c in data.get("categories") or [] if isinstance(c.get("keypoints"), list) and c["keypoints"]]
        self._keypoint_categories = {int(c["id"]) for c in listed} or None
        return images

    def _check_keypoint_names(self, categories: Sequence[Mapping[str, Any]]) -> None:
        """With a skeleton file of one's own (not a built-in layout, whose names real files spell their own way), a
        warning when a category of the json names other keypoints, or the same in another order: the joints would
        be read under the file's names, flips and sigmas."""
        from posetokens.data.metainfo import available_metainfo, first_name_difference

        ours = list(self.metainfo.keypoint_names)
        if self.metainfo.name in available_metainfo():
            return
        for i, cat in enumerate(categories):
            names = cat.get("keypoints")
            at = first_name_difference(names, ours) if isinstance(names, list) and names else None
            if at is not None:
                logger.warning("%s: categories[%d].keypoints differ from the skeleton %r at index %d (%s against %s); "
                               "the annotations are read in the skeleton file's order and names", self.ann_file, i,
                               self.metainfo.name, at, short_repr(names[at] if at < len(names) else "(none)"),
                               short_repr(ours[at] if at < len(ours) else "(none)"))

    def _image_fields(self, img: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "img_path": os.path.join(self.img_dir, img["file_name"]),
            "img_id": int(img["id"]),
            "ori_shape": (int(img["height"]), int(img["width"])) if "height" in img and "width" in img else None,
        }
        if "crowdIndex" in img:
            out["crowd_index"] = float(img["crowdIndex"])
        return out

    def _keypoints(self, ann: Mapping[str, Any], where: str) -> np.ndarray:
        parts = []
        for f in self.keypoint_fields:
            if f not in ann:
                raise ValueError(f"{where}: missing field '{f}'")
            arr = _numeric(ann[f], where, f)
            if len(self.keypoint_fields) > 1 and arr.size % 3:
                raise ValueError(f"{where}: field '{f}' has {arr.size} values, not a multiple of 3")
            parts.append(arr)
        k = np.concatenate(parts)
        if k.size != 3 * self.num_keypoints:
            fields = "+".join(self.keypoint_fields)
            raise ValueError(
                f"{where}: field '{fields}' has {k.size} values, expected {3 * self.num_keypoints} "
                f"({self.num_keypoints} keypoints x [x, y, v] for metainfo "
                f"'{getattr(self.metainfo, 'name', '?')}')"
            )
        return k.reshape(-1, 3)

    def _load_gt(self) -> None:
        src = self.ann_file
        train = self.mode == "train"
        for i, ann in enumerate(self._annotations):
            where = f"{src}: annotations[{i}] (id={ann.get('id') if isinstance(ann, Mapping) else '?'})"
            _require(ann, ("id", "image_id", "bbox"), where)
            if not is_whole(ann["image_id"]):  # int('img1') gave a bare ValueError
                raise ValueError(f"{where}: field 'image_id' must be an integer, got {short_repr(ann['image_id'])}")
            cat = ann.get("category_id", 1)
            if self._categories is not None and not (is_whole(cat) and int(cat) in self._categories):
                given = f"= {cat!r}" if "category_id" in ann else "missing (read as 1)"
                raise ValueError(f"{where}: field 'category_id' {given} is not one of its 'categories' "
                                 f"({sorted(self._categories)})")
            if int(ann["image_id"]) not in self.images:  # a subset cut by its images: COCOeval leaves it out too
                self._count(self._skipped, "image_not_listed")
                continue
            if self._keypoint_categories is not None and int(cat) not in self._keypoint_categories:
                self._count(self._skipped, "other_category")  # a category without keypoints: no person
                continue
            kpts = self._keypoints(ann, where)
            bbox = _numeric(ann["bbox"], where, "bbox", 4)
            if ann.get("iscrowd", 0):
                self._count(self._skipped, "crowd")
                continue
            img_fields = self._image_fields(self.images[int(ann["image_id"])])
            official = self.gt_clean in _OFFICIAL_RULES
            ann_area = float(_numeric(ann["area"], where, "area", 1)[0]) if "area" in ann else None
            cleaned = clean_gt_bbox(bbox, img_fields["ori_shape"], self.gt_clean, ann_area)
            if cleaned is None:
                self._count(self._skipped, "zero_area_bbox")
                continue
            shape = img_fields["ori_shape"]  # a box clipped to its image: counted once kept (xyxy boxes pass so)
            beyond = shape is not None and (bbox[0] < -1 or bbox[1] < -1 or bbox[0] + bbox[2] > shape[1] + 1
                                            or bbox[1] + bbox[3] > shape[0] + 1)
            bbox = cleaned
            visible = np.minimum(1.0, np.maximum(kpts[:, 2], 0.0))
            if official:  # the official loaders: max(keypoints) == 0 (mmpose 0.x also num_keypoints == 0)
                if kpts.max() == 0 or (self.gt_clean == "mmpose0" and ann.get("num_keypoints", 1) == 0):
                    self._count(self._skipped, "no_visible_keypoints")
                    continue
            elif img_fields["ori_shape"] is not None:
                h, w = img_fields["ori_shape"]
                x, y = kpts[:, 0], kpts[:, 1]
                outside = (visible > 0) & ((x < 0) | (y < 0) | (x >= w) | (y >= h))
                if outside.any():
                    self._count(self._marked, "keypoints_outside_image", int(outside.sum()))
                    visible = np.where(outside, 0.0, visible)
            if train and not official and not (visible > 0).any():
                self._count(self._skipped, "no_visible_keypoints")
                continue
            area = ann_area if ann_area is not None else float(bbox[2] * bbox[3])
            if beyond:
                self._count(self._marked, "bbox_beyond_image")
            self.data_list.append(
                {
                    **img_fields,
                    "id": int(ann["id"]),
                    "category_id": int(ann.get("category_id", 1)),
                    "bbox": bbox.astype(np.float64),
                    "bbox_score": 1.0,
                    "keypoints": kpts[:, :2].astype(np.float64),
                    "keypoints_visible": visible.astype(np.float32),
                    "area": area,
                    "num_keypoints": int((visible > 0).sum()),
                }
            )

    def _load_detections(self, dets: Any, category_id: int | None) -> None:
        src = self.det_file
        if not isinstance(dets, list):
            raise ValueError(f"{src}: expected a JSON list of detections, got {type(dets).__name__}")
        zeros_k = np.zeros((self.num_keypoints, 2), dtype=np.float64)
        zeros_v = np.zeros(self.num_keypoints, dtype=np.float32)
        for i, det in enumerate(dets):
            where = f"{src}: entry [{i}]"
            _require(det, ("image_id", "bbox", "score"), where)
            iid = det["image_id"]
            if not isinstance(iid, (int, np.integer)) or int(iid) not in self.images:
                raise ValueError(
                    f"{where}: field 'image_id' = {iid!r} is not an image of the ground truth {self.ann_file}"
                )
            bbox = _numeric(det["bbox"], where, "bbox", 4)
            score = float(_numeric(det["score"], where, "score", 1)[0])
            if category_id is not None and int(det.get("category_id", category_id)) != category_id:
                self._count(self._skipped, "other_category")
                continue
            if score < self.det_score_thr:
                self._count(self._skipped, "low_score_detection")
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:
                self._count(self._skipped, "zero_area_bbox")
                continue
            self.data_list.append(
                {
                    **self._image_fields(self.images[int(iid)]),
                    "id": i,
                    "category_id": int(det.get("category_id", 1 if category_id is None else category_id)),
                    "bbox": bbox.astype(np.float64),
                    "bbox_score": score,
                    "keypoints": zeros_k.copy(),
                    "keypoints_visible": zeros_v.copy(),
                    "area": float(bbox[2] * bbox[3]),
                    "num_keypoints": 0,
                }
            )
