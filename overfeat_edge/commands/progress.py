"""Progress a person reads, on a terminal (rich's bar) or in a log (a line now and then)."""

from __future__ import annotations

import sys
import time
from typing import Any

from overfeat_edge.commands.common import console


def _duration(seconds: float) -> str:
    s = round(seconds)
    return (
        f"{s // 3600} h {s % 3600 // 60:02d} min"
        if s >= 3600
        else f"{s // 60} min {s % 60:02d} s"
        if s >= 60
        else f"{s} s"
    )


def time_left(elapsed_s: float, went: int, remaining: int) -> str:
    """``2 min 05 s left`` at the pace so far (``went`` steps in ``elapsed_s``), or "" with no pace yet
    or nothing left (e.g. `run` on a file: frames done since the start, frames still to read)."""
    if went <= 0 or remaining <= 0:
        return ""
    return f"{_duration(elapsed_s / went * remaining)} left"


class Steps:
    """Progress: rich's bar on a terminal; to a log or a pipe, where a bar shows nothing until it ends
    (and then leaves a blank line), ``lines`` lines over the whole run, each with the count, ``fields``
    (a format string over :meth:`advance`'s keywords) and the time left. ``total`` None: a spinner on a
    terminal, the description once elsewhere. Everything goes to the standard output of the moment the
    steps start, so a library that hides its own prints meanwhile (``redirect_stdout``) hides none of ours."""

    def __init__(
        self, description: str, total: int | None, *, fields: str = "", lines: int = 10, done: int = 0
    ) -> None:
        self.description, self.total, self.fields, self.done = description, total, fields, done
        self.every = max(1, -(-(total or 1) // max(1, lines)))  # at most ``lines`` lines
        self._start, self._t0 = done, time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._out = console

    def __enter__(self) -> Steps:
        from rich import progress as rp
        from rich.console import Console

        # bound to today's stdout; a log's lines as wide as they are
        self._out = Console(file=sys.stdout, markup=False, highlight=False, width=None if console.is_terminal else 250)
        if not self._out.is_terminal:
            if self.total is None:
                self.print(f"{self.description} ...")
            return self
        text = rp.TextColumn("{task.description}")
        if self.total is None:
            columns: tuple[Any, ...] = (rp.SpinnerColumn(), text, rp.TimeElapsedColumn())
        else:
            fields = rp.TextColumn("{task.fields[text]}")
            columns = (text, rp.BarColumn(), rp.MofNCompleteColumn(), fields, rp.TimeRemainingColumn())
        self._bar = rp.Progress(*columns, console=self._out, transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, completed=self.done, text="")
        return self

    def line(self, **fields: Any) -> str:
        """The line a log gets: ``train: 40/3200 (1%), epoch 1/16, loss 0.532, 2 min 05 s left``."""
        assert self.total is not None
        parts = [f"{self.description}: {self.done}/{self.total} ({self.done / max(self.total, 1):.0%})"]
        if self.fields:
            parts.append(self.fields.format(**fields))
        left = time_left(time.monotonic() - self._t0, self.done - self._start, self.total - self.done)
        return ", ".join([*parts, left] if left else parts)

    def advance(self, n: int = 1, **fields: Any) -> None:
        before, self.done = self.done, self.done + n
        if self._bar is not None:
            text = self.fields.format(**fields) if self.fields and fields else ""
            self._bar.update(self._task, advance=n, text=text)
        elif self.total is not None and (self.done // self.every > before // self.every or self.done == self.total):
            self.print(self.line(**fields))

    def print(self, message: str) -> None:
        """A line above the bar (or in the log, in order)."""
        self._out.print(message, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
