"""`python -m modelserver`: serve a model over HTTP and gRPC, or work a queue, or one partition.

Every mode listens on MODEL_PORT for liveness, readiness and metrics, so the
same probes work for servers and workers; serve mode also answers the protocol
over gRPC on MODEL_GRPC_PORT (unless it is 0). SIGTERM drains both servers.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from pathlib import Path

from modelserver.batch import QueueWorker, run_partition
from modelserver.http import ModelHTTPServer
from modelserver.models import ArtifactError, Predictor, load_predictor
from modelserver.settings import Settings, SettingsError
from modelserver.state import ServerState
from modelserver.storage import StorageError, fetch

log = logging.getLogger("modelserver")


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_environment()
    except SettingsError as error:
        log.error("%s", error)
        return 2
    state = ServerState(settings.model_name, settings.model_version)
    server = ModelHTTPServer((settings.host, settings.port), state)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("listening on %s:%d (%s mode)", settings.host, server.port, settings.mode)
    rpc = None
    if settings.mode == "serve" and settings.grpc_port:
        from modelserver.rpc.server import ModelGRPCServer

        try:
            rpc = ModelGRPCServer(f"{settings.host}:{settings.grpc_port}", state)
        except (OSError, RuntimeError) as error:
            log.error("gRPC cannot listen on port %d: %s", settings.grpc_port, error)
            server.drain(0)
            return 1
        rpc.start()
        log.info("gRPC listening on %s:%d", settings.host, rpc.port)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        state.predictor = load(settings)
    except (ArtifactError, StorageError) as error:
        log.error("%s", error)
        if rpc:
            rpc.stop(0).wait()
        server.drain(0)
        return 1
    log.info("model %s %s loaded from %s", settings.model_name, settings.model_version,
             settings.model_uri)

    if settings.mode == "serve":
        stop.wait()
        log.info("stopping: finishing requests in flight")
        state.draining = True
        stopping = rpc.stop(settings.grace_seconds) if rpc else None
        finished = server.drain(settings.grace_seconds)
        if stopping is not None:
            stopping.wait(settings.grace_seconds)
        return 0 if finished else 1
    try:
        if settings.mode == "worker":
            QueueWorker(settings, state.predictor, state.metrics, stop).run()
        else:
            run_partition(settings, state.predictor, state.metrics)
    except StorageError as error:
        log.error("%s", error)
        return 1
    finally:
        server.drain(1)
    return 0


def load(settings: Settings) -> Predictor:
    """The model of MODEL_URI; raises ArtifactError or StorageError."""
    model_uri = settings.model_uri
    if settings.model_object_version:  # a pinned S3 object version: fetched as such
        model_uri = str(fetch(model_uri, Path(settings.cache_dir),
                              settings.model_object_version))
    predictor = load_predictor(model_uri, Path(settings.cache_dir), settings.model_sha256,
                               settings.flavor)
    # Everything loaded so far (libraries, the model) lives as long as the process: the
    # collector stops scanning it, so a full collection (about 100,000 objects here) no
    # longer pauses requests for tens of milliseconds.
    gc.freeze()
    return predictor


if __name__ == "__main__":
    sys.exit(main())
