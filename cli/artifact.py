"""`artifact lock MODEL [FILE]`: pin every object of a model's S3 prefixes in the manifest.

Reads S3 with boto3 as the `registry` commands do (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL, or `--endpoint-url` and `--region`); edits FILE in place like
`promote`, then prints the manifest diff. A failure is one line on stderr, exit 1,
and FILE is left as it was.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cli.arguments import Subparsers, file_argument
from cli.rollout import report_step
from modelfleet.release.pinned import PinnedFile
from modelfleet.rollout import step
from modelregistry.client import RegistryError, s3_client
from modelregistry.prefix import list_pinned

MIB = 1 << 20


def add_commands(commands: Subparsers) -> None:
    """Add `artifact lock`."""
    artifact = commands.add_parser("artifact", help="pin artifacts stored below an S3 prefix")
    actions = artifact.add_subparsers(required=True, metavar="ACTION")
    lock = actions.add_parser(
        "lock", help="fill or refresh artifact.files (path, sha256, size, versionId) of a "
                     "model's S3-prefix artifacts from S3 (edits FILE)")
    lock.add_argument("model", metavar="MODEL")
    file_argument(lock)
    lock.add_argument("--endpoint-url",
                      help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)")
    lock.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    lock.set_defaults(command=cmd_lock)


def cmd_lock(args: argparse.Namespace) -> int:
    try:
        s3 = s3_client(args.endpoint_url, args.region)

        def listing(uri: str) -> Sequence[PinnedFile]:
            print(f"listing {uri}", file=sys.stderr)
            return list_pinned(s3, uri, hashed=_hashing(uri)).files

        done = step.lock(Path(args.file), args.model, listing, args.file)
    except RegistryError as error:
        print(f"error: {error}; {args.file} was not changed", file=sys.stderr)
        return 1
    return report_step(done)


def _hashing(uri: str) -> Callable[[str, int], None]:
    def note(path: str, size: int) -> None:
        print(f"  hashing {uri}{path} ({size / MIB:.1f} MiB): S3 stores no full-object SHA-256 "
              "for it", file=sys.stderr)

    return note
