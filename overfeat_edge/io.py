"""[no torch] Every output we write goes through here: one checked target, one lock, one temporary file.

- **The target** (:func:`target_kind`): a new name or an existing writable regular file is replaced
  atomically; a FIFO, ``/dev/null``, our own stdout/stderr (``/dev/stdout``) and ``-`` are written in
  place (the user's evident intent); a device, a socket, a symbolic link (it would be followed or
  replaced) and a read-only file are refused with one line, never replaced.
- **The temporary file** (:class:`AtomicFile`) is created exclusively with an unpredictable name
  in the destination folder (``tempfile.mkstemp``: ``O_CREAT|O_EXCL|O_NOFOLLOW``), so a symlink
  planted there is never followed and two writers never share one; it replaces the final name only
  when complete (:meth:`AtomicFile.commit`); on any failure it is removed and the old file stays.
- **The lock** (:func:`claim`): ``.NAME.lock`` beside the output, held with ``flock`` while this
  process writes it, so a second process writing the same path is refused with one line. The
  kernel releases it when the process ends, so a crash leaves no stale lock.
- **A full disk** (ENOSPC, EDQUOT, EFBIG) is one :class:`~overfeat_edge.errors.OutputError` line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from overfeat_edge.errors import InputError, OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, the rest holds
    fcntl = None  # type: ignore[assignment]

# image files we read, by suffix (lower case): folders, globs and datasets all use this list
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _same_file(st: os.stat_result, fd: int) -> bool:
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def target_kind(path: str | Path, option: str = "output") -> str:
    """What writing ``path`` means: ``"new"``, ``"file"`` (an existing regular file, replaced),
    ``"dir"``, ``"stdout"`` (``-``) or ``"inplace"`` (a FIFO, /dev/null, our stdout or stderr).
    Anything else raises :class:`InputError` with one line."""
    if str(path) == "-":
        return "stdout"
    check_name(path, option)
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return "new"
    except OSError as exc:
        raise InputError(f"{option} {path}: {exc.strerror}") from None
    try:
        st = os.stat(path)
    except OSError:
        st = lst  # a dangling link
    if _same_file(st, 1) or _same_file(st, 2) or stat.S_ISFIFO(st.st_mode):
        return "inplace"
    if stat.S_ISCHR(st.st_mode) and _is_devnull(st):
        return "inplace"
    if stat.S_ISLNK(lst.st_mode) and not stat.S_ISDIR(st.st_mode):
        raise InputError(
            f"{option} {path} is a symbolic link (to {os.readlink(path)}); give the real path or remove the link"
        )
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{option} {path} is {_kind_name(st.st_mode)}, not a file; give a file name")
    if not st.st_mode & stat.S_IWUSR:
        raise InputError(f"{option} {path} is read-only; make it writable (chmod u+w) or give another name")
    return "file"


def _is_devnull(st: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(null.st_mode) and st.st_rdev == null.st_rdev


def _kind_name(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a socket" if stat.S_ISSOCK(mode) else "a special file"


def check_name(path: str | Path, option: str = "output", *, utf8: bool = False) -> None:
    """Every component of ``path`` fits the file system (NAME_MAX bytes), and with ``utf8`` the path
    is valid UTF-8 (OpenCV takes paths as UTF-8 C strings and crashes on anything else)."""
    text = str(path)
    if utf8:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            shown = text.encode("utf-8", "backslashreplace").decode("ascii", "replace")
            raise InputError(f"{option} {shown}: the name is not valid UTF-8; rename it") from None
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(f"{option} {text[:60]}...: a name in it is longer than {NAME_MAX} bytes")


# ---- locks ----------------------------------------------------------------------------------------
_HELD: Dict[str, List[Any]] = {}  # absolute output path -> [lock fd, lock path, count]
_HELD_LOCK = threading.RLock()  # sinks write from their own threads


def lock_path(path: str | Path) -> Path:
    p = Path(path).absolute()
    return p.with_name(_fit(f".{p.name}", ".lock"))


def claim(path: str | Path, option: str = "output") -> None:
    """Hold the lock beside ``path`` for this process (counted: :func:`release` once per claim).
    Another process holding it: :class:`InputError` naming it."""
    with _HELD_LOCK:
        _claim(str(Path(path).absolute()), path, option)


def _claim(key: str, path: str | Path, option: str) -> None:
    held = _HELD.get(key)
    if held is not None and (held[0] >= 0 or fcntl is None):
        held[2] += 1
        return
    count = held[2] + 1 if held is not None else 1
    if fcntl is None or str(path) == "-":
        _HELD[key] = [-1, None, count]
        return
    lock = lock_path(path)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ENOENT:  # its folder is not made yet: the writer locks again when it is
                _HELD[key] = [-1, None, count]
                return
            raise InputError(f"{option} {path}: cannot lock it ({lock.name}: {exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise InputError(
                f"{option} {path} is being written by another process (PID {holder}, lock {lock}); "
                "wait for it or give another name"
            ) from None
        if _still_linked(fd, lock):  # not removed by its last holder between our open and flock
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, lock, count]


def _still_linked(fd: int, lock: Path) -> bool:
    try:
        return _same_file(os.stat(lock, follow_symlinks=False), fd)
    except OSError:
        return False


def release(path: str | Path) -> None:
    key = str(Path(path).absolute())
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is None:
            return
        held[2] -= 1
        if held[2] <= 0:
            _unlock(_HELD.pop(key))


def _unlock(held: List[Any]) -> None:
    fd, lock = held[0], held[1]
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # removed while held: a waiter that opened it sees it unlinked and retries
        os.close(fd)


def release_all() -> None:
    """Every lock this process holds (the CLI calls it when a command ends)."""
    with _HELD_LOCK:
        while _HELD:
            _unlock(_HELD.popitem()[1])


# ---- temporary files ------------------------------------------------------------------------------
def _fit(prefix: str, suffix: str, reserve: int = 0) -> str:
    """``prefix + suffix`` cut (in the prefix, by characters) to fit NAME_MAX bytes with ``reserve``."""
    while len(os.fsencode(prefix + suffix)) + reserve > NAME_MAX and len(prefix) > 2:
        prefix = prefix[:-1]
    return prefix + suffix


def disk_full(exc: OSError, path: str | Path) -> OutputError:
    return OutputError(
        f"{path}: {exc.strerror or 'no space left'} while writing it; nothing was written under that name"
    )


class AtomicFile:
    """One output file, written under a temporary name (``tmp``) and renamed over ``path`` by
    :meth:`commit`; :meth:`discard` leaves ``path`` as it was. ``keep_suffix``: the temporary name
    ends in the final suffix (OpenCV picks the container by it). A FIFO, /dev/null or stdout is
    written in place (``inplace``; ``-`` is stdout)."""

    def __init__(self, path: str | Path, option: str = "output", *, keep_suffix: bool = False) -> None:
        self.path, self.option = Path(path), option
        kind = target_kind(self.path, option)
        if kind == "dir":
            raise InputError(f"{option} {path} is a folder; it must name a file")
        self.inplace = kind in ("stdout", "inplace")
        self.tmp = self.path
        self.done = False
        if self.inplace:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        claim(self.path, option)
        suffix = f".tmp{self.path.suffix}" if keep_suffix else ".tmp"
        try:
            fd, tmp = tempfile.mkstemp(
                prefix=_fit(f".{self.path.name}.", "", 8 + len(suffix)), suffix=suffix, dir=self.path.parent
            )
        except OSError as exc:
            release(self.path)
            raise InputError(f"{option} {path}: cannot write in {self.path.parent} ({exc.strerror})") from None
        os.close(fd)
        self.tmp = Path(tmp)
        # mkstemp makes 0600: a replaced file keeps its mode, a new one is 0644 (outputs are shared)
        os.chmod(tmp, stat.S_IMODE(os.stat(self.path).st_mode) if kind == "file" else 0o644)

    def open_text(self) -> Any:
        """The file to write text to (stdout for ``-``)."""
        if str(self.path) == "-":
            return sys.stdout
        return open(self.tmp, "w", encoding="utf-8")

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        if self.inplace:
            return
        try:
            os.replace(self.tmp, self.path)
        finally:
            release(self.path)

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        if self.inplace:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
        release(self.path)


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "output", *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was; a full disk is
    one :class:`OutputError` line."""
    out = AtomicFile(path, option, keep_suffix=keep_suffix)
    try:  # from here on: an interrupt (Ctrl-C) anywhere, even before the yield, removes the file
        if str(path) == "-":
            sys.stdout.flush()
        yield Path("/dev/stdout") if str(path) == "-" else out.tmp
        out.commit()
    except OSError as exc:
        out.discard()
        if exc.errno in DISK_FULL:
            raise disk_full(exc, path) from None
        raise
    except BaseException:
        out.discard()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---- bounded reads --------------------------------------------------------------------------------
