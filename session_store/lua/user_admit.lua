-- A connection of a user admitted under the user's connection limit: the count
-- and the registration in one step, so two connects of one user at once can
-- never both take the last place.
-- KEYS[1] the user's connections (client id -> session tag). ARGV: client, tag,
-- limit. Returns 1 (registered, or registered already) or 0 (at the limit).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
