"""`RedisLedger`: budgets shared by every instance of an app through one Redis (not Cluster).

Every operation that reads and writes budget state is one Lua script, which Redis runs atomically
(no other command in between): `reserve` charges the reservations expired by now (moving each
from held into spend and history, exactly once, keeping a mark for a late settle), then checks
every enforced key's `spent + reserved + amount <= limit` over the window's buckets and holds the
amount on every key, all or nothing; `settle` and `release` are one script each and idempotent (a
reservation no longer held is left alone, or, if it expired and was charged, corrected once).
Scripts run by EVALSHA; redis-py loads one again when the server answers NOSCRIPT (a restart, or
SCRIPT FLUSH). A reserve retried after a lost reply finds its reservation id already held and
returns it instead of holding twice.

Money is integer nano-USD, stored with HINCRBY (never INCRBYFLOAT). Lua's numbers are doubles:
sums and comparisons are exact up to 2**53 nano-USD (about $9 million) per key and window, so
`reserve` refuses (ValueError) a limit or amount above that. Numbers cross into Lua as decimal
strings and come back the same way.

Keys, all under the prefix (`costlens:` unless the URL says `?prefix=...`): `epoch` (below),
`held` (key -> amount held), `spend:<key>` (bucket -> spend), `hist:<key>` (5-minute bucket ->
spend, `<bucket>:n` -> calls), `res` (reservation id -> JSON) and `exp` (id by expiry), `gone` and
`gone_at` (marks of expired reservations, kept `EXPIRED_KEEP_US`), `limits`, `keys`, `alerts`
(fire_once marks by time), `defs` (definitions, JSON).

Redis restarts without persistence. Redis here is a fast shared counter, not the durable record:
each call's cost stays in the call store. When Redis restarts it comes back empty, and every
window's spend is gone. The ledger detects that: the first ledger to use a Redis db writes an epoch
marker (`<prefix>epoch`), every script checks that the marker is still the one this ledger knows,
and a ledger that finds it missing (or replaced by one made on an empty Redis) knows the state was
lost. Then, by the URL's `on_reset`:

- `on_reset=fail` (the default): it logs a warning (once per loss), marks the db as lost (the
  marker becomes `lost`, so every other instance, including ones started later, stops too) and
  `reserve`, `settle`, `release` and `usage` raise `LedgerUnavailable`: enforced budgets fail
  closed (the engine refuses calls unless `fail_open`) until someone accepts the loss:
  `RedisLedger.accept_reset()` (or one instance running with `on_reset=continue`) writes a new
  epoch that every instance adopts, with a warning.
- `on_reset=continue`: it logs a warning (once per loss) and starts a new epoch: every window
  starts again from zero. Spend already recorded in the store is NOT loaded back, and calls that
  were in flight at the restart are never charged (their settle finds nothing to settle).

One gap is stated rather than hidden: a process that never saw the old marker (started after the
restart, before any instance that knew the old one made a call) cannot tell an empty Redis from a
new one, and starts a new epoch; the first instance that knew the old marker then marks the db
lost (fail) or adopts that epoch (continue). Alert marks (`fire_once`), definitions and history
are lost with the rest; an alert may fire again after a loss.

URL: `redis://[user:password@]host:6379/0?prefix=costlens:&on_reset=fail` (`rediss://` for TLS).
Failures to reach the server raise `LedgerUnavailable` naming host:port, never the password; the
`url` attribute and `repr` hide it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from costlens._errors import ConfigError
from costlens.budgets._errors import LedgerUnavailable
from costlens.budgets._ledger import (
    EXPIRED_KEEP_US,
    BudgetDefinition,
    BudgetKey,
    Reservation,
    Spent,
    check_limits,
    check_reserve,
    history_bucket,
    new_reservation_id,
    now_us,
)
from costlens.budgets._ledger_common import (
    check_settle,
    make_definition,
    redact_url,
    unavailable,
    warn_limits,
)

__all__ = ["RedisLedger", "from_url"]

log = logging.getLogger("costlens")
OnReset = Literal["fail", "continue"]
#: The largest amount or limit a Lua script (doubles) handles exactly.
MAX_EXACT_NANOUSD = 2**53

# Shared by the scripts: the prefix, the epoch check, integer formatting, charging a reservation.
_PRELUDE = """
local P = ARGV[1]
local current = redis.call('GET', P .. 'epoch')
if current ~= ARGV[2] then return {'RESET', current or ''} end
local function s(x) return string.format('%d', x) end
local function charge(r, amount, calls)
  for i, key in ipairs(r.k) do
    redis.call('HINCRBY', P .. 'spend:' .. key, r.b[i], amount)
    redis.call('HINCRBY', P .. 'hist:' .. key, r.h, amount)
    if calls ~= 0 then redis.call('HINCRBY', P .. 'hist:' .. key, r.h .. ':n', calls) end
  end
