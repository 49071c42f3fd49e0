"""Output URIs as jetson-inference writes them: ``@`` is every interface, a named address only that one;
the line said at start names who can see the stream and the URL, never the token; which module serves
which scheme, and the scheme-less or mistyped ones."""

from __future__ import annotations

import socket

import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.stream import endpoint
from overfeat_edge.stream.endpoint import ENV_TOKEN, parse


@pytest.mark.parametrize(
    ("uri", "host", "port", "path", "key"),
    [
        ("rtsp://@:8554/cam", "", 8554, "/cam", "0.0.0.0:8554"),
        ("rtsp://@/cam", "", 8554, "/cam", "0.0.0.0:8554"),  # the scheme's default port
        ("rtsp://127.0.0.1:9000/a/b", "127.0.0.1", 9000, "/a/b", "127.0.0.1:9000"),
        ("rtsp://[::1]:9000/cam", "::1", 9000, "/cam", "::1:9000"),
    ],
)
def test_parse(uri: str, host: str, port: int, path: str, key: str) -> None:
    ep = parse(uri, ("rtsp",), 8554)
    assert (ep.host, ep.port, ep.path, ep.key) == (host, port, path, key)


def test_the_opening_line_says_who_can_see_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    every = parse("http://@:8080/", ("http",), 8080).opening_line("live page")
    assert "every interface" in every and f"open http://{socket.gethostname()}:8080/" in every
    only = parse("http://127.0.0.1:8080/", ("http",), 8080).opening_line("live page")
    assert only == "live page on 127.0.0.1: open http://127.0.0.1:8080/"
    monkeypatch.setenv(ENV_TOKEN, "s3cret")
    line = parse("rtsp://127.0.0.1:8554/cam", ("rtsp",), 8554).opening_line("RTSP server", "/cam")
    assert ENV_TOKEN in line and "s3cret" not in line


@pytest.mark.parametrize(
    ("value", "module"),
    [
        ("out.mp4", "overfeat_edge.stream.sinks"),
        ("http://@:8080/", "overfeat_edge.stream.web"),
        ("rtsp://@:8554/x", "overfeat_edge.stream.rtsp"),
        ("rtp://h:1", "overfeat_edge.stream.rtsp"),
        ("webrtc://@:8554/x", "overfeat_edge.stream.webrtc"),
    ],
)
def test_which_module_serves_an_output(value: str, module: str) -> None:
    from overfeat_edge.stream.plan import OUTPUTS, output_key

    assert OUTPUTS[output_key(value)].partition(":")[0] == module


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("srt://@:8554/cam", "unknown scheme 'srt'"),
        ("rtsp:/@:8554/cam", "two slashes"),
        ("RTP:x", "two slashes"),
    ],
)
def test_unknown_and_mistyped_schemes(value: str, says: str) -> None:
    from overfeat_edge.stream.plan import make_output

    with pytest.raises(InputError, match=says):
        make_output("--output", value)


def test_a_viewer_mailbox_keeps_the_newest_and_counts_the_lost() -> None:
    box = endpoint.Viewer(2)
    for i in range(5):
        box.put(i)
    assert (box.get(0), box.get(0), box.get(0), box.lost) == (3, 4, None, 3)
    box.put(9)
    box.close()
    assert box.get(5) is None  # closed: the viewer's loop ends at once


def test_the_network_outputs_import_without_torch() -> None:
    """The edge runtime's rule: torch and onnx blocked, every network output module imports."""
    import subprocess
    import sys

    from tests.net.test_web import ROOT

    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'onnx'):\n"
        "            raise ImportError(f'blocked: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import overfeat_edge.stream.endpoint, overfeat_edge.stream.web, overfeat_edge.stream.rtsp\n"
        "import overfeat_edge.stream.webrtc\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
