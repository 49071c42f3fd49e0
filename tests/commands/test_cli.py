"""The CLI end to end: outputs written, and bad input as one line + non-zero exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.commands import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=300)


def test_cli_py_and_models_listing() -> None:
    r = run_cli("models", "overfeat-fast", "overfeat-fast@0.25")
    assert r.returncode == 0
    assert "overfeat-fast@0.25" in r.stdout and "231" in r.stdout and "20.627" in r.stdout  # params in millions


def test_detect_writes_images_and_json(tmp_path: Path, seed_onnx: Path, images: list[Path]) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "detect",
            str(images[0].parent),
            "--model",
            str(seed_onnx),
            "--out",
            str(out),
            "--scales",
            "20",
            "--scales",
            "28",
            "--threshold",
            "0.3",
        ]
    )
    assert code == 0
    payload = json.loads((out / "detections.json").read_text())
    assert [Path(r["image"]).name for r in payload["images"]] == ["img0.png", "img1.png"]
    assert payload["scales"] == ["20", "28"] and payload["fine_stride"] is True
    first = payload["images"][0]
    assert (first["height"], first["width"]) == (48, 64)
    for d in first["detections"]:
        assert d["label"] in ("a", "b", "c") and len(d["box"]) == 4
    img = cv2.imread(str(out / "img0.png"))  # a PNG in, a PNG annotated copy out
    assert img is not None and img.shape == (48, 64, 3)


def test_detect_greedy_and_nms_both_run(tmp_path: Path, seed_onnx: Path, images: list[Path]) -> None:
    for merge in ("greedy", "nms"):
        assert (
            main(
                [
                    "detect",
                    str(images[0]),
                    "--model",
                    str(seed_onnx),
                    "--out",
                    str(tmp_path / merge),
                    "--merge",
                    merge,
                    "--threshold",
                    "0.0",
                    "--scales",
                    "20",
                ]
            )
            == 0
        )
        assert json.loads((tmp_path / merge / "detections.json").read_text())["merge"] == merge


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, m, i: ["detect", str(t / "nope.png"), "--model", str(m)], "image not found"),
        (lambda t, m, i: ["detect", str(i[0]), "--model", str(t / "nope.onnx")], "ONNX file not found"),
        (lambda t, m, i: ["detect", str(i[0]), "--model", "nope"], "must be an .onnx file or a shipped model"),
        (
            lambda t, m, i: ["detect", str(i[0]), "--model", str(m), "--scales", "10"],
            "smaller than the model's 14x14 window",
        ),
        (lambda t, m, i: ["detect", str(i[0]), "--model", str(m), "--scales", "big"], "bad scale"),
        (lambda t, m, i: ["detect", str(i[0]), "--model", str(m), "--merge", "soft"], "--merge must be one of"),
        (lambda t, m, i: ["detect", str(i[0]), "--model", str(m), "--backend", "tpu"], "unknown backend"),
    ],
)
def test_bad_input_one_line(
    tmp_path: Path, seed_onnx: Path, images: list[Path], make_args: object, message: str
) -> None:
    r = run_cli(*make_args(tmp_path, seed_onnx, images), "--out", str(tmp_path / "o"))  # type: ignore[operator]
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--workers", "0"], "--workers must be >= 1"), (["--workers", "2", "--backend", "torch"], "needs a CPU backend")],
)
def test_run_workers_checked_before_anything_runs(images: list[Path], args: list[str], message: str) -> None:
    r = run_cli("run", str(images[0]), "--no-live", *args)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and message in lines[0], r.stderr


def test_run_workers_default_files_two_live_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from overfeat_edge.stream.plan import inference_workers

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert inference_workers(None, "onnxruntime", live=False) == 2  # throughput: frames shared by two sessions
    assert inference_workers(None, "onnxruntime", live=True) == 1  # latency: one session, every core on a frame
    assert inference_workers(None, "tensorrt", live=False) == 1
    assert inference_workers(3, "onnxruntime", live=True) == 3
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert inference_workers(None, "onnxruntime", live=False) == 1


def test_corrupt_image_is_skipped_counted_and_fails(tmp_path: Path, seed_onnx: Path, images: list[Path]) -> None:
    bad = images[0].parent / "zz_bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    out = tmp_path / "o"
    r = run_cli("detect", str(images[0].parent), "--model", str(seed_onnx), "--out", str(out), "--scales", "20")
    assert r.returncode == 2 and "1 of 3 images could not be read" in r.stderr
    # the good images' results were still written
    assert len(json.loads((out / "detections.json").read_text())["images"]) == 2


def test_onnx_without_metadata_one_line(tmp_path: Path, images: list[Path]) -> None:
    onnx = pytest.importorskip("onnx", reason="builds its ONNX with the onnx package")
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["input"], ["scores"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), str(path))
    r = run_cli("detect", str(images[0]), "--model", str(path))
    assert r.returncode == 2 and "no overfeat-edge spec" in r.stderr and "Traceback" not in r.stderr


def test_grey_and_16bit_images(tmp_path: Path, seed_onnx: Path) -> None:
    grey = tmp_path / "g.png"
    cv2.imwrite(str(grey), np.full((40, 40), 128, np.uint8))
    deep = tmp_path / "d.png"
    cv2.imwrite(str(deep), np.full((40, 40, 3), 40000, np.uint16))
    assert (
        main(
            ["detect", str(grey), str(deep), "--model", str(seed_onnx), "--out", str(tmp_path / "o"), "--scales", "20"]
        )
        == 0
    )


def test_tensorrt_commands_without_tensorrt(capsys, images: list[Path]) -> None:
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    assert main(["doctor"]) == 0  # says what is missing and how to get it; not an error
    out = capsys.readouterr().out
    assert "TensorRT is not installed" in out and "onnxruntime backend (CPU) works" in out
    # the CPU precisions against ONNX Runtime FP32: a line per configuration, a ratio and a match count each
    measured = out.split("CPU precisions on overfeat-mini-shapes", 1)[1].split("TensorRT is not installed")[0]
    lines = [ln for ln in measured.splitlines()[1:] if ln.startswith("  ") and not ln.startswith("  not run: ")]
    assert lines and "onnxruntime fp32:" not in measured  # the reference is not compared with itself
    assert all(re.fullmatch(r"  \S+ \w+: \d+\.\d\dx onnxruntime fp32 here; \d+ of \d+ matched.*", ln) for ln in lines)
    assert main(["build", "--model", "overfeat-mini-shapes"]) == 2
    assert "the 'tensorrt' package is needed" in capsys.readouterr().err
    assert main(["detect", str(images[0]), "--backend", "tensorrt", "--model", "m.onnx"]) == 2
    assert "takes an engine file (.engine)" in capsys.readouterr().err


def test_bench_reports_efficiency(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "--frames", "4", "--threads", "1", "-s", "131", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["frames"] == 4 and d["model_fps"] > 0 and 0 < d["pipeline_efficiency"] < 2
    assert d["gflop_per_frame"] > 0 and d["matmul_peak_gflops_per_s"] > 0
    other = d["other_stages_cpu_ms_per_frame"]
    assert set(other) == {"capture", "preprocess", "postprocess", "sink"} and min(other.values()) >= 0
    assert other["preprocess"] > 0 and d["network_cpu_ms_per_frame"] > 0
    net = d["network_cpu_ms_per_frame"]
    assert d["pipeline_ceiling"] == pytest.approx(net / (net + sum(other.values())))
