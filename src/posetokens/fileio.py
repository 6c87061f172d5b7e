"""Small file helpers shared by data loading, evaluation and inference (standard library only, plus
posetokens.runtime for one warning): reading JSON with clear errors, atomic writes (a temporary file renamed over
the target), a streamed JSON array that an interrupted run leaves readable, checks that an output never overwrites
an input, and a lock that keeps two runs out of one folder."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # not on Windows: folders are not locked there
    fcntl = None  # type: ignore[assignment]

PathLike = str | os.PathLike


def read_json(path: PathLike, what: str = "annotation") -> Any:
    """Load a json file (a UTF-8 byte-order mark, as Windows tools write, is read past); a missing file gives
    ``FileNotFoundError``, bad JSON a ``ValueError`` naming it."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} file {p} is a folder; expected a .json file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        with open(p, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: malformed JSON ({e})") from e
    except UnicodeDecodeError as e:  # a picture or a checkpoint given for a json: the message says which json
        raise ValueError(f"{p}: not a UTF-8 text/JSON file; expected the {what} .json file ({e})") from e


# ------------------------------------------------------------------------------------------------ writing
def atomic_write(path: PathLike, write: Callable[[BinaryIO], Any], what: str = "a file") -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``: the one home of
    atomic writes (JSON, pictures, checkpoints).

    Readers see the old file or the new one, never a half-written one; a failure (or an interrupt) removes the
    temporary file and leaves ``path`` as it was. The file gets the umask's permissions, like ``open(path, "w")``.
    """
    import tempfile

    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(21, f"cannot write {what} over a folder", str(p))
    if p.is_symlink() and p.exists():  # written through, as open(path, "w") writes (the link was replaced)
        p = p.resolve()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as e:  # said of the user's path, not of the temporary name
        raise OSError(e.errno, f"cannot write {what} {p.name} in its folder ({e.strerror})", str(p.parent)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, p)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and p.is_dir():  # made a folder after the check above: said of the user's path
            raise IsADirectoryError(21, f"cannot write {what} over a folder", str(p)) from None
        raise
    return p


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """``json.dump`` through :func:`atomic_write_bytes` (the object is serialised before anything is written)."""
    return atomic_write_text(path, json.dumps(obj))


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask




class TempBeside:
    """A temporary file beside ``path`` with the same suffix, for a writer that takes a path and picks the format
    by its suffix (``cv2.VideoWriter``, ``cv2.imwrite``): :meth:`commit` renames it over ``path``, :meth:`discard`
    removes it."""

    def __init__(self, path: PathLike) -> None:
        import tempfile

        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)

    def commit(self) -> Path:
        """Move the finished file to ``path`` (with the umask's permissions, as a plain write would give); where
        that fails (a folder made at ``path`` meanwhile), the temporary file is removed and ``path`` named."""
        try:
            os.chmod(self.tmp, 0o666 & ~current_umask())
            os.replace(self.tmp, self.path)
        except BaseException as e:
            self.discard()
            if isinstance(e, OSError) and self.path.is_dir():
                raise IsADirectoryError(21, "cannot write a file over a folder", str(self.path)) from None
            raise
        return self.path

    def discard(self) -> None:
        """Remove the temporary file."""
        self.tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that takes a path: renamed over ``path`` when the block
    succeeds, removed when it fails (``path`` is then as it was)."""
    temp = TempBeside(path)
    try:
        yield temp.tmp
    except BaseException:
        temp.discard()
        raise
    temp.commit()


class JsonArrayWriter:
    """A JSON array written one element at a time, flushed after each, so an interrupted run keeps every finished
    element. The format is a plain JSON array with one element per line::

        [
        {...element 0...},
        {...element 1...}
        ]

    Elements go to ``<name>.<random>.partial`` beside ``path``; :meth:`close` writes the closing ``]`` and renames
    it to ``path`` (readers never see a half-written ``path``). A process killed outright (SIGKILL, power loss)
    leaves the ``.partial`` file without its ``]``: :func:`read_json_array` reads its complete lines.
    """

    def __init__(self, path: PathLike) -> None:
        import tempfile

        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(21, "cannot write a file over a folder", str(self.path))
        fd, tmp = tempfile.mkstemp(prefix=f"{self.path.name}.", suffix=".partial", dir=self.path.parent)
        os.chmod(tmp, 0o666 & ~current_umask())
        self.tmp = Path(tmp)
        self._f = os.fdopen(fd, "w", encoding="utf-8")
        self._f.write("[")
        self._f.flush()
        self.count = 0
        self.closed = False

    def append(self, obj: Any) -> None:
        """Write one element (serialised first, so a bad element writes nothing) and flush it to the file."""
        line = json.dumps(obj)
        self._f.write(("," if self.count else "") + "\n" + line)
        self._f.flush()
        self.count += 1

    def close(self) -> Path:
        """Finish the array and move it to ``path``; returns ``path``. Safe to call twice. If the move fails
        (``OSError`` saying so), the finished file is kept as :attr:`tmp` and a second call tries the move again."""
        if not self._f.closed:
            self._f.write("\n]\n")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
        if not self.closed:
            try:
                os.replace(self.tmp, self.path)
            except OSError as e:  # e.g. a folder made at path meanwhile: the finished file stays where it is
                raise type(e)(e.errno, f"the finished file could not be moved to {self.path} ({e.strerror}); it is "
                              f"kept, complete, as {self.tmp}", str(self.path)) from None
            self.closed = True
        return self.path

    def discard(self) -> None:
        """Drop the file (nothing was worth keeping)."""
        if not self.closed:
            self._f.close()  # (a no-op once close finished it)
            self.tmp.unlink(missing_ok=True)
            self.closed = True


def read_json_array_lines(path: PathLike, what: str = "results") -> tuple[list[Any], bool]:
    """The complete elements of a JSON array written by :class:`JsonArrayWriter` that lacks its closing ``]``
    (a killed run's ``.partial`` file), and whether anything was dropped (an incomplete last line).
    Raises ``ValueError`` naming the file when it is not such a file."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not a UTF-8 text/JSON file ({e})") from e
    if not lines or lines[0].strip() != "[":
        raise ValueError(f"{p}: malformed {what} JSON (not a JSON array)")
    out, dropped = [], False
    for i, line in enumerate(lines[1:], start=2):
        s = line.strip().removesuffix(",")
        if not s or s == "]":
            continue
        try:
            out.append(json.loads(s))
        except json.JSONDecodeError as e:
            if i == len(lines) or all(not t.strip() for t in lines[i:]):
                dropped = True  # the last line was cut mid-write
                break
            raise ValueError(f"{p}: malformed {what} JSON at line {i} ({e})") from e
    return out, dropped


# ------------------------------------------------------------------------------------------- checking paths
def require_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path when it is an existing file; ``FileNotFoundError`` when missing, ``ValueError`` when it
    names a folder (``what`` says which argument, e.g. ``"--weights"``)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} {p} is a folder; expected a file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist")
    return p


def check_folder_path(path: PathLike, what: str = "output folder") -> Path:
    """``ValueError`` when ``path`` (a folder to write, maybe not made yet) is a file or lies under one; creates
    nothing, so commands call it before any model is built (:func:`writable_dir` checks the rest)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{what} {p} is a file; expected a folder (it is created if missing)")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {p}: {parent} is a file, not a folder")
            break
    return p


