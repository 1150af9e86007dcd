-- Append one publication to a channel's stream and announce it once.
-- The stream's offset and epoch live in its own hash, which outlives the
-- stream (history_ttl drops the publications of an idle channel, not its
-- position): a lost hash starts a new epoch at offset 1.
-- Offsets are consecutive (stream ids 0-1, 0-2, ...), so a follower that sees
-- offset n knows it needs n-1 first.
-- KEYS[1] stream, KEYS[2] position hash (top, ep).
-- ARGV: head, marker, tail, size, ttl_ms (0: none), meta_ttl_ms (0: none),
--       new epoch, announce channel, how to announce ('PUBLISH', or on a Cluster
--       'SPUBLISH': the announce channel shares the keys' slot, so it stays on
--       their node and its replicas)
-- The stored text is head .. marker .. offset .. tail, or head .. tail when
-- marker is '' (a protocol that shows no offsets).
-- Returns {offset, epoch}
local top = redis.call('HINCRBY', KEYS[2], 'top', 1)
if top == 1 then
  redis.call('HSETNX', KEYS[2], 'ep', ARGV[7])  -- a subscriber may have made it already
  redis.call('DEL', KEYS[1])  -- a stream left from a lost position would clash
end
local text = ARGV[1] .. ARGV[3]
if ARGV[2] ~= '' then text = ARGV[1] .. ARGV[2] .. top .. ARGV[3] end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], '0-' .. top, 'd', text)
local ttl, meta_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
if meta_ttl > 0 then redis.call('PEXPIRE', KEYS[2], meta_ttl) end
redis.call(ARGV[9], ARGV[8], top .. ' ' .. text)
return {top, redis.call('HGET', KEYS[2], 'ep')}
