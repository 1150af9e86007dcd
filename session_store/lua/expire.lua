-- Reaper's check of one session. Deletes an open session whose receiver has
-- been gone for disconnect_delay; only the caller that gets 'expired' runs the
-- close hook. ARGV: tag, disconnect_ms
-- Returns {'gone'} | {'expired', application state or ''} | {'later', due_ms}
local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'o' then return {'gone'} end  -- closed sessions expire by key TTL
local now = now_ms()
local disconnect = tonumber(ARGV[2])
local holder = redis.call('HGET', KEYS[1], 'rcv')
if holder then
  local rx = tonumber(redis.call('HGET', KEYS[1], 'rx'))
  if rx > now and holder_alive(holder) then return {'later', rx + disconnect} end
  -- The holder died or let its lease lapse: the client's time to come back starts now.
  redis.call('HDEL', KEYS[1], 'rcv', 'rx')
  redis.call('HSET', KEYS[1], 'dl', now + disconnect)
  return {'later', now + disconnect}
end
local deadline = tonumber(redis.call('HGET', KEYS[1], 'dl') or '0')
if deadline > now then return {'later', deadline} end
local state = redis.call('HGET', KEYS[1], 'ad') or ''
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'expired', state}
