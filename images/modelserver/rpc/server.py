"""The protocol over gRPC: `inference.GRPCInferenceService` on MODEL_GRPC_PORT.

It shares the model, readiness, requests in flight and metrics with the HTTP
server. Tensors arrive as typed `contents` or as `raw_input_contents` (the same
little-endian layout as the HTTP binary extension, FP16 only so); outputs always go
back as `raw_output_contents`, as Triton answers. A request the model cannot take
is INVALID_ARGUMENT with a message naming the input; an unknown model NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc
import numpy as np

from modelserver.binary import from_bytes, to_bytes
from modelserver.protocol import (
    DATATYPES,
    InferRequest,
    ProtocolError,
    RequestedOutput,
    check_datatype,
    check_shape,
    datatype_of,
    select_outputs,
)
from modelserver.rpc import grpc_predict_v2_pb2 as pb
from modelserver.rpc import grpc_predict_v2_pb2_grpc as pb_grpc
from modelserver.state import ServerState

MAX_MESSAGE = 64 << 20
"""Bytes, as the HTTP server's largest body."""
log = logging.getLogger("modelserver")

_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
           413: grpc.StatusCode.RESOURCE_EXHAUSTED, 415: grpc.StatusCode.INVALID_ARGUMENT,
           503: grpc.StatusCode.UNAVAILABLE}
_HTTP_EQUIVALENT = {grpc.StatusCode.OK: 200, grpc.StatusCode.INVALID_ARGUMENT: 400,
                    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
                    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500}
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
             "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
             "UINT16": "uint_contents", "UINT32": "uint_contents",
             "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
             "BYTES": "bytes_contents"}
"""Where each datatype's typed contents live (FP16 has none: it travels raw)."""

Reply = TypeVar("Reply")
Result = TypeVar("Result")


class InferenceService(pb_grpc.GRPCInferenceServiceServicer):
    """The protocol's RPCs over the shared ServerState (grpc.aio).

    Every RPC runs on the server's event loop thread, inference included, as KServe's
    ModelServer runs a synchronous model: handing each request to a thread pool cost
    a fifth of the throughput (benchmarks/server_compare.py). gRPC inferences so run
    one at a time per process, beside HTTP's inference thread; probes use HTTP, so a
    slow model never holds them up.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def ServerLive(self, request: pb.ServerLiveRequest,  # noqa: N802 (the protocol's name)
                         context: grpc.aio.ServicerContext) -> pb.ServerLiveResponse:
        return self._respond(context, self._run("live", lambda: pb.ServerLiveResponse(live=True),
                                                pb.ServerLiveResponse))

    async def ServerReady(self, request: pb.ServerReadyRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> pb.ServerReadyResponse:
        return self._respond(context, self._run(
            "ready", lambda: pb.ServerReadyResponse(ready=self.state.ready),
            pb.ServerReadyResponse))

    async def ModelReady(self, request: pb.ModelReadyRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> pb.ModelReadyResponse:
        def ready() -> pb.ModelReadyResponse:
            """False, not an error, for a model or version this server does not serve."""
            try:
                self.state.check_model(request.name, request.version)
            except ProtocolError:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=self.state.ready)

        return self._respond(context, self._run("ready", ready, pb.ModelReadyResponse))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> pb.ServerMetadataResponse:
        return self._respond(context, self._run(
            "metadata", lambda: pb.ServerMetadataResponse(**self.state.server_metadata()),
            pb.ServerMetadataResponse))

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> pb.ModelMetadataResponse:
        def metadata() -> pb.ModelMetadataResponse:
            self.state.check_model(request.name, request.version)
            found = self.state.model_metadata()
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=found["name"], versions=found["versions"], platform=found["platform"],
                inputs=[tensor(**t) for t in found["inputs"]],
                outputs=[tensor(**t) for t in found["outputs"]])

        return self._respond(context, self._run("metadata", metadata, pb.ModelMetadataResponse))

    async def ModelInfer(self, request: pb.ModelInferRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> pb.ModelInferResponse:
        self.state.metrics.inference_started()
        try:
            outcome = self._run("infer", lambda: self._infer(request), pb.ModelInferResponse)
            return self._respond(context, outcome)
        finally:
            self.state.metrics.inference_finished()

    def _infer(self, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
        state = self.state
        state.check_model(request.model_name, request.model_version)
        decoded = decode_infer_request(request)
        outputs = state.infer(decoded)
        response = pb.ModelInferResponse(model_name=state.model_name,
                                         model_version=state.model_version, id=request.id)
        for name, array, _ in select_outputs(outputs, decoded.outputs):
            datatype = datatype_of(array)
            response.outputs.add(name=name, datatype=datatype, shape=array.shape)
            response.raw_output_contents.append(to_bytes(array, datatype))
        return response

    def _run(self, route: str, work: Callable[[], Reply],
             empty: Callable[[], Reply]) -> tuple[Reply, grpc.StatusCode, str]:
        """Runs one RPC's work: a ProtocolError becomes its gRPC code, anything else INTERNAL.

        Returns the reply, the status code and its message; counts it in the metrics.
        """
        state = self.state
        state.begin()
        started = time.perf_counter()
        code, message = grpc.StatusCode.OK, ""
        try:
            try:
                return work(), code, message
            except ProtocolError as error:
                code = _STATUS.get(error.status, grpc.StatusCode.INVALID_ARGUMENT)
                message = str(error)
            except Exception as error:
                log.exception("gRPC request failed")
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {error}"
            return empty(), code, message
        finally:
            state.answered("grpc", route, _HTTP_EQUIVALENT.get(code, 500),
                           time.perf_counter() - started)
            state.end()

    @staticmethod
    def _respond(context: grpc.aio.ServicerContext,
                 outcome: tuple[Reply, grpc.StatusCode, str]) -> Reply:
        reply, code, message = outcome
        if code != grpc.StatusCode.OK:
            context.set_code(code)
            context.set_details(message)
        return reply


def decode_infer_request(request: pb.ModelInferRequest) -> InferRequest:
    """The request's tensors as numpy arrays; raises ProtocolError naming the input."""
    if not request.inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(f"raw_input_contents has {len(raw)} entries for "
                            f"{len(request.inputs)} inputs; give one per input or none")
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        where = f"input '{tensor.name}'"
        if tensor.name in inputs:
            raise ProtocolError(f"{where} is given twice")
        check_datatype(tensor.datatype, where)
        shape = list(tensor.shape)
        if any(size < 0 for size in shape):
            raise ProtocolError(f"{where}: shape must be a list of non-negative integers")
        if raw:
            if tensor.HasField("contents"):
                raise ProtocolError(f"{where}: give contents or raw_input_contents, not both")
            inputs[tensor.name] = from_bytes(memoryview(raw[index]), tensor.datatype, shape,
                                             where)
        else:
            inputs[tensor.name] = _from_contents(tensor, shape, where)
    outputs = tuple(RequestedOutput(output.name) for output in request.outputs)
    return InferRequest(request.id or None, inputs, outputs)


