"""Where the command runs: the project's folder, found from the working directory as git does.

`modelfleet ...` (the console script) and `python -m modelfleet ...` work from any
folder inside the project: the nearest folder at or above the working directory that
holds `Pulumi.yaml` is the project, and the command runs there, as `pulumi` itself
looks for `Pulumi.yaml` upwards. Paths the user gives (FILE, `--manifest`, `--render`,
a pull's DIR) stay relative to where the user typed them; FILE's default,
`models.yaml`, is the project's own.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cli.arguments import DEFAULT_MANIFEST
from modelfleet.manifest.problems import SourceError

PROJECT_FILE = "Pulumi.yaml"
PATH_ARGUMENTS = ("file", "manifest", "render", "folder")
"""The arguments that name a file or folder, in every command that has them."""


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` holding `Pulumi.yaml`, or None."""
    for folder in (start, *start.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def enter_project(args: argparse.Namespace) -> None:
    """Move to the project's folder, re-expressing the user's paths from there.

    Outside any project the working directory stays, and commands that need a project
    say so. FILE, when not given, becomes `models.yaml`.
    """
    for name in PATH_ARGUMENTS:
        if "\0" in str(getattr(args, name, None) or ""):
            raise SourceError(f"{name.upper()} {getattr(args, name)!r}: a path cannot hold a "
                              "NUL character")
    here = Path.cwd()
    root = project_root(here)
    if root is not None and root != here:
        for name in PATH_ARGUMENTS:
            value = getattr(args, name, None)
            if value is not None:
                setattr(args, name, type(value)(_from(root, here / value)))
        os.chdir(root)
    if hasattr(args, "file") and args.file is None:
        args.file = DEFAULT_MANIFEST


def _from(root: Path, path: Path) -> str:
    """`path` relative to `root` when it lies inside it, else absolute."""
    absolute = os.path.normpath(path)
    relative = os.path.relpath(absolute, root)
    return absolute if relative == ".." or relative.startswith(f"..{os.sep}") else relative
