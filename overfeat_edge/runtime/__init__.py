"""[no torch] Backends as runners, one file each, listed in one table (:data:`BACKENDS`).

Each backend module defines ``DESCRIPTOR`` (:class:`~overfeat_edge.runtime.descriptor.BackendDescriptor`:
its options with help, CPU or not, its worker limit, its precisions, where its spec and a cascade's
stage models come from) and ``load(model: str, *, <its options>, precision="fp32") -> Runner``.
Everything else (the CLI's backend options, ``--backend auto``, the stream loop's workers, a
cascade's stages) reads the descriptors: a new backend is its file and one line here.
An option given a value that a backend does not take is an error (one line), not silently dropped;
options left at None or False are not given.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Dict

from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import Runner
from overfeat_edge.runtime.descriptor import PRECISIONS, BackendDescriptor

# name -> the module that defines its DESCRIPTOR and load()
BACKENDS: Dict[str, str] = {
    "onnxruntime": "overfeat_edge.runtime.onnxruntime",
    "openvino": "overfeat_edge.runtime.openvino",
    "torch": "overfeat_edge.runtime.torch",
    "tensorrt": "overfeat_edge.runtime.tensorrt",
    "triton": "overfeat_edge.runtime.triton",
}
AUTO = "auto"  # the fastest installed CPU backend at the requested precision (:mod:`.auto`)


def backend_names() -> tuple[str, ...]:
    """What ``--backend`` takes: every backend in the table, then ``auto``."""
    return (*BACKENDS, AUTO)


def backend_module(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; expected one of {', '.join(backend_names())}")
    return importlib.import_module(BACKENDS[name])


def descriptor(name: str) -> BackendDescriptor:
    """The named backend's descriptor (importing its module needs none of its runtime)."""
    found = getattr(backend_module(name), "DESCRIPTOR", None)
    if not isinstance(found, BackendDescriptor) or found.name != name:
        raise TypeError(f"{BACKENDS[name]} must define DESCRIPTOR = BackendDescriptor(name={name!r}, ...)")
    return found


def descriptors() -> list[BackendDescriptor]:
    return [descriptor(name) for name in BACKENDS]


def backend_options(backend: str) -> tuple[str, ...]:
    """The options ``backend``'s ``load`` takes (its descriptor's, and ``precision``)."""
    return (*descriptor(backend).option_names(), "precision")


def resolve_backend(backend: str, model: str, threads: int | None = None, precision: str = "fp32") -> tuple[str, str]:
    """(the backend to use, how auto chose it or ""): ``auto`` measured or cached, others as named."""
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if backend != AUTO:
        descriptor(backend)  # an unknown name: one line
        return backend, ""
    from overfeat_edge.runtime.auto import choose

    return choose(model, threads=threads, precision=precision)


def check_options(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options given (not None, not False), each one ``backend`` takes; else one InputError line."""
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    takes = backend_options(backend)
    foreign = [k for k in given if k not in takes]
    if foreign:
        names = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise InputError(f"{names} does not apply to --backend {backend} (it takes: {', '.join(takes)})")
    return given


def load_runner(backend: str, model: str, **options: Any) -> Runner:
    """Load ``model`` (an ONNX path, a shipped model name, or for torch a registry name or checkpoint)."""
    backend, why = resolve_backend(backend, model, options.get("threads"), options.get("precision") or "fp32")
    given = check_options(backend, options)
    runner: Runner = backend_module(backend).load(model, **given)
    runner.choice = why  # how --backend auto chose it ("" when a backend was named)
    runner.packed = _packed(backend, runner, given)
    return runner


def _packed(backend: str, runner: Runner, given: dict[str, Any]) -> Runner | None:
    """The packed graph beside the ONNX ``runner`` loaded (model.onnx's, not an FP16 or INT8 one's), made
    from that very file, on a CPU (its mask is an FP32 one); else None: the levels run one by one, as they
    always can (a packed file that does not load, or is stale, changes nothing but the speed)."""
    path = getattr(runner, "path", None)
    on_cpu = str(getattr(runner, "device", "CPU")).upper().startswith("CPU")
    if descriptor(backend).spec_source != "onnx" or not isinstance(path, Path) or not on_cpu:
        return None
    from overfeat_edge.errors import OverfeatEdgeError
    from overfeat_edge.runtime.canvas import matches, packed_name

    file = packed_name(path) if path.name.endswith(".onnx") else None
    if file is None or not file.is_file() or runner.spec.arch.kind != "detector":
        return None
    try:
        packed = backend_module(backend).load(str(file), **given)
    except (OverfeatEdgeError, OSError, RuntimeError):
        return None
    return packed if matches(runner, packed, path) else None


def is_cpu(backend: str) -> bool:
    """Whether ``backend`` computes on the CPU cores the stream loop's other threads share."""
    return descriptor(backend).cpu


__all__ = [
    "AUTO",
    "BACKENDS",
    "Runner",
    "backend_names",
    "descriptor",
    "descriptors",
    "is_cpu",
    "load_runner",
    "resolve_backend",
]
