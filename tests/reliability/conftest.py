"""Reliability tests: each uses its own private redis-server, started and stopped by pid."""

from collections import Counter

import pytest

from wowevent_kombu.testing.redisserver import RedisServer


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def private_redis(tmp_path):
    servers = []

    def start(**options):
        server = RedisServer(directory=tmp_path / f"redis{len(servers)}", **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(kill=True)


def runs(client, exchange):
    """Counter of (subscriber, event id) -> executions."""
    return Counter(
        tuple(raw.decode().split()[:2]) for raw in client.lrange(f"{exchange}:runs", 0, -1)
    )
