"""The seam to Celery's worker internals: every private Celery member the bus relies on, here.

The worker side of the bus needs a few things Celery does not offer publicly: a request's
context and its lost-worker bookkeeping, the retry Celery sends for a lost pool child, the
worker's hand-over of a request to its pool, the set of queues a worker consumes, and the
consumer's callbacks for messages it cannot run. Each is reached only from the small modules
of this package, which expose plain functions and classes to :mod:`wowevent_kombu.worker`;
``tests/test_celery_seam.py`` (and ``tests/test_poolguard.py``) hold one contract test per
private member, naming it and the installed Celery version when a release changes it.
"""