def _from_contents(tensor: Any, shape: list[int], where: str) -> np.ndarray:
    field = _CONTENTS.get(tensor.datatype)
    if field is None:
        raise ProtocolError(f"{where}: {tensor.datatype} has no typed contents; send it in "
                            f"raw_input_contents")
    values = list(getattr(tensor.contents, field))
    check_shape(shape, len(values), where)
    if tensor.datatype == "BYTES":
        array = np.empty(len(values), dtype=np.object_)
        array[:] = values
        return array.reshape(shape)
    try:
        return np.asarray(values, dtype=DATATYPES[tensor.datatype]).reshape(shape)
    except (OverflowError, ValueError) as error:
        raise ProtocolError(f"{where}: contents are not {tensor.datatype}: {error}") from error


class ModelGRPCServer:
    """A grpc.aio server on `address` ("host:port"; port 0 picks a free one), on its own
    event loop thread.

    Raises RuntimeError (or OSError) when it cannot listen on `address`.
    """

    def __init__(self, address: str, state: ServerState) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="grpc", daemon=True).start()
        self.server, self.port = self._wait(self._create(address, state))

    async def _create(self, address: str, state: ServerState) -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                          ("grpc.max_send_message_length", MAX_MESSAGE),
                                          ("grpc.so_reuseport", 0)])
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            InferenceService(state), server)
        port = int(server.add_insecure_port(address))
        if port == 0:
            raise OSError(f"gRPC cannot listen on {address}")
        return server, port

    def _wait(self, work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def start(self) -> None:
        self._wait(self.server.start())

    def stop(self, grace_seconds: float) -> threading.Event:
        """Refuses new RPCs at once; those in flight may finish within the grace (seconds).

        The event is set once the server has stopped.
        """
        stopped = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self.server.stop(grace_seconds), self.loop)
        future.add_done_callback(lambda _: stopped.set())
        return stopped
