"""A real tritonserver on 127.0.0.1 (tests/triton/server.py), serving a repository that export wrote."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.triton.server import Server, missing

FOREIGN = "foreign"  # a served model whose input is not ours
NO_SPEC = "no-spec"  # one of ours with the spec taken out of its config


def write_repository(repo: Path, models: tuple[str, ...]) -> Path:
    from overfeat_edge.triton.repository import write_repository as write

    for m in models:
        write(m, repo, backend="python", max_batch=8)
    return repo


def add_bad_models(repo: Path, scratch: Path) -> None:
    """Two models the server loads but our backend must refuse, edited from a good one's config."""
    write_repository(scratch, ("overfeat-mini-shapes",))
    for name, edit in (
        (FOREIGN, lambda t: t.replace('name: "input"', 'name: "images"')),
        (NO_SPEC, lambda t: re.sub(r'parameters \{ key: "overfeat_edge.spec".*\n', "", t)),
    ):
        src = scratch / "overfeat-mini-shapes"
        dst = repo / name
        (dst / "1").mkdir(parents=True)
        for f in ("model.py", "model.onnx"):
            (dst / "1" / f).write_bytes((src / "1" / f).read_bytes())
        text = edit((src / "config.pbtxt").read_text()).replace('name: "overfeat-mini-shapes"', f'name: "{name}"')
        (dst / "config.pbtxt").write_text(text)


def start(repo: Path, log: Path, args: tuple[str, ...] = ()) -> Server:
    why = missing()
    if why:
        pytest.skip(why)
    return Server(repo, log, args=args).start(timeout=180)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session: the shapes model, mtcnn-face's three networks and two bad models."""
    root = tmp_path_factory.mktemp("triton")
    repo = write_repository(root / "repo", ("overfeat-mini-shapes", "mtcnn-face"))
    add_bad_models(repo, root / "scratch")
    s = start(repo, root / "tritonserver.log")
    yield s
    s.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own (it gets stopped and started): the shapes model only."""
    s = start(write_repository(tmp_path / "repo", ("overfeat-mini-shapes",)), tmp_path / "tritonserver.log")
    yield s
    s.stop()


KEY, SECRET = "overfeat-key", "s3cret"  # the header Triton's restricted protocols require


@pytest.fixture
def locked_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose inference and model config need the header ``overfeat-key: s3cret``."""
    restrict = f"inference,model-config,shared-memory,model-repository,statistics:{KEY}={SECRET}"
    args = (f"--grpc-restricted-protocol={restrict}", f"--http-restricted-api={restrict}")
    s = start(write_repository(tmp_path / "repo", ("overfeat-mini-shapes",)), tmp_path / "tritonserver.log", args)
    yield s
    s.stop()
