"""The event and routing core: the event envelope, names, errors, settings and AMQP matching.

Nothing here talks to a broker or runs inside Celery: the
:class:`~wowevent_kombu.core.event.Event` and its wire form, every derived name
(:mod:`~wowevent_kombu.core.names`), the one exception tree (:mod:`~wowevent_kombu.core.errors`)
and the findings its errors carry (:mod:`~wowevent_kombu.core.findings`), the frozen
:class:`~wowevent_kombu.core.settings.Settings`, the trie matcher with AMQP topic semantics and
the binding snapshot it matches against. Every other package builds on these; these import none
of them.
"""
