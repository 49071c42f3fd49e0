"""[torch] MTCNN's pretrained weights (facenet-pytorch 2.6.0's ``data/{pnet,rnet,onet}.pt``) into our nets.

The files are ``torch.save``'d state dicts of float32 tensors; they are read with
``weights_only=True`` (a file that carries code is refused) and checked name by name and shape
by shape. The conversion to our layer tables (``arch.MTCNN_PNET`` ...):

* every conv and PReLU keeps its weights as stored (their kernels' height and width are already
  swapped from the TensorFlow original; facenet-pytorch uses them that way);
* a dense layer becomes a conv over the whole map. It read ``x.permute(0, 3, 2, 1)`` flattened,
  i.e. input index ``(w * H + h) * C + c``, so its (O, W*H*C) matrix becomes the kernel
  ``reshape(O, W, H, C).permute(0, 3, 2, 1)`` of shape (O, C, H, W); 1x1 heads likewise;
* P-Net's ``boxes`` head gives each cell's box in our decode's convention (edges relative to the
  window's corner in units of the 12 px window): MTCNN puts cell (x, y) at ``(2x + 1, 2y + 1,
  2x + 12, 2y + 12)`` in the level's pixels, so the head is a 1x1 conv with zero weights and bias
  ``(1, 1, 12, 12) / 12``. MTCNN's offsets are P-Net's ``regression`` head (``conv4_2`` as
  stored): they are applied after the NMS over cells, as MTCNN does, by the cascade.

Every regression stays MTCNN's own (the cascade applies it, see ``pipeline/cascade.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from overfeat_edge.arch import MTCNN_ONET, MTCNN_PNET, MTCNN_RNET, Arch
from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.models.overfeat import OverFeatNet
from overfeat_edge.models.weights import load_failure
from overfeat_edge.spec import ModelSpec

STAGES = ("pnet", "rnet", "onet")
ARCHS: dict[str, Arch] = {"pnet": MTCNN_PNET, "rnet": MTCNN_RNET, "onet": MTCNN_ONET}
MEAN, STD = 127.5, 128.0  # MTCNN's normalization: (x - 127.5) * 0.0078125, RGB
THRESHOLDS = {"pnet": 0.6, "rnet": 0.7, "onet": 0.7}

# facenet-pytorch name -> (our name, kind); kind: "copy", "dense" (a dense layer over a map) or "head"
_NAMES: dict[str, list[tuple[str, str, str]]] = {
    "pnet": [
        ("conv1", "features.0", "copy"),
        ("prelu1", "features.1", "copy"),
        ("conv2", "neck.0", "copy"),
        ("prelu2", "neck.1", "copy"),
        ("conv3", "neck.2", "copy"),
        ("prelu3", "neck.3", "copy"),
        ("conv4_1", "cls_head.0", "copy"),
        ("conv4_2", "extra_heads.regression.0", "copy"),
    ],
    "rnet": [
        ("conv1", "features.0", "copy"),
        ("prelu1", "features.1", "copy"),
        ("conv2", "features.3", "copy"),
        ("prelu2", "features.4", "copy"),
        ("conv3", "neck.0", "copy"),
        ("prelu3", "neck.1", "copy"),
        ("dense4", "neck.2", "dense"),
        ("prelu4", "neck.3", "copy"),
        ("dense5_1", "cls_head.0", "dense"),
        ("dense5_2", "reg_head.0", "dense"),
    ],
    "onet": [
        ("conv1", "features.0", "copy"),
        ("prelu1", "features.1", "copy"),
        ("conv2", "features.3", "copy"),
        ("prelu2", "features.4", "copy"),
        ("conv3", "features.6", "copy"),
        ("prelu3", "features.7", "copy"),
        ("conv4", "neck.0", "copy"),
        ("prelu4", "neck.1", "copy"),
        ("dense5", "neck.2", "dense"),
        ("prelu5", "neck.3", "copy"),
        ("dense6_1", "cls_head.0", "dense"),
        ("dense6_2", "reg_head.0", "dense"),
        ("dense6_3", "extra_heads.landmarks.0", "dense"),
    ],
}

# P-Net's cell boxes: (2x + 1, 2y + 1, 2x + 12, 2y + 12), relative to the corner (2x, 2y), over 12 px
_PNET_CELL = torch.tensor([1.0, 1.0, 12.0, 12.0]) / 12


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from ``path``, never unpickling code (``weights_only=True``)."""
    if not path.is_file():
        raise InputError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code, a torn file, not a torch file at all
        raise ModelError(f"{path}: not loadable as plain weights ({load_failure(exc)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: expected a state dict of tensors (facenet-pytorch's data/*.pt)")
    return state


