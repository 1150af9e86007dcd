-- What a history call returns: kept publications with their offsets.
-- KEYS[1] stream, KEYS[2] position hash.
-- ARGV: since offset (0: from the oldest / the newest when reverse), limit
--       (-1: all; 0: none), reverse (1/0)
-- Returns {top, epoch, offset, data, offset, data, ...}
local top = tonumber(redis.call('HGET', KEYS[2], 'top') or '0')
local out = {top, redis.call('HGET', KEYS[2], 'ep') or ''}
local since, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit == 0 then return out end
local entries
local count = {}
if limit > 0 then count = {'COUNT', limit} end
if ARGV[3] == '1' then
  local upper = '+'
  if since > 0 then upper = '(0-' .. since end
  entries = redis.call('XREVRANGE', KEYS[1], upper, '-', unpack(count))
else
  entries = redis.call('XRANGE', KEYS[1], '(0-' .. since, '+', unpack(count))
end
for _, entry in ipairs(entries) do
  out[#out + 1] = tonumber(string.sub(entry[1], 3))
  out[#out + 1] = entry[2][2]
end
return out
