"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no port
to find, standard library only): open a page and evaluate JavaScript in it while it runs."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def high(fds: Tuple[int, int]) -> Tuple[int, int]:
    """The pipe's ends moved to fds 10 and up, so that putting them on 3 and 4 clobbers neither."""
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds)
    for fd in fds:
        os.close(fd)
    return moved[0], moved[1]


class Browser:
    """``with Browser(url, profile, prefix) as b: b.evaluate("1 + 1")``: Chromium (started through
    ``prefix``, e.g. ``ip netns exec NAME``) on ``url``; the protocol's messages are JSON ended by NUL,
    written to its fd 3 and read from its fd 4."""

    def __init__(self, url: str, profile: Path, prefix: Optional[List[str]] = None) -> None:
        assert CHROMIUM is not None
        to_chrome, self._out = high(os.pipe())
        self._in, from_chrome = high(os.pipe())
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", f"--user-data-dir={profile}"]
        # bash puts the pipe ends on the fds Chromium reads (3) and writes (4); the tests run as root: no sandbox
        shell = [*(prefix or []), "bash", "-c", f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}', CHROMIUM]
        self.log = profile / "chromium.log"
        with self.log.open("wb") as log:  # a file, not a pipe: its chatter never fills a pipe and stalls it
            self.p = subprocess.Popen([*shell, *flags, url], pass_fds=(to_chrome, from_chrome), stdout=log, stderr=log)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buf, self._id, self._session = b"", 0, ""

    def __enter__(self) -> Browser:
        page = self._wait_for_page(timeout=60)
        self._session = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.p.terminate()
        self.p.communicate(timeout=30)
        os.close(self._out)
        os.close(self._in)

    def _wait_for_page(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages:
                return str(pages[0]["targetId"])
            time.sleep(0.2)
        raise AssertionError("Chromium opened no page")

    def call(self, method: str, params: Optional[Dict[str, Any]] = None, timeout: float = 60) -> Dict[str, Any]:
        self._id += 1
        message: Dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:  # events come in between: keep the answer to this call
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def _read(self, deadline: float) -> Dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise AssertionError("Chromium did not answer")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise AssertionError(f"Chromium exited: {self.log.read_text(errors='replace')[-2000:]}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(line))

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (awaited if it is a promise)."""
        params = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        result = self.call("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], timeout: float) -> Any:
        """Evaluate ``expression`` every 0.2 s until ``done`` holds of its value; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"still {value!r} after {timeout:.0f} s")
            time.sleep(0.2)
