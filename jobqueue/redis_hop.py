"""The atomic hop end (:mod:`jobqueue.hop_commit`) on one Redis: ``save.lua`` + ``send.lua`` + ``finish.lua`` in one.

The script is composed from the three scripts themselves, each wrapped as a Lua function of its own ``KEYS`` and
``ARGV`` (their key layouts and rules stay documented, and defined, in one place each):

* KEYS: the queue's keys (as every queue script gets them), then ``save.lua``'s keys (none when the record does not
  change);
* ARGV: the count of ``send.lua``'s arguments, the count of ``finish.lua``'s, then those arguments, then
  ``save.lua``'s.

It runs the compare-and-set first; when that fails it returns 0 having written nothing, else it sends the successor,
finishes the received message and returns 1.
"""

from __future__ import annotations

from importlib import resources

import redis

from jobqueue.errors import BackendUnavailable
from jobqueue.ledger.record import TaskRecord
from jobqueue.ledger.redis import RedisLedger
from jobqueue.queue.base import Received
from jobqueue.queue.redis import RedisQueue

_MAIN = """
local queue_keys, ledger_keys = {}, {}
for i = 1, #KEYS do
    if i <= QUEUE_KEYS then queue_keys[#queue_keys + 1] = KEYS[i] else ledger_keys[#ledger_keys + 1] = KEYS[i] end
end
local n_send, n_finish = tonumber(ARGV[1]), tonumber(ARGV[2])
local send_args, finish_args, save_args = {}, {}, {}
for i = 3, #ARGV do
    local j = i - 2
    if j <= n_send then
        send_args[#send_args + 1] = ARGV[i]
    elseif j <= n_send + n_finish then
        finish_args[#finish_args + 1] = ARGV[i]
    else
        save_args[#save_args + 1] = ARGV[i]
    end
end
if #ledger_keys > 0 and ledger_save(ledger_keys, save_args) == 0 then
    return 0
end
queue_send(queue_keys, send_args)
queue_finish(queue_keys, finish_args)
return 1
"""


def _script_source(queue_keys: int) -> str:
    def wrapped(package: str, name: str, function: str) -> str:
        body = resources.files(package).joinpath(name).read_text(encoding="utf-8")
        return f"local function {function}(KEYS, ARGV)\n{body}\nend\n"

    return (
        wrapped("jobqueue.ledger", "save.lua", "ledger_save")
        + wrapped("jobqueue.queue", "send.lua", "queue_send")
        + wrapped("jobqueue.queue", "finish.lua", "queue_finish")
        + _MAIN.replace("QUEUE_KEYS", str(queue_keys))
    )


class RedisHopCommit:
    """:class:`jobqueue.hop_commit.HopCommit` for a :class:`RedisQueue` and a :class:`RedisLedger` on one server."""

    def __init__(self, queue: RedisQueue, ledger: RedisLedger) -> None:
        self._queue, self._ledger = queue, ledger
        self._script = queue.client.register_script(_script_source(len(queue.keys)))

    def continue_hop(
        self, received: Received, task_id: str, seq: int, successor: str, delay_s: float, now: float
    ) -> bool:
        _, send_args = self._queue.send_request([successor], delay_s)
        finish_args = self._queue.finish_request(received.receipt)

        def commit(record: TaskRecord | None, expected_version: int) -> bool:
            keys, args = list(self._queue.keys), [str(len(send_args)), str(len(finish_args)), *send_args, *finish_args]
            if record is not None:
                save_keys, save_args = self._ledger.save_request(record, expected_version)
                keys += save_keys
                args += [str(arg) for arg in save_args]
            try:
                return int(self._script(keys=keys, args=args)) == 1
            except redis.exceptions.RedisError as exc:  # as the queue and the ledger translate them
                raise BackendUnavailable(f"redis hop commit: {type(exc).__name__}: {exc}") from None

        return self._ledger.advance_with(task_id, seq, now, commit)
