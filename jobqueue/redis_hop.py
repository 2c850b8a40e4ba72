"""The atomic hop ends (:mod:`jobqueue.hop_commit`) on one Redis, each one script composed of the queue's and the
ledger's own scripts.

Each of ``save.lua``, ``send.lua``, ``finish.lua`` and ``renew.lua`` is wrapped as a Lua function of its own
``KEYS`` and ``ARGV`` (their key layouts and rules stay documented, and defined, in one place each), and a short
main program calls them in the order of the hop end:

* continue: ledger compare-and-set, then send the successor and finish the received message;
* hand on: check the receipt, ledger compare-and-set, then renew the received message with the successor's body;
* end: ledger compare-and-set, then finish the received message.

A finish after a compare-and-set that raised the task's seq to the hop's own skips the receipt check
(``finish.lua``'s "owned"): until that write no runner could have ended the hop, so no successor was handed on in
place in the received message, which therefore still holds this hop (or is gone). Deleting it whoever received it
last is then safe: a runner that still holds it finds the hop handled. Otherwise the receipt is checked as usual.

KEYS: the queue's keys (as every queue script gets them), then ``save.lua``'s keys (none when the record does not
change). ARGV: the number of argument groups of the queue's functions, each group's length, those groups in the
order above, then ``save.lua``'s arguments. A lost compare-and-set returns 0 having written nothing (the ledger's
retry loop then runs the rule again).
"""

from __future__ import annotations

from importlib import resources

import redis
from redis.commands.core import Script

from jobqueue.errors import BackendUnavailable
from jobqueue.ledger.base import Commit
from jobqueue.ledger.record import Hop, HopState, Submission, TaskRecord
from jobqueue.ledger.redis import RedisLedger
from jobqueue.queue.base import Received
from jobqueue.queue.redis import RedisQueue
from relay_core.domain import Outcome

_PRELUDE = """
local queue_keys, ledger_keys = {}, {}
for i = 1, #KEYS do
    if i <= QUEUE_KEYS then queue_keys[#queue_keys + 1] = KEYS[i] else ledger_keys[#ledger_keys + 1] = KEYS[i] end
end
local groups, at = {}, 2 + tonumber(ARGV[1])
for g = 1, tonumber(ARGV[1]) do
    local group = {}
    for i = at, at + tonumber(ARGV[1 + g]) - 1 do group[#group + 1] = ARGV[i] end
    at = at + #group
    groups[g] = group
end
local save_args = {}
for i = at, #ARGV do save_args[#save_args + 1] = ARGV[i] end
local function saved()
    return #ledger_keys == 0 or ledger_save(ledger_keys, save_args) == 1
end
"""
_CONTINUE = """
if not saved() then return 0 end
queue_send(queue_keys, groups[1])
queue_finish(queue_keys, groups[2])
return 1
"""
_HAND_ON = """
local renew = groups[1]
if queue_renew(queue_keys, renew) == 0 then return -1 end
if not saved() then return 0 end
renew[4] = 'checked'
queue_renew(queue_keys, renew)
return 1
"""
_END = """
if not saved() then return 0 end
queue_finish(queue_keys, groups[1])
return 1
"""


def _wrapped(package: str, name: str) -> str:
    body = resources.files(package).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    prefix = "ledger" if package.endswith("ledger") else "queue"
    return f"local function {prefix}_{name}(KEYS, ARGV)\n{body}\nend\n"


def _script_source(queue_keys: int, main: str, *queue_scripts: str) -> str:
    functions = [_wrapped("jobqueue.ledger", "save"), *(_wrapped("jobqueue.queue", name) for name in queue_scripts)]
    return "".join(functions) + _PRELUDE.replace("QUEUE_KEYS", str(queue_keys)) + main


def _successor_with_change(send: Commit, finish: Commit) -> Commit:
    """The successor is sent only with the write that raises the seq; without a change the received message is only
    finished."""

    def commit(record: TaskRecord | None, expected_version: int) -> bool:
        return (send if record is not None else finish)(record, expected_version)

    return commit


