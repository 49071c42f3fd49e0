"""backends: every backend in the table, whether it can run here, its precisions and its own options."""

from __future__ import annotations

import typer
from rich.table import Table

from overfeat_edge.commands.common import command, console


def backends() -> None:
    """List the backends: installed here or what to install, CPU or not, precisions, and each one's own
    options (run, detect, demo and bench take them; their --help shows only the common ones).

    Example: overfeat-edge backends
    """
    from overfeat_edge.runtime import descriptors

    table = Table(title="overfeat-edge backends")
    for col in ("backend", "here", "precisions", "its options"):
        table.add_column(col, overflow="fold")
    for d in descriptors():
        why = d.available()
        opts = "\n".join(f"{o.flag} {o.metavar or ''}".rstrip() + f": {o.help}" for o in d.options) or "-"
        here = ("yes" if why is None else f"no: {why}") + (" (CPU)" if d.cpu else "")
        table.add_row(f"{d.name}\n{d.summary}", here, ", ".join(d.precisions), opts)
    console.print(table)


def register(app: typer.Typer) -> None:
    command(app, backends)
