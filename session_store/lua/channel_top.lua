-- A channel's position: the offset of its newest publication (0 if none yet)
-- and its epoch. With a new epoch given, a channel without a position gets
-- one now (a client that subscribes before the first publication must be
-- able to recover from it), kept for position_ttl_ms (0: no expiry).
-- KEYS[1] position hash. ARGV: [new epoch, position_ttl_ms]
if ARGV[1] and redis.call('HSETNX', KEYS[1], 'ep', ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'top', 0)
  if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
local position = redis.call('HMGET', KEYS[1], 'top', 'ep')
return {tonumber(position[1] or '0'), position[2] or ''}
