"""The stack's alert rules, checked and unit-tested by Prometheus' own `promtool`.

Each alert fires on the series that should fire it and stays silent on its near misses.
Series are written at one sample a minute, as promtool's unit tests do; the rules are the
ones the PrometheusRule carries, written to a rule file unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.alerts import AlertedModel, rule_groups
from modelfleet.manifest.schema import LATENCY_OBJECTIVES_MS, ModelSpec
from tests.prometheus import binary

IMAGE = "registry.example/models/m@sha256:" + "c" * 64
QUEUE = "modelfleet-dev-fraud"


def spec(**sections: Any) -> ModelSpec:
    return ModelSpec.model_validate({
        "name": "fraud", "team": "risk", "version": "1.4.2", "stage": "approved",
        "artifact": {"uri": "s3://training-output/fraud/model.joblib"},
        "image": {"ref": IMAGE}, **sections})


FRAUD = AlertedModel(spec(
    serving={"slo": {"errorRatioPercent": 1.0, "p99LatencyMs": 250},
             "candidates": [{"name": "challenger", "version": "1.5.0", "weight": 10,
                             "artifact": {"uri": "s3://training-output/fraud/b.joblib"}}]},
    batch={"maxReceiveCount": 5, "slo": {"oldestMessageSeconds": 1800,
                                         "deadLetterMessages": 0}}),
    "models", QUEUE)


def requests(version: str, code: str, per_minute: int, minutes: int) -> dict[str, str]:
    return {"series": f'modelserver_requests_total{{namespace="models",model="fraud",'
                      f'version="{version}",route="infer",code="{code}",pod="p"}}',
            "values": f"0+{per_minute}x{minutes}"}


def promtool(folder: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    (folder / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups([FRAUD])}))
    (folder / "tests.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    return subprocess.run([binary("promtool"), "test", "rules", "tests.yml"], cwd=folder,
                          capture_output=True, text=True, check=False)


def passes(folder: Path, tests: list[dict[str, Any]]) -> None:
    result = promtool(folder, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def burn(version: str, value: str, what: str) -> dict[str, Any]:
    """The expected ModelErrorBudgetBurn (or latency) alert of one version."""
    if what == "errors":
        return {"exp_labels": {"severity": "critical", "model": "fraud", "team": "risk",
                               "namespace": "models", "version": version},
                "exp_annotations": {
                    "summary": f"fraud {version} answers too many requests with errors",
                    "description": f"{value} of inference requests to fraud version {version} "
                                   "end in a 5xx; the objective allows 1% over 30 days, and at "
                                   "this rate the budget is gone in days."}}
    return {"exp_labels": {"severity": "critical", "model": "fraud", "team": "risk",
                           "namespace": "models", "version": version},
            "exp_annotations": {
                "summary": f"fraud {version} is too slow",
                "description": f"{value} of inference requests to fraud version {version} take "
                               "longer than 250 ms; the p99 objective allows 1%."}}


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule_groups([FRAUD])}))
    result = subprocess.run([binary("promtool"), "check", "rules", "rules.yml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout  # 8 recorded ratios, 5 alerts


def test_a_fast_error_burn_pages_for_the_version_that_burns_only(tmp_path: Path) -> None:
    series = [requests("1.5.0", "200", 200, 90), requests("1.5.0", "500", 50, 90),
              # the stable version: 0.5% errors, and 4xx (clients' mistakes) do not count
              requests("1.4.2", "200", 995, 90), requests("1.4.2", "500", 5, 90),
              requests("1.4.2", "400", 500, 90)]
    passes(tmp_path, [{"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": "70m", "alertname": "ModelErrorBudgetBurn",
         "exp_alerts": [burn("1.5.0", "20%", "errors")]}]}])


def test_a_slow_error_burn_pages_once_six_hours_confirm_it(tmp_path: Path) -> None:
    # Six clean hours, then 8% errors: below 14.4x the 1% budget, above 6x. The 30 m ratio
    # is over 6% within half an hour; the 6 h ratio only after about four and a half hours.
    series = [requests("1.4.2", "200", 92, 660),
              {"series": 'modelserver_requests_total{namespace="models",model="fraud",'
                         'version="1.4.2",route="infer",code="500",pod="p"}',
               "values": "0x360 0+8x300"}]
    passes(tmp_path, [{"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": "8h", "alertname": "ModelErrorBudgetBurn", "exp_alerts": []},
        {"eval_time": "11h", "alertname": "ModelErrorBudgetBurn",
         # the 6 h ratio: about 2400 errors in 35500 requests (6.76%), as Prometheus
         # aligns the window on the samples
         "exp_alerts": [burn("1.4.2", "6.736%", "errors")]}]}])


def test_the_error_alert_stops_once_the_short_window_is_clean(tmp_path: Path) -> None:
    # An hour at 20% errors, then 30 clean minutes: the 1 h ratio is still high, the 5 m not.
    series = [requests("1.4.2", "200", 200, 90),
              {"series": 'modelserver_requests_total{namespace="models",model="fraud",'
                         'version="1.4.2",route="infer",code="500",pod="p"}',
               "values": "0+50x60 3000x30"}]
    passes(tmp_path, [{"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": "55m", "alertname": "ModelErrorBudgetBurn",
         "exp_alerts": [burn("1.4.2", "20%", "errors")]},
        {"eval_time": "90m", "alertname": "ModelErrorBudgetBurn", "exp_alerts": []}]}])


def histogram(version: str, fast: int, slow: int, minutes: int) -> list[dict[str, str]]:
    """Requests per minute answered within 250 ms (`fast`) and later (`slow`)."""
    labels = (f'namespace="models",model="fraud",version="{version}",route="infer",'
              'protocol="http",pod="p"')
    return [{"series": f'modelserver_request_duration_seconds_bucket{{{labels},le="0.25"}}',
             "values": f"0+{fast}x{minutes}"},
            {"series": f'modelserver_request_duration_seconds_bucket{{{labels},le="+Inf"}}',
             "values": f"0+{fast + slow}x{minutes}"},
            {"series": f"modelserver_request_duration_seconds_count{{{labels}}}",
             "values": f"0+{fast + slow}x{minutes}"}]


def test_a_latency_burn_pages_for_the_slow_version_only(tmp_path: Path) -> None:
    series = histogram("1.5.0", 75, 25, 90) + histogram("1.4.2", 995, 5, 90)
    passes(tmp_path, [{"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": "70m", "alertname": "ModelLatencyBudgetBurn",
         "exp_alerts": [burn("1.5.0", "25%", "latency")]}]}])


def queue(name: str, metric: str, values: str) -> dict[str, str]:
    return {"series": f'{metric}{{dimension_QueueName="{name}",region="eu-west-1"}}',
            "values": values}


OLDEST = "aws_sqs_approximate_age_of_oldest_message_maximum"
VISIBLE = "aws_sqs_approximate_number_of_messages_visible_maximum"


def test_an_old_message_in_the_queue_alerts_after_fifteen_minutes(tmp_path: Path) -> None:
    expected = {"exp_labels": {"severity": "warning", "model": "fraud", "team": "risk"},
                "exp_annotations": {
                    "summary": "fraud's queue is falling behind",
                    "description": f"The oldest message in {QUEUE} has waited 1h 6m 40s, more "
                                   "than 1800 s: the workers do not keep up, or none runs."}}
    passes(tmp_path, [{"interval": "1m", "input_series": [queue(QUEUE, OLDEST, "4000x40")],
                       "alert_rule_test": [
                           {"eval_time": "10m", "alertname": "ModelQueueMessagesOld",
                            "exp_alerts": []},
                           {"eval_time": "20m", "alertname": "ModelQueueMessagesOld",
                            "exp_alerts": [expected]}]},
                      {"interval": "1m", "input_series": [queue(QUEUE, OLDEST, "1700x40"),
                                                          queue("other", OLDEST, "9000x40")],
                       "alert_rule_test": [
                           {"eval_time": "30m", "alertname": "ModelQueueMessagesOld",
                            "exp_alerts": []}]}])


def test_a_message_in_the_dead_letter_queue_alerts(tmp_path: Path) -> None:
    expected = {"exp_labels": {"severity": "warning", "model": "fraud", "team": "risk"},
                "exp_annotations": {
                    "summary": "fraud gave up on messages",
                    "description": f"2 messages wait in {QUEUE}-dlq: each failed 5 times. "
                                   "Read them, fix the cause, redrive them."}}
    passes(tmp_path, [{"interval": "1m", "input_series": [
        queue(f"{QUEUE}-dlq", VISIBLE, "0x5 2x20"), queue(QUEUE, VISIBLE, "50x25")],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "ModelDeadLetterMessages", "exp_alerts": []},
            {"eval_time": "15m", "alertname": "ModelDeadLetterMessages",
             "exp_alerts": [expected]}]}])


def hpa(name: str, current: int, maximum: int) -> list[dict[str, str]]:
    labels = f'namespace="models",horizontalpodautoscaler="{name}"'
    return [{"series": f"kube_horizontalpodautoscaler_status_current_replicas{{{labels}}}",
             "values": f"{current}x40"},
            {"series": f"kube_horizontalpodautoscaler_spec_max_replicas{{{labels}}}",
             "values": f"{maximum}x40"}]


def test_an_autoscaler_pinned_at_its_maximum_alerts_for_its_model_only(tmp_path: Path) -> None:
    series = (hpa("keda-hpa-fraud", 10, 10) + hpa("fraud-worker", 3, 10)
              + hpa("fraud-detector", 8, 8))  # another model's, whose name starts alike
    expected = {"exp_labels": {"severity": "warning", "model": "fraud", "team": "risk",
                               "namespace": "models",
                               "horizontalpodautoscaler": "keda-hpa-fraud"},
                "exp_annotations": {
                    "summary": "fraud: keda-hpa-fraud is at its maximum",
                    "description": "keda-hpa-fraud has run at its maximum replicas for 15 "
                                   "minutes: the load asks for more pods than the manifest "
                                   "allows fraud; raise the maximum or expect queueing and "
                                   "latency."}}
    passes(tmp_path, [{"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": "10m", "alertname": "ModelAutoscalerAtMaximum", "exp_alerts": []},
        {"eval_time": "20m", "alertname": "ModelAutoscalerAtMaximum",
         "exp_alerts": [expected]}]}])


def test_a_latency_objective_off_the_histogram_is_refused() -> None:
    with pytest.raises(ValueError, match="300 is not a bound of the model server's latency"):
        spec(serving={"slo": {"p99LatencyMs": 300}})
    from modelserver.metrics import LATENCY_BUCKETS

    assert {round(b * 1000) for b in LATENCY_BUCKETS} >= set(LATENCY_OBJECTIVES_MS)
