"""The three systems as the benchmark drives them: start the worker processes, wait until they consume, enqueue
tasks, stop them. Each :class:`System` runs inside a :class:`~scf_relay.demo.stack.LocalStack`, whose RunningHub
emulator and report receiver every system shares the way of.

* ``scf-relay``: ``scf-relay worker --concurrency 4`` × 2 on a Redis queue and ledger, the stack's local store;
  tasks enter through the producer shim (one COS event each), as in production. Worker settings are the defaults.
* ``dramatiq``: ``dramatiq bench.peers.dramatiq_app --processes 2 --threads 4`` (:mod:`bench.peers.dramatiq_app`).
* ``celery``: ``celery -A bench.peers.celery_app worker --pool threads --concurrency 4`` × 2.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.peers.chain import ChainConfig
from scf_relay.demo.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, THREADS = 2, 4
#: LocalStack's knobs for in-process ticks, not the worker's: the worker runs with its defaults
STACK_ONLY_SETTINGS = ("RELAY_RECEIVE_WAIT_S", "RELAY_STEP_MARGIN_S", "RELAY_REPORT_RETRY_S", "RELAY_LOG_LEVEL")
PEER_MODULES = {"dramatiq": "dramatiq", "celery": "celery"}


def missing_dependencies(name: str) -> list[str]:
    """The modules system ``name`` needs that are not installed (the ``bench`` extra)."""
    module = PEER_MODULES.get(name)
    return [module] if module and importlib.util.find_spec(module) is None else []


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


class System:
    """One system's worker processes. ``start`` → ``enqueue`` → ``stop``; ``roots`` are the processes started."""

    name = ""

    def __init__(self, stack: LocalStack, redis_url: str, home: Path) -> None:
        self.stack = stack
        self.redis_url = redis_url
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Any] = []
        (home / "logs").mkdir(parents=True, exist_ok=True)

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _spawn(self, command: list[str], env: dict[str, str], log_name: str) -> None:
        log = (self.home / "logs" / log_name).open("wb")
        self._logs.append(log)
        self.procs.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

    def start(self, timeout_s: float = 60.0) -> None:
        raise NotImplementedError

    def prepare(self, n_tasks: int) -> Any:
        """Everything before the clock starts (inputs in place); returns what :meth:`enqueue` sends."""
        raise NotImplementedError

    def enqueue(self, prepared: Any) -> None:
        raise NotImplementedError

    def stop(self, timeout_s: float = 30.0) -> list[int | None]:
        """SIGTERM each process, wait for a graceful exit (SIGKILL after ``timeout_s``); returns exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                codes.append(None)
        for log in self._logs:
            log.close()
        return codes

    def log_tail(self, chars: int = 2000) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}" for path in (self.home / "logs").iterdir()
        )

    def _wait(self, ready: Any, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"{self.name}: a worker process exited at start\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: workers not ready after {timeout_s} s\n{self.log_tail()}")
            time.sleep(0.05)


class ScfRelay(System):
    name = "scf-relay"

    def __init__(self, stack: LocalStack, redis_url: str, home: Path) -> None:
        super().__init__(stack, redis_url, home)
        self.run_id = uuid.uuid4().hex[:8]

    @staticmethod
    def stack_env(redis_url: str) -> dict[str, str]:
        """The ``RELAY_*`` overrides of the stack (the shim in this process, the workers): queue and ledger on
        Redis under a fresh prefix."""
        url = f"{redis_url}?prefix=bench-{uuid.uuid4().hex[:12]}"
        return {"RELAY_QUEUE": url, "RELAY_LEDGER": url, "RELAY_LOG_LEVEL": "WARNING"}

    def start(self, timeout_s: float = 60.0) -> None:
        from bench.two_workers import worker_command

        env = _env({})
        for name in STACK_ONLY_SETTINGS:
            env.pop(name, None)
        for i in range(PROCESSES):
            self._spawn(worker_command("--concurrency", str(THREADS)), env, f"scf-relay-{i}.log")
        logs = [self.home / "logs" / f"scf-relay-{i}.log" for i in range(PROCESSES)]
        self._wait(lambda: all(b'"worker started"' in path.read_bytes() for path in logs), timeout_s)

    def prepare(self, n_tasks: int) -> list[dict]:
        from vendors.emulator.media import make_jpeg

        return [
            self.stack.upload(f"bench-{self.run_id}-{i:04d}", f"seller-{i % 4 + 1}", "model_pose12", make_jpeg(seed=i))
            for i in range(n_tasks)
        ]

    def enqueue(self, prepared: list[dict]) -> None:
        for event in prepared:
            self.stack.deliver(event)


class Peer(System):
    """A peer: its workers get the chain's configuration in ``BENCH_PEERS_*`` and touch a ready file each."""

    module = ""

    def __init__(self, stack: LocalStack, redis_url: str, home: Path) -> None:
        super().__init__(stack, redis_url, home)
        assert stack.emulator is not None and stack.receiver is not None and stack.backend_url
        self.config = ChainConfig(
            redis_url=redis_url,
            vendor_url=stack.emulator.base_url,
            api_key=stack.emulator.config.api_key,
            backend_url=stack.backend_url,
            secret=stack.secret,
            home=home,
        )
        self.run_id = uuid.uuid4().hex[:8]

    def commands(self) -> list[list[str]]:
        raise NotImplementedError

    def start(self, timeout_s: float = 60.0) -> None:
        env = _env(self.config.env())
        for i, command in enumerate(self.commands()):
            self._spawn(command, env, f"{self.name}-{i}.log")
        ready = self.config.ready_dir()
        self._wait(lambda: ready.is_dir() and len(list(ready.iterdir())) >= PROCESSES, timeout_s)

    def prepare(self, n_tasks: int) -> list[str]:
        from vendors.emulator.media import make_jpeg

        folder = self.config.input_path("x").parent
        folder.mkdir(parents=True, exist_ok=True)
        task_ids = [f"bench-{self.run_id}-{i:04d}" for i in range(n_tasks)]
        for i, task_id in enumerate(task_ids):
            self.config.input_path(task_id).write_bytes(make_jpeg(seed=i))
        return task_ids

    def enqueue(self, prepared: list[str]) -> None:
        os.environ.update(self.config.env())  # the app module reads the broker URL when first imported
        app = importlib.import_module(self.module)
        app.enqueue(prepared)


class Dramatiq(Peer):
    name = "dramatiq"
    module = "bench.peers.dramatiq_app"

    def commands(self) -> list[list[str]]:
        options = ["--processes", str(PROCESSES), "--threads", str(THREADS)]
        return [[sys.executable, "-m", "dramatiq", self.module, *options]]


class Celery(Peer):
    name = "celery"
    module = "bench.peers.celery_app"

    def commands(self) -> list[list[str]]:
        base = [sys.executable, "-m", "celery", "-A", self.module, "worker", "--pool", "threads"]
        return [[*base, "--concurrency", str(THREADS), "-n", f"peer{i}@%h"] for i in range(PROCESSES)]


SYSTEMS: dict[str, type[System]] = {"scf-relay": ScfRelay, "dramatiq": Dramatiq, "celery": Celery}
