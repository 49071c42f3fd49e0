"""Loading the original OverFeat release format, checked on generated files of the same layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from overfeat_edge.commands import main
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.models import import_original_weights, load_checkpoint, original_float_count


def layer_shapes(model: str) -> list[tuple[int, ...]]:
    """(out, in, kh, kw) per layer from the spec's tables, written out by hand."""
    if model == "overfeat-fast":
        return [
            (96, 3, 11, 11),
            (256, 96, 5, 5),
            (512, 256, 3, 3),
            (1024, 512, 3, 3),
            (1024, 1024, 3, 3),
            (3072, 1024, 6, 6),
            (4096, 3072, 1, 1),
            (1000, 4096, 1, 1),
        ]
    return [
        (96, 3, 7, 7),
        (256, 96, 7, 7),
        (512, 256, 3, 3),
        (512, 512, 3, 3),
        (1024, 512, 3, 3),
        (1024, 1024, 3, 3),
        (4096, 1024, 5, 5),
        (4096, 4096, 1, 1),
        (1000, 4096, 1, 1),
    ]


def write_release_file(path: Path, model: str) -> None:
    """Layer i's weights are all i + 1 + 0.25 * (element index mod 4); its biases all -(i + 1)."""
    parts = []
    for i, shape in enumerate(layer_shapes(model)):
        n = int(np.prod(shape))
        parts.append((i + 1 + 0.25 * (np.arange(n) % 4)).astype(np.float32))
        parts.append(np.full(shape[0], -(i + 1), np.float32))
    np.concatenate(parts).tofile(path)


@pytest.mark.parametrize(("model", "floats"), [("overfeat-fast", 145_920_872), ("overfeat-accurate", 144_656_488)])
def test_import_release_layout(tmp_path: Path, model: str, floats: int) -> None:
    assert original_float_count(model) == floats
    path = tmp_path / "net_weight"
    write_release_file(path, model)
    assert path.stat().st_size == floats * 4
    net, spec = import_original_weights(path, model)
    convs = [m for m in [*net.features, *net.cls_head] if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == layer_shapes(model)
    for i, conv in enumerate(convs):
        flat = conv.weight.detach().flatten()
        assert torch.equal(flat[:8], torch.tensor([i + 1 + 0.25 * (k % 4) for k in range(8)]))
        assert torch.all(conv.bias == -(i + 1))
    assert spec.arch.num_classes == 1000 and not spec.arch.background


def test_wrong_size_refused(tmp_path: Path) -> None:
    path = tmp_path / "net_weight_0"
    np.zeros(1000, np.float32).tofile(path)
    with pytest.raises(ModelError, match="exactly 145920872 float32"):
        import_original_weights(path, "overfeat-fast")
    with pytest.raises(InputError):
        import_original_weights(tmp_path / "missing", "overfeat-fast")


def test_cli_import_weights_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "net_weight_0"
    write_release_file(path, "overfeat-fast")
    out = tmp_path / "fast.pt"
    assert main(["import-weights", str(path), "--model", "overfeat-fast", "--out", str(out)]) == 0
    net, _spec, extra = load_checkpoint(out)
    assert torch.all(net.cls_head[-1].bias == -8)
    assert "untrained" in extra["note"]
    # the wrong model for the file is one clear error line
    assert main(["import-weights", str(path), "--model", "overfeat-accurate", "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err and not (tmp_path / "x.pt").exists()
