"""[no torch] System shared memory for the tensors, on the server's own host (``--triton-shm``).

One region per request slot and input shape (a pyramid level), reused frame after frame: the input
at offset 0, then each output. Output shapes are learned from the first answer for an input shape
(that one request comes back over the wire); from then on the server writes its outputs into the
region and nothing but the request's metadata crosses the socket. Registrations are lost when the
server restarts: :meth:`forget` after a failure makes the next request register again.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Set, Tuple

import numpy as np

from overfeat_edge.lazy import require

Shape = Tuple[int, ...]
FLOAT = np.dtype(np.float32).itemsize


@dataclass
class Region:
    name: str
    handle: Any
    size: int


class SharedMemory:
    """The regions one runner uses; :meth:`close` unregisters and removes them."""

    def __init__(self, client: Any, headers: Dict[str, str]) -> None:
        self.shm = require("tritonclient.utils.shared_memory", "--triton-shm")
        self.client, self.headers = client, headers
        self.prefix = f"overfeat-edge-{os.getpid()}-{id(self):x}"
        self.regions: Dict[Tuple[int, Shape], Region] = {}
        self.registered: Set[str] = set()
        self.outputs: Dict[Shape, List[Tuple[str, Shape]]] = {}  # input shape -> learned output shapes
        atexit.register(self.close)  # a runner never closed (a cascade stage) still removes its regions

    def _region(self, slot: int, shape: Shape, size: int) -> Region:
        key = (slot, shape)
        r = self.regions.get(key)
        if r is not None and r.size >= size:
            return r
        if r is not None:
            self._drop(r)
        name = f"{self.prefix}-{slot}-{'x'.join(map(str, shape))}"
        r = Region(name, self.shm.create_shared_memory_region(name, "/" + name, size), size)
        self.regions[key] = r
        return r

    def _register(self, r: Region) -> None:
        if r.name not in self.registered:
            self.client.register_system_shared_memory(r.name, "/" + r.name, r.size, headers=self.headers)
            self.registered.add(r.name)

    def bind(self, module: Any, slot: int, batch: np.ndarray, names: List[str]) -> Tuple[List[Any], List[Any], Any]:
        """(inputs, requested outputs, a reader of the result) for one request through shared memory."""
        shape = tuple(batch.shape)
        known = self.outputs.get(shape)
        size = batch.nbytes + (sum(int(np.prod(s)) for _, s in known) * FLOAT if known else 0)
        r = self._region(slot, shape, size)
        self._register(r)
        self.shm.set_shared_memory_region(r.handle, [batch])
        inp = module.InferInput("input", list(shape), "FP32")
        inp.set_shared_memory(r.name, batch.nbytes)
        if not known:  # first time at this shape: the outputs come over the wire, and their shapes are kept
            return [inp], [module.InferRequestedOutput(n) for n in names], lambda res: self._learn(shape, names, res)
        outs, places, offset = [], [], batch.nbytes
        for n, s in known:
            nbytes = int(np.prod(s)) * FLOAT
            o = module.InferRequestedOutput(n)
            o.set_shared_memory(r.name, nbytes, offset=offset)
            outs.append(o)
            places.append((n, s, offset))
            offset += nbytes
        return [inp], outs, lambda res: self._read(r, places)

    def _learn(self, shape: Shape, names: List[str], result: Any) -> Dict[str, np.ndarray]:
        out = {n: result.as_numpy(n) for n in names}
        self.outputs[shape] = [(n, tuple(a.shape)) for n, a in out.items()]
        return out

    def _read(self, r: Region, places: List[Tuple[str, Shape, int]]) -> Dict[str, np.ndarray]:
        return {n: np.array(self.shm.get_contents_as_numpy(r.handle, np.float32, s, offset=o)) for n, s, o in places}

    def forget(self) -> None:
        """The server may have restarted (registrations gone): register again before the next use."""
        self.registered.clear()

    def _drop(self, r: Region) -> None:
        if r.name in self.registered:
            try:
                self.client.unregister_system_shared_memory(r.name, headers=self.headers)
            except Exception:  # a server already gone has nothing to unregister
                pass
            self.registered.discard(r.name)
        self.shm.destroy_shared_memory_region(r.handle)

    def close(self) -> None:
        for r in self.regions.values():
            self._drop(r)
        self.regions.clear()
