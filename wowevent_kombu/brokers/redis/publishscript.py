"""The publish script: the log append, every delivery, its bell and the counters in one call.

One ``EVALSHA`` per publish (or per ``publish_many`` batch) replaces a ``MULTI``/``EXEC`` of
several commands per subscriber: Redis runs a script atomically, like a transaction, and the
publisher waits for one reply instead of one per command. The script also reads the binding
table's version and size, which the publisher compares with its cached snapshot.

A Redis transaction, and a script, keeps the writes made before a command that fails at run
time (a key of the wrong type under one of the bus's names). So the script checks the type of
every key it will write before writing any, and refuses the whole call, naming the key, when
one is foreign; nothing is then written. Past the checks only a Redis fault can stop it, and the
writes are ordered so that even then no delivery exists without its log entry: the log first,
then each queue and its bell, then the unroutable counter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wowevent_kombu.brokers.redis import bell
from wowevent_kombu.brokers.redis.atomic import LuaScript
from wowevent_kombu.brokers.redis.logscript import APPEND_LUA, LogArguments
from wowevent_kombu.core import names

_LPUSH_CHUNK = 1000
"""Messages per ``LPUSH`` inside the script (Lua's ``unpack`` has a stack limit)."""

_KINDS = """
local bad
local function kind_ok(key, kind)
  local found = redis.call('TYPE', key)['ok']
  if found == 'none' or found == kind then return true end
  bad = 'WRONGTYPE key ' .. key .. ' holds a ' .. found .. ' where the bus keeps a ' .. kind
  return false
end
local function keys_kind_ok(first, last, kind)
  for i = first, last do
    if not kind_ok(KEYS[i], kind) then return false end
  end
  return true
end
"""

PUBLISH = LuaScript.of(
    _KINDS
    + bell.RING_LUA
    + APPEND_LUA
    + f"""
-- KEYS: binding version, binding table, stats hash, the log keys (APPEND_LUA), then per queue:
-- the queue and its bell.
-- ARGV: log key count, log argument count, unroutable events, most tokens, token, the log
-- arguments, then per queue: its message count and its messages in LPUSH order.
local nkeys, nargs = tonumber(ARGV[1]), tonumber(ARGV[2])
local unroutable, most, token = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local stamp = {{redis.call('GET', KEYS[1]) or '0', redis.call('SCARD', KEYS[2])}}
local queues = 4 + nkeys
-- Every check before the first write: a failing write would keep the ones before it.
local ok = log_types_ok(4, nkeys) and keys_kind_ok(queues, #KEYS, 'list')
if ok and unroutable > 0 and kind_ok(KEYS[3], 'hash') then
  local n = redis.call('HGET', KEYS[3], 'unroutable')
  if n and not (n == '0' or (string.match(n, '^-?[1-9]%d*$') and #n <= 18)) then
    bad = 'ERR field unroutable of ' .. KEYS[3] .. ' is not an integer'
  end
end
if bad then return redis.error_reply(bad .. '; nothing was written') end
append_log(4, 6, nargs)
local a = 6 + nargs
for q = queues, #KEYS, 2 do
  local last = a + tonumber(ARGV[a])
  for i = a + 1, last, {_LPUSH_CHUNK} do
    redis.call('LPUSH', KEYS[q], unpack(ARGV, i, math.min(i + {_LPUSH_CHUNK - 1}, last)))
  end
  ring(KEYS[q + 1], token, most)
  a = last + 1
end
if unroutable > 0 then redis.call('HINCRBY', KEYS[3], 'unroutable', unroutable) end
return stamp
"""
)
"""Log, deliver, ring and count; replies ``[binding version, binding table size]``."""


class PublishCall:
    """Builds the keys and arguments of :data:`PUBLISH` for one exchange."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self._head = (
            names.binding_version_key(exchange),
            names.binding_table_key(exchange),
            names.stats_key(exchange),
        )

    def arguments(
        self, log: LogArguments, pushes: Mapping[str, Sequence[str]], unroutable: int = 0
    ) -> tuple[list[str], list[Any]]:
        """``(keys, args)`` that log per ``log``, push each queue's messages and count.

        Each queue's messages are in ``LPUSH`` order: the first is consumed first.
        """
        keys = [*self._head, *log.keys]
        args: list[Any] = [len(log.keys), len(log.args), unroutable, bell.MOST_TOKENS, bell.TOKEN]
        args += log.args
        for queue, messages in pushes.items():
            if messages:
                keys += (queue, names.bell_key(queue))
                args.append(len(messages))
                args += messages
        return keys, args


def stamp(reply: Any) -> tuple[int, int]:
    """The binding table's ``(version, size)`` from the script's reply."""
    version, size = reply
    return int(version or 0), int(size)
