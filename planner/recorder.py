"""A mock resource monitor that records every registration with its options.

Pulumi's `Mocks.new_resource` sees a resource's inputs only; the options that
matter for safety (protect, retainOnDelete, ignoreChanges, aliases, parent)
travel in the registration request, so the monitor records that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs
from pulumi.runtime.sync_await import _sync_await

OutputSimulator = Callable[[MockResourceArgs], dict[str, Any]]
"""Answers a registration with the outputs the cloud would add to its inputs; an `id` key, if
present, is the resource's physical id."""
CallResponder = Callable[[pulumi.runtime.MockCallArgs], dict[str, Any]]


@dataclass
class Registration:
    """One resource as the program declared it."""

    type: str
    name: str
    urn: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    provider: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()
    """Dotted paths of inputs that are secrets (their values are kept in `inputs`)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers registrations with their inputs, plus what `simulate_outputs` adds."""

    def __init__(self, simulate_outputs: OutputSimulator | None = None,
                 respond_to_call: CallResponder | None = None) -> None:
        self.simulate_outputs = simulate_outputs
        self.respond_to_call = respond_to_call
        self._last = threading.local()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self._last.inputs = args.inputs
        outputs = dict(args.inputs)
        resource_id = f"{args.name}-id"
        if self.simulate_outputs is not None:
            simulated = dict(self.simulate_outputs(args))
            resource_id = str(simulated.pop("id", None) or resource_id)
            outputs.update(simulated)
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        # A plain dict: the mock monitor iterates the second item of a tuple, even None.
        if self.respond_to_call is not None:
            return self.respond_to_call(args)
        return {}

    def take_inputs(self) -> dict[str, Any] | None:
        """The inputs of the registration `new_resource` last answered on this thread, once.

        `MockMonitor.RegisterResource` (pulumi 3.272, `pulumi/runtime/mocks.py`) deserializes
        the request's properties and hands them to `new_resource` on the thread that serves
        the request: the recorder keeps those instead of deserializing them a second time.
        """
        inputs: dict[str, Any] | None = getattr(self._last, "inputs", None)
        self._last.inputs = None
        return inputs


class RecordingMonitor(MockMonitor):
    """A mock monitor that keeps every registration, in order, and the stack's outputs."""

    def __init__(self, mocks: RecordingMocks,
                 on_registration: Callable[[Registration], None] | None = None) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}
        self.on_registration = on_registration

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        secrets: set[str] = set()
        given = self.recording.take_inputs()
        if given is None:
            given = rpc.deserialize_properties(request.object)
        inputs = unwrap_secrets(given, "", secrets)
        outputs = self.resources[response.urn].state if response.urn in self.resources else {}
        self.registrations.append(Registration(
            type=request.type,
            name=request.name,
            urn=response.urn,
            parent=request.parent,
            custom=bool(request.custom),
            inputs=inputs,
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            ignore_changes=tuple(request.ignoreChanges),
            replace_on_changes=tuple(request.replaceOnChanges),
            dependencies=tuple(request.dependencies),
            aliases=tuple(_alias_names(request)),
            provider=request.provider,
            outputs=unwrap_secrets(dict(outputs), "", set()),
            secrets=frozenset(secrets),
        ))
        if self.on_registration is not None:
            self.on_registration(self.registrations[-1])
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        if "pulumi:pulumi:Stack" in request.urn:
            self.stack_outputs = _sync_await(_deserialize(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]

    def __iter__(self) -> Iterator[Registration]:
        return iter(self.registrations)


def unwrap_secrets(value: Any, path: str, secrets: set[str]) -> Any:
    """Replace Pulumi's secret envelopes by their values, noting where they were."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secrets.add(path)
            return unwrap_secrets(value.get("value"), path, secrets)
        return {key: unwrap_secrets(item, f"{path}.{key}" if path else str(key), secrets)
                for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item, f"{path}[{index}]", secrets)
                for index, item in enumerate(value)]
    return value


async def _deserialize(struct: Any) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct))


def _alias_names(request: Any) -> Iterator[str]:
    for alias in request.aliases:
        if alias.HasField("spec"):
            yield alias.spec.name or alias.spec.parentUrn or "alias"
        else:
            yield alias.urn
    yield from request.aliasURNs
