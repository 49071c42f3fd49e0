"""[no torch] One comparison of two implementations' outputs (Polygraphy's Comparator, trimmed).

Used where two runs of the same network must agree: ``export`` (ONNX Runtime vs torch) and the
INT8 report (INT8 vs FP32), with one rule per output over every input (:class:`Agreement`);
and of two runs' detections (:class:`DetectionAgreement`: boxes matched, worst shift), which
``bench --backends`` and the precision tests report:
``max |got - want| <= atol + rtol * max |want|``. ``doctor`` compares TensorRT with ONNX Runtime
through Polygraphy's own ``Comparator`` instead (see :mod:`overfeat_edge.engine.doctor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from overfeat_edge.pycompat import zip_strict
from overfeat_edge.types import Detections


@dataclass
class Agreement:
    """Per-output statistics accumulated over inputs: max |got - want|, max |want|, cosine."""

    names: tuple[str, ...]
    max_abs_error: dict[str, float] = field(default_factory=dict)
    max_abs_want: dict[str, float] = field(default_factory=dict)
    _dot: dict[str, float] = field(default_factory=dict)
    _n_got: dict[str, float] = field(default_factory=dict)
    _n_want: dict[str, float] = field(default_factory=dict)

    def add(self, got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
        """One input's outputs, in :attr:`names` order; shapes must match (ValueError otherwise)."""
        for name, a, b in zip_strict(self.names, got, want):
            if a.shape != b.shape:
                raise ValueError(f"{name}: shape {a.shape} vs {b.shape}")
            a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
            err = float(np.abs(a64 - b64).max()) if a64.size else 0.0
            self.max_abs_error[name] = max(err, self.max_abs_error.get(name, 0.0))
            self.max_abs_want[name] = max(
                float(np.abs(b64).max()) if b64.size else 0.0, self.max_abs_want.get(name, 0.0)
            )
            self._dot[name] = self._dot.get(name, 0.0) + float(a64 @ b64)
            self._n_got[name] = self._n_got.get(name, 0.0) + float(a64 @ a64)
            self._n_want[name] = self._n_want.get(name, 0.0) + float(b64 @ b64)

    def cosine(self) -> dict[str, float]:
        return {k: self._dot[k] / max(float(np.sqrt(self._n_got[k] * self._n_want[k])), 1e-30) for k in self._dot}

    def tolerance(self, name: str, atol: float, rtol: float) -> float:
        return atol + rtol * self.max_abs_want.get(name, 0.0)

    def failures(self, atol: float, rtol: float) -> list[str]:
        """Outputs beyond tolerance (NaN counts as beyond), as "name: err (tolerance tol)" lines."""
        out = []
        for name in self.names:
            err, tol = self.max_abs_error.get(name, float("nan")), self.tolerance(name, atol, rtol)
            if not err <= tol:  # NaN fails
                out.append(f"{name}: {err:.3g} (tolerance {tol:.3g})")
        return out


def _area(xyxy: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(xyxy[:, 2:] - xyxy[:, :2], 0, None), axis=1)


@dataclass
class DetectionAgreement:
    """How one run's detections match a reference run's, summed over images: pairs matched one to
    one (same class, IoU >= ``iou``, best IoU first), boxes in each run, and the largest shift of
    any matched box's edge in pixels."""

    iou: float = 0.5
    matched: int = 0
    got: int = 0
    want: int = 0
    worst_shift: float = 0.0

    def add(self, got: Detections, want: Detections) -> None:
        self.got, self.want = self.got + len(got), self.want + len(want)
        if len(got) == 0 or len(want) == 0:
            return
        a, b = got.xyxy.astype(np.float64), want.xyxy.astype(np.float64)
        lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
        iou = inter / np.maximum(_area(a)[:, None] + _area(b)[None, :] - inter, 1e-12)
        iou[got.class_id[:, None] != want.class_id[None, :]] = 0.0
        used_a, used_b = set(), set()
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), len(want))
            if iou[i, j] < self.iou:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            self.matched += 1
            self.worst_shift = max(self.worst_shift, float(np.abs(a[i] - b[j]).max()))

    @property
    def same(self) -> bool:
        """Every box matched, in both directions."""
        return self.matched == self.got == self.want

    def describe(self) -> str:
        return f"{self.matched} of {self.want} matched ({self.got} found), worst box shift {self.worst_shift:.2f} px"
