-- Add delta to a member's count in a hash; a member at zero goes.
-- KEYS[1] hash. ARGV: member, delta. Returns the new count.
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
