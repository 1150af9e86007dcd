-- Remove a client's presence; its user goes when their last client does.
-- KEYS[1] clients, KEYS[2] users. ARGV: client, user. Returns 1 if it was there.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return 1
