"""The stack's alert rules (a Prometheus Operator `PrometheusRule`): one group per model.

Online models, per version (stable, candidates, Flagger's primary and canary are told apart by
the PodMonitor's `version` label), against the manifest's `serving.slo`:

- `ModelErrorBudgetBurn`: the share of inference requests answered with a 5xx burns the
  error budget (`errorRatioPercent`) fast;
- `ModelLatencyBudgetBurn`: the share answered slower than `p99LatencyMs` burns its 1% budget
  fast (p99 within the objective is "at most 1% slower than it").

Both are the Google SRE workbook's multi-window, multi-burn-rate alerts ("Alerting on SLOs",
recommended parameters for a 30-day objective): page when the burn rate is above 14.4 over
both 1 h and 5 m (2% of the budget in an hour), or above 6 over both 6 h and 30 m (5% in six
hours). The short window makes the alert stop soon after the burn stops. The workbook's third
tier (a ticket at 1x over 3 d and 6 h) is left out: it needs three days of samples per
series and pages no one. Ratios are recorded per window (`model_version:...:ratio_rate5m`...),
as the workbook does.

Batch models, against `batch.slo`, from CloudWatch's SQS metrics as
prometheus-community/yet-another-cloudwatch-exporter (YACE) exports them
(`aws_sqs_<metric>_<statistic>`, the queue in `dimension_QueueName`; read in its
documentation, not run here). CloudWatch rather than the workers' own metrics: it sees the
queue when the workers are scaled to zero, it is the only source of the oldest message's age
(SQS' GetQueueAttributes has none), and no worker reads the dead-letter queue.

- `ModelQueueMessagesOld`: the oldest waiting message is older than `oldestMessageSeconds`;
- `ModelDeadLetterMessages`: the dead-letter queue holds more than `deadLetterMessages`.

Every model: `ModelAutoscalerAtMaximum`, kube-state-metrics' HPA series
(`kube_horizontalpodautoscaler_status_current_replicas` at
`kube_horizontalpodautoscaler_spec_max_replicas`) for 15 minutes: the load wants more pods
than the manifest allows. It covers our HPAs (`<model>`, `<model>-worker`, candidates), the
ones KEDA makes for its ScaledObjects (`keda-hpa-<name>`) and Flagger's primary copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from components.metrics import DURATION_BUCKETS, DURATION_COUNT, REQUESTS
from modelfleet.manifest.schema import ModelSpec

PAGE = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
"""(long window, short window, burn rate) of each paging condition (SRE workbook table 5-8)."""
WINDOWS = ("5m", "30m", "1h", "6h")
BY = "namespace, model, version"
ERRORS = "model_version:modelserver_request_errors:ratio_rate"
SLOW = "model_version:modelserver_request_slow:ratio_rate"
SERVER_ERROR = ',code=~"5.."'
LATENCY_BUDGET = 0.01
"""A p99 objective leaves 1% of requests to be slower."""
OLDEST_MESSAGE = "aws_sqs_approximate_age_of_oldest_message_maximum"
VISIBLE_MESSAGES = "aws_sqs_approximate_number_of_messages_visible_maximum"
HPA_REPLICAS = "kube_horizontalpodautoscaler_status_current_replicas"
HPA_MAX = "kube_horizontalpodautoscaler_spec_max_replicas"


@dataclass(frozen=True)
class AlertedModel:
    """What the rules of one model need to know."""

    spec: ModelSpec
    namespace: str
    queue_name: str | None = None
    """The physical SQS queue (its dead-letter queue is `<queue>-dlq`), for batch models."""


def le_label(milliseconds: int) -> str:
    """The histogram's `le` label for a bound, as prometheus_client writes it (`0.5`, `1.0`)."""
    return repr(milliseconds / 1000)


def _requests(model: AlertedModel, extra: str = "") -> str:
    return f'namespace="{model.namespace}",model="{model.spec.name}",route="infer"{extra}'


def error_ratio(model: AlertedModel, window: str) -> str:
    """Share (0-1) of a model's inference requests answered with a 5xx, per version."""
    errors = _requests(model, SERVER_ERROR)
    return (f"sum by ({BY}) (rate({REQUESTS}{{{errors}}}[{window}]))"
            f" / sum by ({BY}) (rate({REQUESTS}{{{_requests(model)}}}[{window}]))")


def slow_ratio(model: AlertedModel, window: str, objective_ms: int) -> str:
    """Share (0-1) of a model's inference requests slower than `objective_ms`, per version."""
    bound = _requests(model, f',le="{le_label(objective_ms)}"')
    return (f"1 - sum by ({BY}) (rate({DURATION_BUCKETS}{{{bound}}}[{window}]))"
            f" / sum by ({BY}) (rate({DURATION_COUNT}{{{_requests(model)}}}[{window}]))")


