-- An application's changes to an open session in one step: its state, the
-- channels it joins (from a given offset) or leaves, and messages to queue.
-- One step, so a receiver that sees the new subscriptions also sees the
-- messages queued with them (a reply is delivered before the publications
-- the command that sent it made the session receive).
-- The state is compare-and-set: a caller that read it (with its version, av)
-- names that version, and if another writer changed it since, nothing at all
-- is applied: the answer carries the state now, for the caller to run again.
-- A writer that loses takes the turn (aw: "<process>:<writer>", ax: until when,
-- ms): until it writes or TURN_MS pass, every other compare-and-set loses too,
-- told it is another's turn. Without turns, a writer that needs a round trip to
-- run its change again (the API, from another process) can lose every time to
-- one that writes back to back (a client's frames, each from the state it wrote).
-- ARGV: tag, ttl_ms, max_queue, overflow_item, closed_ttl_ms, state ('' = keep,
--       '-' = clear, else 's' .. value), expected version ('' = any), the
--       caller's process, the writer (unique in its process, the same for every
--       attempt of one change), changes, (channel, offset or '' to leave) x
--       changes, item...
-- Returns 'ok' | 'here' (ok, and the lease holder is in the caller's process:
--       it wakes the holder itself, no PUBLISH) | {'here', sv, subscriptions}
--       (the same for a change of channels alone: the holder follows them as
--       handed over, without reading them back) | 'missing' | 'closed'
--       | 'overflow' (session closed just now) | {'conflict', state or false, version}
--       | {'conflict', state or false, version, 'turn'} (another writer's turn)
local TURN_MS = 100
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 'missing' end
if st == 'c' then return 'closed' end
if ARGV[7] ~= '' then
  local current = redis.call('HMGET', KEYS[1], 'ad', 'av', 'aw', 'ax')
  local version = current[2] or '0'
  local writer = ARGV[8] .. ':' .. ARGV[9]
  local turn = current[3]
  if turn and turn ~= writer and tonumber(current[4]) > now_ms() then
    return {'conflict', current[1], version, 'turn'}
  end
  if version ~= ARGV[7] then
    redis.call('HSET', KEYS[1], 'aw', writer, 'ax', now_ms() + TURN_MS)
    return {'conflict', current[1], version}
  end
  if turn then redis.call('HDEL', KEYS[1], 'aw', 'ax') end
end
local state = ARGV[6]
if state == '-' then
  redis.call('HDEL', KEYS[1], 'ad')
elseif state ~= '' then
  redis.call('HSET', KEYS[1], 'ad', string.sub(state, 2))
end
if state ~= '' then redis.call('HINCRBY', KEYS[1], 'av', 1) end
local changes = tonumber(ARGV[10])
local at = 11
for _ = 1, changes do
  if ARGV[at + 1] == '' then
    redis.call('HDEL', KEYS[3], ARGV[at])
  else
    redis.call('HSET', KEYS[3], ARGV[at], ARGV[at + 1])
  end
  at = at + 2
end
if changes > 0 then redis.call('HINCRBY', KEYS[1], 'sv', 1) end
if #ARGV >= at then
  local max = tonumber(ARGV[3])
  local length = redis.call('RPUSH', KEYS[2], unpack(ARGV, at))
  if length > max then
    -- Bounded memory: keep what fits, then the close frame says why the rest is gone.
    redis.call('LTRIM', KEYS[2], 0, max - 1)
    close_session(ARGV[4], ARGV[1], tonumber(ARGV[5]), true)
    return 'overflow'
  end
end
keep_alive(tonumber(ARGV[2]))
if changes > 0 or #ARGV >= at then
  local holder = redis.call('HGET', KEYS[1], 'rcv')
  if holder and process_of(holder) == ARGV[8] then
    if changes > 0 and #ARGV < at then
      return {'here', redis.call('HGET', KEYS[1], 'sv'), redis.call('HGETALL', KEYS[3])}
    end
    return 'here'
  end
  wake_holder(KEYS[1], ARGV[1])
end
return 'ok'
