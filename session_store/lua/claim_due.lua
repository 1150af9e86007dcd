-- Claim the due entries of one expiry bucket (a sorted set of session tags),
-- pushing them claim_ms into the future so other processes skip them meanwhile.
-- ARGV: claim_ms, limit. Returns the claimed tags.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, tag in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), tag)
end
return due
