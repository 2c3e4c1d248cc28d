"""Getting events into RabbitMQ: logged in Redis first, then routed by a real topic exchange.

The split of duties with a RabbitMQ broker:

* **RabbitMQ** holds and routes the deliveries. Each event is published once to the bus's
  topic exchange with its type as the routing key, persistent, with publisher confirms; the
  exchange's bindings (one per subscriber pattern) copy it into the quorum queues of the
  matching subscribers. Workers rename each copy to the subscriber task of the queue it
  arrived on (:mod:`wowevent_kombu.brokers.amqp.dispatch`).
* **Redis** (``store_url``) keeps the event log, the dead letters, the schema registry and a
  copy of the bindings (what ``bindings()``, replay targets and status read).

A publish appends to the log first and then publishes to RabbitMQ, waiting for its confirm.
So every event a subscriber can receive is in the log. When the RabbitMQ publish fails after
the log append, ``PublishError`` says so (``outcome_unknown``): re-publishing the same event
(same id) delivers it; the log then holds it twice under one id, which replay and the id
lookup treat as one event.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import amqp
import redis
from kombu import Connection, Producer
from kombu.exceptions import OperationalError

from wowevent_kombu.brokers.amqp import topology as amqptopology
from wowevent_kombu.brokers.outgoing import Outgoing, unroutable_error
from wowevent_kombu.brokers.redis.atomic import Command, PinnedTransactions
from wowevent_kombu.brokers.redis.errors import redis_error
from wowevent_kombu.brokers.redis.logscript import LogAppender, LogWriter
from wowevent_kombu.brokers.redis.publishscript import PUBLISH, PublishCall
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import PublishError
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.core.topology import BindingSnapshot, BindingTable
from wowevent_kombu.core.urls import redact_url

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "wowevent_event_id"
"""Header of a routed event message: the event id, from which each subscriber's task id
is derived when the worker renames the message."""

_CONTENT_TYPE = "application/json"
_BROKER_ERRORS = (
    OperationalError,
    OSError,
    socket.timeout,
    amqp.exceptions.AMQPError,
    amqp.exceptions.RecoverableConnectionError,
)


class _Link:
    """One thread's connection, channel and producer (Kombu connections are not thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.connection = Connection(
            settings.broker_url,
            transport_options={"confirm_publish": True},
            connect_timeout=settings.publish_timeout,
            heartbeat=0,
        )
        self.connection.ensure_connection(max_retries=1, timeout=settings.publish_timeout)
        self.producer = Producer(self.connection.default_channel)
        exchange = settings.exchange
        amqptopology.topic_exchange(exchange).declare(channel=self.producer.channel)
        amqptopology.pinned_exchange(exchange).declare(channel=self.producer.channel)

    def close(self) -> None:
        try:
            self.connection.release()
        except Exception:
            log.debug("closing a RabbitMQ connection failed", exc_info=True)


