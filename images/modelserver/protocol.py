"""The Open Inference Protocol (KServe v2) over JSON: typed tensors in, typed tensors out.

Tensors travel as JSON `data`, or as raw bytes after the JSON header under the
protocol's binary tensor data extension (modelserver.binary). Errors are
`{"error": "..."}` with a 4xx status for the caller's mistakes, as the protocol asks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    "BYTES": np.object_,
}
"""Every datatype the server reads and writes, with the numpy type that holds it."""
_BY_KIND = {np.dtype(t).name: name for name, t in DATATYPES.items() if name != "BYTES"}
_BY_DTYPE = {np.dtype(t): name for name, t in DATATYPES.items() if name != "BYTES"}
"""Native-order dtypes: found by hash, without numpy's pure-Python `dtype.name`."""
_INTEGERS = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}


class ProtocolError(ValueError):
    """A request the protocol or the model does not allow; `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None = None
    """HTTP binary extension: send this output as raw bytes; None follows the request."""


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] = ()
    """The outputs the caller asked for; empty means every output."""
    binary_output: bool = False
    """The request's `binary_data_output` parameter: outputs as raw bytes by default."""

    @property
    def requested_outputs(self) -> tuple[str, ...]:
        return tuple(output.name for output in self.outputs)


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype that carries `array` (strings and objects are BYTES)."""
    datatype = _BY_DTYPE.get(array.dtype)
    if datatype is not None:
        return datatype
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    datatype = _BY_KIND.get(array.dtype.name)
    if datatype is None:
        raise TypeError(f"no protocol datatype for numpy {array.dtype}")
    return datatype


def decode_request(body: Any, binary: bytes | memoryview = b"") -> InferRequest:
    """An inference request from its JSON header and, for binary tensors, the bytes after it.

    Raises ProtocolError (400) naming the tensor at fault.
    """
    if not isinstance(body, Mapping):
        raise ProtocolError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    from modelserver.binary import BinaryReader

    reader = BinaryReader(binary)
    decoded = {}
    for index, tensor in enumerate(inputs):
        name, array = decode_tensor(tensor, f"inputs[{index}]", reader)
        if name in decoded:
            raise ProtocolError(f"input '{name}' is given twice")
        decoded[name] = array
    reader.finish()
    parameters = _parameters(body, "the request")
    outputs = body.get("outputs") or []
    if not isinstance(outputs, list) or not all(
            isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in outputs):
        raise ProtocolError("'outputs' must be a list of {\"name\": ...}")
    requested = tuple(_requested_output(o) for o in outputs)
    request_id = body.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, decoded,
                        requested, bool(parameters.get("binary_data_output", False)))


def _parameters(tensor: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ProtocolError(f"{where}: 'parameters' must be an object")
    return parameters


def _requested_output(output: Mapping[str, Any]) -> RequestedOutput:
    name = output["name"]
    parameters = _parameters(output, f"output '{name}'")
    if parameters.get("classification"):
        raise ProtocolError(f"output '{name}': the classification extension is not supported")
    binary = parameters.get("binary_data")
    return RequestedOutput(name, None if binary is None else bool(binary))


def decode_tensor(tensor: Any, where: str, reader: Any = None) -> tuple[str, np.ndarray]:
    """One input tensor as a numpy array of its datatype and shape.

    `reader` (a modelserver.binary.BinaryReader) supplies the bytes of a tensor whose
    parameters give `binary_data_size`. Raises ProtocolError naming the tensor.
    """
    if not isinstance(tensor, Mapping):
        raise ProtocolError(f"{where} must be a tensor object")
    if isinstance(tensor.get("name"), str):
        where = f"input '{tensor['name']}'"
    missing = [key for key in ("name", "shape", "datatype") if key not in tensor]
    if missing:
        raise ProtocolError(f"{where} lacks {', '.join(missing)}")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if not isinstance(name, str):
        raise ProtocolError(f"{where}: the name must be a string")
    check_datatype(datatype, where)
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: shape must be a list of non-negative integers")
    size = binary_size(tensor, where)
    if size is not None:
        if "data" in tensor:
            raise ProtocolError(f"{where}: give either 'data' or binary_data_size, not both")
        if reader is None:
            raise ProtocolError(f"{where}: binary_data_size needs binary data after the header")
        from modelserver.binary import from_bytes

        return name, from_bytes(reader.take(size, where), datatype, shape, where)
    if "data" not in tensor:
        raise ProtocolError(f"{where} lacks data")
    return name, from_json(tensor["data"], datatype, shape, where)


def check_datatype(datatype: Any, where: str) -> None:
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype '{datatype}' "
                            f"(one of {', '.join(DATATYPES)})")


def check_shape(shape: Sequence[int], count: int, where: str) -> None:
    """Raises ProtocolError unless `shape` holds exactly `count` elements."""
    expected = math.prod(shape)
    if count != expected:
        raise ProtocolError(f"{where}: shape {list(shape)} holds {expected} elements, "
                            f"but data has {count}")


def binary_size(tensor: Mapping[str, Any], where: str) -> int | None:
    size = _parameters(tensor, where).get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer")
    return size


def from_json(data: Any, datatype: str, shape: Sequence[int], where: str) -> np.ndarray:
    """JSON `data` (flat or nested, row-major) as an array; every element must fit `datatype`."""
    flat = _flatten(data)
    check_shape(shape, len(flat), where)
    misfit = _first_misfit(flat, datatype)
    if misfit is not None:
        raise ProtocolError(f"{where}: data is not {datatype}: {misfit[1]!r} at position "
                            f"{misfit[0]}")
    if datatype == "BYTES":
        array = np.empty(len(flat), dtype=np.object_)
        array[:] = [item.encode() for item in flat]
        return array.reshape(shape)
    try:
        with np.errstate(over="raise"):
            return np.asarray(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (TypeError, ValueError, OverflowError, FloatingPointError) as error:
        raise ProtocolError(f"{where}: data is not {datatype}: {error}") from error


def _first_misfit(flat: list[Any], datatype: str) -> tuple[int, Any] | None:
    """The position and value of the first element that is not `datatype`, if any."""
    if datatype == "BYTES":
        allowed: tuple[type, ...] = (str,)
    elif datatype == "BOOL":
        allowed = (bool,)
    elif datatype in _INTEGERS:
        allowed = (int,)
    else:
        allowed = (int, float)
    if set(map(type, flat)).issubset(allowed):  # the common case, without a Python loop
        return None
    for position, item in enumerate(flat):
        if type(item) not in allowed:
            return position, item
    return None


def _flatten(data: Any) -> list[Any]:
    """Nested lists in row-major order, one level at a time (no recursion, few passes)."""
    if not isinstance(data, list):
        return [data]
    flat = data
    while any(isinstance(item, list) for item in flat):
        level: list[Any] = []
        for item in flat:
            if isinstance(item, list):
                level.extend(item)
            else:
                level.append(item)
        flat = level
    return flat


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    datatype = datatype_of(array)
    data = array.reshape(-1).tolist()
    if datatype == "BYTES":
        data = [item.decode() if isinstance(item, bytes) else str(item) for item in data]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


Chosen = tuple[str, np.ndarray, bool | None]
"""An output to send: name, values, and whether it goes binary (None: the request's default)."""


def select_outputs(outputs: Mapping[str, np.ndarray],
                   requested: Sequence[RequestedOutput]) -> list[Chosen]:
    """The outputs to send, in the order asked (all of them when none is asked).

    Raises ProtocolError naming an output the model does not have.
    """
    unknown = [o.name for o in requested if o.name not in outputs]
    if unknown:
        raise ProtocolError(f"unknown output(s) {', '.join(unknown)}; the model has "
                            f"{', '.join(outputs)}")
    if requested:
        return [(o.name, outputs[o.name], o.binary) for o in requested]
    return [(name, array, None) for name, array in outputs.items()]


def encode_response(model: str, version: str, request_id: str | None,
                    outputs: Mapping[str, np.ndarray],
                    requested: Sequence[str]) -> dict[str, Any]:
    """A JSON response with every output as `data` (the batch worker's and tests' form)."""
    chosen = select_outputs(outputs, [RequestedOutput(name) for name in requested])
    response: dict[str, Any] = {
        "model_name": model, "model_version": version,
        "outputs": [encode_tensor(name, array) for name, array, _ in chosen]}
    if request_id is not None:
        response["id"] = request_id
    return response
