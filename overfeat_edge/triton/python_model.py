"""Triton Python-backend model: runs ``model.onnx`` (beside this file) on ONNX Runtime or OpenVINO.

Copied as ``REPO/<name>/1/model.py`` by ``overfeat-edge export --triton REPO --triton-backend python``,
for Triton builds without the ONNX Runtime backend. It runs in the server's Python (numpy, and
onnxruntime or openvino installed there), not in overfeat-edge: it imports nothing of ours.

One ``execute`` gets the requests the dynamic batcher gathered; requests of one input shape (one
pyramid level from several streams or processes) are concatenated and run as one batch, then split.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import triton_python_backend_utils as pb_utils

INPUT = "input"


class _OnnxRuntime:
    def __init__(self, path, threads):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])

    def __call__(self, names, batch):
        return self.session.run(names, {INPUT: batch})


class _OpenVino:
    def __init__(self, path, threads):
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        self.model = ov.Core().compile_model(path, "CPU", config)

    def __call__(self, names, batch):
        result = self.model(batch)
        return [result[self.model.output(name)] for name in names]


RUNTIMES: Dict[str, Callable[[str, int], Any]] = {"onnxruntime": _OnnxRuntime, "openvino": _OpenVino}


def _parameter(config, key, default):
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        runtime = _parameter(config, "overfeat_edge.runtime", "onnxruntime")
        threads = int(_parameter(config, "overfeat_edge.threads", "0"))
        self.outputs = [o["name"] for o in config["output"]]
        self.run = RUNTIMES[runtime](os.path.join(folder, "model.onnx"), threads)

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, INPUT).as_numpy() for r in requests]
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i, a in enumerate(arrays):
            groups.setdefault(a.shape[1:], []).append(i)
        responses: List[Any] = [None] * len(requests)
        for members in groups.values():
            parts = [arrays[i] for i in members]  # one request alone (the usual case) is not copied
            batch = np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts), dtype=np.float32)
            outputs = self.run(self.outputs, batch)
            start = 0
            for i in members:
                end = start + arrays[i].shape[0]
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(out[start:end]))
                    for name, out in zip(self.outputs, outputs)
                ]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start = end
        return responses
