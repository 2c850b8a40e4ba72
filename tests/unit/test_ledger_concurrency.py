"""Ledger races: many workers at once on one task, round after round, for SQLite and the real Redis.

Each thread opens its own ledger (its own connection, like separate workers) and waits on a barrier so the
calls really overlap. For SQLite a few spawned processes race as well. Checked: exactly one claim is
acquired; racing outcomes all get the first one back; racing ``advance`` calls end at the highest seq.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from jobqueue.ledger.base import ClaimState, Ledger
from relay_core.domain import Outcome, Status

NOW = 1_700_000_000.0
THREADS = 12
PROCESSES = 3
ROUNDS = 20  # races per test: a narrow window shows up more often than in one race
BARRIER_TIMEOUT_S = 20.0
T = TypeVar("T")


def _open(backend: str, tmp_path: Path, redis_url: str | None) -> Ledger:
    if backend == "sqlite":
        from jobqueue.ledger.sqlite import SqliteLedger

        return SqliteLedger(tmp_path / "ledger.db")
    from jobqueue.ledger.redis import RedisLedger

    return RedisLedger.from_url(redis_url)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def open_ledger(request, tmp_path) -> Callable[[], Ledger]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return lambda: _open(request.param, tmp_path, redis_url)


def _race(open_ledger: Callable[[], Ledger], call: Callable[[Ledger, int, int], T]) -> list[list[T]]:
    """``THREADS`` workers, each on its own ledger, run ``call(ledger, worker, round)`` for ``ROUNDS`` rounds,
    all released together before each round so every round is a real race. Returns ``results[worker][round]``.
    """
    barrier = threading.Barrier(THREADS)

    def work(worker: int) -> list[T]:
        try:
            with open_ledger() as ledger:
                results = []
                for round_ in range(ROUNDS):
                    barrier.wait(timeout=BARRIER_TIMEOUT_S)
                    results.append(call(ledger, worker, round_))
                return results
        except BaseException:
            barrier.abort()  # the others fail at once instead of waiting out the timeout
            raise

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(work, range(THREADS)))


def _outcome(n: int) -> Outcome:
    return Outcome(Status.FAILED, error_reason=f"reason-{n}", detail=f"worker {n}")


def _seq_batches(count: int, workers: int) -> list[list[int]]:
    seqs = list(range(count))
    random.Random(7).shuffle(seqs)
    return [seqs[i::workers] for i in range(workers)]


def test_exactly_one_racing_claim_is_acquired(open_ledger):
    def claim(ledger: Ledger, worker: int, round_: int) -> ClaimState:
        return ledger.claim_submit(f"t{round_}", f"token-{worker}", 60, NOW + 600, NOW).state

    per_worker = _race(open_ledger, claim)

    for round_ in range(ROUNDS):
        states = sorted(states[round_].value for states in per_worker)
        assert states == ["acquired"] + ["held"] * (THREADS - 1), f"round {round_}"
    winner = next(n for n, states in enumerate(per_worker) if states[0] is ClaimState.ACQUIRED)
    with open_ledger() as ledger:
        for n in range(THREADS):
            if n != winner:
                assert not ledger.record_submission("t0", f"token-{n}", "v-loser", NOW + 1)
        assert ledger.record_submission("t0", f"token-{winner}", "v-winner", NOW + 1)


def test_racing_outcomes_all_get_the_first_one_back(open_ledger):
    per_worker = _race(
        open_ledger, lambda ledger, worker, round_: ledger.record_outcome(f"t{round_}", _outcome(worker), NOW)
    )

    with open_ledger() as ledger:
        for round_ in range(ROUNDS):
            stored = ledger.get(f"t{round_}").outcome
            assert stored in [_outcome(n) for n in range(THREADS)]
            assert all(o[round_] == stored and o[round_].detail == stored.detail for o in per_worker), round_


def test_racing_advances_end_at_the_highest_seq(open_ledger):
    top = THREADS * ROUNDS - 1
    batches = _seq_batches(top + 1, THREADS)
    risen = _race(open_ledger, lambda ledger, worker, round_: ledger.advance("t1", batches[worker][round_], NOW))

    with open_ledger() as ledger:
        assert ledger.seq_handled("t1") == top
    top_rises = [
        ok for seqs, oks in zip(batches, risen, strict=True) for seq, ok in zip(seqs, oks, strict=True) if seq == top
    ]
    assert top_rises == [True]


# -- across processes (SQLite) ----------------------------------------------------------------------
def _process_worker(path: str, worker: int, seqs: list[int], barrier, results) -> None:
    """Runs in a spawned process: per round, claim and record an outcome for task ``t{round}`` and advance
    task ``seq``, released together with the other processes by a shared barrier."""
    from jobqueue.ledger.sqlite import SqliteLedger

    rounds = []
    with SqliteLedger(path) as ledger:
        for round_, seq in enumerate(seqs):
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
            claim = ledger.claim_submit(f"t{round_}", f"proc-{worker}", 60, NOW + 600, NOW)
            outcome = ledger.record_outcome(f"t{round_}", _outcome(worker), NOW)
            ledger.advance("seq", seq, NOW)
            rounds.append((claim.state.value, outcome.dumps()))
    results.put(rounds)


def test_sqlite_races_across_processes(tmp_path):
    from jobqueue.ledger.sqlite import SqliteLedger

    path = str(tmp_path / "ledger.db")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    batches = _seq_batches(PROCESSES * ROUNDS, PROCESSES)
    procs = [
        ctx.Process(target=_process_worker, args=(path, n, batches[n], barrier, results)) for n in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    per_process = [results.get(timeout=BARRIER_TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join(timeout=BARRIER_TIMEOUT_S)
        assert proc.exitcode == 0

    with SqliteLedger(path) as ledger:
        for round_ in range(ROUNDS):
            states = sorted(rounds[round_][0] for rounds in per_process)
            assert states == ["acquired"] + ["held"] * (PROCESSES - 1), f"round {round_}"
            stored = ledger.get(f"t{round_}").outcome.dumps()
            assert all(rounds[round_][1] == stored for rounds in per_process), f"round {round_}"
        assert ledger.seq_handled("seq") == PROCESSES * ROUNDS - 1
