"""[torch] OverFeat detection training: windows in, classifier (classes + background) and box head out.

Non-spatial training as in the paper: every sample is a window the size of the network's input,
so the network's maps are 1x1 and it is trained exactly as the fully connected original would be;
at test time the same weights run densely. Loss = cross-entropy over classes + background
(near misses ignored) + ``box_weight`` x L2 on the four box edges of the object's class, on the
windows that overlap an object enough (:mod:`overfeat_edge.train.windows`).

Deterministic: epoch ``e`` draws its windows from ``numpy.random.default_rng([seed, e])`` and
seeds torch (dropout) with ``seed * 1000 + e``, so a run resumed after epoch ``e`` gives the
same weights as one that was never interrupted (on the same machine and thread count).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from overfeat_edge.errors import InputError, ModelError
from overfeat_edge.io import atomic_path
from overfeat_edge.models import create_model, save_checkpoint
from overfeat_edge.models.overfeat import OverFeatNet
from overfeat_edge.pipeline.pyramid import parse_scales
from overfeat_edge.schema import Fields
from overfeat_edge.spec import ModelSpec, default_spec
from overfeat_edge.train.datasets import DetectionDataset, read_image
from overfeat_edge.train.windows import IGNORE, WindowBatch, make_batch

STATE_FORMAT = "overfeat-edge-train/1"


@dataclass
class TrainConfig:
    model: str = "overfeat-mini"
    epochs: int = 16
    steps_per_epoch: int = 200
    batch_size: int = 128
    lr: float = 4e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    box_weight: float = 5.0
    dropout: float = 0.1
    seed: int = 0
    scales: list[str] = field(default_factory=list)
    threads: int | None = None
    hard_fraction: float = 0.15  # of each batch, from mined hard negatives (after the first epoch)
    mine_images: int = 64  # images searched for hard negatives after each epoch

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise InputError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.hard_fraction < 1:
            raise InputError(f"--hard-fraction must be in [0, 1), got {self.hard_fraction}")


@dataclass
class EpochStats:
    epoch: int
    loss: float
    cls_loss: float
    box_loss: float
    accuracy: float  # over non-ignored windows
    windows_per_s: float


def state_path(out: Path) -> Path:
    """Where the resumable training state of checkpoint ``out`` lives."""
    return out.with_name(out.stem + ".state.pt")


def _load_images(data: DetectionDataset) -> list[np.ndarray]:
    return [read_image(s.path) for s in data.samples]


def _lr(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def loss_fn(
    logits: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor, box_class: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy over non-ignored windows, mean L2 over box edges of windows with a target).

    logits (N, C+1, 1, 1), boxes (N, 4C, 1, 1), labels (N,), targets (N, 4), box_class (N,).
    """
    logits = logits.flatten(1)
    cls = F.cross_entropy(logits, labels, ignore_index=IGNORE) if (labels != IGNORE).any() else logits.sum() * 0
    has = box_class >= 0
    if not has.any():
        return cls, boxes.sum() * 0
    pred = boxes.flatten(1).view(len(boxes), -1, 4)[has, box_class[has]]  # (M, 4)
    return cls, ((pred - targets[has]) ** 2).sum(dim=1).mean()


