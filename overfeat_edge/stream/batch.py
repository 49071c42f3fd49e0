"""[no torch] A round's frames as batches: every pyramid level of one shape stacked, one ``run_levels``."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from overfeat_edge.runtime.base import Runner

Maps = List[Dict[str, np.ndarray]]  # one frame's levels: outputs by name, batch index dropped


def batched_forward(runner: Runner, inputs: list[list[np.ndarray]]) -> list[Maps]:
    """Maps of every frame's every level (batch index dropped), running each (level, shape) group of
    frames as one batch: ``inputs[f][k]`` is frame f's level k, (1, 3, H, W)."""
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for f, levels in enumerate(inputs):
        for k, x in enumerate(levels):
            groups.setdefault((k, x.shape), []).append(f)
    step = getattr(runner, "max_batch", None) or max(len(v) for v in groups.values())
    batches, owners = [], []
    for (k, _), frames in groups.items():
        for i in range(0, len(frames), step):
            part = frames[i : i + step]
            batches.append(np.concatenate([inputs[f][k] for f in part]))
            owners.append((k, part))
    outs = runner.run_levels(batches)
    maps: list[Maps] = [[{} for _ in levels] for levels in inputs]
    for (k, part), out in zip(owners, outs):
        for j, f in enumerate(part):
            maps[f][k] = {name: v[j] for name, v in out.items()}
    return maps
