"""PyTorch backend: a checkpoint or a registry name (random weights), on the CPU or CUDA.

On CUDA it has the fast path: FP16 weights and compute, channels-last memory, and
:class:`GpuPyramid`, which uploads a frame once through pinned memory, builds every pyramid
level on the GPU and can replay one CUDA graph per scale.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import Runner
from overfeat_edge.runtime.descriptor import THREADS, BackendDescriptor, BackendOption
from overfeat_edge.spec import ModelSpec
from overfeat_edge.types import ScaleLevel

STRIDES = ("fine", "coarse")
DESCRIPTOR = BackendDescriptor(
    name="torch",
    summary="PyTorch (a checkpoint .pt, a shipped model, or a registry name with random weights)",
    options=(
        BackendOption("weights", str, "a checkpoint (.pt) for a registry name.", metavar="FILE", stages=False),
        BackendOption("device", str, "cpu or cuda.", metavar="DEVICE"),
        THREADS,
        BackendOption("channels_last", bool, "channels-last memory (faster FP16 on CUDA)."),
        BackendOption(
            "stride", str, "fine or coarse (default: the checkpoint's; fine for a registry name).", choices=STRIDES
        ),
    ),
    max_workers=1,
    spec_source="checkpoint",
    precisions=("fp32", "fp16", "bf16"),
    available=lambda: None if importlib.util.find_spec("torch") else "pip install torch (the [torch] extra)",
)


class TorchRunner(Runner):
    name = "torch"

    def __init__(
        self,
        net: Any,
        spec: ModelSpec,
        device: str = "cpu",
        half: bool = False,
        channels_last: bool = False,
        precision: str = "fp32",
    ) -> None:
        torch = require("torch", "the torch backend")
        precision = "fp16" if half else precision
        DESCRIPTOR.check_precision(precision)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but torch sees no CUDA GPU")
        if precision == "fp16" and not device.startswith("cuda"):
            raise InputError("--precision fp16 needs --device cuda (FP16 convolutions are slow or missing on the CPU)")
        self.torch = torch
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net.to(self.device, self.dtype).to(memory_format=self.memory_format).eval()
        self.spec = spec

    def forward(self, x: Any) -> tuple[Any, Any]:
        """Device tensor in (N, 3, H, W) float32 -> (scores, boxes) device tensors in float32."""
        scores, boxes = self.forward_all(x)[:2]
        return scores, boxes

    def forward_all(self, x: Any) -> tuple[Any, ...]:
        """Every head's device tensor in float32, in ``spec.arch.output_names`` order."""
        x = x.to(self.dtype).contiguous(memory_format=self.memory_format)
        return tuple(t.float() for t in self.net.predict_all(x))

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = self.torch.from_numpy(self.check_input(batch)).to(self.device)
        with self.torch.inference_mode():
            outs = self.forward_all(x)
        return {name: t.cpu().numpy() for name, t in zip_strict(self.spec.arch.output_names, outs)}

    def describe(self) -> str:
        return f"torch {self.torch.__version__} {self.precision} on {self.device}"


