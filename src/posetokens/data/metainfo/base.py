"""Dataset metainfo: one frozen object per keypoint layout.

A :class:`PoseMetaInfo` stores *names* (keypoints, flip partners, skeleton links,
upper/lower body membership) plus per-keypoint numbers (OKS sigmas, loss joint
weights). Everything index-based (``flip_indices``, ``skeleton``,
``upper_body_ids`` ...) is derived once and cached, so a layout can never have
flip pairs and names that disagree.

Custom COCO-format datasets: build one with :func:`from_coco_categories` from
the ``categories[0]`` entry of the annotation json.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "PoseMetaInfo",
    "RGB",
    "from_coco_categories",
    "infer_flip_partners",
]

RGB = tuple[int, int, int]

# Drawing palette (RGB). Left = green, right = orange, centre = blue, as in the
# usual COCO visualisations; fingers get one colour per finger.
_LEFT: RGB = (0, 255, 0)
_RIGHT: RGB = (255, 128, 0)
_CENTRE: RGB = (51, 153, 255)
_WHITE: RGB = (255, 255, 255)
_FINGER_COLORS: tuple[tuple[str, RGB], ...] = (
    ("thumb", (255, 128, 0)),
    ("forefinger", (255, 153, 255)),
    ("index", (255, 153, 255)),
    ("middle", (102, 178, 255)),
    ("ring", (255, 51, 51)),
    ("pinky", (0, 255, 0)),
)

# left/right spellings recognised when inferring flip partners from names.
_SIDE_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"left", r"right"),
    (r"Left", r"Right"),
    (r"LEFT", r"RIGHT"),
)
_SHORT_SIDE = re.compile(r"(^|[_\-. ])([lrLR])(?=$|[_\-. ])")


def _side(name: str) -> str:
    """Return 'left', 'right' or '' for a keypoint name."""
    low = name.lower()
    if "left" in low:
        return "left"
    if "right" in low:
        return "right"
    m = _SHORT_SIDE.search(name)
    if m:
        return "left" if m.group(2).lower() == "l" else "right"
    return ""


def _default_keypoint_color(name: str) -> RGB:
    low = name.lower()
    if low.startswith("face"):
        return _WHITE
    for key, color in _FINGER_COLORS:
        if key in low:
            return color
    if "hand_root" in low:
        return _WHITE
    side = _side(name)
    return _LEFT if side == "left" else _RIGHT if side == "right" else _CENTRE


def _swap_side(name: str) -> str:
    """The name with left/right exchanged, or ``name`` itself if it has no side."""
    for a, b in _SIDE_PATTERNS:
        if a in name:
            return name.replace(a, b)
        if b in name:
            return name.replace(b, a)

    def repl(m: re.Match[str]) -> str:
        c = m.group(2)
        swapped = {"l": "r", "r": "l", "L": "R", "R": "L"}[c]
        return m.group(1) + swapped

    return _SHORT_SIDE.sub(repl, name, count=1)


def infer_flip_partners(keypoint_names: Sequence[str]) -> tuple[str, ...]:
    """Infer each keypoint's mirror partner by exchanging left/right in its name.

    Recognises ``left``/``right`` anywhere in the name and ``l``/``r`` as a
    separate token (``l_hip``, ``hip_r``). A keypoint whose swapped name does
    not exist is its own partner (returned as ``''``).
    """
    names = list(keypoint_names)
    known = set(names)
    out = []
    for n in names:
        s = _swap_side(n)
        out.append(s if (s != n and s in known) else "")
    return tuple(out)


@dataclass(frozen=True)
class PoseMetaInfo:
    """Immutable description of a keypoint layout.

    Args:
        name: dataset / layout name (e.g. ``"coco"``).
        keypoint_names: K unique keypoint names, in model output order.
        flip_partners: K names; entry i is the keypoint that keypoint i becomes
            under a horizontal flip, or ``''`` if it maps to itself.
        skeleton_links: links as pairs of keypoint names (for drawing).
        sigmas: K OKS sigmas, or ``None`` when the dataset has none (H36M).
        upper_body_names: keypoints used by the half-body augmentation's upper half.
        lower_body_names: keypoints used by its lower half.
        joint_weights: K per-keypoint loss weights (default all 1).
        part_ranges: named contiguous index blocks, ``(part, start, stop)``;
            e.g. COCO-WholeBody ``("face", 23, 91)``. Exposed as :attr:`parts`.
        colors: optional K RGB colours for drawing; derived from names if None.
        eval_iou_type: COCOeval ``iouType`` (``"keypoints"`` or ``"keypoints_crowd"``).
        eval_use_area: whether COCO evaluation uses the annotation area.
        bbox_center: optional fixed box centre (H36M ``stats_info``), pixels.
        bbox_scale: optional fixed box size (H36M ``stats_info``), pixels.
        source: where the values come from (free text, for provenance).

    Raises:
        ValueError: on any inconsistency (duplicate or unknown names, non-symmetric
            flip partners, wrong number of sigmas/weights, bad part ranges).
    """

    name: str
    keypoint_names: tuple[str, ...]
    flip_partners: tuple[str, ...]
    skeleton_links: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...] | None
    upper_body_names: tuple[str, ...] = ()
    lower_body_names: tuple[str, ...] = ()
    joint_weights: tuple[float, ...] | None = None
    part_ranges: tuple[tuple[str, int, int], ...] = ()
    colors: tuple[RGB, ...] | None = None
    eval_iou_type: str = "keypoints"
    eval_use_area: bool = True
    bbox_center: tuple[float, float] | None = None
    bbox_scale: float | None = None
    source: str = field(default="", compare=False)

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        # Normalise containers to tuples so the object is hashable and immutable.
        set_ = object.__setattr__
        set_(self, "keypoint_names", tuple(str(n) for n in self.keypoint_names))
        set_(self, "flip_partners", tuple(str(n) for n in self.flip_partners))
        set_(self, "skeleton_links", tuple((str(a), str(b)) for a, b in self.skeleton_links))
        if self.sigmas is not None:
            set_(self, "sigmas", tuple(float(s) for s in np.asarray(self.sigmas).ravel()))
        set_(self, "upper_body_names", tuple(self.upper_body_names))
        set_(self, "lower_body_names", tuple(self.lower_body_names))
        if self.joint_weights is None:
            set_(self, "joint_weights", (1.0,) * len(self.keypoint_names))
        else:
            set_(self, "joint_weights", tuple(float(w) for w in np.asarray(self.joint_weights).ravel()))
        set_(self, "part_ranges", tuple((str(p), int(a), int(b)) for p, a, b in self.part_ranges))
        if self.colors is not None:
            set_(self, "colors", tuple(tuple(int(c) for c in col) for col in self.colors))
        self._validate()

    def _unknown(self, what: str, bad: str) -> ValueError:
        close = difflib.get_close_matches(bad, self.keypoint_names, n=3)
        hint = f"; did you mean {close}?" if close else ""
        return ValueError(f"{self.name}: {what} names unknown keypoint {bad!r}{hint}")

    def _validate(self) -> None:
        names = self.keypoint_names
        k = len(names)
        if k == 0:
            raise ValueError(f"{self.name}: keypoint_names is empty")
        if len(set(names)) != k:
            dups = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{self.name}: duplicate keypoint names {dups}")
        index = {n: i for i, n in enumerate(names)}
        if len(self.flip_partners) != k:
            raise ValueError(
                f"{self.name}: expected {k} flip_partners (one per keypoint, '' for "
                f"self), got {len(self.flip_partners)}"
            )
        for i, p in enumerate(self.flip_partners):
            if p == "" or p == names[i]:
                continue
            if p not in index:
                raise self._unknown(f"flip partner of {names[i]!r}", p)
            back = self.flip_partners[index[p]]
            if back != names[i]:
                raise ValueError(
                    f"{self.name}: flip partners are not symmetric: {names[i]!r} -> {p!r} "
                    f"but {p!r} -> {back or p!r}"
                )
        for a, b in self.skeleton_links:
            for n in (a, b):
                if n not in index:
                    raise self._unknown(f"skeleton link ({a!r}, {b!r})", n)
            if a == b:
                raise ValueError(f"{self.name}: skeleton link ({a!r}, {b!r}) joins a keypoint to itself")
        if self.sigmas is not None:
            if len(self.sigmas) != k:
                raise ValueError(f"{self.name}: expected {k} sigmas (one per keypoint), got {len(self.sigmas)}")
            if any(not (s > 0) for s in self.sigmas):
                raise ValueError(f"{self.name}: sigmas must be positive")
        assert self.joint_weights is not None
        if len(self.joint_weights) != k:
            raise ValueError(
                f"{self.name}: expected {k} joint_weights (one per keypoint), got {len(self.joint_weights)}"
            )
        for group, members in (("upper_body_names", self.upper_body_names),
                               ("lower_body_names", self.lower_body_names)):
            for n in members:
                if n not in index:
                    raise self._unknown(group, n)
        both = set(self.upper_body_names) & set(self.lower_body_names)
        if both:
            raise ValueError(f"{self.name}: keypoints in both upper and lower body: {sorted(both)}")
        seen_parts = set()
        for part, start, stop in self.part_ranges:
            if part in seen_parts:
                raise ValueError(f"{self.name}: duplicate part {part!r}")
            seen_parts.add(part)
            if not (0 <= start < stop <= k):
                raise ValueError(
                    f"{self.name}: part {part!r} range [{start}, {stop}) is not inside [0, {k})"
                )
        if self.colors is not None and len(self.colors) != k:
            raise ValueError(f"{self.name}: expected {k} colors, got {len(self.colors)}")
        if self.eval_iou_type not in ("keypoints", "keypoints_crowd"):
            raise ValueError(
                f"{self.name}: eval_iou_type must be 'keypoints' or 'keypoints_crowd', "
                f"got {self.eval_iou_type!r}"
            )

    # ---------------------------------------------------------------- derived
    @property
    def num_keypoints(self) -> int:
        """Number of keypoints K."""
        return len(self.keypoint_names)

    @cached_property
    def _name_to_index(self) -> Mapping[str, int]:
        return {n: i for i, n in enumerate(self.keypoint_names)}

    def index(self, name: str) -> int:
        """Index of a keypoint by name (with a close-name hint on a typo)."""
        try:
            return self._name_to_index[name]
        except KeyError:
            raise self._unknown("lookup", name) from None

    @cached_property
    def _flip_indices(self) -> tuple[int, ...]:
        idx = self._name_to_index
        return tuple(i if p == "" else idx[p] for i, p in enumerate(self.flip_partners))

    @property
    def flip_indices(self) -> list[int]:
        """Index i -> index of its mirror partner (i itself for centre keypoints)."""
        return list(self._flip_indices)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        """Left/right index pairs ``(i, j)`` with ``i < j``."""
        return [(i, j) for i, j in enumerate(self._flip_indices) if i < j]

    @cached_property
    def _skeleton(self) -> tuple[tuple[int, int], ...]:
        idx = self._name_to_index
        return tuple((idx[a], idx[b]) for a, b in self.skeleton_links)

    @property
    def skeleton(self) -> list[tuple[int, int]]:
        """Skeleton links as 0-based index pairs."""
        return list(self._skeleton)

    @property
    def upper_body_ids(self) -> list[int]:
        """Indices of the upper-body keypoints (half-body augmentation)."""
        return sorted(self._name_to_index[n] for n in self.upper_body_names)

    @property
    def lower_body_ids(self) -> list[int]:
        """Indices of the lower-body keypoints (half-body augmentation)."""
        return sorted(self._name_to_index[n] for n in self.lower_body_names)

    @property
    def parts(self) -> dict[str, slice]:
        """Named index blocks as slices (e.g. ``parts['face'] == slice(23, 91)``)."""
        return {p: slice(a, b) for p, a, b in self.part_ranges}

    @property
    def sigmas_array(self) -> np.ndarray | None:
        """OKS sigmas as a float64 array of shape (K,), or None."""
        return None if self.sigmas is None else np.asarray(self.sigmas, dtype=np.float64)

    @property
    def joint_weights_array(self) -> np.ndarray:
        """Loss joint weights as a float32 array of shape (K,)."""
        assert self.joint_weights is not None
        return np.asarray(self.joint_weights, dtype=np.float32)

    @property
    def keypoint_colors(self) -> list[RGB]:
        """RGB colour per keypoint (explicit ``colors`` or derived from names)."""
        if self.colors is not None:
            return list(self.colors)
        return [_default_keypoint_color(n) for n in self.keypoint_names]

    @property
    def link_colors(self) -> list[RGB]:
        """RGB colour per skeleton link: the side colour if both ends share a side."""
        out: list[RGB] = []
        for a, b in self.skeleton_links:
            ca, cb = _default_keypoint_color(a), _default_keypoint_color(b)
            if ca == cb and ca != _WHITE:
                out.append(ca)
            elif _side(a) == _side(b) and _side(a):
                out.append(cb if cb != _WHITE else ca)
            else:
                out.append(_CENTRE)
        return out

    def select(self, names: Iterable[str]) -> list[int]:
        """Indices of the given keypoint names."""
        return [self.index(n) for n in names]

    def to_dict(self) -> dict[str, Any]:
        """Plain-python summary (names and derived indices), e.g. for checkpoints."""
        return {
            "name": self.name,
            "keypoint_names": list(self.keypoint_names),
            "flip_indices": self.flip_indices,
            "skeleton": [list(p) for p in self.skeleton],
            "sigmas": None if self.sigmas is None else list(self.sigmas),
            "joint_weights": list(self.joint_weights or ()),
            "upper_body_ids": self.upper_body_ids,
            "lower_body_ids": self.lower_body_ids,
            "parts": {p: [a, b] for p, a, b in self.part_ranges},
            "eval_iou_type": self.eval_iou_type,
            "eval_use_area": self.eval_use_area,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metainfo") -> PoseMetaInfo:
        """The layout :meth:`to_dict` wrote (a checkpoint's), rebuilt: a skeleton of one's own needs its file no more.
        ``ValueError`` naming ``where`` when it is not such a dict (colours are derived from the names again)."""
        try:
            names = [str(n) for n in data["keypoint_names"]]
            flip = [int(i) for i in data["flip_indices"]]
            if len(flip) != len(names) or not all(0 <= i < len(names) for i in flip):
                raise ValueError(f"{len(flip)} flip_indices for {len(names)} keypoints")
            sigmas = data.get("sigmas")
            return cls(
                name=str(data["name"]),
                keypoint_names=tuple(names),
                flip_partners=tuple("" if j == i else names[j] for i, j in enumerate(flip)),
                skeleton_links=tuple((names[int(a)], names[int(b)]) for a, b in data.get("skeleton") or ()),
                sigmas=None if sigmas is None else tuple(float(v) for v in sigmas),
                upper_body_names=tuple(names[int(i)] for i in data.get("upper_body_ids") or ()),
                lower_body_names=tuple(names[int(i)] for i in data.get("lower_body_ids") or ()),
                joint_weights=tuple(float(v) for v in data.get("joint_weights") or ()) or None,
                part_ranges=tuple((str(p), int(a), int(b)) for p, (a, b) in (data.get("parts") or {}).items()),
                eval_iou_type=str(data.get("eval_iou_type", "keypoints")),
                eval_use_area=bool(data.get("eval_use_area", True)),
                source=f"stored ({where})",
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{where}: not a stored keypoint layout ({type(e).__name__}: {e})") from None


def from_coco_categories(
    category: Mapping[str, Any],
    *,
    name: str | None = None,
    sigmas: Sequence[float] | np.ndarray | None = None,
    flip: Mapping[str, str] | Sequence[tuple[int, int]] | None = None,
    skeleton: Sequence[tuple[int, int]] | None = None,
    skeleton_one_based: bool = True,
    upper_body: Sequence[str] = (),
    lower_body: Sequence[str] = (),
    joint_weights: Sequence[float] | None = None,
) -> PoseMetaInfo:
    """Build a :class:`PoseMetaInfo` from a COCO-format ``categories`` entry.

    Args:
        category: one element of the json ``categories`` list; must hold
            ``"keypoints"`` (names) and may hold ``"skeleton"`` (index pairs).
        name: layout name (default: ``category["name"]``).
        sigmas: K OKS sigmas. If None and the names equal a built-in layout's
            names, its sigmas are used; otherwise None.
        flip: mirror partners, as a ``{name: partner}`` mapping or a list of
            0-based ``(i, j)`` index pairs; None infers them from left/right in the names.
        skeleton: 0-based index pairs overriding ``category["skeleton"]`` (needed
            e.g. for the CrowdPose json, whose skeleton is the COCO-17 one).
        skeleton_one_based: whether ``category["skeleton"]`` is 1-based (the COCO
            json convention).
        upper_body, lower_body: names for the half-body augmentation (empty disables it).
        joint_weights: K loss weights (default all 1).

    Raises:
        ValueError: if ``keypoints`` is missing or any skeleton index is out of range.
    """
    if "keypoints" not in category:
        raise ValueError("category must have a 'keypoints' list of keypoint names")
    names = tuple(str(n) for n in category["keypoints"])
    k = len(names)
    layout = name or str(category.get("name", "custom"))

    links_idx = skeleton if skeleton is not None else category.get("skeleton", [])
    off = 1 if (skeleton is None and skeleton_one_based) else 0  # overrides are 0-based
    links: list[tuple[str, str]] = []
    for pair in links_idx:
        a, b = int(pair[0]) - off, int(pair[1]) - off
        if not (0 <= a < k and 0 <= b < k):
            raise ValueError(
                f"{layout}: skeleton link {tuple(pair)} is out of range for {k} keypoints "
                f"({'1' if off else '0'}-based); pass skeleton=... (0-based) to override"
            )
        links.append((names[a], names[b]))

    if flip is None:
        partners = infer_flip_partners(names)
    elif isinstance(flip, Mapping):
        lst = [""] * k
        pos = {n: i for i, n in enumerate(names)}
        for a, b in flip.items():
            if a not in pos or b not in pos:
                raise ValueError(f"{layout}: flip mapping names unknown keypoint {a if a not in pos else b!r}")
            lst[pos[a]], lst[pos[b]] = b, a
        partners = tuple(lst)
    else:
        lst = [""] * k
        for i, j in flip:
            i, j = int(i), int(j)
            if not (0 <= i < k and 0 <= j < k):
                raise ValueError(f"{layout}: flip pair {(i, j)} out of range for {k} keypoints")
            lst[i], lst[j] = names[j], names[i]
        partners = tuple(lst)

    if sigmas is None:
        # Lazy import: the built-in layouts import this module.
        from . import available_metainfo, get_metainfo  # noqa: PLC0415

        for meta in map(get_metainfo, available_metainfo()):
            if meta.keypoint_names == names and meta.sigmas is not None:
                sigmas = meta.sigmas
                break

    return PoseMetaInfo(
        name=layout,
        keypoint_names=names,
        flip_partners=partners,
        skeleton_links=tuple(links),
        sigmas=None if sigmas is None else tuple(np.asarray(sigmas, dtype=float).ravel()),
        upper_body_names=tuple(upper_body),
        lower_body_names=tuple(lower_body),
        joint_weights=None if joint_weights is None else tuple(joint_weights),
        source="from_coco_categories",
    )
