-- Removes what apalis-redis keeps of finished messages (payload, metadata, set membership)
-- when they finished before the cutoff.
-- KEYS[1]: the done or dead set
-- KEYS[2]: the task data hash
-- KEYS[3]: the metadata prefix (a message's metadata is KEYS[3] .. ':' .. id)
-- ARGV[1]: the cutoff, Unix seconds
-- ARGV[2..]: message ids
local cutoff = tonumber(ARGV[1])
local removed = 0
for i = 2, #ARGV do
    local id = ARGV[i]
    local meta = KEYS[3] .. ':' .. id
    local done_at = tonumber(redis.call('HGET', meta, 'done_at'))
    if done_at ~= nil and done_at < cutoff then
        redis.call('SREM', KEYS[1], id)
        redis.call('HDEL', KEYS[2], id)
        redis.call('DEL', meta)
        removed = removed + 1
    end
end
return removed
