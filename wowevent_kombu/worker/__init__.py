"""Inside the Celery worker: subscriber tasks, their middleware, and the bootsteps that wire
the bus into a worker (queues and bindings, the guarded hand-over to the pool, malformed
entries recorded as dead letters, failure bookkeeping before the acknowledgement), plus the
plain consumer loop used outside Celery.
"""
