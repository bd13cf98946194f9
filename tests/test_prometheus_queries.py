"""Every PromQL the program emits, evaluated by a real Prometheus scraping real model servers.

Three model servers run on 127.0.0.1 as three pods of the model `fraud-detector` in namespace
`models`: two of the stable Deployment (version 1.4.2) and one of the candidate `challenger`
(1.5.0); and one queue worker, fed two messages of 25 rows a second through SQS (moto).
Prometheus scrapes them every second through the scrape job the Prometheus Operator makes of
the model's PodMonitor. After a rest phase, one bounded load phase: 8 clients keep
a request outstanding against the two stable pods (one request in ten malformed: a 400),
2 clients against the candidate (one in five fails inside the model: a 500); the model takes
50 ms per request. The clients record every request (start, end, pod, status), and each
query is compared with what they sent over the same window.

Windows: Flagger's `{{ interval }}` is set to the test's window (as Flagger sets it to the
analysis interval); the KEDA triggers take their window as an argument (1 m in the cluster,
10 s here, 10 samples at this scrape interval). Values are asserted, never durations.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from components.alerts import AlertedModel, rule_groups
from components.dashboard import model_panels
from components.metrics import latency_ms, request_query, success_rate
from components.provenance import Provenance, StackScope
from components.runtimes.modelserver import REQUESTS as MODELSERVER
from components.scrape import pod_monitor_spec
from modelfleet.manifest.schema import ModelSpec
from tests.estimators import FAIL, PacedEstimator
from tests.modelserver_support import call, free_port, save_model, server_env, trained_model
from tests.prometheus import Pod, Prometheus, binary, exposition, now, pod_monitor_job, servers

pytestmark = pytest.mark.xdist_group("prometheus")
"""One worker starts the servers and Prometheus once for the whole module."""
NAMESPACE = "models"
MODEL = "fraud-detector"
WINDOW = 10
"""Seconds of every window queried."""
LOAD_SECONDS = 13
DELAY = 0.05
STABLE_PODS = ("fraud-detector-6d5f7c9b8-x7k2p", "fraud-detector-6d5f7c9b8-q9w4z")
WORKER_POD = "fraud-detector-worker-7c9d8b6f5-k2x4q"
ROWS_PER_MESSAGE = 25
MESSAGES_PER_SECOND = 2
CANDIDATE_POD = "fraud-detector-challenger-5b7d9f6c4-m3n8r"
GOOD = [[0.5, -1.0, 0.2, 0.0]]
FAILING = [[FAIL, -1.0, 0.2, 0.0]]


def infer_body(rows: list[list[float]]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])],
                        "datatype": "FP64", "data": rows}]}


QUEUE = "modelfleet-dev-fraud-detector"
ALERTED = AlertedModel(ModelSpec.model_validate({
    "name": MODEL, "team": "risk", "version": "1.4.2", "stage": "approved",
    "artifact": {"uri": "s3://training-output/fraud/model.joblib"},
    "image": {"ref": "registry.example/m@sha256:" + "c" * 64},
    # every request takes the model 50 ms: all are slower than a 50 ms objective
    "serving": {"slo": {"errorRatioPercent": 1.0, "p99LatencyMs": 50}},
    "batch": {"slo": {"oldestMessageSeconds": 1800, "deadLetterMessages": 0}}}),
    NAMESPACE, QUEUE)
HPA = f'namespace="{NAMESPACE}",horizontalpodautoscaler="keda-hpa-{MODEL}'
SQS = f'dimension_QueueName="{QUEUE}'
EXPORTED = "".join(f"{line}\n" for line in (
    f'kube_horizontalpodautoscaler_status_current_replicas{{{HPA}"}} 10',
    f'kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}"}} 10',
    f'kube_horizontalpodautoscaler_status_current_replicas{{{HPA}-worker"}} 3',
    f'kube_horizontalpodautoscaler_spec_max_replicas{{{HPA}-worker"}} 10',
    f'aws_sqs_approximate_age_of_oldest_message_maximum{{{SQS}",region="eu-west-1"}} 4000',
    f'aws_sqs_approximate_number_of_messages_visible_maximum{{{SQS}",region="eu-west-1"}} 40',
    f'aws_sqs_approximate_number_of_messages_visible_maximum{{{SQS}-dlq"}} 2'))
"""What kube-state-metrics and YACE would expose (neither runs here): the label matching of
the queries that read them is what this proves."""
MALFORMED: dict[str, Any] = {"inputs": [{"name": "input-0", "shape": [1, 3],
                                         "datatype": "FP64", "data": [[1.0, 2.0, 3.0]]}]}


@dataclass(frozen=True)
class Sent:
    pod: str
    start: float
    end: float
    status: int


@dataclass
class Observed:
    prometheus: Prometheus
    rest_at: float
    """A moment whose whole window lies before any request."""
    load_at: float
    """A moment whose whole window lies inside the load phase."""
    sent: list[Sent] = field(default_factory=list)
    queued: list[float] = field(default_factory=list)
    """When each message (of ROWS_PER_MESSAGE rows) was put on the worker's queue."""

    def in_window(self, pods: tuple[str, ...]) -> list[Sent]:
        return [s for s in self.sent
                if s.pod in pods and self.load_at - WINDOW < s.end <= self.load_at]

    def outstanding(self, pods: tuple[str, ...]) -> float:
        """Average requests outstanding (client side) over the window ending at `load_at`."""
        low, high = self.load_at - WINDOW, self.load_at
        return sum(max(0.0, min(s.end, high) - max(s.start, low))
                   for s in self.sent if s.pod in pods) / WINDOW


