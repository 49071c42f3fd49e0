"""build, doctor: TensorRT engines per device, and proving a device in one command."""

from __future__ import annotations

import datetime
import importlib
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from overfeat_edge.commands.common import console, err_console
from overfeat_edge.errors import InputError, OverfeatEdgeError


def _frame_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--frame-size must be HEIGHTxWIDTH like 480x640, got {text!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"--frame-size must be positive, got {text!r}")
    return h, w


def _batch(text: str) -> tuple[int, int, int]:
    """``4`` (fixed) or ``1,2,4`` (min, opt, max) -> the profile batch range."""
    try:
        v = [int(x) for x in text.split(",")]
    except ValueError:
        raise InputError(f"--batch must be N or MIN,OPT,MAX, got {text!r}") from None
    if len(v) == 1:
        v = v * 3
    if len(v) != 3:
        raise InputError(f"--batch must be N or MIN,OPT,MAX, got {text!r}")
    return v[0], v[1], v[2]


def build_cached(
    model: str,
    precision: str,
    frame_size: str,
    scales: list[str] | None,
    dynamic: int | None,
    calib: Path | None,
    workspace: int,
    dla: int | None,
    rebuild: bool,
    engines: Path,
    show_progress: bool = True,
    batch: str = "1",
) -> Path:
    """Build (or find up to date) the engine for ``model``; returns its path."""
    from overfeat_edge.build.cache import DeviceInfo, Manifest, check_engine, engine_path, sha256_file, write_engine
    from overfeat_edge.build.compat import build_plan, dla_supported
    from overfeat_edge.build.profiles import plan_profiles, profiles_key
    from overfeat_edge.build.trt import build_engine, load_tensorrt, version
    from overfeat_edge.errors import ModelError
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.runtime.base import resolve_onnx, shipped_models
    from overfeat_edge.runtime.cuda import load_cuda

    onnx = resolve_onnx(model)
    spec = load_runner("onnxruntime", str(onnx), threads=1).spec
    trt = load_tensorrt()
    v = version(trt)
    plan = build_plan(v, precision, "cache" if calib else "qdq")
    if dla is not None and not dla_supported(v):
        raise InputError(f"TensorRT {v} cannot build for DLA (supported up to 10.x, and from 11.4.1 on AGX Orin)")
    source = onnx
    if plan.onnx_variant == "fp16":
        source = onnx.with_name(onnx.stem + ".fp16.onnx")
        if not source.is_file():
            raise InputError(
                f"TensorRT {v} builds FP16 only from an FP16 ONNX; write {source} with "
                f"'overfeat-edge export --half --model CHECKPOINT --out {source}'"
            )
    calib_bytes = calib.read_bytes() if calib is not None else None
    if calib is not None and not calib_bytes:
        raise InputError(f"--calib {calib} is empty")
    cuda = load_cuda()
    gpu, cc = cuda.device()
    device = DeviceInfo(gpu, cc, str(trt.__version__), dla)
    frame_hw = _frame_hw(frame_size)
    profiles = plan_profiles(spec, frame_hw, scales, batch=_batch(batch), dynamic_max_side=dynamic)
    name = model if model in shipped_models() else onnx.stem
    path = engine_path(engines, name, device, precision, profiles_key(frame_hw, profiles))
    onnx_sha = sha256_file(source)
    calib_sha = sha256_file(calib) if calib is not None else None
    if path.is_file() and not rebuild:
        try:
            check_engine(path, device, onnx_sha, calib_sha)
            console.print(f"up to date: {path}")
            return path
        except ModelError as exc:
            err_console.print(f"rebuilding: {exc}", style="yellow")
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=not show_progress) as progress:
        tasks: dict[str, Any] = {}

        def report(phase: str, step: int, steps: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=max(steps, 1))
            progress.update(tasks[phase], completed=step, total=max(steps, 1))

        main = progress.add_task(f"TensorRT {v}: building {precision} for {gpu} ({len(profiles)} profiles)", total=None)
        data, seconds = build_engine(
            source, plan, profiles, workspace, path.parent / "timing.cache", dla, calib_bytes, report
        )
        progress.remove_task(main)
    manifest = Manifest(
        model=name,
        onnx_sha256=onnx_sha,
        precision=precision,
        device=device,
        profiles=profiles,
        frame_hw=frame_hw,
        flags=list(plan.builder_flags),
        calibration_sha256=calib_sha,
        build_seconds=round(seconds, 2),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        extra={"spec": spec.to_json(), "onnx": str(source), "onnx_variant": plan.onnx_variant},
    )
    write_engine(path, data, manifest)
    console.print(f"built {path} in {seconds:.1f} s ({len(data) / 2**20:.1f} MiB)")
    return path


