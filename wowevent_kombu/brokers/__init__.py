"""The broker seam: everything that knows how Kombu, Celery's worker and Redis really work.

Each folder is one interchangeable broker: ``redis/`` (the atomic publish script, the guarded
Kombu channel the workers read through, bells, Lua scripts, clients, private servers for tests)
and ``amqp/`` (RabbitMQ publishing with confirms, quorum-queue topology, the routed dispatch
task); ``celery/`` holds the few Celery worker internals both rely on.
:mod:`~wowevent_kombu.brokers.base` is what the bus asks of any broker, and
:mod:`~wowevent_kombu.brokers.factory` picks one from the settings. Private Celery and Kombu
members are touched in this package only (``tests/test_seam.py`` checks it), each under a
contract test that names the member and the installed version when a release changes it.
"""
