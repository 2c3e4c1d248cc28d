"""Bells: the lists that wake workers, and the scripts that pop a delivery and record it at once.

Kombu's Redis consumer pops a message with ``BRPOP`` and records it as unacknowledged (``HSET
unacked``, ``ZADD unacked_index``) in a second round trip; a worker killed, or a Redis stopped,
between the two loses the message. A Lua script can pop and record in one atomic step, but a
script cannot block. So every push to a subscriber queue also pushes a token to the queue's
*bell* (:func:`wowevent_kombu.core.names.bell_key`), in the same transaction and after the message;
workers block on the bells, and a token only tells them to run :data:`POP`, which pops the
oldest messages over the queues' priority lists and records them in one step.

A token is a hint, never the message: one lost with a dying connection, or a message pushed by
a client that rings no bell, is found by :data:`RING`, which workers run whenever their wait
times out (``brpop_timeout``) and at that interval while busy. A bell holds at most
:data:`MOST_TOKENS` tokens, so a queue nobody consumes through bells does not grow one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from wowevent_kombu.brokers.redis.atomic import Command, LuaScript
from wowevent_kombu.brokers.redis.entries import ENVELOPE_LUA
from wowevent_kombu.core.names import bell_key

TOKEN = "1"  # noqa: S105 - a doorbell token, not a secret
"""What a ring pushes (its value carries nothing)."""

MOST_TOKENS = 16
"""Tokens a bell may hold: how many competing workers one queue's backlog wakes at once.

One token would pass from worker to worker a pop at a time, and a worker whose prefetch is full
keeps the token its pending wait already took; several let every worker pop in parallel.
"""


def pop_call(
    unacked: str,
    unacked_index: str,
    lists: Sequence[tuple[str, Sequence[str]]],
    most: int,
    record: Sequence[bool],
) -> tuple[list[str], list[Any]]:
    """``(keys, args)`` of :data:`POP` taking up to ``most`` messages, recorded now.

    Args:
        unacked: Kombu's unacked hash.
        unacked_index: Kombu's unacked index.
        lists: Each queue and its priority lists in Kombu's order (as many for every queue).
        most: Most messages to take.
        record: Per queue, whether to record its deliveries as unacknowledged.
    """
    keys = [unacked, unacked_index]
    for queue, queue_lists in lists:
        keys += [bell_key(queue), *queue_lists]
    steps = len(lists[0][1]) if lists else 0
    args: list[Any] = [repr(time.time()), MOST_TOKENS, TOKEN, steps, most]
    return keys, [*args, *("1" if wanted else "0" for wanted in record)]


def ring_call(lists: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[str], list[Any]]:
    """``(keys, args)`` of :data:`RING` over each queue and its priority lists."""
    keys = [k for queue, queue_lists in lists for k in (bell_key(queue), *queue_lists)]
    steps = len(lists[0][1]) if lists else 0
    return keys, [steps, MOST_TOKENS, TOKEN]


def ring(queue: str) -> list[Command]:
    """Commands that ring ``queue``'s bell; send them after the push, in the same transaction."""
    bell = bell_key(queue)
    return [("LPUSH", bell, TOKEN), ("LTRIM", bell, 0, MOST_TOKENS - 1)]


RING_LUA = """
local function ring(bell, token, most)
  redis.call('LPUSH', bell, token)
  redis.call('LTRIM', bell, 0, most - 1)
end
"""
"""Lua function ``ring(bell, token, most)``: :func:`ring` for a script that pushes a message.

Call it after the push, with :data:`TOKEN` and :data:`MOST_TOKENS` passed in as arguments.
"""

