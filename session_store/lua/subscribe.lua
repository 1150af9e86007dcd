-- Join or leave a channel. A join starts after the channel's current top, so
-- the session receives what is published from now on. The version bump tells
-- the session's receiver (in whichever process) to reload its subscriptions.
-- ARGV: tag, channel, top, join (1/0), ttl_ms
if redis.call('HGET', KEYS[1], 'st') ~= 'o' then return 0 end
if ARGV[4] == '1' then
  redis.call('HSETNX', KEYS[3], ARGV[2], ARGV[3])
else
  redis.call('HDEL', KEYS[3], ARGV[2])
end
redis.call('HINCRBY', KEYS[1], 'sv', 1)
keep_alive(tonumber(ARGV[5]))
wake_holder(KEYS[1], ARGV[1])
return 1
