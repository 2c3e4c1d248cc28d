"""The cluster view read from Redis: backlog, oldest waiting event, DLQ, workers, health.

One :class:`ClusterReader` call costs a few pipelined round trips however many subscribers are
bound (plus one per thousand dead-letter records), which is what lets ``/metrics`` read it on every
scrape. Dead-letter counts come from the dead-letter store itself
(:meth:`~wowevent_kombu.deadletters.store.DeadLetterStore.count_by_subscriber`), the event log's
length from the key :mod:`wowevent_kombu.core.names` gives, only when that key exists.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis

from wowevent_kombu.core import names, wire
from wowevent_kombu.core.breaker import BreakerState
from wowevent_kombu.core.errors import InvalidEventError
from wowevent_kombu.core.event import parse_time
from wowevent_kombu.core.topology import BindingTable
from wowevent_kombu.core.wire import EVENT_KWARG, RESENT_HEADER
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.observability.health import HealthRules, judge
from wowevent_kombu.observability.window import WindowStats, read_windows
from wowevent_kombu.worker.breakerstore import BreakerStore

log = logging.getLogger(__name__)

# Length of any key whatever its type; -1 when it does not exist. One round trip for all keys.
_LENGTHS = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'list' then out[i] = redis.call('LLEN', key)
  elseif kind == 'stream' then out[i] = redis.call('XLEN', key)
  elseif kind == 'zset' then out[i] = redis.call('ZCARD', key)
  elseif kind == 'hash' then out[i] = redis.call('HLEN', key)
  elseif kind == 'set' then out[i] = redis.call('SCARD', key)
  elseif kind == 'string' then out[i] = 1
  else out[i] = -1 end
end
return out
"""


@dataclasses.dataclass
class WorkerInfo:
    """A live worker as its heartbeat describes it."""

    hostname: str
    pid: int
    queues: list[str]
    metrics_port: int | None
    expires: float


@dataclasses.dataclass
class SubscriberStatus:
    """Everything ``wowevent status`` shows for one bound subscriber."""

    name: str
    patterns: list[str]
    backlog: int
    oldest_age: float | None
    dlq_size: int
    consumers: int
    window: WindowStats
    health: str
    reasons: list[str]
    breaker: BreakerState | None = None
    """The subscriber's circuit breaker, when it has state in Redis."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by ``/status`` and ``wowevent status --json``."""
        return {
            "subscriber": self.name,
            "patterns": self.patterns,
            "health": self.health,
            "reasons": self.reasons,
            "throughput_per_second": round(self.window.throughput, 3),
            "attempts": self.window.attempts,
            "outcomes": self.window.outcomes,
            "error_rate": self.window.error_rate,
            "delivery_latency_seconds": self.window.latency("delivery"),
            "end_to_end_latency_seconds": self.window.latency("end_to_end"),
            "backlog": self.backlog,
            "oldest_waiting_seconds": self.oldest_age,
            "dlq_size": self.dlq_size,
            "consumers": self.consumers,
            "breaker": self.breaker.as_dict() if self.breaker is not None else None,
        }


