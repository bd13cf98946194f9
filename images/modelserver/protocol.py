"""The Open Inference Protocol (KServe v2) over JSON: typed tensors in, typed tensors out.

Errors are `{"error": "..."}` with a 4xx status for the caller's mistakes, as
the protocol asks.
"""

from __future__ import annotations

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
_BY_KIND = {np.dtype(t).name: name for name, t in DATATYPES.items() if name != "BYTES"}


class ProtocolError(ValueError):
    """A request the protocol does not allow; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    requested_outputs: tuple[str, ...]
    """Names the caller asked for; empty means every output."""


def datatype_of(array: np.ndarray) -> str:
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    return _BY_KIND.get(array.dtype.name, "FP64")


def decode_request(body: Any) -> InferRequest:
    if not isinstance(body, Mapping):
        raise ProtocolError("the request body must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    decoded = {}
    for index, tensor in enumerate(inputs):
        name, array = decode_tensor(tensor, f"inputs[{index}]")
        if name in decoded:
            raise ProtocolError(f"input '{name}' is given twice")
        decoded[name] = array
    outputs = body.get("outputs") or []
    if not isinstance(outputs, list) or not all(
            isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in outputs):
        raise ProtocolError("'outputs' must be a list of {\"name\": ...}")
    request_id = body.get("id")
    return InferRequest(str(request_id) if request_id is not None else None, decoded,
                        tuple(o["name"] for o in outputs))


def decode_tensor(tensor: Any, where: str) -> tuple[str, np.ndarray]:
    if not isinstance(tensor, Mapping):
        raise ProtocolError(f"{where} must be a tensor object")
    missing = [key for key in ("name", "shape", "datatype", "data") if key not in tensor]
    if missing:
        raise ProtocolError(f"{where} lacks {', '.join(missing)}")
    name, shape, datatype, data = (tensor["name"], tensor["shape"], tensor["datatype"],
                                   tensor["data"])
    if datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype '{datatype}' "
                            f"(one of {', '.join(DATATYPES)})")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: shape must be a list of non-negative integers")
    flat = _flatten(data)
    expected = int(np.prod(shape)) if shape else 1
    if len(flat) != expected:
        raise ProtocolError(f"{where}: shape {shape} holds {expected} elements, "
                            f"but data has {len(flat)}")
    try:
        array = np.asarray(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (TypeError, ValueError) as error:
        raise ProtocolError(f"{where}: data is not {datatype}: {error}") from error
    return str(name), array


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        flat: list[Any] = []
        for item in data:
            flat.extend(_flatten(item))
        return flat
    return [data]


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    datatype = datatype_of(array)
    data = array.reshape(-1).tolist()
    if datatype == "BYTES":
        data = [item.decode() if isinstance(item, bytes) else str(item) for item in data]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}


def encode_response(model: str, version: str, request_id: str | None,
                    outputs: Mapping[str, np.ndarray],
                    requested: Sequence[str]) -> dict[str, Any]:
    unknown = [name for name in requested if name not in outputs]
    if unknown:
        raise ProtocolError(f"unknown output(s) {', '.join(unknown)}; the model has "
                            f"{', '.join(outputs)}")
    names = list(requested) or list(outputs)
    response: dict[str, Any] = {
        "model_name": model, "model_version": version,
        "outputs": [encode_tensor(name, outputs[name]) for name in names]}
    if request_id is not None:
        response["id"] = request_id
    return response
