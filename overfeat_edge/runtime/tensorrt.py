"""[TensorRT] The TensorRT backend: one execution context per pyramid scale, one sync per frame.

``load(model)`` takes an engine file (``engines/.../fp16-480x640-1a2b3c4d.engine``); its manifest
is checked against this device and TensorRT, and the engine's SHA-256 against the manifest, on one
read of the file: the bytes hashed are the bytes deserialized (see :mod:`overfeat_edge.engine.cache`).
An engine built for a DLA core is deserialized on that core (``IRuntime.DLA_core`` set first).

Lifecycle (as Polygraphy's runners): the engine is deserialized once; :meth:`activate` makes the
device's context current in this thread and, on the outermost activation, makes the stream, one
activation-memory block and, for every optimization profile, a context on that block, selects the
profile (before setting shapes), sets the input shape, reads the output shapes back and allocates
pinned host and device buffers; :meth:`deactivate` frees all of it. Activate once per worker, not
per frame (nested activations are free).

Memory: every context is created without memory of its own (8.x ``..._without_device_memory``,
10.0+ ``USER_MANAGED``) and given the one block, sized for the largest profile (``device_memory_size``
/ ``_v2``): the contexts run in series on one stream, so one block serves them all, where
``create_execution_context()`` would reserve one per context (``kSTATIC``).

``run_levels`` enqueues every level's copies and ``execute_async_v3`` on one stream and synchronizes
once. With ``cuda_graphs`` (cuda-python) each level has a second context, set once to the profile's
opt shape and never reshaped, whose enqueue is captured as a CUDA graph after a warm-up enqueue (as
trtexec: one graph per context; a graph is only valid for the shape and context state it captured);
batches of other sizes run on the level's plain context. Where capture fails, plain enqueue.

Inputs of other sizes go to the engine's dynamic profile (``build --dynamic``), if it has one:
a context of its own, buffers for the profile's largest shape, the input shape set per level and
the output shapes read back. Such a level is synchronized on its own (its buffers are reused by
the next one), so the static profiles stay the fast path: one synchronization per frame.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from overfeat_edge.engine.cache import DeviceInfo, Manifest, check_engine, manifest_path
from overfeat_edge.engine.compat import DLA_LOADABLES_PER_CORE, TrtVersion, context_memory
from overfeat_edge.engine.profiles import Profile, profile_for
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.runtime.base import INPUT_NAME, Runner
from overfeat_edge.runtime.cuda import CudaApi, load_cuda
from overfeat_edge.runtime.descriptor import BackendDescriptor, BackendOption
from overfeat_edge.spec import ModelSpec

if TYPE_CHECKING:  # checked against TensorRT's stubs in CI; imported lazily at run time
    import tensorrt as trt


def stage_engine(model: str, stage: str) -> str:
    """A cascade stage's engine, where ``build`` puts it: beside the detector's (``<stem>.<stage>.engine``)."""
    from overfeat_edge.engine.builder import stage_engine_path

    return str(stage_engine_path(Path(model), stage))


DESCRIPTOR = BackendDescriptor(
    name="tensorrt",
    summary="TensorRT on an NVIDIA GPU or Jetson (an .engine from 'overfeat-edge build')",
    options=(
        BackendOption("cuda_graphs", bool, "a CUDA graph per scale.", stages=False),
        BackendOption("cuda", str, "the CUDA binding (cuda-python or pycuda).", metavar="API"),
        BackendOption("dla_core", int, "the DLA core the engine was built for (Jetson).", metavar="N"),
    ),
    max_workers=1,
    spec_source="engine",
    precisions=("fp32", "fp16", "int8"),
    available=lambda: None if importlib.util.find_spec("tensorrt") else "TensorRT (JetPack, or pip install tensorrt)",
    stage_model=stage_engine,
)


@dataclass
class _Slot:
    """One per-scale profile's context, its buffers sized for the profile's largest batch (the first
    ``n`` rows serve a batch of ``n``) and the input shape set now; with CUDA graphs, the graph and
    the context it was captured on (at the profile's opt shape, never reshaped)."""

    profile: Profile
    context: trt.IExecutionContext
    host_in: np.ndarray
    dev_in: int
    host_out: dict[str, np.ndarray]
    dev_out: dict[str, int]
    shape: tuple[int, ...] | None = None
    graph: Any = None
    graph_context: trt.IExecutionContext | None = None


@dataclass
class _DynamicSlot(_Slot):
    """The dynamic profile's context; flat buffers sized for its largest input."""


def _dims(dims: Any) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


def running_device(module: Any, cuda: CudaApi, dla_core: int | None = None) -> DeviceInfo:
    gpu, cc = cuda.device()
    return DeviceInfo(gpu=gpu, compute_capability=cc, tensorrt=str(module.__version__), dla_core=dla_core)


class TensorRTRunner(Runner):
    name = "tensorrt"

    def __init__(
        self, engine_path: Path, *, cuda_graphs: bool = False, cuda: str | None = None, dla_core: int | None = None
    ) -> None:
        from overfeat_edge.engine.trt import load_tensorrt

        module = load_tensorrt()
        self.cuda = load_cuda(cuda)
        if cuda_graphs and not self.cuda.graphs:
            raise InputError(
                f"--cuda-graphs needs cuda-python (CUDA graphs are not implemented over {self.cuda.name}); "
                "pip install cuda-python and pass --cuda cuda-python, or drop --cuda-graphs"
            )
        manifest, data = check_engine(engine_path, running_device(module, self.cuda, dla_core))
        if "spec" not in manifest.extra:
            raise ModelError(f"{engine_path}: its manifest has no model spec; rebuild it")
        self.spec = ModelSpec.from_json(manifest.extra["spec"], str(engine_path))
        self.precision = manifest.precision
        self.outputs = self.spec.arch.output_names  # scores, boxes, then any extra head (landmarks)
        self.max_batch = max(p.max[0] for p in manifest.profiles)
        self.manifest = manifest
        self.path = engine_path
        self.cuda_graphs = cuda_graphs
        self.trt = module
        self.memory = context_memory(TrtVersion.parse(str(module.__version__)))
        self._check_dla_loadables()
        self.logger: trt.ILogger = module.Logger(module.Logger.WARNING)
        self.runtime: trt.Runtime = module.Runtime(self.logger)
        if manifest.device.dla_core is not None:
            self.runtime.DLA_core = manifest.device.dla_core  # before deserializing
        self.cuda.activate()
        try:
            self.engine: trt.ICudaEngine = self.runtime.deserialize_cuda_engine(data)
        finally:
            self.cuda.deactivate()
        if self.engine is None:
            raise ModelError(f"TensorRT could not deserialize {engine_path}")
        self.stream = 0  # made, with the memory block, by the outermost activation
        self.block, self.block_bytes = 0, 0
        self.slots: list[_Slot] = []
        self.dynamic: _DynamicSlot | None = None  # made on first use
        self._depth = 0

    def _check_dla_loadables(self) -> None:
        """Refuse a DLA engine whose contexts would hold more loadables than a core can load."""
        subgraphs = (self.manifest.extra.get("dla") or {}).get("subgraphs")
        if self.manifest.device.dla_core is None or not isinstance(subgraphs, int):
            return
        contexts = sum(p.scale is not None for p in self.manifest.profiles) * (2 if self.cuda_graphs else 1)
        if contexts * subgraphs > DLA_LOADABLES_PER_CORE:
            raise ModelError(
                f"{self.path.name}: {contexts} contexts x {subgraphs} DLA subgraphs = {contexts * subgraphs} "
                f"loadables, more than the {DLA_LOADABLES_PER_CORE} a DLA core loads at once; use fewer scales"
                + (" or drop --cuda-graphs" if self.cuda_graphs else "")
            )

    def _context(self, p: Profile) -> trt.IExecutionContext:
        """A context on profile ``p`` sharing the runner's one activation-memory block."""
        if self.memory.user_managed:
            ctx = self.engine.create_execution_context(self.trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        else:
            ctx = self.engine.create_execution_context_without_device_memory()
        if ctx is None:  # TensorRT returns None (out of memory, say); its log says why
            raise ModelError(f"{self.path.name}: TensorRT could not create an execution context (see its log)")
        if self.memory.set_v2:
            ctx.set_device_memory(self.block, self.block_bytes)
        else:
            ctx.device_memory = self.block  # type: ignore[attr-defined]  # write-only in the binding, not in the stubs
        try:  # profile first, then shapes; it raises on failure (returns True otherwise)
            ctx.set_optimization_profile_async(p.index, self.stream)
        except RuntimeError as exc:
            raise ModelError(f"{self.path.name}: cannot select optimization profile {p.index} ({exc})") from None
        return ctx

    def _bind(self, ctx: trt.IExecutionContext, name: str, ptr: int) -> None:
        if not ctx.set_tensor_address(name, ptr):
            raise ModelError(f"{self.path.name}: TensorRT refused the address of tensor {name!r}")

    def _slot(self, p: Profile, dynamic: bool = False) -> _Slot:
        """A context on profile ``p`` with its buffers: for its one shape, or flat for its largest."""
        ctx = self._context(p)
        shape_in = p.max  # the largest input sizes the buffers (and, set now, gives the largest outputs)
        if not ctx.set_input_shape(INPUT_NAME, shape_in):
            raise ModelError(f"profile {p.index} does not accept input shape {shape_in}")
        hosts: dict[str, np.ndarray] = {}
        devices: dict[str, int] = {}
        try:
            for name in (INPUT_NAME, *self.outputs):
                shape = shape_in if name == INPUT_NAME else _dims(ctx.get_tensor_shape(name))  # set by the input's
                if any(d < 0 for d in shape):
                    raise ModelError(f"output {name} has unresolved shape {shape} for profile {p.index}")
                hosts[name] = self.cuda.pinned((int(np.prod(shape)),) if dynamic else shape, np.float32)
                devices[name] = self.cuda.malloc(hosts[name].nbytes)
                self._bind(ctx, name, devices[name])
            self.cuda.sync(self.stream)
        except BaseException:
            for ptr in devices.values():
                self.cuda.free(ptr)
            for host in hosts.values():
                self.cuda.free_pinned(host)
            raise
        host_in, dev_in = hosts.pop(INPUT_NAME), devices.pop(INPUT_NAME)
        if dynamic:
            return _DynamicSlot(p, ctx, host_in, dev_in, hosts, devices, shape=shape_in)
        slot = _Slot(p, ctx, host_in, dev_in, hosts, devices, shape=shape_in)
        self._set_shape(slot, p.opt)  # the batch the profile expects most
        return slot

    def _set_shape(self, s: _Slot, shape: tuple[int, ...]) -> None:
        if s.shape != shape:
            if not s.context.set_input_shape(INPUT_NAME, shape):
                raise ModelError(f"profile {s.profile.index} does not accept input shape {shape}")
            s.shape = shape

    def _run_dynamic(self, d: _DynamicSlot, x: np.ndarray) -> dict[str, np.ndarray]:
        """One level through the dynamic profile; synchronizes (its buffers serve the next level)."""
        self._set_shape(d, x.shape)
        host_in = d.host_in[: x.size].reshape(x.shape)
        np.copyto(host_in, x)
        self.cuda.h2d(d.dev_in, host_in, self.stream)
        if not d.context.execute_async_v3(self.stream):
            raise ModelError("TensorRT execute_async_v3 failed")
        outs = {}
        for name in self.outputs:
            shape = _dims(d.context.get_tensor_shape(name))
            outs[name] = d.host_out[name][: int(np.prod(shape))].reshape(shape)
            self.cuda.d2h(outs[name], d.dev_out[name], self.stream)
        self.cuda.sync(self.stream)
        return {name: v.copy() for name, v in outs.items()}

    def _capture(self, s: _Slot) -> None:
        """A context of its own at the profile's opt shape, on the slot's buffers, and its graph."""
        ctx = s.graph_context = self._context(s.profile)
        if not ctx.set_input_shape(INPUT_NAME, s.profile.opt):
            raise ModelError(f"profile {s.profile.index} does not accept input shape {s.profile.opt}")
        for name, ptr in ((INPUT_NAME, s.dev_in), *s.dev_out.items()):
            self._bind(ctx, name, ptr)
        if not ctx.execute_async_v3(self.stream):  # warm-up enqueue: lazy allocations happen here
            raise ModelError(f"{self.path.name}: TensorRT execute_async_v3 failed for profile {s.profile.index}")
        self.cuda.sync(self.stream)
        s.graph = self.cuda.capture(self.stream, lambda: ctx.execute_async_v3(self.stream))
        if s.graph is None:  # capture failed: this level enqueues plainly, the second context is not kept
            s.graph_context = None

    def _free(self, s: _Slot) -> None:
        if s.graph is not None:
            self.cuda.destroy_graph(s.graph)
        for ptr in (s.dev_in, *s.dev_out.values()):
            self.cuda.free(ptr)
        for host in (s.host_in, *s.host_out.values()):
            self.cuda.free_pinned(host)

    # ---- Runner ------------------------------------------------------------------------------
    def activate(self) -> None:
        """Make the context current; on the outermost activation, make the stream, the memory block,
        the contexts and the buffers."""
        self.cuda.activate()
        self._depth += 1
        if self._depth > 1:
            return
        try:
            self.stream = self.cuda.stream()
            e = self.engine
            self.block_bytes = int(e.device_memory_size_v2 if self.memory.set_v2 else e.device_memory_size)
            self.block = self.cuda.malloc(self.block_bytes)
            for p in self.manifest.profiles:  # one at a time: a failure frees the slots made so far
                if p.scale is not None:
                    self.slots.append(self._slot(p))
            if self.cuda_graphs:
                for s in self.slots:
                    self._capture(s)
        except BaseException:
            self.deactivate()
            raise

    def deactivate(self) -> None:
        """Free what the outermost :meth:`activate` made; release the context in this thread."""
        self._depth -= 1
        try:
            if self._depth == 0:
                self._release()
        finally:
            self.cuda.deactivate()

    def _release(self) -> None:
        """Free every slot, the block and the stream, while this thread's CUDA context is current
        (the execution contexts go with the slots, before the block they use)."""
        if self.stream:
            self.cuda.sync(self.stream)
        while self.slots or self.dynamic is not None:
            slot = self.slots.pop() if self.slots else self.dynamic
            if slot is self.dynamic:
                self.dynamic = None
            assert slot is not None
            self._free(slot)
            del slot
        if self.block:
            self.cuda.free(self.block)
            self.block = 0
        if self.stream:
            self.cuda.destroy_stream(self.stream)
            self.stream = 0

    def describe(self) -> str:
        m = self.manifest
        return f"tensorrt {m.device.tensorrt} {m.precision} on {m.device.gpu} ({self.path.name}, {self.cuda.name})"

    def _slot_for(self, shape: tuple[int, int, int, int]) -> _Slot:
        p = profile_for(self.manifest.profiles, shape)  # a static profile made for it, else the dynamic one
        for s in self.slots:
            if s.profile.index == p.index:
                return s
        if self.dynamic is None:
            slot = self._slot(p, dynamic=True)
            assert isinstance(slot, _DynamicSlot)
            self.dynamic = slot
        return self.dynamic

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._enqueue([batch])[0]

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return self._enqueue(batches)

    def _enqueue(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Every batch's outputs by name: static levels enqueued together, one synchronization. A
        batch for a slot already used in this call (a round cut into several batches of one level)
        first waits for the stream and copies the earlier outputs out of the slot's buffers."""
        if self._depth == 0:
            with self:
                return self._enqueue(batches)
        done: list[tuple[_Slot, int] | dict[str, np.ndarray]] = []

        def flush() -> None:
            self.cuda.sync(self.stream)
            for i, d in enumerate(done):
                if isinstance(d, tuple):
                    done[i] = {k: v[: d[1]].copy() for k, v in d[0].host_out.items()}

        for x in batches:
            x = self.check_input(x)
            s = self._slot_for(x.shape)  # type: ignore[arg-type]
            if isinstance(s, _DynamicSlot):
                done.append(self._run_dynamic(s, x))
                continue
            if any(isinstance(d, tuple) and d[0] is s for d in done):
                flush()  # its buffers still hold (or are still copying) an earlier batch's outputs
            n = x.shape[0]  # a batch of n uses the first n rows of buffers sized for the profile's largest
            host_in = s.host_in[:n]
            np.copyto(host_in, x)
            self.cuda.h2d(s.dev_in, host_in, self.stream)
            if s.graph is not None and x.shape == s.profile.opt:  # its own context, never reshaped
                self.cuda.launch(s.graph, self.stream)
            else:
                self._set_shape(s, x.shape)
                if not s.context.execute_async_v3(self.stream):
                    raise ModelError("TensorRT execute_async_v3 failed")
            for name in self.outputs:
                self.cuda.d2h(s.host_out[name][:n], s.dev_out[name], self.stream)
            done.append((s, n))
        flush()  # one synchronization for every static level of the frame
        return [d for d in done if isinstance(d, dict)]


def load(
    model: str,
    *,
    cuda_graphs: bool = False,
    cuda: str | None = None,
    dla_core: int | None = None,
    precision: str = "fp32",
) -> Runner:
    """An engine runs at the precision it was built with: ``precision`` must be that or the default
    ``fp32`` (build an ``fp16``/``int8`` engine with ``build --precision``)."""
    DESCRIPTOR.check_precision(precision)
    path = Path(model)
    if path.suffix != ".engine":
        raise InputError(
            f"--backend tensorrt takes an engine file (.engine), got {model!r}; build one with "
            "'overfeat-edge build --model MODEL' (it prints the engine's path)"
        )
    if manifest_path(path).is_file():  # a foreign or tampered manifest is refused before TensorRT loads
        built = Manifest.from_json(manifest_path(path).read_text(errors="replace"), str(manifest_path(path)))
        if precision not in ("fp32", built.precision):
            raise InputError(
                f"{path.name} is an {built.precision} engine; for --precision {precision} build one with "
                f"'overfeat-edge build --precision {precision}'"
            )
    return TensorRTRunner(path, cuda_graphs=cuda_graphs, cuda=cuda, dla_core=dla_core)
