"""``wowevent breaker``: show the subscribers' circuit breakers, force one open or closed.

Thin commands over :class:`~wowevent_kombu.worker.breaker.Breakers`. A breaker forced open
stays open (no trial deliveries) until it is closed by hand; closing one lets every worker
consume the subscriber's queue again within a poll (about half a second). An unknown
subscriber is exit 1 and changes nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from wowevent_kombu.cli._common import CliContext, handle_errors, redis_errors_as_unavailable
from wowevent_kombu.core.breaker import BreakerState

pass_ctx = click.make_pass_decorator(CliContext)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def breaker_table(states: list[BreakerState], now: float) -> str:
    """The human form of a list of breakers."""
    if not states:
        return "no circuit breakers: no subscriber has one configured or ever opened"
    lines = [f"{'SUBSCRIBER':<30} {'STATE':<10} {'OPEN FOR':>9} {'REOPENS':>7}  UNTIL / REASON"]
    for s in states:
        opened = f"{s.open_seconds(now):.0f}s" if s.state != "closed" else "-"
        until = "forced" if s.forced else _when(s.until) if s.state == "open" else "-"
        lines.append(
            f"{s.subscriber:<30} {s.state:<10} {opened:>9} {s.reopens:>7}  {until}  {s.reason}"
        )
    return "\n".join(lines)


@click.group(name="breaker")
def breaker() -> None:
    """Circuit breakers: status, force open, close."""


@breaker.command(name="status")
@click.argument("name", required=False)
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def status_command(obj: CliContext, name: str | None) -> None:
    """Every breaker, or subscriber NAME's."""
    breakers = obj.bus().breakers
    states = [breakers.state(name)] if name else breakers.states()
    obj.emit([s.as_dict() for s in states], breaker_table(states, time.time()))


@breaker.command(name="open")
@click.argument("name")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def open_command(obj: CliContext, name: str) -> None:
    """Force subscriber NAME's breaker open: every worker stops consuming its queue."""
    state = obj.bus().breakers.force(name, "open")
    obj.emit(state.as_dict(), f"{name}: breaker forced open; its events wait in the queue")


@breaker.command(name="close")
@click.argument("name")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def close_command(obj: CliContext, name: str) -> None:
    """Close subscriber NAME's breaker: every worker consumes its queue again."""
    state = obj.bus().breakers.force(name, "close")
    obj.emit(state.as_dict(), f"{name}: breaker {state.state}; deliveries resume")
