-- Take the receiver lease of a session, creating the session if asked to.
-- ARGV: holder, tag, lease_ms, create (1/0), batch, ttl_ms
-- Returns {'created'} | {'missing'} | {'busy'} | {'closed', frame}
--       | {'open', items, sv, channel, offset, channel, offset...}
local holder, tag = ARGV[1], ARGV[2]
local lease, batch, ttl = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local st = redis.call('HGET', KEYS[1], 'st')
if not st then
  if ARGV[4] ~= '1' then return {'missing'} end
  redis.call('HSET', KEYS[1], 'st', 'o', 'rcv', holder, 'rx', now + lease)
  keep_alive(ttl)
  return {'created'}
end
if st == 'c' and redis.call('LLEN', KEYS[2]) == 0 then
  return {'closed', redis.call('HGET', KEYS[1], 'cf')}
end
local current = redis.call('HGET', KEYS[1], 'rcv')
if current and tonumber(redis.call('HGET', KEYS[1], 'rx')) > now and holder_alive(current) then
  -- Often the holder is a poll that has just answered and is about to let go:
  -- ask to be woken when it does (receiver_next), so the caller can retry.
  redis.call('HSET', KEYS[1], 'want', process_of(holder))
  return {'busy'}
end
redis.call('HSET', KEYS[1], 'rcv', holder, 'rx', now + lease)
redis.call('HDEL', KEYS[1], 'dl')
if st == 'o' then keep_alive(ttl) end
local reply = {'open', redis.call('LRANGE', KEYS[2], 0, batch - 1),
               redis.call('HGET', KEYS[1], 'sv') or '0'}
for _, v in ipairs(redis.call('HGETALL', KEYS[3])) do reply[#reply + 1] = v end
return reply
