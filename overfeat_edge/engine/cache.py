"""[no TensorRT import] The engine cache: ``engines/<model>/<device>/<precision>-<frame>-<hash>.engine``.

Beside every engine a ``.json`` manifest records what it was built from and for. Loading checks
the manifest against the running device, TensorRT version and ONNX file, and the engine file's
own SHA-256 before anything deserializes it (an engine is an executable artifact). A stale or
foreign engine is refused with one line that says why and that ``--rebuild`` rebuilds it.
Everything is written under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from overfeat_edge.engine.profiles import Profile
from overfeat_edge.errors import ModelError
from overfeat_edge.io import atomic_write_bytes, atomic_write_text
from overfeat_edge.paths import slug, under
from overfeat_edge.schema import Fields, load_json

MANIFEST_FORMAT = "overfeat-edge-engine/1"
ENGINES = Path("engines")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class DeviceInfo:
    gpu: str  # e.g. "NVIDIA GeForce RTX 4090", "Orin"
    compute_capability: str  # "8.9"
    tensorrt: str  # "10.3.0"
    dla_core: int | None = None

    def folder(self) -> str:
        dla = f"-dla{self.dla_core}" if self.dla_core is not None else ""
        return f"{slug(self.gpu)}-sm{self.compute_capability.replace('.', '')}-trt{self.tensorrt}{dla}"


@dataclass
class Manifest:
    model: str
    onnx_sha256: str
    precision: str
    device: DeviceInfo
    profiles: list[Profile]
    frame_hw: tuple[int, int]
    flags: list[str]
    engine_sha256: str = ""
    calibration_sha256: str | None = None
    build_seconds: float = 0.0
    built_at: str = ""
    format: str = MANIFEST_FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["profiles"] = [p.to_dict() for p in self.profiles]
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> Manifest:
        """A manifest from its file, every field checked (a manifest is as untrusted as the engine)."""
        d = load_json(text, f"{source}: malformed engine manifest")
        f = Fields(d, f"{source}: engine manifest")
        if d.get("format") != MANIFEST_FORMAT:
            raise ModelError(f"{source}: not an overfeat-edge engine manifest (format {d.get('format')!r})")
        dev = f.obj("device")
        dla = dev.d.get("dla_core")
        device = DeviceInfo(
            dev.text("gpu"),
            dev.text("compute_capability"),
            dev.text("tensorrt"),
            None if dla is None else dev.integer("dla_core", 0, 15),
        )
        hw = f.ints("frame_hw", 1, 1 << 16)
        if len(hw) != 2:
            raise f.fail("frame_hw", "[height, width]", hw)
        calib = d.get("calibration_sha256")
        extra = f._get("extra", {})
        if not isinstance(extra, dict):
            raise f.fail("extra", "an object", extra)
        return cls(
            model=f.text("model"),
            onnx_sha256=f.text("onnx_sha256"),
            precision=f.text("precision", ("fp32", "fp16", "int8")),
            device=device,
            profiles=[
                Profile.from_dict(p, f"{source}: profiles[{i}]") for i, p in enumerate(f.items("profiles", min_len=1))
            ],
            frame_hw=(hw[0], hw[1]),
            flags=[str(x) for x in f.items("flags")],
            engine_sha256=f.text("engine_sha256"),
            calibration_sha256=None if calib is None else f.text("calibration_sha256"),
            build_seconds=f.number("build_seconds", 0, default=0.0),
            built_at=f.text("built_at", default=""),
            extra=extra,
        )


def engine_path(root: Path, model: str, device: DeviceInfo, precision: str, key: str) -> Path:
    return under(root, root / slug(model) / device.folder() / f"{precision}-{key}.engine", "the engine")


def manifest_path(engine: Path) -> Path:
    return engine.with_suffix(".json")


def calibration_cache_path(engine: Path) -> Path:
    """Where the cache of an on-device INT8 calibration is kept: beside its engine."""
    return engine.with_suffix(".calib.cache")


def write_engine(engine: Path, data: bytes, manifest: Manifest, calibration_cache: bytes | None = None) -> None:
    """Engine (and its calibration cache) first, then the manifest with their hashes: a manifest
    always names whole files.
    """
    manifest.engine_sha256 = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(engine, data)
    if calibration_cache is not None:
        path = calibration_cache_path(engine)
        atomic_write_bytes(path, calibration_cache)
        manifest.extra["calibration_cache"] = {
            "file": path.name,
            "sha256": hashlib.sha256(calibration_cache).hexdigest(),
        }
    atomic_write_text(manifest_path(engine), manifest.to_json())


def check_engine(
    engine: Path,
    running: DeviceInfo,
    *,
    onnx_sha256: str | None = None,
    calibration_sha256: str | None = None,
) -> tuple[Manifest, bytes]:
    """The manifest and the bytes of a usable engine, or :class:`ModelError` saying why it is stale
    or foreign. The bytes returned are the ones hashed: deserialize these, not a second read of the
    path. ``running.dla_core`` None accepts the DLA core the engine was built for (the manifest's).
    """
    mpath = manifest_path(engine)
    if not engine.is_file():
        raise ModelError(f"no engine at {engine}; build it with 'overfeat-edge build'")
    if not mpath.is_file():
        raise ModelError(f"{engine} has no manifest ({mpath.name}); an engine of unknown origin is not loaded")
    m = Manifest.from_json(mpath.read_text(), str(mpath))
    fix = "; rebuild with 'overfeat-edge build ... --rebuild'"
    b = m.device
    if (b.gpu, b.compute_capability) != (running.gpu, running.compute_capability):
        raise ModelError(
            f"{engine.name} was built for {b.gpu} (sm {b.compute_capability}), this is {running.gpu} "
            f"(sm {running.compute_capability}){fix}"
        )
    if b.tensorrt != running.tensorrt:
        raise ModelError(
            f"{engine.name} was built with TensorRT {b.tensorrt}, this is TensorRT {running.tensorrt} "
            f"(engines do not move between versions, e.g. after a JetPack upgrade){fix}"
        )
    if running.dla_core is not None and b.dla_core != running.dla_core:
        built = "the GPU" if b.dla_core is None else f"DLA core {b.dla_core}"
        raise ModelError(f"{engine.name} targets {built}, asked for DLA core {running.dla_core}{fix}")
    if onnx_sha256 is not None and m.onnx_sha256 != onnx_sha256:
        raise ModelError(f"{engine.name} was built from another version of the ONNX (sha256 differs){fix}")
    if calibration_sha256 is not None and m.calibration_sha256 != calibration_sha256:
        raise ModelError(f"{engine.name} was calibrated with other data (calibration sha256 differs){fix}")
    data = engine.read_bytes()
    if hashlib.sha256(data).hexdigest() != m.engine_sha256:
        raise ModelError(
            f"{engine.name}: the file's sha256 is not the one its manifest recorded (modified or corrupt); "
            f"not deserializing it{fix}"
        )
    return m, data


def describe_engine(m: Manifest) -> str:
    """One line on what an engine needs and where it runs, from its manifest (build's summary, doctor):
    its activation memory (one block for every context), and for DLA builds where the layers went."""
    e = m.extra
    parts = []
    memory = e.get("device_memory_bytes")
    if isinstance(memory, int):
        parts.append(f"device memory {memory / 2**20:.1f} MiB (one block shared by every level's context)")
    dla = e.get("dla")
    if m.device.dla_core is not None and isinstance(dla, dict):
        parts.append(
            f"DLA core {m.device.dla_core}: {dla.get('dla_capable')} of {dla.get('network_layers')} network layers "
            f"can run on DLA; the engine: {dla.get('subgraphs')} DLA subgraph(s), {dla.get('gpu_layers')} GPU layer(s)"
        )
    if e.get("other_layers"):
        parts.append(f"layers not quantized run in {e['other_layers']}")
    return "; ".join(parts) or "no device memory or DLA placement recorded (built before they were)"
