"""Contract of the private Celery members behind wowevent_kombu.brokers.celery.

One test per member the seam reads, writes or overrides. Each failure names the member and the
installed Celery version, so an upgrade fails here rather than as a worker that acks an
unrecorded loss, consumes no subscriber queue, or stops recording malformed entries.
"""

import inspect

import celery
import pytest
from billiard.exceptions import WorkerLostError
from celery import Celery
from celery.worker.consumer import consumer, tasks
from celery.worker.request import Request
from kombu import Exchange, Queue

from wowevent_kombu.brokers import compat
from wowevent_kombu.brokers.celery.consumer import CALLBACKS
from wowevent_kombu.brokers.celery.queues import consume_queues
from wowevent_kombu.brokers.celery.request import HookedRequest

VERSION = f"Celery {celery.__version__}"

needs_lost_run_retry = pytest.mark.skipif(
    not compat.CELERY_RETRY_ON_WORKER_LOST,
    reason="Celery < 5.7 has no lost-run retry; brokers/celery/workerlost.py sends it (and "
    "tests/test_seam_contract.py checks that compat says so)",
)


def app() -> Celery:
    return Celery("seam", broker="memory://", set_as_current=False)


# -- brokers/celery/request.py -------------------------------------------------------------


def test_request_context_is_one_cached_object_per_request():
    member = inspect.getattr_static(Request, "_context", None)
    assert member is not None, f"{VERSION}: Request._context is gone"
    assert hasattr(member, "__get__") and not isinstance(member, property), (
        f"{VERSION}: Request._context is no longer a cached property; the flag the bus sets on "
        "it in the main process would not reach Celery's on_timeout"
    )
    assert "self._context" in inspect.getsource(Request.on_timeout), (
        f"{VERSION}: Request.on_timeout no longer hands Task.on_failure self._context"
    )


def test_request_already_cancelled_and_revoked_flags():
    for member in ("_already_cancelled", "_already_revoked"):
        assert getattr(Request, member, None) is False, (
            f"{VERSION}: Request.{member} is no longer a False class default"
        )
    source = inspect.getsource(Request.on_failure)
    assert "self._already_cancelled" in source and "self._already_revoked" in source, (
        f"{VERSION}: Request.on_failure no longer reads _already_cancelled/_already_revoked"
    )


def test_hooked_request_reports_an_exit_as_a_worker_lost_error():
    info = HookedRequest.worker_lost_info(object.__new__(HookedRequest), SystemExit(1))
    exc = getattr(info.exception, "exc", info.exception)
    assert isinstance(exc, WorkerLostError), (
        f"{VERSION}: a pool child's SystemExit is no longer reported as a WorkerLostError"
    )


@needs_lost_run_retry
def test_request_worker_lost_info_turns_an_exit_into_a_worker_lost_error():
    member = getattr(Request, "_worker_lost_info", None)
    assert callable(member), f"{VERSION}: Request._worker_lost_info is gone"
    assert list(inspect.signature(member).parameters) == ["self", "exc"], (
        f"{VERSION}: Request._worker_lost_info(exc) changed shape"
    )
    exc = member(object.__new__(Request), SystemExit(1)).exception
    exc = getattr(exc, "exc", exc)  # billiard may wrap it in an ExceptionWithTraceback
    assert isinstance(exc, WorkerLostError), (
        f"{VERSION}: Request._worker_lost_info no longer reports a WorkerLostError"
    )


@needs_lost_run_retry
def test_request_retry_worker_lost_is_what_on_failure_calls():
    member = getattr(Request, "_retry_worker_lost", None)
    assert callable(member), f"{VERSION}: Request._retry_worker_lost is gone"
    assert list(inspect.signature(member).parameters) == ["self", "exc", "exc_info"], (
        f"{VERSION}: Request._retry_worker_lost(exc, exc_info) changed shape"
    )
    assert "self._retry_worker_lost(exc, exc_info)" in inspect.getsource(Request.on_failure), (
        f"{VERSION}: Request.on_failure no longer retries a lost run through "
        "self._retry_worker_lost; the before_retry hooks would not run first"
    )


