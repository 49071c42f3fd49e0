"""The TensorRT runner's call sequence, against stand-ins for TensorRT and CUDA (``standin.py``).

TensorRT cannot run here; these tests check what our runner asks of it: one activation block for
all contexts (per version's API), a graph on a context that is never reshaped, the returns it must
check, the error it must not hide, and that everything it allocates is freed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from overfeat_edge.engine.cache import DeviceInfo, Manifest, write_engine
from overfeat_edge.engine.profiles import Profile
from overfeat_edge.errors import ModelError
from overfeat_edge.runtime import tensorrt as trt_runtime
from overfeat_edge.runtime.base import read_spec, resolve_onnx

from .standin import StandInCuda, standin_tensorrt

VERSIONS = ("8.6.1", "10.3.0", "11.4.0.106")
SPEC = read_spec(resolve_onnx("overfeat-mini-shapes"))
W = SPEC.arch.window


def engine_file(tmp_path: Path, version: str, profiles: list[Profile], extra: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "stand-in.engine"
    manifest = Manifest(
        model="overfeat-mini-shapes",
        onnx_sha256="0" * 64,
        precision="fp16",
        device=DeviceInfo("Stand-in GPU", "8.7", version),
        profiles=profiles,
        frame_hw=(480, 640),
        flags=["FP16"],
        extra={"spec": SPEC.to_json(), **(extra or {})},
    )
    write_engine(path, b"stand-in engine bytes", manifest)
    return path


def make_runner(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    version: str,
    profiles: list[Profile],
    *,
    cuda_graphs: bool = False,
    cuda: StandInCuda | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[trt_runtime.TensorRTRunner, Any, StandInCuda]:
    cuda = cuda or StandInCuda()
    module = standin_tensorrt(version, profiles, cuda)
    monkeypatch.setattr("overfeat_edge.engine.trt.load_tensorrt", lambda: module)
    monkeypatch.setattr(trt_runtime, "load_cuda", lambda prefer=None: cuda)
    runner = trt_runtime.TensorRTRunner(engine_file(tmp_path, version, profiles, extra), cuda_graphs=cuda_graphs)
    return runner, module.engine, cuda


def levels(batch: tuple[int, int, int] = (1, 1, 1)) -> list[Profile]:
    """Two pyramid levels' static profiles (batch min, opt, max)."""
    lo, opt, hi = batch
    return [
        Profile(i, str(s), (lo, 3, s, s + 8), (opt, 3, s, s + 8), (hi, 3, s, s + 8)) for i, s in enumerate((W, W + 16))
    ]


def frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, h, w)).astype(np.float32)