class AmqpTransport:
    """The RabbitMQ transport: deliveries in quorum queues, the log and bindings in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._transactions = PinnedTransactions(client)
        self._table = BindingTable(client, settings.exchange)
        self.log_appender: LogAppender = LogWriter(settings)
        self._call = PublishCall(settings.exchange)
        self._topic = amqptopology.topic_exchange(settings.exchange)
        self._pinned = amqptopology.pinned_exchange(settings.exchange)
        self._dispatch_task = names.dispatch_task_name(settings.exchange)
        self._sender = wire.origin()
        self._snapshot: BindingSnapshot | None = None
        self._local = threading.local()
        self._links: list[_Link] = []
        self._links_lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """The Redis client of the log, dead letters and registry (``store_url``)."""
        return self._client

    # -- connections -----------------------------------------------------------------------

    def _link(self) -> _Link:
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.pid == os.getpid():
            return link
        link = _Link(self._settings)
        self._local.link = link
        with self._links_lock:
            self._links.append(link)
        return link

    def _drop_link(self) -> None:
        link: _Link | None = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None:
            with self._links_lock:
                if link in self._links:
                    self._links.remove(link)
            link.close()

    def _broker_error(
        self, exc: BaseException, doing: str, ids: tuple[str, ...], hint: str = ""
    ) -> PublishError:
        self._drop_link()
        where = redact_url(self._settings.broker_url)
        return PublishError(
            f"{doing} failed against RabbitMQ at {where}: {type(exc).__name__}: {exc}"
            + (f"; {hint}" if hint else ""),
            event_ids=ids,
        )

    def ping(self) -> None:
        """Check that RabbitMQ answers and the bus's exchange exists (for ``/ready``).

        Raises:
            PublishError: it does not.
        """
        try:
            channel = self._link().producer.channel
            channel.exchange_declare(self._settings.exchange, "topic", passive=True)
        except _BROKER_ERRORS as exc:
            raise self._broker_error(exc, "checking the exchange", ()) from exc

    # -- bindings --------------------------------------------------------------------------

    def snapshot(self, *, refresh: bool = False) -> BindingSnapshot:
        if self._snapshot is None or refresh:
            try:
                self._snapshot = self._table.read()
            except redis.RedisError as exc:
                raise self._store_error(exc, "reading the binding table", ()) from exc
        return self._snapshot

    def bind(self, queue: str, patterns: Sequence[str]) -> None:
        """Declare the quorum queue with its bindings on RabbitMQ, then record them in Redis."""
        declared = amqptopology.subscriber_queue(self._settings.exchange, queue, patterns)
        try:
            declared.declare(channel=self._link().producer.channel)
        except _BROKER_ERRORS as exc:
            raise self._broker_error(exc, f"declaring queue {queue!r}", ()) from exc
        self._table.bind(queue, patterns)
        self._snapshot = None

    def unbind(self, queue: str, patterns: Sequence[str] | None = None) -> list[str]:
        """Remove bindings from RabbitMQ and from the Redis copy; the patterns removed."""
        removed = self._table.unbind(queue, patterns)
        self._snapshot = None
        try:
            channel = self._link().producer.channel
            for pattern in removed:
                channel.queue_unbind(queue, self._settings.exchange, routing_key=pattern)
        except _BROKER_ERRORS as exc:
            raise self._broker_error(exc, f"unbinding queue {queue!r}", ()) from exc
        return removed

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        depths: dict[str, int] = {}
        for queue in queues:
            try:
                _, count, _ = self._link().producer.channel.queue_declare(queue, passive=True)
            except amqp.exceptions.NotFound:
                # RabbitMQ closes the channel on a missing queue: start a fresh one.
                self._drop_link()
                count = 0
            except _BROKER_ERRORS as exc:
                raise self._broker_error(exc, "reading queue depths", ()) from exc
            depths[queue] = int(count)
        return depths

    def delete_queue(self, queue: str) -> None:
        try:
            self._link().producer.channel.queue_delete(queue)
        except _BROKER_ERRORS as exc:
            raise self._broker_error(exc, f"deleting queue {queue!r}", ()) from exc

    # -- publishing ------------------------------------------------------------------------

    def send(self, batch: Sequence[Outgoing], *, mandatory: bool) -> list[tuple[str, ...]]:
        """Log ``batch`` in Redis, then publish each event to the topic exchange, confirmed.

        The queues returned are those the Redis copy of the bindings names (what metrics
        count); RabbitMQ's own bindings do the routing.
        """
        if not batch:
            return []
        ids = tuple(item.event.id for item in batch)
        snap = self.snapshot()
        routes = [tuple(sorted(snap.matcher.match(i.event.type))) for i in batch]
        if mandatory and not all(routes):
            snap = self.snapshot(refresh=True)
            routes = [tuple(sorted(snap.matcher.match(i.event.type))) for i in batch]
            for item, queues in zip(batch, routes, strict=True):
                if not queues:
                    raise unroutable_error(self._settings.exchange, batch, item.event.type)
        reused = getattr(self._local, "link", None) is not None
        try:
            producer = self._link().producer  # connected before anything is logged
        except _BROKER_ERRORS as exc:
            raise self._broker_error(
                exc, "publishing", ids, "nothing was written; publish again once it answers"
            ) from exc
        # The publish script with no queue: the log append and the unroutable count.
        unroutable = sum(1 for queues in routes if not queues)
        keys, args = self._call.arguments(self.log_appender.arguments(batch), {}, unroutable)
        try:
            self._transactions.run_script(PUBLISH, keys, args)
        except redis.RedisError as exc:
            raise self._store_error(exc, "logging", ids, batch[0].event.type) from exc
        sent = 0
        try:
            for item in batch:
                try:
                    self._publish_event(producer, item)
                except _BROKER_ERRORS:
                    if not reused:
                        raise
                    # A connection kept from an earlier publish may have been closed by the
                    # broker since (restart, failover, idle timeout): once, on a fresh one.
                    log.info("RabbitMQ connection lost since the last publish; reconnecting")
                    self._drop_link()
                    producer, reused = self._link().producer, False
                    self._publish_event(producer, item)
                sent += 1
        except _BROKER_ERRORS as exc:
            self._drop_link()
            raise PublishError(
                f"publishing failed against RabbitMQ at {redact_url(self._settings.broker_url)}: "
                f"{type(exc).__name__}: {exc}; the event(s) are in the log but "
                f"{len(batch) - sent} of {len(batch)} may not have reached RabbitMQ: "
                "re-publish the same event(s) "
                "(same ids) to deliver them",
                event_ids=ids[sent:],
                event_type=batch[sent].event.type,
                outcome_unknown=True,
            ) from exc
        return routes

    def _publish_event(self, producer: Producer, item: Outgoing) -> None:
        event = item.event
        placeholder = names.task_id(event.id, "")
        headers = _task_headers(
            task=self._dispatch_task,
            task_id=placeholder,
            kwargsrepr=json.loads(item.prepared.kwargsrepr),
            sender=self._sender,
        )
        headers[EVENT_ID_HEADER] = event.id
        producer.publish(
            item.prepared.raw,
            exchange=self._topic,
            routing_key=event.type,
            headers=headers,
            content_type=_CONTENT_TYPE,
            content_encoding="utf-8",
            delivery_mode=2,
            correlation_id=placeholder,
            retry=False,
            declare=(),
            timeout=self._settings.publish_timeout,
        )

    def push_commands(self, pushes: Mapping[str, Sequence[str]]) -> list[Command]:
        """Publish ready messages to their queues through the pinned exchange, confirmed."""
        total = sum(len(m) for m in pushes.values())
        if not total:
            return []
        try:
            producer = self._link().producer
            for queue, messages in pushes.items():
                # In LPUSH argument order: the first is consumed first.
                for text in messages:
                    self._publish_envelope(producer, queue, text)
        except _BROKER_ERRORS as exc:
            raise self._broker_error(exc, f"sending {total} message(s) to queues", ()) from exc
        return []

    def _publish_envelope(self, producer: Producer, queue: str, text: str) -> None:
        envelope = json.loads(text)
        properties = envelope.get("properties") or {}
        body = envelope.get("body") or ""
        raw = base64.b64decode(body) if properties.get("body_encoding") == "base64" else body
        producer.publish(
            raw.encode("utf-8") if isinstance(raw, str) else raw,
            exchange=self._pinned,
            routing_key=names.pinned_key(queue),
            headers=envelope.get("headers") or {},
            content_type=envelope.get("content-type") or _CONTENT_TYPE,
            content_encoding=envelope.get("content-encoding") or "utf-8",
            delivery_mode=2,
            correlation_id=properties.get("correlation_id"),
            retry=False,
            declare=(),
            timeout=self._settings.publish_timeout,
        )

    def _store_error(
        self, exc: redis.RedisError, doing: str, ids: tuple[str, ...], event_type: str | None = None
    ) -> PublishError:
        return redis_error(exc, doing, redact_url(self._settings.redis_url), ids, event_type)

    def close(self) -> None:
        with self._links_lock:
            links, self._links = self._links, []
        for link in links:
            link.close()
        self._local = threading.local()
        self._transactions.release()
        self._client.close()


def _task_headers(*, task: str, task_id: str, kwargsrepr: str, sender: str) -> dict[str, Any]:
    """Celery protocol-2 headers of an event's task message (as :func:`wire.task_message`)."""
    return {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": kwargsrepr,
        "origin": sender,
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
    }
