"""--backend triton against a real tritonserver on 127.0.0.1 (started by the fixtures, stopped by PID)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.io import read_image
from overfeat_edge.pipeline.cascade import CropStage
from overfeat_edge.pipeline.load import load_detector
from overfeat_edge.runtime import load_runner
from overfeat_edge.runtime.base import ASSETS
from overfeat_edge.runtime.triton import TritonRunner
from overfeat_edge.train.synth import SynthConfig, scene, video
from overfeat_edge.types import Detections
from tests.triton.conftest import FOREIGN, KEY, NO_SPEC, SECRET
from tests.triton.server import Server, free_port

pytest.importorskip("tritonclient.grpc", reason="pip install 'overfeat-edge[triton]' (tritonclient[grpc,http])")
pytestmark = pytest.mark.triton

ROOT = Path(__file__).resolve().parents[2]
SMALL = SynthConfig(height=160, width=224, min_size=40, max_size=120)


def url(server: Server, kind: str) -> str:
    return server.grpc_url if kind.startswith("grpc") else server.http_url


def same(a: Detections, b: Detections) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    np.testing.assert_allclose(a.score, b.score, atol=1e-5)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    assert sorted(a.data) == sorted(b.data)
    for k in a.data:
        np.testing.assert_allclose(a.data[k], b.data[k], atol=1e-3)


@pytest.mark.parametrize("kind", ["grpc", "grpc+shm", "http", "http+shm"])
def test_shapes_detections_equal_local_onnxruntime(server: Server, kind: str) -> None:
    rng = np.random.default_rng(7)
    frames = [scene(rng, SMALL)[0] for _ in range(3)]
    local = load_detector("overfeat-mini-shapes", backend="onnxruntime", threads=1)
    served = load_detector(
        "overfeat-mini-shapes", backend="triton", triton_url=url(server, kind), triton_shm=kind.endswith("shm")
    )
    assert isinstance(served.runner, TritonRunner) and served.spec == local.spec  # the spec came from the server
    found = 0
    with served.runner:
        for f in frames * 2:  # twice: with shared memory, the second pass reads outputs from the regions
            d = served.detect(f)
            same(d, local.detect(f))
            found += len(d)
    assert found > 0
    # the raw maps of every level, one request each, all at once
    rng = np.random.default_rng(1)
    levels = [rng.standard_normal((2, 3, h, w)).astype(np.float32) for h, w in [(59, 59), (90, 71)]]
    for got, want in zip(served.runner.run_levels(levels), [local.runner.run(x) for x in levels]):
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], atol=1e-5)


def test_shared_memory_regions_live_from_frame_to_frame(server: Server) -> None:
    """One region per pyramid level, registered once and kept across frames (not made, registered,
    unregistered and removed again on every frame), and gone from the server and /dev/shm on close."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url.split("://", 1)[1])
    det = load_detector("overfeat-mini-shapes", backend="triton", triton_url=server.grpc_url, triton_shm=True)
    prefix = det.runner.shm.prefix

    def ours() -> tuple[set[str], set[str]]:
        regions = client.get_system_shared_memory_status(as_json=True).get("regions", {})
        files = {p.name for p in Path("/dev/shm").glob(prefix + "*")}
        return {n for n in regions if n.startswith(prefix)}, files

    rng = np.random.default_rng(3)
    frames = [scene(rng, SMALL)[0] for _ in range(3)]
    seen = []
    for f in frames:
        det.detect(f)
        seen.append(ours())
    levels = len(det.levels(frames[0].shape[:2]))
    assert len(seen[0][0]) == levels and seen[0][1] == seen[0][0]  # registered and on /dev/shm, one per level
    assert seen[1] == seen[0] and seen[2] == seen[0]
    det.runner.close()
    assert ours() == (set(), set())


