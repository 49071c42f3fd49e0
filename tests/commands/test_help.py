"""Help a newcomer reads: every option described, in a panel, with a word for its value, at 80 columns.

Bounds chosen here: at COLUMNS=80 no line is wider than 80 and a command's help is at most 60 lines
(`run`, with its 30 options, at most 90; 114 before the panels and folded defaults).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import typer

from overfeat_edge.commands import app
from overfeat_edge.commands.common import PANELS

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["demo"],
    ["backends"],
    ["models"],
    ["export"],
    ["import-weights"],
    ["detect"],
    ["build"],
    ["doctor"],
    ["bench"],
    ["calibrate"],
    ["run"],
    ["train"],
    ["eval"],
    ["data", "synth"],
]
PYTHON_TYPES = re.compile(r"<(str|int|float|bool|path|list\[[^]]*\])>")


def cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TERMINAL_WIDTH", "FORCE_COLOR")}
    env.update(COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, timeout=120, env=env
    )


def commands() -> Iterator[tuple[str, Any]]:
    """(name, click command) of every command, sub-apps' too, as the app builds them."""
    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        for sub, leaf in getattr(cmd, "commands", {name: cmd}).items():
            yield (name if sub == name else f"{name} {sub}"), leaf


def test_the_list_above_has_every_command():
    assert sorted(" ".join(c) for c in COMMANDS) == sorted(name for name, _ in commands())


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda c: "-".join(c))
def test_help_reads_well_at_80_columns(argv: list[str]):
    r = cli(*argv, "--help")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= (90 if argv == ["run"] else 60), len(lines)
    assert not PYTHON_TYPES.search(r.stdout), PYTHON_TYPES.search(r.stdout)
    assert f"Example: overfeat-edge {' '.join(argv)} " in r.stdout
    assert r.stdout.index("Usage:") < 3 * 81  # the usage line first: nothing printed before it


@pytest.mark.parametrize("name, cmd", list(commands()), ids=[n for n, _ in commands()])
def test_every_option_is_described_and_grouped(name: str, cmd: Any):
    for param in cmd.params:
        assert (param.help or "").strip(), f"{name}: {param.name} has no help"
        if param.param_type_name == "option":
            assert param.rich_help_panel in PANELS, f"{name}: --{param.name} is in no panel"
            assert param.metavar is not None, f"{name}: --{param.name} has no word for its value"


def test_the_app_help_and_version():
    r = cli("--help")
    assert r.returncode == 0 and not PYTHON_TYPES.search(r.stdout)
    assert "--version" in r.stdout
    r = cli("--version")
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert version is not None
    assert (r.returncode, r.stdout, r.stderr) == (0, f"overfeat-edge {version.group(1)}\n", "")
