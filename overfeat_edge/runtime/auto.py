"""[no torch] ``--backend auto``: the fastest installed CPU backend for this model on this machine,
at the precision asked for (``fp32`` unless ``--precision`` says otherwise: never a lower one unasked).

The candidates are the backends whose descriptor says ``cpu`` and lists the precision.

With only ONNX Runtime installed (the edge install) that is ONNX Runtime, at no cost. With OpenVINO
installed too, both are measured briefly the first time a model is used on a machine: the model's
own pyramid for a 480x640 frame, after a warm-up, alternating backends, the median of a few
frames. The choice is cached (``~/.cache/overfeat-edge/auto.json``, or ``$OVERFEAT_EDGE_CACHE``)
per ONNX file hash, precision, CPU model and flags, thread count and runtime versions, so later runs
pay nothing. ``OVERFEAT_EDGE_AUTO=onnxruntime`` (or ``openvino``) forces a backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from overfeat_edge.errors import InputError, OverfeatEdgeError
from overfeat_edge.io import atomic_write_text, read_bounded
from overfeat_edge.schema import load_json

FRAME_HW = (480, 640)
ROUNDS = 5


def candidates(precision: str = "fp32") -> list[str]:
    """The CPU backends that run ``precision`` (installed or not), in the table's order."""
    from overfeat_edge.runtime import descriptors

    return [d.name for d in descriptors() if d.cpu and precision in d.precisions]


def installed(precision: str = "fp32") -> list[str]:
    from overfeat_edge.runtime import descriptor

    return [b for b in candidates(precision) if descriptor(b).available() is None]


def cpu() -> str:
    """The CPU's model name and the flags that decide what a runtime can use."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("", platform.machine(), platform.processor()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                have = set(line.split(":", 1)[1].split())
                flags = " ".join(f for f in ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16") if f in have)
    except OSError:
        pass
    return f"{name} [{flags}]"


def _versions(backends: list[str]) -> str:
    """Each backend's package version (a new release may change which is faster)."""
    from importlib.metadata import PackageNotFoundError, version

    from overfeat_edge.runtime import descriptor

    out = []
    for b in backends:
        package = descriptor(b).package or b
        try:
            out.append(f"{b} {version(package)}")
        except PackageNotFoundError:
            out.append(f"{b} ?")
    return ", ".join(out)


def cache_file() -> Path:
    root = os.environ.get("OVERFEAT_EDGE_CACHE") or str(Path.home() / ".cache" / "overfeat-edge")
    return Path(root) / "auto.json"


def measure(model: str, backends: list[str], threads: int | None, precision: str = "fp32") -> dict[str, float]:
    """Median ms per frame of each backend on the model's pyramid (alternating, after a warm-up)."""
    from overfeat_edge.pipeline.detector import Detector
    from overfeat_edge.runtime import load_runner

    runners = {b: load_runner(b, model, threads=threads, precision=precision) for b in backends}
    det = Detector(next(iter(runners.values())))
    frame = np.random.default_rng(0).integers(0, 255, (*FRAME_HW, 3), dtype=np.uint8)
    _, inputs = det.preprocess(frame)
    times: dict[str, list[float]] = {b: [] for b in backends}
    for r in runners.values():
        r.run_levels(inputs)  # warm-up: compiles, allocates
    for _ in range(ROUNDS):
        for b, r in runners.items():
            t0 = time.perf_counter()
            r.run_levels(inputs)
            times[b].append((time.perf_counter() - t0) * 1000)
    return {b: float(np.median(t)) for b, t in times.items()}


def choose(model: str, threads: int | None = None, precision: str = "fp32") -> tuple[str, str]:
    """(backend, why) for ``model`` (a shipped name or an ONNX path) on this machine at ``precision``."""
    from overfeat_edge.runtime.base import precision_onnx

    forced = os.environ.get("OVERFEAT_EDGE_AUTO")
    if forced:
        if forced not in candidates(precision):
            raise InputError(
                f"OVERFEAT_EDGE_AUTO must be one of {', '.join(candidates(precision))} (at --precision "
                f"{precision}), got {forced!r}"
            )
        return forced, f"{forced} (forced by OVERFEAT_EDGE_AUTO)"
    have = installed(precision)
    if not have:
        raise InputError(
            f"no installed CPU backend runs --precision {precision} "
            f"(candidates: {', '.join(candidates(precision)) or 'none'})"
        )
    if len(have) == 1:
        at = "" if precision == "fp32" else f" for {precision}"
        return have[0], f"{have[0]} (the only CPU backend installed{at})"
    onnx, _ = precision_onnx(model, precision)
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()[:16]
    key = f"{digest} | {precision} | {cpu()} | threads {threads or os.cpu_count()} | {_versions(have)}"
    path = cache_file()
    try:  # a cache we cannot use (unreadable, too large, not JSON, too deep) is measured again
        cache = load_json(read_bounded(path, 1 << 20, "auto cache"), str(path)) if path.is_file() else {}
    except OverfeatEdgeError:
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("backend") in have and isinstance(hit.get("why"), str):
        return hit["backend"], f"{hit['backend']} ({hit['why']}; measured earlier on this machine)"
    ms = measure(model, have, threads, precision)
    best = min(ms, key=lambda b: ms[b])
    why = ", ".join(f"{b} {t:.1f} ms" for b, t in sorted(ms.items(), key=lambda kv: kv[1])) + " per 480x640 frame"
    cache[key] = {"backend": best, "why": why}
    try:
        atomic_write_text(path, json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only home: measured again next time
    return best, f"{best} ({why}; measured now)"