def build(
    model: Annotated[str, typer.Option(help="An exported .onnx or a shipped model name.")],
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8.")] = "fp16",
    frame_size: Annotated[str, typer.Option(help="Camera frame HEIGHTxWIDTH the per-scale profiles are made for.")] = (
        "480x640"
    ),
    scales: Annotated[list[str] | None, typer.Option("--scales", "-s", help="Pyramid (default: the model's).")] = None,
    dynamic: Annotated[
        int | None, typer.Option(help="Also a dynamic profile up to this side, for other sizes.")
    ] = None,
    calib: Annotated[Path | None, typer.Option(help="INT8 on TensorRT <= 10: a TensorRT calibration cache.")] = None,
    workspace: Annotated[int, typer.Option(help="Builder workspace limit in MiB.")] = 1024,
    dla: Annotated[int | None, typer.Option(help="Jetson DLA core (GPU fallback on).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build even if an up-to-date engine exists.")] = False,
    engines: Annotated[Path, typer.Option(help="Engine cache root.")] = Path("engines"),
    batch: Annotated[str, typer.Option(help="Batch per profile: N, or MIN,OPT,MAX.")] = "1",
) -> None:
    """Build a TensorRT engine: one optimization profile per pyramid scale, cached per device."""
    path = build_cached(
        model, precision, frame_size, scales, dynamic, calib, workspace, dla, rebuild, engines, True, batch
    )
    console.print(f"run it: overfeat-edge run SOURCE --backend tensorrt --model {path}")


# ---- doctor ---------------------------------------------------------------------------------
def _version(module: str) -> str:
    try:
        m = importlib.import_module(module)
    except Exception:
        return "not installed"
    return str(getattr(m, "__version__", getattr(m, "VERSION_TEXT", "installed")))


def _has_tensorrt() -> bool:
    try:
        from overfeat_edge.build.trt import load_tensorrt

        load_tensorrt()
        return True
    except OverfeatEdgeError:
        return False


TOLERANCE = {"fp32": (1e-3, 1e-3), "fp16": (2e-2, 2e-2)}  # (atol, rtol), Polygraphy-style per output


def doctor(
    compare: Annotated[bool, typer.Option("--compare/--no-compare", help="Build and compare a small engine.")] = True,
) -> None:
    """Report GPU, CUDA, TensorRT, ONNX Runtime and OpenCV; where TensorRT exists, prove it on this device."""
    import cv2
    import onnxruntime as ort

    from overfeat_edge.pipeline.merge import COMPILED
    from overfeat_edge.stream.sources import has_gstreamer

    rows: list[tuple[str, str]] = []
    bindings = _version("cuda.bindings")
    cuda_python = bindings if bindings != "not installed" else _version("cuda")
    has_trt = _has_tensorrt()
    gst = "yes" if has_gstreamer() else "no (csi:// and pipelines need it)"
    try:
        from overfeat_edge.runtime.cuda import load_cuda

        cuda = load_cuda()
        gpu, cc = cuda.device()
        rows += [("GPU", f"{gpu} (compute capability {cc})"), ("CUDA API", cuda.name)]
        rows += [(k, v) for k, v in cuda.versions().items()]
    except OverfeatEdgeError as exc:
        rows.append(("GPU", f"not usable: {exc}"))
    rows += [
        ("TensorRT", _version("tensorrt") if has_trt else "not installed"),
        ("pycuda", _version("pycuda")),
        ("cuda-python", cuda_python),
        ("ONNX Runtime", f"{ort.__version__}; providers: {', '.join(ort.get_available_providers())}"),
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
    if not has_trt:
        console.print(
            "TensorRT is not installed: the onnxruntime backend (CPU) works. To get TensorRT: on a Jetson it comes "
            "with JetPack (sudo apt install nvidia-jetpack; use the system python3 or a venv with "
            "--system-site-packages); on a desktop: pip install 'overfeat-edge[tensorrt]'."
        )
        return
    if compare:
        _compare_engines()


def _compare_engines() -> None:
    """Build the shipped model at one scale (fp32, fp16 where the version allows) and compare with ONNX Runtime."""
    from overfeat_edge.runtime import load_runner

    ref = load_runner("onnxruntime", "overfeat-mini-shapes", threads=2)
    x = np.random.default_rng(0).normal(size=(1, 3, 131, 175)).astype(np.float32)
    want = ref.infer(x)
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "fp16"):
            try:
                path = build_cached(
                    "overfeat-mini-shapes", precision, "131x175", ["131"], None, None, 512, None, True, Path(tmp), False
                )
            except InputError as exc:  # e.g. FP16 on TensorRT 11 without the FP16 ONNX
                console.print(f"{precision}: skipped ({exc})")
                continue
            runner = load_runner("tensorrt", str(path))
            with runner:
                got = runner.infer(x)
            atol, rtol = TOLERANCE[precision]
            for name, a, b in zip(("scores", "boxes"), got, want, strict=True):
                err = float(np.abs(a - b).max())
                tol = atol + rtol * float(np.abs(b).max())
                verdict = "PASS" if err <= tol else "FAIL"
                console.print(
                    f"{precision} {name}: max |tensorrt - onnxruntime| = {err:.2e} (tolerance {tol:.1e}) {verdict}"
                )
                if err > tol:
                    raise OverfeatEdgeError(f"TensorRT {precision} disagrees with ONNX Runtime on this device")


def register(app: typer.Typer) -> None:
    app.command()(build)
    app.command()(doctor)
