"""doctor: what this machine has, and where TensorRT exists, proof that it agrees with ONNX Runtime."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import typer
from rich.table import Table
from typing_extensions import Annotated

from overfeat_edge.commands.common import command, console
from overfeat_edge.errors import OverfeatEdgeError, ParityError, install_hint


def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception:
        return "not installed"
    return str(getattr(m, "__version__", getattr(m, "VERSION_TEXT", "installed")))


def nvidia_driver() -> str:
    """The NVIDIA driver's own line (desktop) or the L4T release (Jetson), or "" where there is none."""
    for path in (Path("/proc/driver/nvidia/version"), Path("/etc/nv_tegra_release")):
        try:
            first = path.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        return first[:120]
    return ""


def _has_tensorrt() -> bool:
    try:
        from overfeat_edge.engine.trt import load_tensorrt

        load_tensorrt()
        return True
    except OverfeatEdgeError:
        return False


def cpu_precisions(model: str = "overfeat-mini-shapes") -> None:
    """Every installed CPU backend at every precision it runs on two generated frames, against ONNX
    Runtime FP32: how much faster, and how close its detections are (a few rounds: a guide only)."""
    import numpy as np

    from overfeat_edge.sidebyside import side_by_side
    from overfeat_edge.train.synth import scene

    rng = np.random.default_rng(5)
    rows, skipped = side_by_side(model, [scene(rng)[0] for _ in range(2)], rounds=4)
    console.print(f"CPU precisions on {model} (--precision; fp32, the default, is ONNX Runtime FP32's detections):")
    base = rows[0].median_ms
    for r in rows[1:]:
        console.print(f"  {r.label}: {base / r.median_ms:.2f}x onnxruntime fp32 here; {r.detections.describe()}")
    for why in skipped:
        console.print(f"  not run: {why}", soft_wrap=True)


def doctor(
    compare: Annotated[
        bool,
        typer.Option(
            "--compare/--no-compare",
            help="Measure the CPU backends' precisions against ONNX Runtime FP32; build and compare a small engine.",
        ),
    ] = True,
) -> None:
    """Report GPU, CUDA, TensorRT, ONNX Runtime and OpenCV; where TensorRT exists, prove it on this device.

    Example: overfeat-edge doctor --no-compare
    """
    import cv2
    import onnxruntime as ort

    from overfeat_edge.pipeline.merge import COMPILED
    from overfeat_edge.stream.sources import has_gstreamer

    rows: list[tuple[str, str]] = []
    bindings = _version("cuda.bindings")
    cuda_python = bindings if bindings != "not installed" else _version("cuda")
    has_trt = _has_tensorrt()
    gst = "yes" if has_gstreamer() else "no (csi:// and pipelines need it)"
    from overfeat_edge.runtime.auto import cpu

    rows.append(("CPU", f"{cpu()}, {os.cpu_count()} cores"))
    driver = nvidia_driver()
    rows.append(("NVIDIA driver", driver or "none found (no /proc/driver/nvidia/version, no /etc/nv_tegra_release)"))
    try:
        from overfeat_edge.runtime.cuda import load_cuda

        cuda = load_cuda()
        gpu, cc = cuda.device()
        rows += [("GPU", f"{gpu} (compute capability {cc})"), ("CUDA API", cuda.name)]
        rows += [(k, v) for k, v in cuda.versions().items()]
    except OverfeatEdgeError as exc:
        rows.append(("GPU", f"not usable: {exc}" if driver else "none: this machine has no NVIDIA GPU driver"))
    rows += [
        ("TensorRT", _version("tensorrt") if has_trt else "not installed"),
        ("Polygraphy", _version("polygraphy")),
        ("pycuda", _version("pycuda")),
        ("cuda-python", cuda_python),
        ("ONNX Runtime", f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}"),
        ("OpenVINO", _version("openvino").split("-")[0]),
        ("OpenCV", f"{cv2.__version__}; GStreamer: {gst}"),
        (
            "greedy merge",
            "compiled (C)" if COMPILED else "numpy (the C extension was not built: no compiler at install)",
        ),
    ]
    table = Table(title="overfeat-edge doctor", show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if compare:
        cpu_precisions()
    if not has_trt:
        console.print(
            "TensorRT is not installed: the onnxruntime backend (CPU) works. To get TensorRT: on a Jetson it comes "
            "with JetPack (sudo apt install nvidia-jetpack; use the system python3 or a venv with "
            f"--system-site-packages); on a desktop: {install_hint('tensorrt')}."
        )
        return
    if compare:
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
