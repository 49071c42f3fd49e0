"""[no torch] The validators every command and the stream plan share: output paths and numbers,
checked once, before any work, each failure one :class:`~overfeat_edge.errors.InputError` line."""

from __future__ import annotations

import tempfile
from pathlib import Path

from overfeat_edge.errors import InputError


# ---- one validator for output paths, checked before the work -----------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output(path: Path, option: str, *, folder: bool = False) -> Path:
    """``path`` can be written as a file (or a ``folder``): not the other kind already, not under a
    file, and in a writable place. Raises :class:`InputError` with one line before any work."""
    if path.exists() and path.is_dir() != folder:
        kind, want = ("a file", "a folder") if folder else ("a folder", "a file")
        raise InputError(f"{option} {path} is {kind}; it must name {want}")
    base = _nearest_existing(path if not path.exists() else path.parent)
    if not base.is_dir():
        raise InputError(f"{option} {path}: {base} is a file, so nothing can be written under it")
    try:  # really try (root passes access() checks on a read-only file system)
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise InputError(
            f"{option} {path}: cannot write in {base} ({exc.strerror or 'read-only or no permission'})"
        ) from None
    return path


def check_outputs(named: dict[str, Path | None], inputs: list[Path] | tuple[Path, ...] = ()) -> None:
    """Every named output is a different file, and none is an input."""
    seen: dict[Path, str] = {}
    ins = {p.resolve() for p in inputs}
    for option, path in named.items():
        if path is None:
            continue
        real = path.resolve()
        if real in seen:
            raise InputError(f"{seen[real]} and {option} name the same file {path}; give each its own")
        if real in ins:
            raise InputError(f"{option} {path} is an input; it would be overwritten")
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
