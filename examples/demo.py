"""`make demo`: a real bus with a real Celery worker: publishing, routing, retries, dead letters.

Finds Redis (WOWEVENT_BROKER_URL, else 127.0.0.1:6379, else a private redis-server it starts),
runs `celery -A examples.shop worker`, publishes a handful of events and shows what each
subscriber did under its own task name and id, then shows the delivery that exhausted its
retries in the dead-letter store and re-drives it once the cause is fixed. Without any
redis-server it explains how to get one and shows the same bus in-process on the shipped test
double.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wowevent_kombu.testing.redisserver import RedisServer, answers, redis_server_binary

EVENTS = [
    ("order.created", {"order_id": "A-1001", "total": 42.0}),
    ("order.paid", {"order_id": "A-1001"}),
    ("payment.settled", {"order_id": "A-1001", "flaky_mail": True}),
    ("order", {"note": "a bare 'order' event: only 'order.#' matches it"}),
    ("inventory.reserved", {"sku": "X-1"}),
]


def say(text: str = "") -> None:
    print(text, flush=True)


def find_redis() -> tuple[str | None, RedisServer | None]:
    wanted = os.environ.get("WOWEVENT_BROKER_URL")
    if wanted:
        return (wanted, None) if answers(wanted) else (None, None)
    if answers("redis://127.0.0.1:6379/0"):
        return "redis://127.0.0.1:6379/0", None
    if redis_server_binary():
        server = RedisServer().start()
        say(f"No Redis answered on 127.0.0.1:6379: started a private redis-server on port "
            f"{server.port} (pid {server.pid}); it is stopped at the end.")  # fmt: skip
        return server.url, server
    return None, None


def in_process_demo() -> int:
    say("No Redis is reachable and redis-server is not installed. To run the real bus:")
    say("  Debian/Ubuntu: sudo apt-get install redis-server     macOS: brew install redis")
    say("  or point WOWEVENT_BROKER_URL at a Redis you have, then run `make demo` again.\n")
    say("Meanwhile, the same bus in-process on the shipped test double (no Redis, no worker):\n")
    from celery import Celery

    from wowevent_kombu.testing import TestBus

    bus = TestBus(Celery("shop-inprocess", set_as_current=False))
    for name, patterns in (("billing", "order.*"), ("audit", ["order.#", "payment.*"]),
                           ("mailer", "payment.*")):  # fmt: skip
        bus.subscriber(patterns, name=name)(lambda event: None)
    for event_type, data in EVENTS:
        bus.publish(event_type, data, source="demo")
    for delivery in bus.drain():
        say(f"  {delivery.event.type:<20} -> {delivery.subscriber:<8} task {delivery.task_id} "
            f"{delivery.state}")  # fmt: skip
    return 0


def show_status(client: object, exchange: str, expected: int) -> None:
    """End with what an operator sees: the `wowevent status` table."""
    from wowevent_kombu import HealthRules
    from wowevent_kombu.cli.observe import status_table
    from wowevent_kombu.observability.status import ClusterReader

    reader = ClusterReader(client, exchange, HealthRules.load())  # type: ignore[arg-type]
    deadline = time.monotonic() + 5  # workers add their counts to Redis about once a second
    snapshot = reader.snapshot()
    while sum(s.window.attempts for s in snapshot.subscribers) < expected:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        snapshot = reader.snapshot()
    say(f"\n$ wowevent --exchange {exchange} status")
    say(status_table(snapshot))


def replay_demo(bus: Any, client: Any, notes_key: str) -> int:
    """Replay the logged order events to billing only, as after restoring billing's data."""
    say("\nReplaying the log's order.* events to billing only "
        "(wowevent replay --subscriber billing --type 'order.*'):")  # fmt: skip
    before = client.llen(notes_key)
    report = bus.replay(["billing"], types="order.*")
    delivered = ", ".join(f"{n} to {name}" for name, n in sorted(report.delivered.items()))
    say(f"  replay {report.replay_id}: {report.scanned} events scanned, delivered "
        f"{delivered or 'nothing'}, {report.skipped} skipped")  # fmt: skip
    wanted = before + sum(report.delivered.values())
    deadline = time.monotonic() + 30
    while client.llen(notes_key) < wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    runs = [json.loads(raw) for raw in client.lrange(notes_key, before, -1)]
    for entry in runs:
        say(f"  {entry['type']:<20} {entry['subscriber']:<8} task {entry['task_id']}  "
            f"{entry['outcome']}")  # fmt: skip
    ok = len(runs) == wanted - before and all(
        r["subscriber"] == "billing" and r["outcome"].endswith("(replayed)") for r in runs
    )
    return 0 if ok and runs else 1


