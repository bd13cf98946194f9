"""The model server's request-seconds counter: its rate is the average number in progress."""

from __future__ import annotations

from modelserver.metrics import Metrics, RequestSeconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_request_seconds_grow_by_the_requests_in_progress_times_the_time() -> None:
    clock = Clock()
    seconds = RequestSeconds(clock)
    seconds.started()
    clock.now += 2.0  # one request for 2 s
    seconds.started()
    clock.now += 3.0  # two requests for 3 s
    assert seconds.value() == 8.0, "read while both are still in progress"
    seconds.finished()
    seconds.finished()
    clock.now += 10.0  # at rest
    assert seconds.value() == 8.0
    # Over the 15 s: 8 request-seconds, so on average 8/15 requests in progress.


def test_the_counter_is_exposed_with_the_model_label() -> None:
    metrics = Metrics()
    metrics.serving("fraud-detector", "1.4.2")
    metrics.inference_started()
    text = metrics.exposition().decode()
    assert "# TYPE modelserver_requests_in_progress_seconds_total counter" in text
    assert 'modelserver_requests_in_progress_seconds_total{model="fraud-detector"}' in text
    assert 'modelserver_requests_in_flight{model="fraud-detector"} 1.0' in text
    metrics.inference_finished()
    assert 'modelserver_requests_in_flight{model="fraud-detector"} 0.0' \
        in metrics.exposition().decode()
