"""[no torch] Triton Inference Server: a model repository from our models (:mod:`.repository`), and the
Python-backend model it writes for servers without the ONNX Runtime backend (:mod:`.python_model`).

The client side is the ``triton`` backend (:mod:`overfeat_edge.runtime.triton`). Both sides agree on
the names below: the spec travels in the model config's ``parameters`` under :data:`SPEC_PARAMETER`,
and a cascade's crop stage is served as its own model, named :func:`stage_model_name`.
"""

from __future__ import annotations

from pathlib import PurePath

from overfeat_edge.spec import METADATA_KEY

SPEC_PARAMETER = METADATA_KEY  # the same key as in the ONNX metadata: "overfeat_edge.spec"
RUNTIME_PARAMETER = "overfeat_edge.runtime"  # python backend: onnxruntime or openvino


def stage_model_name(detector: str, stage_file: str) -> str:
    """The served name of a cascade stage: ``mtcnn-face`` + ``rnet.onnx`` -> ``mtcnn-face-rnet``."""
    return f"{detector}-{PurePath(stage_file).stem}"
