"""Provenance on every resource: which model, version, team, environment and commit made it.

Tags (AWS) and labels (Kubernetes) come from one place so that a search by
`model=fraud-detector` finds the queue, the role and the pods alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pulumi

from modelfleet.manifest.semver import label_safe

MANAGED_BY = "modelfleet"
LABEL_PREFIX = "modelfleet.dev"


@dataclass(frozen=True)
class StackScope:
    """What every resource of a stack shares."""

    project: str
    stack: str
    environment: str

    def aws_tags(self) -> dict[str, str]:
        return {"environment": self.environment, "stack": self.stack, "managed-by": MANAGED_BY}


@dataclass(frozen=True)
class Provenance:
    """What a model's resources carry.

    `commit` is the commit that set the model's current version, not the newest
    commit: provenance then changes exactly when the version does, and an unrelated
    commit to the manifest changes no resource of this model.
    """

    model: str
    version: str
    team: str
    commit: str
    manifest_digest: str
    """sha256 of the manifest's text at `commit`."""
    scope: StackScope
    candidate: str | None = None
    """For a candidate's resources: its name (and `version` is the candidate's)."""

    @property
    def workload(self) -> str:
        """What the model's pods of this version are called: `<model>` or `<model>-<candidate>`."""
        return workload_name(self.model, self.candidate)

    def for_candidate(self, name: str, version: str) -> Provenance:
        return replace(self, candidate=name, version=version)

    def aws_tags(self) -> dict[str, str]:
        return {
            "model": self.model,
            "version": self.version,
            "team": self.team,
            "manifest-commit": self.commit,
            **({"candidate": self.candidate} if self.candidate else {}),
            **self.scope.aws_tags(),
        }

    def labels(self, component: str) -> dict[str, str]:
        """Kubernetes labels: the standard `app.kubernetes.io/*` set plus team and environment."""
        return {
            **self.selector(component),
            "app.kubernetes.io/instance": self.model,
            "app.kubernetes.io/version": label_safe(self.version),
            "app.kubernetes.io/part-of": MANAGED_BY,
            "app.kubernetes.io/managed-by": "pulumi",
            f"{LABEL_PREFIX}/team": self.team,
            f"{LABEL_PREFIX}/environment": self.scope.environment,
            **({f"{LABEL_PREFIX}/candidate": self.candidate} if self.candidate else {}),
        }

    def selector(self, component: str) -> dict[str, str]:
        """The labels a selector matches: never the version, since selectors are immutable.
        A candidate's pods have a name of their own, so the stable version's selectors
        (Deployment, Service) never take them in."""
        return {"app.kubernetes.io/name": self.workload,
                "app.kubernetes.io/component": component}

    def model_selector(self, component: str) -> dict[str, str]:
        """Every pod of the model in that role, whatever its version or who made it (the stable
        Deployment, candidates, Flagger's primary): for policies that must cover them all."""
        return {"app.kubernetes.io/instance": self.model,
                "app.kubernetes.io/component": component}

    def annotations(self) -> dict[str, str]:
        return {f"{LABEL_PREFIX}/manifest-commit": self.commit,
                f"{LABEL_PREFIX}/version": self.version}


def custom_metadata(name: str, namespace: pulumi.Input[str], provenance: Provenance,
                    component: str) -> dict[str, Any]:
    """`metadata` of a custom resource (HTTPRoute, Canary, MetricTemplate), which takes a
    plain mapping: name, namespace, the model's labels and its provenance annotations."""
    return {"name": name, "namespace": namespace, "labels": provenance.labels(component),
            "annotations": provenance.annotations()}


def workload_name(model: str, candidate: str | None) -> str:
    """`<model>`, or `<model>-<candidate>` for a candidate's Deployment, Service and identity."""
    return f"{model}-{candidate}" if candidate else model