def writable_dir(path: PathLike, what: str = "output folder") -> Path:
    """Create the folder ``path`` if needed and check that a file can be created in it, before any work is done.

    A path that is a file gives ``ValueError``; a folder we cannot write (or create) gives ``PermissionError``
    naming it.
    """
    import tempfile

    p = check_folder_path(path, what)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"{what} cannot be created ({e.strerror})", str(p)) from None  # errno's subclass
    try:
        fd, probe = tempfile.mkstemp(prefix=".posetokens-write-check.", dir=p)
    except OSError as e:
        raise PermissionError(e.errno, f"{what} is not writable ({e.strerror})", str(p)) from None
    os.close(fd)
    os.unlink(probe)
    return p


def _identity(p: Path) -> tuple[str, tuple[int, int] | None]:
    """The resolved absolute path of ``p`` and, when it exists, its (device, inode)."""
    key = os.path.normcase(os.path.abspath(p.resolve()))
    try:
        st = os.stat(p)
        return key, (st.st_dev, st.st_ino)
    except OSError:
        return key, None


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (the same resolved path, or the same inode when both exist)."""
    ka, ia = _identity(Path(a))
    kb, ib = _identity(Path(b))
    return ka == kb or (ia is not None and ia == ib)


def archive_path(folder: PathLike, name: str = "") -> Path:
    """A new, unused ``folder/archive/<name-><time>`` path (``-1``, ``-2``... appended on a clash) where an earlier
    run's files are moved instead of being deleted; its parent exists, the path itself does not."""
    stamp = f"{name}-" * bool(name) + time.strftime("%Y%m%d-%H%M%S")
    base = Path(folder) / "archive"
    dest, n = base / stamp, 1
    while dest.exists():
        dest, n = base / f"{stamp}-{n}", n + 1
    base.mkdir(parents=True, exist_ok=True)
    return dest


