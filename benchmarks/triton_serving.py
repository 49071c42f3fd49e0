"""In-process inference against Triton Inference Server on 127.0.0.1 (issue R3 5/6).

(Not named ``triton.py``: the benchmarks folder goes on ``sys.path``, where that name would hide
the ``triton`` package torch imports.)

    python3 benchmarks/triton_serving.py [--url grpc://127.0.0.1:8001] [--frames 60] [--size 384x512]
                                 [--processes 1,2,4] [--streams 1,4] [--write]

1. Per frame, the shipped shapes model's whole pyramid on generated frames: in-process ONNX Runtime
   FP32, then through Triton over gRPC, gRPC with system shared memory, and HTTP: ms/frame (p50,
   mean), frames/s, and the ratio to in-process (the target: gRPC + shared memory within 1.3x).
2. N client processes x M streams each (a stream: a thread with its own runner), all against one
   server: frames/s in all, and the batch sizes the server's dynamic batcher formed (its statistics).

Without ``--url`` it starts its own ``tritonserver`` (``python -m tests.triton.server --install``
first) on a repository that ``export --triton --triton-backend python`` writes: the server runs the
ONNX on ONNX Runtime in its Python backend, so on a CPU-only machine the server shares the client's
cores and cannot beat in-process: what this measures is the overhead. ``--write`` puts the tables in
the "triton" section of BENCHMARKS.md (run it alone on the machine; the figures name it).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.pipeline.load import load_detector  # noqa: E402
from overfeat_edge.train.synth import SynthConfig, scene  # noqa: E402

MODEL = "overfeat-mini-shapes"
WAYS = {  # name -> load_detector options (besides the URL)
    "in-process onnxruntime": {"backend": "onnxruntime"},
    "triton gRPC": {"backend": "triton"},
    "triton gRPC + shm": {"backend": "triton", "triton_shm": True},
    "triton HTTP": {"backend": "triton", "http": True},
}


def frames(n: int, hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    cfg = SynthConfig(height=hw[0], width=hw[1], min_size=max(16, hw[0] // 8), max_size=max(24, hw[0] // 2))
    return [scene(rng, cfg)[0] for _ in range(n)]


def detector(way: str, urls: dict[str, str], scales: list[str]) -> Any:
    from overfeat_edge.pipeline.detector import DetectorConfig

    opts = dict(WAYS[way])
    config = DetectorConfig(scales=scales)
    if opts.pop("backend") == "onnxruntime":
        return load_detector(MODEL, backend="onnxruntime", config=config)
    url = urls["http"] if opts.pop("http", False) else urls["grpc"]
    return load_detector(MODEL, backend="triton", config=config, triton_url=url, **opts)


def per_frame(
    urls: dict[str, str], images: list[np.ndarray], scales: list[str], rounds: int, ways: list[str]
) -> list[dict[str, Any]]:
    """Every way over the same frames, interleaved round by round (drift hits all alike)."""
    dets = {w: detector(w, urls, scales) for w in ways}
    for d in dets.values():
        d.detect(images[0])  # warm-up: sessions, connections, shared-memory regions
    ms: dict[str, list[float]] = {w: [] for w in ways}
    for _ in range(rounds):
        for w, d in dets.items():
            for f in images:
                t0 = time.perf_counter()
                d.detect(f)
                ms[w].append((time.perf_counter() - t0) * 1000)
    base = statistics.median(ms["in-process onnxruntime"])
    rows = []
    for w, m in ms.items():
        p50 = statistics.median(m)
        rows.append({"way": w, "p50_ms": p50, "mean_ms": statistics.fmean(m), "fps": 1000 / p50, "ratio": p50 / base})
    for d in dets.values():
        d.runner.close()
    return rows


def _process(args: tuple[str, int, int, tuple[int, int], list[str]]) -> tuple[int, float]:
    """One client process: ``streams`` threads, each its own runner, ``count`` frames each."""
    url, streams, count, hw, scales = args
    images = frames(count, hw, seed=streams)
    dets = [detector("triton gRPC", {"grpc": url}, scales) for _ in range(streams)]
    barrier = threading.Barrier(streams + 1)

    def stream(d: Any) -> None:
        barrier.wait()
        for f in images:
            d.detect(f)

    threads = [threading.Thread(target=stream, args=(d,)) for d in dets]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return streams * count, time.perf_counter() - t0


def batch_counts(grpc_url: str) -> dict[int, int]:
    """Executions per batch size so far, over every model of the server (its statistics)."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url.split("://", 1)[1])
    out: dict[int, int] = {}
    for s in client.get_inference_statistics().model_stats:
        for b in s.batch_stats:
            out[int(b.batch_size)] = out.get(int(b.batch_size), 0) + int(b.compute_infer.count)
    return out


def fan_in(
    url: str, processes: int, streams: int, count: int, hw: tuple[int, int], scales: list[str]
) -> dict[str, Any]:
    before = batch_counts(url)
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(processes) as pool:
        done = pool.map(_process, [(url, streams, count, hw, scales)] * processes)
    wall = time.perf_counter() - t0
    after = batch_counts(url)
    sizes = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(after) if after.get(k, 0) > before.get(k, 0)}
    total = sum(n for n, _ in done)
    mean = sum(k * v for k, v in sizes.items()) / max(1, sum(sizes.values()))
    slowest = max(s for _, s in done)
    fps = total / slowest
    row = {"processes": processes, "streams": streams, "frames": total, "fps": fps, "wall_s": wall}
    return {**row, "batches": sizes, "mean_batch": mean}


