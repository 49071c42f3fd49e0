"""benchmarks/triton_serving.py runs (at a tiny size, against the tests' server): it is proven to work, not timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.triton.server import Server

pytest.importorskip("tritonclient.grpc", reason="pip install 'overfeat-edge[triton]' (tritonclient[grpc,http])")
pytestmark = pytest.mark.triton
ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_at_a_tiny_size(server: Server) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "triton_serving.py"), "--url", server.grpc_url]
    cmd += ["--http-url", server.http_url, "--frames", "2", "--rounds", "1", "--size", "96x128"]
    cmd += ["--scales", "96,72", "--processes", "1,2", "--streams", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    ways = ["in-process onnxruntime", "triton gRPC", "triton gRPC + shm", "triton HTTP"]
    assert rows[:8] == ["way", *ways, "processes x streams", "1 x 2", "2 x 2"]
    parts = dict(line.split("|")[1:3] for line in r.stdout.splitlines()[-7:])
    assert float(parts[" pyramid levels (requests) per frame "]) == 2.0  # --scales 96,72: one request per level
    fan = next(line.split("|") for line in r.stdout.splitlines() if line.startswith("| 2 x 2"))
    assert int(fan[2]) == 2 * 2 * 2  # processes x streams x frames, every one served
