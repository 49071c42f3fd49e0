"""The triton backend's own input checks, before any server is asked (no server needed)."""

from __future__ import annotations

import pytest

from overfeat_edge.errors import InputError
from overfeat_edge.runtime import BACKENDS, load_runner
from overfeat_edge.runtime.triton import DESCRIPTOR
from overfeat_edge.triton.client import Endpoint, headers, parse_url


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("grpc://10.0.0.7:8001", Endpoint("grpc", False, "10.0.0.7", 8001)),
        ("grpc://gpu-node-1", Endpoint("grpc", False, "gpu-node-1", 8001)),
        ("http://gpu-node-1", Endpoint("http", False, "gpu-node-1", 8000)),
        ("grpcs://triton.example:443/", Endpoint("grpc", True, "triton.example", 443)),
        ("https://[::1]:8443", Endpoint("http", True, "::1", 8443)),
    ],
)
def test_urls(url: str, want: Endpoint) -> None:
    assert parse_url(url) == want


@pytest.mark.parametrize("url", ["ftp://h:1", "grpc://", "h:8001", "grpc://h:8001/v2/models", "grpc://h:99999"])
def test_bad_urls_are_one_line(url: str) -> None:
    with pytest.raises(InputError, match="--triton-url"):
        parse_url(url)


def test_headers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERFEAT_EDGE_TRITON_TOKEN", "t0k")
    monkeypatch.setenv("OVERFEAT_EDGE_TRITON_KEY", "site-key=abc")
    monkeypatch.setenv("OVERFEAT_EDGE_TRITON_HEADERS", "X-Site = 7, x-zone=b")
    assert headers("grpc") == {
        "authorization": "Bearer t0k",
        "triton-grpc-protocol-site-key": "abc",
        "x-site": "7",
        "x-zone": "b",
    }
    assert headers("http")["site-key"] == "abc"
    monkeypatch.setenv("OVERFEAT_EDGE_TRITON_HEADERS", "novalue")
    with pytest.raises(InputError, match="OVERFEAT_EDGE_TRITON_HEADERS must be key=value"):
        headers("grpc")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "--backend triton needs --triton-url"),
        ({"triton_url": "grpc://127.0.0.1:1", "precision": "fp16"}, "fp32 only"),
        ({"triton_url": "grpc://127.0.0.1:1", "triton_timeout": 0.0}, "--triton-timeout must be"),
        ({"triton_url": "grpc://127.0.0.1:1", "threads": 2}, "--threads does not apply to --backend triton"),
    ],
)
def test_options_are_checked_before_any_request(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_runner("triton", "overfeat-mini-shapes", **options)


def test_descriptor() -> None:
    assert "triton" in BACKENDS
    assert DESCRIPTOR.spec_source == "server" and not DESCRIPTOR.cpu
    assert DESCRIPTOR.stage_model is not None and DESCRIPTOR.stage_model("mtcnn-face", "rnet.onnx") == "mtcnn-face-rnet"
    assert DESCRIPTOR.option_names() == ("triton_url", "triton_timeout", "triton_retry", "triton_shm")
