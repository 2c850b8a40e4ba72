"""Ledger races: many workers at once on one task, round after round, for SQLite and the real Redis.

Each thread opens its own ledger (its own connection, like separate workers) and waits on a barrier so the
calls really overlap; a few spawned processes race as well. Checked: exactly one claim is acquired; racing
outcomes all get the first one back; racing ``advance`` calls end at the highest seq; the backends' ``_save``
is a compare-and-set on the version, so mixed writers on one task stay linearizable; a call that keeps
losing its compare-and-set gives up with ``BackendUnavailable`` instead of spinning.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from jobqueue.errors import BackendUnavailable
from jobqueue.ledger.base import MAX_TRIES, ClaimState, Ledger, TaskRecord
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
def open_ledger(request, tmp_path) -> Iterator[Callable[[], Ledger]]:
    """Opens the backend under test (a new connection to the same state each call); closes them all after."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    opened: list[Ledger] = []

    def make() -> Ledger:
        opened.append(_open(request.param, tmp_path, redis_url))
        return opened[-1]

    yield make
    for ledger in opened:
        ledger.close()


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
        assert ledger.get("t1").seq == top
    top_rises = [
        ok for seqs, oks in zip(batches, risen, strict=True) for seq, ok in zip(seqs, oks, strict=True) if seq == top
    ]
    assert top_rises == [True]


# -- compare-and-set ------------------------------------------------------------------------------------
def test_save_is_a_compare_and_set_on_the_version(open_ledger):
    ledger = open_ledger()
    first = replace(TaskRecord.blank("t1", NOW), version=1)
    assert ledger._load("t1") is None
    assert ledger._save(first, 0)
    assert not ledger._save(replace(first, seq=9), 0)  # a second insert loses
    assert ledger._load("t1") == first
    assert ledger._save(replace(first, seq=3, version=2), 1)
    assert not ledger._save(replace(first, seq=9, version=2), 1)  # written from a stale read
    assert ledger._load("t1") == replace(first, seq=3, version=2)


def test_versions_are_compared_exactly_however_large(open_ledger):
    ledger = open_ledger()
    big = 2**60  # beyond 2**53, where a double can no longer tell big from big + 1
    record = replace(TaskRecord.blank("t1", NOW), version=big)
    assert ledger._save(record, 0)
    assert not ledger._save(replace(record, seq=1, version=big + 2), big + 1)
    assert ledger._save(replace(record, seq=2, version=big + 1), big)
    assert ledger._load("t1").version == big + 1
    assert ledger.advance("t1", 3, NOW) and ledger.get("t1").version == big + 2


@pytest.mark.parametrize("shared", [False, True], ids=["two-connections", "one-connection"])
def test_racing_writers_on_one_task_stay_linearizable(open_ledger, shared):
    """Two threads × 200 rounds of advance + record_outcome + begin_hop on one task: no lost update (the
    version counts every write that reported a change), one outcome, the handled seq never goes down."""
    ledgers = [open_ledger()] * 2 if shared else [open_ledger(), open_ledger()]
    barrier = threading.Barrier(2)
    rounds = 200

    def work(n: int) -> tuple[int, list[Outcome], list[str]]:
        ledger, rises, outcomes, errors, seen = ledgers[n], 0, [], [], -1
        barrier.wait(timeout=20)
        for i in range(rounds):
            seq = 2 * i + n  # thread 0 advances to even seqs, thread 1 to odd ones
            rises += ledger.advance("t1", seq, NOW + i)
            handled = ledger.get("t1").seq
            if handled < max(seq, seen):
                errors.append(f"seq {handled} after {max(seq, seen)}")
            seen = handled
            outcomes.append(ledger.record_outcome("t1", Outcome(Status.FAILED, error_reason=f"{n}-{i}"), NOW + i))
            ledger.begin_hop("t1", 2 * rounds + i, 30, NOW + i)  # both threads race for each hop
        return rises, outcomes, errors

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(work, range(2)))
    record = ledgers[0].get("t1")
    assert [errors for _, _, errors in results] == [[], []]
    assert record.seq == 2 * rounds - 1
    assert {o for _, outcomes, _ in results for o in outcomes} == {record.outcome}
    hops = rounds  # each hop is begun once: the loser of each race sees it BUSY
    assert record.version == sum(rises for rises, _, _ in results) + 1 + hops
    assert record.hop_seq == 3 * rounds - 1


def test_a_call_that_keeps_losing_the_race_gives_up(tmp_path):
    """Another writer changes the task between every load and save: the call retries ``MAX_TRIES`` times, then
    raises ``BackendUnavailable`` (a Transient: the message comes back later)."""
    from jobqueue.ledger.sqlite import SqliteLedger

    rival = SqliteLedger(tmp_path / "ledger.db")
    loads = []

    class Contended(SqliteLedger):
        def _load(self, task_id: str) -> TaskRecord | None:
            record = super()._load(task_id)
            loads.append(record)
            rival.advance(task_id, len(loads), NOW)  # the other worker writes right after each read
            return record

    with rival, Contended(tmp_path / "ledger.db") as ledger:
        with pytest.raises(BackendUnavailable, match="kept changing"):
            ledger.record_outcome("t1", _outcome(0), NOW)
        assert len(loads) == MAX_TRIES
        assert rival.get("t1").outcome is None and rival.get("t1").seq == MAX_TRIES


# -- across processes ---------------------------------------------------------------------------------
def _process_worker(
    backend: str, tmp: str, redis_url: str | None, worker: int, seqs: list[int], barrier, results
) -> None:
    """Runs in a spawned process: per round, claim and record an outcome for task ``t{round}`` and advance
    task ``seq``, released together with the other processes by a shared barrier."""
    rounds = []
    with _open(backend, Path(tmp), redis_url) as ledger:
        for round_, seq in enumerate(seqs):
            barrier.wait(timeout=BARRIER_TIMEOUT_S)
            claim = ledger.claim_submit(f"t{round_}", f"proc-{worker}", 60, NOW + 600, NOW)
            outcome = ledger.record_outcome(f"t{round_}", _outcome(worker), NOW)
            ledger.advance("seq", seq, NOW)
            rounds.append((claim.state.value, outcome.dumps()))
    results.put(rounds)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_races_across_processes(backend, tmp_path, request):
    redis_url = request.getfixturevalue("redis_url") if backend == "redis" else None
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    batches = _seq_batches(PROCESSES * ROUNDS, PROCESSES)
    procs = [
        ctx.Process(target=_process_worker, args=(backend, str(tmp_path), redis_url, n, batches[n], barrier, results))
        for n in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    per_process = [results.get(timeout=BARRIER_TIMEOUT_S) for _ in procs]
    for proc in procs:
        proc.join(timeout=BARRIER_TIMEOUT_S)
        assert proc.exitcode == 0

    with _open(backend, tmp_path, redis_url) as ledger:
        for round_ in range(ROUNDS):
            states = sorted(rounds[round_][0] for rounds in per_process)
            assert states == ["acquired"] + ["held"] * (PROCESSES - 1), f"round {round_}"
            stored = ledger.get(f"t{round_}").outcome.dumps()
            assert all(rounds[round_][1] == stored for rounds in per_process), f"round {round_}"
        assert ledger.get("seq").seq == PROCESSES * ROUNDS - 1
