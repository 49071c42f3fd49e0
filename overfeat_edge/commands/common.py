"""Shared console objects and option helpers for the commands."""

from __future__ import annotations

import glob
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from typing_extensions import Annotated, get_type_hints

from overfeat_edge.errors import InputError
from overfeat_edge.io import IMAGE_SUFFIXES

# markup off: paths and messages may hold [brackets] (e.g. "overfeat-edge[torch]"); to a file or a
# pipe, wide lines (rich would wrap at 80 columns there, splitting paths)
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 250)
err_console = Console(stderr=True, markup=False, highlight=False, width=None if sys.stderr.isatty() else 250)


def expand_images(items: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths, in the order given."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"folder {p} has no images ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif p.is_file():
            out.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(q) for q in glob.glob(item, recursive=True) if Path(q).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"no image matches {item!r}")
            out += found
        else:
            raise InputError(f"image not found: {item}")
    return out


Scales = Annotated[Optional[List[str]], typer.Option("--scales", "-s", help="Pyramid (default: the model's).")]
Threshold = Annotated[
    Optional[float], typer.Option(help="Per-window class probability to keep a box (default: the model's).")
]
MinSize = Annotated[
    Optional[int],
    typer.Option("--min-size", help="MTCNN-style pyramid: the smallest object to find, in pixels (e.g. 20)."),
]
ScaleFactor = Annotated[
    Optional[float], typer.Option("--scale-factor", help="MTCNN-style pyramid: size ratio between levels (0.709).")
]


def pyramid(scales: list[str] | None, min_size: int | None, scale_factor: float | None) -> list[str] | None:
    """``--scales``, or the geometric rule ``geo:MIN_SIZE:FACTOR`` from ``--min-size``/``--scale-factor``."""
    if min_size is None and scale_factor is None:
        return scales
    if scales:
        raise InputError("--scales and --min-size/--scale-factor are two ways to give the pyramid; give one")
    return [f"geo:{min_size if min_size is not None else 20}:{scale_factor if scale_factor is not None else 0.709}"]


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


# ---- what an interruption leaves behind ----------------------------------------------------------
_KEPT: list[str] = []


def keep(what: str) -> None:
    """Say what is kept if the command is interrupted now (the last call wins)."""
    _KEPT[:] = [what]


def forget() -> None:
    """A new command: nothing said yet about what it keeps."""
    _KEPT.clear()


def kept() -> str:
    return _KEPT[0] if _KEPT else "no output was left half-written"


def close_all(things: list[object]) -> None:
    """Close every one (sinks, sources), even when one fails; the first failure is raised after."""
    first: BaseException | None = None
    for t in things:
        try:
            t.close()  # type: ignore[attr-defined]
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


def command(app: typer.Typer, fn: Callable[..., Any], name: str | None = None) -> None:
    """Register ``fn`` as a command with its annotations evaluated. Typer reads a command's
    ``Annotated[..., typer.Option(...)]`` as objects, and before Python 3.10 it does not evaluate the
    strings that ``from __future__ import annotations`` leaves (JetPack 5 runs Python 3.8)."""
    fn.__annotations__ = get_type_hints(fn, include_extras=True)
    app.command(name)(fn)


BackendOption = Annotated[
    str,
    typer.Option(
        help="auto (the fastest CPU backend installed, measured once per model and machine), onnxruntime, "
        "openvino, torch, tensorrt (an .engine), or triton (a served model: --triton-url)."
    ),
]
OvPrecision = Annotated[
    Optional[str], typer.Option(help="openvino: f32, bf16 or f16 (default: the device's own, bf16 on AMX CPUs).")
]
TritonUrl = Annotated[
    Optional[str],
    typer.Option(help="triton: the server, grpc://HOST:8001 or http://HOST:8000 (grpcs/https: TLS); --model NAME."),
]
TritonShm = Annotated[
    bool, typer.Option("--triton-shm", help="triton: the tensors through system shared memory (server on this host).")
]
OvDevice = Annotated[Optional[str], typer.Option(help="openvino: CPU (default), GPU (an Intel iGPU) or NPU.")]
