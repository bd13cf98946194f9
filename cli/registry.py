"""`registry list|show|pull|verify` and `runs status`: a stack's registry, read with boto3.

The AWS SDK is loaded only when one of these commands runs. Each command
prints text or JSON (`--format`); a failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cli.arguments import Subparsers
from modelfleet.diff.report import plural
from modelregistry.client import (
    Progress,
    PulledFile,
    RegistryClient,
    RegistryError,
    RunStatus,
    VerificationError,
    VersionRecord,
    parse_reference,
    s3_client,
)

PROGRESS_FROM_BYTES = 8 << 20
"""Files this large or larger get a progress bar (on a terminal)."""
PULUMI_TIMEOUT_SECONDS = 120


def add_commands(commands: Subparsers) -> None:
    """Add `registry` and `runs` to the modelfleet CLI's subcommands."""
    registry = commands.add_parser(
        "registry", help="models, versions and artifacts in a stack's registry bucket")
    actions = registry.add_subparsers(required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="models, their versions, and which is current")
    _common(listing)
    listing.set_defaults(command=_guarded(cmd_list))

    show = actions.add_parser("show", help="a version's metadata record (default: current)")
    show.add_argument("reference", metavar="NAME[@VERSION]")
    _common(show)
    show.set_defaults(command=_guarded(cmd_show))

    pull = actions.add_parser("pull", help="download a version's artifact, sha256 verified")
    pull.add_argument("reference", metavar="NAME@VERSION")
    pull.add_argument("folder", metavar="DIR", type=Path, help="where the files go")
    _common(pull)
    pull.set_defaults(command=_guarded(cmd_pull))

    verify = actions.add_parser(
        "verify", help="every version the index names has its record and objects; sha256s hold")
    _common(verify)
    verify.set_defaults(command=_guarded(cmd_verify))

    runs = commands.add_parser("runs", help="partitioned batch runs in a stack's registry")
    run_actions = runs.add_subparsers(required=True, metavar="ACTION")
    status = run_actions.add_parser(
        "status", help="partitions done and missing, or the summary once done "
                       "(exit 1 until the run is done)")
    status.add_argument("model", metavar="MODEL")
    status.add_argument("run", metavar="RUN")
    _common(status)
    status.set_defaults(command=_guarded(cmd_run_status))