# Sets a bell to min(messages left, MOST_TOKENS) tokens (no bell when none is left): a missing
# token would leave a message waiting for the sweep, a surplus one wakes a worker for nothing.
_TOP_UP = """
local function top_up(bell, first, last, most, token)
  local left = 0
  for i = first, last do left = left + redis.call('LLEN', KEYS[i]) end
  if left == 0 then
    redis.call('DEL', bell)
    return 0
  end
  local wanted = math.min(left, most)
  local missing = wanted - redis.call('LLEN', bell)
  if missing < 0 then redis.call('LTRIM', bell, 0, wanted - 1) end
  for _ = 1, missing do redis.call('LPUSH', bell, token) end
  return missing > 0 and 1 or 0
end
"""

POP = LuaScript.of(
    _TOP_UP
    + ENVELOPE_LUA
    + """
-- The record Kombu's QoS.append writes ([payload, exchange, routing_key] under the delivery
-- tag), or false when the entry is not a usable envelope; nil and an error when Redis refused.
local function record(item, now)
  local tag, exchange, routing_key = envelope(item)
  if not tag then return false end
  local entry = '[' .. item .. ',' .. cjson.encode(exchange) .. ','
    .. cjson.encode(routing_key) .. ']'
  local indexed = redis.pcall('ZADD', KEYS[2], now, tag)
  local kept = redis.pcall('HSET', KEYS[1], tag, entry)
  local err = (type(indexed) == 'table' and indexed['err'])
    or (type(kept) == 'table' and kept['err'])
  if err then
    redis.pcall('HDEL', KEYS[1], tag)
    redis.pcall('ZREM', KEYS[2], tag)
    return nil, err
  end
  return tag
end

-- KEYS: unacked hash, unacked index, then per queue its bell and its priority lists in
-- Kombu's order. ARGV: time (the index score), most tokens, the token, lists per queue, most
-- messages, then per queue '1' to record its deliveries.
local now, most, steps, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out, taken, q = {}, 0, 0
for base = 3, #KEYS, steps + 1 do
  if taken >= limit then break end
  q = q + 1
  local failed
  while taken < limit do
    local item, from
    for i = base + 1, base + steps do
      item = redis.call('RPOP', KEYS[i])
      if item then from = KEYS[i] break end
    end
    if not item then break end
    local tag = false
    if ARGV[5 + q] == '1' then
      local err
      tag, err = record(item, now)
      if err then
        -- Put it back where it was rather than deliver what could not be recorded.
        redis.call('RPUSH', from, item)
        failed = err
        break
      end
    end
    out[#out + 1] = q
    out[#out + 1] = item
    out[#out + 1] = tag
    taken = taken + 1
  end
  top_up(KEYS[base], base + 1, base + steps, most, ARGV[3])
  if failed then
    if taken == 0 then
      return redis.error_reply('could not record the delivery as unacknowledged: ' .. failed)
    end
    break
  end
end
return out
"""
)
"""Pop up to a number of messages over some queues, recording each as unacknowledged, at once.

Queues are served in the order given, each until it is empty or the number is reached; each
one looked at gets its bell topped up (or dropped when it is empty). Replies a flat list of
``queue number (1-based), entry, tag`` triples; ``tag`` is false when the entry was not recorded
(recording not asked for, or the entry is not a usable envelope). When Redis refuses to record
the first message, the message is put back and the reply is an error; a later refusal ends the
batch with what was recorded before it.
"""

RING = LuaScript.of(
    _TOP_UP
    + """
-- KEYS: per queue, its bell then its priority lists. ARGV: lists per queue, most tokens, token.
local steps, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local rung = 0
for base = 1, #KEYS, steps + 1 do
  rung = rung + top_up(KEYS[base], base + 1, base + steps, most, ARGV[3])
end
return rung
"""
)
"""Ring the bell of every queue holding messages (pushed without one); drop the others' bells."""

FORGET = LuaScript.of(
    """
-- KEYS: unacked hash, unacked index. ARGV: the delivery tag.
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('HDEL', KEYS[1], ARGV[1])
"""
)
"""Drop an acknowledged delivery's unacked record: Kombu's ``ZREM`` + ``HDEL``, as one call."""
