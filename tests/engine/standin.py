"""Stand-ins for TensorRT and CUDA that record every call, for testing the runner's call sequence.

What is tested is our runner (which contexts it makes, with what memory, which shapes it sets,
when it captures and replays graphs, what it frees), not TensorRT: the stand-in offers, per
version, only the names that version's binding library has (``tests/engine/test_binding_names.py``
checks the same names against NVIDIA's real libraries), and models two documented rules:

* a context created without memory (8.x ``create_execution_context_without_device_memory``,
  10.0+ ``USER_MANAGED``) fails ``execute_async_v3`` until memory of the engine's size is set;
* a CUDA graph is only valid for the shape and state its context had at capture (NVIDIA's CUDA
  graph guidance): replaying it after that context was reshaped is recorded as undefined behaviour
  and writes NaNs, so a wrong call sequence shows up as wrong numbers.

The "network" computes, for every row ``i`` of a batch, ``scores[i] = sum(x[i])`` and
``boxes[i] = 2 * sum(x[i])`` (shapes (n, 2, 1, 1) and (n, 4, 1, 1)).
"""

from __future__ import annotations

import itertools
import types
from typing import Any

import numpy as np

from overfeat_edge.engine.compat import TrtVersion, context_memory
from overfeat_edge.engine.profiles import Profile
from overfeat_edge.runtime.cuda import CudaApi

OUT_CHANNELS = {"scores": 2, "boxes": 4, "landmarks": 10}
_ids = itertools.count(1000)


class StandInCuda(CudaApi):
    """Device memory as numpy bytes; every allocation, stream and graph tracked until freed."""

    name = "stand-in"
    graphs = True

    def __init__(self, fail_malloc_after: int | None = None) -> None:
        self.mem: dict[int, np.ndarray] = {}
        self.pinned_live: dict[int, np.ndarray] = {}
        self.streams: set[int] = set()
        self.graphs_live: set[int] = set()
        self.log: list[tuple[Any, ...]] = []
        self.capturing: list[Any] | None = None
        self.graph_calls: dict[int, list[Any]] = {}
        self.fail_malloc_after = fail_malloc_after
        self.active = 0

    def activate(self) -> None:
        self.active += 1

    def deactivate(self) -> None:
        self.active -= 1

    def device(self) -> tuple[str, str]:
        return "Stand-in GPU", "8.7"

    def stream(self) -> int:
        s = next(_ids)
        self.streams.add(s)
        return s

    def destroy_stream(self, stream: int) -> None:
        self.streams.remove(stream)

    def malloc(self, nbytes: int) -> int:
        if self.fail_malloc_after is not None and len(self.mem) >= self.fail_malloc_after:
            raise MemoryError("stand-in: out of device memory")
        ptr = next(_ids)
        self.mem[ptr] = np.zeros(max(1, nbytes), np.uint8)
        self.log.append(("malloc", ptr, nbytes))
        return ptr

    def free(self, ptr: int) -> None:
        del self.mem[ptr]
        self.log.append(("free", ptr))

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        a = np.zeros(shape, dtype)
        self.pinned_live[id(a)] = a
        return a

    def free_pinned(self, array: np.ndarray) -> None:
        del self.pinned_live[id(array)]

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        b = np.ascontiguousarray(src).view(np.uint8).ravel()
        self.mem[dst][: b.size] = b

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        dst[...] = self.mem[src][: dst.nbytes].view(dst.dtype).reshape(dst.shape)

    def sync(self, stream: int) -> None:
        assert stream in self.streams, "sync on a stream that does not exist"

    def capture(self, stream: int, enqueue: Any) -> Any:
        self.capturing = []
        try:
            ok = enqueue()
        finally:
            calls, self.capturing = self.capturing, None
        if not ok:
            return None
        g = next(_ids)
        self.graph_calls[g] = calls
        self.graphs_live.add(g)
        return g

    def launch(self, graph: Any, stream: int) -> None:
        for context, generation in self.graph_calls[graph]:
            context.replay(generation)

    def destroy_graph(self, graph: Any) -> None:
        self.graphs_live.remove(graph)

    def leaks(self) -> dict[str, int]:
        return {
            "device": len(self.mem),
            "pinned": len(self.pinned_live),
            "streams": len(self.streams),
            "graphs": len(self.graphs_live),
        }


