"""What the Deployment or Job tells the container, through its environment."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """The environment does not describe a runnable model server."""


@dataclass(frozen=True)
class Settings:
    model_name: str
    model_version: str
    model_uri: str
    model_sha256: str | None = None
    model_object_version: str | None = None
    """The S3 object version of MODEL_URI to read (MODEL_OBJECT_VERSION); default: the latest."""
    mode: str = "serve"
    """`serve` (HTTP), `worker` (queue) or `job` (one partition of a run)."""
    port: int = 8080
    grpc_port: int = 8081
    """The protocol over gRPC (serve mode); 0 turns gRPC off. Probes stay on `port`."""
    host: str = "0.0.0.0"
    """All interfaces: the pod's network is the boundary (and its NetworkPolicy)."""
    flavor: str | None = None
    """The formats this image loads, comma-separated (`sklearn`, `torch`, `xgboost`,
    `lightgbm`, `onnx`, `mlflow`; modelserver.models.FORMATS): an artifact of another
    format is refused by name. Unset: any; the format is always chosen from the artifact."""
    cache_dir: str = "/tmp/model"
    """On the pod's own emptyDir: the root filesystem is read-only."""
    queue_url: str | None = None
    output_uri: str | None = None
    input_uri: str | None = None
    partitions: int = 1
    partition: int = 0
    visibility_timeout_seconds: int = 900
    """The queue's visibility timeout: how long a received message stays hidden, and the
    cap of a failed message's backoff."""
    retry_base_seconds: float = 10.0
    """RETRY_BASE_SECONDS: a failed message's first backoff ceiling, doubled per delivery."""
    batch_size: int = 256
    poll_seconds: int = 5
    grace_seconds: float = 25.0
    """How long a stopping server waits for requests in flight."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        missing = [key for key in ("MODEL_NAME", "MODEL_URI") if not env.get(key)]
        if missing:
            raise SettingsError(f"missing environment: {', '.join(missing)}")
        mode = env.get("MODEL_MODE", "serve")
        if mode not in ("serve", "worker", "job"):
            raise SettingsError(f"MODEL_MODE must be serve, worker or job, not '{mode}'")
        settings = cls(
            model_name=env["MODEL_NAME"],
            model_version=env.get("MODEL_VERSION", "0.0.0"),
            model_uri=env["MODEL_URI"],
            model_sha256=env.get("MODEL_SHA256") or None,
            model_object_version=env.get("MODEL_OBJECT_VERSION") or None,
            mode=mode,
            port=_integer(env, "MODEL_PORT", 8080),
            grpc_port=_integer(env, "MODEL_GRPC_PORT", 8081),
            host=env.get("MODEL_HOST", "0.0.0.0"),
            flavor=env.get("MODEL_FLAVOR") or None,
            cache_dir=env.get("MODEL_CACHE_DIR", "/tmp/model"),
            queue_url=env.get("QUEUE_URL") or None,
            output_uri=env.get("OUTPUT_URI") or None,
            input_uri=env.get("INPUT_URI") or None,
            partitions=_integer(env, "PARTITIONS", 1),
            partition=_integer(env, "JOB_COMPLETION_INDEX", 0),
            visibility_timeout_seconds=_integer(env, "VISIBILITY_TIMEOUT_SECONDS", 900),
            retry_base_seconds=_number(env, "RETRY_BASE_SECONDS", 10.0),
            batch_size=_integer(env, "BATCH_SIZE", 256),
            poll_seconds=_integer(env, "POLL_SECONDS", 5),
            grace_seconds=float(env.get("GRACE_SECONDS", "25")),
        )
        if mode == "worker" and not (settings.queue_url and settings.output_uri):
            raise SettingsError("worker mode needs QUEUE_URL and OUTPUT_URI")
        if mode == "job" and not (settings.input_uri and settings.output_uri):
            raise SettingsError("job mode needs INPUT_URI and OUTPUT_URI")
        if not 0 < settings.visibility_timeout_seconds <= 43200:
            raise SettingsError("VISIBILITY_TIMEOUT_SECONDS must be 1 to 43200 (SQS's 12 hours),"
                                f" not {settings.visibility_timeout_seconds}")
        if not 0 <= settings.retry_base_seconds <= 43200:
            raise SettingsError("RETRY_BASE_SECONDS must be 0 to 43200, not "
                                f"{settings.retry_base_seconds}")
        if not 0 <= settings.grpc_port <= 65535:
            raise SettingsError(f"MODEL_GRPC_PORT must be a port (1-65535) or 0 for no gRPC, "
                                f"not {settings.grpc_port}")
        if not 0 <= settings.partition < settings.partitions:
            raise SettingsError(f"JOB_COMPLETION_INDEX {settings.partition} is not below "
                                f"PARTITIONS {settings.partitions}")
        return settings


def _integer(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key)
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError as error:
        raise SettingsError(f"{key} must be a whole number, not '{value}'") from error


def _number(env: Mapping[str, str], key: str, default: float) -> float:
    value = env.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(str(value))
    except ValueError as error:
        raise SettingsError(f"{key} must be a number of seconds, not '{value}'") from error
    if not math.isfinite(number):
        raise SettingsError(f"{key} must be a number of seconds, not '{value}'")
    return number
