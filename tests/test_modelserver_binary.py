"""The binary tensor data extension's layout: what tritonclient writes, the server reads back."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from modelserver.binary import from_bytes, to_bytes
from modelserver.protocol import DATATYPES, ProtocolError, decode_request
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

NUMERIC = [name for name in DATATYPES if name != "BYTES"]


@settings(max_examples=60, deadline=None)
@given(datatype=st.sampled_from(NUMERIC), data=st.data())
def test_numeric_tensors_round_trip_as_tritonclient_lays_them_out(datatype: str,
                                                                  data: st.DataObject) -> None:
    dtype = np.dtype(DATATYPES[datatype])
    array = data.draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)))
    raw = to_bytes(array, datatype)
    assert raw == array.astype(dtype.newbyteorder("<")).tobytes()  # tritonclient's layout
    back = from_bytes(memoryview(raw), datatype, list(array.shape), "input 'x'")
    assert back.dtype == dtype
    assert np.array_equal(back, array, equal_nan=dtype.kind == "f")


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.binary(max_size=12), min_size=1, max_size=8))
def test_bytes_tensors_round_trip_with_tritonclients_length_prefixes(items: list[bytes]) -> None:
    array = np.array(items, dtype=np.object_)
    theirs = serialize_byte_tensor(array).item()
    assert to_bytes(array, "BYTES") == theirs
    back = from_bytes(memoryview(theirs), "BYTES", [len(items)], "input 'x'")
    assert back.tolist() == items
    assert deserialize_bytes_tensor(to_bytes(back, "BYTES")).tolist() == items


def test_bytes_inputs_in_json_and_in_binary_decode_alike() -> None:
    words = ["churn", "stay", "ünïcode"]
    raw = to_bytes(np.array([w.encode() for w in words], dtype=np.object_), "BYTES")
    as_json = decode_request({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES",
                                          "data": words}]})
    as_binary = decode_request({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES",
                                            "parameters": {"binary_data_size": len(raw)}}]},
                               raw)
    assert as_json.inputs["text"].tolist() == as_binary.inputs["text"].tolist() == [
        w.encode() for w in words]


def test_bool_bytes_other_than_zero_or_one_are_refused() -> None:
    with pytest.raises(ProtocolError, match="BOOL bytes must be 0 or 1"):
        from_bytes(memoryview(b"\x00\x02"), "BOOL", [2], "input 'flags'")