def provenance(version: str, candidate: str | None = None) -> Provenance:
    scope = StackScope("modelfleet", "dev", "dev")
    found = Provenance(MODEL, version, "risk", "c0ffee", "d1", scope)
    return found.for_candidate(candidate, version) if candidate else found


def client(url: str, pod: str, every: int, bad: dict[str, Any], stop: threading.Event,
           sent: list[Sent], lock: threading.Lock) -> None:
    """Keep one request outstanding until told to stop; every `every`-th one is `bad`."""
    count = 0
    while not stop.is_set():
        count += 1
        body = bad if count % every == 0 else infer_body(GOOD)
        start = now()
        status = call(f"{url}/v2/models/{MODEL}/infer", body).status
        with lock:
            sent.append(Sent(pod, start, now(), status))


BUCKET = "registry"


@contextmanager
def work_queue() -> Iterator[tuple[dict[str, str], str]]:
    """S3 and SQS (moto on 127.0.0.1) with a bucket, an input object of ROWS_PER_MESSAGE
    rows and an empty queue: the AWS environment and the queue's URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
           "AWS_REGION": "eu-west-1"}
    try:
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET,
                         CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket=BUCKET, Key="inputs/rows.jsonl", Body="\n".join(
            json.dumps(GOOD[0]) for _ in range(ROWS_PER_MESSAGE)).encode())
        sqs = boto3.client("sqs", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        yield aws, sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    finally:
        server.stop()


def producer(queue_url: str, stop: threading.Event, queued: list[float]) -> None:
    """Put MESSAGES_PER_SECOND messages a second on the queue, each naming the input."""
    endpoint = queue_url.split("/", 3)[:3]
    sqs = boto3.client("sqs", endpoint_url="/".join(endpoint), region_name="eu-west-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    start = now()
    while not stop.is_set():
        sqs.send_message(QueueUrl=queue_url,
                         MessageBody=json.dumps({"input": f"s3://{BUCKET}/inputs/rows.jsonl"}))
        queued.append(now())
        stop.wait(max(0.0, start + len(queued) / MESSAGES_PER_SECOND - now()))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    binary("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    model_uri = str(save_model(PacedEstimator(trained_model(), DELAY), folder / "model"))
    stable, candidate = provenance("1.4.2"), provenance("1.5.0", "challenger")
    pods = [Pod(name, NAMESPACE, stable.labels("server"), free_port()) for name in STABLE_PODS]
    pods.append(Pod(CANDIDATE_POD, NAMESPACE, candidate.labels("server"), free_port()))
    worker = Pod(WORKER_POD, NAMESPACE, stable.labels("worker"), free_port(), container="worker")
    job = pod_monitor_job(MODEL, NAMESPACE, pod_monitor_spec(stable), [*pods, worker])
    with ExitStack() as stack:
        exporter = stack.enter_context(exposition(EXPORTED))
        others = {"job_name": "exporters", "honor_labels": True,
                  "static_configs": [{"targets": [f"127.0.0.1:{exporter}"]}]}
        aws, queue_url = stack.enter_context(work_queue())
        servers(stack, [(server_env(model_uri, pod.port, MODEL_NAME=MODEL,
                                    MODEL_VERSION=pod.labels["app.kubernetes.io/version"]),
                         folder / f"{pod.name}.log") for pod in pods] + [
            (server_env(model_uri, worker.port, MODEL_NAME=MODEL, MODEL_VERSION="1.4.2",
                        MODEL_MODE="worker", QUEUE_URL=queue_url, POLL_SECONDS="1",
                        OUTPUT_URI=f"s3://{BUCKET}/outputs/{MODEL}/",
                        VISIBILITY_TIMEOUT_SECONDS="30", **aws), folder / "worker.log")])
        prometheus = Prometheus(folder / "server", [job, others],
                                rule_groups([ALERTED])).start()
        stack.callback(prometheus.stop)
        prometheus.targets_up(len(pods) + 2)
        time.sleep(WINDOW + 1.5)  # a whole window at rest
        rest_at = now() - 0.5
        stop, lock = threading.Event(), threading.Lock()
        sent: list[Sent] = []
        urls = {pod.name: f"http://127.0.0.1:{pod.port}" for pod in pods}
        clients = [threading.Thread(target=client, args=(
            urls[STABLE_PODS[i % 2]], STABLE_PODS[i % 2], 10, MALFORMED, stop, sent, lock))
            for i in range(8)]
        clients += [threading.Thread(target=client, args=(
            urls[CANDIDATE_POD], CANDIDATE_POD, 5, infer_body(FAILING), stop, sent, lock))
            for _ in range(2)]
        queued: list[float] = []
        clients.append(threading.Thread(target=producer, args=(queue_url, stop, queued)))
        for thread in clients:
            thread.start()
        time.sleep(LOAD_SECONDS)
        load_at = now() - 1.0
        stop.set()
        for thread in clients:
            thread.join()
        time.sleep(2.5)  # the scrapes after `load_at`, which rate() may use
        yield Observed(prometheus, rest_at, load_at, sent, queued)


def test_concurrency_reads_the_requests_outstanding_under_load_and_zero_at_rest(
        observed: Observed) -> None:
    query = request_query("concurrency", NAMESPACE, MODEL, MODELSERVER,
                          window=f"{WINDOW}s")
    outstanding = observed.outstanding(STABLE_PODS)
    under_load = observed.prometheus.value(query, observed.load_at)
    assert outstanding > 7.5, "the 8 clients kept their requests outstanding"
    # KEDA divides by the 2 replicas: at least half of the 4 per pod, never more than sent.
    assert 4.0 <= under_load <= outstanding + 0.2, (under_load, outstanding)
    assert observed.prometheus.value(query, observed.rest_at) < 0.05


def test_rps_reads_the_rate_sent(observed: Observed) -> None:
    query = request_query("rps", NAMESPACE, MODEL, MODELSERVER, window=f"{WINDOW}s")
    sent = len(observed.in_window(STABLE_PODS)) / WINDOW
    assert sent > 5, "too few requests in the window to compare rates"
    assert observed.prometheus.value(query, observed.load_at) == pytest.approx(sent, rel=0.1)
    # No inference yet: no series, which KEDA reads as 0 (`ignoreNullValues`, default true).
    assert [v for _, v in observed.prometheus.query(query, observed.rest_at)] in ([], [0.0])


def flagger(template: str, target: str) -> str:
    """A MetricTemplate's query as Flagger renders it (its `{{ namespace }}`, `{{ target }}`
    and `{{ interval }}` variables)."""
    return (template.replace("{{ namespace }}", NAMESPACE).replace("{{ target }}", target)
            .replace("{{ interval }}", f"{WINDOW}s"))


def test_flagger_success_rate_counts_4xx_as_success_and_5xx_as_failure(
        observed: Observed) -> None:
    stable = observed.in_window(STABLE_PODS)
    assert any(s.status == 400 for s in stable), "malformed requests were sent"
    assert observed.prometheus.value(
        flagger(success_rate(MODELSERVER), MODEL), observed.load_at) == pytest.approx(100.0)
    candidate = observed.in_window((CANDIDATE_POD,))
    succeeded = 100 * sum(s.status < 500 for s in candidate) / len(candidate)
    assert 70 < succeeded < 90
    reading = observed.prometheus.value(flagger(success_rate(MODELSERVER), f"{MODEL}-challenger"),
                                        observed.load_at)
    assert reading == pytest.approx(succeeded, abs=3.0)


def test_flagger_p99_reads_the_latency_within_a_histogram_bucket(observed: Observed) -> None:
    durations = sorted(s.end - s.start for s in observed.in_window(STABLE_PODS))
    client_p99 = durations[int(0.99 * (len(durations) - 1))]
    bounds = [b for b in (0.05, 0.1, 0.25, 0.5, 1.0, 2.5) if b >= client_p99]
    reading = observed.prometheus.value(flagger(latency_ms(MODELSERVER), MODEL), observed.load_at)
    # The server's own time is at least the model's 50 ms and at most the client's; the
    # histogram places the p99 inside the bucket that holds it.
    assert 1000 * DELAY <= reading <= 1000 * bounds[0], (reading, client_p99)


def test_the_pod_monitor_labels_series_with_namespace_pod_model_and_version(
        observed: Observed) -> None:
    series = observed.prometheus.query(
        'modelserver_requests_total{route="infer",code="200"}', observed.load_at)
    labels = {(s["namespace"], s["pod"], s["model"], s["version"], s["component"])
              for s, _ in series}
    assert labels == {
        (NAMESPACE, STABLE_PODS[0], MODEL, "1.4.2", "server"),
        (NAMESPACE, STABLE_PODS[1], MODEL, "1.4.2", "server"),
        (NAMESPACE, CANDIDATE_POD, MODEL, "1.5.0", "server")}
    assert not any(key.startswith("exported_") for s, _ in series for key in s)


def alert(name: str) -> str:
    (expr,) = [r["expr"] for g in rule_groups([ALERTED]) for r in g["rules"]
               if r.get("alert") == name]
    return str(expr)


def by_version(found: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels.get("version", ""): value for labels, value in found}


def test_the_alert_rules_record_what_was_sent_and_fire_for_the_version_that_burns(
        observed: Observed) -> None:
    prometheus, at = observed.prometheus, observed.load_at
    candidate = [s for s in observed.sent if s.pod == CANDIDATE_POD and s.end <= at]
    failed = sum(s.status >= 500 for s in candidate) / len(candidate)
    errors = by_version(prometheus.query(
        "model_version:modelserver_request_errors:ratio_rate5m", at))
    assert errors == {"1.5.0": pytest.approx(failed, abs=0.03)}, "1.4.2 has no 5xx: no ratio"
    burning = prometheus.query(alert("ModelErrorBudgetBurn"), at)
    assert [labels["version"] for labels, _ in burning] == ["1.5.0"]
    # Every request the model answers takes over 50 ms (errors too). Malformed ones (400)
    # never reach the model, but wait their turn behind those on the server's one inference
    # thread (first come, first served), so they are slow too unless none was ahead of them.
    stable = [s for s in observed.sent if s.pod in STABLE_PODS and s.end <= at]
    slow = by_version(prometheus.query("model_version:modelserver_request_slow:ratio_rate1h", at))
    answered = sum(s.status != 400 for s in stable) / len(stable)
    assert answered - 0.02 <= slow["1.4.2"] <= 1.0
    assert slow["1.5.0"] == pytest.approx(1.0, abs=0.02)
    assert slow.keys() == {"1.4.2", "1.5.0"}
    assert sorted(labels["version"] for labels, _ in
                  prometheus.query(alert("ModelLatencyBudgetBurn"), at)) == ["1.4.2", "1.5.0"]


def test_the_queue_and_autoscaler_alerts_match_the_exporters_series(observed: Observed) -> None:
    prometheus, at = observed.prometheus, observed.load_at
    pinned = prometheus.query(alert("ModelAutoscalerAtMaximum"), at)
    assert [labels["horizontalpodautoscaler"] for labels, _ in pinned] == [f"keda-hpa-{MODEL}"]
    assert prometheus.value(alert("ModelQueueMessagesOld"), at) == 4000
    assert prometheus.value(alert("ModelDeadLetterMessages"), at) == 2


def panel(title: str) -> list[str]:
    _unit, queries = model_panels(ALERTED)[title]
    return [q.expr.replace("$__rate_interval", f"{WINDOW}s") for q in queries]


def test_the_dashboard_panels_read_what_was_sent_per_version(observed: Observed) -> None:
    prometheus, at = observed.prometheus, observed.load_at
    (rps,) = panel("Requests per second")
    sent = {"1.4.2": len(observed.in_window(STABLE_PODS)) / WINDOW,
            "1.5.0": len(observed.in_window((CANDIDATE_POD,))) / WINDOW}
    assert by_version(prometheus.query(rps, at)) == {
        version: pytest.approx(rate, rel=0.1) for version, rate in sent.items()}
    (ratio,) = panel("Error ratio (5xx)")
    candidate = observed.in_window((CANDIDATE_POD,))
    assert by_version(prometheus.query(ratio, at)) == {
        "1.5.0": pytest.approx(sum(s.status >= 500 for s in candidate) / len(candidate),
                               abs=0.03)}
    p50, p99 = panel("Latency p50 and p99")
    for query in (p50, p99):
        for version, seconds in by_version(prometheus.query(query, at)).items():
            assert DELAY <= seconds <= 0.25, (version, query, seconds)
    (progress,) = panel("Requests in progress")
    in_progress = by_version(prometheus.query(progress, at))
    assert 4.0 <= in_progress["1.4.2"] <= observed.outstanding(STABLE_PODS) + 0.2
    assert 1.0 <= in_progress["1.5.0"] <= observed.outstanding((CANDIDATE_POD,)) + 0.2
    (replicas,) = panel("Replicas")
    assert by_version(prometheus.query(replicas, at)) == {"1.4.2": 2, "1.5.0": 1}
    waiting, dead = panel("Queue depth")
    assert (prometheus.value(waiting, at), prometheus.value(dead, at)) == (40, 2)


def test_the_batch_panels_read_the_rows_the_worker_predicted(observed: Observed) -> None:
    prometheus, at = observed.prometheus, observed.load_at
    queued = [t for t in observed.queued if at - WINDOW < t <= at]
    sent = len(queued) * ROWS_PER_MESSAGE / WINDOW
    assert sent == pytest.approx(MESSAGES_PER_SECOND * ROWS_PER_MESSAGE, rel=0.15)
    (rows,) = panel("Rows predicted per second")
    # The serving pods count rows too; the panel counts the workers' and runs' only.
    assert by_version(prometheus.query(rows, at)) == {"1.4.2": pytest.approx(sent, rel=0.15)}
    (workers,) = panel("Workers")
    assert by_version(prometheus.query(workers, at)) == {"1.4.2": 1}
