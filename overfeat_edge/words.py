"""Words for messages a person reads: counts with the right plural."""

from __future__ import annotations

from typing import Optional

_IRREGULAR = {"box": "boxes", "class": "classes", "match": "matches", "process": "processes"}


def plural(count: int, noun: str, many: Optional[str] = None) -> str:
    """``1 detection``, ``2 detections``, ``0 boxes``: the count and the noun in the form it takes."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or _IRREGULAR.get(noun) or noun + 's'}"
