"""One request budget per helpdesk account, shared by every process that calls its API.

Helpdesks limit requests per account per minute (Zendesk: Update Ticket 100/min; Help Scout: per
plan, writes weigh 2), and a 429 stops the whole account, not one process. So the budget lives
where all worker processes see it: Redis (the broker's server, and Redis's own clock, so machines
with skewed clocks still agree). A sliding window log per bucket: a request waits until the
requests of the last window, its own weight included, fit under the limit. A 429's Retry-After
pauses every process of the account until it has passed.

With the in-process broker (`mailagent run`, one process) a local budget does the same in memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from typing import Protocol

import redis

# KEYS: the bucket's log (zset), the account's pause key. ARGV: limit, weight, window ms, a unique id.
# Returns 0 when the request may go now (and records it), else the milliseconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
local limit, weight, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + weight > limit then
  local freed = redis.call('ZRANGE', KEYS[1], used + weight - limit - 1, used + weight - limit - 1, 'WITHSCORES')
  return math.max(1, tonumber(freed[2]) + window - now)
end
for i = 1, weight do redis.call('ZADD', KEYS[1], now, ARGV[4] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""
# KEYS: the pause key. ARGV: milliseconds. Never shortens a pause another process set.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1])) end
return until_ms
"""


class BudgetExhausted(Exception):
    """Waited longer than allowed for the budget: give the work back to the queue."""


class Budget(Protocol):
    def wait_ms(self, bucket: str, limit: int, weight: int) -> int:
        """0 when a request of `weight` may go now (it is counted), else how long to wait."""
        ...

    def pause(self, seconds: float) -> None:
        """The helpdesk said 429: nobody calls this account for `seconds`."""
        ...


def acquire(budget: Budget, bucket: str, limit: int, weight: int = 1, *, max_wait_seconds: float = 120.0,
            sleep: object = time.sleep) -> float:
    """Block until the budget allows the request; returns the seconds waited."""
    if weight > limit:
        raise ValueError(f"a request of weight {weight} can never fit a budget of {limit}")
    waited = 0.0
    while (wait := budget.wait_ms(bucket, limit, weight)) > 0:
        if waited >= max_wait_seconds:
            raise BudgetExhausted(f"waited {waited:.0f} s for the {bucket} budget ({limit} per window)")
        step = min(wait / 1000, max_wait_seconds - waited + 0.001, 5.0)
        sleep(step)  # type: ignore[operator]
        waited += step
    return waited


class RedisBudget:
    """The shared budget of one helpdesk account in Redis (keys under `prefix`)."""

    def __init__(self, url: str, prefix: str, window_seconds: float) -> None:
        self._redis = _client(url)
        self._prefix = prefix
        self._window_ms = int(window_seconds * 1000)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._pause = self._redis.register_script(_PAUSE)

    def wait_ms(self, bucket: str, limit: int, weight: int) -> int:
        keys = [f"{self._prefix}:{bucket}", f"{self._prefix}:paused"]
        return int(self._acquire(keys=keys, args=[limit, weight, self._window_ms, uuid.uuid4().hex]))

    def pause(self, seconds: float) -> None:
        self._pause(keys=[f"{self._prefix}:paused"], args=[max(1, int(seconds * 1000))])


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        return _clients[url]


class LocalBudget:
    """The same budget inside one process (the in-process broker: nobody else calls the API)."""

    def __init__(self, window_seconds: float, clock: object = time.monotonic) -> None:
        self._window = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._log: dict[str, deque[float]] = {}
        self._paused_until = 0.0

    def wait_ms(self, bucket: str, limit: int, weight: int) -> int:
        with self._lock:
            now = self._clock()  # type: ignore[operator]
            if self._paused_until > now:
                return max(1, int((self._paused_until - now) * 1000))
            log = self._log.setdefault(bucket, deque())
            while log and log[0] <= now - self._window:
                log.popleft()
            if len(log) + weight > limit:
                freed = log[len(log) + weight - limit - 1]
                return max(1, int((freed + self._window - now) * 1000))
            log.extend([now] * weight)
            return 0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)  # type: ignore[operator]
