"""The consumer as a long-lived worker (self-hosted on Redis, or SQLite on one machine).

``concurrency`` threads share one set of backends and each runs the same drain loop the SCF function runs.
Threads, not asyncio: every step is blocking I/O on clients that are thread-safe (httpx, redis-py pools,
one SQLite connection per thread), and steps are short.

Stopping: SIGTERM or SIGINT sets a flag; each thread finishes the step it is in, receives nothing more, and the
process exits 0. A message received but not started stays invisible until its visibility timeout, then comes
back (never lost). A second signal does not kill in-flight steps either; use SIGKILL for that (also safe: the
message is redelivered and the ledger makes the repeat harmless).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from consumer.drain import Budget, DrainStats, drain
from scf_relay import logs

log = logs.get("worker")
HEARTBEAT_S = 5.0


class Worker:
    def __init__(self, svc, concurrency: int = 1, *, idle_sleep_s: float = 0.5, health_file: Path | None = None):
        self.svc = svc
        self.concurrency = concurrency
        self.idle_sleep_s = idle_sleep_s
        self.health_file = health_file
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._totals = DrainStats()
        self._started = time.time()

    @classmethod
    def from_env(cls, concurrency: int, **kwargs) -> Worker:
        from consumer.services import build_services
        from scf_relay.settings import load

        settings = load()
        logs.setup(settings.log_level)
        return cls(build_services(settings), concurrency, **kwargs)

    def stop(self, *_: object) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: finishing in-flight steps")
        self.stopping.set()

    def run(self, *, until_idle: bool = False) -> dict:
        """Run until stopped (or, with ``until_idle``, until the queue has nothing pending). Returns totals."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info("worker started", extra={"concurrency": self.concurrency, "pid": os.getpid()})
        threads = [
            threading.Thread(target=self._loop, args=(until_idle,), name=f"consumer-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            self._heartbeat()
            for thread in threads:
                thread.join(timeout=HEARTBEAT_S / max(1, len(threads)))
        self._heartbeat()
        self.svc.close()
        summary = self.summary()
        log.info("worker stopped", extra=summary)
        return summary

    def _loop(self, until_idle: bool) -> None:
        while not self.stopping.is_set():
            try:
                stats = drain(self.svc, Budget(None), stop=self.stopping.is_set)
            except Exception:  # noqa: BLE001 - queue backend down: log, back off, try again
                log.exception("drain failed; retrying")
                self.stopping.wait(max(self.idle_sleep_s, 2.0))
                continue
            self._add(stats)
            if stats.stopped_by == "idle":
                if until_idle and self._nothing_pending():
                    self.stopping.set()
                    break
                self.stopping.wait(self.idle_sleep_s)

    def _nothing_pending(self) -> bool:
        try:
            return self.svc.queue.stats().pending == 0
        except NotImplementedError:  # a queue without stats (CMQ data plane): idle receive is all we know
            return True

    def _add(self, stats: DrainStats) -> None:
        with self._lock:
            t = self._totals
            t.received += stats.received
            t.sent += stats.sent
            t.acked += stats.acked
            t.dead_lettered += stats.dead_lettered
            t.errors += stats.errors

    def summary(self) -> dict:
        with self._lock:
            t = self._totals
            return {
                "received": t.received,
                "sent": t.sent,
                "acked": t.acked,
                "dead_lettered": t.dead_lettered,
                "errors": t.errors,
                "uptime_s": round(time.time() - self._started, 1),
                "stopping": self.stopping.is_set(),
            }

    def _heartbeat(self) -> None:
        if self.health_file is None:
            return
        data = {"pid": os.getpid(), "at": time.time(), **self.summary()}
        tmp = self.health_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.health_file)
