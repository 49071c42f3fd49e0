"""[no torch] What the edge path needs from Python 3.10 and later, on 3.8 and 3.9 too (JetPack 5 has 3.8)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import zip_longest
from typing import Any

if sys.version_info >= (3, 10):

    def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """``zip(..., strict=True)``: ValueError if the iterables differ in length."""
        return zip(*iterables, strict=True)  # novermin: only reached on 3.10+

else:
    _END = object()

    def zip_strict(*iterables: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """``zip(..., strict=True)``: ValueError if the iterables differ in length."""
        for row in zip_longest(*iterables, fillvalue=_END):
            if any(v is _END for v in row):
                raise ValueError("zip_strict: the iterables have different lengths")
            yield row
