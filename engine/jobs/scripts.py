"""The Lua scripts that move a job from one state to the next.

Every state change that must not race (create, claim, finish, requeue, take up) is one
script, so two deliveries of the same message can never both move a job, and a job that
is ``done`` or ``error`` never changes again. Each script names its KEYS and ARGV in a
header and reads each into a local, as Dramatiq's ``dispatch.lua`` does; the keys are
built in keys.py and the states come from states.py (the preamble below declares them).

A job's owner (the hash of its API key) has a queue of its own beside the main one; a
script finds it from the job's record, so it gets the owners' key prefix in ARGV
(``Keys.queued_by("")``), never builds one.
"""

from __future__ import annotations

from enum import StrEnum

from .states import JobState, WebhookState

__all__ = ["CREATE", "CLAIM", "RENEW", "FINISH", "REQUEUE", "TAKE_UP",
           "SPLIT", "CHUNK_CLAIM", "CHUNK_RENEW", "CHUNK_DONE", "CHUNK_RELEASE",
           "CHUNK_TAKE_UP",
           "CreateResult", "ClaimResult", "ChunkClaimResult", "ChunkDoneResult"]


class CreateResult(StrEnum):
    """What CREATE answers (the first element of its reply)."""

    CREATED = "created"
    #: Redis ran the call after the caller's deadline: nothing was created.
    LATE = "late"
    #: The queue holds its limit of jobs.
    FULL = "full"
    #: The owner's queue holds its limit of jobs.
    OWNER_FULL = "owner-full"
    #: The idempotency key made a job for this very request: that job is answered.
    REPLAYED = "replayed"
    #: The idempotency key made a job for another request: nothing was created.
    CONFLICT = "conflict"


class ClaimResult(StrEnum):
    """What CLAIM answers."""

    #: The caller holds the job's lease now (or held it already).
    CLAIMED = "claimed"
    #: Another caller holds the lease.
    BUSY = "busy"
    #: Running without a lease: its worker is gone (lease.py).
    LAPSED = "lapsed"
    #: No such job.
    MISSING = "missing"
    #: The job is done or failed: nothing to do.
    FINISHED = "finished"


class ChunkClaimResult(StrEnum):
    """What CHUNK_CLAIM answers."""

    #: As CLAIM's: both come from the preamble's held_lease.
    CLAIMED = ClaimResult.CLAIMED.value
    BUSY = ClaimResult.BUSY.value
    #: The job is not running (or its chunks are gone).
    GONE = "gone"
    #: The chunk was rendered already.
    DONE_ALREADY = "done-already"
    #: Its renders stopped without a word too often: the job should fail.
    LOST = "lost"


class ChunkDoneResult(StrEnum):
    """What CHUNK_DONE answers."""

    #: The last chunk: the caller holds the job's lease and joins the parts now.
    LAST = "last"
    #: Counted; other chunks are still to come.
    COUNTED = "counted"
    #: Counted before: a second render of the chunk.
    COUNTED_BEFORE = "counted-before"
    #: The job is no longer running: the chunk is not wanted.
    NOT_WANTED = "not-wanted"


_PREAMBLE = f"""
local QUEUED, RUNNING = '{JobState.QUEUED}', '{JobState.RUNNING}'
local DONE, ERROR = '{JobState.DONE}', '{JobState.ERROR}'
local HOOK_PENDING = '{WebhookState.PENDING}'
local function is_finished(state) return state == DONE or state == ERROR end
-- The owner's own queue of the job (nil when it has no owner).
local function owner_queue(job_key, owners_prefix)
  local owner = redis.call('hget', job_key, 'owner')
  if owner and owner ~= '' then return owners_prefix .. owner end
  return nil
end
-- Set a hash's fields from ARGV[first], ARGV[first + 1], ... (name, value pairs).
local function hset_pairs(key, first)
  for i = first, #ARGV, 2 do redis.call('hset', key, ARGV[i], ARGV[i + 1]) end
end
-- A claim meeting a lease that is held (CLAIM, CHUNK_CLAIM): '{ClaimResult.CLAIMED}' when
-- the caller holds it already (its expiry renewed), '{ClaimResult.BUSY}' when another
-- does, nil when it is free.
local function held_lease(lease, token, lease_ms)
  local holder = redis.call('get', lease)
  if holder == token then
    redis.call('pexpire', lease, lease_ms)
    return '{ClaimResult.CLAIMED}'
  end
  if holder then return '{ClaimResult.BUSY}' end
  return nil
end
"""

