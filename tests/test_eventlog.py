"""The event log on a real Redis: indexed append, queries, lookups, retention, stats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery import Celery

from wowevent_kombu import Event, EventBus, InvalidPatternError, LogQueryError, Settings
from wowevent_kombu.log.positions import parse_when, split_position


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    app = Celery("t", broker=redis_url, set_as_current=False)
    made = EventBus(app, exchange=exchange)
    yield made
    made.close()


def publish_mix(bus: EventBus, count: int) -> list[Event]:
    types = ["order.created", "order.paid", "payment.done"]
    events = [
        Event(
            type=types[i % 3],
            data={"i": i},
            source=f"svc{i % 2}",
            subject=f"s{i % 4}",
            correlation_id=f"c{i % 2}",
        )
        for i in range(count)
    ]
    for offset in range(0, count, 100):
        bus.publish_many(events[offset : offset + 100])
    return events


def test_every_event_is_logged_in_publish_order_with_its_cloudevent(bus: EventBus) -> None:
    events = publish_mix(bus, 250)
    entries = bus.log.read(limit=1000)
    assert [e.event for e in entries] == events
    positions = [split_position(e.position) for e in entries]
    assert positions == sorted(positions)
    assert all(e.logged_at.tzinfo is UTC for e in entries)


def test_filters_combine_and_the_cursor_pages_without_gaps(bus: EventBus) -> None:
    events = publish_mix(bus, 120)
    want = [e for e in events if e.type.startswith("order.") and e.source == "svc0"]
    got: list[Event] = []
    cursor = None
    while True:
        page = bus.log.read(types="order.*", source="svc0", limit=7, cursor=cursor)
        got += [entry.event for entry in page]
        if len(page) < 7:
            break
        cursor = page[-1].position
    assert got == want
    assert [e.event for e in bus.log.read(subject="s3", limit=500)] == [
        e for e in events if e.subject == "s3"
    ]
    assert [e.event for e in bus.log.read(types=["payment.*", "order.paid"], limit=500)] == [
        e for e in events if e.type in ("payment.done", "order.paid")
    ]


def test_time_window_uses_log_positions(bus: EventBus) -> None:
    first = publish_mix(bus, 30)
    middle = bus.log.last_position()
    assert middle is not None
    later = publish_mix(bus, 30)
    after_middle = bus.log.read(since=middle, limit=500)
    assert [e.event for e in after_middle] == [first[-1], *later]
    up_to = bus.log.read(until=middle, limit=500)
    assert [e.event for e in up_to] == first
    now = datetime.now(UTC)
    assert bus.log.read(since=now + timedelta(minutes=1)) == []
    assert len(bus.log.read(since=now - timedelta(minutes=5), limit=500)) == 60


def test_correlation_lookup_reads_the_index_and_keeps_other_filters(bus: EventBus) -> None:
    events = publish_mix(bus, 90)
    got = bus.log.read(correlation_id="c1", limit=500)
    assert [e.event for e in got] == [e for e in events if e.correlation_id == "c1"]
    narrowed = bus.log.read(correlation_id="c1", types="payment.*", limit=500)
    assert [e.event for e in narrowed] == [
        e for e in events if e.correlation_id == "c1" and e.type == "payment.done"
    ]
    paged = bus.log.read(correlation_id="c0", limit=5, cursor=got[3].position)
    assert [e.event for e in paged] == [
        e for e in events if e.correlation_id == "c0" and e.data["i"] > 7
    ][:5]
    assert bus.log.read(correlation_id="nobody") == []


def test_get_finds_an_event_by_id_and_none_for_unknown_ids(bus: EventBus) -> None:
    events = publish_mix(bus, 20)
    entry = bus.log.get(events[7].id)
    assert entry is not None
    assert entry.event == events[7]
    assert bus.log.position_of(events[7].id) == entry.position
    assert bus.log.get("no-such-id") is None


def test_bad_queries_are_refused_with_the_reason(bus: EventBus) -> None:
    now = datetime.now(UTC)
    with pytest.raises(LogQueryError, match="after until"):
        bus.log.read(since=now, until=now - timedelta(seconds=1))
    with pytest.raises(LogQueryError, match="not a log position"):
        bus.log.read(cursor="yesterday")
    with pytest.raises(LogQueryError, match="limit"):
        bus.log.read(limit=0)
    with pytest.raises(LogQueryError, match="timezone-aware"):
        bus.log.read(since=datetime(2024, 1, 1))
    with pytest.raises(InvalidPatternError, match="type filter"):
        bus.log.read(types="order..x")


def test_parse_when_accepts_positions_ages_and_iso_times() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("1714564800000-3", now=now) == "1714564800000-3"
    assert parse_when("15m", now=now) == now - timedelta(minutes=15)
    assert parse_when("2h", now=now) == now - timedelta(hours=2)
    assert parse_when("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(LogQueryError, match="not a time"):
        parse_when("last tuesday")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("999999d", "reaches back before 1970-01-01"), ("99999999999d", "before 1970"),
     ("9" * 400 + "s", "before 1970"), ("0001-01-01T00:00", "before 1970-01-01T00:00Z"),
     ("1969-12-31T23:59:59Z", "before 1970"), ("0001-01-01T00:00+01:00", "before 1970"),
     ("9999-12-31T23:59:59-01:00", "after 9999-12-31T23:59:59Z"),
     ("18446744073709551616", "beyond the largest log position"),
     ("1-18446744073709551616", "beyond the largest log position"),
     ("nan", "not a time"), ("1e300", "not a time"), ("-1", "not a time")],
)  # fmt: skip
def test_parse_when_refuses_times_no_log_position_can_name(text: str, fragment: str) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(LogQueryError, match=fragment):
        parse_when(text, now=now)


def test_parse_when_takes_the_edges_of_the_range() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("1970-01-01T00:00") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_when("9999-12-31T23:59:59") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert parse_when("19844d", now=now) == now - timedelta(days=19844)  # back to 1970
    assert parse_when("18446744073709551615-18446744073709551615") == (
        "18446744073709551615-18446744073709551615"
    )


def test_a_datetime_before_1970_is_refused_not_sent_to_redis(bus: EventBus) -> None:
    with pytest.raises(LogQueryError, match="before 1970"):
        bus.log.read(since=datetime(1, 1, 1, tzinfo=UTC))


def test_stats_report_length_span_retention_and_memory(bus: EventBus) -> None:
    assert bus.log.stats()["length"] == 0
    publish_mix(bus, 40)
    stats = bus.log.stats()
    assert stats["length"] == 40
    assert stats["entries_added"] == 40
    assert stats["retention_count"] == 1_000_000
    assert stats["retention_seconds"] == 7 * 86400
    assert stats["memory_bytes"] > 0
    assert stats["bytes_per_event"] > 100
    assert stats["first_position"] < stats["last_position"]


def test_indexes_expire_with_the_log_retention(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    publish_mix(bus, 3)
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{exchange}:log:*")}
    index_keys = keys - {f"{exchange}:log"}
    assert any(":log:ids:" in k for k in index_keys)
    assert any(":log:corr:" in k for k in index_keys)
    week_ms = 7 * 86400 * 1000
    for key in index_keys:
        ttl = redis_client.pttl(key)
        assert 0 < ttl <= week_ms + 2 * 3_600_000 * 7, key


def test_retention_by_count_trims_and_the_index_skips_trimmed_events(
    redis_url: str, exchange: str
) -> None:
    app = Celery("t", broker=redis_url, set_as_current=False)
    bus = EventBus(app, settings=Settings(broker_url=redis_url, exchange=exchange, log_maxlen=100))
    events = publish_mix(bus, 600)
    length = bus.log.stats()["length"]
    assert 100 <= length < 600  # approximate: whole stream nodes are dropped
    survivors = bus.log.read(correlation_id="c1", limit=1000)
    assert [e.event for e in survivors] == [e for e in events[-length:] if e.correlation_id == "c1"]
    assert bus.log.get(events[0].id) is None
    bus.close()


def test_retention_by_age_trims_old_entries(redis_url: str, exchange: str) -> None:
    app = Celery("t", broker=redis_url, set_as_current=False)
    settings = Settings(broker_url=redis_url, exchange=exchange, log_max_age=0.2)
    bus = EventBus(app, settings=settings)
    publish_mix(bus, 300)
    time.sleep(0.3)  # let the first entries age past the retention
    fresh = bus.publish("order.created", {"i": "new"})
    remaining = [e.event for e in bus.log.read(limit=1000)]
    assert remaining[-1] == fresh
    assert len(remaining) < 301  # whole nodes of aged entries were dropped
    bus.close()
