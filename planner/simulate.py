"""Run a Pulumi program under the mock runtime and return what it declared, exported and logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

from planner.recorder import (
    CallResponder,
    OutputSimulator,
    RecordingMocks,
    RecordingMonitor,
    Registration,
)


@dataclass(frozen=True)
class LogLine:
    severity: str
    message: str


@dataclass
class Simulation:
    """Everything one run of a program declared, in registration order."""

    registrations: list[Registration]
    outputs: dict[str, Any]
    logs: list[LogLine] = field(default_factory=list)

    def find(self, type_: str, name: str) -> Registration:
        for registration in self.registrations:
            if registration.type == type_ and registration.name == name:
                return registration
        declared = sorted(f"{r.type} {r.name}" for r in self.registrations if r.type == type_)
        raise KeyError(f"no {type_} named {name!r}; declared: {declared}")

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == type_]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.registrations}

    def messages(self, severity: str | None = None) -> list[str]:
        return [line.message for line in self.logs
                if severity is None or line.severity == severity]


class ProgramFailed(Exception):  # noqa: N818 - reads as what happened
    """The program stopped; `simulation` holds what it declared and logged until then."""

    def __init__(self, simulation: Simulation, error: BaseException) -> None:
        super().__init__(str(error))
        self.simulation = simulation
        self.error = error


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[LogLine] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(LogLine(record.levelname.lower(), record.getMessage()))


def simulate(program: Callable[[], None], *, project: str = "modelfleet", stack: str = "dev",
             config: Mapping[str, str] | None = None, secret_keys: Sequence[str] = (),
             preview: bool = False, simulate_outputs: OutputSimulator | None = None,
             respond_to_call: CallResponder | None = None,
             on_registration: Callable[[Registration], None] | None = None) -> Simulation:
    """Run `program` as `pulumi up` (or `preview`) of `project`/`stack` would, against mocks.

    A program that fails (`pulumi.RunError` included) raises `ProgramFailed` with
    what it had declared and logged, and the original error as its cause.
    """
    mocks = RecordingMocks(simulate_outputs, respond_to_call)
    monitor = RecordingMonitor(mocks, on_registration)
    logger = logging.getLogger(f"modelfleet.simulation.{id(monitor)}")
    logger.propagate = False
    collector = _Collector()
    logger.addHandler(collector)
    # The collector keeps info and above; at DEBUG the SDK's per-resource debug lines
    # ("Preparing resource", "Registering resource") were each made into a record, then dropped.
    logger.setLevel(logging.INFO)

    set_all_config(dict(config or {}), list(secret_keys))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                             logger=logger, monitor=monitor)
    runtime_settings.ROOT.set(None)  # run_in_stack makes the root stack that keeps exports
    runtime_settings.SETTINGS.rpc_manager.clear()
    runtime_settings.SETTINGS.outputs.clear()
    try:
        _sync_await(run_in_stack(program))
    except Exception as error:
        failed = Simulation(monitor.registrations, monitor.stack_outputs, collector.lines)
        raise ProgramFailed(failed, error) from error
    finally:
        logger.removeHandler(collector)
    return Simulation(monitor.registrations, monitor.stack_outputs, collector.lines)
