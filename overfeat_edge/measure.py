"""[no torch] bench's measurements: the network alone (one session, and the workers in parallel), the
other stages' CPU time each alone, the stream loop end to end on the same frames, and this
machine's matrix-multiply peak to set them against."""

from __future__ import annotations

import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from overfeat_edge.pipeline.detector import Detector
from overfeat_edge.pycompat import zip_strict
from overfeat_edge.runtime.base import Runner


def matmul_gflops(n: int = 2048, reps: int = 7) -> float:
    """This machine's float32 matrix-multiply rate through numpy's BLAS (the ceiling for convs).

    The best of ``reps`` products: a peak, so a product slowed by another process does not lower it.
    """
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def network_seconds(runners: list[Any], inputs: list[list[np.ndarray]]) -> float:
    """Wall time for ``runners`` to run every frame's pyramid, frames shared out round-robin, in parallel."""
    for r in runners:
        r.run_levels(inputs[0])  # warm-up

    def work(k: int) -> None:
        for xs in inputs[k :: len(runners)]:
            runners[k].run_levels(xs)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(len(runners))]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def other_stages_cpu(
    det: Any,
    clip: Path,
    imgs: list[np.ndarray],
    levels: list[Any],
    inputs: list[list[np.ndarray]],
    runner: Any,
    tmp: Path,
) -> dict[str, float]:
    """CPU seconds per frame of every stage but inference, each run alone on the same frames (``levels``
    and ``inputs``: their pyramid plan and inputs, already made).

    Process CPU time, so that OpenCV's own threads count. With inference using every core, these
    seconds are what the other stages take from it: the pipeline's ceiling is network CPU / (network
    CPU + these), whatever the overlap.
    """
    import cv2

    from overfeat_edge.pipeline.draw import draw_detections
    from overfeat_edge.stream.sinks import JsonlSink, VideoSink

    names = det.spec.class_names
    maps = [det.forward(x, runner) for x in inputs]
    cpu: dict[str, float] = {}
    t = time.process_time()
    cap = cv2.VideoCapture(str(clip))
    while cap.read()[0]:
        pass
    cap.release()
    cpu["capture"] = time.process_time() - t
    t = time.process_time()
    for f in imgs:
        det.preprocess(f)
    cpu["preprocess"] = time.process_time() - t
    t = time.process_time()
    dets = [det.postprocess(levels, m) for m in maps]
    drawn = [draw_detections(f, d, names, "") for f, d in zip_strict(imgs, dets)]
    cpu["postprocess"] = time.process_time() - t
    t = time.process_time()
    with VideoSink(tmp / "alone.mp4", 30) as v, JsonlSink(tmp / "alone.jsonl", names) as j:
        for k, (f, d) in enumerate(zip_strict(drawn, dets)):
            v.write(k, k / 30, f, d)
            j.write(k, k / 30, f, d)
    cpu["sink"] = time.process_time() - t
    return {k: v / len(imgs) for k, v in cpu.items()}


def pipeline_figures(det: Detector, runner: Runner, pool: list[Runner], frames: int) -> dict[str, Any]:
    """Every figure of ``bench`` on a generated 384x512 clip of ``frames`` frames: ``runner`` alone
    and ``pool`` (the inference workers) for the network, then the stream loop over ``pool``."""
    import cv2

    from overfeat_edge.stream.loop import Stream, StreamLoop
    from overfeat_edge.stream.sinks import JsonlSink, VideoSink
    from overfeat_edge.stream.sources import Source, parse_source
    from overfeat_edge.train.synth import write_demo_video

    with tempfile.TemporaryDirectory(prefix="overfeat-bench-") as tmp:
        clip = write_demo_video(Path(tmp) / "clip.mp4", frames, seed=9)
        cap = cv2.VideoCapture(str(clip))
        imgs = []
        while (r := cap.read())[0]:
            imgs.append(r[1])
        cap.release()
        levels = det.levels(imgs[0].shape[:2])
        inputs = [det.preprocess(f)[1] for f in imgs]
        one_s = network_seconds([runner], inputs)
        cpu0 = time.process_time()
        pool_s = network_seconds(pool, inputs)
        net_cpu = (time.process_time() - cpu0) / len(imgs)
        alone = other_stages_cpu(det, clip, imgs, levels, inputs, pool[0], Path(tmp))
        model_s = min(one_s, pool_s)  # the faster way is the baseline
        gflop = sum(det.spec.arch.dense_gflops(*lv.input_hw, det.spec.fine_stride) for lv in levels)
        with VideoSink(Path(tmp) / "o.mp4", 30) as v, JsonlSink(Path(tmp) / "d.jsonl", det.spec.class_names) as j:
            loop = StreamLoop([Stream("clip", Source(parse_source(str(clip))), [v, j])], det, runners=pool)
            t0 = time.perf_counter()
            stats = loop.run()
            run_s = time.perf_counter() - t0
    peak = matmul_gflops()
    return dict(
        model_fps_one_session=len(imgs) / one_s,
        model_fps_workers=len(imgs) / pool_s,
        model_fps=len(imgs) / model_s,
        run_fps=stats.frames / run_s,
        pipeline_efficiency=(stats.frames / run_s) / (len(imgs) / model_s),
        network_cpu_ms_per_frame=net_cpu * 1000,
        other_stages_cpu_ms_per_frame={k: v * 1000 for k, v in alone.items()},
        pipeline_ceiling=net_cpu / (net_cpu + sum(alone.values())),
        gflop_per_frame=gflop,
        model_gflops_per_s=gflop * len(imgs) / model_s,
        matmul_peak_gflops_per_s=peak,
        fraction_of_peak=gflop * len(imgs) / model_s / peak,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        stages=stats.summary()["stages"],
        levels=len(levels),
    )
