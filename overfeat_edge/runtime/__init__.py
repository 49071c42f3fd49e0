"""[no torch] Backends as runners, one file each, found by name (``runtime/<name>.py``).

Each backend module defines ``load(model: str, *, <its options>) -> Runner``: the keyword
parameters are the options it takes. An option given a value that a backend does not take is an
error (one line), not silently dropped; options left at None or False are not given.
``auto`` picks the fastest CPU backend installed for the model on this machine (:mod:`.auto`).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from overfeat_edge.errors import InputError
from overfeat_edge.runtime.base import Runner

BACKENDS = ("onnxruntime", "openvino", "torch", "tensorrt", "triton", "auto")


def backend_options(backend: str) -> tuple[str, ...]:
    """The options ``backend``'s ``load`` declares."""
    module = importlib.import_module(f"overfeat_edge.runtime.{backend}")
    params = inspect.signature(module.load).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def resolve_backend(backend: str, model: str, threads: int | None = None) -> tuple[str, str]:
    """(the backend to use, how auto chose it or ""): ``auto`` measured or cached, others as named."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend, ""
    from overfeat_edge.runtime.auto import choose

    return choose(model, threads=threads)


def load_runner(backend: str, model: str, **options: Any) -> Runner:
    """Load ``model`` (an ONNX path, a shipped model name, or for torch a registry name or checkpoint)."""
    backend, why = resolve_backend(backend, model, options.get("threads"))
    given = {k: v for k, v in options.items() if v is not None and v is not False}
    takes = backend_options(backend)
    foreign = [k for k in given if k not in takes]
    if foreign:
        names = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise InputError(f"{names} does not apply to --backend {backend} (it takes: {', '.join(takes) or 'none'})")
    module = importlib.import_module(f"overfeat_edge.runtime.{backend}")
    runner: Runner = module.load(model, **given)
    runner.choice = why  # how --backend auto chose it ("" when a backend was named)
    return runner


__all__ = ["BACKENDS", "Runner", "load_runner", "resolve_backend"]
