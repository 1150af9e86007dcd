-- Shared helpers, prepended to every session script.
-- Session keys: KEYS[1] meta hash, KEYS[2] outbound queue (list of items),
-- KEYS[3] channel subscriptions (hash: channel -> offset delivered up to).
-- Meta fields: st (o = open, c = closed), cf (close item), rcv (lease holder
-- "<process>:<token>"), rx (lease expiry, ms), dl (deadline for a receiver to
-- come back, ms; set when the receiver lets go), hd (the queue head's absolute
-- position: how many items were ever acknowledged), pn (the position up to
-- which a receiver that let go was writing: the session's next receiver
-- acknowledges up to it), pt (the receiver that set pn: a poll that took items
-- but could not answer undoes its take, see untake.lua), sv (subscriptions
-- version, bumped on every join and leave), ad (the application's state), av
-- (its version, bumped on every write of ad), aw and ax (the writer whose turn
-- it is to write ad, and until when: see update.lua), want (a process whose
-- receiver found the session busy and asked the holder whether its client is
-- still there: woken when it lets go).
-- Queue items start with their kind: 'c' is a close (nothing follows it).
-- Acknowledgements name an absolute position, not a count: applying one twice,
-- late, or after a read changes nothing it should not.

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

-- Closing appends the close item to the queue: messages sent before the
-- close are still delivered, in order, before it.
local function close_session(item, tag, ttl, wake)
  redis.call('HSET', KEYS[1], 'st', 'c', 'cf', item)
  redis.call('RPUSH', KEYS[2], item)
  if wake then wake_holder(KEYS[1], tag) end
  keep_alive(ttl)
end

local function head(meta)
  return tonumber(redis.call('HGET', meta, 'hd') or '0')
end

-- Drop the items before absolute position upto (written by the receiver).
local function ack_upto(meta, queue, upto)
  local hd = head(meta)
  if upto > hd then
    redis.call('LTRIM', queue, upto - hd, -1)
    redis.call('HSET', meta, 'hd', upto)
  end
end

-- Drop what the previous receiver wrote before it let go: a new receiver
-- arrives only once the client has the previous answer.
local function ack_pending()
  local pending = tonumber(redis.call('HGET', KEYS[1], 'pn') or '0')
  if pending > 0 then
    ack_upto(KEYS[1], KEYS[2], pending)
    redis.call('HDEL', KEYS[1], 'pn', 'pt')
  end
end

-- Let go of the lease; the receiver (holder) is writing up to absolute position
-- pending (0: nothing). The client has disconnect_ms to come back. The holder
-- is kept with what is pending (pt): a poll that could not answer undoes it (untake).
local function release(now, disconnect, pending, tag, holder)
  local want = redis.call('HGET', KEYS[1], 'want')
  if want then redis.call('PUBLISH', 'sh:p:' .. want, tag) end
  redis.call('HDEL', KEYS[1], 'rcv', 'rx', 'want')
  if pending > head(KEYS[1]) then
    redis.call('HSET', KEYS[1], 'pn', pending, 'pt', holder)
  end
  redis.call('HSET', KEYS[1], 'dl', now + disconnect)
end

-- How many items one poll answers: the messages up to the first close, or
-- that close alone (a poll carries one frame).
local function first_frame(items)
  for i, item in ipairs(items) do
    if string.sub(item, 1, 1) == 'c' then
      if i == 1 then return 1 end
      return i - 1
    end
  end
  return #items
end

-- A poll takes what is queued and lets go in the same step, so the client's
-- next poll, on whichever process, finds the lease free. Only sessions with no
-- channels (their publications are in the receiving process's memory).
-- Returns the items of the answer, or nil when the poll must wait (holding).
local function poll_items(now, batch, disconnect, tag, holder)
  local items = redis.call('LRANGE', KEYS[2], 0, batch - 1)
  if #items == 0 or redis.call('HLEN', KEYS[3]) > 0 then return nil end
  local n = first_frame(items)
  release(now, disconnect, head(KEYS[1]) + n, tag, holder)
  return {unpack(items, 1, n)}
end
