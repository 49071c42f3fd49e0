"""build: a TensorRT engine per device, one optimization profile per pyramid scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

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


def build(
    model: Annotated[str, typer.Option(help="A shipped model's name or an .onnx (Q/DQ for INT8).")],
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8.")] = "fp16",
    frame_size: Annotated[str, typer.Option(help="The camera's frames, HEIGHTxWIDTH.")] = ("480x640"),
    scales: Scales = None,
    min_size: MinSize = None,
    scale_factor: ScaleFactor = None,
    dynamic: Annotated[Optional[int], typer.Option(help="Also a dynamic profile up to this side.")] = None,
    calib_images: Annotated[
        Optional[str],
        typer.Option(help="INT8, TensorRT <= 10: calibrate here on these images."),
    ] = None,
    calib_count: Annotated[int, typer.Option(help="Images used by --calib-images.")] = 32,
    calib: Annotated[Optional[Path], typer.Option(help="INT8, TensorRT <= 10: calibrate's trt.cache.")] = None,
    workspace: Annotated[int, typer.Option(help="Builder workspace limit in MiB.")] = 1024,
    dla: Annotated[Optional[int], typer.Option(help="Jetson DLA core (GPU fallback on).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if an up-to-date engine exists.")] = False,
    engines: Annotated[Path, typer.Option(help="Engine cache root.")] = Path("engines"),
    batch: Annotated[
        str,
        typer.Option(help="Frames per inference: N, or MIN,OPT,MAX for several cameras."),
    ] = "1",
) -> None:
    """Build a TensorRT engine: one optimization profile per pyramid scale, cached per device.

    Example: overfeat-edge build --model mtcnn-face --precision fp16 --frame-size 720x1280
    """
    scales = pyramid(scales, min_size, scale_factor)
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from overfeat_edge.engine.builder import (
        BuildRequest,
        build_cached,
        parse_batch,
        parse_frame_size,
        prepare,
        prepare_stages,
        stage_engine_path,
    )

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
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    what = f"building {precision} ({plural(len(prepared.profiles), 'profile')})"
    if not console.is_terminal:  # a log: the step once (a bar there prints only a blank line at its end)
        console.print(f"{what} ...")
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        tasks: dict[str, Any] = {}

        def report(phase: str, step: int, steps: int) -> None:  # TensorRT 10+'s progress monitor
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=max(steps, 1))
            progress.update(tasks[phase], completed=step, total=max(steps, 1))

        progress.add_task(what, total=None)
        built = build_cached(prepared, engines=engines, rebuild=rebuild, report=report)
        done = [built]
        for name, stage in stages:  # one dynamic-batch engine per stage, beside the detector's
            path = stage_engine_path(built.path, name)
            done.append(build_cached(stage, engines=engines, rebuild=rebuild, report=report, path=path))
    for b in done:
        if not b.built:
            console.print(f"up to date: {b.path} ({b.summary})")
            continue
        if b.stale:
            err_console.print(f"rebuilt: {b.stale}", style="yellow")
        console.print(f"built {b.path} in {b.seconds:.1f} s ({b.path.stat().st_size / 2**20:.1f} MiB); {b.summary}")
    console.print(f"run it: overfeat-edge run SOURCE --backend tensorrt --model {built.path}")


def register(app: typer.Typer) -> None:
    command(app, build)
