"""``worker --until-idle`` decides idleness from the ledger, the same on every backend (a CMQ queue without
statistics included): no task may lack an outcome or a reported one, except tasks parked in the DLQ."""

from __future__ import annotations

import pytest

from jobqueue import open_ledger
from relay_core.domain import Outcome, Status
from scf_relay.worker import ledger_settled


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    opened = open_ledger(url)
    yield opened
    opened.close()


def test_settled_only_when_every_outcome_is_reported(ledger):
    assert ledger_settled(ledger)
    ledger.claim_submit("t-1", "tok", lease_s=60, deadline_at=2000.0, now=1000.0)
    assert not ledger_settled(ledger)  # running: no outcome yet
    ledger.record_outcome("t-1", Outcome(Status.DONE, result_keys=("output/a.png",)), now=1010.0)
    assert not ledger_settled(ledger)  # the backend has not acknowledged the report
    ledger.mark_reported("t-1", now=1011.0)
    assert ledger_settled(ledger)


def test_tasks_parked_in_the_dead_letter_queue_do_not_hold_it_up(ledger):
    ledger.claim_submit("t-2", "tok", lease_s=60, deadline_at=2000.0, now=1000.0)
    ledger.begin_hop("t-2", 1, lease_s=60, now=1001.0)
    ledger.release_hop("t-2", 1, now=1002.0, parked=True)
    assert ledger.get("t-2").parked_at is not None
    assert ledger_settled(ledger)
