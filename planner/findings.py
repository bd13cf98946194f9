"""What a reviewer reads first: the summary per model and the risk flags of a change."""

from __future__ import annotations

from dataclasses import dataclass

from planner.plan import Plan
from planner.review import model_views
from planner.risks import Risk, assess
from planner.summary import ModelSummary, summarize


@dataclass(frozen=True)
class Findings:
    """The summaries and risks of a plan, computed once for every format and the gate."""

    summaries: list[ModelSummary]
    risks: list[Risk]
    unchanged: list[str]
    """Models on both sides whose resources do not change."""
    compared: bool
    """False when the plan has no base: there is no change to summarize."""


def findings_of(plan: Plan) -> Findings:
    """Summaries and risks of the change from the base to the head; none without a base."""
    if plan.base_ref is None:
        return Findings([], [], [], compared=False)
    views = model_views(plan)
    unchanged = [v.name for v in views
                 if not v.stack_wide and not v.changes and v.old is not None]
    return Findings(summarize(views), assess(plan, views), unchanged, compared=True)
