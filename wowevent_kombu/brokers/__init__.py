"""The broker seam: everything that knows how Kombu, Celery's transports and Redis really work.

Each folder is one interchangeable broker: ``redis/`` (the atomic publish script, the guarded
Kombu channel the workers read through, bells, Lua scripts, clients, private servers for tests)
and ``amqp/`` (RabbitMQ publishing with confirms, quorum-queue topology, the routed dispatch
task). :mod:`~wowevent_kombu.brokers.base` is what the bus asks of any of them. Private Celery
and Kombu members are touched here and in :mod:`wowevent_kombu.worker`'s Celery hooks only,
each under a contract test.
"""
