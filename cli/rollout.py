"""`promote` and `rollback`: release steps as edits of the manifest, for review in git."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.arguments import Subparsers, file_argument
from modelfleet.diff.report import render_text
from modelfleet.rollout import step


def add_commands(commands: Subparsers) -> None:
    """Add `promote` and `rollback`."""
    promote = commands.add_parser(
        "promote", help="make a candidate the model's version, artifact and image (edits FILE)")
    promote.add_argument("model", metavar="MODEL")
    promote.add_argument("candidate", metavar="CANDIDATE")
    file_argument(promote)
    promote.set_defaults(command=cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="restore a model's entry as it was at a git ref (edits FILE)")
    rollback.add_argument("model", metavar="MODEL")
    rollback.add_argument("--to", required=True, metavar="REF", dest="ref",
                          help="git ref (tag, branch, sha, HEAD~2) to take the model from")
    file_argument(rollback)
    rollback.set_defaults(command=cmd_rollback)


def cmd_promote(args: argparse.Namespace) -> int:
    return report_step(step.promote(Path(args.file), args.model, args.candidate, args.file))


def cmd_rollback(args: argparse.Namespace) -> int:
    return report_step(step.rollback(Path(args.file), args.model, args.ref, args.file))


def report_step(done: step.Step) -> int:
    """Print a release step's warnings, its manifest diff and its summary; exit status 0."""
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if done.diff is not None:
        sys.stdout.write(render_text(done.diff))
    elif done.written:
        print("note: the file's models did not resolve before this change, so there is no diff",
              file=sys.stderr)
    review = "; review it with `git diff`, then commit" if done.written else ""
    print(f"{done.summary}{review}")
    return 0
