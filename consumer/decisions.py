"""What a step decides. Steps return one of these and change nothing else on the queue or the ledger;
:func:`consumer.effects.apply` carries the decision out.

::

    Continue(message, delay_s)   hand on to the successor hop (a retry is a successor of the same stage);
                                 ``submission``: a vendor job the submit created, recorded with the hop's end;
                                 ``vendor_done``: a vendor job the poll saw finished, recorded with the hop's end;
                                 ``leased=False``: the hop ran without its lease (a poll that found the job
                                 still running), so the successor is sent only if this end raises the seq
    Finish(outcome)              the task has its terminal outcome: record it, then hand on to REPORT;
                                 ``vendor_done``: as for ``Continue`` (a poll whose hop COLLECT and AUDIT joined);
                                 ``report_joins``: REPORT may run in this same hop (the hop's lease has room)
    Reported()                   the backend acknowledged the report: record that; the task's chain ends
    Defer(message, delay_s)      another runner holds this hop: run this same message again later
    ToDeadLetter(reason, park)   move the message to the dead-letter queue, for an operator (``park``: mark the
                                 task as waiting for one; False for a message that is not the task's own)
    Drop(note)                   nothing to do (a stale or duplicate hop): acknowledge the message
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqueue.ledger.record import Submission
from jobqueue.message import JobMessage
from relay_core.domain import Outcome


@dataclass(frozen=True)
class Continue:
    message: JobMessage
    delay_s: float = 0.0
    submission: Submission | None = None
    vendor_done: str | None = None
    leased: bool = True


@dataclass(frozen=True)
class Finish:
    outcome: Outcome
    vendor_done: str | None = None
    report_joins: bool = False


@dataclass(frozen=True)
class Reported:
    pass


@dataclass(frozen=True)
class Defer:
    message: JobMessage
    delay_s: float


@dataclass(frozen=True)
class ToDeadLetter:
    reason: str
    park: bool = True


@dataclass(frozen=True)
class Drop:
    note: str


Decision = Continue | Finish | Reported | Defer | ToDeadLetter | Drop
