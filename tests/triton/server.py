"""A real Triton Inference Server for the tests, from the ``nvidia-pytriton`` wheel, in a venv of its own.

``python -m tests.triton.server --install`` (what ``.ci/run`` runs) makes ``.venv-triton`` beside the
repository: ``nvidia-pytriton`` (it bundles ``tritonserver`` 2.51 and its Python backend), numpy 1.x
(the wheel pins ``numpy<2``; the project's venv keeps numpy 2) and ONNX Runtime for the Python-backend
models that ``export --triton-backend python`` writes. :class:`Server` starts ``tritonserver`` on
127.0.0.1 with free ports and stops it by its PID.

What the server needs (found here, see issue 25): the Python backend's stub links the interpreter's
``libpython3.X.so``, so ``LD_LIBRARY_PATH`` holds the server venv's interpreter's own ``LIBDIR`` and the
wheel's ``nvidia_pytriton.libs``, and the server venv's ``bin`` comes first on ``PATH`` (else loading
fails with ``'_thread.RLock' object has no attribute '_recursion_count'``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-triton"
PYTRITON = "nvidia-pytriton==0.7.0"
PACKAGES = (PYTRITON, "numpy<2", "onnxruntime")


def _python() -> Path:
    return VENV / "bin" / "python"


def _query(code: str) -> str:
    return subprocess.run([str(_python()), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def layout() -> dict[str, Path]:
    """Where the server venv keeps the server binary, its backends, its libraries and its libpython."""
    site = Path(_query("import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    version = _query("import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')")
    server = site / "pytriton" / "tritonserver"
    return {
        "binary": server / "bin" / "tritonserver",
        "backends": server / "backends",
        "stub": server / "python_backend_stubs" / version / "triton_python_backend_stub",
        "libs": site / "nvidia_pytriton.libs",
        "libdir": Path(_query("import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")),
    }


def missing() -> str | None:
    """None where the server can start here, else why not (the tests' skip reason)."""
    if not _python().is_file():
        return f"no tritonserver: run 'python -m tests.triton.server --install' (makes {VENV.name})"
    try:
        paths = layout()
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"{VENV.name} is broken ({type(exc).__name__}); run 'python -m tests.triton.server --install' again"
    for path in (paths["binary"], paths["backends"] / "python" / paths["stub"].name):
        if not path.is_file():
            return f"{VENV.name} has no {path.name}; run 'python -m tests.triton.server --install' again"
    return None


def install() -> None:
    """Make ``.venv-triton`` with the server (idempotent: a complete venv is left as it is)."""
    if missing() is None:
        print(f"{VENV.name}: tritonserver is installed")
        return
    if not _python().is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(_python()), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    paths = layout()
    # the Python backend runs the stub beside its library; the wheel ships one per Python version
    shutil.copy2(paths["stub"], paths["backends"] / "python" / "triton_python_backend_stub")
    print(f"{VENV.name}: installed {PYTRITON} ({paths['binary']})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``tritonserver`` on 127.0.0.1 serving ``repository``; :meth:`start` waits until it is ready."""

    def __init__(self, repository: Path, log: Path, *, explicit: bool = False, args: tuple[str, ...] = ()) -> None:
        self.repository, self.log, self.explicit, self.args = repository, log, explicit, args
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.shm_prefix = f"overfeat-edge-test-{os.getpid()}-{self.grpc_port}-"  # the Python backend's regions

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        paths = layout()
        cmd = [str(paths["binary"]), "--model-repository", str(self.repository)]
        cmd += ["--backend-directory", str(paths["backends"]), "--exit-on-error=false"]
        for kind, port in (("http", self.http_port), ("grpc", self.grpc_port), ("metrics", self.metrics_port)):
            cmd += [f"--{kind}-address", "127.0.0.1", f"--{kind}-port", str(port)]
        cmd += [f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}"]
        if self.explicit:
            cmd += ["--model-control-mode=explicit"]
        return cmd + list(self.args)

    def environment(self) -> dict[str, str]:
        paths = layout()
        env = dict(os.environ)
        libs = [str(paths["libdir"]), str(paths["libs"]), env.get("LD_LIBRARY_PATH", "")]
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
        env["PATH"] = os.pathsep.join([str(VENV / "bin"), env.get("PATH", "")])
        env.pop("PYTHONPATH", None)  # the models run in the server venv, not the project's
        return env

    def start(self, timeout: float = 60.0) -> Server:
        out = self.log.open("ab")
        self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.process.returncode}); see {self.log}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"tritonserver not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM to our PID (Triton finishes in-flight requests), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """The server gone at once (a crash, a node lost): SIGKILL, and the regions it left removed.

        (SIGTERM is graceful: Triton serves on while requests keep coming, for up to 30 s.)"""
        if self.process is None or self.process.poll() is not None:
            return
        import psutil

        stubs = psutil.Process(self.process.pid).children(recursive=True)  # the Python backend's stubs
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for stub in stubs:  # orphaned by the kill, they would linger: ended by their PIDs too
            with contextlib.suppress(psutil.NoSuchProcess):
                stub.kill()
        psutil.wait_procs(stubs, timeout=10)
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            region.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help=f"make {VENV.name} with {PYTRITON}")
    args = parser.parse_args()
    if args.install:
        install()
    reason = missing()
    print(reason or "tritonserver: ready to start")
    if args.install and reason:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
