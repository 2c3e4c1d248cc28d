"""Writing the event log: one Lua call per publish transaction appends events and indexes them.

The log is a Redis Stream; its position (stream id) is only known once ``XADD`` ran, so the
indexes that map an event id and a correlation id to positions are written by the same server
side script, inside the publish ``MULTI``. Retention is applied there too, cheaply: ``XADD
MAXLEN ~`` for the count and ``XTRIM MINID ~`` for the age (both drop whole stream nodes only),
the indexes expire with the same age, and index entries whose event was trimmed by count are
skipped (and pruned) by readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import names
from .settings import Settings

if TYPE_CHECKING:
    from .transport import Outgoing

BUCKETS = 24
"""The event-id index and processed-id sets are split into about this many time buckets."""

_APPEND = """
local log = KEYS[1]
local maxlen = ARGV[1]
local age = tonumber(ARGV[2])
local ids_prefix = ARGV[3]
local width = tonumber(ARGV[4])
local corr_prefix = ARGV[5]
local n = (#ARGV - 5) / 4
local touched = {}
local first_ms = nil
for i = 0, n - 1 do
  local a = 6 + i * 4
  local pos = redis.call('XADD', log, 'MAXLEN', '~', maxlen, '*',
                         'type', ARGV[a], 'event', ARGV[a + 1])
  local ms = tonumber(string.match(pos, '^(%d+)'))
  if first_ms == nil then first_ms = ms end
  local bucket = math.floor(ms / width)
  local ids_key = ids_prefix .. string.format('%d', bucket)
  redis.call('HSET', ids_key, ARGV[a + 2], pos)
  touched[ids_key] = bucket
  local cid = ARGV[a + 3]
  if cid ~= '' then
    local ckey = corr_prefix .. cid
    redis.call('ZADD', ckey, ms, pos)
    redis.call('ZREMRANGEBYSCORE', ckey, '-inf', '(' .. string.format('%d', ms - age))
    redis.call('PEXPIRE', ckey, string.format('%d', age))
  end
end
for key, bucket in pairs(touched) do
  redis.call('PEXPIREAT', key, string.format('%d', (bucket + 1) * width + age))
end
if first_ms ~= nil then
  redis.call('XTRIM', log, 'MINID', '~', string.format('%d', first_ms - age))
end
return n
"""


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
    """Queues the log writes of one publish transaction on its pipeline."""

    def append(self, pipe: Any, batch: Sequence[Outgoing]) -> None:
        """Add the commands that log ``batch`` to ``pipe`` (a ``MULTI`` pipeline)."""


class LogWriter:
    """The production :class:`LogAppender`: one ``EVAL`` per transaction.

    ``EVAL`` (not ``EVALSHA``) is used on purpose: inside ``MULTI`` an unknown script hash
    would fail only that command while the deliveries of the same transaction still commit.
    Redis caches the compiled script, so sending its text costs a few microseconds.
    """

    def __init__(self, settings: Settings) -> None:
        exchange = settings.exchange
        self._head = (
            names.log_key(exchange),
            settings.log_maxlen,
            math.ceil(settings.log_max_age * 1000),
            names.log_ids_prefix(exchange),
            bucket_width_ms(settings.log_max_age),
            names.log_correlation_prefix(exchange),
        )

    def append(self, pipe: Any, batch: Sequence[Outgoing]) -> None:
        args: list[Any] = [*self._head]
        for item in batch:
            event = item.event
            args += (event.type, item.json, event.id, event.correlation_id or "")
        pipe.eval(_APPEND, 1, *args)
