"""The plan makes no garbage per Output: the SDK's `contains_unknowns` left a reference cycle
at every call (a recursive closure), about 57,000 of them at 192 models, each freed only by
the cycle collector. These tests count the garbage; the time is `benchmarks/plan_scale.py`'s."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.known_types import is_unknown

from planner.plan import acyclic_contains_unknowns, collector_tuned

UNKNOWN = pulumi.output.Unknown()  # type: ignore[no-untyped-call]


def values() -> list[Any]:
    shared = {"name": "model"}
    looped: list[Any] = [1]
    looped.append(looped)
    return [
        None, "text", 3, [], {},
        UNKNOWN,
        {"metadata": {"name": UNKNOWN}},
        {"spec": {"containers": [{"image": "x"}, {"image": UNKNOWN}]}},
        {"spec": {"containers": [{"image": "x"}]}, "other": [shared, shared]},
        [shared, {"again": shared}],
        looped,
        [looped, UNKNOWN],
    ]


@pytest.mark.parametrize("value", values())
def test_it_answers_as_the_sdks_own_check_does(value: Any) -> None:
    assert is_unknown(UNKNOWN)
    assert acyclic_contains_unknowns(value) == rpc.contains_unknowns(value)


def garbage_of(check: Callable[[Any], bool], calls: int) -> int:
    """Objects the cycle collector finds after `calls` checks of a typical input."""
    value = {"spec": {"template": {"spec": {"containers": [{"image": "x", "env": [
        {"name": "MODEL_NAME", "value": "fraud"}]}]}}}}
    enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for _ in range(calls):
            check(value)
        return gc.collect()
    finally:
        if enabled:
            gc.enable()


@pytest.fixture
def tuned() -> Iterator[None]:
    with collector_tuned():
        yield


def test_the_sdks_check_leaves_a_cycle_per_call() -> None:
    """Why the plan replaces it: this is what the fix removes (pulumi 3.272)."""
    assert garbage_of(rpc.contains_unknowns, 1000) >= 1000


def test_while_planning_a_check_leaves_no_garbage(tuned: None) -> None:
    assert rpc.contains_unknowns is acyclic_contains_unknowns
    assert garbage_of(rpc.contains_unknowns, 1000) == 0
    assert garbage_of(pulumi.output.contains_unknowns, 1000) == 0, \
        "Outputs check their values through the module's attribute"


def test_after_planning_the_sdk_is_as_it_was() -> None:
    original = rpc.contains_unknowns
    with collector_tuned():
        pass
    assert rpc.contains_unknowns is original
