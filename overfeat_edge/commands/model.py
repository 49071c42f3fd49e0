"""models, export, import-weights."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.common import check_number, check_output, command, console, keep
from overfeat_edge.commands.progress import Steps
from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require


def models(
    names: Annotated[
        Optional[List[str]], typer.Argument(help="Names to show, e.g. overfeat-fast@0.25 (default: all).")
    ] = None,
) -> None:
    """List the registered networks and shipped models: kind, window, strides, parameters, GFLOPs per window.

    Example: overfeat-edge models overfeat-fast@0.25
    """
    from overfeat_edge.registry import entries, entry, shipped_models

    table = Table(title="overfeat-edge models")
    for col in ("name", "kind", "window", "stride", "fine", "out stride", "params M", "GFLOP/win"):
        table.add_column(col, justify="left" if col in ("name", "kind") else "right", no_wrap=True)
    found = [entry(n) for n in names] if names else entries()
    for e in found:
        a = e.arch
        fine = not a.neck  # a net with a neck runs at its own stride
        table.add_row(
            e.name if e.folder is None else f"{e.name} ({a.name})",
            e.kind,
            str(a.window),
            str(a.stride),
            f"x{a.fine_factor}" if fine else "-",
            str(a.out_stride(fine)),
            f"{a.params() / 1e6:.3f}",
            f"{a.gflops_per_window():.4f}",
        )
    console.print(table)
    for e in found:
        if e.folder is not None and e.spec is not None:
            chain = f"cascade {' -> '.join([e.arch.name, *e.stages])}" if e.stages else e.arch.name
            pyramid = ", ".join(e.scales)
            console.print(
                f"shipped, usable as --model {e.name}: {chain}; classes: {', '.join(e.spec.class_names)}; "
                f"pyramid {pyramid}",
                soft_wrap=True,
            )
    if not names and not shipped_models():
        console.print("no shipped models in this install")


# ---- export's options ----------------------------------------------------------------------------
ExportModelOpt = Annotated[str, typer.Option(help="Registry name (overfeat-fast@0.25...) or a checkpoint .pt.")]
OnnxOutOpt = Annotated[Optional[Path], typer.Option(help="Output .onnx file.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(help="Checkpoint to export (default: random weights).")]
NumClassesOpt = Annotated[Optional[int], typer.Option(help="Classes, for a registry model without weights.")]
FineStrideOpt = Annotated[
    Optional[bool], typer.Option("--fine-stride/--no-fine-stride", help="Default: the checkpoint's (fine).")
]
CheckOpt = Annotated[bool, typer.Option("--check/--no-check", help="Compare ONNX Runtime with torch.")]
HalfOpt = Annotated[bool, typer.Option("--half", help="FP16 weights and compute, FP32 inputs and outputs.")]
FineFormOpt = Annotated[str, typer.Option(help="Fine stride as dilated (faster on CPUs) or batch; the same outputs.")]
TritonOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Instead of --out: a Triton model repository to write the model into (an ONNX or shipped model)."
    ),
]
TritonBackendOpt = Annotated[
    str, typer.Option(help="--triton: onnxruntime, openvino, python (ONNX Runtime in Triton's Python) or tensorrt.")
]
MaxBatchOpt = Annotated[int, typer.Option(help="--triton: max_batch_size, the dynamic batcher's most inputs.")]
InstancesOpt = Annotated[int, typer.Option(help="--triton: model instances (instance_group count).")]


def export(
    model: ExportModelOpt,
    out: OnnxOutOpt = None,
    weights: WeightsOpt = None,
    num_classes: NumClassesOpt = None,
    fine_stride: FineStrideOpt = None,
    check: CheckOpt = True,
    half: HalfOpt = False,
    fine_form: FineFormOpt = "dilated",
    triton: TritonOpt = None,
    triton_backend: TritonBackendOpt = "onnxruntime",
    max_batch: MaxBatchOpt = 8,
    instances: InstancesOpt = 1,
) -> None:
    """Export a network to ONNX (dynamic batch/height/width; spec in the metadata), or into a Triton repository.

    Example: overfeat-edge export --model runs/train/model.pt --out model.onnx
    """
    if triton is not None or out is None:
        return _export_triton(model, out, triton, triton_backend, max_batch, instances)
    require("torch", "export")
    from overfeat_edge.export import export_onnx
    from overfeat_edge.export.network import check_finite_weights, network_to_export

    _check_export(out, fine_form=fine_form, num_classes=num_classes)
    net, spec, random = network_to_export(model, weights=weights, num_classes=num_classes)
    if random:
        console.print(f"note: no --weights: exporting {net.arch.name} with random weights", style="yellow")
    if fine_stride is not None:
        spec = spec.with_fine_stride(fine_stride)
    check_finite_weights(net)
    keep(f"nothing was written to {out}")
    what = f"exporting {spec.arch.name} ({spec.arch.params() / 1e6:.1f} M parameters)"
    with Steps(what + (" and checking parity" if check else ""), None):
        try:
            report = export_onnx(net, spec, out, check=check, half=half, fine_form=fine_form)
        except ValueError as exc:  # a network the batch form cannot run (a padded pool, extra heads)
            raise InputError(f"--fine-form {fine_form}: {exc}") from None
    console.print(
        f"wrote {out} ({spec.arch.name}, {'fine' if spec.fine_stride else 'coarse'} stride {spec.out_stride}"
        + (", float16" if half else "")
        + ")"
    )
    if isinstance(report.packed, Path):
        console.print(f"wrote {report.packed} (the small pyramid levels packed in one call)")
    for name, err in report.max_abs_error.items():
        console.print(
            f"  parity {name}: max |onnxruntime - torch| = {err:.2e} (tolerance {report.tolerance[name]:.1e}) "
            f"at {', '.join(f'{h}x{w}' for h, w in report.sizes)}"
        )


def _check_export(out: Path, *, fine_form: str, num_classes: Optional[int]) -> None:
    """export's own option checks, each one line, before a network is loaded."""
    from overfeat_edge.models.overfeat import FINE_FORMS

    if out.suffix.lower() != ".onnx":
        raise InputError(f"--out must end in .onnx, got {out}")
    if fine_form not in FINE_FORMS:
        raise InputError(f"--fine-form must be one of {', '.join(FINE_FORMS)}, got {fine_form!r}")
    check_output(out, "--out")
    check_number("--num-classes", num_classes, 1, 100000)