CREATE = _PREAMBLE + f"""
-- Create a queued job if the queue limits allow, in one step (concurrent submits can
-- never pass a limit). A call that runs after the caller's deadline (it sat in a frozen
-- server) creates nothing: the caller has answered that nothing was created.
-- With an idempotency key (a fingerprint given), a key that names a job still stored
-- answers that job (same fingerprint) or a conflict (another one), creating nothing;
-- else the key is set to the new job in this same step, so concurrent first uses of a
-- key make one job.
-- KEYS: job record, active set, queued set, updated set, the owner's queued set,
--       queue id counter, idempotency record (unused without a fingerprint)
-- ARGV: job id, now, queue limit (0 = none), per-owner limit (0 = none, -1 = no owner),
--       deadline in Redis's clock (0 = none), request fingerprint ('' = no key),
--       idempotency ttl ms, job records' key prefix, then the record's name, value pairs
-- Returns {{'{CreateResult.CREATED}', queue id, queue length}}, {{'{CreateResult.LATE}'}},
--         {{'{CreateResult.FULL}'}}, {{'{CreateResult.OWNER_FULL}'}},
--         {{'{CreateResult.REPLAYED}', its job id, queue length}} or
--         {{'{CreateResult.CONFLICT}', its job id}}.
local job, active, queued, updated, owners_queued, counter, idempotency =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local job_id, now = ARGV[1], ARGV[2]
local limit, per_owner, deadline = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fingerprint, idempotency_ttl, jobs_prefix = ARGV[6], ARGV[7], ARGV[8]
if deadline > 0 then
  local clock = redis.call('time')
  if tonumber(clock[1]) + tonumber(clock[2]) / 1000000 > deadline then
    return {{'{CreateResult.LATE}'}}
  end
end
if fingerprint ~= '' then
  local seen = redis.call('hmget', idempotency, 'fingerprint', 'job_id')
  -- a job removed since (its upload failed, retention) frees its key
  if seen[1] and redis.call('exists', jobs_prefix .. seen[2]) == 1 then
    if seen[1] ~= fingerprint then return {{'{CreateResult.CONFLICT}', seen[2]}} end
    return {{'{CreateResult.REPLAYED}', seen[2], redis.call('zcard', queued)}}
  end
end
if limit > 0 and redis.call('zcard', queued) >= limit then return {{'{CreateResult.FULL}'}} end
if per_owner > 0 and redis.call('zcard', owners_queued) >= per_owner then
  return {{'{CreateResult.OWNER_FULL}'}}
end
local queue_id = redis.call('incr', counter)
hset_pairs(job, 9)
redis.call('hset', job, 'queue_id', queue_id)
redis.call('sadd', active, job_id)
redis.call('zadd', queued, now, job_id)
redis.call('zadd', updated, now, job_id)
if per_owner >= 0 then redis.call('zadd', owners_queued, now, job_id) end
if fingerprint ~= '' then
  redis.call('hset', idempotency, 'fingerprint', fingerprint, 'job_id', job_id)
  redis.call('pexpire', idempotency, idempotency_ttl)
end
return {{'{CreateResult.CREATED}', queue_id, redis.call('zcard', queued)}}
"""

CLAIM = _PREAMBLE + f"""
-- Take a queued job for rendering: lease it to the caller and mark it running.
-- KEYS: job record, lease, queued set, updated set
-- ARGV: lease token, lease ms, worker pid, now, job id, owners' queue prefix
-- Returns '{ClaimResult.CLAIMED}' (also for the holder's own claim again, after a stall),
-- '{ClaimResult.BUSY}' (leased by another), '{ClaimResult.LAPSED}' (running without a
-- lease: its worker is gone, see lease.py), '{ClaimResult.MISSING}' or
-- '{ClaimResult.FINISHED}'.
local job, lease, queued, updated = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, lease_ms, pid, now, job_id, owners_prefix =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local state = redis.call('hget', job, 'status')
if not state then return '{ClaimResult.MISSING}' end
if is_finished(state) then return '{ClaimResult.FINISHED}' end
local held = held_lease(lease, token, lease_ms)
if held then return held end
if state == RUNNING then return '{ClaimResult.LAPSED}' end
redis.call('set', lease, token, 'PX', lease_ms)
redis.call('hset', job, 'status', RUNNING, 'pid', pid, 'run_started_at', now,
           'lease_token', token)
if redis.call('hexists', job, 'started_at') == 0 then
  redis.call('hset', job, 'started_at', now)
end
redis.call('zrem', queued, job_id)
local mine = owner_queue(job, owners_prefix)
if mine then redis.call('zrem', mine, job_id) end
redis.call('zadd', updated, now, job_id)
return '{ClaimResult.CLAIMED}'
"""

