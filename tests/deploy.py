"""Run the real program (program.main) for a stack config against the simulated cloud."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import program
from planner.simulate import Simulation, simulate
from tests import cloud

OIDC_ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
BASE_CONFIG = {
    "aws:region": cloud.REGION,
    "modelfleet:namespace": "models",
    "modelfleet:oidcProviderArn": f"arn:aws:iam::{cloud.ACCOUNT}:oidc-provider/{OIDC_ISSUER}",
    "modelfleet:oidcProviderUrl": f"https://{OIDC_ISSUER}",
}


def deploy(manifest: Path, *, stack: str = "dev", environment: str = "dev",
           config: Mapping[str, str] | None = None, preview: bool = False,
           previous: Mapping[str, Any] | None = None) -> Simulation:
    """`pulumi up` of `stack` deploying `manifest` (a path, usually in a temporary repo).

    `previous` are the stack's outputs from its last update (None: a first deployment).
    """
    settings = {**BASE_CONFIG, "modelfleet:environment": environment,
                "modelfleet:manifest": str(manifest), **(config or {})}
    return run_stack(settings, stack=stack, preview=preview, previous=previous)


def run_stack(config: Mapping[str, str], *, stack: str, preview: bool = False,
              previous: Mapping[str, Any] | None = None,
              secret_keys: tuple[str, ...] = ()) -> Simulation:
    """The real program with `config`, against the simulated cloud."""
    return simulate(program.main, stack=stack, config=config, preview=preview,
                    secret_keys=secret_keys,
                    simulate_outputs=partial(cloud.simulate_outputs,
                                             previous_outputs=dict(previous or {})),
                    respond_to_call=cloud.respond_to_call)


def inputs_by_key(simulation: Simulation) -> dict[tuple[str, str], dict[str, Any]]:
    """Each cloud resource's inputs, without those its `ignore_changes` tells the engine to skip."""
    return {r.key: {k: v for k, v in r.inputs.items() if k not in r.ignore_changes}
            for r in simulation.registrations if r.custom}


def changed(before: Simulation, after: Simulation) -> set[tuple[str, str]]:
    """Cloud resources the engine would create, delete or update between two runs."""
    old, new = inputs_by_key(before), inputs_by_key(after)
    return {key for key in old.keys() | new.keys()
            if _comparable(old.get(key)) != _comparable(new.get(key))}


def _comparable(value: Any) -> Any:
    """Inputs with assets replaced by their path, so two runs compare by content."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    path = getattr(value, "path", None)
    if isinstance(path, str):
        return ("asset", path)
    return value
