"""[no torch] The one registry of names: networks (``arch.ARCHS``) and shipped models (``assets/``).

An entry says what a name is (its kind: ``detector``, ``crop classifier`` or ``cascade``), its
network, its default pyramid and, for a shipped model, its folder of assets. A shipped model's spec
is read from its ONNX metadata (:mod:`overfeat_edge.onnxmeta`), with no inference session, so any
backend and the ``models`` listing can read it. Anchors: timm ``_registry.py``/``_pretrained.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from overfeat_edge.arch import ARCHS, Arch, get_arch
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.spec import METADATA_KEY, ModelSpec, default_scales

KINDS = ("detector", "crop classifier", "cascade")

# shipped models live here: overfeat_edge/assets/<name>/model.onnx (+ checkpoint, stages, model card)
ASSETS = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class Entry:
    """One name: a registry network or a shipped model."""

    name: str
    kind: str  # one of KINDS
    arch: Arch
    scales: Tuple[str, ...]  # the default pyramid
    folder: Optional[Path] = None  # a shipped model's assets
    spec: Optional[ModelSpec] = None  # a shipped model's, from its ONNX metadata

    @property
    def stages(self) -> Tuple[str, ...]:
        """A cascade's crop stages after its detector, by name."""
        cascade = (self.spec.extra.get("cascade") or {}) if self.spec is not None else {}
        return tuple(str(s.get("name", "?")) for s in cascade.get("stages", []) if isinstance(s, dict))


def shipped_models() -> dict[str, Path]:
    """Name -> directory of every model shipped inside the package."""
    if not ASSETS.is_dir():
        return {}
    return {p.name: p for p in sorted(ASSETS.iterdir()) if (p / "model.onnx").is_file()}


def spec_from_onnx(onnx: Path) -> ModelSpec:
    """The model spec in an ONNX file's metadata, read without loading the graph in any runtime."""
    from overfeat_edge.onnxmeta import read_metadata

    meta = read_metadata(onnx)
    if METADATA_KEY not in meta:
        raise ModelError(
            f"{onnx}: this ONNX has no overfeat-edge spec in its metadata; "
            "export it with 'overfeat-edge export' (or use --backend torch with a checkpoint)"
        )
    return ModelSpec.from_json(meta[METADATA_KEY], str(onnx))


def entry(name: str) -> Entry:
    """What ``name`` is: a shipped model (``mtcnn-face``) or a registry network (``overfeat-fast@0.25``)."""
    folder = shipped_models().get(name)
    if folder is not None:
        spec = spec_from_onnx(folder / "model.onnx")
        kind = "cascade" if spec.extra.get("cascade", {}).get("stages") else spec.arch.kind
        return Entry(name, kind, spec.arch, tuple(spec.pyramid()), folder, spec)
    try:
        arch = get_arch(name)
    except InputError:
        shipped = ", ".join(shipped_models()) or "none"
        raise InputError(
            f"unknown model {name!r}; expected a network ({', '.join(ARCHS)}, optionally @WIDTH) "
            f"or a shipped model ({shipped})"
        ) from None
    scales = default_scales(arch) if arch.kind == "detector" else (str(arch.window),)
    return Entry(arch.name, arch.kind, arch, scales)


def entries() -> list[Entry]:
    """Every registry network, then every shipped model."""
    return [entry(n) for n in ARCHS] + [entry(n) for n in shipped_models()]
