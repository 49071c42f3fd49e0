"""train, eval and demo from the command line: outputs, resuming, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest

from overfeat_edge.commands import main

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("torch", reason="train and export need torch")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    assert main(["data", "synth", "--out", str(root), "--images", "4", "--seed", "5"]) == 0
    return root


TINY = ["--steps-per-epoch", "2", "--batch-size", "8", "--mine-images", "2", "--threads", "1"]


def test_train_resumes_then_export_and_eval(synth_root: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "m.pt"
    assert main(["train", "--data", str(synth_root), "--out", str(ckpt), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(synth_root), "--out", str(ckpt), "--epochs", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "resumed" in out
    # not a terminal (a log): a line per step here (2 steps an epoch, a line each tenth of an epoch), from
    # where the resumed run starts, with the time left until the last
    steps = re.findall(r"^train: (\d)/4 \((\d+)%\), epoch (\d)/2, loss \d+\.\d{3}(, .+ left)?$", out, re.M)
    assert [s[:3] for s in steps] == [("3", "75", "2"), ("4", "100", "2")]
    assert steps[0][3] and not steps[1][3]
    assert out.splitlines()[0].strip()  # no blank line before the first output
    assert "(overfeat-mini, 2 epochs)" in out
    onnx = tmp_path / "m.onnx"
    assert main(["export", "--model", str(ckpt), "--out", str(onnx), "--no-check"]) == 0
    js = tmp_path / "eval.json"
    assert main(["eval", "--data", str(synth_root), "--model", str(onnx), "--ablation", "--json", str(js)]) == 0
    rows = json.loads(js.read_text())["rows"]
    got = {(r["stride"], r["n_scales"], r["merge"]) for r in rows}
    assert got == {(s, n, m) for s in ("coarse", "fine") for n in (1, 3, 6) for m in ("greedy", "nms")}
    for r in rows:
        assert 0 <= r["mAP"] <= r["mAP50"] <= 1 and r["ms_per_frame"] > 0


def test_every_train_option_reaches_the_training_config(synth_root: Path, tmp_path: Path) -> None:
    """train's options that configure the training arrive in it as given: the saved state's config."""
    import torch

    given = {
        "model": "overfeat-mini@0.5",
        "epochs": 1,
        "steps_per_epoch": 2,
        "batch_size": 8,
        "lr": 2e-3,
        "box_weight": 3.0,
        "seed": 7,
        "hard_fraction": 0.25,
        "mine_images": 2,
        "threads": 1,
    }
    args = [a for k, v in given.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    out = tmp_path / "m.pt"
    assert main(["train", "--data", str(synth_root), "--out", str(out), *args, "-s", "160", "-s", "200"]) == 0
    config = torch.load(tmp_path / "m.state.pt", weights_only=True)["config"]
    assert {k: config[k] for k in given} == given and config["scales"] == ["160", "200"]
    # those train has no option for keep TrainConfig's defaults
    assert (config["weight_decay"], config["warmup_steps"], config["dropout"]) == (1e-4, 100, 0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "nowhere", "--out", "x.pt"], "nowhere does not exist"),
        (["train", "--data", "{data}", "--out", "x.txt"], "--out must end in .pt"),
        (
            ["train", "--data", "{data}", "--out", "{tmp}/x.pt", "--epochs", "0"],
            "--epochs must be an integer in [1, 10000], got 0",
        ),
        (["eval", "--data", "{data}", "--model", "missing.onnx"], "missing.onnx"),
    ],
)
def test_bad_input_is_one_line(args, message, synth_root: Path, tmp_path: Path, capsys) -> None:
    args = [a.format(data=synth_root, tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) <= 2 and "Traceback" not in err


def test_eval_refuses_a_model_with_other_classes(synth_root: Path, fast_small_onnx: Path, capsys) -> None:
    assert main(["eval", "--data", str(synth_root), "--model", str(fast_small_onnx), "--scales", "240"]) == 2
    assert "the model has 2 classes, the dataset 3" in capsys.readouterr().err


def test_demo_writes_video_and_jsonl(tmp_path: Path) -> None:
    from overfeat_edge.runtime.base import shipped_models

    if "overfeat-mini-shapes" not in shipped_models():
        pytest.fail("the demo model overfeat-mini-shapes is not shipped in overfeat_edge/assets")
    assert main(["demo", "--out", str(tmp_path), "--frames", "6", "--threads", "2"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "demo.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()
    recs = [json.loads(x) for x in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(6))
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*.tmp*"))


def test_export_named_model_with_weights(tmp_path: Path, capsys) -> None:
    """--model NAME --weights CKPT: the checkpoint's network must be NAME (a registered one has no base)."""
    ckpt = ROOT / "overfeat_edge" / "assets" / "overfeat-mini-shapes" / "model.pt"
    onnx = tmp_path / "m.onnx"
    assert main(["export", "--model", "overfeat-mini", "--weights", str(ckpt), "--out", str(onnx)]) == 0
    assert onnx.is_file()
    assert main(["export", "--model", "overfeat-fast", "--weights", str(ckpt), "--out", str(onnx)]) == 2
    assert "does not match the checkpoint's overfeat-mini" in capsys.readouterr().err


def test_train_takes_the_train_split_only(tmp_path: Path, capsys) -> None:
    # images/train (2 images) and images/val (1): train must not see val (it once read all 3)
    from tests.train.test_data import DATA_YAML, _yolo_split_dataset

    root = tmp_path / "d"
    _yolo_split_dataset(root)
    (root / "classes.txt").write_text("square\ndisc\n")
    for data in (root, root / "data.yaml"):  # images/<split> folders, then a data.yaml's train:
        if data.name == "data.yaml":
            data.write_text(DATA_YAML)
        out = tmp_path / f"{data.name}.pt"
        assert main(["train", "--data", str(data), "--out", str(out), "--epochs", "1", *TINY]) == 0
        assert "2 images, classes: square, disc" in capsys.readouterr().out
