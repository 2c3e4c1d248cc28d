"""``wowevent serve``: health, readiness, metrics, status and admin endpoints over HTTP.

Built on the standard library's ``ThreadingHTTPServer``: the endpoints are few, small and
synchronous (each is one Redis read), so a framework would add a dependency and an event loop
without adding anything the probes need. Each request runs in its own thread; shutdown waits for
requests in flight.

Endpoints (JSON unless noted): ``GET /health`` (the process answers), ``GET /ready`` (Redis
answers and every subscriber of the app is bound; 503 with the reason otherwise), ``GET
/metrics`` (Prometheus text), ``GET /status[?window=SECONDS]``, and admin routes under
``/admin/`` which exist only when a bearer token is configured and refuse any request without
it. More admin routes are added with :meth:`StatusService.add_route`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wowevent_kombu.core.errors import InvalidEventError, PublishError, WowEventError
from wowevent_kombu.core.event import decode_json
from wowevent_kombu.core.urls import redact_query

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus
    from wowevent_kombu.observability.status import ClusterReader

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


@dataclasses.dataclass
class Request:
    """What a route handler gets: the parsed query and the JSON body (``None`` when empty)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclasses.dataclass
class Response:
    """What a route handler returns; a ``dict``/``list`` body is sent as JSON."""

    status: int
    body: Any
    content_type: str = "application/json"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


