-- Append encoded items to an open session's queue and wake its receiver.
-- ARGV: tag, max_queue, ttl_ms, overflow_item, closed_ttl_ms, item...
-- Returns 'ok' | 'missing' | 'closed' | 'overflow' (session closed just now)
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return 'missing' end
if st == 'c' then return 'closed' end
local max = tonumber(ARGV[2])
local length = redis.call('RPUSH', KEYS[2], unpack(ARGV, 6))
if length > max then
  -- Bounded memory: keep what fits, then the close frame says why the rest is gone.
  redis.call('LTRIM', KEYS[2], 0, max - 1)
  close_session(ARGV[4], ARGV[1], tonumber(ARGV[5]))
  return 'overflow'
end
keep_alive(tonumber(ARGV[3]))
wake_holder(KEYS[1], ARGV[1])
return 'ok'
