"""[no torch] One comparison of two implementations' outputs (Polygraphy's Comparator, trimmed).

Used where two runs of the same network must agree: ``export`` (ONNX Runtime vs torch) and the
INT8 report (INT8 vs FP32), with one rule per output over every input:
``max |got - want| <= atol + rtol * max |want|``. ``doctor`` compares TensorRT with ONNX Runtime
through Polygraphy's own ``Comparator`` instead (see :mod:`overfeat_edge.engine.doctor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from overfeat_edge.pycompat import zip_strict


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
