"""AWS regions as the installed botocore knows them: a misspelt `aws:region` fails before anything.

The list is botocore's own endpoint data (`botocore/data/endpoints.json`, every
partition's `regions`: aws, aws-cn, aws-us-gov, the ISO partitions), pinned with
botocore in requirements.txt. A region newer than that botocore is refused too:
upgrading botocore is the fix, and the message says which version answered.
"""

from __future__ import annotations

import difflib
from functools import cache

import botocore
from botocore.loaders import create_loader


@cache
def known_regions() -> frozenset[str]:
    """Every region of every partition in botocore's endpoint data."""
    endpoints = create_loader().load_data("endpoints")
    return frozenset(region for partition in endpoints["partitions"]
                     for region in partition.get("regions", {}))


def region_problem(region: str) -> str | None:
    """Why `region` is not an AWS region (with the closest one), or None when it is."""
    regions = known_regions()
    if region in regions:
        return None
    close = difflib.get_close_matches(region, sorted(regions), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (f"'{region}' is not an AWS region botocore {botocore.__version__} knows"
            f"{hint}")
