"""The dead-letter store on real Redis: filters, paging, re-drive, purge, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from wowevent_kombu import DeadLetterError, EventBus, InvalidFilterError, UnknownDeadLetterError
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.event import Event
from wowevent_kombu.deadletters.record import Attempt, DeadLetter, DeadLetterFilter


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    bus = EventBus(Celery("t", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    @bus.subscriber("order.*", name="audit")
    def audit(event: Event) -> None: ...

    yield bus
    bus.close()


def make(
    number: int,
    *,
    subscriber: str = "billing",
    reason: str = "exhausted",
    at: float = 1_700_000_000.0,
    type: str = "order.created",
) -> DeadLetter:
    event = Event(type=type, data={"n": number}, source="test", id=f"evt-{number:05d}")
    return DeadLetter(
        id=f"rec-{number:05d}",
        subscriber=subscriber,
        event_id=event.id,
        event_type=event.type,
        event=event.to_cloudevent(),
        reason=reason,
        attempts=(
            Attempt(1, "RuntimeError", "first", "Traceback...", at - 1),
            Attempt(2, "RuntimeError", "second", "Traceback...", at),
        ),
    )


def test_record_round_trips_through_json() -> None:
    record = make(1)
    again = DeadLetter.from_json(record.to_json())
    assert again == record
    assert (again.first_failure, again.last_failure) == (1_699_999_999.0, 1_700_000_000.0)
    assert again.error == "RuntimeError: second"


def test_write_is_idempotent_by_task_id(bus: EventBus) -> None:
    store = bus.dead_letters
    record = make(1)
    store.write(record)
    store.write(record)
    assert store.count() == 1
    assert store.get("rec-00001") == record


def test_filters_and_cursor_pages_cover_every_record_once(bus: EventBus) -> None:
    store = bus.dead_letters
    for n in range(25):
        store.write(
            make(
                n,
                subscriber="audit" if n % 5 == 0 else "billing",
                reason="rejected" if n % 2 else "exhausted",
                at=1000.0 + n // 3,  # ties in the index score across page edges
                type="order.paid" if n == 7 else "order.created",
            )
        )
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(limit=4, cursor=cursor)
        seen += [r.id for r in page.records]
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"rec-{n:05d}" for n in range(25)]
    assert len(seen) == 25
    assert {r.id for r in store.list(subscriber="audit").records} == {
        f"rec-{n:05d}" for n in (0, 5, 10, 15, 20)
    }
    assert [r.id for r in store.list(type="order.paid").records] == ["rec-00007"]
    assert store.count(DeadLetterFilter(reason="rejected")) == 12
    assert store.count(DeadLetterFilter(since=1002.0, until=1003.0)) == 6
    assert [r.id for r in store.list(since=1008.0).records] == ["rec-00024"]
    stats = store.stats()
    assert stats["total"] == 25
    assert stats["by_subscriber"] == {"audit": 5, "billing": 20}
    assert stats["by_reason"]["rejected"] == 12
    assert store.count_by_subscriber() == {"audit": 5, "billing": 20}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"reason": "bored"}, "unknown reason"),
        ({"limit": 0}, "limit"),
        ({"cursor": "nonsense"}, "malformed cursor"),
        ({"since": 10.0, "until": 5.0}, "is after until"),
        ({"since": "yesterday"}, "datetime or epoch"),
    ],
)
def test_bad_filters_name_the_problem(bus: EventBus, kwargs: dict, fragment: str) -> None:
    with pytest.raises(InvalidFilterError, match=fragment):
        bus.dead_letters.list(**kwargs)


def test_unknown_ids_change_nothing(bus: EventBus) -> None:
    store = bus.dead_letters
    store.write(make(1))
    with pytest.raises(UnknownDeadLetterError, match="no dead-letter record 'nope'"):
        store.get("nope")
    with pytest.raises(UnknownDeadLetterError):
        store.retry("rec-00001", "nope")
    with pytest.raises(UnknownDeadLetterError):
        store.purge("rec-00001", "nope")
    assert store.count() == 1


def test_retry_pushes_a_fresh_task_to_that_subscriber_and_removes_the_record(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    store = bus.dead_letters
    record = make(1)
    store.write(record)
    store.write(make(2, subscriber="audit"))
    assert store.retry(record.id, dry_run=True) == [record.id]
    assert store.count() == 2

    assert store.retry(record.id) == [record.id]
    assert store.count() == 1
    assert redis_client.llen(names.queue_name(exchange, "audit")) == 0
    # The push rang billing's bell, so a waiting worker pops it at once.
    assert redis_client.lrange(names.bell_key(names.queue_name(exchange, "billing")), 0, -1) == [
        b"1"
    ]
    assert not redis_client.exists(names.bell_key(names.queue_name(exchange, "audit")))
    [raw] = redis_client.lrange(names.queue_name(exchange, "billing"), 0, -1)
    message = wire.decode_task_message(raw)
    headers = message["headers"]
    assert headers["task"] == "billing"
    assert headers["retries"] == 0
    assert headers["id"] == names.task_id(record.event_id or "", "billing", f"dlq:{record.id}")
    assert headers["id"] != record.id
    assert message["properties"]["delivery_info"]["routing_key"] == f"{exchange}.billing"
    assert message["decoded_body"][1]["event"] == record.event
    # A second re-drive of the same id finds nothing: it was removed with the push.
    with pytest.raises(UnknownDeadLetterError):
        store.retry(record.id)


def test_retry_refuses_a_subscriber_that_is_gone_and_keeps_the_records(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    store = bus.dead_letters
    store.write(make(1))
    store.write(make(2, subscriber="ghost"))
    with pytest.raises(DeadLetterError, match="ghost are no longer bound"):
        store.retry_all()
    with pytest.raises(DeadLetterError, match="ghost"):
        store.retry("rec-00002")
    assert store.count() == 2
    assert redis_client.llen(names.queue_name(exchange, "billing")) == 0
    # A filter that leaves the ghost out works.
    assert store.retry_all(DeadLetterFilter(subscriber="billing")) == ["rec-00001"]


def test_retry_all_and_purge_by_filter(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    store = bus.dead_letters
    for n in range(2500):
        store.write(make(n, subscriber="audit" if n % 2 else "billing", at=1000.0 + n))
    ticks: list[int] = []
    moved = store.retry_all(DeadLetterFilter(subscriber="audit"), progress=ticks.append)
    assert len(moved) == 1250
    assert sum(ticks) == 1250
    assert redis_client.llen(names.queue_name(exchange, "audit")) == 1250
    assert store.count() == 1250
    assert store.purge(flt=DeadLetterFilter(until=1999.0), dry_run=True) == [
        f"rec-{n:05d}" for n in range(0, 1000, 2)
    ]
    assert len(store.purge(flt=DeadLetterFilter(until=1999.0))) == 500
    assert store.count() == 750
    with pytest.raises(InvalidFilterError, match="not both"):
        store.purge("rec-02000", flt=DeadLetterFilter())


def test_every_bulk_operation_takes_the_same_filter_keywords(bus: EventBus) -> None:
    store = bus.dead_letters
    for n in range(6):
        store.write(make(n, subscriber="audit" if n % 2 else "billing", at=1000.0 + n))
    assert [r.id for r in store.list(subscriber="audit").records] == [
        "rec-00001", "rec-00003", "rec-00005"
    ]  # fmt: skip
    assert store.count(subscriber="audit") == 3
    assert store.count(subscriber="audit", since=1002.0) == 2
    assert len(list(store.iter(subscriber="billing"))) == 3
    assert store.retry_all(subscriber="ghost") == []
    assert store.purge(subscriber="audit", until=1003.0, dry_run=True) == ["rec-00001", "rec-00003"]
    assert store.purge(subscriber="audit") == ["rec-00001", "rec-00003", "rec-00005"]
    assert store.count() == 3
    with pytest.raises(InvalidFilterError, match="not both"):
        store.count(DeadLetterFilter(reason="rejected"), subscriber="billing")
    with pytest.raises(InvalidFilterError, match="not both"):
        store.purge("rec-00000", subscriber="billing")
    with pytest.raises(InvalidFilterError, match="unknown filter keyword"):
        store.count(subsciber="billing")  # type: ignore[call-arg]


def test_retention_drops_the_oldest_and_reports_it(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    store = bus.dead_letters
    now = time.time()
    for n in range(5):
        store.write(make(n, at=now - 100 + n))
    store.write(make(9, at=now - 10_000))
    assert store.trim(max_age=1000) == ["rec-00009"]
    assert store.trim(max_records=3) == ["rec-00000", "rec-00001"]
    assert store.count() == 3
    assert "dropped 2 record(s)" in caplog.text


def test_memory_transport_has_no_store(redis_url: str) -> None:
    from wowevent_kombu.core.errors import ConfigurationError
    from wowevent_kombu.testing import MemoryTransport

    bus = EventBus(Celery("m", set_as_current=False), transport=MemoryTransport())
    with pytest.raises(ConfigurationError, match="needs the Redis transport"):
        _ = bus.dead_letters


def test_dead_letter_middleware_stays_last_so_it_writes_first(bus: EventBus) -> None:
    from wowevent_kombu import DeadLetterMiddleware, Middleware

    extra = Middleware()
    bus.add_middleware(extra)
    assert bus.middleware[-2] is extra
    assert isinstance(bus.middleware[-1], DeadLetterMiddleware)
