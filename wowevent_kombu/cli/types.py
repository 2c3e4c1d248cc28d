"""Click parameter types that refuse hostile option values before any command runs.

Each type checks its whole range (``nan``, ``inf``, times before 1970 or after 9999, ages that
overflow the clock, speeds that would never be due, unparseable URLs) and fails with
:class:`OptionError`: one line naming the option and what it allows, exit 2, nothing written.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from click.core import ParameterSource
from redis.connection import parse_url

from wowevent_kombu.brokers.redis.connection import redis_url
from wowevent_kombu.core.errors import InvalidFilterError, LogQueryError
from wowevent_kombu.core.settings import AMQP_SCHEMES, REDIS_SCHEMES
from wowevent_kombu.core.urls import redact_url
from wowevent_kombu.log.pace import parse_speed
from wowevent_kombu.log.positions import age_before, checked_time, parse_when, shown


class OptionError(click.BadParameter):
    """A bad option value, shown as ``error: --since: <what is wrong>`` on one line (exit 2)."""

    def format_message(self) -> str:
        return f"{option_name(self.ctx, self.param)}: {self.message}"

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


def option_name(ctx: click.Context | None, param: click.Parameter | None) -> str:
    """``--since`` (its longest name), plus the variable it came from when it came from one."""
    if param is None:
        return "value"
    name = (
        max(param.opts, key=len) if isinstance(param, click.Option) else param.human_readable_name
    )
    if (
        ctx is not None
        and param.name is not None
        and isinstance(param.envvar, str)
        and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT
    ):
        return f"{name} (from {param.envvar})"
    return name


if TYPE_CHECKING:
    _Type = click.ParamType[Any]
else:  # click before 8.4 has no generic ParamType
    _Type = click.ParamType


class _Checked(_Type):
    def refuse(self, message: str, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        raise OptionError(message, ctx=ctx, param=param)


class FiniteFloat(_Checked):
    """A float within ``[low, high]`` (``(low, high]`` with ``above``); never nan or infinity."""

    name = "number"

    def __init__(self, low: float, high: float, *, above: bool = False, unit: str = "") -> None:
        self.low, self.high, self.above, self.unit = low, high, above, unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        lowest = "above" if self.above else "from"
        allowed = f"a number{self.unit} {lowest} {_num(self.low)} to {_num(self.high)}"
        try:
            number = float(value) if str(value).isascii() else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            return self.refuse(f"{shown(str(value))} is not a finite number; give {allowed}",
                               param, ctx)  # fmt: skip
        if (number <= self.low if self.above else number < self.low) or number > self.high:
            return self.refuse(f"{shown(str(value))} is out of range; give {allowed}", param, ctx)
        return number


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


class Count(_Checked):
    """A whole number within ``[low, high]`` (no upper limit when ``high`` is ``None``)."""

    name = "integer"

    def __init__(self, low: int, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        allowed = f"a whole number from {self.low}" + (
            f" to {self.high}" if self.high is not None else " up"
        )
        try:
            number = int(value)  # a digit string too long for int() is a ValueError too
        except (TypeError, ValueError):
            return self.refuse(f"{shown(str(value))} is not {allowed}", param, ctx)
        if number < self.low or (self.high is not None and number > self.high):
            return self.refuse(f"{shown(str(value))} is out of range; give {allowed}", param, ctx)
        return number


class LogTime(_Checked):
    """A log time: a position, an ISO 8601 time or an age (see ``eventlog.parse_when``)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except LogQueryError as exc:
            return self.refuse(str(exc), param, ctx)


class LogPosition(_Checked):
    """A log position ``<milliseconds>-<sequence>``, as ``log read`` prints for ``--cursor``."""

    name = "position"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            found = parse_when(str(value))
        except LogQueryError:
            found = None
        if not isinstance(found, str):
            return self.refuse(
                f"{shown(str(value))} is not a log position (as 'next: --cursor' prints it)",
                param,
                ctx,
            )
        return found


