"""``wowevent serve``: the bus's HTTP service (probes, metrics, admin API, operator console).

Needs the ``web`` extra (``pip install 'wowevent-kombu[web]'``): FastAPI, uvicorn, Jinja2.
"""
