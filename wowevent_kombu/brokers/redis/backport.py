"""What Kombu 5.7's Redis transport has and older Kombu lacks, carried back for the guarded channel.

Kombu 5.6 added ``brpop_timeout``; Kombu 5.7 added the ``unacked_restore_interval`` and
``unacked_restore_throttle`` options (before, a killed worker's messages came back only after
about 100 s, whatever the settings said). On older releases the channel gets the attributes
with the values those releases behaved with, reads the two options itself, and sweeps the
unacknowledged messages on its own timer. :mod:`wowevent_kombu.brokers.compat` decides which
release needs what.
"""

from __future__ import annotations

from typing import Any

from wowevent_kombu.brokers import compat

OLD_KOMBU_OPTIONS: tuple[str, ...] = (
    () if compat.KOMBU_RESTORE_OPTIONS else ("unacked_restore_interval", "unacked_restore_throttle")
)
"""Kombu 5.7's transport options the channel reads itself on older Kombu releases."""


class OldKombuDefaults:
    """Channel attributes an older Kombu lacks, with the values it behaved with (a mixin)."""

    if not compat.KOMBU_BRPOP_TIMEOUT:
        brpop_timeout: float = 1  # what Kombu < 5.6 always waits
    if not compat.KOMBU_RESTORE_OPTIONS:
        unacked_restore_interval: float = compat.OLD_KOMBU_RESTORE_INTERVAL
        unacked_restore_throttle: int = compat.OLD_KOMBU_RESTORE_THROTTLE


def restore_sooner(transport: Any, connection: Any, loop: Any) -> None:
    """On Kombu < 5.7, sweep unacked messages every ``unacked_restore_interval`` seconds.

    Kombu 5.7 reads that option when it schedules the sweep; older releases sweep every 10 s
    whatever the option says. An interval under that gets a timer of its own beside Kombu's
    (a sweep holds Kombu's mutex and is throttled, so an extra call is cheap).
    """
    if compat.KOMBU_RESTORE_OPTIONS:
        return
    options = connection.client.transport_options
    interval = float(options.get("unacked_restore_interval") or compat.OLD_KOMBU_RESTORE_INTERVAL)
    if 0 < interval < compat.OLD_KOMBU_RESTORE_INTERVAL:
        loop.call_repeatedly(interval, transport.cycle.maybe_restore_messages)


def restore_throttle(channel: Any, interval: int) -> int:
    """The throttle ``QoS.restore_visible`` should use: Kombu < 5.7 always passes its default."""
    if compat.KOMBU_RESTORE_OPTIONS:
        return interval
    return int(channel.unacked_restore_throttle)
