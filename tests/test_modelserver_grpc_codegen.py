"""The committed gRPC modules are what grpcio-tools makes of the committed .proto."""

from __future__ import annotations

from pathlib import Path

from modelserver.rpc.generate import GENERATED, IMAGES, PROTO, generate


def test_regenerating_from_the_proto_gives_the_committed_modules(tmp_path: Path) -> None:
    generated = generate(tmp_path)
    assert [path.name for path in generated] == list(GENERATED)
    committed = IMAGES / Path(PROTO).parent
    for path in generated:
        assert path.read_text() == (committed / path.name).read_text(), (
            f"{path.name} differs from what grpcio-tools generates: run "
            f"`PYTHONPATH=images venv/bin/python -m modelserver.rpc.generate` and commit")


def test_the_proto_is_the_protocols_inference_service() -> None:
    text = (IMAGES / PROTO).read_text()
    assert "package inference;" in text
    assert "service GRPCInferenceService" in text
    for rpc in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                "ModelInfer"):
        assert f"rpc {rpc}({rpc}Request) returns ({rpc}Response)" in text
