"""[no torch] Talking to a Triton server: the URL, credentials from the environment, one protocol table.

``grpc://HOST:8001`` and ``http://HOST:8000`` (``grpcs://`` and ``https://`` with TLS; a CA file in
``OVERFEAT_EDGE_TRITON_CA`` where the server's certificate is not signed by a system CA). Credentials
come from the environment only, never the command line: ``OVERFEAT_EDGE_TRITON_TOKEN`` is sent as
``Authorization: Bearer <token>`` (a gateway, KServe's ingress), ``OVERFEAT_EDGE_TRITON_KEY``
(``KEY=VALUE``) as the key Triton's ``--grpc-restricted-protocol=inference:KEY=VALUE`` and
``--http-restricted-api=inference:KEY=VALUE`` require (over gRPC Triton reads it as
``triton-grpc-protocol-KEY``), and ``OVERFEAT_EDGE_TRITON_HEADERS`` (``key=value[,key=value]``) as
headers of their own, sent as given.

tritonclient's HTTP client is not thread-safe (gevent): each runner holds its own client and calls it
from one thread; levels go out concurrently through its ``async_infer``.
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from overfeat_edge.errors import InputError
from overfeat_edge.lazy import require

TOKEN_ENV = "OVERFEAT_EDGE_TRITON_TOKEN"
HEADERS_ENV = "OVERFEAT_EDGE_TRITON_HEADERS"
KEY_ENV = "OVERFEAT_EDGE_TRITON_KEY"
GRPC_KEY_PREFIX = "triton-grpc-protocol-"  # how Triton reads a restricted protocol's key from gRPC metadata
CA_ENV = "OVERFEAT_EDGE_TRITON_CA"
SCHEMES = {"grpc": ("grpc", False), "grpcs": ("grpc", True), "http": ("http", False), "https": ("http", True)}
PORTS = {"grpc": 8001, "http": 8000}


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # grpc or http
    tls: bool
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}{'s' if self.tls else ''}://{self.address}"


def parse_url(url: str) -> Endpoint:
    """``grpc://HOST[:PORT]`` (8001), ``http://HOST[:PORT]`` (8000), ``grpcs://``, ``https://``."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname or parts.path not in ("", "/"):
        raise InputError(f"--triton-url must be grpc://HOST:PORT, http://HOST:PORT, grpcs:// or https://, got {url!r}")
    protocol, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or PORTS[protocol]
    except ValueError:
        raise InputError(f"--triton-url {url!r}: the port is not a number from 1 to 65535") from None
    return Endpoint(protocol, tls, parts.hostname, port)


def _pairs(env: str) -> List[Tuple[str, str]]:
    out = []
    for pair in filter(None, (p.strip() for p in os.environ.get(env, "").split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{env} must be key=value[,key=value], got an entry {key!r} without '='")
        out.append((key.strip().lower(), value.strip()))
    return out


def headers(protocol: str = "grpc") -> Dict[str, str]:
    """The request headers (gRPC metadata) the environment gives: a bearer token, Triton's key, others."""
    out: Dict[str, str] = {}
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        out["authorization"] = f"Bearer {token}"
    prefix = GRPC_KEY_PREFIX if protocol == "grpc" else ""
    out.update((prefix + k, v) for k, v in _pairs(KEY_ENV))
    out.update(_pairs(HEADERS_ENV))
    return out


def _ca() -> Optional[str]:
    ca = os.environ.get(CA_ENV)
    if ca and not os.path.isfile(ca):
        raise InputError(f"{CA_ENV}={ca}: no such file")
    return ca


def _grpc_client(ep: Endpoint) -> Any:
    grpc = require("tritonclient.grpc", "--backend triton")
    ca = _ca()
    root = Path(ca).read_bytes() if ca else None
    return grpc.InferenceServerClient(ep.address, ssl=ep.tls, root_certificates=root)


def _http_client(ep: Endpoint, timeout: float, concurrency: int) -> Any:
    http = require("tritonclient.http", "--backend triton")
    ca = _ca()
    factory: Optional[Callable[[], ssl.SSLContext]] = (lambda: ssl.create_default_context(cafile=ca)) if ca else None
    return http.InferenceServerClient(
        ep.address,
        concurrency=concurrency,
        connection_timeout=timeout,
        network_timeout=timeout,
        ssl=ep.tls,
        ssl_context_factory=factory,
    )


def make_client(ep: Endpoint, timeout: float, concurrency: int = 8) -> Any:
    return _grpc_client(ep) if ep.protocol == "grpc" else _http_client(ep, timeout, concurrency)


def module(ep: Endpoint) -> Any:
    """``tritonclient.grpc`` or ``tritonclient.http`` (InferInput, InferRequestedOutput...)."""
    return require(f"tritonclient.{ep.protocol}", "--backend triton")


Request = Tuple[List[Any], List[Any]]  # (InferInput list, InferRequestedOutput list)


def send_all(client: Any, ep: Endpoint, model: str, requests: List[Request], timeout: float) -> List[Any]:
    """Every request at once (one per pyramid level), then wait for all: the results in order.

    Raises the first failure (``InferenceServerException`` or a socket error) after all have ended."""
    hdrs = headers(ep.protocol)
    if ep.protocol == "http":
        pending = [
            client.async_infer(model, i, outputs=o, headers=hdrs, timeout=int(timeout * 1e6)) for i, o in requests
        ]
        return [p.get_result() for p in pending]
    results: List[Any] = [None] * len(requests)
    errors: List[Any] = [None] * len(requests)
    done = threading.Semaphore(0)

    def finished(k: int) -> Callable[[Any, Any], None]:
        def callback(result: Any, error: Any) -> None:
            results[k], errors[k] = result, error
            done.release()

        return callback

    for k, (inputs, outputs) in enumerate(requests):
        client.async_infer(model, inputs, finished(k), outputs=outputs, client_timeout=timeout, headers=hdrs)
    for _ in requests:
        done.acquire()
    for e in errors:
        if e is not None:
            raise e
    return results


def first_line(exc: BaseException) -> str:
    """A server or socket error as one short line."""
    text = (exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)) or type(exc).__name__
    return " ".join(str(text).split())[:240]


def away(exc: BaseException) -> bool:
    """True for a server that is not answering (refused, reset, unavailable, timed out): worth a retry."""
    if isinstance(exc, (OSError, EOFError)):
        return True
    if "restricted" in first_line(exc).lower():  # the server answered: a missing key is not an outage
        return False
    status = str(getattr(exc, "status", lambda: "")() or "")
    text = first_line(exc).lower()
    marks = ("unavailable", "deadline", "connection", "refused", "reset", "timed out", "broken pipe", "socket closed")
    return "UNAVAILABLE" in status or "DEADLINE" in status or any(m in text for m in marks)
