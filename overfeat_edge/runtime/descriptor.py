"""[no torch] What a backend declares about itself, as data (Polygraphy's argument groups, trimmed).

Every ``runtime/<name>.py`` exports ``DESCRIPTOR = BackendDescriptor(...)`` beside its
``load(model, *, <options>) -> Runner``. The CLI's backend options are generated from the
descriptors, and ``run``, ``auto``, ``load`` and the cascade read them instead of naming
backends: a new backend is one file plus its test, and one line in :data:`runtime.BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class BackendOption:
    """One keyword of the backend's ``load``; on the command line ``--name-with-dashes``. ``help`` is
    one sentence without the backend's name: the CLI prefixes the backends that take the option.
    An option left at None (False for a bool flag) is not given to ``load``."""

    name: str
    type: type  # int, float, str or bool
    help: str
    metavar: Optional[str] = None
    choices: Optional[Tuple[str, ...]] = None
    stages: bool = True  # also given to a cascade's crop stages (False: the detector's alone, e.g. --weights)

    @property
    def flag(self) -> str:
        """The option on the command line: ``--ov-device`` for ``ov_device``."""
        return "--" + self.name.replace("_", "-")


THREADS = BackendOption(  # the CPU backends' shared --threads (the detector's pyramid pooling honours it too)
    "threads",
    int,
    "CPU threads of the backend (default: all cores; 1 pools the pyramid in one thread too).",
    metavar="N",
)


@dataclass(frozen=True)
class BackendDescriptor:
    """A backend as the rest of the program sees it.

    ``cpu``: a CPU backend, one that ``--backend auto`` may measure and pick.
    ``max_workers``: how many inference workers the stream loop may run over it (None: any;
    1 where a device context is shared, e.g. one GPU stream).
    ``spec_source``: ``"onnx"`` (the spec comes from a local ONNX file's metadata) or
    ``"server"`` (from a server's model config).
    ``precisions``: the values of ``--precision`` it honours (a subset of :data:`PRECISIONS`).
    ``available``: None where it can be used here, else one line saying what to install.
    ``stage_model``: ``(model, stage_name) -> model to load`` for a cascade's crop stage
    (None: the stage's ONNX file beside the detector's, loaded by this same backend).
    ``spec_source`` may also be ``"checkpoint"`` (torch) or ``"engine"`` (an engine's manifest).
    """

    name: str
    summary: str
    options: Tuple[BackendOption, ...] = ()
    cpu: bool = False
    max_workers: Optional[int] = None
    spec_source: str = "onnx"
    precisions: Tuple[str, ...] = ("fp32",)
    available: Callable[[], Optional[str]] = field(default=lambda: None)
    stage_model: Optional[Callable[[str, str], str]] = None
    package: Optional[str] = None  # the distribution whose version keys auto's cache (None: ``name``)

    def check_precision(self, precision: str) -> None:
        """Raise one :class:`InputError` line for a precision this backend does not run."""
        from overfeat_edge.errors import InputError

        if precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision not in self.precisions:
            raise InputError(f"--backend {self.name} runs --precision {' or '.join(self.precisions)}, not {precision}")

    def option_names(self) -> Tuple[str, ...]:
        return tuple(o.name for o in self.options)

    def stage_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Of the detector's ``options``, those its cascade's crop stages take too (and ``precision``)."""
        takes = {o.name for o in self.options if o.stages} | {"precision"}
        return {k: v for k, v in options.items() if k in takes}

    def option(self, name: str) -> Any:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)
