-- Let go of a dead process's lease, as the process would have. The process
-- died between its last beat and the next one it missed: the client's time
-- to come back runs from then, so it never gets less than disconnect_ms.
-- ARGV: process, died_by_ms (last beat + a beat interval's margin), disconnect_ms
-- Returns the deadline for the client, or 0 if that process does not hold the session.
local holder = redis.call('HGET', KEYS[1], 'rcv')
if not holder or process_of(holder) ~= ARGV[1] then return 0 end
local deadline = tonumber(ARGV[2]) + tonumber(ARGV[3])
redis.call('HDEL', KEYS[1], 'rcv', 'rx')
redis.call('HSET', KEYS[1], 'dl', deadline)
return deadline
