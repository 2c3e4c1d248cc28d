"""What every ``wowevent`` command shares: the context, exit codes and error handling.

Exit codes: 0 success, 1 a bus error, 2 bad usage, 65 bad input data, 69 Redis unavailable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

import click
from celery import Celery

from wowevent_kombu.bus import EventBus, buses_of
from wowevent_kombu.core.errors import InvalidEventError, PublishError, WowEventError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65
EXIT_UNAVAILABLE = 69

F = TypeVar("F", bound=Callable[..., Any])

TAIL_TIMEOUT_MAX = 365 * 86400.0
"""The longest idle timeout of ``tail``: a year (longer is as good as none)."""


@dataclasses.dataclass
class CliContext:
    """What every command needs: how to reach the bus, and the output format."""

    broker: str | None
    exchange: str | None
    app_path: str | None
    as_json: bool
    celery_app: Celery | None = None
    store: str | None = None
    _bus: EventBus | None = None

    def bus(self) -> EventBus:
        """The bus of ``--app`` (or of ``celery -A``), else a bare bus on ``--broker``."""
        if self._bus is None:
            app = self.celery_app or (load_app(self.app_path) if self.app_path else None)
            if app is not None:
                every = buses_of(app)
                buses = [b for b in every if not self.exchange or b.exchange == self.exchange]
                if every and not buses:
                    raise click.UsageError(
                        f"the app's buses use exchange(s) {sorted(b.exchange for b in every)}, "
                        f"not {self.exchange!r} (from --exchange or WOWEVENT_EXCHANGE)"
                    )
                if buses:
                    self._bus = buses[0]
                else:
                    self._bus = EventBus(app, exchange=self.exchange)
            else:
                bare = Celery("wowevent", broker=self.broker, set_as_current=False)
                if self.store:
                    bare.conf.wowevent_store_url = self.store
                self._bus = EventBus(bare, exchange=self.exchange)
        return self._bus

    def emit(self, data: Any, text: str) -> None:
        """Print ``data`` as JSON with ``--json``, else the human ``text``."""
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else text)


def load_app(path: str) -> Celery:
    """Import a Celery app like ``celery -A``: ``module:attribute`` or a module with ``app``."""
    module_name, _, attribute = path.partition(":")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import app module {module_name!r}: {exc}") from exc
    for name in [attribute] if attribute else ["app", "celery"]:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celery):
            return candidate
    raise click.UsageError(f"{path!r} does not name a Celery app (tried module:app, module:celery)")


def handle_errors(func: F) -> F:
    """Turn library errors into one clear line on stderr and a named exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidEventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_DATAERR)
        except PublishError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR if exc.__class__ is not PublishError else EXIT_UNAVAILABLE)
        except WowEventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def redis_errors_as_unavailable(func: F) -> F:
    """Commands that read Redis directly report a down Redis as unavailable, not a traceback."""
    import redis

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.RedisError as exc:
            click.echo(f"error: Redis is unavailable: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


pass_ctx = click.make_pass_decorator(CliContext)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a command cleanly: Ctrl-C, ``kill``/``timeout``/docker/systemd, and
a closed terminal."""


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Let SIGTERM and SIGHUP stop the block as Ctrl-C does, so its cleanup runs.

    Each raises :class:`KeyboardInterrupt` in the main thread; the signals are ignored from
    then on, so a second one cannot interrupt the cleanup. The previous handlers come back
    when the block ends.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(CliContext).as_json = True


def accept_json_everywhere(command: click.Command) -> None:
    """Give every subcommand of ``command`` its own ``--json`` (same as ``wowevent --json``).

    ``wowevent dlq list --json`` then works as well as ``wowevent --json dlq list``.
    """
    for sub in getattr(command, "commands", {}).values():
        accept_json_everywhere(sub)
        if not any("--json" in getattr(p, "opts", ()) for p in sub.params):
            sub.params.append(_json_option())


def _json_option() -> click.Option:
    return click.Option(
        ["--json", "as_json"], is_flag=True, expose_value=False, callback=_set_json,
        help="Machine-readable JSON output (also accepted before the command).",
    )  # fmt: skip
