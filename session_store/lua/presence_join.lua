-- A client's presence in a channel, and its user's count of clients there,
-- so that presence_stats is two HLENs whatever the channel's size.
-- KEYS[1] clients (client -> info), KEYS[2] users (user -> clients).
-- ARGV: client, user, info, ttl_ms. Returns 1 if the client was not there.
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if added == 1 then redis.call('HINCRBY', KEYS[2], ARGV[2], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return added
