"""Regenerates the gRPC modules from `grpc_predict_v2.proto` (needs grpcio-tools).

    PYTHONPATH=images venv/bin/python -m modelserver.rpc.generate

The generated modules are committed, so the image needs no protoc; a test checks
that regenerating gives the committed files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

IMAGES = Path(__file__).resolve().parents[2]
PROTO = "modelserver/rpc/grpc_predict_v2.proto"
GENERATED = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi", "grpc_predict_v2_pb2_grpc.py")


def generate(target: Path) -> list[Path]:
    """Runs protoc on the .proto into `target`; returns the generated files.

    Raises RuntimeError when protoc fails.
    """
    from grpc_tools import protoc

    status = protoc.main(["grpc_tools.protoc", f"-I{IMAGES}", f"--python_out={target}",
                          f"--pyi_out={target}", f"--grpc_python_out={target}", PROTO])
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {status})")
    folder = target / Path(PROTO).parent
    return [folder / name for name in GENERATED]


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        for path in generate(Path(folder)):
            (IMAGES / Path(PROTO).parent / path.name).write_bytes(path.read_bytes())
            print(f"wrote {Path(PROTO).parent / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