def test_mtcnn_every_stage_through_the_server(server: Server) -> None:
    import tritonclient.grpc as grpcclient

    photo = read_image(ASSETS / "mtcnn-face" / "sample.jpg")
    assert photo is not None
    local = load_detector("mtcnn-face", backend="onnxruntime", threads=1)
    served = load_detector("mtcnn-face", backend="triton", triton_url=server.grpc_url)
    stages = [s.runner for s in served.steps if isinstance(s, CropStage)]
    assert [(type(r), getattr(r, "model", "")) for r in stages] == [
        (TritonRunner, "mtcnn-face-rnet"),
        (TritonRunner, "mtcnn-face-onet"),
    ]
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")

    def count(model: str) -> int:
        return int(client.get_inference_statistics(model).model_stats[0].inference_count)

    before = {m: count(m) for m in ("mtcnn-face", "mtcnn-face-rnet", "mtcnn-face-onet")}
    d = served.detect(photo)
    same(d, local.detect(photo))
    assert len(d) >= 1 and d.data["landmarks"].shape == (len(d), 5, 2)
    assert all(count(m) > n for m, n in before.items())  # each network ran on the server
    frame = scene(np.random.default_rng(3), SMALL)[0]
    same(served.detect(frame), local.detect(frame))


def test_dynamic_batching_gathers_concurrent_streams(server: Server) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")

    def batched() -> int:  # executions of more than one request, so far
        stats = client.get_inference_statistics("overfeat-mini-shapes").model_stats[0]
        return sum(int(b.compute_infer.count) for b in stats.batch_stats if b.batch_size > 1)

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    runners = [load_runner("triton", "overfeat-mini-shapes", triton_url=server.grpc_url) for _ in range(4)]
    want = runners[0].run(x)
    errors: list[BaseException] = []

    def stream(r: TritonRunner) -> None:
        try:
            for _ in range(12):
                got = r.run(x)
                np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)
        except BaseException as exc:
            errors.append(exc)

    before = batched()
    for _ in range(3):  # the batcher forms batches when requests meet in its queue: a few rounds at most
        threads = [threading.Thread(target=stream, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if batched() > before:
            break
    assert not errors
    assert batched() > before


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    ("model", "where", "message"),
    [
        ("overfeat-mini-shapes", "closed", "triton: no server answers at grpc://127.0.0.1:"),
        ("overfeat-mini-shapes", "closed-http", "triton: no server answers at http://127.0.0.1:"),
        ("overfeat-mini-shapes", "ftp", "--triton-url must be grpc://HOST:PORT"),
        ("nope", "grpc", "has no model 'nope' ready (it has: foreign, mtcnn-face, mtcnn-face-onet"),
        ("nope", "http", "has no model 'nope' ready (it has: foreign, mtcnn-face, mtcnn-face-onet"),
        (FOREIGN, "grpc", "model 'foreign' is not an overfeat-edge model: inputs [('images', [3, -1, -1])]"),
        (NO_SPEC, "grpc", "model 'no-spec' has no overfeat_edge.spec parameter in its config"),
    ],
)
def test_bad_server_input_is_one_line(server: Server, tmp_path: Path, model: str, where: str, message: str) -> None:
    target = {
        "closed": f"grpc://127.0.0.1:{free_port()}",
        "closed-http": f"http://127.0.0.1:{free_port()}",
        "ftp": "ftp://127.0.0.1/x",
        "grpc": server.grpc_url,
        "http": server.http_url,
    }[where]
    image = str(ASSETS / "mtcnn-face" / "sample.jpg")
    r = cli("detect", image, "--model", model, "--backend", "triton", "--triton-url", target, "--out", str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "detections.json").exists()


def served(server: Server) -> int:
    """Requests the server has answered for the shapes model (0 while it cannot say)."""
    import tritonclient.grpc as grpcclient

    try:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
        return int(client.get_inference_statistics("overfeat-mini-shapes").model_stats[0].inference_count)
    except Exception:
        return 0


def test_demo_through_the_server_writes_local_onnxruntimes_detections(server: Server, tmp_path: Path) -> None:
    """`demo --backend triton`: the same generated video, the same records as the demo on local ONNX Runtime."""
    args = ["demo", "--model", "overfeat-mini-shapes", "--frames", "12", "--scales", "200"]
    local = cli(*args, "--backend", "onnxruntime", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    before = served(server)
    remote = cli(*args, "--backend", "triton", "--triton-url", server.grpc_url, "--out", str(tmp_path / "served"))
    assert remote.returncode == 0, remote.stderr
    assert served(server) - before >= 12  # every frame's level went to the server

    def records(folder: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / folder / "detections.jsonl").read_text().splitlines()]

    want, got = records("local"), records("served")
    assert len(got) == len(want) == 12 and sum(len(r["detections"]) for r in want) > 0
    for a, b in zip(got, want):
        assert [d["label"] for d in a["detections"]] == [d["label"] for d in b["detections"]]
        for da, db in zip(a["detections"], b["detections"]):
            np.testing.assert_allclose(da["box"], db["box"], atol=1e-2)
    assert (tmp_path / "served" / "demo.mp4").stat().st_size > 0


def test_bench_through_the_server(server: Server, tmp_path: Path) -> None:
    """`bench --backend triton`: the network alone and `run` end to end through the server, its requests
    counted by the server itself; no CPU-peak row for a network that does not run on these cores."""
    out = tmp_path / "bench.json"
    before = served(server)
    r = cli("bench", "--backend", "triton", "--triton-url", server.grpc_url, "--model", "overfeat-mini-shapes",
            "--frames", "4", "--scales", "131", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    figures = json.loads(out.read_text())
    assert figures["backend"].startswith("triton overfeat-mini-shapes at grpc://127.0.0.1")
    assert figures["workers"] == 1 and figures["threads"] is None and figures["run_fps"] > 0
    # the network alone (one runner, then the pool), the other stages' pass and the run: 4 frames each
    assert served(server) - before >= 4 * 4
    assert "network only: 1 runner" in r.stdout and "matmul peak" not in r.stdout


def test_server_away_mid_run_the_run_goes_on(own_server: Server, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    n = 400
    for i, (f, _, _) in enumerate(video(5, n, SMALL)):
        cv2.imwrite(str(frames / f"{i:04d}.png"), f)
    jsonl, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    cmd = [sys.executable, str(ROOT / "cli.py"), "run", str(frames), "--model", "overfeat-mini-shapes"]
    cmd += ["--backend", "triton", "--triton-url", own_server.grpc_url, "--jsonl", str(jsonl)]
    cmd += ["--stats-json", str(stats), "--no-live", "--scales", "160", "--scales", "120"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # the JSONL appears at the end (renamed): watch the server instead
        while time.monotonic() < deadline and served(own_server) < 20:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before the server could be stopped"
        own_server.kill()
        time.sleep(3)
        assert proc.poll() is None  # it waits for the server (a file source loses nothing)
        own_server.start(timeout=120)
        assert proc.poll() is None, "the run ended before the server came back"
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert served(own_server) > 0  # the restarted server (its counts start at 0) answered the rest
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    summary = json.loads(stats.read_text())
    assert len(records) + summary["dropped"] == n and summary["frames"] == len(records)
    assert len({json.dumps(r.get("frame", r.get("index"))) for r in records}) == len(records)


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_credentials_come_from_the_environment(
    locked_server: Server, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from overfeat_edge.errors import ModelError

    monkeypatch.delenv("OVERFEAT_EDGE_TRITON_KEY", raising=False)
    with pytest.raises(ModelError, match=f"restricted, expecting header '.*{KEY}'"):
        load_runner("triton", "overfeat-mini-shapes", triton_url=url(locked_server, kind))
    monkeypatch.setenv("OVERFEAT_EDGE_TRITON_KEY", f"{KEY}={SECRET}")
    r = load_runner("triton", "overfeat-mini-shapes", triton_url=url(locked_server, kind), triton_shm=True)
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    want = load_runner("onnxruntime", "overfeat-mini-shapes", threads=1).run(x)
    for _ in range(2):
        np.testing.assert_allclose(r.run(x)["boxes"], want["boxes"], atol=1e-5)
    r.close()


def test_server_away_from_a_live_source_drops_and_counts(own_server: Server, tmp_path: Path) -> None:
    from tests.stream.test_loop import start_camera

    camera, source = start_camera("--fps", "25", "--frames", "250", "--size", "160x120")
    jsonl, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    cmd = [sys.executable, str(ROOT / "cli.py"), "run", source, "--model", "overfeat-mini-shapes", "--reconnects", "0"]
    cmd += ["--backend", "triton", "--triton-url", own_server.grpc_url, "--jsonl", str(jsonl)]
    cmd += ["--stats-json", str(stats), "--no-live", "--scales", "120"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and served(own_server) < 10:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        own_server.kill()
        time.sleep(3)
        own_server.start(timeout=120)
        assert proc.poll() is None, "the run ended before the server came back"
        _, err = proc.communicate(timeout=300)
    finally:
        for p in (proc, camera):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    summary = json.loads(stats.read_text())
    assert summary["frames"] == len(records) and summary["dropped"] > 0  # frames came while the server was away
    assert summary["captured"] == len(records) + summary["dropped"] + summary["skipped"], summary
    assert served(own_server) > 0
