"""Several sources in one run: batching equals one frame at a time, a stalled camera holds up no
other stream, per-stream outputs and tracker ids on the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from overfeat_edge.commands import main
from overfeat_edge.errors import InputError
from overfeat_edge.pipeline.detector import Detector, DetectorConfig
from overfeat_edge.runtime import load_runner
from overfeat_edge.stream.batch import batched_forward
from overfeat_edge.stream.loop import Stream, StreamLoop
from overfeat_edge.stream.plan import stream_list
from overfeat_edge.stream.sinks import Sink
from overfeat_edge.stream.sources import Source, parse_source
from overfeat_edge.types import Detections

from .test_loop import camera  # noqa: F401 - the fixture

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_runner("onnxruntime", "overfeat-mini-shapes", threads=2), DetectorConfig(min_score=1.5))


def test_batched_inference_equals_one_frame_at_a_time(detector: Detector) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (*hw, 3), dtype=np.uint8) for hw in ((240, 320), (240, 320), (200, 300))]
    inputs = [detector.preprocess(f)[1] for f in frames]
    batched = batched_forward(detector.runner, inputs)
    for f, levels in enumerate(inputs):
        alone = detector.forward(levels)
        for k in range(len(levels)):
            for name in ("scores", "boxes"):
                np.testing.assert_allclose(batched[f][k][name], alone[k][name], atol=1e-4)


class Clock(Sink):
    """Records when each frame of a stream was written."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, index: int, timestamp: float, frame: np.ndarray, det: Detections) -> None:
        self.times.append(time.monotonic())

    def close(self) -> None:
        pass


def largest_gap(times: list[float]) -> tuple[float, float, float]:
    """(gap, start, end) of the longest wait between two consecutive writes."""
    return max((b - a, a, b) for a, b in zip(times, times[1:]))


@pytest.mark.slow
def test_a_stalled_camera_holds_up_no_other_stream(detector: Detector, camera, tmp_path: Path) -> None:  # noqa: F811
    """The property, measured on this machine: while the camera hangs (3 frames, then nothing for 6 s;
    its reader times out and reconnects), the file's frames keep coming, each gap far below the
    camera's. No bound on how fast this machine is (a loaded 2-core box took 0.7 s a frame)."""
    from overfeat_edge.train.synth import write_demo_video

    clip = write_demo_video(tmp_path / "clip.mp4", frames=40, seed=2)
    _, url = camera("--fps", "20", "--stall-after", "3", "--stall", "6")
    stalled, steady = Clock(), Clock()
    cam = Stream("cam", Source(parse_source(url)), sinks=[stalled])
    vid = Stream("file", Source(parse_source(str(clip))), sinks=[steady])
    loop = StreamLoop([cam, vid], detector)

    def until_both_went_on() -> None:
        if len(steady.times) == 40 and len(stalled.times) > 3:
            loop.stop("seen")

    loop.run(duration=900, on_tick=until_both_went_on)  # a bound on a hang, not on speed
    assert len(steady.times) == 40 and len(stalled.times) > 3  # the camera's frames came through once it went on
    stall, t_a, t_b = largest_gap(stalled.times)
    # the file was written while the camera hung (as far as it had frames left: on a fast machine
    # the file may end before the camera's first frame arrives and its stall begins)
    left = sum(t > t_a for t in steady.times)
    assert sum(t_a < t < t_b for t in steady.times) >= min(2, left)
    assert largest_gap(steady.times)[0] < stall / 2, (largest_gap(steady.times), stall)


