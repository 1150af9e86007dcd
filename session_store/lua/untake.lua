-- Undo a poll's take that was never answered: Redis failed (a failover, a timeout)
-- after the take was sent, so the poll answers 503 and its client polls again. The
-- take may have run, and survived on a promoted replica: its items are then
-- pending, and the next receiver would acknowledge them though the client never
-- got them. Only the taker's own pending items (pt): another receiver may have
-- acknowledged them (the client got them after all), or taken more since.
-- ARGV: holder (the poll that took). Returns 1 if a take was undone, else 0.
if redis.call('HGET', KEYS[1], 'pt') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'pn', 'pt')
return 1
