-- Publications after an offset, oldest first: a follower catching up, a
-- client recovering, or a history read.
-- KEYS[1] stream, KEYS[2] position hash. ARGV: offset, limit (-1: all)
-- Returns {'ok', top, epoch, data...} (data for offset+1, offset+2, ...) or
-- {'behind', top, epoch} when some of them are no longer kept.
local top = tonumber(redis.call('HGET', KEYS[2], 'top') or '0')
local epoch = redis.call('HGET', KEYS[2], 'ep') or ''
local offset = tonumber(ARGV[1])
if offset > top then return {'behind', top, epoch} end
if offset == top then return {'ok', top, epoch} end
local entries
if tonumber(ARGV[2]) < 0 then
  entries = redis.call('XRANGE', KEYS[1], '(0-' .. offset, '+')
else
  entries = redis.call('XRANGE', KEYS[1], '(0-' .. offset, '+', 'COUNT', tonumber(ARGV[2]))
end
if #entries == 0 or tonumber(string.sub(entries[1][1], 3)) ~= offset + 1 then
  return {'behind', top, epoch}
end
local out = {'ok', top, epoch}
for _, entry in ipairs(entries) do out[#out + 1] = entry[2][2] end
return out