def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bucket", help="the registry bucket")
    where.add_argument("--stack", help="read the bucket from this stack's outputs "
                                       "(`registry.bucket`, through the Pulumi CLI)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    parser.add_argument("--format", choices=["text", "json"], default="text")


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except VerificationError as error:
            for problem in error.problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1
        except RegistryError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return run


def client_for(args: argparse.Namespace) -> RegistryClient:
    bucket = args.bucket or stack_bucket(args.stack)
    return RegistryClient(bucket, s3_client(args.endpoint_url, args.region))


def stack_bucket(stack: str | None) -> str:
    """`registry.bucket` from `pulumi stack output --json` (of `stack`, or the selected one)."""
    hint = "give --bucket BUCKET"
    if shutil.which("pulumi") is None:
        which = f"stack '{stack}'" if stack else "the selected stack"
        raise RegistryError(f"without --bucket, the bucket is read from the outputs of {which} "
                            f"by the Pulumi CLI, which is not installed; {hint}")
    command = ["pulumi", "stack", "output", "--json"] + (["--stack", stack] if stack else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=PULUMI_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RegistryError(f"`{' '.join(command)}` did not run: {error}; {hint}") from None
    if done.returncode != 0:
        reason = next((line.strip() for line in done.stderr.splitlines() if line.strip()),
                      f"exit status {done.returncode}")
        raise RegistryError(f"`{' '.join(command)}` failed ({reason}); log in with "
                            f"`pulumi login`, or {hint}")
    try:
        outputs = json.loads(done.stdout)
        bucket = outputs["registry"]["bucket"]
    except (ValueError, KeyError, TypeError):
        bucket = None
    if not isinstance(bucket, str) or not bucket:
        name = f"stack '{stack}'" if stack else "the selected stack"
        raise RegistryError(f"{name} exports no registry.bucket (not deployed yet?); {hint}")
    return bucket


# Commands -----------------------------------------------------------------------------------

def cmd_list(args: argparse.Namespace) -> int:
    client = client_for(args)
    index = client.index()
    models = client.models()
    if args.format == "json":
        _json({"bucket": client.bucket,
               "stack": index.get("stack") if index else None,
               "environment": index.get("environment") if index else None,
               "models": [{"name": m.name, "versions": list(m.versions), "current": m.current,
                           "candidates": [{"name": c, "version": v} for c, v in m.candidates]}
                          for m in models]})
        return 0
    scope = (f"index.json of stack {index.get('stack')}, environment {index.get('environment')}"
             if index else "no index.json: nothing deployed")
    print(f"Registry s3://{client.bucket} ({scope})")
    if not models:
        print("no models")
        return 0
    candidates = any(m.candidates for m in models)
    rows = [("MODEL", "VERSIONS", "CURRENT", *(("CANDIDATES",) if candidates else ()))] + [
        (m.name, ", ".join(m.versions) or "(no metadata)", m.current or "- (not deployed)",
         *((", ".join(f"{v} ({c})" for c, v in m.candidates) or "-",) if candidates else ()))
        for m in models]
    _table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = client_for(args)
    name, version = parse_reference(args.reference)
    record = client.show(name, version)
    if args.format == "json":
        _json(record.document)
    else:
        sys.stdout.write(render_record(client.bucket, record))
    return 0


def render_record(bucket: str, record: VersionRecord) -> str:
    document = record.document
    manifest = document.get("manifest") or {}
    lines = [
        f"{record.name} {record.version} (team {document.get('team')}, stage "
        f"{document.get('stage')}, environment {document.get('environment')})",
        f"  metadata   s3://{bucket}/{record.key}",
        f"  artifact   {record.artifact_uri}",
    ]
    if record.version_id:
        lines.append(f"  versionId  {record.version_id}")
    pinned = record.pinned_files
    if pinned:
        total = sum(file.size for file in pinned)
        lines.append(f"  files      {len(pinned)} pinned, {_bytes(total)} ({total} bytes)")
        width = max(len(file.path) for file in pinned)
        lines += [f"    {file.path.ljust(width)}  {file.size:>12}  {file.sha256}"
                  + (f"  versionId {file.version_id}" if file.version_id else "")
                  for file in pinned]
    else:
        lines.append(f"  sha256     {record.artifact_sha256 or '(not recorded)'}")
        for key, digest in record.file_digests.items():
            lines.append(f"    {key}  {digest}")
    lines += [
        f"  image      {document.get('image')}",
        f"  manifest   {manifest.get('file')} at {manifest.get('commit')} "
        f"({manifest.get('digest')})",
    ]
    return "\n".join(lines) + "\n"


def cmd_pull(args: argparse.Namespace) -> int:
    client = client_for(args)
    name, version = parse_reference(args.reference)
    if version is None:
        raise RegistryError(f"pull needs NAME@VERSION (e.g. {name}@"
                            f"{client.current_version(name)}, the current one)")
    files = client.pull(name, version, args.folder, terminal_progress())
    if args.format == "json":
        _json([pulled_json(f) for f in files])
        return 0
    for pulled in files:
        check = "sha256 verified" if pulled.verified else "no sha256 recorded"
        print(f"{pulled.path}  {pulled.size} bytes  {pulled.sha256}  {check}")
    source = files[0].source if len(files) == 1 else "the artifact's prefix"
    print(f"pulled {name}@{version}: {len(files)} file(s) from {source}")
    return 0


def pulled_json(pulled: PulledFile) -> dict[str, Any]:
    return {"path": str(pulled.path), "source": pulled.source, "size": pulled.size,
            "sha256": pulled.sha256, "verified": pulled.verified}


def cmd_verify(args: argparse.Namespace) -> int:
    client = client_for(args)
    report = client.verify()
    if args.format == "json":
        _json({"bucket": client.bucket, "verified": report.checked,
               "problems": report.problems})
    else:
        for line in report.checked:
            print(line)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    if report.problems:
        if args.format == "text":
            print(f"{plural(len(report.problems), 'problem')} in s3://{client.bucket}",
                  file=sys.stderr)
        return 1
    if args.format == "text":
        print(f"s3://{client.bucket}: {len(report.checked)} model version(s) verified")
    return 0


def cmd_run_status(args: argparse.Namespace) -> int:
    client = client_for(args)
    status = client.run_status(args.model, args.run)
    if args.format == "json":
        _json({"model": status.model, "run": status.run, "partitions": status.partitions,
               "done": list(status.done), "missing": list(status.missing),
               "summary": status.summary})
    else:
        sys.stdout.write(render_run(status))
    if status.summary is not None:
        return 0
    if status.missing:
        print(f"error: run '{status.run}' of model '{status.model}' is not finished: "
              f"{len(status.missing)} of {status.partitions} partition(s) missing",
              file=sys.stderr)
    else:
        print(f"error: run '{status.run}' of model '{status.model}' is half-written: every "
              "partition is there but _SUCCESS.json is not; rerun any one partition to "
              "write it", file=sys.stderr)
    return 1


def render_run(status: RunStatus) -> str:
    head = f"run {status.run} of {status.model}"
    summary = status.summary
    if summary is None:
        lines = [f"{head}: under way, {len(status.done)} of {status.partitions} partition(s) "
                 "written",
                 f"  done     {spans(status.done) or '-'}",
                 f"  missing  {spans(status.missing) or '-'}"]
        return "\n".join(lines) + "\n"
    lines = [f"{head} (version {summary.get('version')}): done, "
             f"{summary.get('partitions')} partition(s), {summary.get('rowsIn')} rows in, "
             f"{summary.get('rowsOut')} rows out",
             f"  started   {summary.get('started')}",
             f"  finished  {summary.get('finished')}"]
    for part in summary.get("parts", []):
        lines.append(f"  {part.get('key')}  {part.get('size')} bytes  "
                     f"{part.get('rowsOut')} rows")
    return "\n".join(lines) + "\n"


def spans(numbers: Sequence[int]) -> str:
    """`0-3, 7, 9-10`: partitions as ranges, since a run may have thousands."""
    parts: list[str] = []
    start = previous = None
    for number in sorted(numbers):
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ", ".join(parts)


# Output -------------------------------------------------------------------------------------

def terminal_progress() -> Progress | None:
    """A tqdm bar on stderr for large files, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None

    @contextlib.contextmanager
    def bar(name: str, size: int) -> Iterator[Callable[[int], object]]:
        if size < PROGRESS_FROM_BYTES:
            yield lambda _count: None
            return
        from tqdm import tqdm  # noqa: PLC0415

        with tqdm(total=size, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                  file=sys.stderr, leave=False) as progress:
            yield progress.update

    return bar


def _bytes(size: int) -> str:
    """`4.6 GiB`, `12.0 MiB`, `512 bytes`: a size as a reader takes it in."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
