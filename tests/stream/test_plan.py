"""One run path for one source or many: the five ways the two old paths drifted apart, each checked
for one source and for two; the sink table; the watchdog on a stop request."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.commands import main
from overfeat_edge.errors import InputError
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime import load_runner
from overfeat_edge.stream.loop import Stream, StreamLoop
from overfeat_edge.stream.plan import OUTPUTS, RunOptions, make_output, make_plan, output_key, stream_list
from overfeat_edge.stream.sinks import Sink, display_problem
from overfeat_edge.stream.sources import Frame, Source, parse_source
from overfeat_edge.train.synth import write_demo_video
from overfeat_edge.types import Detections

HERE = Path(__file__).resolve().parent
FAST = ["--scales", "131", "--threads", "1", "--no-live"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("clips")
    return write_demo_video(d / "clipA.mp4", 6, seed=1), write_demo_video(d / "clipB.mp4", 4, seed=2)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_runner("onnxruntime", "overfeat-mini-shapes", threads=1), DetectorConfig(scales=["131"]))


class Keep(Sink):
    """Keeps what it is given: frame indices and the detections' metadata."""

    needs_frame = False

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.metadata: list[dict[str, object]] = []

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        self.frames.append(index)
        self.metadata.append(dict(det.metadata))


@pytest.mark.parametrize("many", [False, True])
def test_a_bad_number_exits_2_for_one_source_or_many(clips: tuple[Path, Path], tmp_path: Path, many: bool) -> None:
    sources = [str(c) for c in clips[: 2 if many else 1]]
    for bad in (["--width", "0"], ["--height", "-1"], ["--fps", "0"], ["--max-frames", "0"]):
        assert main(["run", *sources, *bad, "--jsonl", str(tmp_path / "{name}.jsonl"), *FAST]) == 2, bad


def test_display_is_said_for_several_sources(clips: tuple[Path, Path]) -> None:
    plan = make_plan(RunOptions(sources=[str(c) for c in clips], display=True))
    if display_problem() is None:  # a screen: a window per stream
        assert all(any(o.key == "display" for o, _ in s.outputs) for s in plan.streams)
    else:  # no screen: said, never silently dropped
        assert any(n.startswith("--display off: ") for n in plan.notes), plan.notes


def test_one_stream_detections_carry_metadata(clips: tuple[Path, Path], detector: Detector) -> None:
    keep = Keep()
    StreamLoop([Stream("clipA", Source(parse_source(str(clips[0]))), [keep])], detector).run()
    assert keep.frames == list(range(6))
    assert [(m["stream"], m["frame"]) for m in keep.metadata] == [("clipA", i) for i in range(6)]


class Failing(Source):
    """A real video source whose reads fail after ``after`` frames (a camera driver's error)."""

    def __init__(self, path: Path, after: int) -> None:
        self.inner = Source(parse_source(str(path)))
        super().__init__(self.inner.spec)
        self.after = after

    def read(self) -> Frame | None:
        if self.inner.index >= self.after:
            raise OSError("the device went away")
        return self.inner.read()


@pytest.mark.parametrize("many", [False, True])
def test_a_capture_error_ends_only_its_stream(clips: tuple[Path, Path], detector: Detector, many: bool) -> None:
    bad, good = Keep(), Keep()
    streams = [Stream("bad", Failing(clips[0], after=2), [bad])]
    if many:
        streams.append(Stream("good", Source(parse_source(str(clips[1]))), [good]))
    StreamLoop(streams, detector).run()  # no exception: the stream's error is its own
    assert bad.frames == [0, 1] and streams[0].error == "OSError: the device went away"
    if many:
        assert good.frames == [0, 1, 2, 3] and streams[1].error == ""


