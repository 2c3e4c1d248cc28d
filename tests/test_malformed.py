"""Malformed-entry records: attribution by source queue, the record, Celery's callbacks kept."""

from types import SimpleNamespace

from wowevent_kombu.brokers.redis.entries import MALFORMED_HEADER, SOURCE_QUEUE
from wowevent_kombu.worker.malformed import (
    RAW_LIMIT,
    MalformedEntries,
    malformed_record,
    source_queue,
)
from wowevent_kombu.worker.subscriber import body_problem


class Store:
    def __init__(self, fail=False):
        self.records = []
        self.fail = fail

    def write(self, record):
        if self.fail:
            raise ConnectionError("down")
        self.records.append(record)


def message(queue="ex.billing", headers=None, body=b"raw", **info):
    return SimpleNamespace(
        properties={SOURCE_QUEUE: queue} if queue else {},
        delivery_info=info or {"exchange": "", "routing_key": "ex.other"},
        headers=headers if headers is not None else {},
        body=body,
        content_type="application/x-python-serialize",
    )


def test_source_queue_prefers_the_stamp_over_the_routing_key():
    assert source_queue(message()) == "ex.billing"
    assert source_queue(message(queue=None)) == "ex.other"
    assert source_queue(message(queue=None, exchange="topic", routing_key="a.b")) is None


def test_record_of_a_malformed_entry():
    record = malformed_record(message(headers={"id": "abc-1", "task": "x"}), "billing", "bad")
    assert (record.id, record.subscriber, record.reason) == ("abc-1", "billing", "malformed")
    assert record.event["body"] == "raw"
    assert record.attempts[0].message == "bad"
    hostile_id = malformed_record(message(headers={"id": "../" * 100}), "billing", "bad")
    assert hostile_id.id.startswith("malformed-")
    huge = malformed_record(message(body=b"\xff" * RAW_LIMIT), "billing", "bad")
    assert len(huge.event["body"]) == RAW_LIMIT + 3


def test_entries_of_subscriber_queues_are_recorded_then_celery_drops_them():
    store = Store()
    entries = MalformedEntries(lambda: {"ex.billing": "billing"}, lambda: store)
    dropped = []
    consumer = SimpleNamespace(
        on_decode_error=lambda m, e: dropped.append(("decode", m)),
        on_unknown_message=lambda b, m: dropped.append(("unknown", m)),
        on_unknown_task=lambda b, m, e: dropped.append(("task", m)),
        on_invalid_task=lambda b, m, e: dropped.append(("invalid", m)),
    )
    entries.wrap(consumer)
    quarantined = message(headers={MALFORMED_HEADER: "the entry is not JSON"})
    consumer.on_decode_error(quarantined, ValueError("x"))
    consumer.on_unknown_task(None, message(headers={"task": "nope"}), KeyError("nope"))
    consumer.on_unknown_message(None, message(queue="celery"))  # nobody's queue
    assert [r.attempts[0].message for r in store.records] == [
        "the entry is not JSON", "no task named 'nope' in this worker"]  # fmt: skip
    assert [kind for kind, _ in dropped] == ["decode", "task", "unknown"]


def test_a_refused_record_still_lets_celery_drop_the_entry():
    entries = MalformedEntries(lambda: {"ex.billing": "billing"}, lambda: Store(fail=True))
    dropped = []
    consumer = SimpleNamespace(
        on_decode_error=lambda m, e: dropped.append(m),
        on_unknown_message=None, on_unknown_task=None, on_invalid_task=None,
    )  # fmt: skip
    entries.wrap(consumer)
    consumer.on_decode_error(message(), ValueError("x"))
    assert len(dropped) == 1


def test_body_problem():
    assert body_problem([[], {"event": {}}, {}]) is None
    assert body_problem([[], {"event": {}}, None]) is None
    assert "not [args" in body_problem("hello")
    assert "not [args" in body_problem([1, 2])
    assert "kwargs" in body_problem([[], [], {}])
    assert "embed" in body_problem([[], {"event": {}}, 5])
    assert "'event'" in body_problem([[], {"event": "x"}, {}])
