"""The `python -m modelfleet` parser: every command group's subcommands, and the exit status.

Bad input is reported as `ManifestError` (every located problem) or `SourceError`
(one message) and becomes exit 1 with the messages on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cli import artifact, manifest, plan, registry, rollout
from cli.arguments import Command
from cli.project import enter_project
from modelfleet.diff.report import plural
from modelfleet.manifest.problems import ManifestError, SourceError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (default `sys.argv[1:]`); its exit status (0, 1, 2 or 3)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    started_in = os.getcwd()
    try:
        enter_project(args)
        status = command(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as shell tools do, and keep Python
        # from reporting the failed flush of stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    except ManifestError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{plural(len(error.problems), 'problem')}; nothing was done", file=sys.stderr)
        return 1
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        os.chdir(started_in)


def entry() -> None:
    """The `modelfleet` console script (pyproject.toml, [project.scripts])."""
    sys.exit(main())


BROKEN_PIPE = 141
"""The status a shell gives a command its reader stopped (128 + SIGPIPE)."""


class _CommandParser(argparse.ArgumentParser):
    """A command's parser that takes options between positionals: `rollback MODEL --to REF FILE`.

    Plain argparse gives an optional positional (FILE) its default as soon as it
    meets the first option, and then refuses FILE as unrecognized.
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
            self, args: Sequence[str] | None = None,
            namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        nested = any(action.nargs == argparse.PARSER for action in self._actions)
        if self._intermixing or nested:  # intermixed parsing calls back in, and cannot
            return super().parse_known_args(args, namespace)  # take subcommands: parse plainly
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: manifest commands, plan, release steps, registry."""
    parser = argparse.ArgumentParser(
        prog="modelfleet",
        description="Validate, diff, plan and release a modelfleet model manifest; "
                    "query its registry.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND",
                                     parser_class=_CommandParser)
    manifest.add_commands(commands)
    plan.add_commands(commands)
    rollout.add_commands(commands)
    artifact.add_commands(commands)
    manifest.add_schema_command(commands)
    registry.add_commands(commands)
    return parser
