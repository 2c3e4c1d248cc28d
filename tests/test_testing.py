"""The shipped test double behaves like the real bus, in-process."""

import pytest
from celery import Celery

from wowevent_kombu import Event, UnroutableEventError
from wowevent_kombu.testing import TestBus


@pytest.fixture
def bus():
    return TestBus(Celery("unit", set_as_current=False))


def test_routes_runs_and_retries_in_process(bus):
    calls = []

    @bus.subscriber("order.*", name="billing", autoretry_for=(RuntimeError,), max_retries=3)
    def bill(event):
        calls.append(event.id)
        if len(calls) < 3:
            raise RuntimeError("flaky")

    @bus.subscriber("agent.#", name="agents", bind=True)
    def agents(task, event):
        return task.request.id

    order = bus.publish("order.created", {"x": 1})
    bus.publish("agent", {})
    deliveries = bus.drain()
    assert [d.subscriber for d in deliveries] == ["billing", "agents"]
    assert all(d.succeeded for d in deliveries)
    assert calls == [order.id] * 3
    assert deliveries[1].result == deliveries[1].task_id
    assert bus.published[0] == order


def test_failure_is_reported_not_raised(bus):
    @bus.subscriber("x.*", name="broken")
    def broken(event):
        raise ValueError("boom")

    bus.publish("x.y")
    [delivery] = bus.drain()
    assert delivery.state == "FAILURE" and isinstance(delivery.result, ValueError)


def test_mandatory_and_unsubscribe(bus):
    @bus.subscriber("x.*", name="s")
    def s(event):
        pass

    with pytest.raises(UnroutableEventError):
        bus.publish("y.z", mandatory=True)
    bus.unsubscribe("s")
    bus.publish_many([Event(type="x.a"), Event(type="x.b")])
    assert bus.drain() == []
    assert len(bus.published) == 2


def test_handlers_that_publish_are_drained_too(bus):
    @bus.subscriber("order.created", name="saga")
    def saga(event):
        bus.publish_event(Event.child_of(event, "payment.requested"))

    seen = []

    @bus.subscriber("payment.*", name="payments")
    def payments(event):
        seen.append(event)

    parent = bus.publish("order.created", correlation_id="req-1")
    bus.drain()
    assert seen[0].causation_id == parent.id and seen[0].correlation_id == "req-1"


def test_a_source_set_on_the_bus_after_it_was_made_is_what_publish_uses(bus):
    assert bus.publish("order.created", {}).source == "wowevent"
    bus.source = "shop"
    assert bus.publish("order.created", {}).source == "shop"
    assert [e.source for e in bus.published] == ["wowevent", "shop"]


def test_idempotent_and_checkpoint_work_in_memory():
    bus = TestBus(Celery("t", set_as_current=False))
    runs = []

    @bus.subscriber("order.*", name="billing", idempotent=True)
    def bill(event):
        runs.append(event.id)

    event = bus.publish("order.created", {"n": 1})
    bus.publish_event(event)  # the same id again
    assert [d.succeeded for d in bus.drain()] == [True, True]
    assert runs == [event.id]

    @bus.subscriber("order.*", name="audit", checkpoint=True)
    def audit(event):
        if event.data.get("fail"):
            raise ValueError("no checkpoint for a failure")

    bus.publish("order.created", {"n": 2})
    bus.publish("order.created", {"n": 3})
    bus.publish("order.created", {"fail": True})
    assert [d.succeeded for d in bus.drain() if d.subscriber == "audit"] == [True, True, False]
    assert bus.checkpoints == {"audit": "0-4"}  # the 4th event published, the last handled
