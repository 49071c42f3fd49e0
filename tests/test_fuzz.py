"""Hostile inputs at every command, counted: each must end in a non-zero exit, one line on stderr, no
traceback, nothing overwritten and nothing half-written under a final name.

One or more cases per class of the hardening issue (exit codes and interrupts, never overwriting
what the user did not name, output paths, untrusted specs/manifests/checkpoints, numbers,
datasets). The cases run in-process through ``commands.main`` (a traceback is an exception out of
it); the interrupt cases run the CLI in a subprocess and send it SIGINT or SIGTERM.
``python -m pytest tests/test_fuzz.py -q -s`` prints the count the README quotes.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

import cv2
import numpy as np
import pytest

from overfeat_edge.commands import main

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "photos" / "camera.jpg"
SHAPES = ROOT / "overfeat_edge" / "assets" / "overfeat-mini-shapes"


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def spec_onnx(tmp: Path, mutate: Callable[[dict], object]) -> Path:
    """The shipped shapes model with its spec metadata replaced by ``mutate(spec dict)`` (JSON)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(SHAPES / "model.onnx"))
    entry = next(e for e in model.metadata_props if e.key == "overfeat_edge.spec")
    spec = json.loads(entry.value)
    entry.value = json.dumps(mutate(spec))
    path = tmp / "hostile.onnx"
    onnx.save(model, str(path))
    return path


def edit(path_of: str, value: object) -> Callable[[dict], object]:
    def mutate(d: dict) -> object:
        if path_of == "":
            return value
        keys = path_of.split(".")
        node = d
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
        return d

    return mutate


def coco(tmp: Path, *, bbox: list[float] | None = None, category: dict | None = None) -> Path:
    img = tmp / "ds" / "a.jpg"
    img.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(img), np.full((64, 64, 3), 90, np.uint8))
    d = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox or [4, 4, 20, 20], "iscrowd": 0}],
        "categories": [category or {"id": 1, "name": "square"}],
    }
    (tmp / "ds" / "annotations.json").write_text(json.dumps(d).replace("NaN", "NaN"))
    return tmp / "ds"


def yolo(tmp: Path, line: str) -> Path:
    root = tmp / "yolo"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "a.jpg"), np.full((64, 64, 3), 90, np.uint8))
    (root / "labels" / "a.txt").write_text(line + "\n")
    (root / "classes.txt").write_text("a\nb\n")
    return root


def manifest(tmp: Path, text: str) -> Path:
    engine = tmp / "e.engine"
    engine.write_bytes(b"engine")
    engine.with_suffix(".json").write_text(text)
    return engine


def checkpoint(tmp: Path, payload: dict) -> Path:
    torch = pytest.importorskip("torch")
    path = tmp / "c.pt"
    torch.save(payload, path)
    return path


def photo_dir(tmp: Path) -> Path:
    d = tmp / "photos"
    d.mkdir(exist_ok=True)
    (d / "x.jpg").write_bytes(PHOTO.read_bytes())
    return d


