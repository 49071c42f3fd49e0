"""Write one section of BENCHMARKS.md, between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_flags() -> str:
    """The CPU flags that decide what a CPU runtime can use (INT8 VNNI/AMX, bf16), as /proc/cpuinfo says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return " ".join(f for f in FLAGS if f in have) or "none of " + "/".join(FLAGS)
    except OSError:
        pass
    return "unknown"


def machine() -> str:
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu_name()} (flags: {cpu_flags()}), {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def today() -> str:
    return datetime.date.today().isoformat()


def header(title: str, command: str, machine_note: str = "", host: str = "", date: str = "") -> list[str]:
    """A section's first lines: its title, then the machine (``host``, default this CPU), the command
    (markdown) and the date (default today)."""
    note = f", {machine_note}" if machine_note else ""
    return [
        f"## {title}",
        "",
        f"- **Machine**: {host or machine()}{note}",
        f"- **Command**: {command}",
        f"- **Date**: {date or today()}",
    ]


def write_section(name: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section ``name`` in BENCHMARKS.md (appended if absent); written atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.is_file() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)
