"""[no torch, no onnx, no ONNX Runtime] An ONNX file's metadata, read straight from its protobuf.

Every backend needs the model's spec (``metadata_props["overfeat_edge.spec"]``) before it loads
the graph, and not every backend has a way to it (OpenVINO's model drops ONNX metadata; a TensorRT
build should not need an ONNX Runtime session). ``ModelProto`` keeps its metadata as field 14,
repeated ``StringStringEntryProto {key = 1; value = 2}``; every other top-level field is skipped
by its length (the graph, often most of the file, is seeked over, not read). A file that is not
protobuf ends at its first bytes (field number 0, a length past the end), never after a scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from overfeat_edge.errors import ModelError

_METADATA_PROPS = 14
MAX_METADATA_ENTRY = 16 << 20  # one metadata entry (a spec is a few kB)


def _varint(f: BinaryIO) -> int | None:
    shift, value = 0, 0
    while True:
        b = f.read(1)
        if not b:
            return None if shift == 0 else _bad()
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            _bad()


def _bad() -> int:
    raise ValueError("not a protobuf message")


def _entry(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto's (key, value)."""
    out = {1: "", 2: ""}
    i = 0
    while i < len(data):
        tag, i = _read_varint(data, i)
        field, wire = tag >> 3, tag & 7
        if wire != 2:
            raise ValueError("metadata entry with a non-string field")
        n, i = _read_varint(data, i)
        if field in out:
            out[field] = data[i : i + n].decode("utf-8")
        i += n
    return out[1], out[2]


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift, value = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def read_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of the ONNX model at ``path`` as a dict; :class:`ModelError` if it is not ONNX."""
    path = Path(path)
    out: dict[str, str] = {}
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            while True:
                tag = _varint(f)
                if tag is None:
                    break
                field, wire = tag >> 3, tag & 7
                if field == 0:  # no protobuf field is numbered 0: a zero-filled or foreign file, at its first bytes
                    _bad()
                if wire == 0:
                    _varint(f)
                elif wire == 1:
                    f.seek(8, 1)
                elif wire == 5:
                    f.seek(4, 1)
                elif wire == 2:
                    n = _varint(f)
                    if n is None or f.tell() + n > size:
                        _bad()
                    assert n is not None
                    if field == _METADATA_PROPS and n > MAX_METADATA_ENTRY:
                        raise ValueError(f"a metadata entry of {n:,} bytes")
                    if field == _METADATA_PROPS:
                        key, value = _entry(f.read(n))
                        out[key] = value
                    else:
                        f.seek(n, 1)
                else:
                    _bad()
    except OSError as exc:  # unreadable (no permission), not "not ONNX"
        raise ModelError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not an ONNX model ({exc})") from None
    return out


def has_qdq(onnx: Path) -> bool:
    """Whether the ONNX holds QuantizeLinear/DequantizeLinear nodes (explicit INT8 scales).

    Op types are stored as plain strings in the protobuf, so this needs neither onnx nor TensorRT.
    """
    data = onnx.read_bytes()
    return b"QuantizeLinear" in data or b"DequantizeLinear" in data
