"""NVIDIA's real binding libraries, for checking our TensorRT and CUDA calls per version.

TensorRT itself cannot be installed here, but the ``tensorrt-*-bindings`` wheels on PyPI hold the
real pybind11 library of each version (about 1 MB; pybind11 keeps every class, method, property and
enum name as a NUL-terminated string), and the ``cuda-bindings`` wheels import without a GPU, so
their functions' signatures can be read. ``python -m tests.engine.bindings`` downloads them (no
dependencies) into ``.trt-bindings/`` and unpacks them, and Polygraphy's wheels (``polygraphy_wheels.py``);
the tests skip, saying so, where absent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".trt-bindings"

TENSORRT = {  # TensorRT version -> the PyPI wheel of its Python binding library
    "8.6.1": "tensorrt-bindings==8.6.1",  # JetPack 5.1's generation
    "10.3.0": "tensorrt-cu12-bindings==10.3.0",  # JetPack 6
    "10.13.0.35": "tensorrt-cu11-bindings==10.13.0.35",
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",
}
CUDA = {"11.8.7": "cuda-bindings==11.8.7", "12.9.0": "cuda-bindings==12.9.0", "13.0.0": "cuda-bindings==13.0.0"}


def folder(kind: str, version: str) -> Path:
    return HOME / f"{kind}-{version}"


def trt_library(version: str) -> Path | None:
    found = sorted(folder("tensorrt", version).glob("tensorrt_bindings/tensorrt*.so"))
    return found[0] if found else None


def fetch() -> int:
    """Download and unpack every wheel not yet here; returns how many are missing afterwards."""
    missing = 0
    for kind, table in (("tensorrt", TENSORRT), ("cuda", CUDA)):
        for version, requirement in table.items():
            dest = folder(kind, version)
            if dest.is_dir() and any(dest.iterdir()):
                continue
            wheels = HOME / "wheels"
            wheels.mkdir(parents=True, exist_ok=True)
            pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
            r = subprocess.run(
                [*pip, "-d", str(wheels), requirement],
                capture_output=True,
                text=True,
            )
            name = requirement.split("==")[0].replace("-", "_")
            got = sorted(wheels.glob(f"{name}-{version}-*.whl"))
            if r.returncode != 0 or not got:
                print(f"bindings: could not download {requirement}: {r.stderr.strip().splitlines()[-1:]}")
                missing += 1
                continue
            tmp = dest.with_name(dest.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            with zipfile.ZipFile(got[0]) as z:
                z.extractall(tmp)
            tmp.rename(dest)
            got[0].unlink()
    return missing


if __name__ == "__main__":
    from tests.engine import polygraphy_wheels

    n = fetch()
    print(f"bindings: {len(TENSORRT) + len(CUDA) - n} of {len(TENSORRT) + len(CUDA)} in {HOME}")
    m = polygraphy_wheels.fetch()  # Polygraphy's source per pinned version, read by test_polygraphy_pin.py
    print(f"polygraphy wheels: {len(polygraphy_wheels.VERSIONS) - m} of {len(polygraphy_wheels.VERSIONS)}")