def want(x: np.ndarray) -> dict[str, np.ndarray]:
    """The stand-in network's outputs, computed here from the input (see standin.py)."""
    total = x.reshape(len(x), -1).sum(axis=1, dtype=np.float64).astype(np.float32)
    return {
        "scores": np.repeat(total[:, None], 2, 1)[..., None, None],
        "boxes": np.repeat(2 * total[:, None], 4, 1)[..., None, None],
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_context_shares_one_activation_block(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    runner, engine, cuda = make_runner(monkeypatch, tmp_path, version, levels(), cuda_graphs=True)
    with runner:
        x = frames(1, W, W + 8, 0)
        out = runner.run(x)
        np.testing.assert_allclose(out["scores"], want(x)["scores"], rtol=1e-5)
        # no context reserved memory of its own (kSTATIC would give each its own copy) ...
        assert [c for c in engine.log if c[0] == "create_context"] == [("create_context", "no memory")] * 4
        # ... one block of the engine's size was allocated, and every context (2 levels, 2 graph contexts) uses it
        blocks = [c for c in cuda.log if c[0] == "malloc" and c[2] == engine.memory_size]
        assert len(blocks) == 1
        assert {(c[2], c[3]) for c in engine.log if c[0] == "memory"} == {(blocks[0][1], engine.memory_size)}
        assert len([c for c in engine.log if c[0] == "memory"]) == len(engine.contexts) == 4
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}


def test_a_graph_is_replayed_only_on_its_own_never_reshaped_context(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # a batch engine (1..4 frames, tuned for 4) with CUDA graphs: a full round, a round with two
    # cameras stalled, a full round again; every output must be the network's for its own input
    runner, engine, _ = make_runner(monkeypatch, tmp_path, "10.3.0", levels((1, 4, 4)), cuda_graphs=True)
    with runner:
        for seed, n in enumerate((4, 2, 4, 1, 4)):
            x = frames(n, W, W + 8, seed)
            out = runner.run(x)
            for name, value in want(x).items():
                np.testing.assert_allclose(out[name], value, rtol=1e-5)
        assert engine.undefined == []
        replays = [c for c in engine.log if c[0] == "replay"]
        assert len(replays) == 3 and all(c[3] for c in replays)  # the full rounds replayed the graph
        # and the context the graph was captured on never had its shape changed after the capture
        graph_contexts = {c[1] for c in replays}
        reshaped = [c for c in engine.log if c[0] == "set_input_shape" and c[1] in graph_contexts]
        assert [c[2][0] for c in reshaped] == [4]  # set once, to the profile's opt batch, before capture


@pytest.mark.parametrize("version", VERSIONS)
def test_a_failure_in_the_first_slot_is_the_error_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str
) -> None:
    runner, engine, cuda = make_runner(monkeypatch, tmp_path, version, levels())
    engine.refuse_shapes = True  # the first level's shape refused: nothing was made yet
    with pytest.raises(ModelError, match="does not accept input shape"):
        runner.activate()
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0} and cuda.active == 0


def test_no_context_is_one_model_error_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, engine, cuda = make_runner(monkeypatch, tmp_path, "10.3.0", levels())
    engine.no_contexts = True  # create_execution_context returns None (out of memory)
    with pytest.raises(ModelError, match="could not create an execution context") as err:
        runner.activate()
    assert "\n" not in str(err.value)
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}


def test_a_refused_tensor_address_is_a_model_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner, engine, cuda = make_runner(monkeypatch, tmp_path, "11.4.0.106", levels())
    engine.refuse_addresses = True  # set_tensor_address returns False
    with pytest.raises(ModelError, match="refused the address of tensor 'input'"):
        runner.activate()
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}


def test_the_runner_frees_its_stream_and_every_buffer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dynamic = Profile(2, None, (1, 3, W, W), (1, 3, 2 * W, 2 * W), (1, 3, 4 * W, 4 * W))
    runner, _, cuda = make_runner(monkeypatch, tmp_path, "10.3.0", [*levels(), dynamic])
    for _ in range(2):  # two lifecycles: the second starts from nothing, as the first did
        with runner:
            x = frames(1, W + 3, W + 5, 1)  # no static profile: the dynamic one
            np.testing.assert_allclose(runner.run(x)["boxes"], want(x)["boxes"], rtol=1e-5)
            assert len(cuda.streams) == 1
        assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}


def test_dla_loadables_over_a_cores_limit_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # 16 loadables per DLA core at once (NVIDIA's DLA restrictions): 2 levels x 9 subgraphs is 18
    profiles = levels()
    cuda = StandInCuda()
    module = standin_tensorrt("8.6.1", profiles, cuda)
    monkeypatch.setattr("overfeat_edge.engine.trt.load_tensorrt", lambda: module)
    monkeypatch.setattr(trt_runtime, "load_cuda", lambda prefer=None: cuda)
    path = tmp_path / "dla.engine"
    manifest = Manifest(
        "m",
        "0" * 64,
        "fp16",
        DeviceInfo("Stand-in GPU", "8.7", "8.6.1", 0),
        profiles,
        (480, 640),
        ["FP16"],
        extra={"spec": SPEC.to_json(), "dla": {"subgraphs": 9}},
    )
    write_engine(path, b"dla", manifest)
    with pytest.raises(ModelError, match="2 contexts x 9 DLA subgraphs = 18 loadables"):
        trt_runtime.TensorRTRunner(path)
    manifest.extra["dla"] = {"subgraphs": 8}
    write_engine(path, b"dla", manifest)
    assert trt_runtime.TensorRTRunner(path).manifest.extra["dla"]["subgraphs"] == 8


