"""Sources: URIs parsed like jetson-inference's, real files read in order, bad frames skipped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream.sources import Source, has_gstreamer, parse_source


def bar(i: int, w: int = 128, h: int = 96) -> np.ndarray:
    img = np.full((h, w, 3), 60, np.uint8)
    img[:, : 4 * (i % 32) + 4] = 255
    return img


def bar_width(img: np.ndarray) -> int:
    return int((img[img.shape[0] // 2, :, 0] > 150).sum())


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (128, 96))
    for i in range(30):
        w.write(bar(i))
    w.release()
    return path


@pytest.mark.parametrize(
    ("uri", "kind", "target", "live"),
    [
        ("0", "camera", 0, True),
        ("2", "camera", 2, True),
        ("csi://1", "csi", 1, True),
        ("rtsp://10.0.0.2:8554/cam", "stream", "rtsp://10.0.0.2:8554/cam", True),
        ("http://127.0.0.1:8080/video", "stream", "http://127.0.0.1:8080/video", True),
        ("videotestsrc ! videoconvert ! appsink", "gstreamer", "videotestsrc ! videoconvert ! appsink", True),
    ],
)
def test_parse_uris(uri: str, kind: str, target: object, live: bool) -> None:
    s = parse_source(uri, 640, 480, 30)
    assert (s.kind, s.target, s.live, s.width, s.height, s.fps) == (kind, target, live, 640, 480, 30)


def test_parse_files_folders_globs(video: Path, tmp_path: Path) -> None:
    assert parse_source(str(video)).kind == "file" and not parse_source(str(video)).live
    assert parse_source(f"file://{video}").target == str(video)
    cv2.imwrite(str(tmp_path / "b.png"), bar(1))
    cv2.imwrite(str(tmp_path / "a.png"), bar(0))
    folder = parse_source(str(tmp_path))
    assert folder.kind == "images" and [p.name for p in folder.paths] == ["a.png", "b.png"]
    assert [p.name for p in parse_source(str(tmp_path / "*.png")).paths] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [("missing.mp4", "source not found"), ("/dev/video99", "camera not found"), ("v4l2:///dev/video98", "video98")],
)
def test_missing_sources(uri: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_source(uri)


@pytest.mark.skipif(has_gstreamer(), reason="this OpenCV has GStreamer; the error path cannot be reached")
def test_csi_without_gstreamer_says_how_to_fix() -> None:
    with pytest.raises(InputError, match=r"no GStreamer support.*JetPack"):
        Source(parse_source("csi://0"))


def test_video_file_every_frame_in_order(video: Path) -> None:
    src = Source(parse_source(str(video)))
    assert src.fps == pytest.approx(25)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    src.close()
    assert [f.index for f in frames] == list(range(30))
    assert [bar_width(f.image) for f in frames] == pytest.approx([4 * (i % 32) + 4 for i in range(30)], abs=2)
    ts = [f.timestamp for f in frames]
    assert ts[0] == pytest.approx(0) and ts[-1] == pytest.approx(29 / 25, abs=1e-3)


def test_image_folder_converts_and_skips(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "0_grey.png"), bar(0)[:, :, 0])
    cv2.imwrite(str(tmp_path / "1_bgra.png"), cv2.cvtColor(bar(1), cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "2_16bit.png"), bar(2).astype(np.uint16) * 257)
    (tmp_path / "3_broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "4_ok.jpg"), bar(4))
    src = Source(parse_source(str(tmp_path)))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert [f.index for f in frames] == [0, 1, 2, 4]
    assert all(f.image.shape == (96, 128, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [bar_width(f.image) for f in frames] == pytest.approx([4, 8, 12, 20], abs=2)
    assert src.skipped == 1


def test_corrupt_video_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video at all" * 10)
    with pytest.raises(InputError, match=r"cannot open file .*bad\.mp4: not a video"):
        Source(parse_source(str(bad)))


def test_a_finite_source_knows_its_length_and_run_shows_the_time_left(tmp_path: Path) -> None:
    """A video file's frame count and a folder's image count are the totals `run`'s live line counts
    down from (with the time left at the pace so far); a live source has none."""
    import cv2
    import numpy as np

    from overfeat_edge.commands.run import _done_of
    from overfeat_edge.stream.loop import Stream, StreamLoop
    from overfeat_edge.stream.sources import Source, parse_source
    from overfeat_edge.train.synth import write_demo_video

    clip = write_demo_video(tmp_path / "clip.mp4", frames=12, seed=2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 40, 3), i, np.uint8))
    video, images = Source(parse_source(str(clip))), Source(parse_source(str(folder)))
    assert (video.total, images.total) == (12, 5)

    class FakeStats:  # the loop's clock and count, as its stats keep them
        t_start = 0.0

    loop = StreamLoop.__new__(StreamLoop)
    loop.streams, loop.max_frames, loop.stats = [Stream("a", video), Stream("b", images)], None, FakeStats()
    FakeStats.t_start = __import__("time").perf_counter() - 10.0  # 10 s in
    line = _done_of(loop, 5)
    assert line.startswith("5 of 17 frames, ") and line.endswith(" left")  # 12 left at 2 s a frame: 24 s
    assert "24 s left" in line or "23 s left" in line or "25 s left" in line
    loop.max_frames = 3  # at most 3 per stream
    assert _done_of(loop, 6) == "6 of 6 frames"
    video.close()
