"""Repair a copy of NVIDIA's ``tensorrt-stubs`` so that it parses, for mypy.

The generated ``.pyi`` files do not all parse: some parameters without a default follow ones
with a default (``..., scale: Weights = None, channel_axis: int)``), and some parameters are
named after Python keywords (``in``). The repair touches only those ``def`` lines: later
parameters get ``= ...``, keyword names a trailing underscore. Nothing else changes.
"""

from __future__ import annotations

import ast
import keyword
import re
import shutil
from pathlib import Path

from overfeat_edge.pycompat import zip_strict

_DEF = re.compile(r"^(\s*def \w+\()(.*)(\)\s*(?:->.*)?:.*)$")


def _split_params(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def repair_line(line: str) -> str:
    m = _DEF.match(line)
    if not m:
        return line
    params, seen_default = [], False
    for p in _split_params(m[2]):
        s = p.strip()
        name = re.split(r"[:=]", s, maxsplit=1)[0].strip().lstrip("*")
        if keyword.iskeyword(name):
            s = s.replace(name, name + "_", 1)
        if "=" in s:
            seen_default = True
        elif seen_default and not s.startswith("*") and s != "/":
            s += " = ..."
        params.append(s)
    return f"{m[1]}{', '.join(params)}{m[3]}"


def repaired_copy(src_root: Path, dst_root: Path, packages: tuple[str, ...] = ("tensorrt", "tensorrt_bindings")) -> int:
    """Copy the stub packages to ``dst_root`` with unparsable ``def`` lines repaired; returns lines changed."""
    changed = 0
    for pkg in packages:
        shutil.copytree(src_root / pkg, dst_root / pkg, dirs_exist_ok=True)
        for pyi in (dst_root / pkg).rglob("*.pyi"):
            lines = pyi.read_text().splitlines()
            fixed = [repair_line(x) for x in lines]
            changed += sum(a != b for a, b in zip_strict(lines, fixed))
            text = "\n".join(fixed) + "\n"
            ast.parse(text)  # must parse now
            pyi.write_text(text)
    return changed