end
local function spent_since(key, since)
  local total, pairs_ = 0, redis.call('HGETALL', P .. 'spend:' .. key)
  for j = 1, #pairs_, 2 do
    if tonumber(pairs_[j]) >= since then total = total + tonumber(pairs_[j + 1]) end
  end
  return total
end
"""

# ARGV: prefix, epoch, at_us, reservation id, amount, expires_us, history bucket, keep_before_us, n,
# then n times: key, limit, since_us, bucket_us, enforce (1/0).
_RESERVE = (
    _PRELUDE
    + """
local at, rid, amount = ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = tonumber(ARGV[9])
local known = redis.call('HGET', P .. 'res', rid)
if known then  -- a retry of a reserve that was applied: answer as it did
  local r = cjson.decode(known)
  local out = {'OK'}
  for i = 1, #r.k do out[#out + 1] = r.sp[i] end
  for i = 1, #r.k do out[#out + 1] = r.rs[i] end
  return out
end
-- Charge every reservation expired by now, once: it moves from held to the expired marks.
local due = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', at)
for _, id in ipairs(due) do
  local raw = redis.call('HGET', P .. 'res', id)
  if raw then
    local r = cjson.decode(raw)
    charge(r, r.a, 1)
    for _, key in ipairs(r.k) do redis.call('HINCRBY', P .. 'held', key, s(-tonumber(r.a))) end
    redis.call('HSET', P .. 'gone', id, raw)
    redis.call('ZADD', P .. 'gone_at', r.e, id)
    redis.call('HDEL', P .. 'res', id)
  end
  redis.call('ZREM', P .. 'exp', id)
