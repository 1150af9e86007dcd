-- The offset of a channel's newest publication (0 if none yet).
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return 0 end
return tonumber(string.sub(last[1][1], 3))
