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

A graph qualifies when it is: stride-1 unpadded convolutions (with PReLU/ReLU), one MaxPool
without padding, then stride-1 unpadded convolutions, activations and a softmax over channels
(MTCNN's P-Net). Any other graph gets no packed file and runs level by level, as before.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.io import atomic_path
from overfeat_edge.lazy import require
from overfeat_edge.runtime.base import INPUT_NAME
from overfeat_edge.runtime.canvas import MASKED, packed_name
from overfeat_edge.spec import METADATA_KEY, ModelSpec

ELEMENTWISE = {"PRelu", "Relu", "LeakyRelu"}
AFTER_POOL = {"Conv", *ELEMENTWISE, "Softmax"}


def _attrs(node: Any) -> dict[str, Any]:
    onnx = require("onnx", "the packed graph")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _plain_conv(node: Any) -> bool:
    a = _attrs(node)
    return (
        all(p == 0 for p in a.get("pads", [0]))
        and all(s == 1 for s in a.get("strides", [1]))
        and a.get("group", 1) == 1
    ) and all(d == 1 for d in a.get("dilations", [1]))


def qualifies(model: Any) -> tuple[int, int] | str:
    """(rows and columns lost before the pool, the pool's stride) if ``model`` can be packed, else why not."""
    nodes = list(model.graph.node)
    pools = [n for n in nodes if n.op_type == "MaxPool"]
    if len(pools) != 1:
        return f"{len(pools)} pools (packing needs exactly one)"
    k = nodes.index(pools[0])
    lost = 0
    for n in nodes[:k]:
        if n.op_type == "Conv" and _plain_conv(n):
            kernel = _attrs(n).get("kernel_shape", [1, 1])
            if kernel[0] != kernel[1]:
                return "a non-square convolution before the pool"
            lost += kernel[0] - 1
        elif n.op_type not in ELEMENTWISE:
            return f"a {n.op_type} before the pool"
    pool = _attrs(pools[0])
    if any(p != 0 for p in pool.get("pads", [0])) or len(set(pool.get("strides", [1]))) != 1:
        return "a padded or non-square pool"
    for n in nodes[k + 1 :]:
        if n.op_type not in AFTER_POOL or (n.op_type == "Conv" and not _plain_conv(n)):
            return f"a {n.op_type} after the pool that is not a plain convolution"
        if n.op_type == "Softmax" and _attrs(n).get("axis", -1) != 1:
            return "a softmax over other than the channels"
    if nodes[0].input[0] != INPUT_NAME or sum(INPUT_NAME in n.input for n in nodes) != 1:
        return "the input feeds other than one first convolution"
    return lost, int(pool["strides"][0])


def packed_graph(model: Any) -> Any:
    """The packed graph of ``model`` (an ONNX ModelProto that :func:`qualifies`), or the reason it has none."""
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
                spec, arch=arch, extra={**spec.extra, "packed": {"lost": lost, "stride": stride}}
            ).to_json()
    onnx.checker.check_model(packed, full_check=True)
    return packed


def write_packed(onnx_path: str | Path) -> Path | str:
    """Write ``<stem>.packed.onnx`` beside ``onnx_path`` (atomically) and return its path, or the reason
    the graph has none (nothing written, and a stale packed file beside it removed)."""
    onnx = require("onnx", "the packed graph")
    src = Path(onnx_path)
    packed = packed_graph(onnx.load(str(src)))
    dest = packed_name(src)
    if isinstance(packed, str):
        dest.unlink(missing_ok=True)
        return packed
    with atomic_path(dest, keep_suffix=True) as tmp:
        onnx.save(packed, str(tmp))
    return dest
