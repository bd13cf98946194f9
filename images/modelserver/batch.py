"""Offline prediction: queue messages (worker mode) and one partition of a run (job mode)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from modelserver.layout import SUCCESS_NAME, PartRecord, RunSummary, part_index, part_name
from modelserver.metrics import Metrics
from modelserver.models import Predictor
from modelserver.protocol import ProtocolError
from modelserver.records import (
    RecordError,
    Row,
    as_matrix,
    batches,
    parse_rows,
    prediction_lines,
)
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
    """A message that no retry will make readable: not a JSON job naming an S3 object."""


@cache
def sqs() -> Any:
    import boto3

    return boto3.client("sqs")


MAX_VISIBILITY_SECONDS = 43200
"""SQS's ceiling for a message's visibility timeout (12 hours; ChangeMessageVisibility,
Amazon SQS API Reference)."""


def full_jitter(receives: int, base_seconds: float, cap_seconds: int,
                uniform: Callable[[float, float], float] = random.uniform) -> int:
    """Seconds a message that failed on its `receives`-th delivery stays hidden: a random
    whole number between 0 and min(cap, base * 2 ** (receives - 1)).

    Capped exponential backoff with "full jitter", as AWS advises for retries (the Amazon
    Builders' Library, "Timeouts, retries, and backoff with jitter"; the AWS Architecture
    Blog, "Exponential Backoff And Jitter", 2015): the ceiling doubles with every failed
    delivery, and the random draw below it spreads the retries of many messages that
    failed together (a store that was down) instead of sending them back at once.
    `receives` is the message's ApproximateReceiveCount (1 on its first delivery);
    `cap_seconds` is at most SQS's 12 hours.
    """
    exponent = min(max(receives, 1) - 1, 32)  # beyond 2**32 the cap has long won
    ceiling = min(float(min(cap_seconds, MAX_VISIBILITY_SECONDS)), base_seconds * 2.0 ** exponent)
    return min(int(ceiling), max(0, round(uniform(0.0, ceiling))))


def predict_rows(predictor: Predictor, rows: Sequence[Row], batch_size: int) -> list[str]:
    lines: list[str] = []
    name = predictor.inputs[0].name if predictor.inputs else "input-0"
    for chunk in batches(rows, batch_size):
        lines += prediction_lines(chunk, predictor.predict({name: as_matrix(chunk)}))
    return lines


def input_of(body: str) -> str:
    """The S3 object a message names: its body is a JSON job `{"input": "s3://bucket/key"}`.

    Anything else (text that is not JSON, JSON that is not such an object, a bare URI,
    a local path or `file://` URI) raises `PoisonMessageError`: a message comes from
    outside the pod, and must never make the worker read a file of its own container.
    """
    try:
        message = json.loads(body)
    except json.JSONDecodeError as error:
        raise PoisonMessageError(f"message is not JSON: {error.msg} (expected a JSON job "
                                 '{"input": "s3://bucket/key"})') from error
    uri = message.get("input", message.get("uri")) if isinstance(message, dict) else None
    if not isinstance(uri, str) or not uri:
        raise PoisonMessageError('message is not a JSON job: it names no input (expected '
                                 '{"input": "s3://bucket/key"})')
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise PoisonMessageError(f"message input '{uri}' is not an S3 object (s3://bucket/key);"
                                 " a worker reads no local files")
    if not key or key.endswith("/"):
        raise PoisonMessageError(f"message input '{uri}' names a prefix, not one object "
                                 "(s3://bucket/key); a message is one input")
    return uri


def output_for(output_prefix: str, input_uri: str) -> str:
    """One output per input, named from it: a retried message overwrites, never duplicates."""
    stem = PurePosixPath(Location.parse(input_uri).key).stem or "input"
    digest = hashlib.sha256(input_uri.encode()).hexdigest()[:12]
    return Location.parse(output_prefix).child(f"{stem}-{digest}.jsonl")


REJECTED = (PoisonMessageError, RecordError, UnicodeDecodeError, ProtocolError)
"""Client mistakes: a message no retry will make readable (its body, its input's rows, or
rows the model cannot take: the errors the HTTP server answers with a 400)."""


@dataclass
class QueueWorker:
    """Takes the queue's messages one at a time; a failed one is retried after a backoff.

    SQS counts every delivery (ApproximateReceiveCount) and, past the queue's redrive
    policy's maxReceiveCount, moves the message to the dead-letter queue. A failed
    message is therefore never handed back at once (its tries would all be spent in
    milliseconds, and a queue without a dead-letter queue would deliver it in a loop):
    its visibility timeout is set to a `full_jitter` backoff, capped by the queue's
    visibility timeout (VISIBILITY_TIMEOUT_SECONDS, which the Deployment sets from
    `batch.visibilityTimeoutSeconds`). ChangeMessageVisibility counts that timeout from
    the call (Amazon SQS API Reference), so the message comes back that many seconds
    after the failure.
    """

    settings: Settings
    predictor: Predictor
    metrics: Metrics
    stop: threading.Event
    client: Any = field(default_factory=sqs)
    """The SQS client (boto3); a test passes one that records its calls."""
    uniform: Callable[[float, float], float] = random.uniform
    """The backoff's random draw (low, high in seconds); a test passes a seeded one."""

    def run(self) -> None:
        """Take messages until told to stop; a message being worked on is always finished.

        A message that a receive already under way returns after the stop is still worked
        on: handing it back would spend one of its receives without a try.
        """
        while not self.stop.is_set():
            response = self.client.receive_message(
                QueueUrl=self.settings.queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=self.settings.poll_seconds,
                AttributeNames=["ApproximateReceiveCount"])
            for message in response.get("Messages", []):
                self.handle(message)

    def handle(self, message: dict[str, Any]) -> bool:
        """Predict one input; delete the message only once its output is written.

        On failure the message stays on the queue, hidden for `retry_delay` seconds;
        a body that is not a JSON job (or an input whose rows cannot be read) is logged as
        rejected and left to reach the dead-letter queue by its receives.
        """
        model = self.settings.model_name
        try:
            with self._heartbeat(message):
                input_uri = input_of(message.get("Body", ""))
                rows = parse_rows(read_bytes(input_uri), input_uri)
                lines = predict_rows(self.predictor, rows, self.settings.batch_size)
                target = output_for(str(self.settings.output_uri), input_uri)
                write_bytes(target, ("\n".join(lines) + "\n").encode())
        except Exception as error:  # one bad message must not stop the worker
            delay = self.retry_delay(message)
            receives = receive_count(message)
            if isinstance(error, REJECTED):
                log.error("message %s rejected (delivery %d): %s; no retry can read it, it goes"
                          " to the dead-letter queue after the queue's maxReceiveCount "
                          "deliveries (next in %d s)", message.get("MessageId"), receives,
                          error, delay)
                self.metrics.messages.labels(model, "rejected").inc()
            else:
                log.error("message %s failed (delivery %d): %s; retried in %d s",
                          message.get("MessageId"), receives, error, delay)
                self.metrics.messages.labels(model, "failed").inc()
            self._hide(message, delay)
            return False
        self.client.delete_message(QueueUrl=self.settings.queue_url,
                                   ReceiptHandle=message["ReceiptHandle"])
        self.metrics.messages.labels(model, "done").inc()
        self.metrics.rows.labels(model).inc(len(rows))
        log.info("message %s: %d rows from %s to %s", message.get("MessageId"), len(rows),
                 input_uri, target)
        return True

    def retry_delay(self, message: dict[str, Any]) -> int:
        """Seconds before a failed message's next delivery: `full_jitter` of its receives,
        RETRY_BASE_SECONDS doubling, capped by the queue's visibility timeout."""
        return full_jitter(receive_count(message), self.settings.retry_base_seconds,
                           self.settings.visibility_timeout_seconds, self.uniform)

    def _hide(self, message: dict[str, Any], seconds: int) -> None:
        """Set the message's visibility timeout; if that fails, the queue's own timeout
        (already running since the receive) brings it back, later rather than sooner."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=seconds)
        except Exception as error:
            log.warning("message %s: cannot set its visibility timeout: %s",
                        message.get("MessageId"), error)

    @contextlib.contextmanager
    def _heartbeat(self, message: dict[str, Any]) -> Iterator[None]:
        """Keep the message hidden from other workers for as long as this one works on it."""
        timeout = self.settings.visibility_timeout_seconds
        done = threading.Event()

        def extend() -> None:
            while not done.wait(max(1.0, timeout / 3)):
                with contextlib.suppress(Exception):
                    self.client.change_message_visibility(
                        QueueUrl=self.settings.queue_url,
                        ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=timeout)

        beat = threading.Thread(target=extend, daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()


def receive_count(message: dict[str, Any]) -> int:
    """The message's ApproximateReceiveCount (1 on its first delivery; 1 when not asked for)."""
    try:
        return max(1, int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1


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
