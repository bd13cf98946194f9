"""What every command group shares: the manifest argument and the shape of a command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

DEFAULT_MANIFEST = "models.yaml"
Command = Callable[[argparse.Namespace], int]
"""A parsed command line in, an exit status out."""
Subparsers = Any  # argparse's _SubParsersAction, which it does not export


def file_argument(parser: argparse.ArgumentParser) -> None:
    """The optional manifest positional, FILE; `cli.project` makes a missing one the
    project's `models.yaml`."""
    parser.add_argument("file", nargs="?", default=None, metavar="FILE",
                        help=f"the manifest (default: the project's {DEFAULT_MANIFEST})")
