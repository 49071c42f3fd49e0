"""Second fuzz pass (issue 22): the classes ``tests/test_fuzz.py`` does not have, counted the same way.

Every case runs the CLI in-process through ``commands.main``. A *refused* case must exit non-zero
with one line on stderr (``warning:``/``skipped:`` lines aside), no traceback, no existing file
changed and no temporary or lock file left; an *accepted* case (a planted symlink, /dev/null, a
FIFO, ``-``, a non-UTF-8 image name) must exit 0 with the same "nothing else touched", and each
case then checks its own property (the symlink's target unchanged, /dev/null still a device...).
``python -m pytest tests/test_fuzz_r3.py -q -s`` prints the count the README quotes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List, Tuple

import cv2
import numpy as np
import pytest

from overfeat_edge.commands import main
from tests.test_fuzz import PHOTO, SHAPES, _junk, _video, coco, snapshot

M = ["--model", "overfeat-mini-shapes"]
VICTIM = "victim.txt"
RESULTS: dict[str, bool] = {}


def _victim(t: Path) -> Path:
    v = t / VICTIM
    v.write_text("not yours\n")
    return v


def _leftovers(root: Path) -> list[str]:
    return [
        str(p.relative_to(root)) for p in root.rglob(".*") if any(k in p.name for k in (".tmp", ".lock", ".partial"))
    ]


def _run(args: list[str], tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str], str]:
    capsys.readouterr()
    before, planted = snapshot(tmp), set(_leftovers(tmp))
    code = main(args)
    out = capsys.readouterr()
    errors = [ln for ln in out.err.splitlines() if ln.strip() and not ln.startswith(("warning:", "skipped:"))]
    after = snapshot(tmp)
    changed = [k for k, v in before.items() if after.get(k) != v]
    return code, errors, changed + [k for k in _leftovers(tmp) if k not in planted], out.out + out.err


# ---- setups: each returns the arguments; checks run after -----------------------------------------
def lock_held(t: Path) -> list[str]:
    """Another process holds the lock beside o.jsonl."""
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(t / ".o.jsonl.lock")], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    HOLDERS.append(p)
    return ["run", str(PHOTO), "--jsonl", str(t / "o.jsonl"), "--no-live"]


HOLDERS: list[subprocess.Popen[str]] = []


def lock_is_symlink(t: Path) -> list[str]:
    (t / ".o.jsonl.lock").symlink_to(_victim(t))
    return ["run", str(PHOTO), "--jsonl", str(t / "o.jsonl"), "--no-live"]


def final_is_symlink(t: Path) -> list[str]:
    (t / "o.jsonl").symlink_to(_victim(t))
    return ["run", str(PHOTO), "--jsonl", str(t / "o.jsonl"), "--no-live"]


def stats_is_socket(t: Path) -> list[str]:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(t / "s.sock"))
    SOCKETS.append(s)
    return ["run", str(PHOTO), "--stats-json", str(t / "s.sock"), "--no-live"]


SOCKETS: list[socket.socket] = []


def sources_file(t: Path, text: str) -> Path:
    f = t / "cams.txt"
    f.write_text(text)
    return f


def frames_dir(t: Path) -> Path:
    d = t / "frames"
    d.mkdir(exist_ok=True)
    cv2.imwrite(str(d / "frame_000000.jpg"), cv2.imread(str(PHOTO)))
    return d


def old_outputs(t: Path) -> list[str]:
    (t / "o.jsonl").write_text('{"frame": 0}\n')
    (t / "s.json").write_text('{"frames": 7}\n')
    return ["run", str(_junk(t)), "--jsonl", str(t / "o.jsonl"), "--stats-json", str(t / "s.json"), "--no-live"]


def old_detections(t: Path) -> list[str]:
    out = t / "det"
    out.mkdir()
    (out / "detections.json").write_text('{"images": [1]}\n')
    return ["detect", str(_video(t)), *M, "--out", str(out)]


def read_only(t: Path) -> list[str]:
    f = t / "o.jsonl"
    f.write_text('{"frame": 0}\n')
    f.chmod(0o444)
    return ["run", str(PHOTO), "--jsonl", str(f), "--no-live"]


def zero_onnx(t: Path) -> list[str]:
    f = t / "zeros.onnx"
    with open(f, "wb") as h:
        h.truncate(400 << 20)  # 400 MB of zeros (sparse: no disk used)
    return ["detect", str(PHOTO), "--model", str(f), "--out", str(t / "o")]


def deep_spec(t: Path) -> list[str]:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(SHAPES / "model.onnx"))
    next(e for e in model.metadata_props if e.key == "overfeat_edge.spec").value = "[" * 100_000
    onnx.save(model, str(t / "deep.onnx"))
    return ["detect", str(PHOTO), "--model", str(t / "deep.onnx"), "--out", str(t / "o")]


def deep_coco(t: Path) -> list[str]:
    ds = coco(t)
    (ds / "annotations.json").write_text("[" * 100_000)
    return ["eval", "--data", str(ds), *M]


def nan_model(t: Path, value: float) -> Path:
    """The shipped model with every bias of the box head's last convolution set to ``value``."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(SHAPES / "model.onnx"))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    node = producer["boxes"]
    while node.op_type != "Conv":
        node = producer[node.input[0]]
    init = next(i for i in g.initializer if i.name == node.input[2])
    init.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(init), value), init.name))
    path = t / f"bias-{value}.onnx"
    onnx.save(model, str(path))
    return path


