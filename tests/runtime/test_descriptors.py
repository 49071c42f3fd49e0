"""Backends as data: each descriptor matches its load(), and a new backend is one file plus the table's line.

The Triton client below is a skeleton written here, not in the package: its module is written to a
temporary folder and named in ``runtime.BACKENDS`` (the one line a new backend adds), and nothing
else is edited. It is listed, its options reach the CLI, and ``detect`` runs through it. Its
"server" is an ONNX Runtime session in the same process (no server is installed here): what is
tested is the plug-in path, so its detections must equal ONNX Runtime's own.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from overfeat_edge import runtime
from overfeat_edge.errors import InputError
from overfeat_edge.runtime.descriptor import PRECISIONS, BackendDescriptor

ROOT = Path(__file__).resolve().parents[2]

TRITON_SKELETON = textwrap.dedent(
    '''
    """A Triton client backend, as a plug-in would write it (skeleton: the server is stood in for)."""

    from __future__ import annotations

    from overfeat_edge.errors import InputError
    from overfeat_edge.runtime.base import Runner
    from overfeat_edge.runtime.descriptor import BackendDescriptor, BackendOption

    DESCRIPTOR = BackendDescriptor(
        name="triton",
        summary="a Triton Inference Server over gRPC",
        options=(
            BackendOption("triton_url", str, "the server, HOST:PORT.", metavar="URL"),
            BackendOption("triton_timeout", float, "seconds to wait for the server.", metavar="S"),
        ),
        max_workers=4,
        spec_source="server",
        precisions=("fp32", "fp16"),
    )


    class TritonRunner(Runner):
        name = "triton"

        def __init__(self, model: str, url: str, precision: str) -> None:
            from overfeat_edge.runtime import load_runner

            self.url, self.precision = url, precision
            self.server = load_runner("onnxruntime", model, threads=1, precision=precision)  # the stand-in
            self.spec = self.server.spec

        def run(self, batch):
            return self.server.run(batch)

        def describe(self) -> str:
            return f"triton {self.precision} at {self.url}"


    def load(model: str, *, triton_url: str | None = None, triton_timeout: float | None = None,
             precision: str = "fp32") -> TritonRunner:
        DESCRIPTOR.check_precision(precision)
        if triton_url is None or not triton_url.startswith("127.0.0.1:"):
            raise InputError(f"--triton-url must be 127.0.0.1:PORT here, got {triton_url!r}")
        return TritonRunner(model, triton_url, precision)
    '''
)


@pytest.fixture
def triton(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "triton_skeleton.py").write_text(TRITON_SKELETON)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runtime.BACKENDS, "triton", "triton_skeleton")
    return tmp_path


@pytest.mark.parametrize("name", list(runtime.BACKENDS))
def test_each_descriptor_declares_what_its_load_takes(name: str) -> None:
    d = runtime.descriptor(name)
    assert isinstance(d, BackendDescriptor) and d.name == name
    params = inspect.signature(runtime.backend_module(name).load).parameters
    keywords = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert sorted(p.name for p in keywords) == sorted((*d.option_names(), "precision"))
    assert params["precision"].default == "fp32"
    assert d.precisions[0] == "fp32" and set(d.precisions) <= set(PRECISIONS)
    assert all(o.type in (int, float, str, bool) and o.help.endswith(".") for o in d.options)


def test_the_loop_and_auto_read_the_descriptors() -> None:
    from overfeat_edge.runtime.auto import candidates
    from overfeat_edge.stream.plan import inference_workers

    assert candidates("fp32") == ["onnxruntime", "openvino"]  # the CPU backends, in the table's order
    assert candidates("bf16") == ["openvino"]  # ONNX Runtime has no bf16
    assert inference_workers(3, "openvino", live=False) == 3
    with pytest.raises(InputError, match=r"--workers 2 needs a CPU backend .*tensorrt runs 1"):
        inference_workers(2, "tensorrt", live=False)


def test_a_new_backend_is_its_file_and_the_tables_line(triton: Path) -> None:
    from overfeat_edge.pipeline.load import load_detector
    from overfeat_edge.stream.plan import inference_workers

    assert "triton" in runtime.backend_names() and runtime.descriptor("triton").spec_source == "server"
    assert inference_workers(4, "triton", live=True) == 4  # its own worker limit
    with pytest.raises(InputError, match="--workers 5 needs a CPU backend"):
        inference_workers(5, "triton", live=True)
    with pytest.raises(InputError, match="--triton-url does not apply to --backend onnxruntime"):
        runtime.load_runner("onnxruntime", "overfeat-mini-shapes", triton_url="127.0.0.1:8001")
    with pytest.raises(InputError, match="--backend triton runs --precision fp32 or fp16, not int8"):
        runtime.load_runner("triton", "overfeat-mini-shapes", triton_url="127.0.0.1:8001", precision="int8")
    det = load_detector("overfeat-mini-shapes", backend="triton", triton_url="127.0.0.1:8001")
    assert det.runner.describe() == "triton fp32 at 127.0.0.1:8001"


def test_a_new_backends_options_reach_the_cli(triton: Path, tmp_path: Path) -> None:
    """In a fresh process (the commands read the table when they are defined): the skeleton's options
    are listed by ``backends`` and ``detect --backend triton --triton-url ...`` runs through it."""
    image = str(ROOT / "overfeat_edge" / "assets" / "mtcnn-face" / "sample.jpg")
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(triton)!r})
        from overfeat_edge import runtime
        runtime.BACKENDS["triton"] = "triton_skeleton"
        from overfeat_edge.commands import main
        sys.exit(main(sys.argv[1:]))
        """
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", script, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)

    help_text = cli("detect", "--help").stdout  # the common backend options; a backend's own: `backends`
    assert "--threads" in help_text and "overfeat-edge backends" in help_text
    listing = cli("backends").stdout
    assert "--triton-url" in listing and "--triton-timeout" in listing
    common = ("--model", "overfeat-mini-shapes", "--no-save-images")
    r = cli("detect", image, *common, "--backend", "triton", "--triton-url", "127.0.0.1:8001", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "on triton fp32" in r.stdout
    ref = cli("detect", image, *common, "--backend", "onnxruntime", "--threads", "2", "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    got = json.loads((out / "detections.json").read_text())
    want = json.loads((tmp_path / "ref" / "detections.json").read_text())
    assert got["backend"] == "triton fp32 at 127.0.0.1:8001"
    assert want["images"][0]["detections"]  # boxes to compare
    assert [i["detections"] for i in got["images"]] == [i["detections"] for i in want["images"]]
    bad = cli("detect", image, *common, "--backend", "triton", "--triton-url", "10.0.0.1:8001", "--out", str(out))
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [
        "error: --triton-url must be 127.0.0.1:PORT here, got '10.0.0.1:8001'"
    ]


def test_every_backends_options_are_on_the_commands_and_foreign_ones_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer.main

    from overfeat_edge.commands import app, main

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    flags = {o.flag for d in runtime.descriptors() for o in d.options}
    for command, want in (("detect", flags), ("run", flags), ("demo", flags), ("bench", flags)):
        params = {opt for p in commands[command].params for opt in p.opts}
        assert want | {"--precision", "--threads"} <= params, command
    image = str(ROOT / "overfeat_edge" / "assets" / "mtcnn-face" / "sample.jpg")
    args = ["detect", image, "--model", "mtcnn-face", "--backend", "onnxruntime", "--out", str(tmp_path)]
    assert main([*args, "--ov-device", "CPU"]) != 0
    assert "--ov-device does not apply to --backend onnxruntime" in capsys.readouterr().err
    assert main([*args, "--precision", "bf16"]) != 0
    assert "--backend onnxruntime runs --precision fp32 or fp16 or int8, not bf16" in capsys.readouterr().err


def test_tensorrt_finds_a_stages_engine_where_build_writes_it(tmp_path: Path) -> None:
    find = runtime.descriptor("tensorrt").stage_model
    assert find is not None and runtime.descriptor("onnxruntime").stage_model is None  # ONNX: the stage's file
    assert find(str(tmp_path / "fp16-480x640-1a2b3c4d.engine"), "rnet") == str(
        tmp_path / "fp16-480x640-1a2b3c4d.rnet.engine"
    )
