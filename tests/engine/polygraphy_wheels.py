"""Polygraphy's wheels of the versions we pin against, for reading their source per version.

``python -m tests.engine.polygraphy_wheels`` downloads them (``pip download --no-deps``) into
``.polygraphy-wheels/`` (gitignored); the tests that read them skip, saying so, where absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".polygraphy-wheels"
VERSIONS = ("0.49.9", "0.50.3", "0.53.6")  # the first with progress_monitor, the first TensorRT-11-safe, current


def wheel(version: str) -> Path | None:
    found = sorted(HOME.glob(f"polygraphy-{version}-*.whl"))
    return found[0] if found else None


def fetch() -> int:
    """Download every wheel not yet here; returns how many are missing afterwards."""
    HOME.mkdir(exist_ok=True)
    missing = 0
    for v in VERSIONS:
        if wheel(v) is not None:
            continue
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(HOME), f"polygraphy=={v}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or wheel(v) is None:
            print(f"polygraphy wheels: could not download {v}: {r.stderr.strip().splitlines()[-1:]}")
            missing += 1
    return missing


if __name__ == "__main__":
    n = fetch()
    print(f"polygraphy wheels: {len(VERSIONS) - n} of {len(VERSIONS)} in {HOME}")
