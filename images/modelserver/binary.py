"""The protocol's binary tensor data extension: raw little-endian tensors after a JSON header.

A request or response whose `Inference-Header-Content-Length` header is N carries
N bytes of JSON, then the bytes of every tensor whose parameters give
`binary_data_size`, in tensor order, with no padding. Elements are row-major and
little-endian; BOOL is one byte; each BYTES element is a 4-byte little-endian
length, then that many bytes. (Triton's binary_tensor_data extension, which KServe
and tritonclient follow.)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from modelserver.protocol import DATATYPES, ProtocolError, check_shape

HEADER = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


class BinaryReader:
    """Hands out the binary tail of a request tensor by tensor."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int, where: str) -> memoryview:
        end = self.offset + size
        if end > len(self.data):
            raise ProtocolError(f"{where}: binary_data_size {size} runs past the end of the "
                                f"body ({len(self.data) - self.offset} bytes left)")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def finish(self) -> None:
        left = len(self.data) - self.offset
        if left:
            raise ProtocolError(f"{left} bytes after the JSON header belong to no input "
                                f"(check each input's binary_data_size)")


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary tail of a request body.

    Raises ProtocolError when the header length is not a number within the body.
    """
    if header_length is None:
        return raw, memoryview(b"")
    try:
        size = int(header_length)
    except ValueError as error:
        raise ProtocolError(f"{HEADER} must be a whole number, not '{header_length}'") \
            from error
    if not 0 <= size <= len(raw):
        raise ProtocolError(f"{HEADER} {size} is not within the body of {len(raw)} bytes")
    view = memoryview(raw)
    return bytes(view[:size]), view[size:]


def from_bytes(chunk: memoryview, datatype: str, shape: Sequence[int],
               where: str) -> np.ndarray:
    """A tensor from its raw bytes. Raises ProtocolError naming the tensor."""
    if datatype == "BYTES":
        items = _split_bytes(chunk, where)
        check_shape(shape, len(items), where)
        array = np.empty(len(items), dtype=np.object_)
        array[:] = items
        return array.reshape(shape)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    if len(chunk) % dtype.itemsize:
        raise ProtocolError(f"{where}: {len(chunk)} bytes is not a whole number of "
                            f"{datatype} elements ({dtype.itemsize} bytes each)")
    check_shape(shape, len(chunk) // dtype.itemsize, where)
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL" and array.view(np.uint8).max(initial=0) > 1:
        raise ProtocolError(f"{where}: BOOL bytes must be 0 or 1")
    return array.reshape(shape)


def _split_bytes(chunk: memoryview, where: str) -> list[bytes]:
    items: list[bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise ProtocolError(f"{where}: a BYTES element's 4-byte length is cut short")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > end:
            raise ProtocolError(f"{where}: a BYTES element of {length} bytes runs past "
                                f"the tensor's binary_data_size")
        items.append(bytes(chunk[offset:offset + length]))
        offset += length
    return items


def to_bytes(array: np.ndarray, datatype: str) -> bytes:
    """The raw form of a tensor: little-endian row-major elements, or length-prefixed BYTES."""
    if datatype == "BYTES":
        parts = []
        for item in np.asarray(array).reshape(-1):
            data = item if isinstance(item, bytes) else str(item).encode()
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    return np.ascontiguousarray(array, dtype=dtype).tobytes()