def _export_triton(model: str, out: Path | None, repo: Path | None, backend: str, max_batch: int, n: int) -> None:
    """``export --triton REPO``: the ONNX files copied and a ``config.pbtxt`` per model (torch-free)."""
    if repo is None or out is not None:
        raise InputError("give one of --out FILE.onnx (export to ONNX) or --triton REPO (a Triton model repository)")
    from overfeat_edge.triton.repository import write_repository

    folders = write_repository(model, repo, backend=backend, max_batch=max_batch, instances=n)
    for folder in folders:
        console.print(f"wrote {folder / 'config.pbtxt'} ({backend}, max batch {max_batch}, {n} instance(s))")
    if backend == "tensorrt":  # a plan is specific to a GPU and a TensorRT version: built where it serves
        stages = ", ".join(
            f"<engine>.{f.name[len(folders[0].name) + 1 :]}.engine to {f / '1' / 'model.plan'}" for f in folders[1:]
        )
        console.print(
            f"the plans are built on the serving GPU (written, not run here): overfeat-edge build --model {model} "
            f"--batch 1,{max_batch},{max_batch}, then copy the .engine to {folders[0] / '1' / 'model.plan'}"
            + (f" and {stages}" if stages else "")
        )


def import_weights(
    files: Annotated[
        List[Path],
        typer.Argument(help="original: net_weight_0 or _1; facenet-pytorch: pnet.pt rnet.pt onet.pt."),
    ],
    out: Annotated[Path, typer.Option(help="original: a checkpoint (.pt); facenet-pytorch: a folder.")],
    format: Annotated[
        str, typer.Option("--format", help="original (OverFeat's release) or facenet-pytorch (MTCNN).")
    ] = ("original"),
    model: Annotated[Optional[str], typer.Option(help="original: overfeat-fast or overfeat-accurate.")] = None,
    classes: Annotated[
        Optional[Path], typer.Option(help="original: text file with 1000 class names, one a line.")
    ] = None,
) -> None:
    """Load pretrained weights: OverFeat's release into a checkpoint, or MTCNN into a face cascade.

    Example: overfeat-edge import-weights pnet.pt rnet.pt onet.pt --format facenet-pytorch --out mtcnn/
    """
    require("torch", "import-weights")
    check_output(out, "--out", folder=format == "facenet-pytorch")
    if format == "facenet-pytorch":
        _import_facenet(files, out)
        return
    if format != "original":
        raise InputError(f"--format must be original or facenet-pytorch, got {format!r}")
    from overfeat_edge.models import import_original_weights, save_checkpoint

    if len(files) != 1 or model is None:
        raise InputError("--format original takes one weights file and --model overfeat-fast|overfeat-accurate")
    names = None
    if classes is not None:
        if not classes.is_file():
            raise InputError(f"class names file not found: {classes}")
        try:
            names = [ln.strip() for ln in classes.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except (UnicodeDecodeError, OSError) as exc:
            raise InputError(f"--classes {classes}: not a text file of class names ({type(exc).__name__})") from None
        if len(names) != 1000:
            raise InputError(f"{classes}: expected 1000 class names, found {len(names)}")
    net, spec = import_original_weights(files[0], model, names)
    save_checkpoint(
        out, net, spec, {"source": str(files[0]), "note": "classifier from the OverFeat release; box head untrained"}
    )
    console.print(
        f"wrote {out}: {spec.arch.name}, {spec.arch.params() / 1e6:.1f} M parameters "
        "(classifier imported; the box-regression head is untrained)"
    )


def _import_facenet(files: list[Path], out: Path) -> None:
    """MTCNN from facenet-pytorch's weights -> OUT/model.onnx (P-Net + the cascade), rnet.onnx, onet.onnx."""
    from overfeat_edge.export import export_onnx
    from overfeat_edge.models.mtcnn import import_facenet

    nets = import_facenet(files)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; facenet-pytorch weights make a model folder")
    out.mkdir(parents=True, exist_ok=True)
    for stage, (net, spec) in nets.items():
        stem = "model" if stage == "pnet" else stage
        for half in (False, True):  # the FP16 graph is what TensorRT 11 builds FP16 engines from
            path = out / f"{stem}{'.fp16' if half else ''}.onnx"
            report = export_onnx(net, spec, path, half=half)
            worst = max(report.max_abs_error.values())
            console.print(f"wrote {path} ({spec.arch.name}, {spec.arch.params()} parameters; parity {worst:.1e})")
            if isinstance(report.packed, Path):
                console.print(f"wrote {report.packed} (its small pyramid levels packed in one call)")
    console.print(f"detect with it: overfeat-edge detect IMAGES --model {out / 'model.onnx'}")


def register(app: typer.Typer) -> None:
    command(app, models)
    command(app, export)
    command(app, import_weights, "import-weights")
