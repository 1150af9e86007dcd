-- Close an open session once; only the caller that gets an answer runs the close hook.
-- ARGV: tag, close item, closed_ttl_ms, required_holder ('' = anyone)
-- Returns false, or {the application's state ('' if none)} for the one caller.
local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'o' then return false end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'rcv') ~= ARGV[4] then return false end
-- The holder closing its own session needs no wake-up.
close_session(ARGV[2], ARGV[1], tonumber(ARGV[3]), ARGV[4] == '')
return {redis.call('HGET', KEYS[1], 'ad') or ''}
