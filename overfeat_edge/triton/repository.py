"""[no torch] A Triton model repository from our ONNX files: ``REPO/<name>/config.pbtxt`` + ``REPO/<name>/1/``.

Each model is data, generated from its spec: input ``input`` (FP32, dims ``[3, -1, -1]``: channels,
height, width; the batch is Triton's, up to ``max_batch_size``), every output of the ONNX with its
channel count (``scores``, ``boxes``, and heads such as ``regression`` or ``landmarks``), the dynamic
batcher with a queue delay, ``instance_group``, and the spec JSON in ``parameters`` (key
``overfeat_edge.spec``) so that a client needs nothing but the server. A cascade (``mtcnn-face``)
writes its detector and each crop stage as models of their own (``mtcnn-face``, ``mtcnn-face-rnet``,
``mtcnn-face-onet``).

Backends (:data:`BACKENDS`): ``onnxruntime`` and ``openvino`` (Triton's own backends, the ONNX as is),
``python`` (a Python-backend ``model.py`` running the ONNX on ONNX Runtime: the one tested here on a
real server) and ``tensorrt`` (``platform: "tensorrt_plan"``: the plan is GPU- and TensorRT-specific,
so it is built on the serving machine with ``overfeat-edge build`` and copied in as ``1/model.plan``;
written, not run here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Tuple

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.pipeline.cascade import cascade_stages
from overfeat_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, read_spec, resolve_onnx
from overfeat_edge.triton import RUNTIME_PARAMETER, SPEC_PARAMETER, stage_model_name

VERSION = "1"
QUEUE_DELAY_US = 1000  # how long the batcher waits for more requests of one shape (edit in config.pbtxt)
MAX_BATCH = 8
MAX_INSTANCES = 64
PYTHON_MODEL = Path(__file__).resolve().with_name("python_model.py")


@dataclass(frozen=True)
class Backend:
    """How one Triton backend is named in the config, what it serves and where."""

    header: str  # 'backend: "..."' or 'platform: "..."'
    file: str  # the model file in the version folder
    kind: str  # instance_group kind
    copies_onnx: bool = True  # False: the file is built on the server (a TensorRT plan)


BACKENDS = {
    "onnxruntime": Backend('backend: "onnxruntime"', "model.onnx", "KIND_AUTO"),
    "openvino": Backend('backend: "openvino"\ndefault_model_filename: "model.onnx"', "model.onnx", "KIND_CPU"),
    "python": Backend('backend: "python"', "model.onnx", "KIND_CPU"),
    "tensorrt": Backend('platform: "tensorrt_plan"', "model.plan", "KIND_GPU", copies_onnx=False),
}


@dataclass(frozen=True)
class Served:
    """One model of the repository: its name, ONNX, spec JSON and outputs (name, channels)."""

    name: str
    onnx: Path
    spec_json: str
    outputs: Tuple[Tuple[str, int], ...]
    in_channels: int


def _outputs(onnx: Path) -> Tuple[Tuple[str, int], ...]:
    """Every output of the ONNX with its channel count, read by ONNX Runtime (our graphs: N, C, H, W)."""
    from overfeat_edge.runtime.onnxruntime import open_session

    session = open_session(onnx, threads=1)
    if [i.name for i in session.get_inputs()] != [INPUT_NAME]:
        raise ModelError(f"{onnx}: expected one input {INPUT_NAME!r}, got {[i.name for i in session.get_inputs()]}")
    outs = tuple((o.name, o.shape[1]) for o in session.get_outputs())
    if [n for n, _ in outs[:2]] != list(OUTPUT_NAMES) or not all(isinstance(c, int) for _, c in outs):
        raise ModelError(f"{onnx}: expected outputs {OUTPUT_NAMES} with fixed channels, got {outs}")
    return outs


def served_models(model: str, name: str | None = None) -> List[Served]:
    """The detector (a shipped name or an ONNX file) and, for a cascade, each stage beside it."""
    onnx = resolve_onnx(model)
    spec = read_spec(onnx)
    base = name or (model if Path(model).suffix.lower() != ".onnx" else onnx.stem)
    if not base or "/" in base or base.startswith("."):
        raise InputError(f"a Triton model name is a plain folder name, got {base!r}")
    out = [Served(base, onnx, spec.to_json(), _outputs(onnx), spec.arch.in_channels)]
    for st in cascade_stages(spec.extra, str(onnx)):
        path = onnx.parent / st.file
        if not path.is_file():
            raise ModelError(f"the cascade's {st.name} stage is missing: {path}")
        stage = read_spec(path)
        out.append(Served(stage_model_name(base, st.file), path, stage.to_json(), _outputs(path), 3))
    return out


def quote(text: str) -> str:
    """A protobuf text-format string literal (C escapes; UTF-8 bytes above ASCII as octal)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def config_text(model: Served, backend: str, *, max_batch: int, instances: int, queue_delay_us: int) -> str:
    """The model's ``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``)."""
    b = BACKENDS[backend]
    outputs = ",\n".join(f'  {{ name: "{n}" data_type: TYPE_FP32 dims: [ {c}, -1, -1 ] }}' for n, c in model.outputs)
    params = [(SPEC_PARAMETER, model.spec_json)]
    if backend == "python":
        params.append((RUNTIME_PARAMETER, "onnxruntime"))
    parameters = "\n".join(f"parameters {{ key: {quote(k)} value {{ string_value: {quote(v)} }} }}" for k, v in params)
    return (
        f'name: "{model.name}"\n{b.header}\nmax_batch_size: {max_batch}\n'
        f'input [\n  {{ name: "{INPUT_NAME}" data_type: TYPE_FP32 dims: [ {model.in_channels}, -1, -1 ] }}\n]\n'
        f"output [\n{outputs}\n]\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
        f"instance_group [ {{ count: {instances} kind: {b.kind} }} ]\n"
        f"{parameters}\n"
    )


