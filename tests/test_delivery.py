"""The per-delivery context: one typed object on Celery's request, made once."""

from types import SimpleNamespace

from celery.app.task import Context

from wowevent_kombu.worker.delivery import DeliveryContext, context_of


def test_one_context_per_request_made_on_first_use():
    request = Context(id="task-1", retries=0)
    context = context_of(request)
    assert context == DeliveryContext()
    context.dead_lettered = True
    assert context_of(request) is context
    assert context_of(Context(id="task-2")) is not context


def test_a_plain_object_can_carry_it_too():
    request = SimpleNamespace()
    context_of(request).failure_handled = True
    assert context_of(request).failure_handled