LOCK_NAME = ".posetokens.lock"


def lock_busy_message(folder: PathLike, what: str, pid: object) -> str:
    """The one refusal of a folder another run holds (:func:`lock_holder`, :class:`FolderLock`)."""
    return f"{what} {folder} is in use by a running process (pid {pid}); wait for it to end or choose another {what}"


def lock_holder(folder: PathLike) -> int | None:
    """The pid of a live process that holds ``folder``'s :class:`FolderLock` (-1 when it wrote none), else None:
    no lock file, a stale one (its process is gone, so the kernel released the lock), no ``fcntl``, or a filesystem
    without ``flock``."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.is_file() or path.is_symlink():
        return None
    with open(path, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = f.read().decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        except OSError:  # ENOLCK / ENOSYS: this filesystem (some NFS, Lustre, FUSE mounts) cannot lock
            return None
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


class FolderLock:
    """An exclusive advisory lock (``flock``) on ``folder/.posetokens.lock``, which holds our pid, until
    :meth:`release` or the process ends (the kernel drops it then, so a killed run leaves no live lock). ``ValueError``
    naming ``what`` and the holder's pid when another process holds it, or when the lock file is a symbolic link
    (it is never followed). On a filesystem that cannot lock, a warning says so and the folder stays unlocked."""

    def __init__(self, folder: PathLike, what: str = "folder") -> None:
        self.path = Path(folder) / LOCK_NAME
        self._file = None
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            if self.path.is_symlink():
                raise ValueError(f"{self.path} is a symbolic link; remove it (a lock file is never followed)") from None
            raise OSError(e.errno, f"cannot create the lock file ({e.strerror})", str(self.path)) from None
        f = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = f.read().decode(errors="replace").strip() or "unknown"
            f.close()
            raise ValueError(lock_busy_message(folder, what, pid)) from None
        except OSError as e:  # ENOLCK / ENOSYS: say so, and go on unlocked
            f.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            from posetokens.runtime import warn

            warn(f"{folder}: not locked against a second run ({e.strerror}: this filesystem does not support flock)")
            return
        f.truncate(0)
        f.write(str(os.getpid()).encode())
        f.flush()
        self._file = f

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def check_fixed_outputs(folder: PathLike, names: Iterable[str], overwrite: bool, what: str, hint: str) -> None:
    """A tool that writes fixed ``names`` into ``folder`` (named ``what`` in messages, e.g. ``"OUT"``), which would
    otherwise replace a user's files: ``ValueError`` when the folder is a file or lies under one, or (unless
    ``overwrite``) when one of the names exists there (a file, or a folder with anything in it), ending in ``hint``."""
    check_folder_path(folder, what)
    for path in [] if overwrite else [Path(folder) / n for n in names]:
        if path.is_dir() and not any(path.iterdir()):
            continue
        if path.exists() or path.is_symlink():
            raise ValueError(f"{path} exists; {hint}")


def check_output_kinds(outputs: list[tuple[str, PathLike, str]]) -> None:
    """Refuse (``ValueError`` naming it) an output that exists as a file where a folder goes (its description ends
    in "folder") or as a folder where a file goes, before any work: the write failed at the end, or after the
    first frame. ``outputs`` as :func:`check_no_overwrite` takes them, with their remedies."""
    for what, path, remedy in outputs:
        folder = what.endswith("folder")
        path = Path(path)
        if path.exists() and path.is_dir() != folder:
            raise ValueError(f"the {what} {path} exists and is a {'file' if folder else 'folder'}; {remedy}")


def first_object_keys(text: str) -> set[str]:
    """The keys of the first JSON object in ``text`` (a file's first bytes: the object may be cut off), at its top
    level only; empty when ``text`` holds no object."""
    start = text.find("{")
    keys: set[str] = set()
    if start < 0:
        return keys
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c == '"':  # a string: a key when it is followed by ':' at the object's own level
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            k = j + 1
            while k < n and text[k] in " \t\r\n":
                k += 1
            if depth == 1 and k < n and text[k] == ":":
                keys.add(text[i + 1:j])
            i = j + 1
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                break
        i += 1
    return keys


def looks_like_coco_results(head: str) -> bool:
    """Whether a file beginning with ``head`` is COCO keypoint results: a JSON list, empty or whose first object has
    ``keypoints`` (a detections file has boxes only)."""
    rest = head.lstrip("\ufeff \t\r\n")
    if not rest.startswith("["):
        return False
    rest = rest[1:].lstrip()
    return rest.startswith("]") or (rest.startswith("{") and "keypoints" in first_object_keys(rest))


def looks_like_mmpose_preds(head: str) -> bool:
    """Whether a file beginning with ``head`` is an MMPose prediction file (``{meta_info, instance_info}``)."""
    rest = head.lstrip("\ufeff \t\r\n")
    return rest.startswith("{") and bool({"meta_info", "instance_info"} & first_object_keys(rest))


def check_replaceable(path: PathLike, what: str, looks_right: Callable[[str], bool], kind: str) -> None:
    """Refuse (``ValueError`` naming ``what`` and ``path``) an existing file at ``path`` that a command would replace
    though it does not hold ``kind`` by its first 64 KiB (``looks_right``): an earlier run's output is replaced, an
    empty file too, never a user's other file (ground truth, detections, a checkpoint, a script). A symbolic link
    whose file is gone is refused as well (the write would replace the link)."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise ValueError(f"{what} {p} is a symbolic link to {os.readlink(p)}, which does not exist; writing would "
                         "replace the link: choose another path or remove the link")
    if not p.is_file():
        return
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", "replace")
    except OSError as e:
        raise ValueError(f"{what} {p} exists and cannot be read ({e.strerror}): it is not known to be {kind}; "
                         "choose another path") from None
    if head.strip() and not looks_right(head):
        raise ValueError(f"{what} {p} exists and is not {kind}; choose another path")


