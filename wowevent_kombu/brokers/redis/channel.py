"""Kombu's Redis transport with one change: a queue entry that is not a message cannot kill it.

Kombu's Redis channel parses each popped entry with ``json.loads`` inside the worker's event
loop: an entry that is not UTF-8 JSON, or JSON that is not a Kombu envelope, raises there and
stops the worker ("Unrecoverable error"), and the entry, already popped, is gone. This channel
checks each entry first (:mod:`wowevent_kombu.brokers.redis.entries`) and wraps one that is not a
usable envelope in a *quarantine* envelope, which the worker's malformed-entry hooks
(:mod:`wowevent_kombu.worker.malformed`) then record.

For the bus's subscriber queues it also waits on their bells and pops and records each delivery
in one atomic step (:mod:`wowevent_kombu.brokers.redis.bell`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import islice
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

from wowevent_kombu.brokers import compat
from wowevent_kombu.brokers.redis import bell
from wowevent_kombu.brokers.redis.atomic import LuaScript, run_script
from wowevent_kombu.brokers.redis.backport import (
    OLD_KOMBU_OPTIONS,
    OldKombuDefaults,
)
from wowevent_kombu.brokers.redis.entries import (
    OTHER_INFLATE_LIMIT,
    QUARANTINE_CONTENT_TYPE,
    Compression,
    parse_entry,
)
from wowevent_kombu.brokers.redis.qos import AtomicQoS
from wowevent_kombu.core import names

log = logging.getLogger(__name__)

POP_MOST = 16
"""Most messages one pop takes (fewer when the prefetch limit leaves less room)."""

POP_QUEUES = 8
"""Most queues one pop looks at: the rung bell's, then others of the same wait."""

Delivery = tuple[str, bytes, "str | None"]
"""A popped message: its queue, its raw entry and its delivery tag if the pop recorded it."""

BELL_QUEUES_OPTION = "wowevent_bell_queues"
"""Transport option: the queues whose every writer rings a bell, consumed atomically."""

COMPRESSION_OPTION = "wowevent_compression"
"""Transport option: compression content types the bell queues accept (default: none)."""

INFLATE_LIMIT_OPTION = "wowevent_inflate_limit"
"""Transport option: most bytes a bell queue's compressed body may inflate to."""


