"""The queues a Celery worker consumes: subscriber queues added as declared, honouring ``-Q``.

Celery's ``Queues`` table keeps the ``-Q`` selection in ``_consume_from`` (``None`` without
``-Q``) and, from Celery 5.7, the queues consumed by default in ``_default_consume_from``
(before, the table itself); ``Queues.add`` would give a queue that has only bindings
Celery's default exchange too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu import Queue

from wowevent_kombu.brokers import compat


def consume_queues(app: Any, queues: Iterable[Queue]) -> None:
    """Make ``app``'s worker consume ``queues`` unless ``-Q`` left them out.

    With ``-Q`` the worker consumes only the named queues, so a queue is consumed only when
    named there; without ``-Q`` every queue given here is consumed.
    """
    table = app.amqp.queues
    selected = table._consume_from
    for queue in queues:
        # Set the entry directly: ``Queues.add`` would give a queue that has only bindings
        # Celery's default exchange too, binding it where no event is ever published.
        dict.__setitem__(table, queue.name, queue)
        if selected is None:
            # Before Celery 5.7 a worker without -Q consumes the Queues dict itself.
            if compat.CELERY_DEFAULT_CONSUME_FROM:
                table._default_consume_from[queue.name] = queue
        elif queue.name in selected:
            selected[queue.name] = queue
