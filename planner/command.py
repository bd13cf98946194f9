"""`python -m modelfleet plan`: the offline plan of a stack, printed, rendered, or both."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from planner.plan import Progress, plan_stack
from planner.present import render_json, render_markdown, render_text
from planner.render import write_aws, write_kubernetes
from planner.simulate import ProgramFailed

RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def run(args: argparse.Namespace) -> int:
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
        print(f"{len(errors) or 1} problem(s); nothing was planned", file=sys.stderr)
        return 1
    if progress:
        sys.stderr.write("\r\033[K")
    if args.render:
        folder = Path(args.render)
        kubernetes = write_kubernetes(plan.head.registrations, folder / "kubernetes")
        aws = write_aws(plan.head.registrations, folder / "aws")
        print(f"rendered {len(kubernetes)} Kubernetes objects to {folder / 'kubernetes'} and "
              f"{len(aws)} AWS resources to {folder / 'aws'}", file=sys.stderr)
    sys.stdout.write(RENDERERS[args.format](plan))
    return 0


def _progress() -> Progress:
    def report(message: str) -> None:
        sys.stderr.write(f"\r\033[Kplanning {message}")
        sys.stderr.flush()
    return report
