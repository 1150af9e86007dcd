-- Close an open session once; only the caller that gets 1 runs the close hook.
-- ARGV: tag, close item, closed_ttl_ms, required_holder ('' = anyone)
local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'o' then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'rcv') ~= ARGV[4] then return 0 end
close_session(ARGV[2], ARGV[1], tonumber(ARGV[3]))
return 1
