"""Network architectures as plain data, and the size arithmetic that follows from them.

No torch here: the pyramid planner, the ``models`` listing and the runtime all read these
tables. ``overfeat_edge.models`` turns an :class:`Arch` into a torch module.

OverFeat's layer tables are the paper's Tables 1 and 3 (Sermanet et al., 2014): every
conv is followed by ReLU; pooling is max-pooling with kernel == stride. The last pool of
``features`` is the one fine stride acts on; the heads read its output.

The MTCNN face cascade (Zhang et al., 2016) is the same family, written with three additions:
PReLU after a conv (``act="prelu"``), ceil-mode pools (``ceil=True``, kernel may exceed stride),
and a ``neck``: convs shared by the heads after the last pool (P-Net's conv2-3; R-Net's and
O-Net's conv and their first dense layer, written as a conv whose kernel is the map's size).
``extra_heads`` are further 1x1 outputs (O-Net's landmarks). Fine stride is for nets without a
neck (an MTCNN stage runs at its own stride).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.schema import Fields, check_int


@dataclass(frozen=True)
class Layer:
    """One feature layer: a conv (``channels`` outputs, then ReLU) or a max pool."""

    op: Literal["conv", "pool"]
    k: int
    s: int
    p: int = 0
    channels: int = 0
    act: Literal["relu", "prelu"] = "relu"  # after a conv
    ceil: bool = False  # a pool in ceil mode (torch's ceil_mode, ONNX's ceil_mode=1)

    def out_size(self, n: int) -> int:
        """Spatial size after this layer for an input of size ``n`` (floor, or ceil as torch does it:
        a last window that would start past the input's end (padding included) is dropped)."""
        if not self.ceil:
            return (n + 2 * self.p - self.k) // self.s + 1
        out = -(-(n + 2 * self.p - self.k) // self.s) + 1
        if (out - 1) * self.s >= n + self.p:
            out -= 1
        return out

    def to_list(self) -> list[Any]:
        row: list[Any] = [self.op, self.k, self.s, self.p, self.channels]
        if self.act != "relu" or self.ceil:
            row += [self.act, self.ceil]
        return row

    @classmethod
    def from_list(cls, row: Any, where: str = "layer") -> Layer:
        """A layer from ``[op, k, s, p, channels(, act, ceil)]``, every value checked."""
        if not isinstance(row, list) or len(row) not in (5, 7):
            raise ModelError(f"{where}: expected [op, k, s, p, channels(, act, ceil)], got {str(row)[:60]}")
        f = Fields(dict(zip(("op", "k", "s", "p", "channels", "act", "ceil"), row)), where)
        op = f.text("op", ("conv", "pool"))
        k, st, p = f.integer("k", 1, 64), f.integer("s", 1, 64), f.integer("p", 0, 64)
        channels = f.integer("channels", 1, 1 << 16) if op == "conv" else f.integer("channels", 0, 1 << 16)
        act = f.text("act", ("relu", "prelu"), default="relu")
        ceil = f.boolean("ceil", default=False)
        return cls("conv" if op == "conv" else "pool", k, st, p, channels, "prelu" if act == "prelu" else "relu", ceil)


@dataclass(frozen=True)
class Arch:
    """A fully convolutional OverFeat-style network.

    ``features`` ends with the pool that fine stride acts on. The classifier head is
    ``head_kernel`` x ``head_kernel`` conv -> 1x1 convs through ``cls_hidden`` -> classes
    (+1 background); the regression head likewise through ``reg_hidden`` -> 4 per class.
    """

    name: str
    window: int
    features: tuple[Layer, ...]
    head_kernel: int
    cls_hidden: tuple[int, ...]
    reg_hidden: tuple[int, ...]
    num_classes: int
    background: bool = True
    in_channels: int = 3
    width: float = 1.0
    base: str = field(default="", compare=False)
    neck: tuple[Layer, ...] = ()  # convs after the last pool, shared by every head
    kind: Literal["detector", "crop classifier"] = "detector"  # run over a pyramid, or on crops
    extra_heads: tuple[tuple[str, int], ...] = ()  # (output name, channels): more 1x1-style heads

    # ---- derived geometry -------------------------------------------------------------
    @property
    def stride(self) -> int:
        """Total (coarse) stride of the classifier map in input pixels."""
        return math.prod(layer.s for layer in self.features)

    @property
    def fine_factor(self) -> int:
        """Stride of the last pool: fine stride divides the output stride by this."""
        return self.features[-1].s

    def out_stride(self, fine: bool) -> int:
        return self.stride // self.fine_factor if fine else self.stride

    @property
    def num_outputs(self) -> int:
        """Channels of the ``scores`` output (classes, plus one if there is a background)."""
        return self.num_classes + int(self.background)

    @property
    def feature_channels(self) -> int:
        """Channels the heads read (the neck's last conv, else the features' last conv)."""
        return [layer.channels for layer in (*self.features, *self.neck) if layer.op == "conv"][-1]

    @property
    def output_names(self) -> tuple[str, ...]:
        return ("scores", "boxes", *(name for name, _ in self.extra_heads))

    def prepool_size(self, n: int) -> int:
        """Spatial size of the map entering the last pool for an input side of ``n``."""
        for layer in self.features[:-1]:
            n = layer.out_size(n)
        return n

    def out_size(self, n: int, fine: bool) -> int:
        """Classifier map size for an input side ``n``; <= 0 means the input is too small."""
        return self.out_size_from_prepool(self.prepool_size(n), fine)

    # ---- cost -------------------------------------------------------------------------
    def _convs(self) -> list[tuple[str, int, int, int, int]]:
        """(name, cin, cout, kernel, output size at the training window) of every conv."""
        rows, cin, n = [], self.in_channels, self.window
        for i, layer in enumerate(self.features[:-1]):
            n = layer.out_size(n)
            if layer.op == "conv":
                rows.append((f"conv{i}", cin, layer.channels, layer.k, n))
                cin = layer.channels
        last_pool = self.features[-1]
        n = last_pool.out_size(self.prepool_size(self.window))
        for j, layer in enumerate(self.neck):
            n = layer.out_size(n)
            rows.append((f"neck{j}", cin, layer.channels, layer.k, n))
            cin = layer.channels
        for head, hidden, last in (
            ("cls", self.cls_hidden, self.num_outputs),
            ("reg", self.reg_hidden, 4 * self.num_classes),
            *((name, (), c) for name, c in self.extra_heads),
        ):
            c, k = cin, self.head_kernel
            for j, cout in enumerate((*hidden, last)):
                rows.append((f"{head}{j}", c, cout, k, 1))
                c, k = cout, 1
        return rows

    def params(self) -> int:
        prelu = sum(x.channels for x in (*self.features, *self.neck) if x.op == "conv" and x.act == "prelu")
        return sum(cin * cout * k * k + cout for _, cin, cout, k, _ in self._convs()) + prelu

    def gflops_per_window(self) -> float:
        """Multiply-adds x 2 of one forward pass on the training window, both heads."""
        return sum(2 * cin * cout * k * k * n * n for _, cin, cout, k, n in self._convs()) / 1e9

    def dense_gflops(self, h: int, w: int, fine: bool) -> float:
        """Multiply-adds x 2 of one dense pass over an ``h`` x ``w`` input, both heads.

        A dilated head conv costs the same per output position as an undilated one, so fine
        stride multiplies the head's cost by the number of extra output positions only.
        """
        macs, cin = 0, self.in_channels
        for layer in self.features[:-1]:
            h, w = layer.out_size(h), layer.out_size(w)
            if layer.op == "conv":
                macs += h * w * layer.k * layer.k * cin * layer.channels
                cin = layer.channels
        oh = self.out_size_from_prepool(h, fine)
        ow = self.out_size_from_prepool(w, fine)
        per_position = sum(c_in * c_out * k * k for name, c_in, c_out, k, _ in self._convs() if name[:4] != "conv")
        return 2 * (macs + max(oh, 0) * max(ow, 0) * per_position) / 1e9

    def out_size_from_prepool(self, size: int, fine: bool) -> int:
        """Classifier map size from the pre-pool size: fine = pool stride 1 + head dilated by s."""
        s, k = self.fine_factor, self.head_kernel
        if fine:
            if self.neck:
                raise InputError(f"{self.name} has a neck after its last pool: fine stride is not defined for it")
            return size - k * s + 1
        n = self.features[-1].out_size(size)
        for layer in self.neck:
            n = layer.out_size(n)
        return n - k + 1

    @property
    def family(self) -> str:
        """The registered network this one derives from (a width variant's or a checkpoint's)."""
        return self.base or self.name

    def with_width(self, width: float) -> Arch:
        """The same topology with every hidden channel count multiplied by ``width``."""
        if not 0 < width <= 4:
            raise InputError(f"width multiplier must be in (0, 4], got {width}")

        def w(c: int) -> int:
            return max(1, round(c * width))

        feats = tuple(replace(x, channels=w(x.channels)) if x.op == "conv" else x for x in self.features)
        return replace(
            self,
            name=f"{self.family}@{width:g}" if width != 1 else self.family,
            features=feats,
            neck=tuple(replace(x, channels=w(x.channels)) for x in self.neck),
            cls_hidden=tuple(w(c) for c in self.cls_hidden),
            reg_hidden=tuple(w(c) for c in self.reg_hidden),
            width=width,
            base=self.family,
        )

    # ---- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.family,
            "window": self.window,
            "features": [x.to_list() for x in self.features],
            "head_kernel": self.head_kernel,
            "cls_hidden": list(self.cls_hidden),
            "reg_hidden": list(self.reg_hidden),
            "num_classes": self.num_classes,
            "background": self.background,
            "in_channels": self.in_channels,
            "width": self.width,
            **({"neck": [x.to_list() for x in self.neck]} if self.neck else {}),
            **({"extra_heads": [list(h) for h in self.extra_heads]} if self.extra_heads else {}),
            **({"kind": self.kind} if self.kind != "detector" else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "arch") -> Arch:
        """An architecture from its JSON form, every field checked (it comes from files we did not write)."""
        f = Fields(d, where)
        features = tuple(
            Layer.from_list(r, f"{where}: features[{i}]") for i, r in enumerate(f.items("features", min_len=1))
        )
        if features[-1].op != "pool":
            raise ModelError(f"{where}: features must end with the pool that fine stride acts on")
        arch = cls(
            name=f.text("name"),
            base=f.text("base", default=d.get("name", "")),
            window=f.integer("window", 1, 4096),
            features=features,
            head_kernel=f.integer("head_kernel", 1, 64),
            cls_hidden=f.ints("cls_hidden", 1, 1 << 16),
            reg_hidden=f.ints("reg_hidden", 1, 1 << 16),
            num_classes=f.integer("num_classes", 1, 100000),
            background=f.boolean("background"),
            in_channels=f.integer("in_channels", 1, 64, default=3),
            width=f.number("width", 0, 4, above=True, default=1.0),
            neck=tuple(Layer.from_list(r, f"{where}: neck[{i}]") for i, r in enumerate(f.items("neck", default=[]))),
            extra_heads=tuple(_extra_head(h, f"{where}: extra_heads") for h in f.items("extra_heads", default=[])),
            kind="crop classifier"
            if f.text("kind", ("detector", "crop classifier"), default="detector") != "detector"
            else "detector",
        )
        if any(x.op != "conv" for x in arch.neck):
            raise ModelError(f"{where}: the neck holds convs only")
        if arch.out_size(arch.window, fine=False) < 1:
            raise ModelError(f"{where}: the layers leave nothing of a {arch.window}px window (output size < 1)")
        return arch


def _extra_head(h: Any, where: str) -> tuple[str, int]:
    if not isinstance(h, list) or len(h) != 2 or not isinstance(h[0], str) or h[0] in ("scores", "boxes"):
        raise ModelError(f"{where}: expected [name, channels] with a new output name, got {str(h)[:60]}")
    return h[0], check_int(h[1], 1, 1 << 16, lambda e: ModelError(f"{where}: {h[0]} channels must be {e}"))


def _c(k: int, s: int, p: int, ch: int) -> Layer:
    return Layer("conv", k, s, p, ch)


def _p(k: int) -> Layer:
    return Layer("pool", k, k)


def _cp(k: int, ch: int) -> Layer:  # MTCNN: conv (stride 1, no padding) + PReLU
    return Layer("conv", k, 1, 0, ch, act="prelu")


def _pc(k: int, s: int) -> Layer:  # MTCNN: ceil-mode max pool
    return Layer("pool", k, s, ceil=True)


# Paper Table 1: fast model, 231x231 window, stride 32, fine factor 2.
OVERFEAT_FAST = Arch(
    name="overfeat-fast",
    window=231,
    features=(
        _c(11, 4, 0, 96),
        _p(2),
        _c(5, 1, 0, 256),
        _p(2),
        _c(3, 1, 1, 512),
        _c(3, 1, 1, 1024),
        _c(3, 1, 1, 1024),
        _p(2),
    ),
    head_kernel=6,
    cls_hidden=(3072, 4096),
    reg_hidden=(4096, 1024),
    num_classes=1000,
)

# Paper Table 3: accurate model, 221x221 window, stride 36, fine factor 3.
OVERFEAT_ACCURATE = Arch(
    name="overfeat-accurate",
    window=221,
    features=(
        _c(7, 2, 0, 96),
        _p(3),
        _c(7, 1, 0, 256),
        _p(2),
        _c(3, 1, 1, 512),
        _c(3, 1, 1, 512),
        _c(3, 1, 1, 1024),
        _c(3, 1, 1, 1024),
        _p(3),
    ),
    head_kernel=5,
    cls_hidden=(4096, 4096),
    reg_hidden=(4096, 1024),
    num_classes=1000,
)

# A tiny teaching net: 14x14 window, stride 2; "FC 4" = 3 classes + background.
SEED_NET = Arch(
    name="seed-net",
    window=14,
    features=(_c(5, 1, 0, 16), _p(2)),
    head_kernel=5,
    cls_hidden=(400, 400),
    reg_hidden=(400, 100),
    num_classes=3,
)

# A CPU-sized OverFeat-fast: the same layer pattern (strided conv, pool, conv, pool, three padded
# 3x3 convs, pool, conv-as-FC heads), scaled to a 59x59 window with stride 16 and fine factor 2.
# It is the shipped demo model's architecture: small enough to train on a laptop CPU in minutes.
OVERFEAT_MINI = Arch(
    name="overfeat-mini",
    window=59,
    features=(
        _c(5, 2, 0, 32),
        _p(2),
        _c(3, 1, 0, 64),
        _p(2),
        _c(3, 1, 1, 96),
        _c(3, 1, 1, 128),
        _c(3, 1, 1, 128),
        _p(2),
    ),
    head_kernel=3,
    cls_hidden=(256, 256),
    reg_hidden=(256, 128),
    num_classes=3,
)

# MTCNN (Zhang et al., 2016), as facenet-pytorch 2.6.0 defines it. P-Net is a 12x12-window
# detector with output stride 2, run over the image pyramid; its heads are 1x1 convs on the neck.
# Its ``boxes`` are the 12x12 cells themselves and its ``regression`` (MTCNN's offsets) a head of
# its own: MTCNN suppresses overlapping cells before it applies the offsets.
MTCNN_PNET = Arch(
    name="mtcnn-pnet",
    window=12,
    features=(_cp(3, 10), _pc(2, 2)),
    neck=(_cp(3, 16), _cp(3, 32)),
    head_kernel=1,
    cls_hidden=(),
    reg_hidden=(),
    num_classes=1,
    extra_heads=(("regression", 4),),
)
# R-Net and O-Net classify 24x24 and 48x48 crops; their dense layers are convs over the whole map
# (R-Net: 3x3x64 -> 128, O-Net: 3x3x128 -> 256), then 1x1 heads (O-Net: 10 landmark coordinates).
MTCNN_RNET = Arch(
    name="mtcnn-rnet",
    window=24,
    features=(_cp(3, 28), _pc(3, 2), _cp(3, 48), _pc(3, 2)),
    neck=(_cp(2, 64), _cp(3, 128)),
    head_kernel=1,
    cls_hidden=(),
    reg_hidden=(),
    num_classes=1,
    kind="crop classifier",
)
MTCNN_ONET = Arch(
    name="mtcnn-onet",
    window=48,
    features=(_cp(3, 32), _pc(3, 2), _cp(3, 64), _pc(3, 2), _cp(3, 64), _pc(2, 2)),
    neck=(_cp(2, 128), _cp(3, 256)),
    head_kernel=1,
    cls_hidden=(),
    reg_hidden=(),
    num_classes=1,
    extra_heads=(("landmarks", 10),),
    kind="crop classifier",
)

ARCHS: dict[str, Arch] = {
    a.name: a for a in (OVERFEAT_FAST, OVERFEAT_ACCURATE, OVERFEAT_MINI, SEED_NET, MTCNN_PNET, MTCNN_RNET, MTCNN_ONET)
}

_NAME = re.compile(r"^(?P<base>[a-z0-9-]+?)(?:@(?P<width>[0-9.]+))?$")


def get_arch(name: str, num_classes: int | None = None, background: bool | None = None) -> Arch:
    """Look up ``name`` (``overfeat-fast``, ``overfeat-fast@0.25``...) and adapt its classes."""
    m = _NAME.match(name.strip())
    if not m or m["base"] not in ARCHS:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(ARCHS)} (optionally @WIDTH)")
    arch = ARCHS[m["base"]]
    if m["width"] is not None:
        try:
            width = float(m["width"])
        except ValueError:
            raise InputError(f"bad width multiplier in {name!r}") from None
        arch = arch.with_width(width)
    if num_classes is not None:
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        arch = replace(arch, num_classes=num_classes)
    if background is not None:
        arch = replace(arch, background=background)
    return arch
