import { createHash } from 'node:crypto';

/**
 * The Lua scripts of cluster-wide shaping. Each touches one key, so they run atomically and would
 * also run on a Redis Cluster. Every time they store comes from the server's own TIME, the one
 * clock all nodes share: a node whose clock is off can neither keep a slot too long nor book sends
 * early. Times go back to a node as delays, which it adds to its own clock.
 */
export interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Takes one of ARGV[1] slots of the sorted set KEYS[1] for member ARGV[2] (score: its expiry),
 * after dropping the expired ones. ARGV[3] = slot TTL in ms. Returns 1 when taken, else 0.
 */
export const TAKE = script(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`);

/**
 * Moves the expiry of members ARGV[2..] of KEYS[1] to now + ARGV[1] ms. A member that had lapsed
 * (Redis was away or restarted empty) is added back: its connection is still open, so it counts.
 */
export const RENEW = script(`${NOW}
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return #ARGV - 1`);

/** Gives back member ARGV[1] of KEYS[1]; when ARGV[2] names a channel, says so on it (message: KEYS[1]). */
export const GIVE = script(`local n = redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], KEYS[1]) end
return n`);

/**
 * Books the next send of KEYS[1], spaced ARGV[1] ms (1000 / rate, fractional) from the previous
 * booking: next = max(now, stored); stored = next + interval. Returns the wait until next, in ms.
 * An idle key lapses once its booking has passed, so it starts afresh rather than owing a burst.
 */
export const BOOK = script(`${NOW}
local interval = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local nextAt = math.max(now, stored)
local after = nextAt + interval
redis.call('SET', KEYS[1], string.format('%.3f', after), 'PX', math.ceil(after - now) + 1000)
return math.ceil(nextAt - now)`);

/** Counts one event of KEYS[1] in a window of ARGV[1] ms that opens at the first; returns the count. */
export const HIT = script(`local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n`);

/**
 * Counts one event of KEYS[1] (a window of ARGV[2] ms, as HIT) only while it holds fewer than
 * ARGV[1]; returns the count, or -1 when full (nothing counted).
 */
export const CONSUME = script(`local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -1 end
n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
return n`);

/** Lifts KEYS[1] to at least ARGV[1] (a window of ARGV[2] ms if none is open); returns the count. */
export const RAISE = script(`local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if n < floor then
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('SET', KEYS[1], floor)
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
  n = floor
end
return n`);

/**
 * Registers node ARGV[1] in the sorted set KEYS[1] until now + ARGV[2] ms, drops the nodes that
 * lapsed, and returns how many are left (this one included).
 */
export const HEARTBEAT = script(`${NOW}
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])`);

/** Every script, loaded on each connection so that a command timed out before its reply still runs. */
export const SCRIPTS: readonly Script[] = [TAKE, RENEW, GIVE, BOOK, HIT, CONSUME, RAISE, HEARTBEAT];
