-- Shared helpers, prepended to every session script.
-- Session keys: KEYS[1] meta hash, KEYS[2] outbound queue (list of encoded items),
-- KEYS[3] channel subscriptions (hash: channel -> offset delivered up to).
-- Meta fields: st (o = open, c = closed), cf (close frame), rcv (lease holder
-- "<process>:<token>"), rx (lease expiry, ms), dl (deadline for a receiver to
-- come back, ms; set when the receiver lets go), want (a process waiting for
-- the lease), sv (subscriptions version, bumped on every join and leave).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function process_of(holder)
  return string.match(holder, '^([^:]+)')
end

-- A process holds one pub/sub subscription on 'sh:p:<process>' for its whole
-- life, so PUBLISH answering 0 means the holder is gone (killed, crashed).
-- The empty message wakes nobody.
local function holder_alive(holder)
  return redis.call('PUBLISH', 'sh:p:' .. process_of(holder), '') > 0
end

local function wake_holder(meta, tag)
  local holder = redis.call('HGET', meta, 'rcv')
  if holder then
    redis.call('PUBLISH', 'sh:p:' .. process_of(holder), tag)
  end
end

local function keep_alive(ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end

-- Closing appends the close frame to the queue: messages sent before the
-- close are still delivered, in order, before it.
local function close_session(frame, tag, ttl)
  redis.call('HSET', KEYS[1], 'st', 'c', 'cf', frame)
  redis.call('RPUSH', KEYS[2], frame)
  wake_holder(KEYS[1], tag)
  keep_alive(ttl)
end
