"""Offline prediction: queue messages (worker mode) and one partition of a run (job mode)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from modelserver.layout import SUCCESS_NAME, PartRecord, RunSummary, part_index, part_name
from modelserver.metrics import Metrics
from modelserver.models import Predictor
from modelserver.records import Row, as_matrix, batches, parse_rows, prediction_lines
from modelserver.settings import Settings
from modelserver.storage import (
    Location,
    StorageError,
    create_once,
    exists,
    head,
    list_objects,
    read_bytes,
    write_bytes,
)

log = logging.getLogger("modelserver")


class PoisonMessageError(ValueError):
    """A message that no retry will make readable."""


@cache
def sqs() -> Any:
    import boto3

    return boto3.client("sqs")


def predict_rows(predictor: Predictor, rows: Sequence[Row], batch_size: int) -> list[str]:
    lines: list[str] = []
    name = predictor.inputs[0].name if predictor.inputs else "input-0"
    for chunk in batches(rows, batch_size):
        lines += prediction_lines(chunk, predictor.predict({name: as_matrix(chunk)}))
    return lines


def input_of(body: str) -> str:
    """The input object a message names: `{"input": "s3://..."}` or the URI itself."""
    text = body.strip()
    if text.startswith("{"):
        try:
            message = json.loads(text)
        except json.JSONDecodeError as error:
            raise PoisonMessageError(f"message is not JSON: {error.msg}") from error
        uri = message.get("input") or message.get("uri") if isinstance(message, dict) else None
    else:
        uri = text
    if not isinstance(uri, str) or not uri:
        raise PoisonMessageError("message names no input (expected {\"input\": \"s3://...\"})")
    return uri


def output_for(output_prefix: str, input_uri: str) -> str:
    """One output per input, named from it: a retried message overwrites, never duplicates."""
    stem = PurePosixPath(Location.parse(input_uri).key).stem or "input"
    digest = hashlib.sha256(input_uri.encode()).hexdigest()[:12]
    return Location.parse(output_prefix).child(f"{stem}-{digest}.jsonl")


@dataclass
class QueueWorker:
    settings: Settings
    predictor: Predictor
    metrics: Metrics
    stop: threading.Event

    def run(self) -> None:
        """Take messages until told to stop; a message being worked on is always finished."""
        while not self.stop.is_set():
            response = sqs().receive_message(
                QueueUrl=self.settings.queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=self.settings.poll_seconds,
                AttributeNames=["ApproximateReceiveCount"])
            for message in response.get("Messages", []):
                if self.stop.is_set():
                    self._release(message)  # taken while stopping: hand it straight back
                else:
                    self.handle(message)

    def handle(self, message: dict[str, Any]) -> bool:
        """Predict one input; delete the message only once its output is written."""
        model = self.settings.model_name
        try:
            with self._heartbeat(message):
                input_uri = input_of(message.get("Body", ""))
                rows = parse_rows(read_bytes(input_uri), input_uri)
                lines = predict_rows(self.predictor, rows, self.settings.batch_size)
                target = output_for(str(self.settings.output_uri), input_uri)
                write_bytes(target, ("\n".join(lines) + "\n").encode())
        except Exception as error:  # one bad message must not stop the worker
            log.error("message %s failed (delivery %s): %s", message.get("MessageId"),
                      message.get("Attributes", {}).get("ApproximateReceiveCount"), error)
            self.metrics.messages.labels(model, "failed").inc()
            self._release(message)  # retried now; after maxReceiveCount it goes to the DLQ
            return False
        sqs().delete_message(QueueUrl=self.settings.queue_url,
                             ReceiptHandle=message["ReceiptHandle"])
        self.metrics.messages.labels(model, "done").inc()
        self.metrics.rows.labels(model).inc(len(rows))
        log.info("message %s: %d rows from %s to %s", message.get("MessageId"), len(rows),
                 input_uri, target)
        return True

    def _release(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            sqs().change_message_visibility(QueueUrl=self.settings.queue_url,
                                            ReceiptHandle=message["ReceiptHandle"],
                                            VisibilityTimeout=0)

    @contextlib.contextmanager
    def _heartbeat(self, message: dict[str, Any]) -> Iterator[None]:
        """Keep the message hidden from other workers for as long as this one works on it."""
        timeout = self.settings.visibility_timeout_seconds
        done = threading.Event()

        def extend() -> None:
            while not done.wait(max(1.0, timeout / 3)):
                with contextlib.suppress(Exception):
                    sqs().change_message_visibility(
                        QueueUrl=self.settings.queue_url,
                        ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=timeout)

        beat = threading.Thread(target=extend, daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()


def run_partition(settings: Settings, predictor: Predictor, metrics: Metrics) -> str:
    """Predict partition JOB_COMPLETION_INDEX of the run's input; skip it if already done.

    The part carries its own account (rows in and out, start and end) as S3 user
    metadata; then the run's summary is written if this was the last part missing.
    """
    index, count = settings.partition, settings.partitions
    target = Location.parse(str(settings.output_uri)).child(part_name(index))
    if exists(target):
        log.info("partition %d of %d is already done: %s", index, count, target)
    else:
        started = _now()
        source = str(settings.input_uri)
        rows: list[Row] = []
        if Location.parse(source).is_prefix:
            for uri in list_objects(source)[index::count]:
                rows += [Row(f"{uri}#{row.key}", row.features)
                         for row in parse_rows(read_bytes(uri), uri)]
        else:
            rows = parse_rows(read_bytes(source), source)[index::count]
        lines = predict_rows(predictor, rows, settings.batch_size)
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        record = PartRecord(index=index, key=Location.parse(target).key, size=len(data),
                            rows_in=len(rows), rows_out=len(lines), started=started,
                            finished=_now(), partitions=count)
        write_bytes(target, data, metadata=record.object_metadata())
        metrics.rows.labels(settings.model_name).inc(len(rows))
        log.info("partition %d of %d: %d rows to %s", index, count, len(rows), target)
    finish_run(settings)
    return target


def finish_run(settings: Settings) -> bool:
    """Write the run's `_SUCCESS.json` if every part is there: True if this call wrote it.

    Every finishing pod checks; the summary is a write-once object (a conditional
    PUT), so when several pods find the run complete at once exactly one writes it.
    """
    output = Location.parse(str(settings.output_uri))
    if output.bucket is None:
        log.info("run: outputs are local files; summaries are written for S3 outputs only")
        return False
    count = settings.partitions
    summary_uri = output.child(SUCCESS_NAME)
    listed = list_objects(str(output))
    written = {part_index(PurePosixPath(Location.parse(uri).key).name): uri for uri in listed}
    missing = [i for i in range(count) if i not in written]
    if missing:
        log.info("run: %d of %d partitions written; the last one writes %s",
                 count - len(missing), count, SUCCESS_NAME)
        return False
    if summary_uri in listed:
        log.info("run: every partition is written and %s exists", SUCCESS_NAME)
        return False
    parts = []
    for index in range(count):
        info = head(written[index])
        if info is None:
            raise StorageError(f"{written[index]} disappeared while the run was summarised")
        try:
            parts.append(PartRecord.from_object(Location.parse(info.uri).key, info.size,
                                                info.metadata))
        except ValueError as error:
            raise StorageError(f"cannot summarise the run: {error}") from error
    summary = RunSummary(model=settings.model_name, version=settings.model_version,
                         run=PurePosixPath(output.key).name, partitions=count,
                         parts=tuple(parts))
    text = json.dumps(summary.document(), indent=2, sort_keys=True) + "\n"
    if create_once(summary_uri, text.encode()):
        log.info("run: all %d partitions written; summary %s", count, summary_uri)
        return True
    log.info("run: another partition wrote %s first", summary_uri)
    return False


def _now() -> str:
    """ISO 8601 in UTC, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