class GuardedChannel(OldKombuDefaults, kombu_redis.Channel):  # type: ignore[misc]
    """A Redis channel that quarantines unusable entries and pops bell queues atomically.

    For the queues named in the transport option :data:`BELL_QUEUES_OPTION` (the bus's
    subscriber queues, whose every writer rings a bell) the channel waits on the queues'
    bells and pops with :data:`wowevent_kombu.brokers.redis.bell.POP`, which records the delivery as
    unacknowledged in the same step: no moment exists where the message is only in this
    process's memory. Other queues are read as Kombu reads them.
    """

    QoS = AtomicQoS
    wowevent_bell_queues: Collection[str] = ()
    wowevent_compression: Collection[str] = ()
    wowevent_inflate_limit: int = OTHER_INFLATE_LIMIT
    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        BELL_QUEUES_OPTION,
        COMPRESSION_OPTION,
        INFLATE_LIMIT_OPTION,
        *OLD_KOMBU_OPTIONS,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._shared_client: Any = None
        self._recorded: set[str] = set()
        self._no_ack: set[str] = set()
        self._waiting_on: dict[str, str] = {}
        self._sweep_due = 0.0
        self._get_records = True
        self._belled: frozenset[str] = frozenset()
        super().__init__(*args, **kwargs)
        if not self.global_keyprefix:  # the bus refuses a prefix; Kombu's path applies one
            self._belled = frozenset(self.wowevent_bell_queues)
        # A subscriber queue carries the bus's messages only: compressed ones only as the app
        # compresses them itself (Celery's retries), and no larger than an event can be.
        self._subscriber_queues = frozenset(self.wowevent_bell_queues)
        self._subscriber_compression = Compression(
            frozenset(self.wowevent_compression), int(self.wowevent_inflate_limit)
        )
        self._other_compression = Compression()

    def compression_of(self, queue: str) -> Compression:
        """What compressed bodies ``queue`` takes (see :class:`Compression`)."""
        if queue in self._subscriber_queues:
            return self._subscriber_compression
        return self._other_compression

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """``client``, or one redis-py client on the channel's pool kept for every call.

        Kombu builds a new ``redis.Redis`` per call (every ack, reject, restore and put), and
        building one costs more than the round trip it makes. A client object holds no
        connection of its own (each command checks one out of the thread-safe pool), so one
        per pool serves every thread; a new pool (after a reconnect) gets a new client.
        """
        if client:
            yield client
            return
        shared = self._shared_client
        if shared is None or shared.connection_pool is not self.pool:
            shared = self._shared_client = self._create_client()
        yield shared

    # -- consuming ------------------------------------------------------------------------

    def recorded_by_pop(self, delivery_tag: str) -> bool:
        """Whether the pop already recorded ``delivery_tag`` as unacknowledged (asked once)."""
        try:
            self._recorded.remove(delivery_tag)
        except KeyError:
            return False
        return True

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self._no_ack.add if no_ack else self._no_ack.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        self._get_records = not no_ack
        try:
            return super().basic_get(queue, no_ack, **kwargs)
        finally:
            self._get_records = True

    def _brpop_start(self, timeout: float | None = None) -> None:
        if not self._belled:
            super()._brpop_start(timeout)
            return
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        # Kombu's order (first priority step of every queue, then the next step...), with a
        # bell queue's bell in place of its lists.
        self._waiting_on = {names.bell_key(q): q for q in queues if q in self._belled}
        plain = [q for q in queues if q not in self._belled]
        steps = self.priority_steps
        keys = [names.bell_key(q) if q in self._belled else self._q_for_pri(q, steps[0])
                for q in queues]  # fmt: skip
        keys += [self._q_for_pri(q, pri) for pri in steps[1:] for q in plain]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command("BRPOP", *keys, timeout or 0)

    def _brpop_read(self, **options: Any) -> bool:
        # Mirrors kombu.transport.redis.Channel._brpop_read (5.7) but for the bells and parsing.
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BRPOP", **options)
                deliveries = self._take(reply)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not deliveries:
                raise Empty()
            for index, (queue, item, tag) in enumerate(deliveries):
                self._queue_cycle.rotate(queue)
                try:
                    self.connection._deliver(self._checked(item, queue, tag), queue)
                except BaseException:
                    self._give_back(deliveries[index + 1 :])
                    raise
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _take(self, reply: Any) -> list[Delivery]:
        """The deliveries a wait's reply leads to, each ``(queue, entry, tag recorded or None)``.

        A rung bell leads to one pop over its queue and the other queues of the wait (up to
        :data:`POP_QUEUES`), taking as many messages as the prefetch limit leaves room for (up
        to :data:`POP_MOST`): under load one wait and one pop serve several deliveries, where
        Kombu pays a ``BRPOP`` and a ``QoS.append`` for each.
        """
        now = monotonic()
        if self._waiting_on and (not reply or now >= self._sweep_due):
            self._sweep_due = now + (self.brpop_timeout or 1)
            self._ring_strays(list(self._waiting_on.values()))
        if not reply:
            return []
        key = kombu_redis.bytes_to_str(reply[0])
        queue = self._waiting_on.get(key)
        if queue is None:  # a queue read the way Kombu reads it
            return [(key.rsplit(self.sep, 1)[0], reply[1], None)]
        others = islice((q for q in self._waiting_on.values() if q != queue), POP_QUEUES - 1)
        queues = [queue, *others]
        return self._pop(None, queues, self._room(), [q not in self._no_ack for q in queues])

    def _room(self) -> int:
        """How many messages the prefetch limit lets one pop take (at least one)."""
        if not self.qos.prefetch_count:
            return POP_MOST
        room: int = self.qos.can_consume_max_estimate()
        return max(1, min(POP_MOST, room))

    def _pop(
        self, client: Any, queues: Sequence[str], most: int, record: Sequence[bool]
    ) -> list[Delivery]:
        """Run the bell pop (:data:`~wowevent_kombu.brokers.redis.bell.POP`) over ``queues``.

        Returns what it popped, in order.
        """
        lists = [(queue, self._lists(queue)) for queue in queues]
        flags = [wanted and self.ack_emulation for wanted in record]
        keys, args = bell.pop_call(self.unacked_key, self.unacked_index_key, lists, most, flags)
        reply = self._call(client, bell.POP, keys, args) or []
        return [
            (queues[int(reply[i]) - 1], reply[i + 1],
             kombu_redis.bytes_to_str(reply[i + 2]) if reply[i + 2] else None)
            for i in range(0, len(reply), 3)
        ]  # fmt: skip

    def _give_back(self, deliveries: Sequence[Delivery]) -> None:
        """Put popped deliveries a failed delivery kept from the consumer back, next in line.

        Best effort: one that cannot be put back and was recorded returns to its queue when
        its visibility timeout passes, as after a crash.
        """
        for queue, item, tag in reversed(deliveries):
            try:
                if tag is not None:
                    self.qos.restore_by_tag(tag, leftmost=False)
                    continue
                with self.conn_or_acquire() as client, client.pipeline() as pipe:
                    pipe.rpush(self._q_for_pri(queue, 0), item)
                    for command in bell.ring(queue):
                        pipe.execute_command(*command)
                    pipe.execute()
            except Exception:
                log.warning("Could not put a popped message back on %s", queue, exc_info=True)

    def forget(self, delivery_tag: str) -> None:
        """Remove an acknowledged delivery's record (``unacked``, ``unacked_index``).

        One script call on the channel's kept client instead of Kombu's ``MULTI`` pipeline on
        a client built for the purpose. Never on the wait's connection: with green-thread pools
        an ack can come from a task while the event loop still holds that connection.
        """
        with self.conn_or_acquire() as client:
            self._run(
                client, bell.FORGET, [self.unacked_key, self.unacked_index_key], [delivery_tag]
            )

    def _ring_strays(self, queues: Sequence[str]) -> None:
        self._call(None, bell.RING, *bell.ring_call([(q, self._lists(q)) for q in queues]))

    def _lists(self, queue: str) -> list[str]:
        return [self._q_for_pri(queue, pri) for pri in self.priority_steps]

    def _call(self, client: Any, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` on ``client``, or on the idle wait connection when ``client`` is None.

        A script Redis refuses (out of memory, a key of the wrong type) is logged and treated
        as finding nothing: the messages stay queued for the next try.
        """
        try:
            return self._run(client, script, keys, args)
        except self.ResponseError as exc:
            log.warning("Redis refused the consume script, retrying at the next poll: %s", exc)
            return None

    def _run(self, client: Any, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` as :meth:`_call` does, letting Redis's refusal raise."""
        return run_script(partial(self._send, client), script, keys, args)

    def _send(self, client: Any, *command: Any) -> Any:
        if client is not None:
            return client.execute_command(*command)
        # The wait's own connection, idle between its reply and the next wait: no pool
        # round trip, and a broken connection fails here as the wait itself would.
        conn = self.client.connection
        conn.send_command(*command)
        return self.client.parse_response(conn, command[0])

    def _checked(self, item: bytes, queue: str, tag: str | None) -> dict[str, Any]:
        payload = parse_entry(item, queue, self.compression_of(queue))
        if tag is None:
            return payload
        if payload["properties"].get("delivery_tag") == tag and (
            payload.get("content-type") != QUARANTINE_CONTENT_TYPE
        ):
            self._recorded.add(tag)
        else:
            # The script accepted what the channel quarantines: no record may outlive it.
            self.forget(tag)
        return payload

    def _get(self, queue: str) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            if queue in self._belled:
                popped = self._pop(client, [queue], 1, [self._get_records])
                self._touch(client, queue)
                if not popped:
                    raise Empty()
                _, item, tag = popped[0]
                return self._checked(item, queue, tag)
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._touch(client, queue)
                    return parse_entry(item, queue, self.compression_of(queue))
            self._touch(client, queue)
            raise Empty()

    # -- writing: every push to a bell queue rings its bell ---------------------------------

    def _touch(self, client: Any, queue: str) -> None:
        """Renew ``queue``'s ``x-expires`` after a pop, as Kombu's ``_get`` does (5.7 on)."""
        if compat.KOMBU_QUEUE_EXPIRES:
            self._maybe_update_queues_expire(client, queue)

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        if queue not in self._belled:
            super()._put(queue, message, **kwargs)
            return
        pri = self._get_message_priority(message, reverse=False)
        commands: list[tuple[Any, ...]] = [("LPUSH", self._q_for_pri(queue, pri), dumps(message))]
        if compat.KOMBU_QUEUE_EXPIRES and self._expires and queue in self._expires:
            commands += [("PEXPIRE", key, self._expires[queue]) for key in self._lists(queue)]
        commands += bell.ring(queue)
        batch = kwargs.pop("_publish_batch", None)
        if batch is not None:
            for name, *args in commands:
                batch.add(name.lower(), *args)
            return
        with self.conn_or_acquire() as client, client.pipeline() as pipe:
            for command in commands:
                pipe.execute_command(*command)
            pipe.execute()

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        # Mirrors Kombu's (5.7), ringing the bell of each bell queue it pushes to.
        try:
            try:
                payload["headers"]["redelivered"] = True
                payload["properties"]["delivery_info"]["redelivered"] = True
            except (KeyError, TypeError):
                pass
            for queue in self._lookup(exchange, routing_key):
                pri = self._get_message_priority(payload, reverse=False)
                (pipe.lpush if leftmost else pipe.rpush)(
                    self._q_for_pri(queue, pri), dumps(payload)
                )
                if queue in self._belled:
                    for command in bell.ring(queue):
                        pipe.execute_command(*command)
        except self.connection_errors:
            raise  # abort the transaction, which would otherwise drop the unacked record
        except Exception:
            log.critical("Could not restore message: %r", payload, exc_info=True)
