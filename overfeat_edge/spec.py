"""ModelSpec: everything the runtime needs besides the graph, stored as JSON in ONNX metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from overfeat_edge.arch import Arch
from overfeat_edge.errors import ModelError
from overfeat_edge.schema import Fields, load_json

METADATA_KEY = "overfeat_edge.spec"
SPEC_VERSION = 1

# The original OverFeat release normalizes 0-255 pixels with one mean and std for all channels.
OVERFEAT_MEAN = 118.380948
OVERFEAT_STD = 61.896913

# Paper Table 5 (accurate model): six input sizes, height x width.
PAPER_SCALES = ("245x245", "281x317", "317x389", "389x461", "425x497", "461x569")

# overfeat-mini (59 px window): six smallest sides, ratio ~0.76, for objects of 48 to 240 px in a
# 384-px-high frame (each object is 25 to 62 px, about half a window to a window, at some scale).
MINI_SCALES = ("384", "293", "224", "171", "131", "100")


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, classes, normalization and default pyramid of an exported model.

    Input convention: RGB, 0-255, normalized as ``(pixel - mean) / std`` per channel, NCHW
    float32. ``scores`` has ``arch.num_outputs`` channels; when ``arch.background`` is true,
    channel 0 is background and channel ``c + 1`` is ``class_names[c]``. ``boxes`` has
    ``4 * num_classes`` channels: for class ``c``, channels ``4c..4c+3`` are the box edges
    ``(x1, y1, x2, y2)`` relative to the window's top-left corner, in units of the window size.
    """

    arch: Arch
    class_names: tuple[str, ...]
    fine_stride: bool = True
    mean: tuple[float, float, float] = (OVERFEAT_MEAN,) * 3
    std: tuple[float, float, float] = (OVERFEAT_STD,) * 3
    channel_order: str = "rgb"
    scales: tuple[str, ...] = field(default_factory=tuple)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.class_names) != self.arch.num_classes:
            raise ModelError(
                f"spec has {len(self.class_names)} class names but the network has {self.arch.num_classes} classes"
            )
        if self.channel_order not in ("rgb", "bgr"):
            raise ModelError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        if any(s <= 0 for s in self.std):
            raise ModelError(f"std must be positive, got {self.std}")

    def pyramid(self, scales: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """The pyramid to run: ``scales`` given, else the model's own, else one level of the window."""
        return list(scales or self.scales or [str(self.arch.window)])

    @property
    def out_stride(self) -> int:
        return self.arch.out_stride(self.fine_stride)

    def with_fine_stride(self, fine: bool) -> ModelSpec:
        return replace(self, fine_stride=fine)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": SPEC_VERSION,
                "arch": self.arch.to_dict(),
                "class_names": list(self.class_names),
                "fine_stride": self.fine_stride,
                "mean": list(self.mean),
                "std": list(self.std),
                "channel_order": self.channel_order,
                "scales": list(self.scales),
                "extra": self.extra,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> ModelSpec:
        """A spec from JSON we did not write (ONNX metadata, a checkpoint, a manifest): every field
        checked by one schema (types, ranges, finiteness); one :class:`ModelError` line otherwise."""
        if not isinstance(text, (str, bytes)):
            raise ModelError(f"{source}: the spec is not JSON (a {type(text).__name__})")
        d = load_json(text, f"{source}: the spec")
        f = Fields(d, f"{source}: spec")
        if d.get("version") != SPEC_VERSION:
            raise ModelError(f"{source}: spec version {d.get('version')!r} is not {SPEC_VERSION}")
        arch = Arch.from_dict(d.get("arch"), f"{source}: spec arch")
        names = f.items("class_names", min_len=1)
        if not all(isinstance(n, str) for n in names):
            raise f.fail("class_names", "a list of strings", names)
        scales = f.items("scales", default=[])
        if not all(isinstance(x, str) for x in scales):
            raise f.fail("scales", "a list of strings like '320' or '281x317'", scales)
        extra = f._get("extra", {})
        if not isinstance(extra, dict):
            raise f.fail("extra", "an object", extra)
        fine, order = f.boolean("fine_stride"), f.text("channel_order", ("rgb", "bgr"))
        mean, std = f.numbers("mean", 3), f.numbers("std", 3, 0, above=True)
        if fine and arch.neck:
            raise ModelError(f"{source}: fine_stride is true but {arch.name} has a neck (no fine-stride graph)")
        try:
            return cls(arch, tuple(names), fine, mean, std, order, tuple(scales), extra)  # type: ignore[arg-type]
        except ModelError as exc:  # __post_init__'s checks (class names vs the network's classes)
            raise ModelError(f"{source}: {exc}") from None


# a network's usual pyramid, by its base name; others: the window, 1.4x and 2x (:func:`default_scales`)
PYRAMIDS: dict[str, tuple[str, ...]] = {"overfeat-accurate": PAPER_SCALES, "overfeat-mini": MINI_SCALES}


def default_scales(arch: Arch) -> tuple[str, ...]:
    """The architecture's usual pyramid (:data:`PYRAMIDS`, else three sizes from its window)."""
    w = arch.window
    return PYRAMIDS.get(arch.base or arch.name, (str(w), str(round(w * 1.4)), str(round(w * 2))))


def default_spec(arch: Arch, class_names: list[str] | None = None, fine_stride: bool = True) -> ModelSpec:
    """A spec with generic class names and the architecture's usual pyramid."""
    names = tuple(class_names) if class_names else tuple(f"class_{i}" for i in range(arch.num_classes))
    return ModelSpec(arch=arch, class_names=names, fine_stride=fine_stride, scales=default_scales(arch))