def convert(stage: str, state: dict[str, torch.Tensor], source: str) -> OverFeatNet:
    """facenet-pytorch's ``stage`` state dict -> our net for ``ARCHS[stage]`` (eval mode)."""
    net = OverFeatNet(ARCHS[stage], fine_stride=False).eval()
    ours = net.state_dict()
    want = {
        f"{src}.{p}" for src, _, kind in _NAMES[stage] for p in (("weight",) if "prelu" in src else ("weight", "bias"))
    }
    if set(state) != want:
        missing, extra = sorted(want - set(state)), sorted(set(state) - want)
        raise ModelError(
            f"{source}: not facenet-pytorch's {stage} weights (missing {missing[:4]}, unexpected {extra[:4]})"
        )
    out: dict[str, torch.Tensor] = {}
    for src, dst, kind in _NAMES[stage]:
        for p in ("weight", "bias"):
            key = f"{src}.{p}"
            if key not in state:
                continue
            v = state[key].float()
            if kind == "dense" and p == "weight":
                o, c, h, w = ours[f"{dst}.weight"].shape
                v = v.reshape(o, w, h, c).permute(0, 3, 2, 1)
            if v.shape != ours[f"{dst}.{p}"].shape:
                raise ModelError(
                    f"{source}: {key} has shape {tuple(v.shape)}, {stage} needs {tuple(ours[dst + '.' + p].shape)}"
                )
            out[f"{dst}.{p}"] = v.contiguous()
    if stage == "pnet":
        out["reg_head.0.weight"] = torch.zeros_like(ours["reg_head.0.weight"])
        out["reg_head.0.bias"] = _PNET_CELL.clone()
    net.load_state_dict(out)
    return net


def stage_spec(stage: str, stages: list[dict[str, object]] | None = None) -> ModelSpec:
    """The spec of one MTCNN net; P-Net's names the cascade (``stages``) and its own defaults."""
    extra: dict[str, object] = {"resize": "adaptive"}  # torch's area interpolation, as MTCNN was run
    scales: tuple[str, ...] = ()
    if stage == "pnet":
        scales = ("geo:20:0.709",)  # min face 20 px, factor 0.709
        extra["detector"] = {
            "threshold": THRESHOLDS["pnet"],
            "merge": "nms",
            "nms_iou": 0.7,
            "level_nms": 0.5,
            "max_detections": 10000,  # every candidate goes on to R-Net
            "floor_boxes": True,  # MTCNN's cells: floor((2x + 1) / scale) ...
        }
        extra["cascade"] = {"regression": {"output": "regression", "plus_one": False}, "stages": stages or []}
    return ModelSpec(
        arch=ARCHS[stage],
        class_names=("face",),
        fine_stride=False,
        mean=(MEAN,) * 3,
        std=(STD,) * 3,
        channel_order="rgb",
        scales=scales,
        extra=extra,
    )


def cascade_stages() -> list[dict[str, object]]:
    """The MTCNN cascade after P-Net, as ``pipeline.cascade.StageSpec`` dicts."""
    return [
        {"name": "rnet", "file": "rnet.onnx", "threshold": THRESHOLDS["rnet"], "nms": 0.7},
        {
            "name": "onet",
            "file": "onet.onnx",
            "threshold": THRESHOLDS["onet"],
            "nms": 0.7,
            "overlap": "min",
            "nms_after_regression": True,
            "landmarks": True,
        },
    ]


def import_facenet(files: list[Path]) -> dict[str, tuple[OverFeatNet, ModelSpec]]:
    """pnet.pt, rnet.pt and onet.pt (any order, named by stage) -> {stage: (net, spec)}."""
    by_stage: dict[str, Path] = {}
    for f in files:
        stage = f.stem.lower()
        if stage not in STAGES:
            raise InputError(f"{f}: expected files named pnet.pt, rnet.pt and onet.pt (facenet-pytorch's data/)")
        by_stage[stage] = f
    if sorted(by_stage) != sorted(STAGES):
        raise InputError(
            f"--format facenet-pytorch needs pnet.pt, rnet.pt and onet.pt; got {', '.join(sorted(by_stage))}"
        )
    out = {}
    for stage in STAGES:
        net = convert(stage, read_state(by_stage[stage]), str(by_stage[stage]))
        out[stage] = (net, stage_spec(stage, cascade_stages()))
    return out