RENEW = _PREAMBLE + """
-- Extend the render's lease, and record its progress. A lease that lapsed while Redis
-- stalled (or the renewer could not reach it) is taken again if nobody took the job up
-- meanwhile: the render simply goes on.
-- KEYS: lease, job record
-- ARGV: lease token, lease ms, [frames done, frames in all]
-- Returns 1, or 0 when the job is no longer the caller's.
local lease, job = KEYS[1], KEYS[2]
local token, lease_ms, frames_done, frames_total = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local holder = redis.call('get', lease)
if holder == token then
  redis.call('pexpire', lease, lease_ms)
elseif holder or redis.call('hget', job, 'status') ~= RUNNING
    or redis.call('hget', job, 'lease_token') ~= token then
  return 0
else
  redis.call('set', lease, token, 'PX', lease_ms)
end
if frames_done then
  redis.call('hset', job, 'frames_done', frames_done, 'frames_total', frames_total)
end
return 1
"""

FINISH = _PREAMBLE + """
-- End an unfinished job (done or error) with the given fields; a job with a webhook URL
-- gets its webhook pending; the job's id is published on the finishes channel.
-- KEYS: job record, lease, active set, finished set, queued set, webhooks-pending set,
--       updated set, finishes channel
-- ARGV: job id, final state, now, webhook message id, owners' queue prefix, then the
--       record's name, value pairs
-- Returns 1, or 0 when the job was finished already (or is gone).
local job, lease, active, finished, queued, hooks, updated, finishes =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local job_id, final, now, hook_msg_id, owners_prefix =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not is_finished(final) then return redis.error_reply('not a final state: ' .. final) end
local state = redis.call('hget', job, 'status')
if not state or is_finished(state) then return 0 end
redis.call('hset', job, 'status', final, 'finished_at', now)
hset_pairs(job, 6)
redis.call('srem', active, job_id)
redis.call('zrem', queued, job_id)
local mine = owner_queue(job, owners_prefix)
if mine then redis.call('zrem', mine, job_id) end
redis.call('zadd', finished, now, job_id)
redis.call('zadd', updated, now, job_id)
redis.call('del', lease)
local hook = redis.call('hget', job, 'webhook_url')
if hook and hook ~= '' then
  redis.call('hset', job, 'webhook_state', HOOK_PENDING, 'webhook_attempts', 0,
             'webhook_msg_id', hook_msg_id)
  redis.call('sadd', hooks, job_id)
end
redis.call('publish', finishes, job_id)
return 1
"""

REQUEUE = _PREAMBLE + """
-- Give a running job back to the queue (a retry, or a render interrupted by shutdown),
-- if the caller still holds its lease.
-- KEYS: job record, lease, queued set, updated set
-- ARGV: lease token, job id, now, the error that made it retry, 1 to count the attempt
--       (0 not), owners' queue prefix
-- Returns the job's attempts so far, or -1 when it is not the caller's.
local job, lease, queued, updated = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, job_id, now, reason, count, owners_prefix =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local state = redis.call('hget', job, 'status')
if not state or is_finished(state) then return -1 end
if redis.call('get', lease) ~= token then return -1 end
redis.call('del', lease)
redis.call('hset', job, 'status', QUEUED, 'last_error', reason, 'lease_token', '')
redis.call('zadd', queued, now, job_id)
local mine = owner_queue(job, owners_prefix)
if mine then redis.call('zadd', mine, now, job_id) end
redis.call('zadd', updated, now, job_id)
return redis.call('hincrby', job, 'attempts', count)
"""

