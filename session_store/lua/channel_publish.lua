-- Append one publication to a channel's history and announce it once.
-- Offsets are the stream ids' sequence numbers (ids 0-1, 0-2, ...), consecutive,
-- so a follower that sees offset n knows it needs n-1 first.
-- KEYS[1] history stream. ARGV: data, history_size, announce channel
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '0-*', 'd', ARGV[1])
local offset = string.sub(id, 3)
redis.call('PUBLISH', ARGV[3], offset .. ' ' .. ARGV[1])
return tonumber(offset)
