"""`validate`, `diff`, `history`, `stacks`, `schema`: the manifest, its history, its stacks."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from cli.arguments import Subparsers, file_argument
from modelfleet.diff.compare import diff_models
from modelfleet.diff.report import RENDERERS, plural
from modelfleet.git.history import history_json, model_history, render_history
from modelfleet.git.source import FileAbsentError, ManifestText, read_manifest
from modelfleet.manifest.jsonschema import SCHEMA_PATH, schema_text
from modelfleet.manifest.load import check_source, load_manifest
from modelfleet.manifest.parse import Manifest
from modelfleet.manifest.problems import ManifestError, Problem, SourceError
from modelfleet.manifest.resolve import Resolution, resolve
from modelfleet.stacks.affected import stack_impacts
from modelfleet.stacks.config import list_stacks, load_stack
from modelfleet.stacks.environments import (
    deployed_environments,
    did_you_mean,
    undeployed_overrides,
)


def add_commands(commands: Subparsers) -> None:
    """Add `validate`, `diff`, `history` and `stacks`."""
    validate = commands.add_parser("validate", help="check a manifest; exit 1 on any problem")
    file_argument(validate)
    validate.add_argument("--environment", "-e", help="check this environment only "
                          "(default: without overrides and every environment the file names)")
    validate.add_argument("--strict", action="store_true",
                          help="fail (exit 1) on warnings too, such as an environment override "
                               "no stack deploys")
    validate.set_defaults(command=cmd_validate)

    diff = commands.add_parser("diff", help="what changed between two revisions, model by model")
    file_argument(diff)
    diff.add_argument("--base", default="HEAD", help="git ref to compare from (default HEAD)")
    diff.add_argument("--head", default=None,
                      help="git ref to compare to (default: the working tree)")
    diff.add_argument("--environment", "-e", help="compare as deployed to this environment")
    diff.add_argument("--format", choices=sorted(RENDERERS), default="text")
    diff.set_defaults(command=cmd_diff)

    history = commands.add_parser("history", help="the commits that changed one model")
    history.add_argument("model", metavar="MODEL")
    file_argument(history)
    history.add_argument("--environment", "-e", help="the model as deployed to this environment")
    history.add_argument("--format", choices=["text", "json"], default="text")
    history.set_defaults(command=cmd_history)

    stacks = commands.add_parser("stacks", help="the project's stacks, or those a change affects")
    stacks.add_argument("--affected", metavar="BASE",
                        help="only the stacks whose deployment differs from git ref BASE")
    stacks.add_argument("--format", choices=["text", "json"], default="text")
    stacks.set_defaults(command=cmd_stacks)


def add_schema_command(commands: Subparsers) -> None:
    """Add `schema`."""
    schema = commands.add_parser("schema", help="print the manifest's JSON Schema")
    schema.add_argument("--write", action="store_true", help=f"write it to {SCHEMA_PATH}")
    schema.set_defaults(command=cmd_schema)


def cmd_validate(args: argparse.Namespace) -> int:
    source = read_manifest(Path(args.file), None, args.file)
    manifest = check_source(source, args.environment)
    _note_unknown_environment(args.environment, manifest)
    warnings = _warnings(manifest)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if warnings and args.strict:
        print(f"{plural(len(warnings), 'warning')} and --strict: {args.file} is refused",
              file=sys.stderr)
        return 1
    environments = [args.environment] if args.environment else manifest.environments()
    count = len(manifest.entries)
    scope = f"; environments checked: {', '.join(environments)}" if environments else ""
    print(f"{args.file}: valid, {plural(count, 'model')}{scope}")
    return 0


def _warnings(manifest: Manifest) -> list[Problem]:
    """What validates but is likely a mistake: overrides of environments no stack deploys
    (checked when the command runs in a project with stacks)."""
    try:
        deployed = deployed_environments(Path.cwd())
    except (SourceError, ManifestError):
        return []
    return undeployed_overrides(manifest, deployed) if deployed else []


def cmd_diff(args: argparse.Namespace) -> int:
    file = Path(args.file)
    head = read_manifest(file, args.head, args.file)
    try:
        base: ManifestText | None = read_manifest(file, args.base, args.file)
    except FileAbsentError as absent:
        print(f"note: {absent}; every model counts as added", file=sys.stderr)
        base = None
    head_manifest = load_manifest(head)
    _note_unknown_environment(args.environment, head_manifest)
    head_models = resolve(head_manifest, args.environment).models
    base_models = _resolved(base, args.environment).models if base else ()
    diff = diff_models(base_models, head_models, environment=args.environment,
                       base_label=base.label if base else f"{args.base} (no manifest)",
                       head_label=head.label)
    sys.stdout.write(RENDERERS[args.format](diff))
    return 0


def _note_unknown_environment(environment: str | None, manifest: Manifest) -> None:
    """A likely typo (`--environment prdo`): no model overrides it and no stack deploys it.
    Not an error: an environment may take the defaults alone."""
    if environment is None:
        return
    known = set(manifest.environments())
    with contextlib.suppress(SourceError, OSError):
        known |= {str(load_stack(Path.cwd(), name).get("modelfleet:environment"))
                  for name in list_stacks(Path.cwd())}
    if environment not in known:
        listed = ", ".join(sorted(known)) or "none"
        print(f"note: no model overrides environment '{environment}' and no stack deploys it "
              f"(known: {listed}); it is taken with the defaults alone"
              f"{did_you_mean(environment, known)}", file=sys.stderr)


def _resolved(source: ManifestText, environment: str | None) -> Resolution:
    return resolve(load_manifest(source), environment)


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
        try:
            Path(SCHEMA_PATH).write_text(schema_text(), encoding="utf-8")
        except OSError as error:
            raise SourceError(f"{SCHEMA_PATH}: cannot be written ({error.strerror or error}); "
                              "run inside the project") from error
        print(f"wrote {SCHEMA_PATH}")
    else:
        sys.stdout.write(schema_text())
    return 0