TAKE_UP = _PREAMBLE + """
-- Requeue a running job whose lease lapsed (its worker was killed, crashed, or was cut
-- off from Redis for longer than the lease), by exactly one caller: see lease.py.
-- KEYS: job record, lease, queued set, updated set
-- ARGV: job id, now, the job's last error (why it was taken up), owners' queue prefix
-- Returns the job's lost runs so far, or -1 when it was not lapsed (or another caller
-- took it up first).
local job, lease, queued, updated = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job_id, now, reason, owners_prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('hget', job, 'status') ~= RUNNING then return -1 end
if redis.call('exists', lease) == 1 then return -1 end
redis.call('hset', job, 'status', QUEUED, 'last_error', reason, 'lease_token', '')
redis.call('zadd', queued, now, job_id)
local mine = owner_queue(job, owners_prefix)
if mine then redis.call('zadd', mine, now, job_id) end
redis.call('zadd', updated, now, job_id)
return redis.call('hincrby', job, 'lost_runs', 1)
"""

# -- chunks (chunks.py) ---------------------------------------------------------------
# A chunked job's chunks hash holds: count, starts (each chunk's first frame,
# comma-separated; records of earlier versions have size instead: frames per chunk, the
# last one taking the rest), ndone, and per chunk n: done:n, frames:n (frames encoded),
# started:n (a render of it began), lost:n (its renders that stopped without a word),
# attempts:n.
_CHUNK_PREAMBLE = _PREAMBLE + """
-- Sum the chunks' frames into the job's frames_done (progress counts every chunk).
local function sum_frames(chunks, job)
  local count = tonumber(redis.call('hget', chunks, 'count') or '0')
  local sum = 0
  for i = 0, count - 1 do
    sum = sum + tonumber(redis.call('hget', chunks, 'frames:' .. i) or '0')
  end
  redis.call('hset', job, 'frames_done', sum)
end
"""

SPLIT = _PREAMBLE + """
-- Turn a claimed job into a chunked one: its chunks are recorded (once: a job split
-- again keeps what was done), and its lease becomes a marker without expiry, since
-- each chunk has a lease of its own (the job is taken up by its chunks, not as a whole).
-- KEYS: job record, lease, chunks hash
-- ARGV: claim token, chunk count, each chunk's first frame (comma-separated), the marker
-- Returns the chunks already done, or -1 when the caller no longer holds the job.
local job, lease, chunks = KEYS[1], KEYS[2], KEYS[3]
local token, count, starts, marker = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('hget', job, 'status') ~= RUNNING then return -1 end
if redis.call('get', lease) ~= token then return -1 end
if redis.call('exists', chunks) == 0 then
  redis.call('hset', chunks, 'count', count, 'starts', starts, 'ndone', 0)
end
redis.call('set', lease, marker)
redis.call('hset', job, 'chunks', redis.call('hget', chunks, 'count'), 'lease_token', marker)
return tonumber(redis.call('hget', chunks, 'ndone'))
"""

CHUNK_CLAIM = _PREAMBLE + f"""
-- Take chunk n of a running chunked job for rendering.
-- KEYS: job record, chunks hash, chunk lease
-- ARGV: n, lease token, lease ms, lost renders after which the chunk is given up
-- Returns '{ChunkClaimResult.CLAIMED}' (also for the holder's own claim again),
-- '{ChunkClaimResult.BUSY}' (another live render holds it), '{ChunkClaimResult.GONE}' (the
-- job is not running), '{ChunkClaimResult.DONE_ALREADY}', or '{ChunkClaimResult.LOST}'
-- (its renders stopped without a word too often: the job should fail).
local job, chunks, lease = KEYS[1], KEYS[2], KEYS[3]
local n, token, lease_ms, max_lost = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('hget', job, 'status') ~= RUNNING then return '{ChunkClaimResult.GONE}' end
if redis.call('exists', chunks) == 0 then return '{ChunkClaimResult.GONE}' end
if redis.call('hget', chunks, 'done:' .. n) then
  return '{ChunkClaimResult.DONE_ALREADY}'
end
local held = held_lease(lease, token, lease_ms)
if held then return held end
if redis.call('hget', chunks, 'started:' .. n) then  -- its last render's worker died
  if redis.call('hincrby', chunks, 'lost:' .. n, 1) >= max_lost then
    return '{ChunkClaimResult.LOST}'
  end
end
redis.call('set', lease, token, 'PX', lease_ms)
redis.call('hset', chunks, 'started:' .. n, 1, 'frames:' .. n, 0)
return '{ChunkClaimResult.CLAIMED}'
"""