class StandInContext:
    def __init__(self, engine: StandInEngine, has_memory: bool) -> None:
        self.engine, self.cuda = engine, engine.cuda
        self.has_memory = has_memory
        self.memory: tuple[int, int] | None = None
        self.profile = 0
        self.shape: tuple[int, ...] | None = None
        self.generation = 0  # bumped by every reshape: a captured graph is valid for one generation
        self.addresses: dict[str, int] = {}
        engine.contexts.append(self)

    # 8.x: a write-only property; 10.1+: set_device_memory(ptr, size) (added per version below)
    def _set_memory(self, ptr: int, size: int) -> None:
        self.engine.log.append(("memory", id(self), ptr, size))
        self.memory = (ptr, size)

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        if not 0 <= index < len(self.engine.profiles):
            raise RuntimeError(f"no profile {index}")
        self.profile = index
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        p = self.engine.profiles[self.profile]
        if not p.covers(tuple(shape)) or self.engine.refuse_shapes:  # type: ignore[arg-type]
            return False
        self.engine.log.append(("set_input_shape", id(self), tuple(shape)))
        self.shape = tuple(shape)
        self.generation += 1
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        assert self.shape is not None
        return (self.shape[0], OUT_CHANNELS[name], 1, 1)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return not self.engine.refuse_addresses

    def execute_async_v3(self, stream: int) -> bool:
        if self.has_memory is False and (self.memory is None or self.memory[1] < self.engine.memory_size):
            return False  # TensorRT: a context without memory cannot run
        if self.cuda.capturing is not None:
            self.cuda.capturing.append((self, self.generation))
            return True
        self.engine.log.append(("execute", id(self), self.shape))
        self._compute(valid=True)
        return True

    def replay(self, generation: int) -> None:
        self.engine.log.append(("replay", id(self), self.shape, generation == self.generation))
        if generation != self.generation:
            self.engine.undefined.append(("graph replayed after its context was reshaped", id(self)))
        self._compute(valid=generation == self.generation)

    def _compute(self, valid: bool) -> None:
        assert self.shape is not None
        n, rest = self.shape[0], self.shape[1:]
        mem = self.cuda.mem
        x = mem[self.addresses["input"]][: 4 * n * int(np.prod(rest))].view(np.float32).reshape(n, -1)
        total = x.sum(axis=1, dtype=np.float64).astype(np.float32) if valid else np.full(n, np.nan, np.float32)
        for name, factor in (("scores", 1.0), ("boxes", 2.0), ("landmarks", 3.0)):
            if name in self.addresses:
                c = OUT_CHANNELS[name]
                out = np.repeat((factor * total)[:, None], c, axis=1).astype(np.float32)
                b = out.view(np.uint8).ravel()
                mem[self.addresses[name]][: b.size] = b


class StandInEngine:
    def __init__(self, version: str, profiles: list[Profile], cuda: StandInCuda, memory_size: int = 4096) -> None:
        self.version = TrtVersion.parse(version)
        self.profiles, self.cuda = profiles, cuda
        self.memory_size = memory_size
        self.contexts: list[StandInContext] = []
        self.log: list[tuple[Any, ...]] = []
        self.undefined: list[tuple[Any, ...]] = []
        self.refuse_shapes = False
        self.refuse_addresses = False
        self.no_contexts = False  # create_execution_context returns None (out of memory)

        self.context_class: type[StandInContext] = StandInContext

    def _make(self, has_memory: bool) -> StandInContext | None:
        self.log.append(("create_context", "static" if has_memory else "no memory"))
        return None if self.no_contexts else self.context_class(self, has_memory)


def standin_tensorrt(version: str, profiles: list[Profile], cuda: StandInCuda, memory_size: int = 4096) -> Any:
    """A ``tensorrt`` module stand-in offering ``version``'s memory API names only."""
    v = TrtVersion.parse(version)
    memory = context_memory(v)
    engine = StandInEngine(version, profiles, cuda, memory_size)
    members: dict[str, Any] = {}
    if memory.user_managed:
        strategies = types.SimpleNamespace(STATIC="static", ON_PROFILE_CHANGE="on profile change", USER_MANAGED="user")

        def create(strategy: str = "static") -> StandInContext | None:
            return engine._make(has_memory=strategy == "static")

        members["ExecutionContextAllocationStrategy"] = strategies
        engine.create_execution_context = create  # type: ignore[attr-defined]
    else:
        engine.create_execution_context = lambda: engine._make(True)  # type: ignore[attr-defined]
        engine.create_execution_context_without_device_memory = (  # type: ignore[attr-defined]
            lambda: engine._make(False)
        )
    if memory.set_v2:  # 10.1+: set_device_memory(ptr, size), sized by device_memory_size_v2
        engine.device_memory_size_v2 = memory_size  # type: ignore[attr-defined]
        attrs: dict[str, Any] = {"set_device_memory": StandInContext._set_memory}
    else:  # 8.x and 10.0: the write-only property, sized by device_memory_size
        engine.device_memory_size = memory_size  # type: ignore[attr-defined]
        attrs = {"device_memory": property(None, lambda self, ptr: self._set_memory(ptr, engine.memory_size))}
    engine.context_class = type("Context", (StandInContext,), attrs)

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            self.level = level

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.DLA_core = -1

        def deserialize_cuda_engine(self, data: bytes) -> StandInEngine:
            return engine

    return types.SimpleNamespace(
        __version__=version, Logger=Logger, Runtime=Runtime, Builder=object, engine=engine, **members
    )
