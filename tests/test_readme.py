"""The README's main command runs as written (after its venv/install prefix)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    main_cmd, test_cmd = readme_commands()
    assert main_cmd.startswith("python3 -m venv .venv") and test_cmd.startswith("python3 -m venv .venv")
    assert test_cmd in (ROOT / ".ci" / "run").read_text()


def test_readme_main_command_runs(tmp_path: Path) -> None:
    main_cmd = readme_commands()[0]
    steps = [s.strip() for s in main_cmd.split("&&")]
    steps = [s for s in steps if s.startswith("overfeat-edge")]  # skip venv + pip install
    assert steps
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    for step in steps:
        r = subprocess.run(step, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{step}\n{r.stderr}"
    # the demo: an annotated MP4 and one JSON line per frame, with boxes found on the generated video
    out = tmp_path / "runs" / "demo"
    cap = cv2.VideoCapture(str(out / "demo.mp4"))
    frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert frames == len(records) > 0
    assert sum(len(r["detections"]) for r in records) >= len(records)  # four objects in every frame