class HttpError(Exception):
    """Answer the request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


Handler = Callable[[Request], Response]


@dataclasses.dataclass(frozen=True)
class Route:
    """One endpoint: the query parameters it accepts and whether it needs the admin token."""

    handler: Handler
    query: frozenset[str] = frozenset()
    admin: bool = False


class StatusService:
    """The endpoints of one bus, independent of the HTTP server that carries them.

    Args:
        bus: The bus whose cluster is reported (its app's subscribers must be bound for
            ``/ready``).
        reader: Reads the cluster view (backlog, health, ...). registry: What ``/metrics`` serves (a
        :class:`~wowevent_kombu.observability.collector.ClusterCollector`
            and this process's own metrics, typically).
        admin_token: Bearer token of the admin routes; ``None`` leaves them switched off.
    """

    def __init__(
        self,
        bus: EventBus,
        reader: ClusterReader,
        registry: CollectorRegistry,
        *,
        admin_token: str | None = None,
    ) -> None:
        self.bus = bus
        self.reader = reader
        self.registry = registry
        self.admin_token = admin_token or None
        self.routes: dict[tuple[str, str], Route] = {}
        self.add_route("GET", "/health", self.health)
        self.add_route("GET", "/ready", self.ready)
        self.add_route("GET", "/metrics", self.metrics)
        self.add_route("GET", "/status", self.status, query={"window"})
        self.add_route("GET", "/admin/bindings", self.admin_bindings, admin=True)
        self.add_route("POST", "/admin/publish", self.admin_publish, admin=True)

    def add_route(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        query: set[str] | frozenset[str] = frozenset(),
        admin: bool = False,
    ) -> None:
        """Serve ``handler`` at ``method path``; ``admin`` routes need the bearer token."""
        self.routes[(method.upper(), path)] = Route(handler, frozenset(query), admin)

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """Answer one request; every failure becomes a 4xx/5xx response, never an exception."""
        try:
            return self._dispatch(method, target, headers, body)
        except HttpError as exc:
            return Response(exc.status, {"error": exc.message}, headers=exc.headers)
        except redis.RedisError as exc:
            shown = redact_query(target)
            log.warning("request %s %s: Redis is unavailable: %s", method, shown, exc)
            return Response(503, {"error": f"Redis is unavailable: {type(exc).__name__}"})
        except Exception:
            log.exception("request %s %s failed", method, redact_query(target))
            return Response(500, {"error": "internal error; see the service log"})

    def _dispatch(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        allowed = sorted(m for (m, p), r in self.routes.items() if p == path and self._on(r))
        if not allowed:
            raise HttpError(404, f"no such endpoint: {path}")
        route = self.routes.get((method, path))
        if route is None:
            raise HttpError(
                405, f"{method} is not allowed on {path}", {"Allow": ", ".join(allowed)}
            )
        if route.admin:
            self._authorize(headers)
        query = self._query(parts.query, route, path)
        document = None
        if body:
            try:
                document = decode_json(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise HttpError(400, f"request body is not JSON: {exc}") from exc
        return route.handler(Request(method, path, query, document))

    def _on(self, route: Route) -> bool:
        return not route.admin or self.admin_token is not None

    def _authorize(self, headers: Mapping[str, str]) -> None:
        assert self.admin_token is not None  # admin routes are hidden without a token
        scheme, _, given = headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="wowevent"'}
        if scheme.lower() != "bearer" or not given:
            raise HttpError(401, "admin endpoints need 'Authorization: Bearer <token>'", challenge)
        if not hmac.compare_digest(given.strip().encode(), self.admin_token.encode()):
            raise HttpError(403, "the bearer token is not valid")

    @staticmethod
    def _query(raw: str, route: Route, path: str) -> dict[str, str]:
        try:
            parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=bool(raw))
        except ValueError as exc:
            raise HttpError(400, f"malformed query string: {exc}") from exc
        unknown = sorted(set(parsed) - route.query)
        if unknown:
            accepted = ", ".join(sorted(route.query)) or "none"
            raise HttpError(
                400,
                f"unknown query parameter(s) {', '.join(unknown)} for {path} "
                f"(accepted: {accepted})",
            )
        repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
        if repeated:
            raise HttpError(400, f"query parameter(s) given more than once: {', '.join(repeated)}")
        return {k: v[0] for k, v in parsed.items()}

    # -- endpoints ---------------------------------------------------------------------------

    def health(self, request: Request) -> Response:
        """The process is alive (no dependency checked)."""
        return Response(200, {"status": "ok"})

    def ready(self, request: Request) -> Response:
        """Redis (and RabbitMQ, when it is the broker) answers; every subscriber is bound."""
        try:
            self.reader.client.ping()
        except redis.RedisError as exc:
            return Response(503, {"ready": False, "reason": f"Redis does not answer: {exc}"})
        ping = getattr(self.bus.transport, "ping", None)
        if ping is not None:
            try:
                ping()
            except PublishError as exc:
                return Response(503, {"ready": False, "reason": str(exc)})
        bound = self.reader.bindings()
        missing = []
        for sub in self.bus.subscribers.values():
            lacking = set(sub.patterns) - set(bound.get(sub.name, ()))
            if lacking:
                missing.append(f"{sub.name} ({', '.join(sorted(lacking))})")
        if missing:
            reason = f"not bound: {'; '.join(missing)}; run 'wowevent declare' or start a worker"
            return Response(503, {"ready": False, "reason": reason})
        return Response(200, {"ready": True, "bound_subscribers": len(bound)})

    def metrics(self, request: Request) -> Response:
        """Prometheus text exposition of :attr:`registry`."""
        return Response(200, generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)

    def status(self, request: Request) -> Response:
        """The cluster snapshot; ``?window=SECONDS`` (1-900) overrides the window."""
        window = None
        if "window" in request.query:
            raw = request.query["window"]
            try:
                window = float(raw)
            except ValueError:
                window = -1.0
            if not 1 <= window <= 900:
                raise HttpError(
                    400, f"window must be a number of seconds from 1 to 900, got {raw!r}"
                )
        return Response(200, self.reader.snapshot(window_seconds=window).as_dict())

    def admin_bindings(self, request: Request) -> Response:
        """Subscriber -> patterns as Redis holds them."""
        return Response(200, self.reader.bindings())

    def admin_publish(self, request: Request) -> Response:
        """Publish one event: ``{"type": ..., "data": ..., "source"?, "subject"?, "id"?}``."""
        doc = request.body
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise HttpError(400, 'body must be a JSON object with a string "type"')
        unknown = sorted(set(doc) - {"type", "data", "source", "subject", "id", "mandatory"})
        if unknown:
            raise HttpError(400, f"unknown field(s): {', '.join(unknown)}")
        for key in ("source", "subject", "id"):
            if doc.get(key) is not None and not isinstance(doc[key], str):
                raise HttpError(400, f'"{key}" must be a string')
        try:
            event = self.bus.publish(
                doc["type"], doc.get("data"), source=doc.get("source"),
                subject=doc.get("subject"), id=doc.get("id"),
                mandatory=bool(doc.get("mandatory", False)),
            )  # fmt: skip
        except InvalidEventError as exc:
            raise HttpError(422, str(exc)) from exc
        except WowEventError as exc:
            raise HttpError(409, str(exc)) from exc
        return Response(201, event.to_cloudevent())


def make_handler(service: StatusService) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``service``."""

    class RequestHandler(BaseHTTPRequestHandler):
        server_version = "wowevent"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def __getattr__(self, name: str) -> Any:
            # Every method reaches dispatch, which answers 405 for unsupported ones (the base
            # class would answer 501 for a method it has no do_* for).
            if name.startswith("do_"):
                return self._handle
            raise AttributeError(name)

        def _handle(self) -> None:
            length_text = self.headers.get("Content-Length")
            body = None
            if length_text:
                try:
                    length = int(length_text)
                except ValueError:
                    self._send(Response(400, {"error": "Content-Length is not a number"}))
                    return
                if length < 0 or length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._send(Response(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"}))
                    return
                body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(service.dispatch(self.command, self.path, headers, body))

        def _send(self, response: Response) -> None:
            payload = response.body
            if not isinstance(payload, bytes):
                payload = (json.dumps(payload, default=str) + "\n").encode()
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            # The request line may carry a secret in its query (?token=...): never log it.
            log.info("%s %s", self.address_string(), redact_query(format % args))

    return RequestHandler


def make_server(service: StatusService, host: str, port: int) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server; ``port`` 0 picks a free port.

    ``shutdown()`` from another thread (e.g. a SIGTERM handler) stops ``serve_forever``;
    ``server_close()`` then waits for requests in flight.
    """
    server = ThreadingHTTPServer((host, port), make_handler(service))
    server.daemon_threads = False
    server.block_on_close = True
    return server
