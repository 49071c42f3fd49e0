"""data synth: the generated COCO dataset used for tests, training and the demo."""

from __future__ import annotations

from pathlib import Path

import typer
from typing_extensions import Annotated

from overfeat_edge.commands.common import HelpGroup, check_number, check_output, command, console, keep
from overfeat_edge.commands.progress import Steps
from overfeat_edge.words import plural

data_app = typer.Typer(help="Datasets: generate synthetic scenes.", no_args_is_help=True, cls=HelpGroup)


def synth(
    out: Annotated[Path, typer.Option(help="Folder to write images/ and annotations.json into.")],
    images: Annotated[int, typer.Option(help="Number of images.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same dataset.")] = 0,
) -> None:
    """Write a COCO dataset of generated scenes (3 classes, sizes over 5x, clutter, overlap).

    Example: overfeat-edge data synth --out runs/synth --images 200
    """
    from overfeat_edge.train import synth as gen

    check_output(out, "--out", folder=True)
    check_number("--images", images, 1, 1_000_000)
    check_number("--seed", seed, 0, 2**32 - 1)

    def advance() -> None:
        steps.advance()
        keep(f"{steps.done} of {images} images written to {out / 'images'}; no annotations.json yet (run again)")

    with Steps(f"generating {plural(images, 'scene')}", images) as steps:
        path = gen.write_coco(out, images, seed, on_image=advance)
    console.print(f"wrote {path} ({plural(images, 'image')}, classes: {', '.join(gen.CLASSES)}, seed {seed})")


def register(app: typer.Typer) -> None:
    command(data_app, synth)
    app.add_typer(data_app, name="data")
