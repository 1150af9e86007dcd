-- Take the receiver lease of a session, creating the session if it is new.
-- ARGV: holder, tag, lease_ms, batch, ttl_ms, disconnect_ms, poll (1/0), probe (1/0)
-- Returns {'created'} (held; a poll has let go already) | {'busy'} | {'closed', item}
--       | {'taken', items}   (a poll's answer: the lease is let go already)
--       | {'open', items, head, sv, channel, offset, channel, offset...}   (held;
--         head: the absolute position of the first item)
local holder = ARGV[1]
local lease, batch, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local disconnect, poll = tonumber(ARGV[6]), ARGV[7] == '1'
local now = now_ms()
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  redis.call('HSET', KEYS[1], 'st', 'o')
  if poll then
    release(now, disconnect, 0, ARGV[2], holder)  -- the poll answers 'o' at once
  else
    redis.call('HSET', KEYS[1], 'rcv', holder, 'rx', now + lease)
  end
  keep_alive(ttl)
  return {'created'}
end
local current = redis.call('HGET', KEYS[1], 'rcv')
local busy = current and tonumber(redis.call('HGET', KEYS[1], 'rx')) > now
             and holder_alive(current)
if not busy then ack_pending() end
if st == 'c' and redis.call('LLEN', KEYS[2]) == 0 then
  return {'closed', redis.call('HGET', KEYS[1], 'cf')}
end
if busy then
  -- Its client may have just dropped it (and be this very request): ask the
  -- holder's process, which checks the socket and either lets go or answers
  -- that its client is still there; both wake this process.
  if ARGV[8] == '1' then
    local asker = process_of(holder)
    redis.call('HSET', KEYS[1], 'want', asker)
    redis.call('PUBLISH', 'sh:p:' .. process_of(current), '?' .. asker .. ' ' .. ARGV[2])
  end
  return {'busy'}
end
if st == 'o' then keep_alive(ttl) end
redis.call('HDEL', KEYS[1], 'dl')
if poll then
  local items = poll_items(now, batch, disconnect, ARGV[2], holder)
  if items then return {'taken', items} end
end
redis.call('HSET', KEYS[1], 'rcv', holder, 'rx', now + lease)
local reply = {'open', redis.call('LRANGE', KEYS[2], 0, batch - 1), head(KEYS[1]),
               redis.call('HGET', KEYS[1], 'sv') or '0'}
for _, v in ipairs(redis.call('HGETALL', KEYS[3])) do reply[#reply + 1] = v end
return reply
