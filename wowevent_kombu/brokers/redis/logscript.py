"""Writing the event log: the log section of the publish script appends events and indexes them.

The log is a Redis Stream; its position (stream id) is only known once ``XADD`` ran, so the indexes
that map an event id and a correlation id to positions are written by the same server side script,
the publish script (:mod:`wowevent_kombu.brokers.redis.publishscript`). Both indexes are split into
time buckets (a HASH event id -> position, and a LIST of positions per correlation id) whose keys
expire when the newest entry they can hold is older than the retention. Retention of the log itself
is applied there too, cheaply: ``XADD MAXLEN ~`` for the count and ``XTRIM MINID ~`` for the age
(both drop whole stream nodes only); index entries whose event was trimmed are skipped by readers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from wowevent_kombu.core import names
from wowevent_kombu.core.settings import Settings

if TYPE_CHECKING:
    from wowevent_kombu.brokers.outgoing import Outgoing

BUCKETS = 24
"""The event-id index and processed-id sets are split into about this many time buckets."""

# Lua for the publish script. Its log keys, from KEYS[k]: the log, the event-id bucket, then one
# correlation bucket per correlated event. Its log arguments, from ARGV[a], n of them: maxlen;
# expire-at to set on the event-id bucket ('' = set recently); expire-at of this time bucket's
# keys (ms); minid to trim to ('' = not this time); then per event: type, CloudEvent JSON,
# event id, index among the log keys of its correlation bucket (0 = none).
APPEND_LUA = """
local function log_types_ok(k, count)
  if count == 0 then return true end
  return kind_ok(KEYS[k], 'stream') and kind_ok(KEYS[k + 1], 'hash')
    and keys_kind_ok(k + 2, k + count - 1, 'list')
end
local function append_log(k, a, n)
  if n == 0 then return end
  local log, ids = KEYS[k], KEYS[k + 1]
  local maxlen, expire_at = ARGV[a], ARGV[a + 1]
  for i = a + 4, a + n - 1, 4 do
    local pos = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*',
                           'type', ARGV[i], 'event', ARGV[i + 1])
    redis.call('HSET', ids, ARGV[i + 2], pos)
    local slot = tonumber(ARGV[i + 3])
    if slot > 0 and redis.call('RPUSH', KEYS[k + slot - 1], pos) == 1 then
      redis.call('PEXPIREAT', KEYS[k + slot - 1], ARGV[a + 2])
    end
  end
  if expire_at ~= '' then redis.call('PEXPIREAT', ids, expire_at) end
  if ARGV[a + 3] ~= '' then redis.call('XTRIM', log, 'MINID', '~', ARGV[a + 3]) end
end
"""
"""Lua functions ``log_types_ok(k, count)`` and ``append_log(k, a, n)`` of the publish script.

They need the script's ``kind_ok(key, type)`` and ``keys_kind_ok(first, last, type)``.
"""


class LogArguments(NamedTuple):
    """The publish script's log section for one call: its keys and its arguments.

    Both empty: the call logs nothing.
    """

    keys: Sequence[str]
    args: Sequence[Any]


NO_LOG = LogArguments((), ())
"""The log section of a call that logs nothing (deliveries of events already logged)."""


def bucket_width_ms(max_age: float) -> int:
    """Width of one time bucket: at least an hour, about ``1/BUCKETS`` of the retention."""
    return max(3_600_000, math.ceil(max_age * 1000 / BUCKETS))


def recent_buckets(now_ms: int, max_age: float) -> list[int]:
    """Every bucket that may still hold an entry, newest first (one spare on each side).

    The spare buckets absorb a difference between this host's clock and the Redis server's.
    """
    width = bucket_width_ms(max_age)
    newest = now_ms // width + 1
    oldest = (now_ms - math.ceil(max_age * 1000)) // width - 1
    return list(range(newest, oldest - 1, -1))


class LogAppender(Protocol):
    """The log writes of one publish call."""

    def arguments(self, batch: Sequence[Outgoing]) -> LogArguments:
        """The keys and arguments that make the publish script log ``batch`` (see APPEND_LUA)."""


class LogWriter:
    """The production :class:`LogAppender`: the indexed append of :data:`APPEND_LUA`.

    Index keys are per time bucket of this host's clock (readers probe one spare bucket on
    each side). A correlation bucket gets its expiry when its list is created, the event-id
    bucket on a writer's first append to it and once a minute after; age trimming runs about
    once a second per writer (at least ten times per retention period). Every Redis command
    saved here counts: the script runs inside every publish.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._exchange = settings.exchange
        self._log = names.log_key(settings.exchange)
        self._maxlen = settings.log_maxlen
        self._age_ms = math.ceil(settings.log_max_age * 1000)
        self._width = bucket_width_ms(settings.log_max_age)
        self._clock = clock
        # Trimming by age is approximate anyway: run it about once a second, or more often
        # for a short retention, instead of in every transaction.
        self._trim_every = min(1000, self._age_ms // 10)
        self._expired_bucket = -1
        self._next_expire = 0
        self._next_trim = 0

    def arguments(self, batch: Sequence[Outgoing]) -> LogArguments:
        now = int(self._clock() * 1000)
        bucket = now // self._width
        keys = [self._log, names.log_ids_key(self._exchange, bucket)]
        trim = ""
        if now >= self._next_trim:
            trim, self._next_trim = str(now - self._age_ms), now + self._trim_every
        expire_at = (bucket + 1) * self._width + self._age_ms
        expire_ids: int | str = ""
        if now >= self._next_expire or bucket != self._expired_bucket:
            # Set on the first append to a bucket and again every minute, so a bucket key
            # recreated after a Redis data loss gets its expiry back soon.
            expire_ids, self._expired_bucket, self._next_expire = expire_at, bucket, now + 60_000
        args: list[Any] = [self._maxlen, expire_ids, expire_at, trim]
        slots: dict[str, int] = {}
        for item in batch:
            event = item.event
            slot = 0
            if event.correlation_id:
                key = names.log_correlation_key(self._exchange, event.correlation_id, bucket)
                slot = slots.get(key, 0)
                if not slot:
                    keys.append(key)
                    slot = slots[key] = len(keys)
            args += (event.type, item.json, event.id, slot)
        return LogArguments(keys, args)
