"""Counting helpers shared by the reliability tests: events in against events handled."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from wowevent_kombu import Event, EventBus


def publisher(url: str, exchange: str, timeout: float = 1.0) -> EventBus:
    app = Celery("reliability", broker=url, set_as_current=False)
    return EventBus(app, exchange=exchange, publish_timeout=timeout)


def publish_all(
    bus: EventBus, n: int, event_type: str = "h.item", *, batch: int = 500
) -> list[str]:
    """Publish ``n`` events of ``event_type`` in ``publish_many`` batches; their ids in order."""
    ids: list[str] = []
    for start in range(0, n, batch):
        events = [
            Event(type=event_type, data={"n": i}) for i in range(start, min(n, start + batch))
        ]
        bus.publish_many(events)
        ids += [e.id for e in events]
    return ids


def runs(client: redis.Redis, exchange: str) -> Counter[tuple[str, str]]:
    """Counter of (subscriber, event id) -> executions (``<exchange>:runs`` entries)."""
    return Counter(
        tuple(raw.decode().split()[:2])  # type: ignore[misc]
        for raw in client.lrange(f"{exchange}:runs", 0, -1)
    )


def missing(
    client: redis.Redis, exchange: str, ids: Iterable[str], subscribers: Iterable[str]
) -> list[tuple[str, str]]:
    """``(subscriber, event id)`` of every delivery not handled yet."""
    counts = runs(client, exchange)
    ids = list(ids)
    return [(s, i) for s in subscribers for i in ids if counts[(s, i)] == 0]


def tally(
    counts: Counter[tuple[str, str]], subscribers: Iterable[str], ids: list[str]
) -> dict[str, Any]:
    """Events in, handled, duplicated and lost per subscriber."""
    report: dict[str, Any] = {}
    for sub in subscribers:
        handled = [counts[(sub, i)] for i in ids]
        report[sub] = {
            "in": len(ids),
            "handled": sum(1 for n in handled if n),
            "duplicates": sum(n - 1 for n in handled if n > 1),
            "lost": sum(1 for n in handled if n == 0),
        }
    return report


def report(name: str, figures: dict[str, Any]) -> None:
    """Print a test's counts and append them to ``$WOWEVENT_RELIABILITY_REPORT`` if set."""
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"\nRELIABILITY {line}")
    target = os.environ.get("WOWEVENT_RELIABILITY_REPORT")
    if target:
        with Path(target).open("a") as out:
            out.write(line + "\n")
