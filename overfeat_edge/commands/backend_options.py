"""The backends' command-line options, generated from their descriptors (Polygraphy's argument groups).

``@backend_options()`` on a command function adds one Typer option per option any backend declares
(``--threads``, ``--ov-device``, ``--cuda-graphs``, ...; each once, its help naming the backends
that take it) and ``--precision``; the command receives them as one dict, ``options``, to hand to
``load_detector``/``load_runner`` (which refuse, in one line, an option the chosen backend does
not take). A new backend's options reach every command with no edit here.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

import typer
from typing_extensions import Annotated, get_type_hints

from overfeat_edge.runtime import AUTO, descriptors
from overfeat_edge.runtime.descriptor import PRECISIONS, BackendOption

PANEL = "Model and backend"
PRECISION_HELP = (
    f"{'|'.join(PRECISIONS)}: fp32 (the default) gives the same detections on every backend; the others "
    "are faster where the hardware has them (bench --backends: how much, how close)."
)


def backend_help() -> str:
    """``--backend``'s help: auto, then every backend in the table."""
    names = ", ".join(d.name for d in descriptors())
    return f"{AUTO} (the fastest CPU one here at --precision), {names}. Their own options: overfeat-edge backends."


def merged_options() -> List[Tuple[BackendOption, List[str]]]:
    """Every backend's options, once each, with the backends that take it (in table order)."""
    seen: Dict[str, Tuple[BackendOption, List[str]]] = {}
    for d in descriptors():
        for o in d.options:
            if o.name in seen and seen[o.name][0].type is not o.type:
                raise TypeError(f"backend option {o.name} is {o.type.__name__} in {d.name}, not {seen[o.name][0].type}")
            seen.setdefault(o.name, (o, []))[1].append(d.name)
    return list(seen.values())


SHOWN = ("threads",)  # in every command's --help; the others are listed by `overfeat-edge backends`


def _parameter(option: BackendOption, backends: List[str], help: Optional[str]) -> inspect.Parameter:
    text = help or f"{', '.join(backends)}: {option.help}"
    hidden = option.name not in SHOWN
    if option.choices:
        text += f" One of: {', '.join(option.choices)}."
    if option.type is bool:
        info = typer.Option(option.flag, help=text, rich_help_panel=PANEL, hidden=hidden)
        annotation: Any = Annotated[bool, info]
        default: Any = False
    else:
        info = typer.Option(option.flag, help=text, metavar=option.metavar, rich_help_panel=PANEL, hidden=hidden)
        annotation, default = Annotated[Optional[option.type], info], None  # type: ignore[name-defined]
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def backend_options(*, help: Optional[Dict[str, str]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command whose last parameter is ``options: dict``: every backend's options (``help``
    replaces an option's text) become its Typer options."""
    extra = [_parameter(o, names, (help or {}).get(o.name)) for o, names in merged_options()]
    precision = Annotated[
        str, typer.Option("--precision", help=PRECISION_HELP, metavar="PRECISION", rich_help_panel=PANEL)
    ]
    extra.append(inspect.Parameter("precision", inspect.Parameter.KEYWORD_ONLY, default="fp32", annotation=precision))
    names = [p.name for p in extra]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = get_type_hints(fn, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in inspect.signature(fn).parameters.values()]
        if not own or own[-1].name != "options":
            raise TypeError(f"{fn.__name__} must take the backend options as its last parameter, options")
        clash = [n for n in names if n in {p.name for p in own}]
        if clash:
            raise TypeError(f"{fn.__name__} declares {', '.join(clash)} itself; the backends' descriptors declare them")
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:-1]] + extra

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            options = {n: kwargs.pop(n) for n in names}
            return fn(**kwargs, options=options)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # Typer reads the signature above, not fn's
        return command

    return decorate
