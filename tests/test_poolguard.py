"""Contract of the Celery members the pool guard and the strategy check rely on.

Each test names the member and the installed Celery version when a release changes it, so an
upgrade fails here, not as a worker that silently stops refusing poison messages.
"""

import inspect

import celery
from celery.worker import components, state
from celery.worker.consumer import consumer, tasks
from celery.worker.request import Request
from celery.worker.worker import WorkController

VERSION = f"Celery {celery.__version__}"


def test_the_semaphore_looks_the_hand_over_up_on_the_worker_at_call_time():
    source = inspect.getsource(WorkController._process_task_sem)
    assert "self._process_task" in source, (
        f"{VERSION}: WorkController._process_task_sem no longer calls self._process_task; "
        "the pool guard (wowevent_kombu.worker.poolguard) would not see the hand-over"
    )
    assert callable(getattr(WorkController, "_process_task", None)), (
        f"{VERSION}: WorkController._process_task is gone"
    )


def test_the_pool_step_sets_process_task_and_the_semaphore_release():
    source = inspect.getsource(components.Pool.create)
    for member in ("w.process_task = w._process_task", "w._quick_release"):
        assert member in source, f"{VERSION}: components.Pool.create no longer sets {member!r}"
    assert "w.process_task" in inspect.getsource(components.Consumer.create), (
        f"{VERSION}: the Consumer step no longer takes w.process_task as its on_task_request"
    )


def test_a_request_can_be_rejected_and_marked_ready():
    assert list(inspect.signature(Request.reject).parameters) == ["self", "requeue"], (
        f"{VERSION}: Request.reject(requeue=False) changed shape"
    )
    assert list(inspect.signature(state.task_ready).parameters)[:2] == ["request", "successful"], (
        f"{VERSION}: celery.worker.state.task_ready(request, successful) changed shape"
    )


def test_strategies_are_looked_up_per_message_after_the_tasks_step_built_them():
    handler = inspect.getsource(consumer.Consumer.create_task_handler)
    assert "strategies = self.strategies" in handler and "strategies[type_]" in handler, (
        f"{VERSION}: Consumer.create_task_handler no longer looks each message's strategy up "
        "in consumer.strategies; the subscriber-queue task check would be bypassed"
    )
    assert "update_strategies" in inspect.getsource(tasks.Tasks.start), (
        f"{VERSION}: the Tasks step no longer builds the strategies in start()"
    )
    assert "self.strategies[name] =" in inspect.getsource(consumer.Consumer.update_strategies), (
        f"{VERSION}: Consumer.update_strategies no longer fills consumer.strategies in place"
    )
