"""The offline plan: what `pulumi up` of a stack would declare, without cloud, credentials or CLI.

The stack's configuration is read from its file (secrets stay encrypted), and
the very program `pulumi up` runs (`program.main`) runs under Pulumi's mock
runtime as a preview: what only the cloud can know is shown by reference
(`${registry-bucket.arn}`, see `planner.placeholders`), never invented. With a
base ref, the stack as of that ref is planned too and the two are compared.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pulumi.runtime import known_types, rpc
from pulumi.runtime import resource as runtime_resource
from pulumi.runtime.proto import source_pb2

import program
from modelfleet.git.source import FileAbsentError, text_at
from modelfleet.stacks.config import StackConfig, load_stack, parse_stack, project_file
from planner.changes import ResourceChange, resource_changes
from planner.placeholders import placeholder_call, placeholder_outputs
from planner.simulate import Simulation, simulate

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    stack: StackConfig
    head: Simulation
    base: Simulation | None = None
    base_ref: str | None = None
    base_missing: bool = False
    """The stack file did not exist at the base ref: everything is created."""

    @cached_property
    def changes(self) -> list[ResourceChange]:
        if self.base_ref is None:
            return []
        return resource_changes(self.base.registrations if self.base else [],
                                self.head.registrations)


def plan_stack(root: Path, name: str, *, manifest: str | None = None,
               base: str | None = None, progress: Progress | None = None) -> Plan:
    """Plan `name` as its config stands, and, with `base`, as it stood at that ref."""
    stack = load_stack(root, name)
    if manifest:
        stack = _with(stack, "modelfleet:manifest", manifest)
    text: str | None = None
    if base is not None:  # a bad base ref fails before the head is planned
        try:
            text = text_at(root / stack.file, base)
        except FileAbsentError:
            text = None
    head = run_plan(root, stack, "plan", progress)
    if base is None:
        return Plan(stack, head)
    if text is None:
        return Plan(stack, head, None, base, base_missing=True)
    before = parse_stack(project_file(root), name, text, f"{stack.file}@{base}")
    if manifest:
        before = _with(before, "modelfleet:manifest", manifest)
    if not before.get("modelfleet:manifestRef"):
        before = _with(before, "modelfleet:manifestRef", base)  # the manifest as of the base
    return Plan(stack, head, run_plan(root, before, f"base {base}", progress), base)


def _with(stack: StackConfig, key: str, value: str) -> StackConfig:
    return StackConfig(stack.name, stack.file, {**stack.values, key: value}, stack.secrets)


def run_plan(root: Path, stack: StackConfig, label: str,
             progress: Progress | None = None) -> Simulation:
    """`pulumi preview` of the real program, in the project's folder, against mocks."""
    count = 0

    def tick(_: object) -> None:
        nonlocal count
        count += 1
        if progress is not None and count % 25 == 0:
            progress(f"{label}: {count} resources")

    with _in_folder(root), collector_tuned():
        simulation = simulate(program.main, project=str(project_file(root)["name"]),
                              stack=stack.name, config=stack.for_pulumi(),
                              secret_keys=sorted(stack.secrets), preview=True,
                              simulate_outputs=placeholder_outputs,
                              respond_to_call=placeholder_call, on_registration=tick)
    if progress is not None:
        progress(f"{label}: {len(simulation.registrations)} resources")
    return simulation


@contextmanager
def _in_folder(root: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(root)
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        os.chdir(before)


@contextmanager
def collector_tuned() -> Iterator[None]:
    """Fewer collections while thousands of small objects are made: linear, not quadratic.

    And no source positions: the SDK walks the Python stack (reading source files) for
    every resource so that the CLI can point at code; a plan never shows them. And no
    garbage per Output: the SDK's `contains_unknowns` (pulumi 3.272,
    `pulumi/runtime/rpc.py`) defines a recursive closure at every call, a reference cycle
    (function, cell, annotation) that only the cycle collector frees: about 57,000 of
    them, 340,000 objects, at 192 models. `acyclic_contains_unknowns` answers the same
    without one.
    """
    previous = gc.get_threshold()
    gc.set_threshold(50000, 50, 100)
    trace = getattr(runtime_resource, "_get_stack_trace", None)
    if trace is not None:
        runtime_resource._get_stack_trace = source_pb2.StackTrace  # an empty trace
    contains = rpc.contains_unknowns
    rpc.contains_unknowns = acyclic_contains_unknowns
    try:
        yield
    finally:
        rpc.contains_unknowns = contains
        gc.set_threshold(*previous)
        if trace is not None:
            runtime_resource._get_stack_trace = trace


def acyclic_contains_unknowns(val: Any) -> bool:
    """Whether `value` (an input: dicts, lists, scalars) holds an unknown anywhere.

    `pulumi.runtime.rpc.contains_unknowns` at pulumi 3.272, step for step (an object seen
    before counts as known), as a plain recursive function instead of a closure.
    """
    return _unknown_in(val, set())


def _unknown_in(value: Any, seen: set[int]) -> bool:
    if known_types.is_unknown(value):
        return True
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, dict):
        return any(_unknown_in(value[key], seen) for key in value)
    if isinstance(value, list):
        return any(_unknown_in(item, seen) for item in value)
    return False
