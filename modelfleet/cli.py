"""`python -m modelfleet`: validate, diff and history of a model manifest; release steps.

Exit status: 0 success, 1 a problem with the input (every message on stderr),
2 a usage error. Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from modelfleet.affected import stack_impacts
from modelfleet.diff import diff_models
from modelfleet.gitsource import FileAbsentError, ManifestText, read_manifest
from modelfleet.history import history_json, model_history, render_history
from modelfleet.jsonschema import SCHEMA_PATH, schema_text
from modelfleet.load import check_source, load_manifest
from modelfleet.problems import ManifestError, SourceError
from modelfleet.report import RENDERERS, render_text
from modelfleet.resolve import Resolution, resolve
from modelfleet.rollout import step as rollout
from modelfleet.stacks import list_stacks, load_stack
from modelregistry.commands import add_commands as add_registry_commands

DEFAULT_MANIFEST = "models.yaml"
Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args)
    except ManifestError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        count = len(error.problems)
        print(f"{count} problem{'s' if count != 1 else ''}; nothing was done", file=sys.stderr)
        return 1
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


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
    parser = argparse.ArgumentParser(
        prog="python -m modelfleet",
        description="Validate, diff and trace a modelfleet model manifest.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND",
                                     parser_class=_CommandParser)

    validate = commands.add_parser("validate", help="check a manifest; exit 1 on any problem")
    _file_argument(validate)
    validate.add_argument("--environment", "-e", help="check this environment only "
                          "(default: without overrides and every environment the file names)")
    validate.set_defaults(command=cmd_validate)

    diff = commands.add_parser("diff", help="what changed between two revisions, model by model")
    _file_argument(diff)
    diff.add_argument("--base", default="HEAD", help="git ref to compare from (default HEAD)")
    diff.add_argument("--head", default=None,
                      help="git ref to compare to (default: the working tree)")
    diff.add_argument("--environment", "-e", help="compare as deployed to this environment")
    diff.add_argument("--format", choices=sorted(RENDERERS), default="text")
    diff.set_defaults(command=cmd_diff)

    history = commands.add_parser("history", help="the commits that changed one model")
    history.add_argument("model", metavar="MODEL")
    _file_argument(history)
    history.add_argument("--environment", "-e", help="the model as deployed to this environment")
    history.add_argument("--format", choices=["text", "json"], default="text")
    history.set_defaults(command=cmd_history)

    plan = commands.add_parser(
        "plan", help="what `pulumi up` of a stack would declare: offline, no credentials")
    plan.add_argument("--stack", required=True, help="the stack, e.g. dev (stacks/Pulumi.dev.yaml)")
    plan.add_argument("--manifest", help="plan this manifest instead of the stack's own")
    plan.add_argument("--base", metavar="REF",
                      help="also plan the stack as of git ref REF and show what changes")
    plan.add_argument("--render", metavar="DIR",
                      help="write Kubernetes objects as YAML and AWS inputs as JSON to DIR")
    plan.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    plan.add_argument("--fail-on", choices=["info", "warning", "danger"], metavar="LEVEL",
                      help="exit 3 after printing when a risk of LEVEL (info, warning, danger) "
                           "or above is flagged")
    plan.set_defaults(command=cmd_plan)

    stacks = commands.add_parser("stacks", help="the project's stacks, or those a change affects")
    stacks.add_argument("--affected", metavar="BASE",
                        help="only the stacks whose deployment differs from git ref BASE")
    stacks.add_argument("--format", choices=["text", "json"], default="text")
    stacks.set_defaults(command=cmd_stacks)

    promote = commands.add_parser(
        "promote", help="make a candidate the model's version, artifact and image (edits FILE)")
    promote.add_argument("model", metavar="MODEL")
    promote.add_argument("candidate", metavar="CANDIDATE")
    _file_argument(promote)
    promote.set_defaults(command=cmd_promote)

    rollback = commands.add_parser(
        "rollback", help="restore a model's entry as it was at a git ref (edits FILE)")
    rollback.add_argument("model", metavar="MODEL")
    rollback.add_argument("--to", required=True, metavar="REF", dest="ref",
                          help="git ref (tag, branch, sha, HEAD~2) to take the model from")
    _file_argument(rollback)
    rollback.set_defaults(command=cmd_rollback)

    schema = commands.add_parser("schema", help="print the manifest's JSON Schema")
    schema.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH}")
    schema.set_defaults(command=cmd_schema)
    add_registry_commands(commands)
    return parser


def _file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE",
                        help=f"the manifest (default {DEFAULT_MANIFEST})")


def cmd_validate(args: argparse.Namespace) -> int:
    source = read_manifest(Path(args.file), None, args.file)
    manifest = check_source(source, args.environment)
    environments = [args.environment] if args.environment else manifest.environments()
    count = len(manifest.entries)
    scope = f"; environments checked: {', '.join(environments)}" if environments else ""
    print(f"{args.file}: valid, {count} model{'s' if count != 1 else ''}{scope}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    file = Path(args.file)
    head = read_manifest(file, args.head, args.file)
    try:
        base: ManifestText | None = read_manifest(file, args.base, args.file)
    except FileAbsentError as absent:
        print(f"note: {absent}; every model counts as added", file=sys.stderr)
        base = None
    head_models = _resolved(head, args.environment).models
    base_models = _resolved(base, args.environment).models if base else ()
    diff = diff_models(base_models, head_models, environment=args.environment,
                       base_label=base.label if base else f"{args.base} (no manifest)",
                       head_label=head.label)
    sys.stdout.write(RENDERERS[args.format](diff))
    return 0


def _resolved(source: ManifestText, environment: str | None) -> Resolution:
    return resolve(load_manifest(source), environment)


def cmd_plan(args: argparse.Namespace) -> int:
    # The planner runs the Pulumi program: only this command loads Pulumi and the providers.
    from planner.command import run  # noqa: PLC0415

    return run(args)


def cmd_stacks(args: argparse.Namespace) -> int:
    root = Path.cwd()
    if args.affected:
        impacts = [i for i in stack_impacts(root, args.affected) if i.reason]
        rows = [(i.stack, i.reason or "") for i in impacts]
    else:
        rows = []
        for name in list_stacks(root):
            stack = load_stack(root, name)
            ref = stack.get("modelfleet:manifestRef") or "working tree"
            team = stack.get("modelfleet:team") or "all teams"
            rows.append((name, f"{stack.get('modelfleet:environment')}, {team}, {ref}"))
    if args.format == "json":
        print(json.dumps([name for name, _ in rows]))
    else:
        for name, detail in rows:
            print(f"{name}\t{detail}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.write:
        Path(SCHEMA_PATH).write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(schema_text())
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    return _report_step(rollout.promote(Path(args.file), args.model, args.candidate, args.file))


def cmd_rollback(args: argparse.Namespace) -> int:
    return _report_step(rollout.rollback(Path(args.file), args.model, args.ref, args.file))


def _report_step(step: rollout.Step) -> int:
    for warning in step.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if step.diff is not None:
        sys.stdout.write(render_text(step.diff))
    elif step.written:
        print("note: the file's models did not resolve before this change, so there is no diff",
              file=sys.stderr)
    done = "; review it with `git diff`, then commit" if step.written else ""
    print(f"{step.summary}{done}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    entries = model_history(Path(args.file), args.model, args.environment)
    if not entries:
        print(f"error: model '{args.model}' does not appear in the committed history of "
              f"{args.file}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(history_json(args.model, entries), indent=2))
    else:
        sys.stdout.write(render_history(args.model, entries))
    return 0
