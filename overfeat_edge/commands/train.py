"""train, eval: fit a detector on a COCO/YOLO dataset and measure it with COCO mAP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.common import (
    Scales,
    check_number,
    check_output,
    check_outputs,
    command,
    console,
    err_console,
    keep,
)
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.lazy import require


def warn_outside_boxes(count: int, data: Path) -> None:
    if count:
        err_console.print(
            f"warning: {count} box(es) of {data} reach outside their image (kept as given)", style="yellow"
        )


def train(
    data: Annotated[Path, typer.Option(help="COCO (folder with annotations.json, or the JSON) or YOLO folder.")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write (.pt); its .state.pt makes the run resumable.")],
    model: Annotated[str, typer.Option(help="Registered network, e.g. overfeat-mini or overfeat-fast@0.25.")] = (
        "overfeat-mini"
    ),
    epochs: Annotated[int, typer.Option(help="Epochs of --steps-per-epoch batches.")] = 16,
    steps_per_epoch: Annotated[int, typer.Option(help="Batches per epoch.")] = 200,
    batch_size: Annotated[int, typer.Option(help="Windows per batch.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine).")] = 4e-3,
    box_weight: Annotated[float, typer.Option(help="Weight of the L2 box loss.")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed: the same seed, data and threads give the same weights.")] = 0,
    scales: Annotated[
        Optional[List[str]], typer.Option("--scales", "-s", help="Default pyramid stored in the model.")
    ] = None,
    hard_fraction: Annotated[
        float, typer.Option(help="Share of each batch drawn from mined hard negatives (0 = no mining).")
    ] = 0.15,
    mine_images: Annotated[int, typer.Option(help="Images searched for hard negatives after each epoch.")] = 64,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from OUT's saved state.")] = True,
) -> None:
    """Train an OverFeat detector on windows (classes + background, L2 box regression)."""
    require("torch", "train")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from overfeat_edge.train.datasets import read_dataset
    from overfeat_edge.train.trainer import TrainConfig, Trainer, state_path

    if out.suffix not in (".pt", ".pth"):
        raise InputError(f"--out must end in .pt, got {out}")
    check_output(out, "--out")
    for option, value, lo, hi in (
        ("--epochs", epochs, 1, 10000),
        ("--steps-per-epoch", steps_per_epoch, 1, 1 << 20),
        ("--batch-size", batch_size, 1, 1 << 16),
        ("--seed", seed, 0, 2**32 - 1),
        ("--mine-images", mine_images, 0, 1 << 20),
        ("--threads", threads, 1, 256),
    ):
        check_number(option, value, lo, hi)
    check_number("--lr", lr, 0, 10, above=True)
    check_number("--box-weight", box_weight, 0, 1e6)
    check_number("--hard-fraction", hard_fraction, 0, 0.99)
    if scales:
        from overfeat_edge.pipeline.pyramid import parse_scales

        parse_scales(scales)  # its own one-line errors, before any data is read
    cfg = TrainConfig(
        model=model,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        lr=lr,
        box_weight=box_weight,
        seed=seed,
        scales=list(scales or []),
        threads=threads,
        hard_fraction=hard_fraction,
        mine_images=mine_images,
    )
    dataset = read_dataset(data)
    console.print(f"{len(dataset)} images, classes: {', '.join(dataset.class_names)}")
    warn_outside_boxes(dataset.outside, data)
    trainer = Trainer(dataset, cfg, out)
    if trainer.epoch == 0:
        keep(f"no epoch finished: nothing was written to {out}")
    if resume and trainer.resume():
        console.print(f"resumed from {state_path(out)} at epoch {trainer.epoch}/{epochs}")
    elif state_path(out).is_file():
        console.print(f"--no-resume: starting over (overwriting {out})")
    columns = (
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=epochs * steps_per_epoch, epoch=0, loss=0.0)
        progress.update(task, completed=trainer.epoch * steps_per_epoch)

        def on_step(e: int, _step: int, loss: float) -> None:
            progress.update(task, advance=1, epoch=f"{e + 1}/{epochs}", loss=loss)

        def on_epoch(st: object) -> None:
            keep(f"{out} holds epoch {trainer.epoch} of {epochs}; train again with the same options to resume")
            progress.console.print(
                "epoch {epoch}: loss {loss:.4f} (cls {cls_loss:.4f}, box {box_loss:.4f}), "
                "window accuracy {accuracy:.3f}, {windows_per_s:.0f} windows/s".format(**vars(st))
            )

        trainer.run(on_step, on_epoch)
    console.print(f"wrote {out} ({trainer.spec.arch.name}, {trainer.epoch} epochs)")


def evaluate(
    data: Annotated[Path, typer.Option(help="COCO or YOLO dataset with labels.")],
    model: Annotated[str, typer.Option(help="An exported .onnx, or a shipped model name.")],
    scales: Scales = None,
    threshold: Annotated[float, typer.Option(help="Per-window class probability to keep a box.")] = 0.5,
    merge: Annotated[str, typer.Option(help="greedy (OverFeat) or nms.")] = "greedy",
    min_score: Annotated[float, typer.Option(help="Drop merged boxes scoring below this.")] = 0.0,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate on the first N images only.")] = None,
    ablation: Annotated[
        bool, typer.Option("--ablation", help="Paper Table 2 style: stride x scales x merge (needs torch).")
    ] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")] = None,
) -> None:
    """COCO mAP@[.5:.95] and mAP@.5 with pycocotools; --ablation adds the coarse/fine x scales x merge table."""
    from rich.progress import Progress

    from overfeat_edge.pipeline.detector import DetectorConfig
    from overfeat_edge.train.ablation import ablation_rows, run_ablation
    from overfeat_edge.train.datasets import read_dataset

    require("pycocotools", "eval")  # before the detection pass, not after it
    check_number("--limit", limit, 1, 1 << 30)
    DetectorConfig(threshold=threshold, merge=merge, min_score=min_score)  # the options' own checks
    if json_out is not None:
        check_output(json_out, "--json")
        check_outputs({"--json": json_out}, [p for p in data.iterdir() if p.is_file()] if data.is_dir() else [data])
    dataset = read_dataset(data)
    warn_outside_boxes(dataset.outside, data)
    n = min(limit, len(dataset)) if limit else len(dataset)
    rows = ablation_rows(model, scales, threshold, merge, one=not ablation, min_score=min_score)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=n * len(rows))
        table_rows = run_ablation(rows, dataset, model, threads, limit, lambda: progress.advance(task))
    table = Table(title=f"COCO evaluation on {data} ({n} images)")
    for col in ("stride", "scales", "merge", "mAP@[.5:.95]", "mAP@.5", "ms/frame", "detections"):
        table.add_column(col, justify="left" if col in ("stride", "merge") else "right")
    for r in table_rows:
        table.add_row(
            r["stride"],
            str(r["n_scales"]),
            r["merge"],
            f"{r['mAP']:.3f}",
            f"{r['mAP50']:.3f}",
            f"{r['ms_per_frame']:.1f}",
            str(r["detections"]),
        )
    console.print(table)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps({"data": str(data), "images": n, "rows": table_rows}, indent=1))
        console.print(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    command(app, train)
    command(app, evaluate, "eval")
