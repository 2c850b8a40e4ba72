"""The operator actions as plain functions (for tests and scripts); the CLI uses :mod:`scf_relay.operations`.

``list_dead`` lists dead letters, ``redrive`` sends them back, ``fail`` gives up a letter's task through the
normal report path (see :mod:`scf_relay.operations.failing`).
"""

from __future__ import annotations

import time
from typing import Any

from jobqueue.ledger.base import Ledger
from jobqueue.queue.base import DeadLetterStore, Queue
from relay_core.domain import ErrorReason
from scf_relay.operations.audit import operator_name
from scf_relay.operations.failing import fail_letter
from scf_relay.operations.letters import Filters, LetterView, read_all, resolve, select
from scf_relay.operations.redrive import redrive_letters


def list_dead(dead: DeadLetterStore, limit: int = 100, task_id: str | None = None) -> list[LetterView]:
    """Up to ``limit`` dead letters (only ``task_id``'s when given), oldest first."""
    return select(read_all(dead), Filters(task=task_id))[:limit] if task_id else read_all(dead)[:limit]


def redrive(
    dead: DeadLetterStore,
    ledger: Ledger,
    message_ids: list[str] | None,
    *,
    rate_per_s: float = 0.0,
    resubmit: bool = False,
) -> list[str]:
    """Send dead letters back (all when ``message_ids`` is None; unique prefixes accepted, an unknown id raises
    :class:`~scf_relay.operations.letters.IdProblem`); returns the ids moved."""
    views = read_all(dead)
    chosen = views if message_ids is None else resolve(message_ids, views)
    return redrive_letters(dead, ledger, chosen, rate_per_s=rate_per_s, resubmit=resubmit).moved


def fail(
    dead: DeadLetterStore,
    queue: Queue,
    ledger: Ledger,
    message_id: str,
    reason: ErrorReason = ErrorReason.GIVEN_UP,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Give up the task of one dead letter: record ``failed`` with its REPORT and send that; drop the letter.
    Raises IdProblem when there is no such dead letter."""
    [view] = resolve([message_id], read_all(dead))
    result = fail_letter(dead, queue, ledger, view, reason, time.time(), operator=operator_name(), force=force)
    return {**vars(result), "message_id": view.message_id, "ok": result.ok}
