"""Training: the loss against numpy, determinism, resuming, and refusing a mismatched resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from overfeat_edge.errors import InputError  # noqa: E402
from overfeat_edge.train.datasets import read_coco  # noqa: E402
from overfeat_edge.train.synth import write_coco  # noqa: E402
from overfeat_edge.train.trainer import TrainConfig, Trainer, loss_fn, state_path  # noqa: E402
from overfeat_edge.train.windows import IGNORE  # noqa: E402


def test_loss_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 4)).astype(np.float32)  # 3 classes + background
    boxes = rng.normal(size=(4, 12)).astype(np.float32)
    labels = np.array([0, 2, IGNORE, 3])
    targets = rng.random((4, 4)).astype(np.float32)
    box_class = np.array([-1, 1, 0, 2])
    cls, box = loss_fn(
        torch.from_numpy(logits)[..., None, None],
        torch.from_numpy(boxes)[..., None, None],
        torch.from_numpy(labels),
        torch.from_numpy(targets),
        torch.from_numpy(box_class),
    )
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    want_cls = -np.mean([logp[0, 0], logp[1, 2], logp[3, 3]])  # the ignored window left out
    want_box = np.mean([((boxes[i, 4 * c : 4 * c + 4] - targets[i]) ** 2).sum() for i, c in [(1, 1), (2, 0), (3, 2)]])
    assert cls.item() == pytest.approx(want_cls, rel=1e-5)
    assert box.item() == pytest.approx(want_box, rel=1e-5)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("synth")
    write_coco(root, images=6, seed=11)
    return read_coco(root)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, steps_per_epoch=2, batch_size=8, mine_images=2, threads=1, warmup_steps=1, seed=3)
    return TrainConfig(**{**base, **kw})


def _weights(path: Path) -> dict[str, np.ndarray]:
    from overfeat_edge.models import load_checkpoint

    net, _, _ = load_checkpoint(path)
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def test_same_seed_same_weights_and_resume_equals_uninterrupted(tiny_data, tmp_path: Path) -> None:
    a = Trainer(tiny_data, _cfg(), tmp_path / "a.pt")
    a.run()
    b1 = Trainer(tiny_data, _cfg(epochs=1), tmp_path / "b.pt")  # stopped after one epoch...
    b1.run()
    b2 = Trainer(tiny_data, _cfg(), tmp_path / "b.pt")  # ...and resumed for the second
    assert b2.resume() and b2.epoch == 1
    b2.run()
    wa, wb = _weights(tmp_path / "a.pt"), _weights(tmp_path / "b.pt")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    c = Trainer(tiny_data, _cfg(seed=4), tmp_path / "c.pt")
    c.run()
    wc = _weights(tmp_path / "c.pt")
    assert not all(np.array_equal(wa[k], wc[k]) for k in wa)
    assert len(b2.history) == 2 and state_path(tmp_path / "b.pt").is_file()


def test_resume_with_other_settings_is_refused(tiny_data, tmp_path: Path) -> None:
    Trainer(tiny_data, _cfg(epochs=1), tmp_path / "m.pt").run()
    with pytest.raises(InputError, match="lr"):
        Trainer(tiny_data, _cfg(lr=1e-2), tmp_path / "m.pt").resume()


def test_mining_finds_only_background_windows(tiny_data, tmp_path: Path) -> None:
    from overfeat_edge.train.windows import assign

    t = Trainer(tiny_data, _cfg(mine_images=6), tmp_path / "m.pt")
    n = t.mine(np.random.default_rng(0), min_prob=0.0)  # untrained: every window is "confident"
    assert n > 0
    for j, wins in t.hard.items():
        s = tiny_data.samples[j]
        assert all(assign(s.boxes, s.labels, w)[0] == 0 for w in wins)


def test_bad_config() -> None:
    with pytest.raises(InputError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(InputError, match="hard-fraction"):
        TrainConfig(hard_fraction=1.0)
