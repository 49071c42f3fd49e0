"""[no torch] Running a stream loop under SIGINT/SIGTERM, with a watchdog on the stop request.

A stop request (Ctrl-C, SIGTERM) stops the loop cleanly: the frames already taken are finished
and written, every thread ends, the caller closes its outputs. A worker can be stuck where no
stop reaches it (inside a backend's inference call, a read that does not return): then, ``grace``
seconds after the request, the watchdog closes the outputs itself (whole lines, a finalized MP4),
says so on stderr and ends the process with 130, as an interrupted command does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Optional

GRACE = 5.0  # seconds a stop request waits for the loop before the watchdog ends the process


def close_all(things: list[object]) -> None:
    """Close every one (sinks, sources), even when one fails; the first failure is raised after."""
    first: BaseException | None = None
    for t in things:
        try:
            t.close()  # type: ignore[attr-defined]
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


class Watchdog:
    """Armed by a stop request; fires ``grace`` seconds later unless :meth:`disarm` came first."""

    def __init__(self, on_stuck: Callable[[], None], grace: float = GRACE) -> None:
        self.on_stuck, self.grace = on_stuck, grace
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    def arm(self) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.grace, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def disarm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(0, lambda: None)  # armed no more, ever

    def _fire(self) -> None:
        try:
            self.on_stuck()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)


def run_with_signals(
    loop: Any,
    duration: float | None,
    *,
    on_tick: Callable[[], None] | None = None,
    on_stuck: Callable[[], None] = lambda: None,
    grace: float = GRACE,
) -> None:
    """``loop.run(duration, on_tick)`` with SIGINT and SIGTERM mapped to ``loop.stop(<signal name>)``
    and the watchdog armed by the first of them (``on_stuck`` closes the outputs and says so)."""
    dog = Watchdog(on_stuck, grace)

    def stop(signum: int, _frame: object) -> None:
        loop.stop(signal.Signals(signum).name)
        dog.arm()

    handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, stop)
    try:
        loop.run(duration, on_tick)
    finally:
        dog.disarm()
        for signum, previous in handlers.items():
            signal.signal(signum, previous)