# (id, class, make args from tmp) -> every case must exit non-zero with one line
Case = Tuple[str, str, Callable[[Path], List[str]]]  # typing's forms: evaluated at import, on 3.8 too
M = ["--model", "overfeat-mini-shapes"]
CASES: list[Case] = [
    # exit codes: nothing readable is an error everywhere
    ("run-unreadable-image", "exit", lambda t: ["run", str(_junk(t)), "--jsonl", str(t / "o.jsonl"), "--no-live"]),
    ("detect-unreadable-image", "exit", lambda t: ["detect", str(_junk(t)), *M, "--out", str(t / "o")]),
    # never overwrite what the user did not name
    (
        "run-jsonl-is-stats",
        "overwrite",
        lambda t: ["run", str(PHOTO), "--jsonl", str(t / "s.json"), "--stats-json", str(t / "s.json")],
    ),
    (
        "run-jsonl-is-output",
        "overwrite",
        lambda t: ["run", str(PHOTO), "--jsonl", str(t / "a.mp4"), "--output", str(t / "a.mp4")],
    ),
    ("run-output-is-input", "overwrite", lambda t: ["run", str(_video(t)), "--output", str(_video(t))]),
    # output paths: a file where a folder goes, the reverse, under a file
    ("detect-out-is-file", "paths", lambda t: ["detect", str(PHOTO), *M, "--out", str(_file(t))]),
    ("export-out-under-file", "paths", lambda t: ["export", *M, "--out", str(_file(t) / "m.onnx")]),
    ("export-out-is-folder", "paths", lambda t: ["export", *M, "--out", str(_folder(t, "m.onnx"))]),
    (
        "import-out-under-file",
        "paths",
        lambda t: ["import-weights", "--format", "facenet-pytorch", *_mtcnn_pt(), "--out", str(_file(t) / "m")],
    ),
    (
        "eval-json-is-folder",
        "paths",
        lambda t: ["eval", "--data", str(coco(t)), *M, "--json", str(_folder(t, "e.json"))],
    ),
    ("train-out-under-file", "paths", lambda t: ["train", "--data", str(coco(t)), "--out", str(_file(t) / "m.pt")]),
    ("synth-out-is-file", "paths", lambda t: ["data", "synth", "--out", str(_file(t)), "--images", "2"]),
    (
        "calibrate-out-is-file",
        "paths",
        lambda t: [
            "calibrate",
            *M,
            "--images",
            str(photo_dir(t)),
            "--holdout",
            str(photo_dir(t)),
            "--out",
            str(_file(t)),
        ],
    ),
    ("bench-json-is-folder", "paths", lambda t: ["bench", "--frames", "2", "--json", str(_folder(t, "b.json"))]),
    ("run-output-under-file", "paths", lambda t: ["run", str(PHOTO), "--output", str(_file(t) / "o.mp4")]),
    ("run-save-frames-is-file", "paths", lambda t: ["run", str(PHOTO), "--save-frames", str(_file(t))]),
    ("demo-out-is-file", "paths", lambda t: ["demo", "--out", str(_file(t)), "--frames", "2"]),
    ("build-engines-is-file", "paths", lambda t: ["build", *M, "--engines", str(_file(t))]),
    ("read-only-place", "paths", lambda t: ["detect", str(PHOTO), *M, "--out", "/proc/overfeat-edge-out"]),
    # the model spec, manifests and checkpoints are untrusted
    ("spec-is-list", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("", [1, 2])))]),
    ("spec-is-null", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("", None)))]),
    ("spec-is-string", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("", "x")))]),
    (
        "spec-no-features",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.features", [])))],
    ),
    ("spec-window-0", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.window", 0)))]),
    (
        "spec-window-negative",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.window", -59)))],
    ),
    ("spec-std-short", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("std", [1, 2])))]),
    ("spec-mean-text", "spec", lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("mean", "abc")))]),
    (
        "spec-mean-nan",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("mean", [float("nan")] * 3)))],
    ),
    (
        "spec-pool-stride",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.features.1.2", -2)))],
    ),
    (
        "spec-head-kernel-0",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.head_kernel", 0)))],
    ),
    (
        "spec-unknown-op",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("arch.features.0.0", "dense")))],
    ),
    (
        "spec-fine-stride-text",
        "spec",
        lambda t: ["detect", str(PHOTO), "--model", str(spec_onnx(t, edit("fine_stride", "false")))],
    ),
    (
        "manifest-list",
        "spec",
        lambda t: ["run", str(PHOTO), "--backend", "tensorrt", "--model", str(manifest(t, "[1,2]"))],
    ),
    (
        "checkpoint-spec-list",
        "spec",
        lambda t: [
            "export",
            "--model",
            str(checkpoint(t, {"format": "overfeat-edge/1", "spec": "[1]", "state_dict": {}})),
            "--out",
            str(t / "m.onnx"),
        ],
    ),
    (
        "checkpoint-no-state",
        "spec",
        lambda t: [
            "export",
            "--model",
            str(checkpoint(t, {"format": "overfeat-edge/1", "spec": _shapes_spec()})),
            "--out",
            str(t / "m.onnx"),
        ],
    ),
    # numbers
    (
        "merge-threshold-nan",
        "numbers",
        lambda t: ["detect", str(PHOTO), *M, "--merge-threshold", "nan", "--out", str(t / "o")],
    ),
    ("nms-iou-2", "numbers", lambda t: ["detect", str(PHOTO), *M, "--nms-iou", "2", "--out", str(t / "o")]),
    ("min-score-negative", "numbers", lambda t: ["detect", str(PHOTO), *M, "--min-score", "-1", "--out", str(t / "o")]),
    ("top-k-0", "numbers", lambda t: ["detect", str(PHOTO), *M, "--top-k-classes", "0", "--out", str(t / "o")]),
    ("threads-negative", "numbers", lambda t: ["detect", str(PHOTO), *M, "--threads", "-1", "--out", str(t / "o")]),
    ("threads-huge", "numbers", lambda t: ["detect", str(PHOTO), *M, "--threads", "100000", "--out", str(t / "o")]),
    ("scales-huge", "numbers", lambda t: ["detect", str(PHOTO), *M, "--scales", "100000", "--out", str(t / "o")]),
    ("eval-limit-0", "numbers", lambda t: ["eval", "--data", str(coco(t)), *M, "--limit", "0"]),
    (
        "reconnects-negative",
        "numbers",
        lambda t: ["run", str(PHOTO), "--reconnects", "-3", "--jsonl", str(t / "o.jsonl")],
    ),
    ("duration-nan", "numbers", lambda t: ["run", str(PHOTO), "--duration", "nan", "--jsonl", str(t / "o.jsonl")]),
    ("train-lr-nan", "numbers", lambda t: ["train", "--data", str(coco(t)), "--out", str(t / "m.pt"), "--lr", "nan"]),
    (
        "train-box-weight-nan",
        "numbers",
        lambda t: ["train", "--data", str(coco(t)), "--out", str(t / "m.pt"), "--box-weight", "nan"],
    ),
    (
        "train-threads-negative",
        "numbers",
        lambda t: ["train", "--data", str(coco(t)), "--out", str(t / "m.pt"), "--threads", "-1"],
    ),
    (
        "train-scales-0",
        "numbers",
        lambda t: ["train", "--data", str(coco(t)), "--out", str(t / "m.pt"), "--scales", "0"],
    ),
    (
        "train-mine-negative",
        "numbers",
        lambda t: ["train", "--data", str(coco(t)), "--out", str(t / "m.pt"), "--mine-images", "-1"],
    ),
    ("synth-seed-negative", "numbers", lambda t: ["data", "synth", "--out", str(t / "s"), "--seed", "-1"]),
    ("bench-frames-0", "numbers", lambda t: ["bench", "--frames", "0"]),
    ("bench-frames-negative", "numbers", lambda t: ["bench", "--frames", "-5"]),
    (
        "import-classes-binary",
        "numbers",
        lambda t: [
            "import-weights",
            str(_file(t)),
            "--model",
            "overfeat-fast",
            "--out",
            str(t / "f.pt"),
            "--classes",
            str(_binary(t)),
        ],
    ),
    (
        "trt-version-newline",
        "numbers",
        lambda t: [
            "calibrate",
            *M,
            "--images",
            str(photo_dir(t)),
            "--holdout",
            str(photo_dir(t)),
            "--trt-version",
            "8601\nX",
            "--out",
            str(t / "c"),
        ],
    ),
    ("huge-image-header", "numbers", lambda t: ["detect", str(_huge(t)), *M, "--out", str(t / "o")]),
    # datasets
    ("coco-nan-box", "datasets", lambda t: ["eval", "--data", str(coco(t, bbox=[float("nan"), 4, 20, 20])), *M]),
    ("coco-negative-size", "datasets", lambda t: ["eval", "--data", str(coco(t, bbox=[4, 4, -20, 20])), *M]),
    ("coco-category-without-name", "datasets", lambda t: ["eval", "--data", str(coco(t, category={"id": 1})), *M]),
    (
        "yolo-class-1.7",
        "datasets",
        lambda t: ["train", "--data", str(yolo(t, "1.7 0.5 0.5 0.2 0.2")), "--out", str(t / "m.pt")],
    ),
    ("train-data-missing", "datasets", lambda t: ["train", "--data", str(t / "nowhere"), "--out", str(t / "m.pt")]),
]


