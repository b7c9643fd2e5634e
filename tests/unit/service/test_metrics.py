"""Prometheus text of the service metrics."""

from simsearch.service.metrics import Histogram, Metrics


def test_histogram_buckets_are_cumulative():
    histogram = Histogram([0.1, 1.0])
    for value in (0.05, 0.5, 0.7, 3.0):
        histogram.observe(value)
    lines = histogram.lines("h", 'route="/x"')
    assert lines[:3] == ['h_bucket{route="/x",le="0.1"} 1', 'h_bucket{route="/x",le="1"} 3',
                         'h_bucket{route="/x",le="+Inf"} 4']
    assert lines[-1] == 'h_count{route="/x"} 4' and lines[-2] == 'h_sum{route="/x"} 4.250000'


def test_requests_errors_batches_and_gauges_render():
    metrics = Metrics()
    metrics.observe_request("POST", "/score", 200, 0.01)
    metrics.observe_request("POST", "/score", 415, 0.002)
    metrics.observe_request("POST", "/score", 500, 0.002)
    metrics.observe_batch(4, 0.1)
    metrics.gauge("simsearch_exemplars", lambda: {"good": 3.0, 'odd"name': 1.0})
    text = metrics.render()
    assert 'simsearch_requests_total{method="POST",route="/score",status="415"} 1' in text
    assert 'simsearch_errors_total{route="/score",kind="client"} 1' in text
    assert 'simsearch_errors_total{route="/score",kind="server"} 1' in text
    assert 'simsearch_request_duration_seconds_count{method="POST",route="/score"} 3' in text
    assert 'simsearch_batch_size_bucket{le="4"} 1' in text and "simsearch_batch_size_count 1" in text
    assert 'simsearch_exemplars{label="good"} 3' in text and 'label="odd\\"name"' in text
    assert text.endswith("\n") and "# TYPE simsearch_requests_total counter" in text
