"""The console's pages and assets, mounted under ``/console/`` on the service's app.

=============================================  ==============================================
route                                          page
=============================================  ==============================================
``GET/POST /console/login``, ``POST logout``   sign in with a token; sign out
``GET /console/``                              overview (``/console/overview/table`` refreshes)
``GET /console/dlq``, ``/console/dlq/{id}``    dead letters: filter, page; one record
``POST /console/dlq/retry|purge|matching``     retry now; confirm a purge or a bulk action
``POST /console/dlq/confirm``                  do what the confirmation showed
``GET /console/replay``                        choose and preview a replay (a dry run)
``POST /console/replay/start``                 start it
``GET /console/replays``, ``/replays/{id}``    recorded replays; one run's progress
``POST /console/replays/{id}/interrupt|resume`` stop or resume a run
``GET /console/log``, ``/console/log/{id}``    find logged events; one event
``GET /console/static/*``                      ``console.css``, ``console.js``
=============================================  ==============================================

Every page but sign-in needs a session; every POST that changes something an admin session,
a same-origin ``Origin`` and the session's CSRF token (:mod:`.session`).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from wowevent_kombu.web.console import deadletters, eventlog, overview, replay, signin
from wowevent_kombu.web.console.render import ConsoleRoute
from wowevent_kombu.web.console.session import PREFIX, Refused, Viewer

__all__ = ["mount_console"]

_fallback = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


@_fallback.get("/{rest:path}")
def not_found(request: Request, session: Viewer, rest: str) -> Response:
    """Any other console address: a 404 page (after sign-in, like every page)."""
    raise Refused(404, "There is no console page at this address.")


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and assets to ``app``."""
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(packages=[("wowevent_kombu.web.console", "static")]),
        name="console-static",
    )
    for module in (signin, overview, deadletters, replay, eventlog):
        app.include_router(module.router)
    app.include_router(_fallback)
