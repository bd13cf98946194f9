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
    """The optional manifest positional, FILE, defaulting to `models.yaml`."""
    parser.add_argument("file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE",
                        help=f"the manifest (default {DEFAULT_MANIFEST})")
