"""RabbitMQ pieces that need no worker: topology, naming, and failures that write nothing."""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from celery import Celery

from tests.conftest import Broker
from wowevent_kombu import EventBus, PublishError
from wowevent_kombu.brokers.amqp.topology import subscriber_queue
from wowevent_kombu.core import names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dead_rabbit_bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    """A bus whose RabbitMQ refuses connections (nothing listens on the port)."""
    app = Celery("pub", broker=f"amqp://guest:secret@127.0.0.1:{free_port()}//")
    app.conf.wowevent_store_url = redis_url
    bus = EventBus(app, exchange=exchange, publish_timeout=2)
    yield bus
    bus.close()


def test_a_refused_rabbitmq_publish_writes_nothing_and_hides_the_password(
    dead_rabbit_bus: EventBus,
) -> None:
    with pytest.raises(PublishError, match="nothing was written") as caught:
        dead_rabbit_bus.publish("order.created", {"n": 1})
    assert "secret" not in str(caught.value)
    assert dead_rabbit_bus.log.stats()["length"] == 0
    with pytest.raises(PublishError, match="RabbitMQ"):
        dead_rabbit_bus.transport.ping()  # type: ignore[attr-defined]


def test_pinned_keys_are_one_word_and_distinct_per_queue() -> None:
    keys = {names.pinned_key(q) for q in ("x.b", "x.a.x.b", "x.a_b", "x.a.b")}
    assert len(keys) == 4
    assert all("." not in key and "*" not in key and "#" not in key for key in keys)


def test_a_subscriber_queue_keeps_its_pinned_binding_when_copied() -> None:
    """Kombu rebuilds copies through the constructor, which drops an exchange beside bindings."""
    queue = subscriber_queue("shop", "shop.billing", ["order.*", "refund.#"])
    for made in (queue, copy.copy(queue)):
        assert made.exchange.name == names.pinned_exchange("shop")
        assert made.routing_key == names.pinned_key("shop.billing")
        assert {b.routing_key for b in made.bindings} == {"order.*", "refund.#"}
        assert made.queue_arguments == {"x-queue-type": "quorum"}


def test_bindings_live_on_rabbitmq_and_in_the_redis_copy(
    amqp_url: str, redis_url: str, exchange: str
) -> None:
    rabbit = Broker("amqp", amqp_url, redis_url, exchange)
    bus = rabbit.bus()
    queue = names.queue_name(exchange, "billing")
    try:
        bus.transport.bind(queue, ["order.*"])
        assert bus.bindings() == {"billing": ["order.*"]}
        bus.publish("order.created")
        bus.publish("order.created.eu")  # one word too many for order.*
        assert bus.transport.queue_depths([queue]) == {queue: 1}
        assert bus.unsubscribe("billing") == ["order.*"]
        bus.publish("order.created")
        assert bus.transport.queue_depths([queue]) == {queue: 1}
        assert bus.transport.queue_depths(["no.such.queue"]) == {"no.such.queue": 0}
        bus.transport.ping()  # type: ignore[attr-defined]
    finally:
        bus.transport.delete_queue(queue)
        rabbit.cleanup()


def test_a_connection_the_broker_closed_since_the_last_publish_is_replaced(
    amqp_url: str, redis_url: str, exchange: str
) -> None:
    """RabbitMQ closes the publisher's connection (as at a restart); the next publish succeeds."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None or "127.0.0.1:5672" not in amqp_url:
        pytest.skip("needs rabbitmqctl for the local RabbitMQ to close a connection")
    rabbit = Broker("amqp", amqp_url, redis_url, exchange)
    bus = rabbit.bus()
    queue = names.queue_name(exchange, "billing")
    try:
        bus.transport.bind(queue, ["order.*"])
        bus.publish("order.created")
        link = bus.transport._local.link  # type: ignore[attr-defined]
        port = link.connection.connection.sock.getsockname()[1]
        name = f"127.0.0.1:{port} -> 127.0.0.1:5672"

        def connections() -> dict[str, str]:
            listed = subprocess.run(
                [rabbitmqctl, "list_connections", "-q", "name", "pid"],
                capture_output=True, text=True, timeout=60,
            ).stdout  # fmt: skip
            rows = (line.split("\t") for line in listed.splitlines() if "\t" in line)
            return {row[0]: row[1] for row in rows}

        pid = connections()[name]
        closed = subprocess.run(
            [rabbitmqctl, "close_connection", pid, "closed by the test"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert closed.returncode == 0, closed.stderr  # RabbitMQ has sent connection.close
        bus.publish("order.created")
        assert bus.transport.queue_depths([queue]) == {queue: 2}
        assert bus.log.stats()["length"] == 2
    finally:
        rabbit.cleanup()


def test_a_consumer_outside_celery_reads_routed_events(
    amqp_url: str, redis_url: str, exchange: str
) -> None:
    """``bus.consume`` (and ``wowevent tail``) on a temporary quorum queue of its own."""
    rabbit = Broker("amqp", amqp_url, redis_url, exchange)
    bus = rabbit.bus()
    got: list[str] = []
    try:
        bus.transport.bind(names.queue_name(exchange, "tail.t1"), ["order.#"])
        sent = [bus.publish("order.created", {"n": i}).id for i in range(3)]
        bus.publish("refund.created")
        handled = bus.consume({"order.#": lambda e: got.append(e.id)}, group="tail.t1",
                              limit=3, timeout=10, temporary=True)  # fmt: skip
        assert handled == 3 and got == sent
        assert "tail.t1" not in bus.bindings()
    finally:
        rabbit.cleanup()
