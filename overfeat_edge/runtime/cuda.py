"""[CUDA] One small interface over pycuda and cuda-python, for the TensorRT backend.

pycuda first (what most Jetson guides install): its primary context is retained and pushed
by the thread that runs inference and popped when it is done; cuda-python's runtime API
(``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.3) where pycuda is absent.
Device pointers and stream handles are plain ints, which is what TensorRT's name-based API takes.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

import numpy as np

from overfeat_edge.errors import MissingDependency, ModelError


class CudaApi:
    name = "none"

    def activate(self) -> None: ...  # make the device's context current in this thread
    def deactivate(self) -> None: ...
    def device(self) -> tuple[str, str]:  # (name, "major.minor")
        raise NotImplementedError

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    def stream(self) -> int:
        raise NotImplementedError

    def destroy_stream(self, stream: int) -> None:
        """Release a stream made by :meth:`stream` (after its work is done)."""
        raise NotImplementedError

    def malloc(self, nbytes: int) -> int:
        raise NotImplementedError

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        raise NotImplementedError

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        raise NotImplementedError

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        raise NotImplementedError

    def sync(self, stream: int) -> None:
        raise NotImplementedError

    def free(self, ptr: int) -> None:
        raise NotImplementedError

    def free_pinned(self, array: np.ndarray) -> None:
        """Release a buffer made by :meth:`pinned`."""
        raise NotImplementedError

    graphs = False  # CUDA graphs: cuda-python only (pycuda's API is not used for them here)

    def capture(self, stream: int, enqueue: Any) -> Any | None:
        """Record ``enqueue()`` on ``stream`` as an executable CUDA graph; None where capture fails."""
        return None

    def launch(self, graph: Any, stream: int) -> None:
        raise NotImplementedError

    def destroy_graph(self, graph: Any) -> None:
        raise NotImplementedError


class PyCudaApi(CudaApi):
    name = "pycuda"

    def __init__(self) -> None:
        self.cuda = importlib.import_module("pycuda.driver")
        self.cuda.init()
        self.dev = self.cuda.Device(0)
        self.ctx = self.dev.retain_primary_context()
        self._streams: list[Any] = []
        self._allocs: dict[int, Any] = {}

    def activate(self) -> None:
        self.ctx.push()

    def deactivate(self) -> None:
        self.cuda.Context.pop()

    def device(self) -> tuple[str, str]:
        major, minor = self.dev.compute_capability()
        return str(self.dev.name()), f"{major}.{minor}"

    def versions(self) -> dict[str, str]:
        pycuda = importlib.import_module("pycuda")
        drv = self.cuda.get_driver_version()
        return {"pycuda": str(pycuda.VERSION_TEXT), "cuda_driver": f"{drv // 1000}.{drv % 1000 // 10}"}

    def stream(self) -> int:
        s = self.cuda.Stream()
        self._streams.append(s)
        return int(s.handle)

    def _stream(self, handle: int) -> Any:
        return next(s for s in self._streams if int(s.handle) == handle)

    def destroy_stream(self, stream: int) -> None:
        self._streams.remove(self._stream(stream))  # pycuda's Stream destroys its handle when collected

    def malloc(self, nbytes: int) -> int:
        a = self.cuda.mem_alloc(max(1, nbytes))
        self._allocs[int(a)] = a
        return int(a)

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        out: np.ndarray = self.cuda.pagelocked_empty(shape, dtype)
        return out

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.cuda.memcpy_htod_async(dst, src, self._stream(stream))

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, self._stream(stream))

    def sync(self, stream: int) -> None:
        self._stream(stream).synchronize()

    def free(self, ptr: int) -> None:
        self._allocs.pop(ptr).free()

    def free_pinned(self, array: np.ndarray) -> None:
        allocation: Any = array.base  # pagelocked_empty's array is a view of a HostAllocation
        allocation.free()


def _cudart() -> Any:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("cuda-python")


class CudaPythonApi(CudaApi):
    name = "cuda-python"

    def __init__(self) -> None:
        self.rt = _cudart()
        self._check(self.rt.cudaSetDevice(0))
        self._pinned: list[int] = []

    def _check(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            _, msg = self.rt.cudaGetErrorString(err)
            raise ModelError(f"CUDA error {int(err)}: {msg.decode() if isinstance(msg, bytes) else msg}")
        return rest[0] if len(rest) == 1 else rest

    def activate(self) -> None:
        self._check(self.rt.cudaSetDevice(0))  # the runtime API uses the device's primary context

    def device(self) -> tuple[str, str]:
        p = self._check(self.rt.cudaGetDeviceProperties(0))
        name = p.name.decode() if isinstance(p.name, bytes) else str(p.name)
        return name.rstrip("\x00"), f"{p.major}.{p.minor}"

    def versions(self) -> dict[str, str]:
        drv = int(self._check(self.rt.cudaDriverGetVersion()))
        rtv = int(self._check(self.rt.cudaRuntimeGetVersion()))
        return {"cuda_driver": f"{drv // 1000}.{drv % 1000 // 10}", "cuda_runtime": f"{rtv // 1000}.{rtv % 1000 // 10}"}

    def stream(self) -> int:
        return int(self._check(self.rt.cudaStreamCreate()))

    def destroy_stream(self, stream: int) -> None:
        self._check(self.rt.cudaStreamDestroy(stream))

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(max(1, nbytes))))

    def pinned(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dt = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dt.itemsize)
        ptr = int(self._check(self.rt.cudaMallocHost(nbytes)))
        self._pinned.append(ptr)
        buf = (ctypes.c_byte * nbytes).from_address(ptr)
        return np.frombuffer(buf, dtype=dt, count=int(np.prod(shape))).reshape(shape)

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))

    def sync(self, stream: int) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr))

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = int(array.ctypes.data)
        self._pinned.remove(ptr)
        self._check(self.rt.cudaFreeHost(ptr))

    graphs = True

    def capture(self, stream: int, enqueue: Any) -> Any | None:
        """Record ``enqueue()`` on ``stream`` as a CUDA graph; None (plain enqueue) if capture fails.

        As trtexec does (sampleDevice.h): after a failed capture the partial graph is destroyed and
        the sticky error cleared with ``cudaGetLastError``. ``cudaGraphInstantiateWithFlags(graph,
        0)`` has the same signature in cuda-python 11.8, 12.x and 13.x (``cudaGraphInstantiate``
        takes a log buffer in 11.8 and flags from 12.0).
        """
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        if int(self.rt.cudaStreamBeginCapture(stream, mode)[0]) != 0:
            self.rt.cudaGetLastError()
            return None
        try:
            ok = bool(enqueue())
        except Exception:
            ok = False
        err, graph = self.rt.cudaStreamEndCapture(stream)  # always end the capture
        if int(err) != 0:
            self.rt.cudaGetLastError()  # clear the capture's error so later calls do not fail
            return None
        try:
            if not ok:
                return None
            err, exe = self.rt.cudaGraphInstantiateWithFlags(graph, 0)
            if int(err) != 0:
                self.rt.cudaGetLastError()
                return None
            return exe
        finally:
            self.rt.cudaGraphDestroy(graph)  # the executable graph keeps what it needs

    def launch(self, graph: Any, stream: int) -> None:
        self._check(self.rt.cudaGraphLaunch(graph, stream))

    def destroy_graph(self, graph: Any) -> None:
        self._check(self.rt.cudaGraphExecDestroy(graph))


def load_cuda(prefer: str | None = None) -> CudaApi:
    """pycuda, else cuda-python (or the one named); one clear line when neither is installed."""
    order = [prefer] if prefer else ["pycuda", "cuda-python"]
    errors = []
    for name in order:
        try:
            return PyCudaApi() if name == "pycuda" else CudaPythonApi()
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
        except Exception as exc:  # installed, but no usable device or driver
            raise ModelError(f"{name} is installed but CUDA is not usable here ({type(exc).__name__}: {exc})") from None
    package = "cuda-python" if prefer == "cuda-python" else "pycuda"
    raise MissingDependency(package, "the TensorRT backend (pycuda or cuda-python)", "tensorrt")