class Trainer:
    """Trains ``cfg.model`` on ``data``; checkpoints after every epoch (``out`` + its state file)."""

    def __init__(self, data: DetectionDataset, cfg: TrainConfig, out: Path) -> None:
        if not data.samples:
            raise InputError("the training set has no images")
        self.data, self.cfg, self.out = data, cfg, out
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # windows give 1x1 maps, identical in both strides; coarse is the cheaper graph to train
        self.net: OverFeatNet = create_model(
            cfg.model,
            num_classes=len(data.class_names),
            background=True,
            fine_stride=False,
            seed=cfg.seed,
            dropout=cfg.dropout,
        )
        base = default_spec(self.net.arch, list(data.class_names))
        self.spec: ModelSpec = ModelSpec(
            arch=base.arch,
            class_names=base.class_names,
            fine_stride=True,
            scales=tuple(cfg.scales) or base.scales,
        )
        self.images = _load_images(data)
        scales = parse_scales(list(self.spec.scales))
        self.max_scales = [max(sc.input_hw(img.shape[:2])[0] / img.shape[0] for sc in scales) for img in self.images]
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.hard: dict[int, np.ndarray] = {}

    # ---- resumable state ---------------------------------------------------------------
    def resume(self) -> bool:
        """Load ``out``'s training state if there is one; returns whether it did."""
        path = state_path(self.out)
        if not path.is_file():
            return False
        try:
            st = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"{path}: not a readable training state ({type(exc).__name__})") from None
        if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
            raise ModelError(f"{path}: not an overfeat-edge training state")
        f = Fields(st, f"{path}: training state")
        config, model, optimizer = f.obj("config").d, f.obj("model").d, f.obj("optimizer").d
        epoch, history = f.integer("epoch", 0, 1 << 20), f.items("history")
        saved = {k: v for k, v in config.items() if k not in ("epochs", "threads")}
        now = {k: v for k, v in asdict(self.cfg).items() if k not in ("epochs", "threads")}
        if saved != now:
            diff = ", ".join(f"{k}: {saved.get(k)} -> {now.get(k)}" for k in now if saved.get(k) != now.get(k))
            raise InputError(f"{path}: cannot resume with different settings ({diff}); use a new --out")
        try:
            self.net.load_state_dict(model)
            self.opt.load_state_dict(optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: its weights do not fit this run ({str(exc).splitlines()[0][:160]})") from None
        self.epoch, self.history = epoch, list(history)
        return True

    def _save(self) -> None:
        extra: dict[str, Any] = {"train": asdict(self.cfg), "epoch": self.epoch, "history": self.history}
        save_checkpoint(self.out, self.net, self.spec, extra)
        state = {
            "format": STATE_FORMAT,
            "config": asdict(self.cfg),
            "epoch": self.epoch,
            "history": self.history,
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
        }
        with atomic_path(state_path(self.out)) as tmp:
            torch.save(state, tmp)

    # ---- hard negatives (paper 4.5: "the most offending" negative windows) -------------------
    @torch.no_grad()
    def mine(self, rng: np.random.Generator, per_image: int = 16, min_prob: float = 0.3) -> int:
        """Run the network densely over ``cfg.mine_images`` training images at every pyramid scale and
        keep, per image, the ``per_image`` most confident windows that are background.

        The windows replace the previous pool; returns how many were found.
        """
        from overfeat_edge.pipeline.decode import window_boxes
        from overfeat_edge.pipeline.preprocess import level_inputs
        from overfeat_edge.pipeline.pyramid import plan_levels
        from overfeat_edge.train.windows import assign

        net, spec = self.net, self.spec.with_fine_stride(False)  # the training graph is the coarse one
        net.eval()
        scales = parse_scales(list(spec.scales))
        ids = rng.choice(len(self.images), size=min(self.cfg.mine_images, len(self.images)), replace=False)
        self.hard = {}
        for j in sorted(int(i) for i in ids):
            img, s = self.images[j], self.data.samples[j]
            levels = plan_levels(spec.arch, False, img.shape[:2], scales)
            found: list[tuple[float, np.ndarray]] = []
            for lv, x in zip(levels, level_inputs(img, levels, spec), strict=True):
                probs = torch.softmax(net(torch.from_numpy(x))[0], dim=1)[0, 1:].amax(0).numpy()
                wins = window_boxes(lv, spec)
                for y, xx in zip(*np.nonzero(probs >= min_prob), strict=True):
                    w = wins[y, xx]
                    side = min(w[2] - w[0], w[3] - w[1])
                    w = np.array([w[0], w[1], w[0] + side, w[1] + side], np.float32)
                    if assign(s.boxes, s.labels, w)[0] == 0:
                        found.append((float(probs[y, xx]), w))
            if found:
                found.sort(key=lambda t: -t[0])
                self.hard[j] = np.stack([w for _, w in found[:per_image]])
        net.train()
        return sum(len(v) for v in self.hard.values())

    # ---- the loop ------------------------------------------------------------------------
    def _step(self, b: WindowBatch, step: int, total: int, sums: np.ndarray) -> None:
        for g in self.opt.param_groups:
            g["lr"] = _lr(step, total, self.cfg)
        labels = torch.from_numpy(b.labels)
        logits, boxes = self.net(torch.from_numpy(b.images))
        cls, box = loss_fn(logits, boxes, labels, torch.from_numpy(b.boxes), torch.from_numpy(b.box_class))
        loss = cls + self.cfg.box_weight * box
        if not torch.isfinite(loss):
            kept = f"{self.out} keeps epoch {self.epoch}" if self.epoch else f"nothing was written to {self.out}"
            raise ModelError(f"the training loss became {loss.item()} at step {step}; stopped ({kept})")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        valid = labels != IGNORE
        correct = (logits.detach().flatten(1).argmax(1) == labels)[valid].sum().item()
        sums[:5] += [loss.item(), cls.item(), box.item(), correct, int(valid.sum())]
        sums[5] = loss.item()

    def run(
        self,
        on_step: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> list[EpochStats]:
        """Train from the current epoch to ``cfg.epochs``, checkpointing after each one.

        ``on_step(epoch, step, loss)`` after every batch, ``on_epoch(stats)`` after every epoch.
        """
        cfg, net = self.cfg, self.net
        total = cfg.epochs * cfg.steps_per_epoch
        done: list[EpochStats] = []
        while self.epoch < cfg.epochs:
            e = self.epoch
            rng = np.random.default_rng([cfg.seed, e])
            torch.manual_seed(cfg.seed * 1000 + e)
            if e > 0 and cfg.hard_fraction > 0:
                self.mine(rng)
            net.train()
            sums = np.zeros(6)  # loss, cls, box, correct, counted, last loss
            t0 = time.perf_counter()

            # serial on purpose: on 2 cores a batch-cutting thread beside torch's threads measured
            # no faster (0.31 vs 0.32 s/step) and, with OpenCV's own pool, many times slower
            for step in range(cfg.steps_per_epoch):
                b = make_batch(
                    rng,
                    self.data.samples,
                    self.images,
                    self.spec,
                    cfg.batch_size,
                    self.max_scales,
                    self.hard,
                    cfg.hard_fraction,
                )
                self._step(b, e * cfg.steps_per_epoch + step, total, sums)
                if on_step is not None:
                    on_step(e, step, float(sums[5]))
            n = cfg.steps_per_epoch
            stats = EpochStats(
                epoch=e + 1,
                loss=sums[0] / n,
                cls_loss=sums[1] / n,
                box_loss=sums[2] / n,
                accuracy=sums[3] / max(sums[4], 1),
                windows_per_s=n * cfg.batch_size / (time.perf_counter() - t0),
            )
            if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):
                kept = f"{self.out} keeps epoch {self.epoch}" if self.epoch else f"nothing was written to {self.out}"
                raise ModelError(f"the weights became NaN or infinite in epoch {e + 1}; stopped ({kept})")
            self.epoch += 1
            self.history.append({k: float(v) for k, v in asdict(stats).items()})
            net.eval()
            self._save()
            done.append(stats)
            if on_epoch is not None:
                on_epoch(stats)
        net.eval()
        return done
