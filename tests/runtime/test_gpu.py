"""The torch CUDA path against the CPU path (skipped where torch sees no GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from overfeat_edge.models import create_model
from overfeat_edge.pipeline.preprocess import level_inputs
from overfeat_edge.pipeline.pyramid import parse_scales, plan_levels
from overfeat_edge.runtime.torch import GpuPyramid, TorchRunner
from overfeat_edge.spec import default_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"),
]


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize(
    ("half", "channels_last", "graphs", "tol"),
    [(False, False, False, 1e-2), (True, True, False, 3e-2), (True, True, True, 3e-2)],
)
def test_gpu_pyramid_matches_cpu_pipeline(half: bool, channels_last: bool, graphs: bool, tol: float) -> None:
    torch.backends.cudnn.allow_tf32 = False
    net = create_model("overfeat-fast@0.25", num_classes=3, seed=0).eval()
    spec = default_spec(net.arch)
    frame = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    levels = plan_levels(net.arch, True, frame.shape[:2], parse_scales(["231", "300x400", "400"]))
    cpu = TorchRunner(create_model("overfeat-fast@0.25", num_classes=3, seed=0), spec, "cpu")
    ref = [(o["scores"], o["boxes"]) for o in map(cpu.run, level_inputs(frame, levels, spec))]
    gpu = GpuPyramid(
        TorchRunner(net, spec, "cuda", half=half, channels_last=channels_last), levels, frame.shape[:2], graphs=graphs
    )
    if graphs:
        assert gpu.graphs is not None, "CUDA graph capture fell back"
    for _ in range(2):  # a replayed graph must give the same as the first run
        out = gpu.run(frame)
        for (s, b), (rs, rb) in zip(out, ref, strict=True):
            assert s.shape == rs.shape
            # GPU bilinear+antialias vs OpenCV area resize differ slightly; FP16 adds rounding
            assert rel(s, rs) < tol and rel(b, rb) < tol


def test_fp32_cuda_runner_matches_cpu_on_same_input() -> None:
    torch.backends.cudnn.allow_tf32 = False
    net = create_model("overfeat-accurate@0.25", num_classes=3, seed=0)
    spec = default_spec(net.arch)
    x = np.random.default_rng(1).standard_normal((1, 3, 245, 281)).astype(np.float32)
    a = TorchRunner(create_model("overfeat-accurate@0.25", num_classes=3, seed=0), spec, "cpu").run(x)
    b = TorchRunner(net, spec, "cuda").run(x)
    assert rel(b["scores"], a["scores"]) < 1e-4 and rel(b["boxes"], a["boxes"]) < 1e-4
