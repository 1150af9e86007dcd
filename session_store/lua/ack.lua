-- Acknowledge, in one step for a whole process, what its receivers wrote
-- since the last batch, so that a crash re-delivers at most one batch's worth.
-- KEYS: meta, queue and channels of each session, in threes.
-- ARGV for each session: holder, written_upto (absolute), n, then n channel/offset pairs.
local a = 1
for k = 1, #KEYS, 3 do
  local holder, upto, n = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if redis.call('HGET', KEYS[k], 'rcv') == holder then  -- a lost lease acknowledges nothing
    ack_upto(KEYS[k], KEYS[k + 1], upto)
    for i = a + 3, a + 1 + 2 * n, 2 do
      if redis.call('HEXISTS', KEYS[k + 2], ARGV[i]) == 1 then
        redis.call('HSET', KEYS[k + 2], ARGV[i], ARGV[i + 1])
      end
    end
  end
  a = a + 3 + 2 * n
end
return 0
