"""ONNX models run by onnxruntime: the graph's inputs and outputs, as the graph names them.

Element types map to the protocol's datatypes (`ELEMENT_TYPES`, from onnxruntime's
`NodeArg.type` strings, onnxruntime 1.31.1 onnxruntime/python/onnxruntime_pybind_state.cc
and the ONNX `TensorProto.DataType` list); a symbolic or unknown dimension is -1.
Outputs that are not tensors (sequences and maps, such as skl2onnx's ZipMap of class
probabilities) cannot travel in the protocol: they are left out of the metadata and
never computed, with a warning at start; a graph with a non-tensor input, or no tensor
output, is refused. The CUDA execution provider runs the graph when the image's
onnxruntime has it (a GPU image on a GPU node), the CPU provider otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelserver.models import ArtifactError, TensorSpec
from modelserver.protocol import DATATYPES, ProtocolError

log = logging.getLogger("modelserver")
ELEMENT_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES"}
"""onnxruntime's type strings -> protocol datatypes (bfloat16 and float8 have none)."""


@dataclass
class OnnxPredictor:
    """An onnxruntime session; inputs cast to the graph's element types before running."""

    session: Any
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str = "onnxruntime_onnx"
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [spec.name for spec in self.outputs]

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for spec in self.inputs:
            if spec.name not in inputs:
                if len(self.inputs) == 1 and len(inputs) == 1:  # the batch modes' one matrix
                    array = next(iter(inputs.values()))
                else:
                    raise ProtocolError(f"missing input '{spec.name}'; the model takes "
                                        f"{', '.join(repr(s.name) for s in self.inputs)}")
            else:
                array = inputs[spec.name]
            try:
                with np.errstate(over="raise", invalid="raise"):
                    feed[spec.name] = _as_element_type(array, spec.datatype)
            except (FloatingPointError, ValueError, OverflowError) as error:
                raise ProtocolError(f"input '{spec.name}': values do not fit the model's "
                                    f"{spec.datatype}: {error}") from error
        try:
            results = self.session.run(self.names, feed)
        except Exception as error:  # onnxruntime's Fail, InvalidArgument: the values given
            if not _is_onnxruntime_error(error):
                raise
            raise ProtocolError(f"the model refused the input: {error}") from error
        return dict(zip(self.names, (np.asarray(r) for r in results), strict=True))


def _as_element_type(array: np.ndarray, datatype: str) -> np.ndarray:
    if datatype == "BYTES":  # onnxruntime takes str elements for tensor(string)
        return np.array([item.decode() if isinstance(item, bytes) else str(item)
                         for item in array.reshape(-1)], dtype=np.object_).reshape(array.shape)
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype])


def _is_onnxruntime_error(error: Exception) -> bool:
    return type(error).__module__.startswith("onnxruntime")


def providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then the CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider")
            if name in available]


def load_onnx(path: Path) -> OnnxPredictor:
    """Opens an ONNX model; raises ArtifactError when onnxruntime cannot, or when the
    graph takes an input the protocol cannot carry."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=providers())
    except Exception as error:
        if not _is_onnxruntime_error(error):
            raise
        raise ArtifactError(f"{path.name} is not an ONNX model onnxruntime can run: "
                            f"{str(error).splitlines()[0]}") from error
    inputs = []
    for node in session.get_inputs():
        if node.type not in ELEMENT_TYPES:
            raise ArtifactError(f"{path.name}: input '{node.name}' is {node.type}, which the "
                                f"protocol cannot carry")
        inputs.append(_spec(node))
    outputs = []
    for node in session.get_outputs():
        if node.type in ELEMENT_TYPES:
            outputs.append(_spec(node))
        else:
            log.warning("%s: output '%s' is %s, which the protocol cannot carry: it is not "
                        "served (for skl2onnx classifiers, convert with "
                        "options={'zipmap': False})", path.name, node.name, node.type)
    if not outputs:
        raise ArtifactError(f"{path.name}: no output is a tensor the protocol can carry")
    return OnnxPredictor(session, inputs, outputs)


def _spec(node: Any) -> TensorSpec:
    shape = [size if isinstance(size, int) and size >= 0 else -1 for size in node.shape or []]
    return TensorSpec(node.name, ELEMENT_TYPES[node.type], shape)