def dead_letter_demo(bus: Any, client: Any, notes_key: str, exchange: str) -> int:
    """Show the ledger's exhausted delivery in the dead-letter store, then re-drive it."""
    say("\nDead-letter store (wowevent dlq list):")
    [record] = bus.dead_letters.list().records
    say(f"  {record.id}  {record.subscriber}  {record.reason}  {record.event_type}  "
        f"{len(record.attempts)} attempts")  # fmt: skip
    for attempt in record.attempts:
        say(f"    attempt {attempt.number}: {attempt.exception_type}: {attempt.message}")
    say("Fixing the ledger, then re-driving the record to the ledger only (wowevent dlq retry):")
    client.set(f"{exchange}:demo:ledger-fixed", "1")
    bus.dead_letters.retry(record.id)
    before = client.llen(notes_key)
    deadline = time.monotonic() + 30
    while client.llen(notes_key) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    runs = [json.loads(raw) for raw in client.lrange(notes_key, before, -1)]
    for entry in runs:
        say(f"  {entry['type']:<20} {entry['subscriber']:<8} attempt {entry['attempt']}  "
            f"task {entry['task_id']}  {entry['outcome']}")  # fmt: skip
    left = bus.dead_letters.count()
    say(f"Re-drove 1 dead letter as a fresh task; {left} left in the store.")
    return 0 if runs and left == 0 else 1


def main() -> int:
    url, private = find_redis()
    if url is None:
        if os.environ.get("WOWEVENT_BROKER_URL"):
            say(f"WOWEVENT_BROKER_URL={os.environ['WOWEVENT_BROKER_URL']} does not answer PING.")
            return 1
        return in_process_demo()
    exchange = f"demo{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WOWEVENT_BROKER_URL": url, "WOWEVENT_EXCHANGE": exchange,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    os.environ.update(WOWEVENT_BROKER_URL=url, WOWEVENT_EXCHANGE=exchange)
    from examples.shop import bus  # configured from the environment just set

    log = ROOT / ".run" / f"{exchange}-worker.log"
    log.parent.mkdir(exist_ok=True)
    say(f"Bus: exchange {exchange!r} on {url}")
    say("Starting: celery -A examples.shop worker -P prefork -c 2 -E")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "examples.shop", "worker", "-P", "prefork", "-c",
         "2", "-E", "-l", "info", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = bus.transport.client  # type: ignore[attr-defined]
    notes_key = f"{exchange}:demo:notes"
    try:
        # Every pattern of every subscriber: the worker binds them one at a time, and an event
        # published before its pattern is bound is routed without that subscriber.
        wanted = {name: sorted(sub.patterns) for name, sub in bus.subscribers.items()}
        deadline = time.monotonic() + 30
        while {name: sorted(p) for name, p in bus.bindings().items()} != wanted:
            if worker.poll() is not None or time.monotonic() > deadline:
                say(log.read_text(errors="replace")[-3000:])
                say("The worker did not start; its log is above.")
                return 1
            time.sleep(0.1)
        say("Worker is up; subscribers bound:")
        for name, patterns in sorted(bus.bindings().items()):
            say(f"  {name:<8} {', '.join(patterns)}")
        say("\nPublishing:")
        published = {}
        for event_type, data in EVENTS:
            event = bus.publish(event_type, data, source="demo", correlation_id="demo-1")
            published[event.id] = event_type
            say(f"  {event_type:<20} id {event.id}")
        # billing 2, audit 4, mailer 2 (one failed attempt, one success), ledger 2 (both fail)
        expected = 10
        deadline = time.monotonic() + 30
        while (
            client.llen(notes_key) < expected or bus.dead_letters.count() < 1
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        notes = [json.loads(raw) for raw in client.lrange(notes_key, 0, -1)]
        say("\nWhat the worker did (each subscriber its own Celery task and task id):")
        say(f"  {'EVENT':<20} {'TASK':<8} {'ATTEMPT':<7} {'TASK ID':<36}  OUTCOME")
        for entry in sorted(notes, key=lambda n: (list(published).index(n["event_id"]),
                                                  n["subscriber"], n["attempt"])):  # fmt: skip
            say(f"  {entry['type']:<20} {entry['subscriber']:<8} {entry['attempt']:<7} "
                f"{entry['task_id']}  {entry['outcome']}")  # fmt: skip
        unroutable = int(client.hget(f"{exchange}:stats", "unroutable") or 0)
        retried = sum(1 for n in notes if n["attempt"] > 1)
        say(f"\nSummary: {len(published)} events published, {len(notes)} handler runs, "
            f"{unroutable} unroutable (logged, no subscriber), "
            f"{retried} retries, each on its subscriber's own queue.")  # fmt: skip
        if len(notes) < expected:
            say("Not every delivery finished in time; see " + str(log))
            return 1
        code = dead_letter_demo(bus, client, notes_key, exchange)
        code = replay_demo(bus, client, notes_key) or code
        show_status(client, exchange, expected)
        return code
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        say("Worker stopped (warm shutdown).")
        keys = list(client.scan_iter(match=f"{exchange}*", count=1000))
        keys += [f"_kombu.binding.{exchange}", f"_kombu.binding_permanent.{exchange}"]
        client.delete(*keys)
        if private is not None:
            private.stop()
            say("Private redis-server stopped.")


if __name__ == "__main__":
    sys.exit(main())