@dataclasses.dataclass
class ClusterStatus:
    """A snapshot of the whole bus."""

    exchange: str
    window_seconds: float
    subscribers: list[SubscriberStatus]
    workers: list[WorkerInfo]
    log_length: int | None
    taken_at: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by ``/status`` and ``wowevent status --json``."""
        return {
            "exchange": self.exchange,
            "window_seconds": self.window_seconds,
            "taken_at": self.taken_at,
            "log_length": self.log_length,
            "workers": [dataclasses.asdict(w) for w in self.workers],
            "subscribers": [s.as_dict() for s in self.subscribers],
        }


def oldest_event_age(raw: bytes | str | None, now: float) -> float | None:
    """Seconds a queued task message has waited; ``None`` if it tells no time.

    Measured from the event time, or from the re-publish of a replayed or re-driven delivery
    (a replay of day-old events is not a day-old backlog).
    """
    if raw is None:
        return None
    try:
        envelope = wire.decode_task_message(raw)
        resent = envelope.get("headers", {}).get(RESENT_HEADER)
        if isinstance(resent, int | float) and not isinstance(resent, bool):
            return max(0.0, now - float(resent))
        moment = parse_time(envelope["decoded_body"][1][EVENT_KWARG]["time"])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, InvalidEventError):
        return None
    return max(0.0, now - moment.timestamp())


class ClusterReader:
    """Reads the cluster view of one exchange from Redis.

    Args:
        client: A Redis client on the bus's Redis.
        exchange: The bus's exchange.
        rules: Health thresholds and the window.
    """

    def __init__(self, client: redis.Redis, exchange: str, rules: HealthRules) -> None:
        self.client = client
        self.exchange = exchange
        self.rules = rules
        self._lengths = client.register_script(_LENGTHS)
        self._table = BindingTable(client, exchange)
        # Only counted here: nothing is re-driven through it, so no subscriber is known.
        self._dead_letters = DeadLetterStore(client, exchange, known_subscribers=tuple)

    def bindings(self) -> dict[str, list[str]]:
        """Subscriber name -> bound patterns (``wowevent tail`` queues left out)."""
        out: dict[str, list[str]] = {}
        for queue, patterns in self._table.read().queues().items():
            name = names.subscriber_from_queue(self.exchange, queue)
            if name and not name.startswith(names.TAIL_PREFIX):
                out[name] = patterns
        return out

    def workers(self, now: float | None = None) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired."""
        now = time.time() if now is None else now
        live = []
        for raw in self.client.hgetall(names.workers_key(self.exchange)).values():
            try:
                doc = json.loads(raw)
                info = WorkerInfo(
                    str(doc["hostname"]), int(doc["pid"]), [str(q) for q in doc["queues"]],
                    doc.get("metrics_port"), float(doc["expires"]),
                )  # fmt: skip
            except (ValueError, KeyError, TypeError):
                continue
            if info.expires > now:
                live.append(info)
        return sorted(live, key=lambda w: w.hostname)

    def snapshot(
        self, *, window_seconds: float | None = None, only: Iterable[str] | None = None
    ) -> ClusterStatus:
        """Read everything; ``only`` limits the subscribers reported (all bound ones otherwise)."""
        now = time.time()
        window = window_seconds or self.rules.window_seconds
        bound = self.bindings()
        chosen = sorted(bound if only is None else [n for n in only if n in bound])
        queues = [names.queue_name(self.exchange, n) for n in chosen]
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
            pipe.lindex(queue, -1)
        (log_length,) = [int(n) for n in self._lengths(keys=[names.log_key(self.exchange)])]
        dead = self._dead_letters.count_by_subscriber()
        replies = pipe.execute() if queues else []
        workers = self.workers(now)
        windows = read_windows(
            self.client, self.exchange, chosen,
            window_seconds=window, bucket_seconds=self.rules.bucket_seconds, now=now,
        )  # fmt: skip
        subscribers = []
        for index, name in enumerate(chosen):
            backlog = int(replies[2 * index])
            age = oldest_event_age(replies[2 * index + 1], now) if backlog else None
            consumers = sum(1 for w in workers if queues[index] in w.queues)
            stats = windows[name]
            health, reasons = judge(
                self.rules, attempts=stats.attempts, error_rate=stats.error_rate,
                backlog=backlog, oldest_age=age, consumers=consumers,
            )  # fmt: skip
            entry = SubscriberStatus(
                name, bound[name], backlog, age, dead.get(name, 0),
                consumers, stats, health, reasons,
            )  # fmt: skip
            subscribers.append(entry)
        breakers = BreakerStore(self.client, self.exchange).read_known(chosen)
        for entry in subscribers:
            entry.breaker = breakers.get(entry.name)
        return ClusterStatus(
            self.exchange, window, subscribers, workers,
            log_length if log_length >= 0 else None, now,
        )  # fmt: skip