def check_no_overwrite(inputs: dict[str, PathLike | None] | list[tuple[str, PathLike | None]],
                       outputs: dict[str, PathLike] | list[tuple[str, PathLike] | tuple[str, PathLike, str]]) -> None:
    """Refuse (``ValueError`` naming both) an output path that is one of the inputs, or two outputs sharing a path.

    ``inputs`` and ``outputs`` are (description, path) pairs (or dicts), e.g. ``("input image", "a.png")``; None
    inputs are ignored. An output may carry a third item, the remedy the message ends with, for a path the user
    does not give directly (``"give --out another folder"``). Paths are compared resolved (symbolic links
    followed) and by inode when they exist.
    """
    by_path: dict[str, tuple[str, Path]] = {}
    by_inode: dict[tuple[int, int], tuple[str, Path]] = {}
    for what, src in (inputs.items() if isinstance(inputs, dict) else inputs):
        if src is None:
            continue
        key, ino = _identity(Path(src))
        by_path[key] = (what, Path(src))
        if ino is not None:
            by_inode[ino] = (what, Path(src))
    seen: dict[str, tuple[str, Path]] = {}
    for what, out, *remedy in (outputs.items() if isinstance(outputs, dict) else outputs):
        out = Path(out)
        key, ino = _identity(out)
        hit = by_path.get(key) or (by_inode.get(ino) if ino is not None else None)
        if hit is not None:
            how = remedy[0] if remedy else f"choose another path for the {what}"
            raise ValueError(f"the {what} {out} would overwrite the {hit[0]} {hit[1]}; {how}")
        if key in seen:
            raise ValueError(f"two outputs would share one path: the {seen[key][0]} and the {what} are both {out}")
        seen[key] = (what, out)
