"""The packed graph beside an export (``model.packed.onnx``): many small pyramid levels in one call.

A pyramid's small levels cost a network call each (OpenVINO: about 0.1-0.3 ms on 2 cores, more than
P-Net computes on a 14x14 level). :mod:`overfeat_edge.runtime.canvas` places them side by side in one
canvas; this graph makes that exact. Its input has a fourth channel, a mask: 0 where the map entering
the pool belongs to a level, ``-2**30`` elsewhere (gaps, and the edge where a window would read the
next level). The graph adds the mask before the pool, so a ceil-mode window at a level's edge takes
the max of that level's own values only (as it does alone), and multiplies the pooled map by
``1 + mask * 2**-30`` at each window's first element, so cells outside every level become 0 (not
``-2**30``, which would swamp its neighbours' rounding in a Winograd convolution). After the pool
come convolutions alone, so an output cell inside a level reads that level's cells only.

A graph qualifies when it is: stride-1 unpadded convolutions (with PReLU/ReLU), one unpadded
ceil-mode MaxPool whose window is as wide as its stride, then stride-1 unpadded convolutions,
activations and a softmax over channels (MTCNN's P-Net). Any other graph gets no packed file and
runs level by level, as before; and a graph that qualifies is kept only if ONNX Runtime gives the
model's own outputs through it on odd-sized levels. Its spec keeps the source file's sha256: a
loader uses it only beside that very file (:func:`overfeat_edge.runtime.canvas.matches`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.io import atomic_path
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME
from overfeat_edge.runtime.canvas import MASKED, packed_name, source_digest
from overfeat_edge.spec import METADATA_KEY, ModelSpec

ELEMENTWISE = {"PRelu", "Relu", "LeakyRelu"}
AFTER_POOL = {"Conv", *ELEMENTWISE, "Softmax"}


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx", "the packed graph")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _plain(node: Any) -> bool:
    """A Conv or MaxPool with no padding, no dilation and square windows (and stride 1 for a Conv)."""
    a = _attrs(node)
    kernel = a.get("kernel_shape", [1, 1])
    return (
        all(p == 0 for p in a.get("pads", [0]))
        and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET", b"VALID", "VALID")
        and all(d == 1 for d in a.get("dilations", [1]))
        and len(set(kernel)) == 1
        and (node.op_type != "Conv" or (all(s == 1 for s in a.get("strides", [1])) and a.get("group", 1) == 1))
    )


def qualifies(model: Any) -> tuple[int, int] | str:
    """(rows and columns lost before the pool, the pool's stride) if ``model`` can be packed, else why not.

    The pool must be ceil-mode with its window as wide as its stride (P-Net's 2/2): then a window never
    reaches past the next level's first cell, and the pooled map is as large as the mask read at each
    window's first element."""
    nodes = list(model.graph.node)
    pools = [n for n in nodes if n.op_type == "MaxPool"]
    if len(pools) != 1:
        return f"{len(pools)} pools (packing needs exactly one)"
    k = nodes.index(pools[0])
    if k == 0 or nodes[0].op_type != "Conv":
        return "the graph does not begin with a convolution"
    lost = 0
    for n in nodes[:k]:
        if n.op_type == "Conv" and _plain(n):
            lost += _attrs(n).get("kernel_shape", [1, 1])[0] - 1
        elif n.op_type not in ELEMENTWISE:
            return f"a {n.op_type} before the pool that is not a plain convolution"
    pool = _attrs(pools[0])
    kernel, strides = pool.get("kernel_shape", []), pool.get("strides", [])
    if not _plain(pools[0]) or len(set(strides)) != 1 or list(kernel) != list(strides) or pool.get("ceil_mode") != 1:
        return "the pool is not a ceil-mode one with its window as wide as its stride, unpadded"
    for n in nodes[k + 1 :]:
        if n.op_type not in AFTER_POOL or (n.op_type == "Conv" and not _plain(n)):
            return f"a {n.op_type} after the pool that is not a plain convolution"
        if n.op_type == "Softmax" and _attrs(n).get("axis", -1) != 1:
            return "a softmax over other than the channels"
    if nodes[0].input[0] != INPUT_NAME or sum(INPUT_NAME in n.input for n in nodes) != 1:
        return "the input feeds other than one first convolution"
    return lost, int(strides[0])


def packed_graph(model: Any, source_sha256: str = "") -> Any:
    """The packed graph of ``model`` (an ONNX ModelProto that :func:`qualifies`), or the reason it has none.
    ``source_sha256``: the digest of the file it was made from, kept in its spec (a loader uses the packed
    graph only beside that very file)."""
    onnx = require("onnx", "the packed graph")
    from onnx import helper, numpy_helper

    how = qualifies(model)
    if isinstance(how, str):
        return how
    lost, stride = how
    packed = onnx.ModelProto()
    packed.CopyFrom(model)
    g = packed.graph
    channels = g.input[0].type.tensor_type.shape.dim[1]
    if not channels.HasField("dim_value"):
        return "the input's channels are not fixed"
    rgb = channels.dim_value
    channels.dim_value = rgb + 1
    nodes = list(g.node)
    pool = next(n for n in nodes if n.op_type == "MaxPool")
    k = nodes.index(pool)

    def const(name: str, value: Any, dtype: Any = np.int64) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    const("pk_c0", [0])
    const("pk_c1", [rgb])
    const("pk_c2", [rgb + 1])
    const("pk_ax1", [1])
    const("pk_hw", [2, 3])
    const("pk_zero", [0, 0])
    const("pk_end", [-lost, -lost] if lost else [2**62, 2**62])
    const("pk_all", [2**62, 2**62])
    const("pk_step", [stride, stride])
    const("pk_scale", -1.0 / MASKED, np.float32)
    const("pk_one", 1.0, np.float32)
    first = nodes[0]
    first.input[0] = "pk_rgb"
    pool_in, pool_out = pool.input[0], pool.output[0]
    pool.input[0], pool.output[0] = "pk_masked", "pk_pooled"
    head = [
        helper.make_node("Slice", [INPUT_NAME, "pk_c0", "pk_c1", "pk_ax1"], ["pk_rgb"]),
        helper.make_node("Slice", [INPUT_NAME, "pk_c1", "pk_c2", "pk_ax1"], ["pk_mask_in"]),
        helper.make_node("Slice", ["pk_mask_in", "pk_zero", "pk_end", "pk_hw"], ["pk_mask"]),
        helper.make_node("Slice", ["pk_mask", "pk_zero", "pk_all", "pk_hw", "pk_step"], ["pk_first"]),
        helper.make_node("Mul", ["pk_first", "pk_scale"], ["pk_minus"]),
        helper.make_node("Add", ["pk_minus", "pk_one"], ["pk_valid"]),
    ]
    around = [
        helper.make_node("Add", [pool_in, "pk_mask"], ["pk_masked"]),
        pool,
        helper.make_node("Mul", ["pk_pooled", "pk_valid"], [pool_out]),
    ]
    del g.node[:]
    g.node.extend(head + nodes[:k] + around + nodes[k + 1 :])
    for p in packed.metadata_props:  # its spec: the model's, with the mask's channel and how it was packed
        if p.key == METADATA_KEY:
            spec = ModelSpec.from_json(p.value, "the packed graph")
            arch = replace(spec.arch, in_channels=rgb + 1)
            p.value = replace(
                spec,
                arch=arch,
                extra={**spec.extra, "packed": {"lost": lost, "stride": stride, "source_sha256": source_sha256}},
            ).to_json()
    onnx.checker.check_model(packed, full_check=True)
    return packed


def write_packed(onnx_path: str | Path) -> Path | str:
    """Write ``<stem>.packed.onnx`` beside ``onnx_path`` (atomically) and return its path, or the reason
    the graph has none (nothing written, and a stale packed file beside it removed). Before it is kept,
    ONNX Runtime runs it on odd-sized levels against the model itself: any difference refuses it."""
    onnx = require("onnx", "the packed graph")
    src = Path(onnx_path)
    dest = packed_name(src)
    packed = packed_graph(onnx.load(str(src)), source_digest(src))
    if not isinstance(packed, str):
        with atomic_path(dest, keep_suffix=True) as tmp:
            onnx.save(packed, str(tmp))
            packed = _self_check(src, tmp) or packed
    if isinstance(packed, str):
        dest.unlink(missing_ok=True)
        return packed
    return dest


def _self_check(src: Path, packed: Path) -> str:
    """ "" if the packed graph gives each level's outputs as the model does, else why not (ONNX Runtime, FP32)."""
    from overfeat_edge.runtime.canvas import run_packed
    from overfeat_edge.runtime.onnxruntime import OnnxRuntimeRunner

    model, together = OnnxRuntimeRunner(src, threads=1), OnnxRuntimeRunner(packed, threads=1)
    w = model.spec.arch.window
    rng = np.random.default_rng(0)
    sizes = [(w + 1, w + 3), (w + 5, w + 1), (w, w), (2 * w + 1, 3 * w + 1)]
    batches = [rng.uniform(-1, 1, (1, model.spec.arch.in_channels, h, x)).astype(np.float32) for h, x in sizes]
    for x, got in zip(batches, run_packed(model, together, batches, pack_pixels=None)):
        for name, want in model.run(x).items():
            if got[name].shape != want.shape or not np.allclose(got[name], want, atol=1e-5, rtol=1e-5):
                return (
                    f"the packed graph's {name!r} differs from the model's own on a level of {x.shape[2]}x{x.shape[3]}"
                )
    return ""
