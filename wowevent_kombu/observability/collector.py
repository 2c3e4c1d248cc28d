"""Cluster gauges for Prometheus, read from Redis at scrape time.

Register one :class:`ClusterCollector` per exchange in the registry that ``wowevent serve``
exposes, and in no worker's: each series then exists once in the cluster, not once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from wowevent_kombu.observability.breakermetrics import breaker_metrics
from wowevent_kombu.observability.health import STATES
from wowevent_kombu.observability.status import ClusterReader

log = logging.getLogger(__name__)


class ClusterCollector(Collector):
    """Yields queue depth, oldest waiting age, DLQ size, log length, workers and health.

    When Redis does not answer, only ``wowevent_redis_up 0`` is reported, so a scrape never
    fails and an alert can fire on it.
    """

    def __init__(self, reader: ClusterReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        exchange = self.reader.exchange
        up = GaugeMetricFamily(
            "wowevent_redis_up", "1 when Redis answered this scrape.", labels=["exchange"]
        )
        try:
            status = self.reader.snapshot()
        except redis.RedisError as exc:
            log.warning("cluster metrics unavailable: Redis did not answer: %s", exc)
            up.add_metric([exchange], 0)
            yield up
            return
        up.add_metric([exchange], 1)
        yield up
        labels = ["exchange", "subscriber"]
        bound = GaugeMetricFamily(
            "wowevent_bound_subscribers", "Subscribers bound to the exchange.", labels=["exchange"]
        )
        bound.add_metric([exchange], len(status.subscribers))
        depth = GaugeMetricFamily(
            "wowevent_queue_waiting_events", "Deliveries waiting in the queue.", labels=labels
        )
        age = GaugeMetricFamily(
            "wowevent_queue_oldest_event_age_seconds",
            "Age (from event time) of the oldest waiting delivery; 0 when none waits.",
            labels=labels,
        )
        dlq = GaugeMetricFamily(
            "wowevent_dlq_events",
            "Dead-lettered deliveries kept for the subscriber.",
            labels=labels,
        )
        consumers = GaugeMetricFamily(
            "wowevent_subscriber_consumers", "Live workers consuming the queue.", labels=labels
        )
        health = GaugeMetricFamily(
            "wowevent_subscriber_health",
            "1 for the subscriber's current health state (healthy, degraded, unhealthy), else 0.",
            labels=[*labels, "state"],
        )
        for sub in status.subscribers:
            key = [exchange, sub.name]
            depth.add_metric(key, sub.backlog)
            age.add_metric(key, sub.oldest_age or 0.0)
            dlq.add_metric(key, sub.dlq_size)
            consumers.add_metric(key, sub.consumers)
            for state in STATES:
                health.add_metric([*key, state], 1.0 if state == sub.health else 0.0)
        workers = GaugeMetricFamily(
            "wowevent_workers", "Live instrumented workers (by heartbeat).", labels=["exchange"]
        )
        workers.add_metric([exchange], len(status.workers))
        yield from (bound, depth, age, dlq, consumers, health, workers)
        yield from breaker_metrics(exchange, status)
        if status.log_length is not None:
            log_length = GaugeMetricFamily(
                "wowevent_log_events", "Events kept in the event log stream.", labels=["exchange"]
            )
            log_length.add_metric([exchange], status.log_length)
            yield log_length
