"""`python -m modelserver`: serve a model over HTTP, or work a queue, or one partition of a run.

Every mode listens on MODEL_PORT for liveness, readiness and metrics, so the
same probes work for servers and workers.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from modelserver.batch import QueueWorker, run_partition
from modelserver.http import ModelHTTPServer, ServerState
from modelserver.models import ArtifactError, load_predictor
from modelserver.settings import Settings, SettingsError
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

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        model_uri = settings.model_uri
        if settings.model_object_version:  # a pinned S3 object version: fetched as such
            model_uri = str(fetch(model_uri, Path(settings.cache_dir),
                                  settings.model_object_version))
        state.predictor = load_predictor(model_uri, Path(settings.cache_dir),
                                         settings.model_sha256, settings.flavor)
    except (ArtifactError, StorageError) as error:
        log.error("%s", error)
        server.drain(0)
        return 1
    log.info("model %s %s loaded from %s", settings.model_name, settings.model_version,
             settings.model_uri)

    if settings.mode == "serve":
        stop.wait()
        log.info("stopping: finishing requests in flight")
        finished = server.drain(settings.grace_seconds)
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


if __name__ == "__main__":
    sys.exit(main())
