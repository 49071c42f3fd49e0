"""``python -m tests.net.setup``: the interpreter the RTSP/RTP tests run their server in.

Debian's ``python3-gi`` (PyGObject, GStreamer's bindings) serves only Debian's own ``/usr/bin/python3``
and PyPI has no wheel for it, so the tests that need GStreamer start the server process from
``.venv-py-gst``: a venv made from that interpreter with ``--system-site-packages`` and the package's
runtime dependencies. Prints the interpreter, or why there is none (and the tests then skip with it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-py-gst"
SYSTEM_PYTHON = Path("/usr/bin/python3")
PROBE = "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0')"


def has_gi(python: str | Path) -> bool:
    return subprocess.run([str(python), "-c", PROBE], capture_output=True).returncode == 0


def main() -> int:
    if not SYSTEM_PYTHON.exists() or not has_gi(SYSTEM_PYTHON):
        print(f"no GStreamer for {SYSTEM_PYTHON}: apt install gir1.2-gst-rtsp-server-1.0 python3-gi", file=sys.stderr)
        return 1
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--system-site-packages", str(VENV)], check=True)
    import tomllib  # 3.11+: Debian's python3 runs this; the edge tests on 3.8/3.10 only import VENV, has_gi

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    subprocess.run([str(python), "-m", "pip", "install", "-q", *deps], check=True)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
