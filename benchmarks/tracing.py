"""Tracing overhead: publish rate with OpenTelemetry tracing on vs off, and the delivery hook cost.

Both sides run in the same process against the same Redis, in alternating rounds, so the
machine's noise falls on both. "On" is what production runs: the SDK's tracer provider with a
batch span processor (its exporter drops the spans, so no collector's cost is counted) and every
publish inside an open request span. Usage (``make bench-tracing``):

    scripts/with-redis.sh .venv/bin/python benchmarks/tracing.py [--events 3000] [--rounds 3]

Target: publishing with tracing on is at most 10% slower than off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from types import SimpleNamespace

import redis
from celery import Celery
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from wowevent_kombu import EventBus, enable_tracing
from wowevent_kombu.core.event import Event
from wowevent_kombu.observability.tracing import BusTracing, TracingMiddleware


class Discard(SpanExporter):
    """Accepts every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def publish_round(
    bus: EventBus, events: int, provider: TracerProvider | None
) -> tuple[float, float]:
    """Publishes/s and CPU microseconds per publish of ``events`` single publishes."""
    cpu, wall = time.process_time(), time.perf_counter()
    if provider is None:
        for i in range(events):
            bus.publish("bench.tick", {"i": i})
    else:
        with provider.get_tracer("bench").start_as_current_span("request"):
            for i in range(events):
                bus.publish("bench.tick", {"i": i})
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    return events / wall, cpu / events * 1e6


def hook_cost_us(provider: TracerProvider, repeat: int) -> float:
    """CPU microseconds the delivery span adds to one delivery (in process, no Redis)."""
    middleware = TracingMiddleware(BusTracing("benchhooks", provider))
    event = Event(
        type="bench.tick",
        data={},
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    task = SimpleNamespace(wowevent_subscriber="noop", request=SimpleNamespace(retries=0))
    begin = time.process_time()
    for _ in range(repeat):
        middleware.before_handle(task, event)  # type: ignore[arg-type]
        middleware.after_handle(task, event, result=None, exc=None)  # type: ignore[arg-type]
    return (time.process_time() - begin) / repeat * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_BROKER_URL", "redis://127.0.0.1:6379/0")
    exchange = f"benchtrace{uuid.uuid4().hex[:8]}"
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    buses = {
        name: EventBus(Celery(name, broker=url, set_as_current=False), exchange=exchange)
        for name in ("tracing off", "context only", "publish span")
    }
    enable_tracing(buses["context only"], provider, publish_spans=False)
    enable_tracing(buses["publish span"], provider)
    buses["tracing off"].transport.bind(f"{exchange}.noop", ["bench.*"])
    client = redis.Redis.from_url(url)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in buses}
    try:
        for name, bus in buses.items():  # warm every path up (scripts loaded, caches filled)
            publish_round(bus, 200, None if name == "tracing off" else provider)
        for _ in range(args.rounds):
            for name, bus in buses.items():
                traced = None if name == "tracing off" else provider
                results[name].append(publish_round(bus, args.events, traced))
            client.delete(f"{exchange}.noop")
        hook = hook_cost_us(provider, 20_000)
    finally:
        for bus in buses.values():
            bus.close()
        provider.shutdown()
        keys = [*client.scan_iter(match=f"{exchange}*", count=1000), f"_kombu.binding.{exchange}"]
        client.delete(*keys)
    rate_off = statistics.median(r for r, _ in results["tracing off"])
    print(f"single publish, {args.events} events x {args.rounds} rounds (median):")
    print(f"  {'':<13} {'publishes/s':>12} {'CPU us/publish':>15} {'rate vs off':>12}")
    for name, figures in results.items():
        rate = statistics.median(r for r, _ in figures)
        cpu = statistics.median(c for _, c in figures)
        print(f"  {name:<13} {rate:>12,.0f} {cpu:>15.1f} {rate / rate_off:>12.1%}")
    print("  target: tracing on at least 90% of the rate with tracing off")
    print(f"delivery span hooks: {hook:.1f} CPU us per delivery")


if __name__ == "__main__":
    main()
