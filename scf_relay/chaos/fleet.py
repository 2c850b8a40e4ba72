"""A fleet of ``scf-relay worker`` processes that a chaos run SIGKILLs at random and restarts at once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def worker_command(concurrency: int, crash_rate: float) -> list[str]:
    """``scf-relay worker`` through this interpreter (the console script may not be on PATH)."""
    base = [sys.executable, "-c", "from scf_relay.cli.app import main; main()"]
    return [*base, "worker", "--concurrency", str(concurrency), "--crash-rate", str(crash_rate), "--json"]


@dataclass
class Slot:
    """One place in the fleet: the process running in it now and how its predecessors ended."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    generation: int = 0
    killed_by_us: bool = False
    started_at: float = 0.0  # time.monotonic() of the current process's start


@dataclass
class FleetCounts:
    started: int = 0
    sigkilled: int = 0  # by the chaos driver
    crashed_at_boundary: int = 0  # killed themselves at an effect boundary (--crash-rate)
    other_exits: dict[str, int] = field(default_factory=dict)


class Fleet:
    """``size`` worker processes; :meth:`supervise` restarts any that died, :meth:`kill_one` SIGKILLs one."""

    def __init__(self, size: int, concurrency: int, crash_rate: float, log_dir: Path, env: dict[str, str]) -> None:
        self.command = worker_command(concurrency, crash_rate)
        self.log_dir = log_dir
        self.env = env
        self.slots = [Slot(i) for i in range(size)]
        self.counts = FleetCounts()
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        slot.generation += 1
        slot.killed_by_us = False
        slot.started_at = time.monotonic()
        slot.log = (self.log_dir / f"worker-{slot.index}-{slot.generation:03d}.log").open("wb")
        slot.proc = subprocess.Popen(
            self.command, env=self.env, stdout=subprocess.DEVNULL, stderr=slot.log, stdin=subprocess.DEVNULL
        )
        self.counts.started += 1

    def supervise(self) -> None:
        """Restart every worker that has ended, counting how it ended."""
        with self._lock:
            for slot in self.slots:
                if slot.proc is None or slot.proc.poll() is None:
                    continue
                code = slot.proc.returncode
                if slot.log:
                    slot.log.close()
                if slot.killed_by_us:
                    self.counts.sigkilled += 1
                elif code == -signal.SIGKILL:
                    self.counts.crashed_at_boundary += 1
                else:
                    self.counts.other_exits[str(code)] = self.counts.other_exits.get(str(code), 0) + 1
                self._spawn(slot)

    def kill_one(self, rng: random.Random, min_uptime_s: float = 0.0) -> bool:
        """SIGKILL a random worker that has been up ``min_uptime_s`` (a fleet killed while it still imports
        would make no progress at all on a slow machine); ``False`` when none qualifies."""
        now = time.monotonic()
        with self._lock:
            alive = [
                s
                for s in self.slots
                if s.proc is not None and s.proc.poll() is None and now - s.started_at >= min_uptime_s
            ]
            if alive:
                slot = rng.choice(alive)
                slot.killed_by_us = True
                assert slot.proc is not None
                os.kill(slot.proc.pid, signal.SIGKILL)
            return bool(alive)

    def stop(self, timeout_s: float = 30.0, progress: Callable[[str], None] | None = None) -> None:
        """SIGTERM every worker (in-flight steps finish), then SIGKILL what is left after ``timeout_s``."""
        with self._lock:
            procs = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    if progress:
                        progress(f"worker {proc.pid} ignored SIGTERM for {timeout_s} s: killing it")
                    proc.kill()
                    proc.wait()
            for slot in self.slots:
                if slot.log:
                    slot.log.close()