def burn_alert(record: str, model: AlertedModel, budget: float) -> str:
    """The workbook's two paging conditions over the recorded ratios of one model."""
    selector = f'{{model="{model.spec.name}",namespace="{model.namespace}"}}'
    return "\n or ".join(
        f"({record}{long}{selector} > ({rate} * {budget:g})"
        f" and {record}{short}{selector} > ({rate} * {budget:g}))"
        for long, short, rate in PAGE)


def autoscaler_names(model: AlertedModel) -> list[str]:
    """Every HPA that may scale one of the model's Deployments."""
    names = [model.spec.name]
    if model.spec.serving is not None:
        names += [f"{model.spec.name}-primary"]
        names += [f"{model.spec.name}-{c.name}" for c in model.spec.serving.candidates]
    if model.spec.batch is not None:
        names.append(f"{model.spec.name}-worker")
    return names


def autoscaler_at_maximum(model: AlertedModel) -> str:
    names = "|".join(autoscaler_names(model))
    selector = f'namespace="{model.namespace}",horizontalpodautoscaler=~"(keda-hpa-)?({names})"'
    by = "namespace, horizontalpodautoscaler"
    return (f"max by ({by}) ({HPA_REPLICAS}{{{selector}}})"
            f" >= max by ({by}) ({HPA_MAX}{{{selector}}})")


def _alert(name: str, expr: str, model: AlertedModel, severity: str, summary: str,
           description: str, duration: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "alert": name, "expr": expr,
        "labels": {"severity": severity, "model": model.spec.name, "team": model.spec.team},
        "annotations": {"summary": summary, "description": description}}
    if duration:
        rule["for"] = duration
    return rule


def model_group(model: AlertedModel) -> dict[str, Any]:
    """The rule group `modelfleet.<model>`: recorded ratios, then alerts."""
    rules: list[dict[str, Any]] = []
    spec = model.spec
    if spec.serving is not None:
        slo = spec.serving.slo
        budget = slo.error_ratio_percent / 100
        for window in WINDOWS:
            rules.append({"record": f"{ERRORS}{window}", "expr": error_ratio(model, window)})
            rules.append({"record": f"{SLOW}{window}",
                          "expr": slow_ratio(model, window, slo.p99_latency_ms)})
        rules.append(_alert(
            "ModelErrorBudgetBurn", burn_alert(ERRORS, model, budget), model, "critical",
            f"{spec.name} {{{{ $labels.version }}}} answers too many requests with errors",
            f"{{{{ $value | humanizePercentage }}}} of inference requests to {spec.name} "
            f"version {{{{ $labels.version }}}} end in a 5xx; the objective allows "
            f"{slo.error_ratio_percent:g}% over 30 days, and at this rate the budget is gone "
            "in days."))
        rules.append(_alert(
            "ModelLatencyBudgetBurn", burn_alert(SLOW, model, LATENCY_BUDGET), model,
            "critical", f"{spec.name} {{{{ $labels.version }}}} is too slow",
            f"{{{{ $value | humanizePercentage }}}} of inference requests to {spec.name} "
            f"version {{{{ $labels.version }}}} take longer than {slo.p99_latency_ms} ms; "
            "the p99 objective allows 1%."))
    if spec.batch is not None and model.queue_name:
        queue = spec.batch.slo
        rules.append(_alert(
            "ModelQueueMessagesOld",
            f'max({OLDEST_MESSAGE}{{dimension_QueueName="{model.queue_name}"}})'
            f" > {queue.oldest_message_seconds}",
            model, "warning", f"{spec.name}'s queue is falling behind",
            f"The oldest message in {model.queue_name} has waited "
            "{{ $value | humanizeDuration }}, more than "
            f"{queue.oldest_message_seconds} s: the workers do not keep up, or none runs.",
            "15m"))
        rules.append(_alert(
            "ModelDeadLetterMessages",
            f'max({VISIBLE_MESSAGES}{{dimension_QueueName="{model.queue_name}-dlq"}})'
            f" > {queue.dead_letter_messages}",
            model, "warning", f"{spec.name} gave up on messages",
            f"{{{{ $value }}}} messages wait in {model.queue_name}-dlq: each failed "
            f"{spec.batch.max_receive_count} times. Read them, fix the cause, redrive them.",
            "5m"))
    rules.append(_alert(
        "ModelAutoscalerAtMaximum", autoscaler_at_maximum(model), model, "warning",
        f"{spec.name}: {{{{ $labels.horizontalpodautoscaler }}}} is at its maximum",
        f"{{{{ $labels.horizontalpodautoscaler }}}} has run at its maximum replicas for 15 "
        f"minutes: the load asks for more pods than the manifest allows {spec.name}; raise "
        "the maximum or expect queueing and latency.", "15m"))
    return {"name": f"modelfleet.{spec.name}", "rules": rules}


def rule_groups(models: Sequence[AlertedModel]) -> list[dict[str, Any]]:
    """The `spec.groups` of the stack's PrometheusRule."""
    return [model_group(model) for model in sorted(models, key=lambda m: m.spec.name)]