class StaleReceipt(Exception):
    """The received message was received again by another runner: it is no longer this runner's to renew."""


class RedisHopCommit:
    """:class:`jobqueue.hop_commit.HopCommit` for a :class:`RedisQueue` and a :class:`RedisLedger` on one server."""

    def __init__(self, queue: RedisQueue, ledger: RedisLedger) -> None:
        self._queue, self._ledger = queue, ledger
        register, n = queue.client.register_script, len(queue.keys)
        self._continue = register(_script_source(n, _CONTINUE, "send", "finish"))
        self._hand_on = register(_script_source(n, _HAND_ON, "renew"))
        self._end = register(_script_source(n, _END, "finish"))

    def continue_hop(
        self,
        received: Received,
        task_id: str,
        seq: int,
        successor: str,
        delay_s: float,
        now: float,
        *,
        submission: Submission | None = None,
        vendor_done: str | None = None,
        unleased: bool = False,
    ) -> bool:
        _, send_args = self._queue.send_request([successor], delay_s)
        finish = self._queue.finish_request(received.receipt)
        commit = self._commit(self._continue, [send_args, finish], finish_group=1)
        if unleased:
            commit = _successor_with_change(commit, self._commit(self._end, [finish], finish_group=0))
        return self._ledger.advance_with(
            task_id, seq, now, commit, submission=submission, vendor_done=vendor_done, unleased=unleased
        )

    def hand_on(
        self,
        received: Received,
        task_id: str,
        seq: int,
        successor: str,
        lease_s: float,
        now: float,
        *,
        user_id: str | None = None,
        outcome: Outcome | None = None,
        report_message: str | None = None,
        vendor_done: str | None = None,
    ) -> Hop:
        groups = [self._queue.renew_request(received.receipt, successor, lease_s)]
        commit = self._commit(self._hand_on, groups, only_changes=True)
        try:
            return self._ledger.hand_on_with(
                task_id,
                seq,
                lease_s,
                now,
                commit,
                user_id=user_id,
                outcome=outcome,
                report_message=report_message,
                vendor_done=vendor_done,
            )
        except StaleReceipt:
            return Hop(HopState.STALE)

    def end_hop(self, received: Received, task_id: str, seq: int, now: float, *, reported: bool = False) -> bool:
        groups = [self._queue.finish_request(received.receipt)]
        commit = self._commit(self._end, groups, finish_group=0)
        return self._ledger.end_with(task_id, seq, now, commit, reported=reported)

    def _commit(
        self, script: Script, groups: list[list[str]], *, only_changes: bool = False, finish_group: int | None = None
    ) -> Commit:
        """The ledger's write as ``script``, run with the queue's argument ``groups``; ``only_changes``: no call
        when the record does not change; ``finish_group``: the group of ``finish.lua``, told to skip the receipt
        check when the write raises the seq (see the module docstring)."""
        queue_keys = list(self._queue.keys)

        def commit(record: TaskRecord | None, expected_version: int) -> bool:
            if record is None and only_changes:
                return False
            owned = (
                finish_group is not None and record is not None and self._ledger.raises_seq(record, expected_version)
            )
            parts = [[*g, "owned"] if owned and i == finish_group else g for i, g in enumerate(groups)]
            keys = list(queue_keys)
            args = [str(len(parts)), *(str(len(part)) for part in parts), *(arg for part in parts for arg in part)]
            if record is not None:
                save_keys, save_args = self._ledger.save_request(record, expected_version)
                keys += save_keys
                args += [str(arg) for arg in save_args]
            try:
                answer = int(script(keys=keys, args=args))
            except redis.exceptions.RedisError as exc:  # as the queue and the ledger translate them
                raise BackendUnavailable(f"redis hop commit: {type(exc).__name__}: {exc}") from None
            if answer < 0:
                raise StaleReceipt(f"the message of task {record.task_id if record else '?'} was received again")
            return answer == 1

        return commit
