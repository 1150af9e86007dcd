-- The lease holder acknowledges what it wrote, then renews and reads more,
-- or releases the lease. Nothing leaves the queue before it was written.
-- On release, the channel offsets delivered so far are saved for the next receiver.
-- ARGV: holder, acked, release (1/0), lease_ms, batch, disconnect_ms, ttl_ms, tag,
--       channel, offset, channel, offset...
-- Returns {'lost'} | {'released'} | {'open', items, sv}
if redis.call('HGET', KEYS[1], 'rcv') ~= ARGV[1] then return {'lost'} end
local acked = tonumber(ARGV[2])
if acked > 0 then redis.call('LTRIM', KEYS[2], acked, -1) end
local now = now_ms()
local open = redis.call('HGET', KEYS[1], 'st') == 'o'
if open then keep_alive(tonumber(ARGV[7])) end
if ARGV[3] == '1' then
  local want = redis.call('HGET', KEYS[1], 'want')
  if want then
    redis.call('PUBLISH', 'sh:p:' .. want, ARGV[8])
  end
  redis.call('HDEL', KEYS[1], 'rcv', 'rx', 'want')
  for i = 9, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then  -- not if it was left meanwhile
      redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    end
  end
  redis.call('HSET', KEYS[1], 'dl', now + tonumber(ARGV[6]))
  return {'released'}
end
redis.call('HSET', KEYS[1], 'rx', now + tonumber(ARGV[4]))
return {'open', redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1),
        redis.call('HGET', KEYS[1], 'sv') or '0'}
