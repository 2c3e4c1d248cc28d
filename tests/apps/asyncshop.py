"""``async def`` subscribers for the worker tests: each records its run through redis.asyncio.

The async client is made once per event loop and reused, which fails loudly if a loop is not
kept across deliveries (a client bound to a closed loop raises on use).
"""

import asyncio
import json
import os
import threading

import redis
import redis.asyncio as aioredis
from celery import Celery

from wowevent_kombu import EventBus, Reject

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("asyncshop", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)
_clients: dict[int, aioredis.Redis] = {}


async def record(subscriber, event, **extra):
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None:
        client = _clients[id(loop)] = aioredis.Redis.from_url(URL)
    entry = {"subscriber": subscriber, "id": event.id, "loop": id(loop), "pid": os.getpid(),
             "thread": threading.get_ident(), **extra}  # fmt: skip
    await client.rpush(f"{EXCHANGE}:seen", json.dumps(entry))


@bus.subscriber("order.*", name="billing")
async def bill(event):
    await asyncio.sleep(0)
    await record("billing", event)


@bus.subscriber("flaky.*", name="flaky", bind=True, autoretry_for=(RuntimeError,), max_retries=3)
async def flaky(self, event):
    await record("flaky", event, retries=self.request.retries)
    if self.request.retries < event.data.get("fail_times", 0):
        raise RuntimeError("not yet")


@bus.subscriber("doomed.*", name="doomed", max_retries=1, autoretry_for=(ValueError,))
async def doomed(event):
    await record("doomed", event)
    raise ValueError("always fails")


@bus.subscriber("rejected.*", name="rejecting")
async def rejecting(event):
    raise Reject("not for us")


@bus.subscriber("slow.*", name="slow", soft_time_limit=0.5, time_limit=5, max_retries=0)
async def slow(event):
    try:
        await asyncio.sleep(30)
    finally:
        store.rpush(f"{EXCHANGE}:cleanup", event.id)  # the cancelled coroutine cleans up


@bus.subscriber("idem.*", name="idem", idempotent=True)
async def idem(event):
    await record("idem", event)
