-- Liveness: record this process's beat, and claim the processes that stopped
-- beating and no longer hold their wake-up subscription (both: a process slow
-- to beat is not taken for dead). Claimed ones look alive again for claim_ms,
-- so one caller cleans up after each; if that caller dies too, another will.
-- KEYS[1] the liveness sorted set (process -> last beat, ms).
-- ARGV: process, dead_after_ms, claim_ms, limit
-- Returns {process, last_beat, process, last_beat, ...} claimed by this call.
local now = now_ms()
local dead_after, claim = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - dead_after,
                         'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
local claimed = {}
for i = 1, #stale, 2 do
  local process = stale[i]
  if not holder_alive(process) then
    redis.call('ZADD', KEYS[1], now + claim - dead_after, process)
    claimed[#claimed + 1] = process
    claimed[#claimed + 1] = stale[i + 1]
  end
end
return claimed
