"""[no torch] The validators every command and the stream plan share: output paths and numbers,
checked once, before any work, each failure one :class:`~overfeat_edge.errors.InputError` line."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from overfeat_edge.errors import InputError
from overfeat_edge.io import claim, target_kind

_ON_STDOUT: list[Callable[[], None]] = []


def when_stdout_is_output(fn: Callable[[], None]) -> None:
    """``fn`` runs when an output is ``-`` (stdout): the CLI moves its own lines to stderr."""
    _ON_STDOUT.append(fn)


# ---- one validator for output paths, checked before the work -----------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(path: Path, option: str, *, folder: bool = False) -> Path:
    """``path`` can be written as a file (or a ``folder``): not the other kind already, not a device,
    socket, link or read-only file (a FIFO, /dev/null and ``-`` are written in place), not under a
    file, and in a writable place; then locked for this process (:func:`overfeat_edge.io.claim`: a
    second process writing it is refused). Raises :class:`InputError` with one line before any work."""
    kind = target_kind(path, option)
    if kind in ("stdout", "inplace"):
        if folder:
            raise InputError(f"{option} {path} is not a folder; it must name a folder")
        if kind == "stdout":
            for fn in _ON_STDOUT:  # stdout carries the output: the CLI's own lines go to stderr
                fn()
        return path
    if (kind == "dir") != folder and kind != "new":
        kind_s, want = ("a file", "a folder") if folder else ("a folder", "a file")
        raise InputError(f"{option} {path} is {kind_s}; it must name {want}")
    base = path if kind == "dir" else _nearest_existing(path.parent)
    if not base.is_dir():
        raise InputError(f"{option} {path}: {base} is a file, so nothing can be written under it")
    try:  # really try (root passes access() checks on a read-only file system)
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise InputError(
            f"{option} {path}: cannot write in {base} ({exc.strerror or 'read-only or no permission'})"
        ) from None
    claim(path, option)
    return path


def check_outputs(named: dict[str, Path | None], inputs: list[Path] | tuple[Path, ...] = ()) -> None:
    """Every named output is a different file, and none is an input or a folder holding one."""
    seen: dict[Path, str] = {}
    ins = {p.resolve() for p in inputs}
    for option, path in named.items():
        if path is None or str(path) == "-":
            continue
        real = path.resolve()
        if real in seen:
            raise InputError(f"{seen[real]} and {option} name the same file {path}; give each its own")
        if real in ins:
            raise InputError(f"{option} {path} is an input; it would be overwritten")
        inside = next((p for p in ins if real in p.parents), None)
        if inside is not None:
            raise InputError(f"{option} {path} holds the input {inside}; give another folder")
        seen[real] = option


# ---- one validator for numeric options ----------------------------------------------------------
def check_number(
    option: str,
    value: float | None,
    lo: float | None = None,
    hi: float | None = None,
    *,
    above: bool = False,
) -> None:
    """``value`` (when given) is finite and within [lo, hi] (``above``: strictly greater than lo)."""
    if value is None:
        return
    from overfeat_edge.schema import check_int, check_number

    def fail(expected: str) -> InputError:
        return InputError(f"{option} must be {expected}, got {value}")

    if isinstance(value, int) and not isinstance(value, bool) and not above:  # an integer option
        check_int(value, None if lo is None else int(lo), None if hi is None else int(hi), fail)
    else:
        check_number(value, lo, hi, above, fail)
