"""train, eval: fit a detector on a COCO/YOLO dataset and measure it with COCO mAP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

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
from overfeat_edge.commands.progress import Steps
from overfeat_edge.errors import InputError
from overfeat_edge.io import atomic_write_text
from overfeat_edge.lazy import require
from overfeat_edge.words import plural

if TYPE_CHECKING:
    from overfeat_edge.train.datasets import DetectionDataset
    from overfeat_edge.train.trainer import TrainConfig, Trainer


def warn_outside_boxes(count: int, data: Path) -> None:
    if count:
        err_console.print(
            f"warning: {plural(count, 'box')} of {data} {'reaches' if count == 1 else 'reach'} outside their image "
            "(kept as given)",
            style="yellow",
        )


# ---- train's options -----------------------------------------------------------------------------
TrainDataOpt = Annotated[
    Path, typer.Option(help="COCO (folder or JSON) or YOLO dataset (data.yaml's train:, else images/train).")
]
TrainOutOpt = Annotated[Path, typer.Option(help="Checkpoint to write (.pt); its .state.pt makes the run resumable.")]
NetworkOpt = Annotated[str, typer.Option(help="Registered network, e.g. overfeat-mini or overfeat-fast@0.25.")]
EpochsOpt = Annotated[int, typer.Option(help="Epochs of --steps-per-epoch batches.")]
StepsPerEpochOpt = Annotated[int, typer.Option(help="Batches per epoch.")]
BatchSizeOpt = Annotated[int, typer.Option(help="Windows per batch.")]
LrOpt = Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")]
BoxWeightOpt = Annotated[float, typer.Option(help="Weight of the L2 box loss.")]
SeedOpt = Annotated[int, typer.Option(help="The same seed, data and threads: the same weights.")]
StoredScalesOpt = Annotated[
    Optional[List[str]], typer.Option("--scales", "-s", help="The pyramid stored in the model.")
]
HardFractionOpt = Annotated[float, typer.Option(help="Share of a batch from mined hard negatives (0: none).")]
MineImagesOpt = Annotated[int, typer.Option(help="Images mined for hard negatives per epoch.")]
TorchThreadsOpt = Annotated[Optional[int], typer.Option(help="torch CPU threads.")]
ResumeOpt = Annotated[bool, typer.Option("--resume/--no-resume", help="Continue from OUT's saved state.")]
# train's numeric options, checked in this order before any data is read: (lowest, highest, lowest excluded)
TRAIN_LIMITS: dict[str, tuple[float, float, bool]] = {
    "epochs": (1, 10000, False),
    "steps_per_epoch": (1, 1 << 20, False),
    "batch_size": (1, 1 << 16, False),
    "seed": (0, 2**32 - 1, False),
    "mine_images": (0, 1 << 20, False),
    "threads": (1, 256, False),
    "lr": (0, 10, True),
    "box_weight": (0, 1e6, False),
    "hard_fraction": (0, 0.99, False),
}


def train(
    data: TrainDataOpt,
    out: TrainOutOpt,
    model: NetworkOpt = "overfeat-mini",
    epochs: EpochsOpt = 16,
    steps_per_epoch: StepsPerEpochOpt = 200,
    batch_size: BatchSizeOpt = 128,
    lr: LrOpt = 4e-3,
    box_weight: BoxWeightOpt = 5.0,
    seed: SeedOpt = 0,
    scales: StoredScalesOpt = None,
    hard_fraction: HardFractionOpt = 0.15,
    mine_images: MineImagesOpt = 64,
    threads: TorchThreadsOpt = None,
    resume: ResumeOpt = True,
) -> None:
    """Train an OverFeat detector on windows (classes + background, L2 box regression).

    Example: overfeat-edge train --data runs/synth --out runs/train/model.pt --epochs 4
    """
    options = dict(locals())  # the parameters, by name: those that name a TrainConfig field become it
    require("torch", "train")
    from overfeat_edge.train.datasets import read_dataset
    from overfeat_edge.train.trainer import Trainer, state_path

    cfg = _config(out, options)
    dataset = read_dataset(data, "train")
    console.print(f"{len(dataset)} images, classes: {', '.join(dataset.class_names)}")
    warn_outside_boxes(dataset.outside, data)
    trainer = Trainer(dataset, cfg, out)
    if trainer.epoch == 0:
        keep(f"no epoch finished: nothing was written to {out}")
    if resume and trainer.resume():
        console.print(f"resumed from {state_path(out)} at epoch {trainer.epoch}/{epochs}")
    elif state_path(out).is_file():
        console.print(f"--no-resume: starting over (overwriting {out})")
    _fit(trainer, out)
    console.print(f"wrote {out} ({trainer.spec.arch.name}, {plural(trainer.epoch, 'epoch')})")


def _config(out: Path, options: dict[str, Any]) -> TrainConfig:
    """train's ``options`` (its parameters by name), each checked with one line before any data is read, as a
    TrainConfig of those that name one of its fields."""
    from dataclasses import fields

    from overfeat_edge.train.trainer import TrainConfig

    if out.suffix not in (".pt", ".pth"):
        raise InputError(f"--out must end in .pt, got {out}")
    check_output(out, "--out")
    for name, (lo, hi, above) in TRAIN_LIMITS.items():
        check_number(f"--{name.replace('_', '-')}", options[name], lo, hi, above=above)
    if options["scales"]:
        from overfeat_edge.pipeline.pyramid import parse_scales

        parse_scales(options["scales"])  # its own one-line errors, before any data is read
    given = {f.name: options[f.name] for f in fields(TrainConfig) if f.name in options}
    return TrainConfig(**{**given, "scales": list(options["scales"] or [])})


def _fit(trainer: Trainer, out: Path) -> None:
    """Run the trainer with a progress line; in a log a line each tenth of an epoch and one per epoch."""
    epochs, steps_per_epoch = trainer.cfg.epochs, trainer.cfg.steps_per_epoch
    total, done = epochs * steps_per_epoch, trainer.epoch * steps_per_epoch
    # in a log: a line each tenth of an epoch (about 4 minutes an epoch on 2 cores)
    with Steps("train", total, fields="epoch {epoch}, loss {loss:.3f}", lines=epochs * 10, done=done) as steps:

        def on_step(e: int, _step: int, loss: float) -> None:
            steps.advance(epoch=f"{e + 1}/{epochs}", loss=loss)

        def on_epoch(st: object) -> None:
            keep(f"{out} holds epoch {trainer.epoch} of {epochs}; train again with the same options to resume")
            steps.print(
                "epoch {epoch}: loss {loss:.4f} (cls {cls_loss:.4f}, box {box_loss:.4f}), "
                "window accuracy {accuracy:.3f}, {windows_per_s:.0f} windows/s".format(**vars(st))
            )

        trainer.run(on_step, on_epoch)


# ---- eval's options ------------------------------------------------------------------------------
EvalDataOpt = Annotated[
    Path, typer.Option(help="COCO (folder or JSON) or YOLO dataset: data.yaml, a folder, or DIR/images/val.")
]
EvalModelOpt = Annotated[Optional[str], typer.Option(help="An exported .onnx, or a shipped model name.")]
DetectionsOpt = Annotated[
    Optional[Path],
    typer.Option(help="Score precomputed detections instead (detect's detections.json, or COCO results JSON)."),
]
SplitOpt = Annotated[str, typer.Option(help="YOLO data.yaml or images/<split> layouts: train, val or test.")]
ThresholdOpt = Annotated[
    Optional[float], typer.Option(help="Per-window class probability to keep a box (default: the model's).")
]
MergeOpt = Annotated[Optional[str], typer.Option(help="greedy (OverFeat) or nms (default: the model's).")]
MinScoreOpt = Annotated[
    Optional[float], typer.Option(help="Drop merged boxes scoring below this (default: the model's).")
]
OrtThreadsOpt = Annotated[Optional[int], typer.Option(help="onnxruntime intra-op threads.")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Evaluate on the first N images only.")]
AblationOpt = Annotated[bool, typer.Option("--ablation", help="Paper's Table 2: stride x scales x merge (torch).")]
JsonOutOpt = Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON.")]


def evaluate(
    data: EvalDataOpt,
    model: EvalModelOpt = None,
    detections: DetectionsOpt = None,
    split: SplitOpt = "val",
    scales: Scales = None,
    threshold: ThresholdOpt = None,
    merge: MergeOpt = None,
    min_score: MinScoreOpt = None,
    threads: OrtThreadsOpt = None,
    limit: LimitOpt = None,
    ablation: AblationOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """COCO mAP@[.5:.95] and mAP@.5 with pycocotools; --ablation adds the coarse/fine x scales x merge table.

    Example: overfeat-edge eval --data runs/synth --model overfeat-mini-shapes
    """
    from overfeat_edge.train.datasets import read_dataset

    detector = {"threshold": threshold, "merge": merge, "min_score": min_score}
    _check_eval(data, model, detections, ablation=ablation, limit=limit, json_out=json_out, detector=detector)
    dataset = read_dataset(data, split)
    warn_outside_boxes(dataset.outside, data)
    n = min(limit, len(dataset)) if limit else len(dataset)
    if detections is not None:
        table_rows = [_score_file(detections, dataset, n)]
    else:
        table_rows = _run_model(str(model), dataset, n, (scales, threshold, merge, min_score), threads, limit, ablation)
    _show(table_rows, f"COCO evaluation on {data} ({n} images)")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps({"data": str(data), "images": n, "rows": table_rows}, indent=1))
        console.print(f"wrote {json_out}")


def _check_eval(
    data: Path,
    model: Optional[str],
    detections: Optional[Path],
    *,
    ablation: bool,
    limit: Optional[int],
    json_out: Optional[Path],
    detector: dict[str, Any],
) -> None:
    """eval's options, each checked with one line before any data is read or detection run (``detector``:
    --threshold, --merge and --min-score, by DetectorConfig's own checks)."""
    from overfeat_edge.pipeline.detector import DetectorConfig

    require("pycocotools", "eval")  # before the detection pass, not after it
    if (model is None) == (detections is None):
        raise InputError("eval needs one of --model (run it) or --detections FILE (score precomputed detections)")
    if detections is not None and ablation:
        raise InputError("--ablation runs the model: use it with --model, not --detections")
    check_number("--limit", limit, 1, 1 << 30)
    DetectorConfig(**detector)
    if json_out is not None:
        check_output(json_out, "--json")
        check_outputs({"--json": json_out}, [p for p in data.iterdir() if p.is_file()] if data.is_dir() else [data])


