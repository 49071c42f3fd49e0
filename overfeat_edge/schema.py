"""[no torch] Reading untrusted JSON (model specs, engine manifests, checkpoint fields) by one schema.

Every field is read through :class:`Fields` with its type, range and finiteness checked, so a
spec that is a list, a window of 0, a NaN mean or ``"fine_stride": "false"`` ends in one
:class:`~overfeat_edge.errors.ModelError` line that names the file, the field, what was expected
and what came, never a traceback or a silently accepted value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from overfeat_edge.errors import ModelError

MAX_JSON_DEPTH = 100  # nesting of arrays and objects in any JSON we read (ours use under 10)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')

_MISSING: Any = object()


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


class Fields:
    """Typed access to a JSON object's fields; ``where`` names it in every message."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise ModelError(f"{where}: expected a JSON object, got {type(value).__name__} {_show(value)}")
        self.d, self.where = value, where

    def _get(self, key: str, default: Any) -> Any:
        if key in self.d:
            return self.d[key]
        if default is _MISSING:
            raise ModelError(f"{self.where}: field {key!r} is missing")
        return default

    def fail(self, key: str, expected: str, got: Any) -> ModelError:
        return ModelError(f"{self.where}: {key} must be {expected}, got {_show(got)}")

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, default: Any = _MISSING) -> int:
        v = self._get(key, default)
        return check_int(v, lo, hi, lambda e: self.fail(key, e, v))

    def number(
        self,
        key: str,
        lo: float | None = None,
        hi: float | None = None,
        *,
        above: bool = False,
        default: Any = _MISSING,
    ) -> float:
        v = self._get(key, default)
        return check_number(v, lo, hi, above, lambda e: self.fail(key, e, v))

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, "true or false", v)
        return v

    def text(self, key: str, choices: tuple[str, ...] | None = None, default: Any = _MISSING) -> str:
        v = self._get(key, default)
        if not isinstance(v, str) or (choices is not None and v not in choices):
            raise self.fail(key, f"one of {', '.join(choices)}" if choices else "a string", v)
        return v

    def items(self, key: str, default: Any = _MISSING, min_len: int = 0) -> list[Any]:
        v = self._get(key, default)
        if not isinstance(v, list) or len(v) < min_len:
            raise self.fail(key, f"a list of at least {min_len} item(s)" if min_len else "a list", v)
        return v

    def numbers(self, key: str, length: int, lo: float | None = None, *, above: bool = False) -> tuple[float, ...]:
        v = self.items(key)
        if len(v) != length:
            raise self.fail(key, f"a list of {length} numbers", v)
        return tuple(
            check_number(x, lo, None, above, lambda e: self.fail(key, f"a list of {length} numbers, each {e}", v))
            for x in v
        )

    def ints(self, key: str, lo: int, hi: int, default: Any = _MISSING) -> tuple[int, ...]:
        v = self.items(key, default)
        bad = [x for x in v if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi]
        if bad:
            raise self.fail(key, f"a list of integers in [{lo}, {hi}]", v)
        return tuple(v)

    def obj(self, key: str, default: Any = _MISSING) -> Fields:
        return Fields(self._get(key, default), f"{self.where}: {key}")


def check_int(v: Any, lo: int | None, hi: int | None, fail: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise fail(_range("an integer", lo, hi, False))
    return v


def check_number(v: Any, lo: float | None, hi: float | None, above: bool, fail: Any) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if above else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        raise fail(_range("a finite number", lo, hi, above))
    return float(v)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{v:g}"


def _range(kind: str, lo: float | None, hi: float | None, above: bool) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in {'(' if above else '['}{_num(lo)}, {_num(hi)}]"
    if lo is not None:
        return f"{kind} {'>' if above else '>='} {_num(lo)}"
    if hi is not None:
        return f"{kind} <= {_num(hi)}"
    return kind


def load_json(text: str | bytes, where: str, error: type[Exception] = ModelError) -> Any:
    """Parse JSON we did not write (a spec, a manifest, a cache, a COCO file): malformed JSON or
    nesting deeper than :data:`MAX_JSON_DEPTH` is one ``error`` line naming ``where``, never a
    recursion traceback."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if json_depth(data) > MAX_JSON_DEPTH:
        raise error(f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; not a file of ours")
    try:
        return json.loads(data)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise error(f"{where}: not valid JSON ({str(exc)[:120]})") from None


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (vectorized: a 100 MB COCO file in a blink)."""
    b = np.frombuffer(_STRING.sub(b'""', data), np.uint8)
    if not b.size:
        return 0
    step = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
    return int(np.cumsum(step).max(initial=0))
