"""doctor: what this machine has, and where TensorRT exists, proof that it agrees with ONNX Runtime."""

from __future__ import annotations

import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.common import command, console
from overfeat_edge.errors import ParityError, install_hint


def _print_cpu_precisions(model: str = "overfeat-mini-shapes") -> None:
    """machine.cpu_precisions: a line per precision, then why the others were not run."""
    from overfeat_edge.machine import cpu_precisions

    lines, skipped = cpu_precisions(model)
    console.print(f"CPU precisions on {model} (--precision; fp32, the default, is ONNX Runtime FP32's detections):")
    for line in lines:
        console.print(f"  {line}")
    for why in skipped:
        console.print(f"  not run: {why}", soft_wrap=True)


CompareOpt = Annotated[
    bool,
    typer.Option(
        "--compare/--no-compare",
        help="Measure the CPU backends' precisions against ONNX Runtime FP32; build and compare a small engine.",
    ),
]


def doctor(compare: CompareOpt = True) -> None:
    """Report GPU, CUDA, TensorRT, ONNX Runtime and OpenCV; where TensorRT exists, prove it on this device.

    Example: overfeat-edge doctor --no-compare
    """
    from overfeat_edge.machine import has_tensorrt, machine_rows

    has_trt = has_tensorrt()
    table = Table(title="overfeat-edge doctor", show_header=False)
    for k, v in machine_rows(has_trt):
        table.add_row(k, v)
    console.print(table)
    if compare:
        _print_cpu_precisions()
    if not has_trt:
        console.print(
            "TensorRT is not installed: the onnxruntime backend (CPU) works. To get TensorRT: on a Jetson it comes "
            "with JetPack (sudo apt install nvidia-jetpack; use the system python3 or a venv with "
            f"--system-site-packages); on a desktop: {install_hint('tensorrt')}."
        )
        return
    if compare:
        _prove_device()


def _prove_device() -> None:
    """TensorRT against ONNX Runtime on this device, a line per precision and output; ParityError if any fails."""
    from overfeat_edge.engine.doctor import prove_device

    failed = []
    for precision, verdict in prove_device(console.print):
        for name, err in verdict.max_abs_error.items():
            atol, rtol = verdict.tolerance[name]
            console.print(
                f"{precision} {name}: max |tensorrt - onnxruntime| = {err:.2e} "
                f"(atol {atol:g}, rtol {rtol:g}) {'PASS' if verdict.passed else 'FAIL'}"
            )
        if not verdict.passed:
            failed.append(precision)
    if failed:
        raise ParityError(f"TensorRT {', '.join(failed)} disagrees with ONNX Runtime on this device")


def register(app: typer.Typer) -> None:
    command(app, doctor)
