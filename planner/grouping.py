"""Resources by model: each resource belongs to the model whose `Model` component it sits under."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from planner.recorder import Registration
from planner.simulate import Simulation

STACK_WIDE = "(stack-wide)"
MODEL_TYPE = "modelfleet:fleet:Model"


@dataclass(frozen=True)
class Grouped:
    """A simulation's resources by model, in registration order."""

    groups: dict[str, list[Registration]]
    by_urn: dict[str, Registration]

    @classmethod
    def of(cls, simulation: Simulation) -> Grouped:
        by_urn = simulation.by_urn()
        groups: dict[str, list[Registration]] = {}
        for registration in simulation.registrations:
            if registration.custom:
                groups.setdefault(model_of(registration.urn, by_urn), []).append(registration)
        ordered = {k: sorted(groups[k], key=lambda r: (r.type, r.name))
                   for k in sorted(groups, key=lambda g: (g != STACK_WIDE, g))}
        return cls(ordered, by_urn)

    def parent_name(self, registration: Registration) -> str | None:
        parent = self.by_urn.get(registration.parent)
        return parent.name if parent else None


def model_of(urn: str, by_urn: Mapping[str, Registration]) -> str:
    """The model a resource belongs to: the name of its `Model` ancestor."""
    current = by_urn.get(urn)
    while current is not None:
        if current.type == MODEL_TYPE:
            return current.name
        current = by_urn.get(current.parent)
    return STACK_WIDE
