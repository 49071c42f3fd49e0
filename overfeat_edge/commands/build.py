"""build: a TensorRT engine per device, one optimization profile per pyramid scale."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import (
    MinSize,
    ScaleFactor,
    Scales,
    check_output,
    command,
    console,
    err_console,
    pyramid,
)
from overfeat_edge.words import plural

if TYPE_CHECKING:
    from overfeat_edge.engine.builder import Built, Prepared


# ---- build's options -----------------------------------------------------------------------------
ModelOpt = Annotated[str, typer.Option(help="A shipped model's name or an .onnx (Q/DQ for INT8).")]
PrecisionOpt = Annotated[str, typer.Option(help="fp32, fp16 or int8.")]
FrameSizeOpt = Annotated[str, typer.Option(help="The camera's frames, HEIGHTxWIDTH.")]
DynamicOpt = Annotated[Optional[int], typer.Option(help="Also a dynamic profile up to this side.")]
CalibImagesOpt = Annotated[Optional[str], typer.Option(help="INT8, TensorRT <= 10: calibrate here on these images.")]
CalibCountOpt = Annotated[int, typer.Option(help="Images used by --calib-images.")]
CalibOpt = Annotated[Optional[Path], typer.Option(help="INT8, TensorRT <= 10: calibrate's trt.cache.")]
WorkspaceOpt = Annotated[int, typer.Option(help="Builder workspace limit in MiB.")]
DlaOpt = Annotated[Optional[int], typer.Option(help="Jetson DLA core (GPU fallback on).")]
RebuildOpt = Annotated[bool, typer.Option("--rebuild", help="Build even if an up-to-date engine exists.")]
EnginesOpt = Annotated[Path, typer.Option(help="Engine cache root.")]
BatchOpt = Annotated[str, typer.Option(help="Frames per inference: N, or MIN,OPT,MAX for several cameras.")]


def build(
    model: ModelOpt,
    precision: PrecisionOpt = "fp16",
    frame_size: FrameSizeOpt = "480x640",
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    dynamic: DynamicOpt = None,
    calib_images: CalibImagesOpt = None,
    calib_count: CalibCountOpt = 32,
    calib: CalibOpt = None,
    workspace: WorkspaceOpt = 1024,
    dla: DlaOpt = None,
    rebuild: RebuildOpt = False,
    engines: EnginesOpt = Path("engines"),
    batch: BatchOpt = "1",
) -> None:
    """Build a TensorRT engine: one optimization profile per pyramid scale, cached per device.

    Example: overfeat-edge build --model mtcnn-face --precision fp16 --frame-size 720x1280
    """
    scales = pyramid(scales, min_size, scale_factor)
    from overfeat_edge.engine.builder import BuildRequest, parse_batch, parse_frame_size, prepare, prepare_stages

    check_output(engines, "--engines", folder=True)
    request = BuildRequest(  # every option checked here, before TensorRT is looked for
        model=model,
        precision=precision,
        frame_hw=parse_frame_size(frame_size),
        scales=tuple(scales) if scales else None,
        dynamic=dynamic,
        calib=calib,
        calib_images=calib_images,
        calib_count=calib_count,
        workspace_mb=workspace,
        dla=dla,
        batch=parse_batch(batch),
    )
    prepared = prepare(request)
    stages = prepare_stages(prepared)  # a cascade's crop classifiers (MTCNN's R-Net, O-Net): checked now too
    what = f"building {precision} ({plural(len(prepared.profiles), 'profile')})"
    done = _build(prepared, stages, what=what, engines=engines, rebuild=rebuild)
    for b in done:
        if b.built and b.stale:
            err_console.print(f"rebuilt: {b.stale}", style="yellow")
        console.print(b.describe())
    console.print(f"run it: overfeat-edge run SOURCE --backend tensorrt --model {done[0].path}")


def _build(
    prepared: Prepared, stages: List[Tuple[str, Prepared]], *, what: str, engines: Path, rebuild: bool
) -> List[Built]:
    """`build_with_stages` under a progress bar per TensorRT phase on a terminal, a line in a log."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from overfeat_edge.engine.builder import build_with_stages

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    if not console.is_terminal:  # a log: the step once (a bar there prints only a blank line at its end)
        console.print(f"{what} ...")
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        tasks: Dict[str, Any] = {}

        def report(phase: str, step: int, steps: int) -> None:  # TensorRT 10+'s progress monitor
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=max(steps, 1))
            progress.update(tasks[phase], completed=step, total=max(steps, 1))

        progress.add_task(what, total=None)
        return build_with_stages(prepared, stages, engines=engines, rebuild=rebuild, report=report)


def register(app: typer.Typer) -> None:
    command(app, build)