CHUNK_RENEW = _CHUNK_PREAMBLE + """
-- Extend a chunk's lease and record its progress (the job's frames_done is the sum of
-- its chunks'). A lease that lapsed while Redis stalled is taken again if nobody took
-- the chunk meanwhile.
-- KEYS: chunk lease, job record, chunks hash
-- ARGV: lease token, lease ms, n, [frames done]
-- Returns 1, or 0 when the chunk (or the job) is no longer the caller's.
local lease, job, chunks = KEYS[1], KEYS[2], KEYS[3]
local token, lease_ms, n, frames = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('hget', job, 'status') ~= RUNNING then return 0 end
local holder = redis.call('get', lease)
if holder == token then
  redis.call('pexpire', lease, lease_ms)
elseif holder or redis.call('hget', chunks, 'done:' .. n)
    or not redis.call('hget', chunks, 'started:' .. n) then
  return 0
else
  redis.call('set', lease, token, 'PX', lease_ms)
end
if frames then
  redis.call('hset', chunks, 'frames:' .. n, frames)
  sum_frames(chunks, job)
end
return 1
"""

CHUNK_DONE = _CHUNK_PREAMBLE + f"""
-- Count chunk n done, once however often it is rendered (delivery is at-least-once).
-- The caller of the last one gets the job's lease (with an expiry again) to join them.
-- KEYS: job record, chunks hash, chunk lease, job lease
-- ARGV: n, frames, join token, lease ms
-- Returns '{ChunkDoneResult.LAST}' (join now), '{ChunkDoneResult.COUNTED}',
-- '{ChunkDoneResult.COUNTED_BEFORE}' (a second render of it) or
-- '{ChunkDoneResult.NOT_WANTED}' (the job is no longer running).
local job, chunks, lease, job_lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n, frames, join_token, lease_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('hget', job, 'status') ~= RUNNING then return '{ChunkDoneResult.NOT_WANTED}' end
if redis.call('exists', chunks) == 0 then return '{ChunkDoneResult.NOT_WANTED}' end
if redis.call('hget', chunks, 'done:' .. n) then return '{ChunkDoneResult.COUNTED_BEFORE}' end
redis.call('hset', chunks, 'done:' .. n, 1, 'frames:' .. n, frames)
redis.call('del', lease)
sum_frames(chunks, job)
local done = redis.call('hincrby', chunks, 'ndone', 1)
if done < tonumber(redis.call('hget', chunks, 'count')) then
  return '{ChunkDoneResult.COUNTED}'
end
redis.call('set', job_lease, join_token, 'PX', lease_ms)
redis.call('hset', job, 'lease_token', join_token)
return '{ChunkDoneResult.LAST}'
"""

CHUNK_RELEASE = _PREAMBLE + """
-- Give chunk n back (a retry, or a render stopped by shutdown) if the caller holds it.
-- KEYS: chunks hash, chunk lease
-- ARGV: n, lease token, 1 to count the attempt (0 not)
-- Returns the chunk's attempts so far, or -1 when it is not the caller's.
local chunks, lease = KEYS[1], KEYS[2]
local n, token, count = ARGV[1], ARGV[2], ARGV[3]
if redis.call('get', lease) ~= token then return -1 end
redis.call('del', lease)
redis.call('hdel', chunks, 'started:' .. n)
return redis.call('hincrby', chunks, 'attempts:' .. n, count)
"""

CHUNK_TAKE_UP = _PREAMBLE + """
-- Take up chunk n of a running job if its render stopped without a word (started, not
-- done, no lease), by exactly one caller, so that it is rendered again alone.
-- KEYS: job record, chunks hash, chunk lease
-- ARGV: n
-- Returns the chunk's lost renders so far, or -1 when it was not lapsed.
local job, chunks, lease = KEYS[1], KEYS[2], KEYS[3]
local n = ARGV[1]
if redis.call('hget', job, 'status') ~= RUNNING then return -1 end
if redis.call('hget', chunks, 'done:' .. n) then return -1 end
if not redis.call('hget', chunks, 'started:' .. n) then return -1 end
if redis.call('exists', lease) == 1 then return -1 end
redis.call('hdel', chunks, 'started:' .. n)
return redis.call('hincrby', chunks, 'lost:' .. n, 1)
"""