@pytest.mark.parametrize("version", VERSIONS)
def test_the_standin_offers_only_names_the_versions_library_has(version: str) -> None:
    from .bindings import trt_library

    lib = trt_library(version)
    if lib is None:
        pytest.skip("no binding library: python -m tests.engine.bindings")
    module = standin_tensorrt(version, levels(), StandInCuda())
    e, ctx = module.engine, module.engine.context_class
    offered = {n for n in ("create_execution_context_without_device_memory", "device_memory_size_v2") if hasattr(e, n)}
    offered |= {n for n in ("set_device_memory", "device_memory") if hasattr(ctx, n)}
    offered |= (
        {"ExecutionContextAllocationStrategy", "USER_MANAGED"}
        if hasattr(module, "ExecutionContextAllocationStrategy")
        else set()
    )
    data = lib.read_bytes()
    assert offered and all(n.encode() + b"\0" in data for n in offered)


def test_a_cascade_stage_runner_lives_as_long_as_the_loops_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A stage engine (R-Net-like: one dynamic-batch profile) refining every frame of a real loop over
    a real ONNX Runtime detector: its context and buffers are made once, not per frame and stage."""
    from overfeat_edge.pipeline.cascade import CropStage, StageSpec
    from overfeat_edge.pipeline.detector import Detector, DetectorConfig
    from overfeat_edge.runtime import load_runner
    from overfeat_edge.stream.loop import Stream, StreamLoop
    from overfeat_edge.stream.sinks import JsonlSink
    from overfeat_edge.stream.sources import Source, parse_source
    from overfeat_edge.train.synth import write_demo_video

    crops = Profile(0, None, (1, 3, W, W), (64, 3, W, W), (256, 3, W, W))
    stage, engine, cuda = make_runner(monkeypatch, tmp_path, "10.3.0", [crops])
    detector = Detector(
        load_runner("onnxruntime", "overfeat-mini-shapes", threads=1),
        DetectorConfig(threshold=0.05, min_score=0.0),
        steps=[CropStage(stage, StageSpec(name="rnet", file="rnet.onnx", threshold=0.0, nms=0.7))],
    )
    clip = write_demo_video(tmp_path / "clip.mp4", frames=6, seed=3)
    with JsonlSink(tmp_path / "d.jsonl", detector.spec.class_names) as sink:
        StreamLoop([Stream("clip", Source(parse_source(str(clip))), [sink])], detector).run()
    refined = [c for c in engine.log if c[0] == "execute"]
    assert len(refined) >= 6  # the stage ran on every frame (each had boxes to refine) ...
    assert [c[0] for c in engine.log].count("create_context") == 1  # ... on the one context made for the worker
    assert len([c for c in cuda.log if c[0] == "malloc"]) == 4  # block, input, scores, boxes: once
    assert cuda.leaks() == {"device": 0, "pinned": 0, "streams": 0, "graphs": 0}  # freed when the worker ended


def test_a_failed_capture_falls_back_to_plain_enqueue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cuda = StandInCuda()
    monkeypatch.setattr(cuda, "capture", lambda stream, enqueue: None)  # e.g. an op not allowed under capture
    runner, engine, _ = make_runner(monkeypatch, tmp_path, "10.3.0", levels((1, 4, 4)), cuda_graphs=True, cuda=cuda)
    with runner:
        x = frames(4, W, W + 8, 5)
        np.testing.assert_allclose(runner.run(x)["scores"], want(x)["scores"], rtol=1e-5)
        assert all(s.graph is None and s.graph_context is None for s in runner.slots)
    assert [c[0] for c in engine.log].count("replay") == 0 and cuda.leaks()["device"] == 0
