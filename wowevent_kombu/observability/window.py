"""The recent-window statistics behind ``wowevent status`` and subscriber health.

Every worker process adds what its deliveries did to per-subscriber, per-time-bucket hashes in
Redis (outcome counts and fine latency-bucket counts), buffered in memory and flushed about once
a second by a daemon thread, so a delivery costs no Redis round trip. Any process can then read
the last N seconds for the whole cluster, from every worker, without scraping each one.

What it cannot do: counts from the last second before a pool child dies unflushed are lost (the
Prometheus counters are not affected), and quantiles are interpolated within buckets that are
25% wide, so a p99 is accurate to about ±12%.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import redis

from wowevent_kombu.core import names
from wowevent_kombu.observability.metrics import OUTCOMES, DeliverySink

log = logging.getLogger(__name__)

WINDOW_BOUNDS: tuple[float, ...] = tuple(0.0001 * 1.25**i for i in range(64))
"""Upper bounds (seconds) of the window's latency buckets: 0.1 ms to ~160 s, 25% apart."""

DELIVERY_PREFIX = "d"
END_TO_END_PREFIX = "e"


def bucket_index(seconds: float) -> int:
    """Index of the window latency bucket holding ``seconds`` (the last one catches overflow)."""
    if seconds <= WINDOW_BOUNDS[0]:
        return 0
    index = math.ceil(math.log(seconds / WINDOW_BOUNDS[0], 1.25) - 1e-9)
    return min(index, len(WINDOW_BOUNDS) - 1)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile of a bucketed distribution, interpolated within its bucket.

    ``None`` when the distribution is empty.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = WINDOW_BOUNDS[index - 1] if index else 0.0
            upper = WINDOW_BOUNDS[index]
            return lower + (upper - lower) * max(0.0, rank - seen) / count
        seen += count
    return WINDOW_BOUNDS[-1]


class WindowRecorder(DeliverySink):
    """Buffers delivery outcomes and latencies per time bucket and flushes them to Redis.

    Safe to create before Celery forks its pool: each process notices its own pid, starts its
    own flusher thread and never flushes a parent's buffer twice.

    Args:
        client_factory: Makes the Redis client (called lazily, once per process).
        exchange: The bus's exchange (key prefix).
        bucket_seconds: Width of a time bucket; readers must use the same width.
        retain_seconds: How long a bucket is kept in Redis (the longest window readable).
        flush_interval: Seconds between flushes.
    """

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        exchange: str,
        *,
        bucket_seconds: int = 5,
        retain_seconds: int = 900,
        flush_interval: float = 1.0,
    ) -> None:
        self._factory = client_factory
        self.exchange = exchange
        self.bucket_seconds = bucket_seconds
        self.retain_seconds = retain_seconds
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._buffer: dict[tuple[str, int], dict[str, int]] = {}
        self._pid = 0
        self._client: redis.Redis | None = None
        self._stop = threading.Event()

    def record(
        self,
        subscriber: str,
        outcome: str,
        delivery_latency: float | None,
        end_to_end: float | None,
    ) -> None:
        bucket = int(time.time()) // self.bucket_seconds
        with self._lock:
            if self._pid != os.getpid():
                self._start_in_this_process()
            fields = self._buffer.setdefault((subscriber, bucket), {})
            fields[outcome] = fields.get(outcome, 0) + 1
            for prefix, value in (
                (DELIVERY_PREFIX, delivery_latency),
                (END_TO_END_PREFIX, end_to_end),
            ):
                if value is not None:
                    key = f"{prefix}{bucket_index(value)}"
                    fields[key] = fields.get(key, 0) + 1

    def _start_in_this_process(self) -> None:
        self._pid = os.getpid()
        self._buffer = {}
        self._client = None
        self._stop = threading.Event()
        thread = threading.Thread(target=self._run, name="wowevent-window", daemon=True)
        thread.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.flush_interval):
            self.flush()

    def flush(self) -> None:
        """Write the buffered counts to Redis now; a Redis error drops them (logged)."""
        with self._lock:
            pending, self._buffer = self._buffer, {}
        if not pending:
            return
        try:
            if self._client is None:
                self._client = self._factory()
            pipe = self._client.pipeline(transaction=False)
            for (subscriber, bucket), fields in pending.items():
                key = names.window_key(self.exchange, subscriber, bucket)
                for field, count in fields.items():
                    pipe.hincrby(key, field, count)
                pipe.expire(key, self.retain_seconds)
            pipe.execute()
        except Exception as exc:  # statistics must never take the worker down
            log.warning("could not write delivery statistics to Redis: %s", exc)

    def close(self) -> None:
        """Flush and stop this process's flusher thread."""
        self._stop.set()
        self.flush()


