"""Runs the same Typer app as the ``overfeat-edge`` console script: ``python cli.py --help``."""

import sys

from overfeat_edge.commands import main

if __name__ == "__main__":
    sys.exit(main())