end
local old = redis.call('ZRANGEBYSCORE', P .. 'gone_at', '-inf', '(' .. ARGV[8])
for _, id in ipairs(old) do redis.call('HDEL', P .. 'gone', id) end
if #old > 0 then redis.call('ZREMRANGEBYSCORE', P .. 'gone_at', '-inf', '(' .. ARGV[8]) end
-- Check every key; note limits that differ from the one last used.
local spent, reserved, changed, full = {}, {}, {}, false
for i = 1, n do
  local base = 9 + (i - 1) * 5
  local key, limit = ARGV[base + 1], ARGV[base + 2]
  local sp = spent_since(key, tonumber(ARGV[base + 3]))
  local rs = tonumber(redis.call('HGET', P .. 'held', key) or '0')
  spent[i], reserved[i] = s(sp), s(rs)
  local stored = redis.call('HGET', P .. 'limits', key)
  if stored ~= limit then
    if stored then changed[#changed + 1] = s(i); changed[#changed + 1] = stored end
    redis.call('HSET', P .. 'limits', key, limit)
  end
  if ARGV[base + 5] == '1' and sp + rs + amount > tonumber(limit) then full = true end
end
local out = {full and 'FULL' or 'OK'}
for i = 1, n do out[#out + 1] = spent[i] end
for i = 1, n do out[#out + 1] = reserved[i] end
for _, v in ipairs(changed) do out[#out + 1] = v end
if full then return out end
local r = {a = ARGV[5], e = ARGV[6], h = ARGV[7], k = {}, b = {}, sp = spent, rs = reserved}
for i = 1, n do
  local base = 9 + (i - 1) * 5
  r.k[i], r.b[i] = ARGV[base + 1], ARGV[base + 4]
  redis.call('HINCRBY', P .. 'held', ARGV[base + 1], ARGV[5])
  redis.call('SADD', P .. 'keys', ARGV[base + 1])
end
redis.call('HSET', P .. 'res', rid, cjson.encode(r))
redis.call('ZADD', P .. 'exp', ARGV[6], rid)
return out
"""
)

# ARGV: prefix, epoch, reservation id, actual ('' for a release).
_FINISH = (
    _PRELUDE
    + """
local rid, actual = ARGV[3], ARGV[4]
local raw = redis.call('HGET', P .. 'res', rid)
if raw then
  local r = cjson.decode(raw)
  redis.call('HDEL', P .. 'res', rid)
  redis.call('ZREM', P .. 'exp', rid)
  for _, key in ipairs(r.k) do redis.call('HINCRBY', P .. 'held', key, s(-tonumber(r.a))) end
  if actual ~= '' then charge(r, actual, 1) end
  return {'HELD'}
end
raw = redis.call('HGET', P .. 'gone', rid)
if raw then  -- charged its reserved amount when it expired: correct (settle) or refund (release)
  local r = cjson.decode(raw)
  redis.call('HDEL', P .. 'gone', rid)
  redis.call('ZREM', P .. 'gone_at', rid)
  if actual ~= '' then
    charge(r, s(tonumber(actual) - tonumber(r.a)), 0)
  else
    charge(r, s(-tonumber(r.a)), -1)
  end
  return {'LATE'}
end
return {'NONE'}
"""
)

# ARGV: prefix, epoch, key, since_us, at_us. Read only: reservations expired by at_us and not yet
# moved count as spend (in the bucket they were reserved in), not as reserved.
_USAGE = (
    _PRELUDE
    + """
local key, since = ARGV[3], tonumber(ARGV[4])
local spent = spent_since(key, since)
local held = tonumber(redis.call('HGET', P .. 'held', key) or '0')
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', ARGV[5])) do
  local raw = redis.call('HGET', P .. 'res', id)
  if raw then
    local r = cjson.decode(raw)
    for i, k in ipairs(r.k) do
      if k == key then
        held = held - tonumber(r.a)
        if tonumber(r.b[i]) >= since then spent = spent + tonumber(r.a) end
      end
    end
  end
end
return {'OK', s(spent), s(held)}
"""
)

# ARGV: prefix, the epoch this ledger knows ('' if none), a fresh epoch, an accepted one,
# continue (1/0). Returns (outcome, epoch): FIRST/ADOPT/SAME/RESET (work in that epoch) or LOST.
_ADOPT = """
local P, known, fresh, accepted, cont = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1'
local cur = redis.call('GET', P .. 'epoch')
if not cur then
  if known == '' then redis.call('SET', P .. 'epoch', fresh); return {'FIRST', fresh} end
  if cont then redis.call('SET', P .. 'epoch', accepted); return {'RESET', accepted} end
  redis.call('SET', P .. 'epoch', 'lost')
  return {'LOST', 'lost'}
end
if cur == known then return {'SAME', cur} end
if cur == 'lost' then
  if cont then redis.call('SET', P .. 'epoch', accepted); return {'RESET', accepted} end
  return {'LOST', cur}
end
if known == '' then return {'ADOPT', cur} end
if string.sub(cur, -4) == ':new' and not cont then
  redis.call('SET', P .. 'epoch', 'lost')
  return {'LOST', 'lost'}
end
return {'RESET', cur}
"""

# ARGV: prefix, before_us. Drops history buckets and alert marks older than before_us.
_PRUNE = """
local P, before = ARGV[1], tonumber(ARGV[2])
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', P .. 'keys')) do
  local fields = redis.call('HKEYS', P .. 'hist:' .. key)
  for _, f in ipairs(fields) do
    local bucket = tonumber((string.gsub(f, ':n$', '')))
    if bucket < before then
      redis.call('HDEL', P .. 'hist:' .. key, f)
      if not string.find(f, ':n$') then removed = removed + 1 end
    end
  end
end
removed = removed + redis.call('ZREMRANGEBYSCORE', P .. 'alerts', '-inf', '(' .. ARGV[2])
return removed
"""


class RedisLedger:
    """A ledger in one Redis db; connects on first use."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        on_reset: OnReset | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("redis", "rediss"):
            raise ConfigError(f"not a Redis URL: {redact_url(url)!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in ("prefix", "on_reset")}
        self.prefix = prefix if prefix is not None else ours.get("prefix", "costlens:")
        chosen = on_reset or ours.get("on_reset", "fail")
        if chosen not in ("fail", "continue"):
            raise ConfigError(f"bad Redis ledger URL {redact_url(url)!r}: on_reset is 'fail' or 'continue'")
        self.on_reset: OnReset = cast(OnReset, chosen)
        if not self.prefix:
            raise ConfigError(f"bad Redis ledger URL {redact_url(url)!r}: the prefix cannot be empty")
        rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in ours])))
        self.url = redact_url(url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
        self._password = parts.password or ""
        try:
            # No I/O here: redis-py connects on the first command, and makes new connections in a
            # forked child (its pool checks the process id).
            pool = redis.ConnectionPool.from_url(
                rest,
                decode_responses=True,
                socket_timeout=timeout_s,
                socket_connect_timeout=min(timeout_s, 2.0),
                # One immediate retry on a dropped connection (e.g. Redis restarted): every script
                # is safe to run twice (reserve by its id; settle/release are idempotent).
                retry=Retry(NoBackoff(), 1),
                health_check_interval=0,
            )
        except ValueError as exc:
            raise ConfigError(f"bad Redis ledger URL {self.url!r}: {exc}") from None
        self._client = redis.Redis(connection_pool=pool)
        self._pool = pool
        # Scripts go over a connection of each thread's own (made by the pool, never checked out
        # of it): no pool lock or liveness poll per call. Kept weakly, to be closed by close().
        self._local = threading.local()
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()
        self._reserve = self._client.register_script(_RESERVE)
        self._finish = self._client.register_script(_FINISH)
        self._usage = self._client.register_script(_USAGE)
        self._adopt = self._client.register_script(_ADOPT)
        self._prune = self._client.register_script(_PRUNE)
        self._epoch = ""  # the epoch this ledger works in ('' until its first call)
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"RedisLedger({self.url!r})"

    # -- calls, failures and the epoch -------------------------------------------------------------

    def _fail(self, exc: BaseException) -> LedgerUnavailable:
        return unavailable(f"Redis ledger at {self.where} ({self.url})", self._password, exc)

    def _command(self, name: str, *args: Any) -> Any:
        try:
            # redis-py leaves execute_command untyped; every answer here is parsed by the caller.
            command: Callable[..., Any] = self._client.execute_command
            return command(name, *args)
        except redis.RedisError as exc:
            raise self._fail(exc) from exc

    def _eval(self, script: Any, args: Sequence[Any]) -> Any:
        """EVALSHA on this thread's connection (made again in a forked child): one round trip. The
        script is loaded on NOSCRIPT; a dropped connection is retried once (every script is safe
        to run twice: reserve by its id, settle and release are idempotent)."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():
            conn = self._pool.make_connection()
            local.conn, local.pid = conn, os.getpid()
            self._conns.add(conn)
        for attempt in range(3):
            try:
                conn.send_command("EVALSHA", script.sha, 0, *args)
                return conn.read_response()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                conn.send_command("SCRIPT", "LOAD", script.script)
                conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _script(self, script: Any, args: Sequence[Any]) -> list[str]:
        """Run a budget-state script in this ledger's epoch; after a Redis restart (the epoch
        marker lost or replaced) adopt a new epoch, or fail closed, as `on_reset` says."""
        for _ in range(3):
            epoch = self._epoch or self._resync()
            try:
                out = cast(list[str], self._eval(script, [self.prefix, epoch, *args]))
            except redis.RedisError as exc:
                raise self._fail(exc) from exc
            if out[0] != "RESET":
                return out
            self._resync()
        raise LedgerUnavailable(f"Redis ledger at {self.where} ({self.url}): the epoch keeps changing")

    def _resync(self) -> str:
        """Agree on the epoch with Redis (see the module docstring); raise if the state was lost
        and this ledger fails closed."""
        with self._lock:
            known = self._epoch
            token = uuid.uuid4().hex
            try:
                outcome, epoch = cast(
                    list[str],
                    self._eval(
                        self._adopt,
                        [
                            self.prefix,
                            known,
                            f"{token}:new",
                            f"{token}:accepted",
                            "1" if self.on_reset == "continue" else "0",
                        ],
                    ),
                )
            except redis.RedisError as exc:
                raise self._fail(exc) from exc
            if outcome == "LOST":
                self._warn_once(
                    "lost:" + known,
                    "costlens: the Redis budget ledger at %s lost its state (Redis restarted without "
                    "persistence, or the db was flushed): the spend of every window is gone. Budgets "
                    "fail closed until the loss is accepted (RedisLedger.accept_reset(), or a ledger "
                    "URL with ?on_reset=continue); the call store still holds every call's cost",
                )
                raise LedgerUnavailable(
                    f"Redis ledger at {self.where} ({self.url}): Redis lost the budget state (restarted "
                    "without persistence?); budgets fail closed until the loss is accepted "
                    "(RedisLedger.accept_reset() or ?on_reset=continue)"
                )
            if outcome == "RESET":
                self._warn_once(
                    "reset:" + epoch,
                    "costlens: the Redis budget ledger at %s lost its state (Redis restarted without "
                    "persistence, or the db was flushed) and starts again from zero: spend recorded "
                    "before is not counted in the current windows (the call store still holds it)",
                )
            self._epoch = epoch
            return epoch

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, self.where)

    def accept_reset(self) -> None:
        """Accept that Redis lost the budget state: start a new epoch (every window from zero) that
        every instance adopts. What to do, after a restart, when budgets fail closed (`on_reset=fail`)."""
        epoch = f"{uuid.uuid4().hex}:accepted"
        self._command("SET", self.prefix + "epoch", epoch)
        with self._lock:
            self._epoch = epoch

    def close(self) -> None:
        for conn in list(self._conns):
            conn.disconnect()
        self._client.close()
        self._client.connection_pool.disconnect()

    # -- the ledger --------------------------------------------------------------------------------

    def reserve(
        self, keys: Sequence[BudgetKey], amount_nanousd: int, ttl_s: float, *, at: datetime | None = None
    ) -> Reservation:
        check_reserve(keys, amount_nanousd, ttl_s)
        if amount_nanousd > MAX_EXACT_NANOUSD or any(k.limit_nanousd > MAX_EXACT_NANOUSD for k in keys):
            raise ValueError(
                f"the Redis ledger handles amounts and limits up to {MAX_EXACT_NANOUSD} nano-USD exactly"
            )
        at_us = now_us(at)
        rid = new_reservation_id()
        expires = at_us + int(ttl_s * 1_000_000)
        args: list[Any] = [
            at_us,
            rid,
            amount_nanousd,
            expires,
            history_bucket(at_us),
            at_us - EXPIRED_KEEP_US,
            len(keys),
        ]
        for k in keys:
            args += [k.id, k.limit_nanousd, k.since_us, k.bucket_us, "1" if k.enforce else "0"]
        out = self._script(self._reserve, args)
        n = len(keys)
        before = [Spent(int(out[1 + i]), int(out[1 + n + i])) for i in range(n)]
        changed = out[1 + 2 * n :]
        warn_limits(
            self.url, [(keys[int(i) - 1], int(v)) for i, v in zip(changed[::2], changed[1::2], strict=True)]
        )
        if out[0] == "FULL":
            check_limits(keys, before, amount_nanousd)
        return Reservation(rid, tuple(keys), amount_nanousd, at_us, expires, tuple(before))

    def settle(self, reservation: Reservation, actual_nanousd: int) -> None:
        """Charge `actual`; a second settle changes nothing. A reservation that expired (and was
        charged its reserved amount) gets the difference `actual - reserved`."""
        check_settle(actual_nanousd)
        self._script(self._finish, [reservation.id, actual_nanousd])

    def release(self, reservation: Reservation) -> None:
        """Drop the reservation; a second release changes nothing. A reservation that expired (and
        was charged its reserved amount) is refunded."""
        self._script(self._finish, [reservation.id, ""])

    def usage(self, key: BudgetKey, *, at: datetime | None = None) -> Spent:
        out = self._script(self._usage, [key.id, key.since_us, now_us(at)])
        return Spent(int(out[1]), int(out[2]))

    def recent_spend(self, key_id: str, since_us: int) -> int:
        """Settled spend from the 5-minute history (expired reservations once a reserve charged them)."""
        first = history_bucket(since_us)
        fields = self._command("HGETALL", f"{self.prefix}hist:{key_id}") or {}
        return sum(int(v) for f, v in fields.items() if not f.endswith(":n") and int(f) >= first)

    def fire_once(self, key_id: str, period_us: int, alert: str) -> bool:
        member = json.dumps([key_id, period_us, alert])
        return bool(self._command("ZADD", self.prefix + "alerts", "NX", now_us(), member))

    def key_ids(self, budget: str) -> list[str]:
        members = self._command("SMEMBERS", self.prefix + "keys") or set()
        return sorted(k for k in members if k == budget or k.startswith(budget + "["))

    def record_definitions(self, definitions: Sequence[BudgetDefinition]) -> None:
        mapping: dict[str, str] = {}
        for d in definitions:
            mapping[d.name] = json.dumps(
                {
                    "source": d.source,
                    "origin": d.origin,
                    "definition": d.definition,
                    "defined_us": d.defined_us,
                    "removed_us": d.removed_us,
                },
                sort_keys=True,
            )
        if mapping:
            self._command("HSET", self.prefix + "defs", *(x for pair in mapping.items() for x in pair))

    def definitions(self) -> list[BudgetDefinition]:
        rows = self._command("HGETALL", self.prefix + "defs") or {}
        out = []
        for name in sorted(rows):
            try:
                d = json.loads(rows[name])
                found = make_definition(
                    name, d["source"], d["origin"], d["definition"], d["defined_us"], d.get("removed_us")
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not written by costlens: left out
            if found is not None:
                out.append(found)
        return out

    def prune(self, before_us: int) -> int:
        """Drop history buckets and fired-alert marks older than `before_us`; returns entries removed."""
        try:
            return int(self._eval(self._prune, [self.prefix, before_us]))
        except redis.RedisError as exc:
            raise self._fail(exc) from exc


def from_url(url: str) -> RedisLedger:
    """`redis://[user:password@]host:port/db[?prefix=...&on_reset=fail|continue]`."""
    return RedisLedger(url)
