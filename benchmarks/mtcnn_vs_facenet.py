"""Our MTCNN (mtcnn-face through the OverFeat pipeline) next to facenet-pytorch's own, on the same CPU.

    python3 benchmarks/mtcnn_vs_facenet.py [--work /tmp/mtcnn-bench] [--repeats 5] [--threads 2] [--no-write]

facenet-pytorch 2.6.0 runs in a throwaway venv under ``--work`` (torch 2.13.0 CPU, numpy, pillow,
requests; facenet-pytorch itself with ``--no-deps``, its pins being torch<2.3 and numpy<2). Its
two torchvision imports are served by a **stand-in** written here (``torchvision/ops/boxes.py``:
``batched_nms``, greedy IoU NMS per index as torchvision defines it; ``transforms/functional``:
``to_tensor``), because PyPI's torchvision does not load beside the torch 2.13 CPU wheel. Its
MTCNN code runs unchanged.

Photos: scikit-image's ``astronaut`` (public domain) and ``camera`` (CC0), matplotlib's
``grace_hopper.jpg`` and scikit-image's ``lfw_subset`` (100 face crops, 100 non-faces, 25x25),
read from those packages' wheels (downloaded with ``pip download --no-deps``), plus the two photos
committed under ``tests/data/photos``. Writes the "mtcnn" section of BENCHMARKS.md and, with
``--record``, the facenet-pytorch boxes the CI test compares against (``tests/data/mtcnn_facenet.json``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header, write_section  # noqa: E402

from overfeat_edge.errors import OverfeatEdgeError  # noqa: E402
from overfeat_edge.pipeline.cascade import load_stages  # noqa: E402
from overfeat_edge.pipeline.load import describe, load_detector  # noqa: E402
from overfeat_edge.pipeline.merge import box_iou  # noqa: E402

FACENET = "facenet-pytorch==2.6.0"
STANDIN = {  # clearly a stand-in: the two torchvision functions facenet-pytorch imports
    "torchvision/__init__.py": '"""STAND-IN for torchvision (benchmarks/mtcnn_vs_facenet.py)."""\n',
    "torchvision/ops/__init__.py": "",
    "torchvision/ops/boxes.py": textwrap.dedent(
        '''
        """STAND-IN: torchvision.ops.boxes.batched_nms (greedy NMS per index, IoU with areas (x2-x1)*(y2-y1),
        kept indices by decreasing score), for facenet-pytorch's MTCNN."""
        import numpy as np
        import torch


        def batched_nms(boxes, scores, idxs, iou_threshold):
            b = boxes.detach().cpu().double().numpy()
            s = scores.detach().cpu().double().numpy()
            g = idxs.detach().cpu().numpy()
            keep = []
            for cls in np.unique(g):
                order = np.flatnonzero(g == cls)
                order = order[np.argsort(-s[order], kind="stable")]
                while order.size:
                    i, rest = order[0], order[1:]
                    keep.append(i)
                    xx1 = np.maximum(b[i, 0], b[rest, 0]); yy1 = np.maximum(b[i, 1], b[rest, 1])
                    xx2 = np.minimum(b[i, 2], b[rest, 2]); yy2 = np.minimum(b[i, 3], b[rest, 3])
                    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
                    area = lambda k: (b[k, 2] - b[k, 0]) * (b[k, 3] - b[k, 1])
                    iou = inter / (area(i) + area(rest) - inter)
                    order = rest[iou <= iou_threshold]
            keep = np.asarray(keep, dtype=np.int64)
            keep = keep[np.argsort(-s[keep], kind="stable")]
            return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)
        '''
    ),
    "torchvision/transforms/__init__.py": "",
    "torchvision/transforms/functional.py": textwrap.dedent(
        '''
        """STAND-IN: torchvision.transforms.functional.to_tensor (HWC uint8 -> CHW float in [0, 1])."""
        import numpy as np
        import torch


        def to_tensor(pic):
            a = np.asarray(pic)
            if a.ndim == 2:
                a = a[:, :, None]
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().div(255)
        '''
    ),
}

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import torch
    import facenet_pytorch
    from facenet_pytorch import MTCNN

    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def detect(img):
        boxes, probs, points = mtcnn.detect(img, landmarks=True)
        if boxes is None:
            return [], [], []
        return boxes.tolist(), probs.tolist(), points.tolist()

    def reply(out):
        sys.stdout.write("RESULT " + json.dumps(out) + "\\n"); sys.stdout.flush()

    reply({"facenet_pytorch": facenet_pytorch.__file__, "torch": torch.__version__})
    for line in sys.stdin:  # one command a line, answered at once: the parent times ours in between
        cmd = json.loads(line)
        if cmd["op"] == "photo":
            img = np.load(cmd["path"])
            if cmd["warm"]:
                detect(img)
            times = []
            for _ in range(cmd["repeats"]):
                t0 = time.perf_counter(); res = detect(img); times.append(time.perf_counter() - t0)
            reply({"boxes": res[0], "probs": res[1], "points": res[2], "times": times})
        elif cmd["op"] == "lfw":
            lfw = np.load(cmd["path"])
            t0 = time.perf_counter()
            found = [len(detect(im)[0]) for im in lfw]
            reply({"lfw": found, "lfw_ms": 1000 * (time.perf_counter() - t0) / len(lfw)})
    """
)


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]


def setup(work: Path) -> Path:
    """The throwaway venv with facenet-pytorch and the stand-in; returns its python."""
    venv = work / "venv"
    py = venv / "bin" / "python"
    if not (work / "venv.ok").is_file():
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy", "pillow", "requests", "tqdm"])
        run([str(py), "-m", "pip", "install", "-q", "--no-deps", FACENET])
        (work / "venv.ok").write_text("ok\n")
    for rel, text in STANDIN.items():
        dest = work / "standin" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    return py


def photos(work: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """name -> RGB uint8 photo, and lfw_subset (200, 25, 25, 3) uint8 RGB."""
    wheels = work / "wheels"
    if not any(wheels.glob("scikit_image-*.whl")) or not any(wheels.glob("matplotlib-*.whl")):
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        run([*pip, "-d", str(wheels), "scikit-image", "matplotlib"])
    ski = zipfile.ZipFile(next(wheels.glob("scikit_image-*.whl")))
    mpl = zipfile.ZipFile(next(wheels.glob("matplotlib-*.whl")))

    def decode(data: bytes) -> np.ndarray:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(img[:, :, ::-1])

    out = {
        "astronaut": decode(ski.read("skimage/data/astronaut.png")),
        "camera": decode(ski.read("skimage/data/camera.png")),
        "grace_hopper": decode(mpl.read("matplotlib/mpl-data/sample_data/grace_hopper.jpg")),
    }
    for p in sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg")):
        out[f"tests/{p.name}"] = np.ascontiguousarray(cv2.imread(str(p))[:, :, ::-1])
    (work / "lfw.npy").write_bytes(ski.read("skimage/data/lfw_subset.npy"))
    lfw = (np.load(work / "lfw.npy") * 255).round().astype(np.uint8)
    return out, np.repeat(lfw[..., None], 3, axis=3)


class Theirs:
    """facenet-pytorch in its venv, one process for the whole run, answering one command at a time, so
    that its repeats of a photo and ours take turns (the ratio of two medians taken minutes apart on a
    VM carries its drift)."""

    def __init__(self, py: Path, work: Path, threads: int) -> None:
        self.work = work
        env = {"PYTHONPATH": str(work / "standin"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads)}
        self.errors = work / "facenet.stderr"  # a file, not a pipe: a pipe nobody reads fills and blocks the child
        with self.errors.open("w") as err:
            self.proc = subprocess.Popen(
                [str(py), "-c", CHILD, json.dumps({"threads": threads})],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        self.about = self._read()

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        self.proc.wait(timeout=60)
        raise SystemExit(f"facenet-pytorch failed:\n{self.errors.read_text()[-3000:]}")

    def ask(self, **cmd: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def photo(self, name: str, img: np.ndarray, repeats: int, warm: bool) -> dict:
        path = self.work / f"{name.replace('/', '_')}.npy"
        if warm:
            np.save(path, img)
        return self.ask(op="photo", path=str(path), repeats=repeats, warm=warm)

    def lfw(self, lfw: np.ndarray) -> dict:
        np.save(self.work / "lfw_rgb.npy", lfw)
        return self.ask(op="lfw", path=str(self.work / "lfw_rgb.npy"))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


CONFIGS: dict[str, dict[str, Any]] = {  # name -> load_detector options (besides threads)
    "default": {"backend": "auto"},  # what `detect --model mtcnn-face` runs: auto at fp32
    "onnxruntime fp32": {"backend": "onnxruntime", "precision": "fp32"},
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino bf16": {"backend": "openvino", "precision": "bf16"},
    # bf16 in one part of the cascade only (the stages swapped for another precision's): where the faces move
    "openvino bf16 P-Net + fp32 stages": {"backend": "openvino", "precision": "bf16", "stages": "fp32"},
    "openvino fp32 P-Net + bf16 stages": {"backend": "openvino", "precision": "fp32", "stages": "bf16"},
    "onnxruntime int8": {"backend": "onnxruntime", "precision": "int8"},
    "openvino int8": {"backend": "openvino", "precision": "int8"},
}


def variants(name: str, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """A photo as it is, rescaled down and up, grey, and turned a quarter."""
    h, w = rgb.shape[:2]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return {
        name: rgb,
        f"{name} x0.6": cv2.resize(rgb, (int(w * 0.6), int(h * 0.6)), interpolation=cv2.INTER_AREA),
        f"{name} x1.5": cv2.resize(rgb, (int(w * 1.5), int(h * 1.5)), interpolation=cv2.INTER_LINEAR),
        f"{name} grey": np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2)),
        f"{name} turned": np.ascontiguousarray(np.rot90(rgb)),
    }


def group(imgs: list[np.ndarray], side: int = 320) -> np.ndarray:
    """A 2x2 "group photo": four photos, each fitted into a side x side cell."""
    cells = [cv2.resize(im, (side, side), interpolation=cv2.INTER_AREA) for im in imgs[:4]]
    return np.ascontiguousarray(np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:4])]))


class NetworkClock:
    """The wall time a detect spends inside its networks' ``run`` calls (P-Net's levels, R-Net, O-Net;
    the packed graph's call of the small levels):
    what is left of the pipeline if everything but the convolutions took no time at all."""

    def __init__(self, det: Any) -> None:
        self.seconds = 0.0
        packed = [det.runner.packed] if det.runner.packed is not None else []  # the small levels' one call
        for runner in [det.runner, *packed, *(s.runner for s in det.steps if hasattr(s, "runner"))]:
            runner.run = self._timed(runner.run)

    def _timed(self, run: Any) -> Any:
        def timed(batch: np.ndarray) -> Any:
            t0 = time.perf_counter()
            try:
                return run(batch)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


class Ours:
    """One way of ours (a loaded detector), timed photo by photo."""

    def __init__(self, threads: int, options: dict) -> None:
        options = dict(options)
        stages = options.pop("stages", None)  # R-Net and O-Net at another precision than P-Net's
        self.det = load_detector(options.get("model", "mtcnn-face"), threads=threads, **options.get("load", options))
        if stages is not None:  # only the stages, loaded again at their own precision
            self.det.steps = load_stages(self.det.runner, options["backend"], threads=threads, precision=stages)
        self.clock = NetworkClock(self.det)

    def photo(self, rgb: np.ndarray, repeats: int, warm: bool) -> dict:
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self.det.runner:
            if warm:
                self.det.detect(bgr)
            times, network = [], []
            for _ in range(repeats):
                self.clock.seconds = 0.0
                t0 = time.perf_counter()
                d = self.det.detect(bgr)
                times.append(time.perf_counter() - t0)
                network.append(self.clock.seconds)
        pts = d.data.get("landmarks", np.zeros((0, 5, 2)))
        return {
            "boxes": d.xyxy.tolist(),
            "probs": d.score.tolist(),
            "points": pts.tolist(),
            "times": times,
            "network": network,
        }

    def lfw(self, lfw: np.ndarray) -> dict:
        with self.det.runner:
            t0 = time.perf_counter()
            found = [len(self.det.detect(np.ascontiguousarray(im[:, :, ::-1]))) for im in lfw]
        return {"lfw": found, "lfw_ms": 1000 * (time.perf_counter() - t0) / len(lfw)}

    def runs(self) -> str:
        text = describe(self.det, "mtcnn-face").split(" on ", 1)[-1]  # after a run: what OpenVINO computed in
        stages = {s.runner.precision for s in self.det.steps if hasattr(s, "runner")}
        if stages and stages != {self.det.runner.precision}:
            text += f"; R-Net and O-Net {', '.join(sorted(stages))}"
        return text


def side_by_side(
    theirs: Theirs, mine: Ours, imgs: dict[str, np.ndarray], lfw: np.ndarray | None, repeats: int, rounds: int
) -> tuple[dict, dict]:
    """Each photo ``rounds`` times: ``repeats`` of theirs, then ``repeats`` of ours; ms are the medians of all
    the repeats (after a warm-up each, its shapes compiled). Returns (theirs', ours') results."""
    t_out: dict = {"photos": {}, "torch": theirs.about["torch"]}
    m_out: dict = {"photos": {}}
    for name, rgb in imgs.items():
        t_times: list[float] = []
        m_times: list[float] = []
        m_net: list[float] = []
        for r in range(rounds):
            t = theirs.photo(name, rgb, repeats, warm=r == 0)
            m = mine.photo(rgb, repeats, warm=r == 0)
            t_times += t["times"]
            m_times += m["times"]
            m_net += m["network"]
        t_out["photos"][name] = {k: t[k] for k in ("boxes", "probs", "points")} | {
            "ms": 1000 * float(np.median(t_times))
        }
        m_out["photos"][name] = {k: m[k] for k in ("boxes", "probs", "points")} | {
            "ms": 1000 * float(np.median(m_times)),
            "network_ms": 1000 * float(np.median(m_net)),
        }
    if lfw is not None:
        t_out |= theirs.lfw(lfw)
        m_out |= mine.lfw(lfw)
    m_out["runs"] = mine.runs()
    m_out["pipeline"] = mine.det.runner.describe()
    return t_out, m_out


def agreement(theirs: dict, mine: dict) -> dict[str, Any]:
    """Over every photo: faces each finds, the IoU of each face facenet finds with ours (0: missed), the
    largest landmark distance in pixels, and the speed-up per photo."""
    ious, points, speed, extra = [], [], [], 0
    for name, t in theirs["photos"].items():
        m = mine["photos"][name]
        tb, mb = np.asarray(t["boxes"]).reshape(-1, 4), np.asarray(m["boxes"]).reshape(-1, 4)
        pairs = match(mb, tb)
        found = {j: (i, iou) for i, j, iou in pairs}
        for j in range(len(tb)):
            i, iou = found.get(j, (-1, 0.0))
            ious.append(iou)
            if i >= 0:
                tp, mp = np.asarray(t["points"][j]), np.asarray(m["points"][i])
                points.append(float(np.linalg.norm(tp - mp, axis=1).max()))
        extra += len(mb) - len(pairs)
        speed.append(t["ms"] / m["ms"])
    return {
        "faces": len(ious),
        "iou_min": min(ious),
        "iou_099": sum(v >= 0.99 for v in ious),
        "extra": extra,
        "points_max": max(points) if points else float("nan"),
        "speed": speed,
    }


def match(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of boxes a and b by IoU (> 0.3): (i, j, IoU)."""
    if len(a) == 0 or len(b) == 0:
        return []
    iou = box_iou(a.astype(np.float32), b.astype(np.float32))
    pairs = []
    while iou.size and iou.max() > 0.3:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        pairs.append((int(i), int(j), float(iou[i, j])))
        iou[i, :], iou[:, j] = -1, -1
    return pairs


def report(args: argparse.Namespace, theirs: dict, mine: dict[str, dict], skipped: dict[str, str]) -> str:
    base = mine["default"]
    rows = []
    for name, t in theirs["photos"].items():
        m = base["photos"][name]
        tb, mb = np.asarray(t["boxes"]).reshape(-1, 4), np.asarray(m["boxes"]).reshape(-1, 4)
        per_face = ", ".join(f"{iou:.3f}" for _, _, iou in sorted(match(mb, tb), key=lambda p: p[1])) or "-"
        speed, budget = t["ms"] / m["ms"], t["ms"] / 3
        rows.append(
            f"| {name} | {len(tb)} | {len(mb)} | {per_face} | {t['ms']:.1f} | {m['ms']:.1f} | {speed:.2f}x | "
            f"{m['network_ms']:.1f} | {m['network_ms'] / budget:.0%} |"
        )
    summary = []
    for cname, m in mine.items():
        computed = f" ({m['pipeline']})" if " asked, " in m["pipeline"] else ""  # bf16 asked on a CPU without it
        a = agreement(m["theirs"], m)  # each way against theirs measured in turn with it
        summary.append(
            f"| {cname} | {m['runs']}{computed} | {a['iou_099']}/{a['faces']} | {a['iou_min']:.3f} | {a['extra']} | "
            f"{a['points_max']:.2f} | {min(a['speed']):.2f}x | {float(np.median(a['speed'])):.2f}x |"
        )
    summary += [f"| {cname} | not run: {why} | | | | | | |" for cname, why in skipped.items()]
    faces_t, faces_m = sum(n > 0 for n in theirs["lfw"][:100]), sum(n > 0 for n in base["lfw"][:100])
    fire_t, fire_m = sum(n > 0 for n in theirs["lfw"][100:]), sum(n > 0 for n in base["lfw"][100:])
    return "\n".join(
        [
            *header(
                "MTCNN faces: ours vs facenet-pytorch (issues R2 2/6, R3 3/6)",
                f"`python3 benchmarks/mtcnn_vs_facenet.py --repeats {args.repeats} --rounds {args.rounds} "
                f"--threads {args.threads}" + (f" --int8 {args.int8}" if args.int8 else "") + "`",
                f"{args.threads} threads each (ONNX Runtime / OpenVINO threads; torch.set_num_threads)",
            ),
            f"- **Theirs**: {FACENET} (torch {theirs['torch']}, CPU; torchvision's `batched_nms` and `to_tensor` from "
            "a stand-in, see the script). **Ours**: `mtcnn-face` (P-Net over the pyramid through our decode and NMS, "
            "then R-Net and O-Net as batched crop stages), each way below; the photo table is the default, "
            f"`detect --model mtcnn-face` as typed: {base['runs']}.",
            "- **Photos**: five photos, each as it is, x0.6, x1.5, grey and turned a quarter, and a 2x2 group of "
            "four; each photo in turns, theirs then ours, --rounds times --repeats repeats (facenet-pytorch "
            "in a process of its own that waits while ours runs); ms per photo are the median of all the repeats, "
            "after a warm-up (its shapes compiled); each way has its own turns with theirs.",
            "",
            "| way | runs on | faces at IoU >= 0.99 | IoU min | extra faces | landmarks max px | speed-up min | "
            "median |",
            "|---|---|---|---|---|---|---|---|",
            *summary,
            "",
            "| photo (default way) | faces (theirs) | faces (ours) | IoU per face | ms theirs | ms ours | speed-up | "
            "ms ours in the networks | of the 3x budget (theirs / 3) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"- **lfw_subset** (25x25 crops, default way): faces found {faces_m}/100 ours, {faces_t}/100 theirs; "
            f"non-faces firing {fire_m}/100 ours, {fire_t}/100 theirs; {base['lfw_ms']:.2f} vs {theirs['lfw_ms']:.2f} "
            "ms per crop.",
        ]
    )


def calib_images(lfw: np.ndarray, dest: Path, count: int = 16, holdout: int = 3, side: int = 80) -> None:
    """The INT8 calibration set: 3x3 collages of lfw_subset's faces at ``side`` px (faces in turn, wrapping),
    ``count`` under dest/calib and ``holdout`` more under dest/holdout (BGR .png, what calibrate reads)."""
    faces = lfw[:100]
    for k in range(count + holdout):
        tiles = [
            cv2.resize(faces[(9 * k + j) % len(faces)], (side, side), interpolation=cv2.INTER_LINEAR) for j in range(9)
        ]
        rows = [np.concatenate(tiles[r * 3 : r * 3 + 3], axis=1) for r in range(3)]
        folder = dest / ("calib" if k < count else "holdout")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"collage_{k:02d}.png"), np.concatenate(rows, axis=0)[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/mtcnn-bench"))
    ap.add_argument("--repeats", type=int, default=5, help="repeats of a photo per round, each side")
    ap.add_argument("--rounds", type=int, default=3, help="turns theirs and ours take on each photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--int8", help="the INT8 model calibrate wrote for mtcnn-face (its ways are skipped without)")
    ap.add_argument("--ways", default=",".join(CONFIGS), help="comma-separated ways to measure ('default' always)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--record", action="store_true", help="write tests/data/mtcnn_facenet.json")
    ap.add_argument(
        "--calib-images",
        type=Path,
        metavar="DIR",
        help="only write the INT8 calibration collages (DIR/calib, DIR/holdout: lfw_subset faces) and stop",
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base, lfw = photos(args.work)
    if args.calib_images:
        calib_images(lfw, args.calib_images)
        print(f"calibration collages: {args.calib_images}/calib (16), {args.calib_images}/holdout (3)")
        return
    py = setup(args.work)
    imgs: dict[str, np.ndarray] = {}
    for name, rgb in base.items():
        imgs.update(variants(name, rgb) if not name.startswith("tests/") else {name: rgb})
    imgs["group of four"] = group([base[k] for k in ("astronaut", "camera", "grace_hopper", "tests/astronaut.jpg")])
    their = Theirs(py, args.work, args.threads)
    mine: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    theirs: dict = {}
    try:
        for cname in ["default", *[w for w in args.ways.split(",") if w and w != "default"]]:
            options = dict(CONFIGS[cname])
            if options.get("precision") == "int8":
                if not args.int8:
                    skipped[cname] = "no --int8 model"
                    continue
                options = {"model": args.int8, "load": {k: v for k, v in options.items()}}
            try:
                way = Ours(args.threads, options)
                t, mine[cname] = side_by_side(
                    their, way, imgs, lfw if cname == "default" else None, args.repeats, args.rounds
                )
            except OverfeatEdgeError as exc:
                skipped[cname] = str(exc).splitlines()[0][:120]
                continue
            mine[cname]["theirs"] = t
            theirs = theirs or t  # the default way's pairing is the photo table's
    finally:
        their.close()
    text = report(args, theirs, mine, skipped)
    print(text)
    if args.record:
        keep = {k: v for k, v in theirs["photos"].items() if k.startswith("tests/")}
        rec = {
            "source": f"{FACENET}, torch {theirs['torch']} CPU, torchvision stand-in (benchmarks/mtcnn_vs_facenet.py)",
            "photos": {
                k[len("tests/") :]: {"boxes": v["boxes"], "probs": v["probs"], "points": v["points"]}
                for k, v in keep.items()
            },
        }
        (ROOT / "tests" / "data" / "mtcnn_facenet.json").write_text(json.dumps(rec, indent=1) + "\n")
    if not args.no_write:
        write_section("mtcnn", text)


if __name__ == "__main__":
    main()
