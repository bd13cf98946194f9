"""The modelfleet policy pack: `pulumi preview --policy-pack policy`."""

from policies import POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name="modelfleet", policies=POLICIES)