def tiny_among(t: Path) -> list[str]:
    d = t / "imgs"
    d.mkdir()
    (d / "a.jpg").write_bytes(PHOTO.read_bytes())
    cv2.imwrite(str(d / "b.png"), np.full((8, 8, 3), 90, np.uint8))
    return ["detect", str(d), *M, "--min-size", "20", "--out", str(t / "o"), "--no-save-images"]


def non_utf8_folder(t: Path) -> list[str]:
    d = t / "imgs"
    d.mkdir()
    with open(os.path.join(os.fsencode(d), b"\xff\xfe.jpg"), "wb") as f:
        f.write(PHOTO.read_bytes())
    return ["run", str(d), "--jsonl", str(t / "o.jsonl"), "--no-live"]


def non_utf8_video(t: Path) -> str:
    name = os.fsencode(t) + b"/\xff.mp4"
    with open(name, "wb") as f:
        f.write(_video(t).read_bytes())
    return os.fsdecode(name)


def publish(url: str) -> Callable[[Path], list[str]]:
    return lambda t: ["run", str(PHOTO), "--publish", url, "--no-live"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Case = Tuple[str, str, Callable[[Path], List[str]]]  # typing's forms: evaluated at import, on 3.8 too
REFUSED: list[Case] = [
    # 1. temporary names and locks
    ("second-writer-refused", "locks", lock_held),
    ("lock-name-is-a-symlink", "locks", lock_is_symlink),
    # 2. special files and links as outputs
    ("final-name-is-a-symlink", "special", final_is_symlink),
    ("stats-json-is-a-socket", "special", stats_is_socket),
    ("stats-json-is-dev-zero", "special", lambda t: ["run", str(PHOTO), "--stats-json", "/dev/zero", "--no-live"]),
    # 3. path escapes
    (
        "stream-named-dotdot",
        "escape",
        lambda t: [
            "run",
            "--sources",
            str(sources_file(t, f"..={PHOTO}\nb={PHOTO}\n")),
            "--jsonl",
            str(t / "{name}.j"),
        ],
    ),
    ("stream-empty-uri", "escape", lambda t: ["run", "--sources", str(sources_file(t, "a=\n")), "--no-live"]),
    # 4. inputs and earlier results
    (
        "save-frames-into-input",
        "inputs",
        lambda t: ["run", str(frames_dir(t)), "--save-frames", str(frames_dir(t)), "--no-live"],
    ),
    (
        "eval-json-is-ground-truth",
        "inputs",
        lambda t: ["eval", "--data", str(coco(t)), *M, "--json", str(t / "ds" / "annotations.json")],
    ),
    ("failed-run-keeps-old-outputs", "inputs", old_outputs),
    ("failed-detect-keeps-detections", "inputs", old_detections),
    ("read-only-output", "inputs", read_only),
    # 7. bounds
    (
        "sources-10000-lines",
        "bounds",
        lambda t: ["run", "--sources", str(sources_file(t, f"{PHOTO}\n" * 10_000)), "--no-live"],
    ),
    (
        "scale-factor-0.99999",
        "bounds",
        lambda t: ["detect", str(PHOTO), *M, "--scale-factor", "0.99999", "--out", str(t / "o")],
    ),
    ("onnx-400mb-zeros", "bounds", zero_onnx),
    ("spec-nested-100000", "bounds", deep_spec),
    ("coco-nested-100000", "bounds", deep_coco),
    # 8. MQTT
    ("publish-port-0", "mqtt", publish("mqtt://127.0.0.1:0/t")),
    ("publish-topic-70000", "mqtt", publish("mqtt://127.0.0.1/" + "t" * 70_000)),
    ("publish-topic-newline", "mqtt", publish("mqtt://127.0.0.1/a\nb")),
    ("publish-bad-ipv6", "mqtt", publish("mqtt://[::1/t")),
    ("publish-no-broker", "mqtt", lambda t: publish(f"mqtt://127.0.0.1:{_free_port()}/t")(t)),
    # 9. names
    ("output-not-utf8", "names", lambda t: ["run", str(PHOTO), "--output", os.fsdecode(os.fsencode(t) + b"/\xff.mp4")]),
    ("video-source-not-utf8", "names", lambda t: ["run", non_utf8_video(t), "--jsonl", str(t / "o.jsonl")]),
    ("jsonl-name-300", "names", lambda t: ["run", str(PHOTO), "--jsonl", str(t / ("n" * 294 + ".jsonl")), "--no-live"]),
    # 11. non-finite models
    (
        "detect-nan-bias",
        "nonfinite",
        lambda t: [
            "detect",
            str(PHOTO),
            "--model",
            str(nan_model(t, float("nan"))),
            "--out",
            str(t / "o"),
            "--no-save-images",
        ],
    ),
    (
        "detect-3e38-bias",
        "nonfinite",
        lambda t: ["detect", str(PHOTO), "--model", str(nan_model(t, 3e38)), "--out", str(t / "o"), "--no-save-images"],
    ),
    # 12. small ones
    ("one-image-too-small", "small", tiny_among),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "klass", "make"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(
    name: str,
    klass: str,
    make: Callable[[Path], list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        code, errors, touched, text = _run(make(tmp_path), tmp_path, capsys)
    finally:
        for p in HOLDERS:
            p.kill()
            p.wait()
        HOLDERS.clear()
        for s in SOCKETS:
            s.close()
        SOCKETS.clear()
    RESULTS[name] = code != 0 and len(errors) == 1 and "Traceback" not in text and not touched
    assert code not in (0, None), f"{name}: exit {code}"
    assert len(errors) == 1, f"{name}: stderr was {errors}"
    assert "Traceback" not in text and not touched, f"{name}: touched {touched}"
    if (tmp_path / VICTIM).exists():
        assert (tmp_path / VICTIM).read_text() == "not yours\n"
    for j in tmp_path.rglob("*.json"):
        if j.name != "annotations.json":
            json.loads(j.read_text())  # NaN is not JSON: json.loads takes it, so check for it too
            assert "NaN" not in j.read_text() and "Infinity" not in j.read_text()
    if name == "one-image-too-small":  # skipped and counted; the others are written
        assert len(json.loads((tmp_path / "o" / "detections.json").read_text())["images"]) == 1


def test_password_file_dev_zero_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OVERFEAT_EDGE_MQTT_USERNAME", "u")
    monkeypatch.setenv("OVERFEAT_EDGE_MQTT_PASSWORD_FILE", "/dev/zero")
    code, errors, touched, _text = _run(publish("mqtt://127.0.0.1/t")(tmp_path), tmp_path, capsys)
    RESULTS["password-file-dev-zero"] = code == 2 and len(errors) == 1 and not touched
    assert code == 2 and len(errors) == 1 and "larger than" in errors[0], errors


@pytest.mark.slow
def test_calibrate_refuses_a_nan_model_before_the_quantizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime.quantization")
    photos = tmp_path / "p"
    photos.mkdir()
    (photos / "x.jpg").write_bytes(PHOTO.read_bytes())
    model = nan_model(tmp_path, float("nan"))
    args = [
        "calibrate",
        "--model",
        str(model),
        "--images",
        str(photos),
        "--holdout",
        str(photos),
        "--out",
        str(tmp_path / "c"),
    ]
    code, errors, touched, _text = _run(args, tmp_path, capsys)
    RESULTS["calibrate-nan-bias"] = code == 2 and len(errors) == 1 and not touched
    assert code == 2 and len(errors) == 1 and "NaN" in errors[0], errors
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.onnx"))


# ---- accepted: the run succeeds and touches nothing but its outputs ---------------------------------
@pytest.mark.slow
def test_planted_symlinks_at_the_old_temporary_names_are_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = _victim(tmp_path)
    for name in (".o.partial.jsonl", ".o.partial.mp4", ".o.jsonl.tmp", ".s.json.tmp"):
        (tmp_path / name).symlink_to(victim)
    args = ["run", str(_video(tmp_path)), "--jsonl", str(tmp_path / "o.jsonl"), "--output", str(tmp_path / "o.mp4")]
    args += ["--stats-json", str(tmp_path / "s.json"), "--no-live"]
    code, errors, touched, _ = _run(args, tmp_path, capsys)
    ok = code == 0 and victim.read_text() == "not yours\n" and (tmp_path / "o.jsonl").stat().st_size > 0
    RESULTS["planted-symlinks"] = ok and not touched
    assert code == 0, errors
    assert victim.read_text() == "not yours\n"
    assert [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert cv2.VideoCapture(str(tmp_path / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


@pytest.mark.slow
def test_dev_null_fifo_and_stdout_are_written_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "live.jsonl"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(open(fifo, encoding="utf-8").read().splitlines()))
    reader.start()
    args = ["run", str(PHOTO), "--stats-json", "/dev/null", "--jsonl", str(fifo), "--no-live"]
    code, errors, touched, _ = _run(args, tmp_path, capsys)
    reader.join(30)
    ok = code == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert ok and len(got) == 1 and json.loads(got[0])["frame"] == 0, (code, errors, got)
    code2 = main(["run", str(PHOTO), "--jsonl", "-", "--no-live"])
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    RESULTS["devnull-fifo-stdout"] = ok and code2 == 0 and len(lines) == 1 and not touched
    assert code2 == 0 and json.loads(lines[0])["frame"] == 0, out
    assert not (tmp_path / "-").exists() and not Path("-").exists()


@pytest.mark.slow
def test_a_non_utf8_image_name_and_a_245_character_output_name_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = non_utf8_folder(tmp_path)
    code, errors, touched, _ = _run(args, tmp_path, capsys)
    assert code == 0, errors
    long_out = tmp_path / ("n" * 239 + ".jsonl")  # 245 bytes: its temporary name is cut to fit
    code2, errors2, touched2, _ = _run(["run", str(PHOTO), "--jsonl", str(long_out), "--no-live"], tmp_path, capsys)
    RESULTS["non-utf8-and-245-names"] = code == code2 == 0 and not touched and not touched2
    assert code2 == 0 and long_out.is_file(), errors2
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_publish_best_effort_exits_0_and_says_what_was_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("paho.mqtt.client")
    url = f"mqtt://127.0.0.1:{_free_port()}/t?best-effort"
    code = main(["run", str(PHOTO), "--publish", url, "--no-live"])
    err = capsys.readouterr().err
    RESULTS["publish-best-effort"] = code == 0 and "did not answer" in err and "lost (best effort)" in err
    assert code == 0 and "did not answer" in err and "1 of 1 message(s) lost" in err, err


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    return subprocess.run(mount, check=False, capture_output=True).returncode == 0


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    """The disk fills during a run of the CLI (a subprocess, so OpenCV's and FFmpeg's own lines are
    seen too): a 160 kB tmpfs where the tests run as root, else a 160 kB RLIMIT_FSIZE (EFBIG). One
    line; the JSONL keeps whole lines only, the MP4 is kept only when playable, nothing temporary."""
    import resource

    from overfeat_edge.train.synth import write_demo_video

    video = tmp_path / "long.mp4"
    write_demo_video(video, frames=120, seed=2)
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = _mount_tmpfs(disk, "160k")

    def limit() -> None:
        if not mounted:
            resource.setrlimit(resource.RLIMIT_FSIZE, (160_000, 160_000))

    try:
        args = ["run", str(video), "--jsonl", str(disk / "o.jsonl"), "--output", str(disk / "o.mp4"), "--no-live"]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        r = subprocess.run(
            [sys.executable, str(Path(__file__).parents[1] / "cli.py"), *args],
            preexec_fn=limit,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
        ok = r.returncode not in (0, None) and len(lines) == 1 and not _leftovers(disk)
        if (disk / "o.jsonl").exists():
            [json.loads(x) for x in (disk / "o.jsonl").read_text().splitlines()]
        if (disk / "o.mp4").exists():
            assert cv2.VideoCapture(str(disk / "o.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) > 0
        RESULTS["disk-full"] = ok
        assert ok, (r.returncode, r.stderr[-3000:], _leftovers(disk))
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


def test_stream_and_model_names_never_leave_their_folder(tmp_path: Path) -> None:
    from overfeat_edge.engine.cache import DeviceInfo, engine_path
    from overfeat_edge.paths import is_safe_name, slug, under

    assert [is_safe_name(n) for n in ("..", ".", "a/b", "", "x" * 65, ".hidden", "door-1.cam")] == [False] * 6 + [True]
    assert slug("..") == "unknown" and slug("NVIDIA Jetson AGX Orin") == "nvidia-jetson-agx-orin"
    dev = DeviceInfo("Orin", "8.7", "8.6.2", None)
    assert tmp_path in engine_path(tmp_path, "..", dev, "fp16", "k").resolve().parents
    from overfeat_edge.errors import InputError

    with pytest.raises(InputError, match="outside"):
        under(tmp_path / "a", tmp_path / "a" / ".." / "b", "the report")


def test_zz_count(capsys: pytest.CaptureFixture[str]) -> None:
    """The count the README quotes (after the cases above, in this process)."""
    if RESULTS:
        with capsys.disabled():
            print(f"\nround 3 hostile inputs handled cleanly: {sum(RESULTS.values())} of {len(RESULTS)}")
    assert all(RESULTS.values()), [k for k, v in RESULTS.items() if not v]
