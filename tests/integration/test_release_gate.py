"""A worker on a release the bus cannot run refuses to start, saying which releases work."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from wowevent_kombu.brokers import compat


@pytest.mark.skipif(compat.CELERY_QUORUM_QUEUES, reason="this Celery consumes quorum queues")
def test_a_celery_without_quorum_queues_refuses_rabbitmq_at_worker_start(
    start_worker, amqp_url, redis_url
):
    worker = start_worker(
        "tests.apps.shop",
        env={"WOWEVENT_TEST_BROKER_URL": amqp_url},
        ready=False,
    )
    wait_for(lambda: worker.proc.poll() is not None, timeout=30, message="the worker to exit")
    assert worker.proc.returncode != 0
    text = worker.text()
    assert "ConfigurationError" in text and "quorum queues" in text, text[-3000:]
    assert "use Celery >= 5.5 on RabbitMQ" in text, text[-3000:]
    assert " ready." not in text


def test_the_gate_passes_every_supported_release_on_redis():
    compat.require_supported()  # the installed release is in the matrix, so supported