@needs_lost_run_retry
def test_hooked_request_runs_its_hook_before_celerys_lost_run_retry(monkeypatch):
    calls = []
    monkeypatch.setattr(Request, "_retry_worker_lost", lambda self, exc, info: calls.append("c"))

    class Probe(HookedRequest):
        def before_worker_lost_retry(self, exc, exc_info):
            calls.append("hook")

    Probe.retry_worker_lost(object.__new__(Probe), RuntimeError(), None)
    assert calls == ["hook", "c"]


# -- brokers/celery/queues.py --------------------------------------------------------------


def subscriber_queue(name: str) -> Queue:
    return Queue(name, exchange=Exchange("bus", type="topic"), routing_key="a.*")


def test_queues_default_consume_from_without_q():
    queues = app().amqp.queues
    assert isinstance(queues, dict), f"{VERSION}: app.amqp.queues is no longer a dict"
    assert getattr(queues, "_consume_from", "missing") is None, (
        f"{VERSION}: Queues._consume_from is not None without -Q"
    )
    if compat.CELERY_DEFAULT_CONSUME_FROM:  # before 5.7 the table itself is consumed
        assert isinstance(getattr(queues, "_default_consume_from", None), dict), (
            f"{VERSION}: Queues._default_consume_from is gone"
        )
    consume_queues_app = app()
    consume_queues(consume_queues_app, [subscriber_queue("bus.billing")])
    consumed = consume_queues_app.amqp.queues.consume_from
    assert "bus.billing" in consumed, (
        f"{VERSION}: a worker without -Q no longer consumes the queues the seam adds"
    )
    assert consumed["bus.billing"].exchange.name == "bus", (
        f"{VERSION}: dict.__setitem__ on Queues no longer keeps the queue as declared"
    )


def test_queues_consume_from_with_q_selects_by_name():
    selected = app()
    selected.amqp.queues.select(["bus.billing"])
    assert isinstance(getattr(selected.amqp.queues, "_consume_from", None), dict), (
        f"{VERSION}: Queues.select no longer fills Queues._consume_from"
    )
    consume_queues(selected, [subscriber_queue("bus.billing"), subscriber_queue("bus.mail")])
    consumed = selected.amqp.queues.consume_from
    assert set(consumed) == {"bus.billing"}, (
        f"{VERSION}: Queues.consume_from with -Q is no longer Queues._consume_from"
    )
    assert consumed["bus.billing"].exchange.name == "bus"


# -- brokers/celery/consumer.py ------------------------------------------------------------


def test_consumer_callbacks_for_unrunnable_messages():
    expected = {
        "on_decode_error": ["self", "message", "exc"],
        "on_unknown_message": ["self", "body", "message"],
        "on_unknown_task": ["self", "body", "message", "exc"],
        "on_invalid_task": ["self", "body", "message", "exc"],
    }
    assert set(CALLBACKS) == set(expected)
    for name, parameters in expected.items():
        member = getattr(consumer.Consumer, name, None)
        assert callable(member), f"{VERSION}: Consumer.{name} is gone"
        assert list(inspect.signature(member).parameters) == parameters, (
            f"{VERSION}: Consumer.{name} changed shape"
        )


def test_consumer_callbacks_are_read_from_the_instance_when_the_handler_is_built():
    handler = inspect.getsource(consumer.Consumer.create_task_handler)
    for name in ("on_unknown_message", "on_unknown_task", "on_invalid_task", "on_decode_error"):
        assert f"self.{name}" in handler, (
            f"{VERSION}: Consumer.create_task_handler no longer reads self.{name}; "
            "malformed entries would be dropped without a dead-letter record"
        )
    assert "on_decode_error=c.on_decode_error" in inspect.getsource(tasks.Tasks.start), (
        f"{VERSION}: the Tasks step no longer gives Kombu the consumer's on_decode_error"
    )
