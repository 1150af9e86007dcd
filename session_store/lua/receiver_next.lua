-- The lease holder acknowledges what it wrote (up to an absolute position),
-- then renews and reads more, or lets go. Nothing leaves the queue before it
-- was written: what a receiver is about to write as it lets go stays pending
-- for the next receiver to acknowledge.
-- ARGV: holder, tag, written_upto, action, lease_ms, batch, disconnect_ms, ttl_ms,
--       pending_upto, then for 'release': channel, offset, channel, offset...;
--       else: the subscriptions version the holder follows
-- action: 'renew' (read more), 'poll' (read; let go if there is an answer),
--         'release' (let go; `pending` items are being written now; save offsets)
-- Returns {'lost'} | {'released'} | {'taken', items}
--       | {'open', items, sv[, subscriptions]}: the subscriptions (channel, offset,
--         ...) when sv is not the version the holder follows, saving it a read.
if redis.call('HGET', KEYS[1], 'rcv') ~= ARGV[1] then return {'lost'} end
local tag, upto, action = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local lease, batch = tonumber(ARGV[5]), tonumber(ARGV[6])
local disconnect, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
ack_upto(KEYS[1], KEYS[2], upto)
local now = now_ms()
if redis.call('HGET', KEYS[1], 'st') == 'o' then keep_alive(ttl) end
if action == 'release' then
  for i = 10, #ARGV, 2 do
    if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then  -- not if it was left meanwhile
      redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    end
  end
  release(now, disconnect, tonumber(ARGV[9]), tag, ARGV[1])
  return {'released'}
end
if action == 'poll' then
  local items = poll_items(now, batch, disconnect, tag, ARGV[1])
  if items then return {'taken', items} end
end
redis.call('HSET', KEYS[1], 'rx', now + lease)
local sv = redis.call('HGET', KEYS[1], 'sv') or '0'
local items = redis.call('LRANGE', KEYS[2], 0, batch - 1)
if sv == ARGV[10] then return {'open', items, sv} end
return {'open', items, sv, redis.call('HGETALL', KEYS[3])}
