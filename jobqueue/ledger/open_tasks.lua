-- Ledger.open_tasks: tasks without an outcome whose deadline is before a bound, oldest deadline first.
--
-- Key layout:
--   {prefix}:deadlines       zset of the ids of tasks without an outcome, score = deadline_at.
--   {prefix}:task:{task_id}  the task's hash (fields in claim_submit.lua); it expires after retention_s.
-- Index members whose hash expired (or that no longer match their hash) are removed on the way. The task
-- hashes are read by name from ARGV[3] rather than KEYS, so this script needs a single-node Redis.
--
-- KEYS[1]  {prefix}:deadlines
-- ARGV[1]  deadline_before (exclusive)
-- ARGV[2]  limit
-- ARGV[3]  "{prefix}:task:" (the task hash key without the id)
--
-- Returns a flat list {task_id, {field, value, ...}, task_id, {...}, ...} of at most `limit` tasks.
local deadlines = KEYS[1]
local deadline_before, limit, task_prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local found, live, offset = {}, 0, 0

while live < limit do
  local ids = redis.call('ZRANGEBYSCORE', deadlines, '-inf', '(' .. deadline_before, 'LIMIT', offset, limit)
  if #ids == 0 then
    break
  end
  for _, task_id in ipairs(ids) do
    local task = task_prefix .. task_id
    if redis.call('HEXISTS', task, 'deadline_at') == 0 or redis.call('HEXISTS', task, 'outcome') == 1 then
      redis.call('ZREM', deadlines, task_id)
    elseif live < limit then
      live = live + 1
      offset = offset + 1
      found[#found + 1] = task_id
      found[#found + 1] = redis.call('HGETALL', task)
    end
  end
end
return found