def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The whole of a small file, at most ``limit`` bytes (a device such as /dev/zero, or a file that
    is too large, is one :class:`InputError` line, never gigabytes read)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > limit:
        raise InputError(f"{what} {path}: larger than {limit:,} bytes; this is not the file meant here")
    return data


def read_image(path: str | Path, flags: int | None = None) -> np.ndarray | None:
    """An image file as OpenCV reads it (``flags``: default ``IMREAD_UNCHANGED``), or None when it is
    not a readable image or is larger than ``overfeat_edge.MAX_PIXELS`` (its header is checked by
    OpenCV before it decodes: ``OPENCV_IO_MAX_IMAGE_PIXELS``). The file is read by Python and decoded
    from memory, so OpenCV never sees its name (any bytes) and prints nothing of its own."""
    import cv2

    from overfeat_edge import MAX_PIXELS

    quiet_opencv()
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if flags is None else flags) if data.size else None
    except (OSError, ValueError, cv2.error, MemoryError):
        return None
    if img is None or img.shape[0] * img.shape[1] > MAX_PIXELS:
        return None
    return img


def quiet_opencv() -> None:
    """OpenCV's own ``[ WARN ]`` lines off: we say what went wrong in one line of ours."""
    import cv2

    with contextlib.suppress(AttributeError, cv2.error):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
