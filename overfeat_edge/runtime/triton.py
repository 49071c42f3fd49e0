"""[no torch] Triton backend: the network served by a Triton Inference Server (``--backend triton``).

``--model NAME`` is the model's name in the server's repository (``export --triton`` writes it) and
``--triton-url grpc://HOST:8001`` (or ``http://HOST:8000``; ``grpcs://``/``https://`` with TLS) the
server. The spec comes from the model's config (``parameters``), so the client needs no file. A
cascade's stages are served models of their own (``mtcnn-face-rnet``: :attr:`DESCRIPTOR.stage_model`).

Each pyramid level is one request; a frame's levels go out at once and are waited for together
(:meth:`TritonRunner.run_levels`); many streams of one process come batched by the loop, many
processes are batched by the server's dynamic batcher. Every request has a timeout; a server that
goes away is retried with backoff for ``triton_retry`` seconds (the stream loop meanwhile drops and
counts a live source's frames, and a file waits); a server that does not answer at start is one line.
With ``triton_shm`` the tensors go through system shared memory (:mod:`overfeat_edge.triton.shm`).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any, Dict, List, Optional

import numpy as np

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Runner
from overfeat_edge.runtime.descriptor import BackendDescriptor, BackendOption
from overfeat_edge.spec import ModelSpec
from overfeat_edge.triton import SPEC_PARAMETER, stage_model_name
from overfeat_edge.triton.client import Endpoint, away, first_line, headers, make_client, module, parse_url, send_all

TIMEOUT = 10.0  # seconds per request
RETRY = 30.0  # seconds a server that went away is waited for, with backoff, before the run stops
BACKOFF = (0.1, 2.0)  # first wait, longest wait


def _available() -> Optional[str]:
    if importlib.util.find_spec("tritonclient") is None:
        return "pip install 'overfeat-edge[triton]' (tritonclient[grpc,http])"
    return None


DESCRIPTOR = BackendDescriptor(
    name="triton",
    summary="a Triton Inference Server: --model is the served name, --triton-url the server",
    options=(
        BackendOption("triton_url", str, "grpc://HOST:8001 or http://HOST:8000 (grpcs/https: TLS).", "URL"),
        BackendOption("triton_timeout", float, f"seconds per request (default {TIMEOUT:g}).", "S"),
        BackendOption("triton_retry", float, f"seconds to wait for a server that went away ({RETRY:g}).", "S"),
        BackendOption("triton_shm", bool, "tensors through system shared memory (server on this host)."),
    ),
    cpu=False,
    spec_source="server",
    precisions=("fp32",),
    available=_available,
    stage_model=stage_model_name,
)


class TritonRunner(Runner):
    name = "triton"

    def __init__(self, model: str, ep: Endpoint, *, timeout: float, retry: float, shm: bool) -> None:
        self.model, self.ep, self.timeout, self.retry = model, ep, timeout, retry
        self.client = make_client(ep, timeout)
        self.headers = headers(ep.protocol)
        self.spec, self.output_names, self.max_batch = self._read_config()
        self.shm: Any = None
        if shm:
            from overfeat_edge.triton.shm import SharedMemory

            self.shm = SharedMemory(self.client, self.headers)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.ep.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout
        try:
            return fn(*args, headers=self.headers, **kwargs)
        except Exception as exc:  # tritonclient raises its own types and socket errors
            if away(exc):
                raise InputError(f"triton: no server answers at {self.ep} ({first_line(exc)})") from None
            raise ModelError(f"triton: {what} at {self.ep}: {first_line(exc)}") from None

    def _read_config(self) -> tuple[ModelSpec, List[str], int]:
        if not self._call("liveness", self.client.is_server_live):
            raise InputError(f"triton: the server at {self.ep} is not live")
        if not self._call(f"model {self.model!r}", self.client.is_model_ready, self.model):
            index = self._call("repository index", self.client.get_model_repository_index)
            names = sorted({m["name"] if isinstance(m, dict) else m.name for m in _models(index)})
            have = ", ".join(names) or "none"
            raise ModelError(f"triton: the server at {self.ep} has no model {self.model!r} ready (it has: {have})")
        config = _as_dict(self._call(f"model {self.model!r} config", self.client.get_model_config, self.model))
        inputs = [(i["name"], [int(d) for d in i.get("dims", [])]) for i in config.get("input", [])]
        outputs = [o["name"] for o in config.get("output", [])]
        if [n for n, _ in inputs] != [INPUT_NAME] or outputs[:2] != list(OUTPUT_NAMES):
            raise ModelError(
                f"triton: model {self.model!r} is not an overfeat-edge model: inputs {inputs}, outputs {outputs} "
                f"(expected input {INPUT_NAME!r} and outputs {', '.join(OUTPUT_NAMES)}; see export --triton)"
            )
        text = config.get("parameters", {}).get(SPEC_PARAMETER, {}).get("string_value")
        if not text:
            raise ModelError(
                f"triton: model {self.model!r} has no {SPEC_PARAMETER} parameter in its config; "
                "write its repository with 'overfeat-edge export --triton REPO'"
            )
        spec = ModelSpec.from_json(text, f"triton model {self.model!r}")
        max_batch = int(config.get("max_batch_size", 0))
        if max_batch < 1 or inputs[0][1] != [spec.arch.in_channels, -1, -1]:
            raise ModelError(
                f"triton: model {self.model!r} must batch (max_batch_size >= 1, got {max_batch}) and take dims "
                f"[{spec.arch.in_channels}, -1, -1] (got {inputs[0][1]})"
            )
        return spec, outputs, max_batch

    def _requests(self, batches: List[np.ndarray]) -> tuple[List[Any], List[Any]]:
        mod = module(self.ep)
        requests, readers = [], []
        for slot, b in enumerate(batches):
            if self.shm is not None:
                inputs, outputs, reader = self.shm.bind(mod, slot, b, self.output_names)
            else:
                inp = mod.InferInput(INPUT_NAME, list(b.shape), "FP32")
                inp.set_data_from_numpy(b)
                inputs, outputs = [inp], [mod.InferRequestedOutput(n) for n in self.output_names]
                reader = self._read
            requests.append((inputs, outputs))
            readers.append(reader)
        return requests, readers

    def _read(self, result: Any) -> Dict[str, np.ndarray]:
        return {n: result.as_numpy(n) for n in self.output_names}

    def _send(self, batches: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        """Every batch as one request, all at once; retried with backoff while the server is away."""
        deadline, wait, registered_again = time.monotonic() + self.retry, BACKOFF[0], False
        while True:
            try:
                requests, readers = self._requests(batches)
                results = send_all(self.client, self.ep, self.model, requests, self.timeout)
                return [read(r) for read, r in zip(readers, results)]
            except Exception as exc:  # tritonclient's exceptions and socket errors
                line = first_line(exc)
                if self.shm is not None and not away(exc) and "shared memory" in line.lower():
                    if registered_again:  # registered afresh and refused again: not a restart
                        raise ModelError(
                            f"--triton-shm: the server at {self.ep} cannot use this host's shared memory "
                            f"(is it on another host?): {line}"
                        ) from None
                    registered_again = True
                elif not away(exc):
                    raise ModelError(f"triton: model {self.model!r} at {self.ep}: {line}") from None
                if time.monotonic() + wait > deadline:
                    raise ModelError(
                        f"triton: the server at {self.ep} did not answer for {self.retry:g} s ({line})"
                    ) from None
                if self.shm is not None:
                    self.shm.forget()  # a restarted server has lost the registrations
                time.sleep(wait)
                wait = min(wait * 2, BACKOFF[1])

    def _chunks(self, batch: np.ndarray) -> List[np.ndarray]:
        x, step = self.check_input(batch), self.max_batch or len(batch)
        return [x[i : i + step] for i in range(0, len(x), step)]

    def run(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        return self.run_levels([batch])[0]

    def run_levels(self, batches: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        """One request per level (a batch above the server's max batch in several), all in flight at once."""
        chunks = [self._chunks(b) for b in batches]
        answers = iter(self._send([c for cs in chunks for c in cs]))
        out = []
        for cs in chunks:
            parts = [next(answers) for _ in cs]
            out.append({n: np.concatenate([p[n] for p in parts]) for n in self.output_names})
        return out

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.run(batch)
        return r["scores"], r["boxes"]

    def run_many(self, batches: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        return self.run_levels(batches)

    def infer_many(self, batches: List[np.ndarray]) -> List[tuple[np.ndarray, np.ndarray]]:
        return [(r["scores"], r["boxes"]) for r in self.run_levels(batches)]

    def close(self) -> None:
        """The shared-memory regions unregistered and removed (not in :meth:`deactivate`, which ends
        every frame's :meth:`Detector.forward`: the regions live from frame to frame)."""
        if self.shm is not None:
            self.shm.close()

    def describe(self) -> str:
        return f"triton {self.model} at {self.ep}{' (shared memory)' if self.shm is not None else ''}"


def _as_dict(config: Any) -> Dict[str, Any]:
    """A model config as a dict: gRPC's protobuf message or HTTP's JSON."""
    if isinstance(config, dict):
        return dict(config.get("config", config))
    from google.protobuf.json_format import MessageToDict

    return dict(MessageToDict(config.config, preserving_proto_field_name=True))


def _models(index: Any) -> List[Any]:
    return list(index) if isinstance(index, list) else list(getattr(index, "models", []))


def load(
    model: str,
    *,
    triton_url: Optional[str] = None,
    triton_timeout: float = TIMEOUT,
    triton_retry: float = RETRY,
    triton_shm: bool = False,
    precision: str = "fp32",
) -> TritonRunner:
    """``model`` served at ``triton_url``; one line (InputError/ModelError) for anything wrong."""
    if not triton_url:
        raise InputError("--backend triton needs --triton-url grpc://HOST:8001 (or http://HOST:8000)")
    if precision not in DESCRIPTOR.precisions:
        raise InputError(f"--precision {precision}: the triton backend serves the model as exported (fp32 only)")
    if not 0 < triton_timeout <= 3600 or not 0 <= triton_retry <= 86400:
        raise InputError("--triton-timeout must be in (0, 3600] s and --triton-retry in [0, 86400] s")
    missing = _available()
    if missing:
        raise InputError(f"--backend triton: tritonclient is not installed ({missing})")
    return TritonRunner(model, parse_url(triton_url), timeout=triton_timeout, retry=triton_retry, shm=triton_shm)
