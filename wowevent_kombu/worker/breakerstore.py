"""Circuit-breaker state in Redis, one per subscriber, shared by every worker of the bus.

Every change is one call of :data:`_SCRIPT`, run atomically by Redis on Redis's clock
(``TIME``), so workers on several machines agree on when a breaker opened and when it may go
half-open. The script also performs that lazy transition (open -> half-open once ``until``
has passed) for whichever process asks first; the process that performs a transition logs it.
Keys come from :mod:`wowevent_kombu.core.names`: the state hash, the closed breaker's window of
per-bucket counts, and the set of subscribers with state.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from wowevent_kombu.core import names
from wowevent_kombu.core.breaker import CLOSED, OPEN, BreakerState, CircuitBreaker

log = logging.getLogger(__name__)

WINDOW_BUCKETS = 30
"""A window is counted in this many buckets (attempts older than the window drop per bucket)."""

# KEYS: state hash, window hash, set of subscribers with state.
# ARGV: op (read|admit|record|release|force), subscriber, failure_rate, min_attempts,
#       window_ms, open_for_ms, trials, max_open_for_ms, op argument, trial flag.
# Returns {result, transition, HGETALL of the state hash...}.
_SCRIPT = """
local h, w, members = KEYS[1], KEYS[2], KEYS[3]
local op, subscriber = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', h, 'state') or 'closed'
local transition = ''
local result = ''

local function move(to, reason)
  redis.call('HSET', h, 'reason', reason)
  if state ~= to then
    state = to
    transition = to
    redis.call('HSET', h, 'state', to, 'changed_at', now)
    redis.call('HINCRBY', h, 'transitions:' .. to, 1)
    redis.call('SADD', members, subscriber)
  end
end

local function open(reopens, reason)
  local ms = tonumber(ARGV[6]) * (2 ^ math.min(reopens, 64))
  ms = math.min(ms, tonumber(ARGV[8]))
  move('open', reason)
  redis.call('HSET', h, 'until', now + ms, 'reopens', reopens)
  if redis.call('HEXISTS', h, 'opened_at') == 0 then redis.call('HSET', h, 'opened_at', now) end
  redis.call('HDEL', h, 'forced', 'claimed', 'passed')
  redis.call('DEL', w)
end

local function close(reason)
  move('closed', reason)
  redis.call('HDEL', h, 'opened_at', 'until', 'reopens', 'forced', 'claimed', 'passed')
  redis.call('DEL', w)
end

if state == 'open' then
  local due = tonumber(redis.call('HGET', h, 'until') or '')
  if due and now >= due then
    move('half_open', 'open_for elapsed: trying deliveries')
    redis.call('HSET', h, 'claimed', 0, 'passed', 0, 'claimed_at', now)
  end
end

if op == 'admit' then
  if state == 'closed' then
    result = 'run'
  elseif state == 'open' then
    result = 'wait'
  else
    local trials = tonumber(ARGV[7])
    local claimed = tonumber(redis.call('HGET', h, 'claimed') or '0')
    local at = tonumber(redis.call('HGET', h, 'claimed_at') or '0')
    if claimed >= trials and now - at > tonumber(ARGV[5]) then
      -- trials claimed by deliveries that never reported (a crash): claim again
      claimed = tonumber(redis.call('HGET', h, 'passed') or '0')
      redis.call('HSET', h, 'claimed', claimed)
    end
    if claimed < trials then
      redis.call('HINCRBY', h, 'claimed', 1)
      redis.call('HSET', h, 'claimed_at', now)
      result = 'trial'
    else
      result = 'wait'
    end
  end
elseif op == 'record' then
  local failed = ARGV[9] == '1'
  if state == 'closed' then
    local window = tonumber(ARGV[5])
    local width = math.max(1, math.floor(window / @BUCKETS@))
    local bucket = math.floor(now / width)
    redis.call('HINCRBY', w, 'a:' .. bucket, 1)
    if failed then redis.call('HINCRBY', w, 'f:' .. bucket, 1) end
    redis.call('PEXPIRE', w, window * 2 + width)
    local oldest = math.floor((now - window) / width)
    local attempts, failures = 0, 0
    local all = redis.call('HGETALL', w)
    for i = 1, #all, 2 do
      local kind, b = string.match(all[i], '^(%a):(%d+)$')
      b = tonumber(b)
      if b == nil or b < oldest then
        redis.call('HDEL', w, all[i])
      elseif kind == 'a' then
        attempts = attempts + tonumber(all[i + 1])
      else
        failures = failures + tonumber(all[i + 1])
      end
    end
    if failed and attempts >= tonumber(ARGV[4]) and failures >= tonumber(ARGV[3]) * attempts then
      open(0, failures .. ' of ' .. attempts .. ' attempts failed within ' .. window / 1000 .. ' s')
    end
  elseif state == 'half_open' and ARGV[10] == '1' then
    if failed then
      local reopens = tonumber(redis.call('HGET', h, 'reopens') or '0') + 1
      open(reopens, 'a trial delivery failed (' .. reopens .. ' failed round(s) in a row)')
    else
      local passed = redis.call('HINCRBY', h, 'passed', 1)
      if passed >= tonumber(ARGV[7]) then close(passed .. ' trial deliveries succeeded') end
    end
  end
elseif op == 'release' then
  if state == 'half_open' and tonumber(redis.call('HGET', h, 'claimed') or '0') > 0 then
    redis.call('HINCRBY', h, 'claimed', -1)
  end
