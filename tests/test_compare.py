"""The one comparison of two implementations' outputs, against hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest

from overfeat_edge.compare import Agreement


def test_agreement_hand_worked() -> None:
    a = Agreement(("s", "b"))
    a.add([np.array([1.0, 2.0]), np.array([0.0, 4.0])], [np.array([1.0, 2.5]), np.array([0.0, 3.0])])
    a.add([np.array([3.0, 0.0]), np.array([1.0, 1.0])], [np.array([3.0, 0.0]), np.array([1.0, 1.0])])
    assert a.max_abs_error == {"s": 0.5, "b": 1.0}
    assert a.max_abs_want == {"s": 3.0, "b": 3.0}
    # cosine over both inputs together: s = (1*1 + 2*2.5 + 9) / sqrt((1+4+9) * (1+6.25+9))
    assert a.cosine()["s"] == pytest.approx(15 / np.sqrt(14 * 16.25))
    assert a.tolerance("s", 0.1, 0.1) == pytest.approx(0.4)
    assert a.failures(0.1, 0.1) == ["s: 0.5 (tolerance 0.4)", "b: 1 (tolerance 0.4)"]
    assert a.failures(0.1, 0.5) == []


def test_nan_never_agrees_and_shapes_must_match() -> None:
    a = Agreement(("x",))
    a.add([np.array([np.nan])], [np.array([1.0])])
    assert a.failures(1e9, 1e9) == ["x: nan (tolerance 2e+09)"]
    with pytest.raises(ValueError, match="shape"):
        a.add([np.zeros(2)], [np.zeros(3)])
