"""A handler that hangs past its time limit: killed, retried per policy, then dead-lettered."""

import redis

from tests.conftest import wait_for
from tests.reliability.counting import publish_all, publisher, report, runs, tally
from wowevent_kombu import DeadLetterFilter
from wowevent_kombu.core import names


def test_hanging_handler_is_killed_retried_and_dead_lettered(private_redis, start_worker,
                                                              exchange):  # fmt: skip
    server = private_redis()
    env = {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange}
    worker = start_worker("tests.apps.hostile", env=env, pool="prefork", concurrency=2)
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    stuck = bus.publish("hang.job", {"n": 0})
    ids = publish_all(bus, 200, "h.item")
    store = bus.dead_letters
    record = wait_for(lambda: next(iter(store.iter()), None), timeout=60,
                      message="the hanging delivery dead-lettered")  # fmt: skip
    # hang: time_limit=1, max_retries=2 -> killed three times, then recorded once.
    assert (record.subscriber, record.event_id, record.reason) == ("hang", stuck.id, "exhausted")
    assert record.id == names.task_id(stuck.id, "hang")
    assert [a.number for a in record.attempts] == [1, 2, 3]
    assert all(a.exception_type.endswith("TimeLimitExceeded") for a in record.attempts)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in [stuck.id, *ids]),
             message="the other subscriber handled everything")  # fmt: skip
    counts = runs(client, exchange)
    assert counts[("hang", stuck.id)] == 3
    figures = tally(counts, ["steady"], [stuck.id, *ids])
    assert figures["steady"]["lost"] == 0 and figures["steady"]["duplicates"] == 0
    assert store.count(DeadLetterFilter(subscriber="steady")) == 0
    assert client.llen(names.queue_name(exchange, "hang")) == 0
    wait_for(lambda: client.hlen("unacked") == 0, message="nothing left unacknowledged")
    assert worker.proc.poll() is None
    report("hanging handler", {**figures, "hang_runs": counts[("hang", stuck.id)]})
    bus.close()
