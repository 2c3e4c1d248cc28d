"""Circuit-breaker series for Prometheus, from the cluster snapshot (scrape time, not per process).

A breaker's state is one for the whole cluster, held in Redis, so it is read with the other
cluster gauges by :class:`~wowevent_kombu.observability.collector.ClusterCollector`:

* ``wowevent_breaker_state`` — 0 closed, 1 half-open, 2 open;
* ``wowevent_breaker_open_seconds`` — since it opened, through half-open rounds (0 closed);
  the alert "open longer than N minutes" reads this one;
* ``wowevent_breaker_transitions_total`` — transitions into each state, counted in Redis.

Only subscribers whose breaker has state in Redis (it opened once, or was forced) have series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from wowevent_kombu.core.breaker import STATES
from wowevent_kombu.observability.status import ClusterStatus


def breaker_metrics(exchange: str, status: ClusterStatus) -> Iterator[Metric]:
    """The breaker series of ``status`` (nothing when no breaker has state)."""
    labels = ["exchange", "subscriber"]
    state = GaugeMetricFamily(
        "wowevent_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", labels=labels
    )
    opened = GaugeMetricFamily(
        "wowevent_breaker_open_seconds",
        "Seconds since the breaker opened, half-open rounds included; 0 when closed.",
        labels=labels,
    )
    transitions = CounterMetricFamily(
        "wowevent_breaker_transitions",
        "Circuit-breaker transitions into each state.",
        labels=[*labels, "state"],
    )
    any_state = False
    for sub in status.subscribers:
        if sub.breaker is None:
            continue
        any_state = True
        breaker = sub.breaker
        key = [exchange, sub.name]
        state.add_metric(key, breaker.gauge)
        opened.add_metric(key, breaker.open_seconds(status.taken_at))
        for name in STATES:
            transitions.add_metric([*key, name], breaker.transitions.get(name, 0))
    if any_state:
        yield from (state, opened, transitions)