def test_stream_list(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("# site A\ndoor=rtsp://10.0.0.5/live?a=1\n\nvideotestsrc ! videoconvert ! appsink\n")
    got = stream_list(["0"], f)
    assert got == [
        ("cam0", "0"),
        ("door", "rtsp://10.0.0.5/live?a=1"),
        ("cam2", "videotestsrc ! videoconvert ! appsink"),
    ]
    f.write_text("a=x.mp4\na=y.mp4\n")
    with pytest.raises(InputError, match="given twice"):
        stream_list(None, f)
    with pytest.raises(InputError, match="no source"):
        stream_list(None, None)


def test_run_several_files_per_stream_outputs_and_ids(tmp_path: Path) -> None:
    from overfeat_edge.train.synth import write_demo_video

    a = write_demo_video(tmp_path / "a.mp4", frames=12, seed=1)
    b = write_demo_video(tmp_path / "b.mp4", frames=8, seed=4)
    out = tmp_path / "o"
    args = ["run", str(a), str(b), "--output", str(out / "v_{name}.mp4"), "--jsonl", str(out / "all.jsonl")]
    assert main([*args, "--stats-json", str(out / "s.json"), "--track", "--no-live"]) == 0
    recs = [json.loads(x) for x in (out / "all.jsonl").read_text().splitlines()]
    assert sorted({r["stream"] for r in recs}) == ["a", "b"]  # {name}: each file's stem
    assert sum(r["stream"] == "a" for r in recs) == 12 and sum(r["stream"] == "b" for r in recs) == 8
    tracked = [d for r in recs for d in r["detections"]]
    assert tracked and all("tracker_id" in d for d in tracked)
    assert (out / "v_a.mp4").is_file() and (out / "v_b.mp4").is_file()
    stats = json.loads((out / "s.json").read_text())
    assert stats["streams"]["a"]["frames"] == 12 and stats["mean_batch"] > 1
    # with several sources a video output must name each stream's file
    assert main(["run", str(a), str(b), "--output", str(out / "one.mp4")]) == 2


class OneSizeRunner:
    """The real runner, refusing inputs of one width, as an engine without a profile for a camera's
    frame size refuses them (TensorRT is not here to be that engine)."""

    def __init__(self, runner: object, bad_width: int) -> None:
        self.runner, self.bad_width = runner, bad_width
        self.max_batch = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.runner, name)

    def __enter__(self) -> OneSizeRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run_levels(self, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        for b in batches:
            if b.shape[3] == self.bad_width:
                raise InputError(f"no profile for input {b.shape[2]}x{b.shape[3]}")
        return self.runner.run_levels(batches)  # type: ignore[attr-defined]


def test_a_stream_the_runner_refuses_ends_alone(detector: Detector, tmp_path: Path) -> None:
    import cv2

    from overfeat_edge.train.synth import write_demo_video

    clip = write_demo_video(tmp_path / "clip.mp4", frames=12, seed=2)
    odd = tmp_path / "odd"
    odd.mkdir()
    for i in range(5):
        cv2.imwrite(str(odd / f"{i}.png"), np.full((150, 300, 3), 40 * i, np.uint8))  # 2:1, the clip 4:3
    level0 = detector.preprocess(np.zeros((150, 300, 3), np.uint8))[1][0].shape[3]
    assert level0 != detector.preprocess(np.zeros((240, 320, 3), np.uint8))[1][0].shape[3]
    det = Detector(OneSizeRunner(detector.runner, level0), DetectorConfig(min_score=1.5))  # type: ignore[arg-type]
    good, bad = Clock(), Clock()
    vid = Stream("file", Source(parse_source(str(clip))), sinks=[good])
    pics = Stream("odd", Source(parse_source(str(odd))), sinks=[bad])
    loop = StreamLoop([vid, pics], det)
    loop.run(duration=60)
    assert len(good.times) == 12 and not vid.error
    assert bad.times == [] and "no profile for input" in pics.error


@pytest.mark.slow
def test_max_frames_holds_for_every_live_stream(detector: Detector, camera) -> None:  # noqa: F811
    """A fast camera stops writing at --max-frames while a stalled one catches up."""
    _, fast_url = camera("--fps", "30")
    _, slow_url = camera("--fps", "30", "--stall-after", "2", "--stall", "3")
    fast, slow = Clock(), Clock()
    loop = StreamLoop(
        [
            Stream("fast", Source(parse_source(fast_url)), sinks=[fast]),
            Stream("slow", Source(parse_source(slow_url)), sinks=[slow]),
        ],
        detector,
        max_frames=5,
    )
    loop.run(duration=30)
    assert len(fast.times) == 5 and len(slow.times) == 5
    assert loop.stop_reason == "max frames"