@contextlib.contextmanager
def _model_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target``, put in its place (the old one removed) when complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_options(backend: str, max_batch: int, instances: int, queue_delay_us: int) -> None:
    if backend not in BACKENDS:
        raise InputError(f"--triton-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    # the server accepts max_batch_size 0 with dynamic_batching and then never batches: refuse it here
    if not 1 <= max_batch <= 1024:
        raise InputError(f"--max-batch must be between 1 and 1024 (the server's dynamic batch), got {max_batch}")
    if not 1 <= instances <= MAX_INSTANCES:
        raise InputError(f"--instances must be between 1 and {MAX_INSTANCES}, got {instances}")
    if not 0 <= queue_delay_us <= 10_000_000:
        raise InputError(f"the queue delay must be between 0 and 10 s, got {queue_delay_us} us")


def write_repository(
    model: str,
    repo: Path,
    *,
    backend: str = "onnxruntime",
    max_batch: int = MAX_BATCH,
    instances: int = 1,
    queue_delay_us: int = QUEUE_DELAY_US,
    name: str | None = None,
) -> List[Path]:
    """Write every model of ``model`` (a cascade: each stage too) into ``repo``; the folders written."""
    check_options(backend, max_batch, instances, queue_delay_us)
    if repo.exists() and not repo.is_dir():
        raise InputError(f"--triton {repo} is a file; a model repository is a folder")
    b, written = BACKENDS[backend], []
    for m in served_models(model, name):
        target = repo / m.name
        with _model_folder(target) as tmp:
            (tmp / VERSION).mkdir()
            if b.copies_onnx:
                shutil.copyfile(m.onnx, tmp / VERSION / b.file)
            if backend == "python":
                shutil.copyfile(PYTHON_MODEL, tmp / VERSION / "model.py")
            text = config_text(m, backend, max_batch=max_batch, instances=instances, queue_delay_us=queue_delay_us)
            (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
        written.append(target)
    return written
