"""Where a frame's time goes: every layer of a torch network, on every pyramid level, timed alone.

Forward hooks on the network's leaf modules record a timestamp before and after each one: CUDA
events on a GPU (no synchronization inside the frame; read after one at the end), the wall clock
on the CPU (where every op is synchronous). Each convolution's FLOPs are counted from the shapes it
actually saw (2 x multiply-adds: N x C_out x H_out x W_out x C_in / groups x k_h x k_w), so a
layer's achieved rate is its FLOPs / its time. Used by gpu_pyramid.py; tested on the CPU.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LayerTime:
    name: str  # module path in the network, e.g. "features.0" or "cls_head.0"
    kind: str  # "conv 7x7 /2" , "conv 5x5 dil 3", "maxpool 3x3 /3", "relu", ...
    level: int
    gflop: float
    ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)


def _kind(m: Any) -> str:
    cls = type(m).__name__
    if cls == "Conv2d":
        k, s, d = m.kernel_size, m.stride, m.dilation
        text = f"conv {k[0]}x{k[1]}"
        text += f" /{s[0]}" if s[0] > 1 else ""
        return text + (f" dil {d[0]}" if d[0] > 1 else "")
    if cls == "MaxPool2d":
        k, s = m.kernel_size, m.stride
        return f"maxpool {k}x{k} /{s}"
    return cls.lower()


def conv_gflop(m: Any, out: Any) -> float:
    """2 x multiply-adds of a Conv2d that produced ``out`` (N, C_out, H, W)."""
    n, c_out, h, w = out.shape
    kh, kw = m.kernel_size
    return 2 * n * c_out * h * w * (m.in_channels // m.groups) * kh * kw / 1e9


def profile_layers(net: Any, inputs: list[Any], reps: int = 10, warmup: int = 2) -> list[LayerTime]:
    """Per-(level, layer) times of ``net`` on each input (one per pyramid level), ``reps`` frames each.

    ``inputs`` are ready tensors on the network's device and dtype. Returns one LayerTime per leaf
    module per level, in execution order, with ``reps`` measurements each.
    """
    import torch

    cuda = inputs[0].is_cuda
    leaves = [(n, m) for n, m in net.named_modules() if not list(m.children())]
    rows: dict[tuple[int, str], LayerTime] = {}
    marks: list[tuple[tuple[int, str], Any, Any]] = []
    state: dict[str, Any] = {"level": 0, "record": False}

    def stamp() -> Any:
        if cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def pre(m: Any, args: Any) -> None:
        if state["record"]:
            m._profile_start = stamp()

    def post(name: str) -> Any:
        def hook(m: Any, args: Any, out: Any) -> None:
            if not state["record"]:
                return
            key = (state["level"], name)
            if key not in rows:
                gflop = conv_gflop(m, out) if type(m).__name__ == "Conv2d" else 0.0
                rows[key] = LayerTime(name, _kind(m), key[0], gflop)
            marks.append((key, m._profile_start, stamp()))

        return hook

    handles = []
    for name, m in leaves:
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post(name)))
    try:
        with torch.inference_mode():
            for rep in range(warmup + reps):
                state["record"] = rep >= warmup
                for k, x in enumerate(inputs):
                    state["level"] = k
                    net(x)
                if cuda:
                    torch.cuda.synchronize()
                for key, start, end in marks:
                    rows[key].ms.append(start.elapsed_time(end) if cuda else (end - start) * 1e3)
                marks.clear()
    finally:
        for h in handles:
            h.remove()
    return list(rows.values())


def by_layer(rows: list[LayerTime]) -> list[dict[str, Any]]:
    """Sum over levels for each layer: name, kind, GFLOP per frame, ms per frame, in network order."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(r.name, {"name": r.name, "kind": r.kind, "gflop": 0.0, "ms": 0.0})
        d["gflop"] += r.gflop
        d["ms"] += r.median_ms
    return list(out.values())


def by_level(rows: list[LayerTime]) -> list[dict[str, Any]]:
    """Sum over layers for each level: GFLOP and ms per frame."""
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(r.level, {"level": r.level, "gflop": 0.0, "ms": 0.0})
        d["gflop"] += r.gflop
        d["ms"] += r.median_ms
    return [out[k] for k in sorted(out)]
