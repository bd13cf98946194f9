"""One inference, whatever the transport: inputs checked against the model, outputs as declared.

HTTP (JSON or binary) and gRPC decode a request into numpy arrays, then call
`infer`. Anything the model cannot take because of the request's content is a
ProtocolError (HTTP 400, gRPC INVALID_ARGUMENT) naming the input; only a fault
of the server is left to become a 500.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modelserver.models import Predictor, TensorSpec
from modelserver.protocol import DATATYPES, ProtocolError, datatype_of

_NUMERIC = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
            "FP16", "FP32", "FP64"}
MODEL_REFUSALS = (ValueError, TypeError, IndexError, KeyError, RuntimeError, AssertionError)
"""What libraries raise when a model cannot compute on the values it was given
(scikit-learn's ValueError on NaN, torch's RuntimeError on a shape it cannot use)."""


def infer(predictor: Predictor, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs, each of the datatype and rank its metadata declares.

    Raises ProtocolError (400) for an unknown or missing input, an empty batch, a
    datatype or shape the model cannot use, or values the model refuses.
    """
    checked = check_inputs(predictor.inputs, inputs)
    try:
        outputs = predictor.predict(checked)
    except ProtocolError:
        raise
    except MODEL_REFUSALS as error:
        names = ", ".join(f"'{name}'" for name in checked)
        raise ProtocolError(f"the model refused input {names}: {error}") from error
    return conform(predictor.outputs, outputs)


def check_inputs(specs: list[TensorSpec], inputs: Mapping[str, np.ndarray]) \
        -> dict[str, np.ndarray]:
    """`inputs` in the model's order and datatypes; numbers are cast to the model's type."""
    expected = [spec.name for spec in specs]
    unknown = [name for name in inputs if name not in expected]
    if unknown:
        raise ProtocolError(f"unknown input '{unknown[0]}'; the model takes "
                            f"{_names(expected)}")
    missing = [name for name in expected if name not in inputs]
    if missing:
        raise ProtocolError(f"missing input '{missing[0]}'; the model takes {_names(expected)}")
    return {spec.name: _check(spec, inputs[spec.name]) for spec in specs}


def _check(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    where = f"input '{spec.name}'"
    given = datatype_of(array)
    if given != spec.datatype and not (given in _NUMERIC and spec.datatype in _NUMERIC):
        raise ProtocolError(f"{where} is {given}; the model takes {spec.datatype}")
    if array.ndim != len(spec.shape):
        raise ProtocolError(f"{where} has shape {list(array.shape)}; the model takes "
                            f"{spec.shape} (-1: any size)")
    if array.ndim and array.shape[0] == 0:
        raise ProtocolError(f"{where} is an empty batch (shape {list(array.shape)})")
    for axis, (size, wanted) in enumerate(zip(array.shape, spec.shape, strict=True)):
        if wanted >= 0 and size != wanted:
            raise ProtocolError(f"{where} has {size} elements on axis {axis}; the model takes "
                                f"{wanted} (shape {spec.shape})")
    if given == spec.datatype:
        return array
    try:
        with np.errstate(over="raise", invalid="raise"):
            cast = array.astype(DATATYPES[spec.datatype])
    except FloatingPointError as error:
        raise ProtocolError(f"{where}: {given} values do not fit the model's "
                            f"{spec.datatype}: {error}") from error
    if cast.dtype.kind in "iu" and not np.array_equal(cast, array):
        raise ProtocolError(f"{where}: {given} values do not fit the model's {spec.datatype}")
    return cast


def conform(specs: list[TensorSpec], outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs cast to the datatypes the metadata lists, so metadata and responses agree."""
    declared = {spec.name: spec for spec in specs}
    result = {}
    for name, value in outputs.items():
        spec = declared.get(name)
        array = np.asarray(value)
        if spec and spec.datatype != "BYTES" and datatype_of(array) != spec.datatype:
            array = array.astype(DATATYPES[spec.datatype])
        result[name] = array
    return result


def _names(names: list[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
