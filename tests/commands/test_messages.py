"""What a person reads: one line per error with no OpenCV/FFmpeg lines around it, install hints that
work, a model default, plurals, progress in a log, PNG in -> PNG out, bench's table width."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from rich.console import Console

from overfeat_edge.commands.bench import TABLE_WIDTH, figures_table
from overfeat_edge.commands.progress import time_left
from overfeat_edge.errors import EXTRAS, MissingDependency
from overfeat_edge.words import plural

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "overfeat_edge" / "assets" / "mtcnn-face" / "sample.jpg"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}  # the package's own levels
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_a_stream_nobody_serves_is_one_line(tmp_path: Path):
    # port 1 on this machine: nothing listens, so FFmpeg's "[tcp @ 0x...] Connection refused" and
    # OpenCV's "[ WARN:0@...] global cap.cpp" would come, unless their levels are set
    r = cli("run", "rtsp://127.0.0.1:1/x", "--reconnects", "0", "--jsonl", str(tmp_path / "d.jsonl"))
    assert "cannot open stream rtsp://127.0.0.1:1/x" in one_error_line(r)


def test_a_file_that_is_no_video_is_one_line(tmp_path: Path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    r = cli("run", str(bad), "--jsonl", str(tmp_path / "d.jsonl"))
    assert f"cannot open file {bad}" in one_error_line(r)


def test_a_checkpoint_given_to_detect_says_what_to_do(tmp_path: Path):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"\0")
    line = one_error_line(cli("detect", str(SAMPLE), "--model", str(ckpt), "--out", str(tmp_path / "o")))
    assert "--backend torch" in line and f"export --model {ckpt} --out {tmp_path / 'm.onnx'}" in line
    assert "unknown model" not in line


def test_a_model_given_where_images_go_says_so(tmp_path: Path):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"\0")
    line = one_error_line(cli("detect", str(ckpt), "--out", str(tmp_path / "o")))
    assert line == f"error: {ckpt} is a model, not an image: give it as --model {ckpt} and images after"


@pytest.mark.parametrize("model", ["mtcnn-face", str(ROOT / "overfeat_edge/assets/mtcnn-face/model.onnx")])
def test_an_onnx_model_given_to_the_torch_backend_says_what_to_do(model: str, tmp_path: Path):
    line = one_error_line(cli("detect", str(SAMPLE), "--model", model, "--backend", "torch", "--out", str(tmp_path)))
    assert "--backend auto or onnxruntime" in line and "unknown model" not in line


def test_detect_defaults_to_the_demo_model_and_keeps_png_as_png(tmp_path: Path):
    png = tmp_path / "shot.png"
    jpg = tmp_path / "photo.jpg"
    image = cv2.resize(cv2.imread(str(SAMPLE)), (256, 192))
    assert cv2.imwrite(str(png), image) and cv2.imwrite(str(jpg), image)
    out = tmp_path / "out"
    r = cli("detect", str(png), str(jpg), "--out", str(out), "--scales", "96")
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "detections.json").read_text())
    assert doc["model"] == "overfeat-mini-shapes"
    assert [Path(i["annotated"]).name for i in doc["images"]] == ["shot.png", "photo.jpg"]
    assert (out / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "photo.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    for item in doc["images"]:  # the count said in words, singular for one
        n = len(item["detections"])
        assert f"{item['image']}: {n} detection{'' if n == 1 else 's'} in " in r.stdout
    assert r.stdout.endswith(f"wrote {out / 'detections.json'} and 2 annotated images\n")
    assert "class(es)" not in r.stdout and "knows 3 classes: square" in r.stdout
    assert r.stdout.splitlines()[0].strip()  # no blank line first


def test_progress_in_a_log_is_a_line_each_tenth_and_no_blank_line(tmp_path: Path):
    r = cli("data", "synth", "--out", str(tmp_path / "d"), "--images", "20")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    steps = [ln for ln in lines if ln.startswith("generating 20 scenes: ")]
    assert [re.match(r"generating 20 scenes: (\d+)/20", ln).group(1) for ln in steps] == [  # type: ignore[union-attr]
        str(k) for k in range(2, 21, 2)
    ]
    assert all(re.search(r"\(\d+%\), \d+ s left$", ln) for ln in steps[:-1]) and steps[-1].endswith("(100%)")
    assert lines[-1].startswith("wrote ") and "20 images" in lines[-1]
    assert "" not in lines  # no blank line anywhere, first or last


@pytest.mark.parametrize(
    "count, noun, words",
    [
        (1, "detection", "1 detection"),
        (0, "detection", "0 detections"),
        (2, "epoch", "2 epochs"),
        (1, "box", "1 box"),
        (3, "box", "3 boxes"),
        (2, "class", "2 classes"),
    ],
)
def test_plural(count: int, noun: str, words: str):
    assert plural(count, noun) == words


def test_install_hints_name_packages_that_exist_and_the_checkout_form():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def name(req: str) -> str:
        return re.split(r"[<>=!~; \[]", req, maxsplit=1)[0]

    for extra, packages in EXTRAS.items():
        assert sorted(packages) == sorted({name(r) for r in extras[extra]}), extra
    msg = str(MissingDependency("tensorrt", "TensorRT engines", "tensorrt"))
    assert "pip install tensorrt pycuda polygraphy" in msg and "pip install -e '.[tensorrt]'" in msg
    assert "overfeat-edge[" not in msg


def test_bench_table_fits_100_columns():
    figures = {
        "model": "overfeat-mini-shapes",
        "frames": 60,
        "threads": 16,
        "workers": 2,
        "model_fps_one_session": 12.34,
        "model_fps_workers": 15.6,
        "run_fps": 14.2,
        "pipeline_efficiency": 0.91,
        "network_cpu_ms_per_frame": 812.0,
        "other_stages_cpu_ms_per_frame": {"capture": 1.2, "preprocess": 3.4, "postprocess": 5.6, "sink": 7.8},
        "pipeline_ceiling": 0.98,
        "gflop_per_frame": 4.56,
        "model_gflops_per_s": 71.0,
        "matmul_peak_gflops_per_s": 1234.0,
        "fraction_of_peak": 0.058,
        "peak_rss_mib": 456.0,
    }
    wide = Console(width=250, record=True, file=open(os.devnull, "w"))
    wide.print(figures_table(figures, 6, 8), width=TABLE_WIDTH)
    text = wide.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert (
        "network only: 2 sessions x 8 threads" in text
        and "15.6 frames/s" in text
        and "812 | 1.2, 3.4, 5.6, 7.8" in text
    )


@pytest.mark.parametrize(
    "elapsed, went, remaining, words",
    [
        (10.0, 5, 5, "10 s left"),
        (30.0, 1, 4, "2 min 00 s left"),
        (60.0, 10, 700, "1 h 10 min left"),
        (5.0, 0, 9, ""),
        (5.0, 3, 0, ""),
    ],
)
def test_time_left(elapsed: float, went: int, remaining: int, words: str):
    assert time_left(elapsed, went, remaining) == words
