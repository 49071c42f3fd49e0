"""The CUDA layer under the TensorRT backend, on a real GPU (skipped without one)."""

from __future__ import annotations

import numpy as np
import pytest

from overfeat_edge.errors import OverfeatEdgeError


def _api(name: str):
    from overfeat_edge.runtime.cuda import load_cuda

    try:
        return load_cuda(name)
    except OverfeatEdgeError as exc:
        pytest.skip(f"{name} not usable here: {exc}")


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["cuda-python", "pycuda"])
def test_pinned_round_trip_and_one_sync(name: str) -> None:
    api = _api(name)
    api.activate()
    try:
        gpu, cc = api.device()
        assert gpu and "." in cc
        stream = api.stream()
        src = api.pinned((2, 3, 17, 19), np.float32)
        src[...] = np.random.default_rng(0).normal(size=src.shape)
        dst = api.pinned(src.shape, np.float32)
        dst[...] = 0
        ptr = api.malloc(src.nbytes)
        api.h2d(ptr, src, stream)
        api.d2h(dst, ptr, stream)
        api.sync(stream)
        np.testing.assert_array_equal(dst, src)
        api.free(ptr)
    finally:
        api.deactivate()


@pytest.mark.gpu
def test_cuda_graph_replays_the_captured_copies() -> None:
    api = _api("cuda-python")
    api.activate()
    stream = api.stream()
    host = api.pinned((1024,), np.float32)
    back = api.pinned((1024,), np.float32)
    ptr = api.malloc(host.nbytes)

    def enqueue() -> bool:
        api.h2d(ptr, host, stream)
        api.d2h(back, ptr, stream)
        return True

    graph = api.capture(stream, enqueue)
    assert graph is not None
    for value in (1.0, 7.5):  # the graph reads the pinned buffer's current contents at launch
        host[...] = value
        api.launch(graph, stream)
        api.sync(stream)
        assert (back == value).all()
    api.free(ptr)
