"""The bare-Celery baseline: a stock Celery app on Kombu's own transport, with no bus in it.

``bench.bare`` receives the same CloudEvent document the bus delivers and records what a
subscriber handler records. Its worker is a process of its own (``-A benchmarks.bareapp``), so
nothing of the bus (transport, hooks, consumer) is on the baseline's path.
"""

from benchmarks.appconfig import EXCHANGE, Recorder, celery_app

app = celery_app("bare", f"{EXCHANGE}.bare")
record = Recorder()


@app.task(name="bench.bare", acks_late=True, ignore_result=True, shared=False)
def bare(sent, event=None):
    record("bare", sent)