def _run_model(
    model: str,
    dataset: DetectionDataset,
    n: int,
    config: tuple[Any, ...],
    threads: Optional[int],
    limit: Optional[int],
    ablation: bool,
) -> list[dict[str, Any]]:
    from overfeat_edge.train.ablation import ablation_rows, run_ablation

    scales, threshold, merge, min_score = config
    rows = ablation_rows(model, scales, threshold, merge, one=not ablation, min_score=min_score)
    with Steps("evaluating", n * len(rows)) as steps:
        return run_ablation(rows, dataset, model, threads, limit, steps.advance)


def _score_file(path: Path, dataset: DetectionDataset, n: int) -> dict[str, Any]:
    from overfeat_edge.train.detections_file import read_detections
    from overfeat_edge.train.evaluate import score

    r = score(dataset, read_detections(path, dataset, n), n)
    return {"stride": "-", "n_scales": "-", "merge": "-", "detections_file": str(path), **r.row()}


def _show(table_rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for col in ("stride", "scales", "merge", "mAP@[.5:.95]", "mAP@.5", "ms/frame", "detections"):
        table.add_column(col, justify="left" if col in ("stride", "merge") else "right")
    for r in table_rows:
        ms = r["ms_per_frame"]
        table.add_row(
            r["stride"],
            str(r["n_scales"]),
            r["merge"],
            f"{r['mAP']:.3f}",
            f"{r['mAP50']:.3f}",
            "-" if ms is None else f"{ms:.1f}",
            str(r["detections"]),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    command(app, train)
    command(app, evaluate, "eval")
