"""A model's work queue and its dead-letter queue: encrypted, TLS-only, with redrive.

Both queues are retained on delete: removing a model must not drop the
messages still waiting in them, least of all the failed ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.provenance import Provenance

RETENTION_SECONDS = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600  # the most SQS keeps
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class WorkQueueArgs:
    provenance: Provenance
    queue_name: str
    """Physical name, e.g. `modelfleet-prod-churn-scorer`; the DLQ adds `-dlq`."""
    visibility_timeout_seconds: int
    max_receive_count: int


class WorkQueue(pulumi.ComponentResource):
    url: pulumi.Output[str]
    arn: pulumi.Output[str]
    dead_letter_url: pulumi.Output[str]
    dead_letter_arn: pulumi.Output[str]

    def __init__(self, name: str, args: WorkQueueArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:batch:WorkQueue", name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.provenance.aws_tags()
        dead = aws.sqs.Queue(
            f"{name}-dlq", name=f"{args.queue_name}-dlq", sqs_managed_sse_enabled=True,
            message_retention_seconds=DEAD_LETTER_RETENTION_SECONDS, tags=tags, opts=kept)
        queue = aws.sqs.Queue(
            name, name=args.queue_name, sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=RETENTION_SECONDS,
            receive_wait_time_seconds=LONG_POLL_SECONDS,
            redrive_policy=dead.arn.apply(lambda arn: json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count})),
            tags=tags, opts=kept)
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-redrive-allow", queue_url=dead.url,
            redrive_allow_policy=queue.arn.apply(lambda arn: json.dumps(
                {"redrivePermission": "byQueue", "sourceQueueArns": [arn]})), opts=child)
        for queue_name, target in ((name, queue), (f"{name}-dlq", dead)):
            aws.sqs.QueuePolicy(f"{queue_name}-policy", queue_url=target.url,
                                policy=target.arn.apply(tls_only_queue_policy), opts=child)
        self.url, self.arn = queue.url, queue.arn
        self.dead_letter_url, self.dead_letter_arn = dead.url, dead.arn
        self.register_outputs({"url": self.url, "arn": self.arn,
                               "dead_letter_url": self.dead_letter_url})


def tls_only_queue_policy(queue_arn: str) -> str:
    statement: dict[str, Any] = {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*",
        "Resource": queue_arn, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})
