-- Publications after an offset, for a follower catching up.
-- KEYS[1] history stream. ARGV: offset, limit
-- Returns {'ok', top, data...} (data for offset+1, offset+2, ...) or
-- {'behind', top} when some of them are no longer kept (or the history was lost).
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local top = 0
if #last > 0 then top = tonumber(string.sub(last[1][1], 3)) end
local offset = tonumber(ARGV[1])
if offset > top then return {'behind', top} end
if offset == top then return {'ok', top} end
local entries = redis.call('XRANGE', KEYS[1], '(0-' .. offset, '+', 'COUNT', tonumber(ARGV[2]))
if #entries == 0 or tonumber(string.sub(entries[1][1], 3)) ~= offset + 1 then
  return {'behind', top}
end
local out = {'ok', top}
for _, entry in ipairs(entries) do out[#out + 1] = entry[2][2] end
return out