@dataclasses.dataclass
class WindowStats:
    """What one subscriber's deliveries did over a recent window, across all workers.

    Attributes:
        seconds: The span actually covered (the window plus the current partial bucket).
        outcomes: Attempts per outcome.
        delivery: Counts per :data:`WINDOW_BOUNDS` bucket of event time -> handler start.
        end_to_end: Counts per bucket of event time -> handler done.
    """

    seconds: float
    outcomes: dict[str, int]
    delivery: list[int]
    end_to_end: list[int]

    @property
    def attempts(self) -> int:
        """Delivery attempts that ended in the window."""
        return sum(self.outcomes.values())

    @property
    def errors(self) -> int:
        """Attempts that did not succeed (retried, failed, dead-lettered or rejected)."""
        return self.attempts - self.outcomes.get("succeeded", 0)

    @property
    def error_rate(self) -> float | None:
        """``errors / attempts``; ``None`` without attempts."""
        return self.errors / self.attempts if self.attempts else None

    @property
    def throughput(self) -> float:
        """Successful deliveries per second over the window."""
        return self.outcomes.get("succeeded", 0) / self.seconds if self.seconds > 0 else 0.0

    def latency(self, which: str) -> dict[str, float | None]:
        """p50/p95/p99 in seconds of ``"delivery"`` or ``"end_to_end"`` latency."""
        counts = self.delivery if which == "delivery" else self.end_to_end
        return {f"p{int(q * 100)}": quantile(counts, q) for q in (0.5, 0.95, 0.99)}


def read_windows(
    client: redis.Redis,
    exchange: str,
    subscribers: Iterable[str],
    *,
    window_seconds: float,
    bucket_seconds: int,
    now: float | None = None,
) -> dict[str, WindowStats]:
    """The last ``window_seconds`` of every subscriber in one pipelined round trip."""
    now = time.time() if now is None else now
    current = int(now) // bucket_seconds
    count = max(1, math.ceil(window_seconds / bucket_seconds))
    buckets = range(current - count, current + 1)
    covered = now - (current - count) * bucket_seconds
    chosen = list(subscribers)
    pipe = client.pipeline(transaction=False)
    for subscriber in chosen:
        for bucket in buckets:
            pipe.hgetall(names.window_key(exchange, subscriber, bucket))
    replies = iter(pipe.execute())
    out: dict[str, WindowStats] = {}
    for subscriber in chosen:
        stats = WindowStats(
            covered,
            dict.fromkeys(OUTCOMES, 0),
            [0] * len(WINDOW_BOUNDS),
            [0] * len(WINDOW_BOUNDS),
        )
        for _ in buckets:
            _merge(stats, next(replies))
        out[subscriber] = stats
    return out


def _merge(stats: WindowStats, fields: Mapping[bytes, bytes]) -> None:
    for raw_key, raw_value in fields.items():
        key = raw_key.decode()
        value = int(raw_value)
        if key in stats.outcomes:
            stats.outcomes[key] += value
            continue
        prefix, index = key[:1], key[1:]
        if not index.isdigit() or int(index) >= len(WINDOW_BOUNDS):
            continue
        if prefix == DELIVERY_PREFIX:
            stats.delivery[int(index)] += value
        elif prefix == END_TO_END_PREFIX:
            stats.end_to_end[int(index)] += value
