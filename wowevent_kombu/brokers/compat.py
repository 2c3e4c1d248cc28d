"""What differs between the Celery, Kombu and redis-py releases the bus supports, in one place.

Not to be confused with :mod:`wowevent_kombu.schemas.compatibility` (schema compatibility
modes). The seam (:mod:`wowevent_kombu.brokers`) reads, writes and overrides private members of
Celery and Kombu (see ``docs/compatibility.md`` for the list and ``tests/test_seam_contract.py``
for their contract).
Those members differ between releases; every difference the bus has to know about is decided
here, once, from the installed versions, and the rest of the package asks this module instead
of testing versions itself. A release outside :data:`SUPPORTED` is refused
(:func:`require_supported`) rather than half-working.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import celery
import kombu
import redis

from wowevent_kombu.core.errors import ConfigurationError

Version = tuple[int, ...]


def parse_version(text: str) -> Version:
    """``"5.5.3"`` as ``(5, 5, 3)``; pre-release and local parts are dropped."""
    numbers = re.match(r"\d+(?:\.\d+)*", text)
    if numbers is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(n) for n in numbers.group().split("."))


@dataclass(frozen=True)
class Range:
    """Releases from ``low`` (included) up to ``high`` (excluded)."""

    low: Version
    high: Version

    def __contains__(self, version: object) -> bool:
        return isinstance(version, tuple) and self.low <= version < self.high

    def __str__(self) -> str:
        return f">={'.'.join(map(str, self.low))},<{'.'.join(map(str, self.high))}"


SUPPORTED: Mapping[str, Range] = {
    "celery": Range((5, 4), (5, 8)),
    "kombu": Range((5, 4, 2), (5, 8)),
}
"""The releases proved by ``make test-matrix`` (keep setup.cfg's install_requires equal)."""

CELERY = parse_version(celery.__version__)
KOMBU = parse_version(kombu.__version__)
REDIS_PY = parse_version(redis.__version__)


def installed() -> str:
    """The installed versions, as error messages and contract tests name them."""
    return f"Celery {celery.__version__}, Kombu {kombu.__version__}, redis-py {redis.__version__}"


def unsupported(found: Mapping[str, Version] | None = None) -> str | None:
    """Why the installed Celery or Kombu cannot run the bus, or ``None`` when they can.

    Args:
        found: ``{"celery": version, "kombu": version}``; the installed ones by default.
    """
    if found is None:
        found = {"celery": CELERY, "kombu": KOMBU}
    wrong = [name for name, version in found.items() if version not in SUPPORTED[name]]
    if not wrong:
        return None
    wanted = ", ".join(f"{name}{SUPPORTED[name]}" for name in SUPPORTED)
    return (
        f"wowevent_kombu supports {wanted} (see docs/compatibility.md), but "
        f"{_named(found)} is installed; install a supported {' and '.join(wrong)}"
    )


def _named(found: Mapping[str, Version]) -> str:
    return ", ".join(f"{name.capitalize()} {'.'.join(map(str, v))}" for name, v in found.items())


CELERY_QUORUM_QUEUES = CELERY >= (5, 5)
"""Celery 5.5 consumes quorum queues (per-consumer QoS, ``worker_detect_quorum_queues``) and
delays their retries natively; Celery 5.4 sets a global QoS, which RabbitMQ refuses on a
quorum queue (``NOT_IMPLEMENTED - queue ... does not support global qos``)."""


def require_supported(*, amqp: bool = False) -> None:
    """Refuse an unsupported Celery or Kombu before a worker or publisher touches its internals.

    Args:
        amqp: The bus runs on RabbitMQ, whose subscriber queues are quorum queues.

    Raises:
        ConfigurationError: the installed Celery or Kombu is outside :data:`SUPPORTED`, or
            cannot consume the bus's RabbitMQ queues.
    """
    problem = unsupported()
    if problem is not None:
        raise ConfigurationError(problem)
    if amqp and not CELERY_QUORUM_QUEUES:
        raise ConfigurationError(
            f"the bus's RabbitMQ subscriber queues are quorum queues, which Celery "
            f"{celery.__version__} cannot consume (it asks for a global QoS, which RabbitMQ "
            "refuses on quorum queues): use Celery >= 5.5 on RabbitMQ, or Redis with "
            "Celery 5.4 (see docs/compatibility.md)"
        )


# -- redis-py ---------------------------------------------------------------------------------

_POOL_WANTS_COMMAND = REDIS_PY < (5, 3)
"""redis-py before 5.3 requires ``get_connection(command_name)``; 5.3 on deprecates the
argument (a warning on every call)."""


def pool_connection(pool: Any) -> Any:
    """A connection checked out of a redis-py ``ConnectionPool``, on every supported redis-py."""
    if _POOL_WANTS_COMMAND:
        return pool.get_connection("_")  # the name is unused by the pool itself
    return pool.get_connection()


# -- Kombu's Redis transport (wowevent_kombu.brokers.redis) -----------------------------------

KOMBU_BRPOP_TIMEOUT = KOMBU >= (5, 6)
"""Kombu 5.6 added ``Channel.brpop_timeout`` (``Transport.brpop_timeout``, or the transport's
``polling_interval``); before, ``Channel._brpop_start(timeout=1)`` always waited one second."""

KOMBU_QUEUE_EXPIRES = KOMBU >= (5, 7)
"""Kombu 5.7 added queue ``x-expires`` on Redis: ``Channel._expires`` (queue -> ms) and
``Channel._maybe_update_queues_expire(client, queue)``, called after every pop."""

KOMBU_RESTORE_OPTIONS = KOMBU >= (5, 7)
"""Kombu 5.7 added the ``unacked_restore_interval`` and ``unacked_restore_throttle`` transport
options; before, the unacked sweep ran every 10 s and scanned every 10th run (~100 s)."""

OLD_KOMBU_RESTORE_INTERVAL = 10
"""Seconds between ``maybe_restore_messages`` calls in Kombu < 5.7 (fixed)."""

OLD_KOMBU_RESTORE_THROTTLE = 10
"""``QoS.restore_visible``'s default ``interval`` in Kombu < 5.7: every 10th call scans."""


# -- Celery's worker (wowevent_kombu.brokers.celery) ------------------------------------------

CELERY_DEFAULT_CONSUME_FROM = CELERY >= (5, 7)
"""Celery 5.7's ``Queues`` keeps the queues a worker without ``-Q`` consumes in
``_default_consume_from``; before, ``Queues.consume_from`` was the ``Queues`` dict itself."""

CELERY_RETRY_ON_WORKER_LOST = CELERY >= (5, 7)
"""Celery 5.7 added ``Task.retry_on_worker_lost`` and ``Request._retry_worker_lost`` /
``Request._worker_lost_info``; before, a lost pool child was only acked or requeued."""