LAST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest epoch second a time option takes."""


def parse_time(value: str | None, *, now: float | None = None) -> float | None:
    """A CLI time as epoch seconds: ISO 8601 (naive is UTC), epoch seconds, or an age (``2h``).

    Raises:
        InvalidFilterError: none of these forms, or a time outside 1970 to 9999 (``nan`` and
            ``inf`` included).
    """
    if value is None:
        return None
    text = value.strip()
    try:
        moment = age_before(text, None if now is None else datetime.fromtimestamp(now, UTC))
        if moment is not None:
            return moment.timestamp()
        epoch = _epoch(text)
        if epoch is not None:
            if not 0 <= epoch <= LAST_EPOCH:  # nan and inf fail this too
                raise InvalidFilterError(
                    f"{shown(text)} is not epoch seconds from 0 (1970) to {LAST_EPOCH:.0f} "
                    "(9999-12-31T23:59:59Z)"
                )
            return epoch
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidFilterError(
                f"time '{shown(text)}' is not ISO 8601 (2026-01-31T12:00), epoch seconds, or an "
                "age such as 30m, 2h or 7d"
            ) from None
        return checked_time(parsed, text).timestamp()
    except LogQueryError as exc:
        raise InvalidFilterError(str(exc)) from None


def _epoch(text: str) -> float | None:
    try:
        return float(text) if text.isascii() else None  # float() takes any script's digits
    except ValueError:
        return None


class EpochTime(_Checked):
    """A dead-letter filter time as epoch seconds (see :func:`parse_time`)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_time(str(value))
        except InvalidFilterError as exc:
            return self.refuse(str(exc), param, ctx)


class DeadLetterCursor(_Checked):
    """A ``dlq list`` cursor: ``<score>|<record id>`` with a finite score."""

    name = "cursor"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        score, _, record_id = str(value).partition("|")
        try:
            finite = math.isfinite(float(score))
        except ValueError:
            finite = False
        if not finite or not record_id:
            return self.refuse(
                f"malformed cursor '{shown(str(value))}'; pass back the cursor a previous "
                "list printed",
                param,
                ctx,
            )
        return str(value)


class ReplaySpeed(_Checked):
    """A replay speed (see ``pace.parse_speed``), kept as given: the replay records it."""

    name = "speed"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            parse_speed(value)
        except LogQueryError as exc:
            return self.refuse(str(exc), param, ctx)
        return value.strip() if isinstance(value, str) else value


class BrokerURL(_Checked):
    """A broker or store URL whose scheme, host, port and Redis options all parse."""

    name = "url"

    def __init__(self, schemes: tuple[str, ...]) -> None:
        self.schemes = schemes

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        problem = url_problem(str(value), self.schemes)
        if problem:
            return self.refuse(problem, param, ctx)
        return value


BROKER_SCHEMES = (*REDIS_SCHEMES, *AMQP_SCHEMES)
STORE_SCHEMES = REDIS_SCHEMES


def url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be used (its password redacted in the reason), ``None`` if it can."""
    if not url.strip():
        return "the URL is empty; give one such as redis://localhost:6379/0"
    for part in (p.strip() for p in url.split(";")):
        try:
            parts = urlsplit(part)
            _ = parts.hostname, parts.port  # both parse lazily: a bad port raises only here
        except ValueError as exc:
            return f"{safe_url(part)} is not a valid URL: {exc}"
        if parts.scheme not in schemes:
            return (
                f"{safe_url(part)} has scheme '{shown(parts.scheme)}'; use "
                f"{', '.join(s + '://' for s in schemes)}"
            )
        database = parts.path.strip("/")
        if parts.scheme == "sentinel":
            if database and not (database.isascii() and database.isdigit()):
                return f"{safe_url(part)}: the database '{shown(database)}' is not a number"
        elif parts.scheme in REDIS_SCHEMES:
            try:
                parse_url(redis_url(part))  # type: ignore[no-untyped-call]
            except ValueError as exc:
                return f"{safe_url(part)} is not a valid Redis URL: {exc}"
    return None


def safe_url(url: str) -> str:
    """``url`` for a message, password redacted; a placeholder if even that cannot parse it."""
    try:
        return redact_url(url)
    except ValueError:
        return "the URL"