def server_stats(grpc_url: str) -> dict[str, tuple[int, int]]:
    """The server's cumulative (count, ns) per phase of a request, over every model."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url.split("://", 1)[1])
    out: dict[str, tuple[int, int]] = {}
    for s in client.get_inference_statistics().model_stats:
        for phase in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            d = getattr(s.inference_stats, phase)
            c, ns = out.get(phase, (0, 0))
            out[phase] = (c + int(d.count), ns + int(d.ns))
    return out


def breakdown(urls: dict[str, str], images: list[np.ndarray], scales: list[str]) -> list[tuple[str, float]]:
    """Where a frame's time goes through gRPC + shared memory, in ms per frame: the in-process network, the
    server's queue and compute (its statistics), and the rest (client, gRPC, the Python backend's stub)."""
    local, remote = detector("in-process onnxruntime", urls, scales), detector("triton gRPC + shm", urls, scales)
    _, inputs = local.preprocess(images[0])
    for d in (local, remote):
        d.runner.run_levels(inputs)
    t0 = time.perf_counter()
    for f in images:
        local.runner.run_levels(local.preprocess(f)[1])
    here = (time.perf_counter() - t0) * 1000 / len(images)
    before = server_stats(urls["grpc"])
    t0 = time.perf_counter()
    for f in images:
        remote.runner.run_levels(remote.preprocess(f)[1])
    there = (time.perf_counter() - t0) * 1000 / len(images)
    after = server_stats(urls["grpc"])
    per = {k: (after[k][1] - before[k][1]) / 1e6 / len(images) for k in after}
    levels = (after["success"][0] - before["success"][0]) / len(images)
    remote.runner.close()
    server = per["compute_input"] + per["compute_infer"] + per["compute_output"]
    return [
        ("pyramid levels (requests) per frame", levels),
        ("in-process network, ms/frame", here),
        ("through Triton, ms/frame (client's wall time)", there),
        ("server compute (input + infer + output), ms/frame", server),
        ("of which the network in the Python backend (compute_infer)", per["compute_infer"]),
        ("server queue, summed over the frame's requests (they overlap)", per["queue"]),
        ("the rest: client, gRPC, the backend's stub IPC (wall - compute)", there - server),
    ]


def report(rows: list[dict[str, Any]], fans: list[dict[str, Any]], hw: tuple[int, int], scales: list[str]) -> str:
    lines = [
        f"Frames {hw[0]}x{hw[1]}, scales {', '.join(scales) or 'the model default'}; the server: tritonserver 2.51 "
        "(nvidia-pytriton 0.7.0), Python backend running ONNX Runtime, on the same machine.",
        "",
        "| way | ms/frame p50 | mean | frames/s | x in-process |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['way']} | {r['p50_ms']:.1f} | {r['mean_ms']:.1f} | {r['fps']:.1f} | {r['ratio']:.2f} |" for r in rows
    ]
    lines += [
        "",
        "| processes x streams | frames | frames/s | server batch sizes (executions) | mean batch |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    for f in fans:
        sizes = ", ".join(f"{k}: {v}" for k, v in f["batches"].items())
        lines.append(
            f"| {f['processes']} x {f['streams']} | {f['frames']} | {f['fps']:.1f} | {sizes} | {f['mean_batch']:.2f} |"
        )
    return "\n".join(lines)


def serve(work: Path) -> Any:
    from overfeat_edge.triton.repository import write_repository
    from tests.triton.server import Server, missing

    why = missing()
    if why:
        raise SystemExit(why)
    write_repository(MODEL, work / "repo", backend="python", max_batch=16)
    return Server(work / "repo", work / "tritonserver.log").start(timeout=300)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running server's gRPC URL (its HTTP port: --http-url); default: start one")
    p.add_argument("--http-url", help="the same server over HTTP")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--size", default="384x512", help="frame HEIGHTxWIDTH")
    p.add_argument("--scales", default="", help="comma-separated pyramid (default: the model's)")
    p.add_argument("--processes", default="1,2,4")
    p.add_argument("--streams", default="1,4")
    p.add_argument("--write", action="store_true", help="write the 'triton' section of BENCHMARKS.md")
    a = p.parse_args()
    hw = tuple(int(v) for v in a.size.split("x"))
    assert len(hw) == 2
    scales = [s for s in a.scales.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        server = None if a.url else serve(Path(tmp))
        try:
            urls = {"grpc": a.url or server.grpc_url, "http": a.http_url or (server.http_url if server else "")}
            ways = [w for w in WAYS if urls["http"] or "HTTP" not in w]
            rows = per_frame(urls, frames(a.frames, hw), scales, a.rounds, ways)  # type: ignore[arg-type]
            parts = breakdown(urls, frames(a.frames, hw), scales)  # type: ignore[arg-type]
            fans = [
                fan_in(urls["grpc"], int(n), int(m), a.frames, hw, scales)  # type: ignore[arg-type]
                for n in a.processes.split(",")
                for m in a.streams.split(",")
            ]
        finally:
            if server is not None:
                server.stop()
    text = report(rows, fans, hw, scales)  # type: ignore[arg-type]
    text += "\n\n| where a frame's time goes (gRPC + shm) | value |\n| --- | ---: |\n"
    text += "\n".join(f"| {k} | {v:.1f} |" for k, v in parts)
    print(text)
    if a.write:
        command = "python3 benchmarks/triton_serving.py " + " ".join(sys.argv[1:]).replace("--write", "").strip()
        write_section("triton", "\n".join([*header("Triton Inference Server", command), "", text]))


if __name__ == "__main__":
    main()