class GpuPyramid:
    """One frame -> every pyramid level's maps, preprocessing on the GPU.

    The frame (H, W, 3) uint8 BGR is copied once into pinned memory and uploaded
    asynchronously; each level is resized on the GPU (bilinear with antialiasing when
    shrinking, close to OpenCV's area averaging), normalized, and run. With ``graphs`` each
    level's preprocessing + network is captured as one CUDA graph after a warm-up and
    replayed; if capture fails the plain path is used. One synchronization per frame.
    """

    def __init__(
        self, runner: TorchRunner, levels: list[ScaleLevel], frame_hw: tuple[int, int], graphs: bool = False
    ) -> None:
        torch = runner.torch
        self.torch, self.runner, self.levels = torch, runner, levels
        spec = runner.spec
        order = [2, 1, 0] if spec.channel_order == "rgb" else [0, 1, 2]
        self.order = torch.tensor(order, device=runner.device)
        self.mean = torch.tensor(spec.mean, device=runner.device).view(1, 3, 1, 1)
        self.inv_std = 1.0 / torch.tensor(spec.std, device=runner.device).view(1, 3, 1, 1)
        self.host = torch.empty((*frame_hw, 3), dtype=torch.uint8).pin_memory()
        self.frame = torch.empty((*frame_hw, 3), dtype=torch.uint8, device=runner.device)
        self.graphs: list[Any] | None = None
        self.outputs: list[tuple[Any, Any]] = []
        if graphs:
            self._capture()

    def _level(self, lv: ScaleLevel) -> tuple[Any, Any]:
        f = self.torch.nn.functional
        x = self.frame.permute(2, 0, 1)[self.order].unsqueeze(0).float()
        shrink = lv.input_hw[0] * lv.input_hw[1] < x.shape[2] * x.shape[3]
        x = f.interpolate(x, size=lv.input_hw, mode="bilinear", align_corners=False, antialias=shrink)
        return self.runner.forward((x - self.mean) * self.inv_std)

    def _capture(self) -> None:
        torch = self.torch
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for lv in self.levels:  # warm-up: cuDNN picks its algorithms outside capture
                    self._level(lv)
            torch.cuda.current_stream().wait_stream(stream)
            graphs, outputs = [], []
            with torch.inference_mode():
                for lv in self.levels:
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        outputs.append(self._level(lv))
                    graphs.append(g)
            self.graphs, self.outputs = graphs, outputs
        except RuntimeError:
            self.graphs, self.outputs = None, []  # fall back to plain enqueue

    def run(self, frame_bgr: np.ndarray, to_host: bool = True) -> list[tuple[Any, Any]]:
        """Maps of every level, as numpy (``to_host``) or device tensors; (1, C, H, W) each."""
        torch = self.torch
        self.host.numpy()[...] = frame_bgr
        self.frame.copy_(self.host, non_blocking=True)
        with torch.inference_mode():
            if self.graphs is not None:
                for g in self.graphs:
                    g.replay()
                outs = self.outputs
            else:
                outs = [self._level(lv) for lv in self.levels]
            if not to_host:
                return outs
            host = [(s.to("cpu", non_blocking=True), b.to("cpu", non_blocking=True)) for s, b in outs]
            torch.cuda.synchronize()
        return [(s.numpy(), b.numpy()) for s, b in host]


def load(
    model: str,
    *,
    weights: str | None = None,
    device: str | None = None,
    stride: str | None = None,
    channels_last: bool = False,
    threads: int | None = None,
    precision: str = "fp32",
) -> TorchRunner:
    """``model``: a checkpoint (.pt), a shipped model name, or a registry name (+ ``weights``)."""
    from overfeat_edge.runtime.base import shipped_models

    shipped = shipped_models()
    if weights is None and (
        Path(model).suffix.lower() in (".onnx", ".engine", ".plan")
        or (model in shipped and not (shipped[model] / "model.pt").is_file())
    ):
        what = "ships as ONNX only" if model in shipped else "is not a checkpoint"
        raise InputError(
            f"--backend torch runs a checkpoint (.pt) or a registered network; {model} {what}: "
            "use --backend auto or onnxruntime (or tensorrt for an .engine)"
        )
    require("torch", "the torch backend")
    if stride is not None and stride not in STRIDES:
        raise InputError(f"--stride must be one of {', '.join(STRIDES)}, got {stride!r}")
    fine_stride = None if stride is None else stride == "fine"
    from overfeat_edge.models import create_model, load_checkpoint
    from overfeat_edge.spec import default_spec

    ckpt = weights or (str(shipped[model] / "model.pt") if model in shipped else None)
    if ckpt is None and Path(model).suffix in (".pt", ".pth", ".ckpt"):
        ckpt = model
    if ckpt is not None:
        net, spec, _ = load_checkpoint(ckpt, fine_stride=fine_stride)
    else:
        net = create_model(model, fine_stride=True if fine_stride is None else fine_stride, seed=0)
        spec = default_spec(net.arch, fine_stride=net.fine_stride)
    net.set_fine_stride(spec.fine_stride)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return TorchRunner(net, spec, device or "cpu", channels_last=channels_last, precision=precision)
