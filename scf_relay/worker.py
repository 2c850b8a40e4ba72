"""The consumer as a long-lived service: ``scf-relay worker`` (self-hosted on Redis, or SQLite on one machine).

Concurrency: ``concurrency`` threads share one set of backends and each runs the drain loop the SCF function
runs (:func:`consumer.drain.drain`), one receive batch at a time. Threads, not asyncio: every step is blocking
I/O on clients that are thread-safe (httpx, redis-py pools, one SQLite connection per thread) and steps are
short, so threads give the same overlap without a second, async copy of every client.

Stopping: the first SIGTERM or SIGINT (or :meth:`Worker.stop`) sets a flag. Each thread finishes the step it
is in, receives nothing more, and :meth:`Worker.run` returns. Messages a thread had received in its batch but
not started are released back to the queue at once (on CMQ, which cannot release, they come back after their
visibility timeout; never lost). A second signal exits at once with 128 + the signal number: the
steps it cuts short are redelivered after their visibility timeout and the ledger makes the repeat harmless,
exactly as after SIGKILL.

Exit codes (``summary["exit_code"]``; ``scf-relay worker`` exits with it):

====  ==========================================================================================
0     stopped gracefully by a signal or :meth:`stop`, or ``until_idle`` found nothing pending
1     gave up: the queue backend failed without a break for ``give_up_after_s``
2     configuration error, one line naming the variable (``ConfigError`` from :meth:`from_env`)
130   forced by a second SIGINT (143: a second SIGTERM); in-flight steps are redelivered later
====  ==========================================================================================

Health: with ``health_file``, a JSON object is rewritten atomically every ``heartbeat_s`` and on every state
change: ``pid``, ``state`` (running | stopping | stopped), ``at`` (unix s), ``started_at``, ``uptime_s``,
``last_step_at``, ``backend_failing_since`` and the counts of :meth:`summary`. A probe treats the worker as
healthy while ``state`` is ``running`` and ``at`` is younger than three heartbeats.

Logs: JSON lines on stderr (:mod:`relay_core.logs`). Every step ends with a ``step`` line carrying
``task_id``, ``stage``, ``seq``, the decision and ``step_ms``; a message that comes back after a crash or an
expired visibility timeout logs ``message redelivered`` with its ``receive_count``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from consumer.decisions import Continue, Decision, Drop, ToDeadLetter
from consumer.drain import Budget, DrainStats, Hooks, drain
from consumer.housekeeping import Housekeeping
from consumer.services import Services
from jobqueue.ledger.base import Ledger
from jobqueue.message import JobMessage, task_of
from jobqueue.queue.base import Received
from relay_core import logs

log = logs.get("worker")

EXIT_OK, EXIT_BACKEND_FAILED = 0, 1
#: acknowledgements of messages that needed no work (duplicates, stale hops, already finished tasks)
DROPPED_NOTES = frozenset({"stale", "finished", "already reported"})


class Worker:
    """``concurrency`` consumer threads on ``svc``. Closes ``svc`` at the end only if it built it (from_env)."""

    def __init__(
        self,
        svc: Services,
        concurrency: int = 1,
        *,
        idle_sleep_s: float = 0.5,
        health_file: Path | None = None,
        heartbeat_s: float = 5.0,
        give_up_after_s: float = 300.0,
        backend_retry_s: float = 2.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.svc = svc
        self.hooks = Hooks(on_receive=self._on_receive, on_step=self._on_step)
        self.housekeeping = Housekeeping(svc.settings.housekeeping_interval_s)
        self.concurrency = concurrency
        self.idle_sleep_s = idle_sleep_s
        self.health_file = Path(health_file) if health_file is not None else None
        self.heartbeat_s = heartbeat_s
        self.give_up_after_s = give_up_after_s
        self.backend_retry_s = backend_retry_s
        self.stopping = threading.Event()
        self.owns_services = False
        self._lock = threading.RLock()  # re-entrant: the signal handler may run while the main thread holds it
        self._totals = DrainStats()
        self._dropped = 0
        self._redelivered = 0
        self._started_at = time.time()
        self._last_step_at: float | None = None
        self._failing_since: float | None = None  # unix s of the first failure in a row
        self._signals = 0
        self._stopped_by = ""
        self._exit_code = EXIT_OK
        self._state = "running"

    @classmethod
    def from_env(cls, concurrency: int, **kwargs: Any) -> Worker:
        """Build the backends from ``RELAY_*``; raises ``ConfigError`` (exit code 2) naming the variable."""
        from consumer.services import build_services
        from jobqueue.errors import QueueConfigError
        from relay_core.errors import ConfigError
        from relay_core.pipelines import PipelineConfigError
        from relay_core.settings import load

        settings = load()
        logs.setup(settings.log_level)
        try:
            svc = build_services(settings)
        except QueueConfigError as exc:
            raise ConfigError(str(exc)) from None
        except PipelineConfigError as exc:
            raise ConfigError(f"RELAY_PIPELINES: {exc}") from None
        worker = cls(svc, concurrency, **kwargs)
        worker.owns_services = True
        return worker

    # -- stopping ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the steps in progress, receive nothing more; :meth:`run` then returns. Thread-safe."""
        self._request_stop("stop")

    def _request_stop(self, why: str, exit_code: int = EXIT_OK) -> None:
        with self._lock:
            if self._stopped_by:
                return
            self._stopped_by, self._exit_code, self._state = why, exit_code, "stopping"
        self.stopping.set()

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now; in-flight steps will be redelivered", extra={"signal": name})
            os._exit(128 + signum)
        log.info("stop requested: finishing in-flight steps (send again to exit at once)", extra={"signal": name})
        self._request_stop("signal")

    # -- running -------------------------------------------------------------------------------
    def run(self, *, until_idle: bool = False) -> dict:
        """Run until stopped (or, with ``until_idle``, until every task has a reported outcome and the queue,
        where its backend can tell, holds nothing ready, delayed or in flight; see :func:`ledger_settled`).

        Returns :meth:`summary`, whose ``exit_code`` is the process's. Signal handlers are installed only
        when called from the main thread, and the previous ones are restored on return.
        """
        previous = self._install_signal_handlers()
        log.info(
            "worker started",
            extra={"concurrency": self.concurrency, "pid": os.getpid(), "queue": repr(self.svc.queue)},
        )
        threads = [
            threading.Thread(target=self._loop, args=(until_idle,), name=f"consumer-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        try:
            for thread in threads:
                thread.start()
            self._supervise(threads)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            with self._lock:
                self._state = "stopped"
            self._write_health()
            if self.owns_services:
                self.svc.close()
        return self._log_end(self.summary())

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)
        return previous

    def _supervise(self, threads: list[threading.Thread]) -> None:
        """Write the heartbeat every ``heartbeat_s`` (and prune the ledger when due) until every consumer thread
        has ended."""
        while any(t.is_alive() for t in threads):
            self._write_health()
            if not self.stopping.is_set():
                self.housekeeping.run_if_due(self.svc)
            tick = time.monotonic() + self.heartbeat_s
            for thread in threads:
                thread.join(timeout=max(0.0, tick - time.monotonic()))

    def _loop(self, until_idle: bool) -> None:
        batch = self.svc.settings.receive_batch
        while not self.stopping.is_set():
            try:
                stats = drain(
                    self.svc, Budget(None), stop=self.stopping.is_set, max_messages=batch, hooks=self.hooks
                )
                idle = stats.stopped_by == "idle" and stats.received == 0
                finished = idle and until_idle and self._nothing_pending()
            except Exception as exc:  # noqa: BLE001 - the queue backend is down: back off, maybe give up
                self._backend_failed(exc)
                continue
            self._add(stats)
            if finished:
                log.info("nothing pending: stopping")
                self._request_stop("idle")
            elif idle:
                self.stopping.wait(self.idle_sleep_s)

    def _nothing_pending(self) -> bool:
        """Whether the work is done, decided the same way on every backend: the ledger has no task without a
        reported outcome (:func:`ledger_settled`); then, where the queue's operator plane has statistics, it
        counts nothing ready, delayed or in flight (a message not yet received has no ledger record)."""
        from jobqueue import open_queue_admin

        if not ledger_settled(self.svc.ledger):
            return False
        settings = self.svc.settings
        with open_queue_admin(settings.queue_url(), max_receive_count=settings.max_receive_count) as admin:
            source = admin.stats_source()
            return source is None or source.stats().pending == 0

    def _backend_failed(self, exc: Exception) -> None:
        now = time.time()
        with self._lock:
            first = self._failing_since is None
            since = self._failing_since = now if self._failing_since is None else self._failing_since
            failing_for_s = now - since
        fields = {"error": f"{type(exc).__name__}: {exc}", "failing_for_s": round(failing_for_s, 1)}
        if failing_for_s >= self.give_up_after_s:
            log.error("queue backend kept failing: giving up", extra=fields)
            self._request_stop("backend_failed", EXIT_BACKEND_FAILED)
            return
        if first:
            log.exception("queue backend failing; retrying", extra=fields)
        else:
            log.warning("queue backend still failing; retrying", extra=fields)
        self.stopping.wait(self.backend_retry_s)

    # -- bookkeeping ---------------------------------------------------------------------------
    def _add(self, stats: DrainStats) -> None:
        with self._lock:
            self._failing_since = None
            t = self._totals
            t.received += stats.received
            t.sent += stats.sent
            t.acked += stats.acked
            t.dead_lettered += stats.dead_lettered
            t.errors += stats.errors

    def _on_step(self, msg: JobMessage | None, decision: Decision, elapsed_ms: float) -> None:
        """After every applied step (a drain hook): count it and log one ``step`` line."""
        fields: dict[str, Any] = {"decision": type(decision).__name__.lower(), "step_ms": round(elapsed_ms, 1)}
        if isinstance(decision, Continue):
            fields.update(next_stage=decision.message.stage.value, delay_s=round(decision.delay_s, 2))
        elif isinstance(decision, Drop):
            fields["note"] = decision.note
        elif isinstance(decision, ToDeadLetter):
            fields["reason"] = decision.reason
        with self._lock:
            self._last_step_at = time.time()
            self._dropped += isinstance(decision, Drop) and decision.note in DROPPED_NOTES
        if msg is None:
            log.info("step", extra=fields)
            return
        with logs.bind(task_id=msg.task_id, stage=msg.stage.value, seq=msg.seq):
            log.info("step", extra=fields)

    def _on_receive(self, received: Received) -> None:
        """Every received message (a drain hook): one that comes back after a crash or timeout is logged."""
        if received.receive_count <= 1:
            return
        with self._lock:
            self._redelivered += 1
        with logs.bind(task_id=task_of(received.body)):
            log.warning(
                "message redelivered",
                extra={"message_id": received.message_id, "receive_count": received.receive_count},
            )

    def summary(self) -> dict:
        """Counts so far, ``stopped_by`` (``""`` while running, else signal | stop | idle | backend_failed) and
        the ``exit_code`` it implies. ``dropped``: duplicate or stale messages acknowledged without work."""
        with self._lock:
            t = self._totals
            return {
                "received": t.received,
                "sent": t.sent,
                "acked": t.acked,
                "dead_lettered": t.dead_lettered,
                "dropped": self._dropped,
                "redelivered": self._redelivered,
                "errors": t.errors,
                "uptime_s": round(time.time() - self._started_at, 1),
                "stopped_by": self._stopped_by,
                "exit_code": self._exit_code,
            }

    def _log_end(self, summary: dict) -> dict:
        if summary["exit_code"] == EXIT_OK:
            log.info("worker stopped gracefully", extra=summary)
        else:
            log.error("worker stopped: backend failed", extra=summary)
        return summary

    def _write_health(self) -> None:
        if self.health_file is None:
            return
        summary = self.summary()
        with self._lock:
            state, last_step_at, failing = self._state, self._last_step_at, self._failing_since
        data = {
            "pid": os.getpid(),
            "state": state,
            "at": round(time.time(), 3),
            "started_at": round(self._started_at, 3),
            "last_step_at": _rounded(last_step_at),
            "backend_failing_since": _rounded(failing),
            "concurrency": self.concurrency,
            **summary,
        }
        tmp = self.health_file.with_name(f".{self.health_file.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.health_file)
        except OSError as exc:  # a full or read-only disk must not stop the consumer
            log.warning("could not write the health file", extra={"path": str(self.health_file), "error": str(exc)})


def _rounded(unix_s: float | None) -> float | None:
    return None if unix_s is None else round(unix_s, 3)


#: later than any deadline or outcome time: "every task" for the ledger's index queries
_FAR_FUTURE = 1e15
_SETTLED_SCAN = 1000


def ledger_settled(ledger: Ledger) -> bool:
    """True when no task lacks an outcome or a reported one, leaving out tasks parked in the dead-letter queue
    (an operator decides those; waiting for them would never end). Scans at most 1,000 records of each index."""
    open_tasks = ledger.open_tasks(_FAR_FUTURE, limit=_SETTLED_SCAN)
    unreported = ledger.unreported(_FAR_FUTURE, limit=_SETTLED_SCAN)
    return all(record.parked_at is not None for record in (*open_tasks, *unreported))