def _junk(t: Path) -> Path:
    d = t / "junk"
    d.mkdir(exist_ok=True)
    (d / "a.jpg").write_bytes(b"not an image")
    return d


def _video(t: Path) -> Path:
    v = t / "in.mp4"
    if not v.is_file():
        from overfeat_edge.train.synth import write_demo_video

        write_demo_video(v, frames=3, seed=1)
    return v


def _file(t: Path) -> Path:
    f = t / "a-file"
    f.write_text("keep me\n")
    return f


def _folder(t: Path, name: str) -> Path:
    d = t / name
    d.mkdir(exist_ok=True)
    return d


def _binary(t: Path) -> Path:
    b = t / "classes.bin"
    b.write_bytes(bytes(range(256)) * 8)
    return b


def _huge(t: Path) -> Path:
    """A PNG whose header claims 30000 x 30000 pixels (its data is a few kilobytes of zeros)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    w = h = 30000
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )
    p = t / "huge.png"
    p.write_bytes(png)
    return p


def _mtcnn_pt() -> list[str]:
    return [str(ROOT / "tests" / "data" / "facenet-pytorch-2.6.0" / f"{n}.pt") for n in ("pnet", "rnet", "onet")]


def _shapes_spec() -> str:
    from overfeat_edge.runtime import load_runner

    return load_runner("onnxruntime", "overfeat-mini-shapes").spec.to_json()


RESULTS: dict[str, bool] = {}


@pytest.mark.slow
@pytest.mark.parametrize(("name", "klass", "make"), CASES, ids=[c[0] for c in CASES])
def test_hostile_input(
    name: str, klass: str, make: Callable[[Path], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = make(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    code = main(args)  # an exception escaping here is a traceback for the user
    out = capsys.readouterr()
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if not ln.startswith(("warning:", "skipped:"))]
    after = snapshot(tmp_path)
    changed = [k for k, v in before.items() if after.get(k) != v]
    temps = [k for k in after if Path(k).name.startswith(".") and k.endswith(".tmp")]
    RESULTS[name] = code != 0 and len(errors) == 1 and "Traceback" not in out.err and not changed and not temps
    assert code not in (0, None), f"{name}: exit {code}"
    assert len(errors) == 1, f"{name}: stderr was {out.err!r}"
    assert not changed and not temps, f"{name}: changed {changed}, temporary files {temps}"


def _cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_commands_exit_130_and_leave_nothing_half_written(sig: signal.Signals, tmp_path: Path) -> None:
    """Ctrl-C or SIGTERM during data synth and demo: exit 130, one line saying what was kept, no
    temporary file left, and every output that exists is whole (a readable JSON, a playable MP4)."""
    for args, wait in (
        (["data", "synth", "--out", str(tmp_path / "synth"), "--images", "5000"], 3.0),
        (["demo", "--out", str(tmp_path / "demo"), "--frames", "3000"], 8.0),
    ):
        p = _cli(args, tmp_path)
        time.sleep(wait)
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        RESULTS[f"{args[0]}-{sig.name}"] = p.returncode == 130 and len(lines) == 1 and "Traceback" not in err
        assert p.returncode == 130, (args, p.returncode, err)
        assert len(lines) == 1 and lines[0].startswith("interrupted: "), err
        assert not [q for q in tmp_path.rglob(".*.tmp")], "a temporary file was left"
        for j in tmp_path.rglob("*.json"):
            json.loads(j.read_text())
        for jl in tmp_path.rglob("*.jsonl"):
            [json.loads(x) for x in jl.read_text().splitlines()]


def test_zz_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The count the README quotes (after the cases above, in this process)."""
    if RESULTS:
        with capsys.disabled():
            print(f"\nhostile inputs handled cleanly: {sum(RESULTS.values())} of {len(RESULTS)}")
    assert all(RESULTS.values()), [k for k, v in RESULTS.items() if not v]
