"""`python -m modelfleet plan`: the offline plan of a stack, printed, rendered, or both.

With `--fail-on LEVEL`, the plan is printed in full and then the command exits
with `RISK_EXIT` (3) if a risk of that level or above is present: a CI gate that
still shows why. 1 stays "bad input" and 2 a usage error. The planner runs the
Pulumi program, so Pulumi and the providers are imported only when a plan runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cli.arguments import Subparsers
from modelfleet.diff.report import plural

RISK_EXIT = 3
LEVELS = ("info", "warning", "danger")


def add_commands(commands: Subparsers) -> None:
    """Add `plan`."""
    plan = commands.add_parser(
        "plan", help="what `pulumi up` of a stack would declare: offline, no credentials")
    plan.add_argument("--stack", required=True, help="the stack, e.g. dev (stacks/Pulumi.dev.yaml)")
    plan.add_argument("--manifest", help="plan this manifest instead of the stack's own")
    plan.add_argument("--base", metavar="REF",
                      help="also plan the stack as of git ref REF and show what changes")
    plan.add_argument("--render", metavar="DIR",
                      help="write Kubernetes objects as YAML and AWS inputs as JSON to DIR")
    plan.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    plan.add_argument("--fail-on", choices=LEVELS, metavar="LEVEL",
                      help="exit 3 after printing when a risk of LEVEL (info, warning, danger) "
                           "or above is flagged")
    plan.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Plan, render, print; the exit status of `modelfleet plan` (0, 1 or `RISK_EXIT`)."""
    from planner.findings import findings_of
    from planner.plan import collector_tuned, plan_stack
    from planner.present import render_json, render_markdown, render_text
    from planner.render import check_render_folder, write_render
    from planner.risks import at_least
    from planner.simulate import ProgramFailed

    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    if args.render:  # before the plan runs: a folder it cannot use fails at once
        check_render_folder(Path(args.render))
    progress = _progress() if sys.stderr.isatty() else None
    try:
        plan = plan_stack(Path.cwd(), args.stack, manifest=args.manifest, base=args.base,
                          progress=progress)
    except ProgramFailed as failure:
        if progress:
            sys.stderr.write("\n")
        errors = failure.simulation.messages("error")
        for line in errors or [str(failure.error)]:
            print(line, file=sys.stderr)
        print(f"{plural(len(errors) or 1, 'problem')}; nothing was planned", file=sys.stderr)
        return 1
    if progress:
        sys.stderr.write("\r\033[K")
    if args.render:
        folder = Path(args.render)
        kubernetes, aws = write_render(plan.head.registrations, folder)
        print(f"rendered {len(kubernetes)} Kubernetes objects to {folder / 'kubernetes'} and "
              f"{len(aws)} AWS resources to {folder / 'aws'}", file=sys.stderr)
    with collector_tuned():  # the review walks both simulations: as many small objects
        findings = findings_of(plan)
        sys.stdout.write(renderers[args.format](plan, findings))
    fail_on = getattr(args, "fail_on", None)
    if fail_on:
        if plan.base_ref is None:
            print("note: --fail-on without --base: there is no change to flag",
                  file=sys.stderr)
        blocking = at_least(fail_on, findings.risks)
        if blocking:
            print(f"{len(blocking)} risk(s) at or above '{fail_on}': "
                  + "; ".join(f"{r.level} {r.kind} ({r.model or 'stack-wide'})"
                              for r in blocking), file=sys.stderr)
            return RISK_EXIT
    return 0


def _progress() -> Callable[[str], None]:
    def report(message: str) -> None:
        sys.stderr.write(f"\r\033[Kplanning {message}")
        sys.stderr.flush()
    return report