elseif op == 'force' then
  if ARGV[9] == 'open' then
    move('open', 'forced open by an operator')
    if redis.call('HEXISTS', h, 'opened_at') == 0 then redis.call('HSET', h, 'opened_at', now) end
    redis.call('HSET', h, 'forced', 1)
    redis.call('HDEL', h, 'until', 'claimed', 'passed')
    redis.call('DEL', w)
  else
    close('closed by an operator')
  end
  redis.call('SADD', members, subscriber)
end
local out = {result, transition}
for _, item in ipairs(redis.call('HGETALL', h)) do out[#out + 1] = item end
return out
""".replace("@BUCKETS@", str(WINDOW_BUCKETS))

_NO_CONFIG = ("", "", "", "", "", "")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one script call answered: the decision, the transition it made, the state after."""

    result: str
    transition: str
    state: BreakerState


class BreakerStore:
    """Reads and changes the breakers of one exchange.

    Args:
        client: A Redis client on the bus's Redis.
        exchange: The bus's exchange (every key derives from it).
    """

    def __init__(self, client: redis.Redis, exchange: str) -> None:
        self.client = client
        self.exchange = exchange
        self._script = client.register_script(_SCRIPT)

    def admit(self, subscriber: str, config: CircuitBreaker) -> Outcome:
        """Whether a delivery may run now: ``run`` (closed), ``trial`` (half-open) or ``wait``."""
        return self._call("admit", subscriber, config)

    def record(
        self, subscriber: str, config: CircuitBreaker, *, failed: bool, trial: bool
    ) -> Outcome:
        """Count a delivery's outcome; may open (closed, half-open) or close (half-open) it."""
        return self._call("record", subscriber, config, "1" if failed else "0", trial)

    def release(self, subscriber: str) -> Outcome:
        """Give back a trial whose delivery ended without an outcome that counts."""
        return self._call("release", subscriber, None)

    def force(self, subscriber: str, action: str) -> Outcome:
        """Force the breaker ``open`` (until closed by hand) or ``close`` it now."""
        if action not in ("open", "close"):
            raise ValueError(f"action must be 'open' or 'close', not {action!r}")
        return self._call("force", subscriber, None, action)

    def read(self, subscriber: str) -> BreakerState:
        """The breaker's state now (a due half-open transition is made and logged)."""
        return self._call("read", subscriber, None).state

    def read_many(self, subscribers: Sequence[str]) -> dict[str, BreakerState]:
        """Several breakers in one round trip."""
        if not subscribers:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for name in subscribers:
            self._script(keys=self._keys(name), args=("read", name, *_NO_CONFIG), client=pipe)
        replies = pipe.execute()
        return {
            name: self._outcome(name, "read", r).state
            for name, r in zip(subscribers, replies, strict=True)
        }

    def read_known(self, subscribers: Iterable[str]) -> dict[str, BreakerState]:
        """Those of ``subscribers`` that have breaker state (two round trips, none if no state)."""
        known = set(self.known())
        return self.read_many([s for s in subscribers if s in known])

    def known(self) -> list[str]:
        """Subscribers that have breaker state (ever opened, or forced)."""
        return sorted(m.decode() if isinstance(m, bytes) else str(m)
                      for m in self.client.smembers(names.breakers_key(self.exchange)))  # fmt: skip

    def _keys(self, subscriber: str) -> list[str]:
        return [
            names.breaker_key(self.exchange, subscriber),
            names.breaker_window_key(self.exchange, subscriber),
            names.breakers_key(self.exchange),
        ]

    def _call(
        self,
        op: str,
        subscriber: str,
        config: CircuitBreaker | None,
        argument: str = "",
        trial: bool = False,
    ) -> Outcome:
        settings: Iterable[Any] = _NO_CONFIG
        if config is not None:
            settings = (
                repr(float(config.failure_rate)), config.min_attempts, int(config.window * 1000),
                int(config.open_for * 1000), config.trials, int(config.max_open_for * 1000),
            )  # fmt: skip
        reply = self._script(
            keys=self._keys(subscriber),
            args=(op, subscriber, *settings, argument, "1" if trial else "0"),
        )
        return self._outcome(subscriber, op, reply)

    def _outcome(self, subscriber: str, op: str, reply: Any) -> Outcome:
        items = [i.decode() if isinstance(i, bytes) else str(i) for i in reply]
        result, transition, fields = (
            items[0],
            items[1],
            dict(zip(items[2::2], items[3::2], strict=False)),
        )
        state = parse_state(subscriber, fields)
        if transition:
            level = logging.WARNING if transition == OPEN else logging.INFO
            log.log(
                level, "circuit breaker of subscriber %r (exchange %r) is now %s: %s",
                subscriber, self.exchange, transition, state.reason,
            )  # fmt: skip
        return Outcome(result, transition, state)


def parse_state(subscriber: str, fields: dict[str, str]) -> BreakerState:
    """A :class:`BreakerState` from the state hash's fields (times in milliseconds)."""

    def seconds(name: str) -> float | None:
        raw = fields.get(name)
        try:
            return float(raw) / 1000 if raw else None
        except ValueError:
            return None

    transitions = {
        key.split(":", 1)[1]: int(value)
        for key, value in fields.items()
        if key.startswith("transitions:") and value.lstrip("-").isdigit()
    }
    reopens = fields.get("reopens", "0")
    return BreakerState(
        subscriber=subscriber,
        state=fields.get("state", CLOSED),
        changed_at=seconds("changed_at"),
        opened_at=seconds("opened_at"),
        until=seconds("until"),
        reopens=int(reopens) if reopens.isdigit() else 0,
        forced=fields.get("forced") == "1",
        reason=fields.get("reason", ""),
        transitions=transitions,
    )
