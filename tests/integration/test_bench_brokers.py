"""``benchmarks/brokers.py`` in a tiny configuration: it runs on both brokers and cleans up.

Figures are printed, not asserted (they depend on the machine); what is asserted is that every
scenario produced a figure on both brokers, the results were written, and no queue, exchange or
key of the benchmark's runs is left in RabbitMQ or Redis.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import amqp
import pytest
import redis
from kombu import Connection

from benchmarks import brokers
from wowevent_kombu.core import names

pytestmark = pytest.mark.integration


def leftovers_in_rabbitmq(url: str, exchange: str) -> list[str]:
    """The queues and exchanges of one run that still exist (passive declares)."""
    found = []
    with Connection(url) as conn:
        entities = [("queue", f"{exchange}.s0"), ("exchange", exchange),
                    ("exchange", names.pinned_exchange(exchange))]  # fmt: skip
        # The bus's app has a probe queue, the bare baseline's app its task queue.
        entities += [(kind, f"{exchange}.{app}") for app in ("probe", "bare")
                     for kind in ("queue", "exchange")]  # fmt: skip
        for kind, name in entities:
            channel = conn.channel()  # RabbitMQ closes the channel on a missing entity
            try:
                if kind == "queue":
                    channel.queue_declare(name, passive=True)
                else:
                    channel.exchange_declare(name, "topic", passive=True)
                found.append(f"{kind} {name}")
                channel.close()
            except amqp.exceptions.NotFound:
                pass
    return found


def test_brokers_benchmark_runs_on_both_brokers_and_leaves_nothing_behind(
    redis_url: str, amqp_url: str, redis_client: redis.Redis, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("WOWEVENT_TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("WOWEVENT_TEST_AMQP_URL", amqp_url)
    environment = dict(os.environ)
    report = brokers.main(["--rounds", "1", "--events", "50", "--rate", "200", "--seconds",
                           "0.25", "--drain", "100", "--out", str(tmp_path)])  # fmt: skip
    assert dict(os.environ) == environment

    for name in ("redis", "amqp"):
        figures = report["brokers"][name]
        values = [*figures["publish_per_s"].values(), *figures["throughput_per_s"].values()]
        values += [v for side in figures["latency_ms"].values() for v in side.values()]
        assert len(values) == 2 + 2 + 2 * 4
        assert all(math.isfinite(v) and v > 0 for v in values), figures
    assert json.loads((tmp_path / "brokers.json").read_text()) == report
    table = (tmp_path / "brokers.md").read_text()
    assert "RabbitMQ: bus" in table and "worker throughput" in table
    assert table.strip() in capsys.readouterr().out

    runs = report["runs"]
    assert len(runs["redis"]) == len(runs["amqp"]) == 3
    for exchange in runs["amqp"]:
        assert leftovers_in_rabbitmq(amqp_url, exchange) == []
    for exchange in runs["redis"] + runs["amqp"]:
        assert list(redis_client.scan_iter(match=f"{exchange}*")) == []
        assert list(redis_client.scan_iter(match=f"_kombu.binding*.{exchange}*")) == []