def test_stats_json_has_one_shape_and_outputs_are_named_by_stem(
    clips: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shapes = []
    for k, sources in enumerate(([clips[0]], list(clips))):
        out = tmp_path / str(k)
        args = ["run", *map(str, sources), "--output", str(out / "{name}.mp4"), "--stats-json", str(out / "s.json")]
        assert main([*args, *FAST]) == 0
        stats = json.loads((out / "s.json").read_text())
        shapes.append(set(stats))
        assert sorted(stats["streams"]) == [s.stem for s in sources]  # clipA.mp4 -> clipA
        assert stats["frames"] == sum(st["frames"] for st in stats["streams"].values())
        printed = capsys.readouterr().out
        for s in sources:
            assert (out / f"{s.stem}.mp4").is_file() and f"wrote {out / s.stem}.mp4" in printed
    assert shapes[0] == shapes[1] and {"frames", "fps", "stages", "stopped_by", "streams"} <= shapes[0]


def test_names_from_the_sources_file_and_stems(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("door=a/clip.mp4\nb/clip.mp4\nc/clip.mp4\nrtsp://127.0.0.1/x\n")
    assert stream_list(["photos/"], f) == [
        ("photos", "photos/"),
        ("door", "a/clip.mp4"),
        ("clip", "b/clip.mp4"),
        ("clip-2", "c/clip.mp4"),  # two of one stem: each its own name
        ("cam4", "rtsp://127.0.0.1/x"),
    ]


def test_the_output_table() -> None:
    assert {output_key(u) for u in ("a.MP4", "x.jsonl", "f/", "mqtt://h/t", "display://")} == {
        ".mp4",
        ".jsonl",
        "/",
        "mqtt",
        "display",
    }
    for key in OUTPUTS:  # every entry names a module with both functions
        check, open_output = make_output("--output", "x", key).functions()
        assert callable(check) and callable(open_output)
    with pytest.raises(InputError, match="not an output this build writes"):
        make_output("--output", "out.gif")


def test_a_frame_output_needs_name_with_several_sources(clips: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="must hold"):
        make_plan(
            RunOptions(sources=[str(c) for c in clips], outputs=[make_output("--output", str(tmp_path / "o.mp4"))])
        )
    plan = make_plan(
        RunOptions(
            sources=[str(c) for c in clips], outputs=[make_output("--jsonl", str(tmp_path / "a.jsonl"), ".jsonl")]
        )
    )
    assert [o.uri for o in plan.shared] == [str(tmp_path / "a.jsonl")]  # one JSONL takes every stream's records


def test_a_stop_request_ends_a_stuck_run(clips: tuple[Path, Path], tmp_path: Path) -> None:
    """The runner blocks inside its call for good: SIGTERM still ends the process (the watchdog,
    after its grace period), with the JSONL closed under its final name, whole lines only."""
    out = tmp_path / "d.jsonl"
    p = subprocess.Popen(
        [sys.executable, str(HERE / "stuck_loop.py"), str(clips[0]), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate()
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=120)  # a bound on a hang; the grace period is 1 s
    assert p.returncode == 130, err
    assert "watchdog: closing the outputs" in err and "the loop ended by itself" not in rest
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["frame"] for r in recs] == [0, 1, 2]
    assert not list(tmp_path.glob(".*partial*"))


def test_a_new_output_is_one_module_and_one_table_line(
    clips: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.stream import skeleton_output

    monkeypatch.setitem(OUTPUTS, "rtsp", "tests.stream.skeleton_output")  # the one line
    assert main(["run", *map(str, clips), "--output", "rtsp://127.0.0.1:8554/{name}", *FAST]) == 0
    sent = skeleton_output.SENT
    assert [i for i, _ in sent["rtsp://127.0.0.1:8554/clipA"]] == list(range(6))
    assert [i for i, _ in sent["rtsp://127.0.0.1:8554/clipB"]] == list(range(4))
    assert main(["run", str(clips[0]), "--output", "rtsp://10.0.0.1/x", *FAST]) == 2  # its own check, before the run


class Counting(Source):
    """A new source kind written as one class: ``count://N`` gives N frames, each filled with its index."""

    live = True

    def read(self) -> Frame | None:
        if self.stopped or self.index >= int(str(self.spec.target).partition("://")[2]):
            return None
        self.index += 1
        return Frame(self.index - 1, float(self.index - 1), np.full((96, 128, 3), self.index, np.uint8))


def test_a_new_source_is_one_class_and_its_table_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from overfeat_edge.stream import sources

    monkeypatch.setitem(sources.KINDS, "count", Counting)
    monkeypatch.setitem(sources.SCHEMES, "count", lambda uri, kw: sources.SourceSpec("count", uri, True, **kw))
    assert main(["run", "count://5", "--jsonl", str(tmp_path / "c.jsonl"), "--max-frames", "5", *FAST]) == 0
    recs = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == sorted({r["frame"] for r in recs}) and recs[-1]["stream"] == "cam0"
    assert 1 <= len(recs) <= 5  # live: a frame not yet taken is replaced by the next one
