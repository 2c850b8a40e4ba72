"""Redis for the peer benchmark: a private ``redis-server`` (so ``INFO commandstats`` counts only this benchmark),
command counts from ``INFO commandstats``, and a ``MONITOR`` pass that splits client-sent commands from the
ones run inside Lua scripts.

``INFO commandstats`` counts every command, those a script runs included (the script call counts too); MONITOR
marks script-internal commands ``[<db> lua]`` and client commands ``[<db> <addr>]``, so its lines filtered on the
benchmark's DB give both numbers even on a shared server. MONITOR slows the server: never during timed runs.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """``redis-server`` on a free loopback port, no persistence; a context manager. ``url`` names DB ``db``."""

    def __init__(self, db: int = 11) -> None:
        self.port = free_port()
        self.db = db
        self.url = f"redis://127.0.0.1:{self.port}/{db}"
        self._dir = tempfile.mkdtemp(prefix="bench-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: pass --redis URL of a running server")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._proc = subprocess.Popen([*args, "--dir", self._dir], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)


def commands_total(client: redis.Redis) -> int:
    """Every command the server has run (``INFO commandstats``, script-internal ones included).

    The ``INFO`` asking is not counted yet, so the difference of two readings includes exactly one ``INFO``
    (the first reading's): :func:`commands_between` takes it off."""
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def commands_between(before: int, after: int) -> int:
    return after - before - 1


def server_version(client: redis.Redis) -> str:
    return str(client.info("server")["redis_version"])


@dataclass(frozen=True)
class MonitorCount:
    sent: int  # commands clients sent on the DB
    lua: int  # commands run inside scripts on the DB

    @property
    def total(self) -> int:
        return self.sent + self.lua


_LINE = re.compile(rb"^\d+\.\d+ \[(\d+) (\S+)\]")


class Monitor:
    """``redis-cli MONITOR`` into a file while the ``with`` block runs; :meth:`count` after it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.db = int((parts.path or "/0").strip("/") or 0)
        self._args = ["redis-cli", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 6379), "MONITOR"]
        self._file = tempfile.NamedTemporaryFile(prefix="bench-monitor-", delete=False)
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self.elapsed_s = 0.0  # how long MONITOR was on (the window its counts cover)

    def __enter__(self) -> Monitor:
        self._started = time.monotonic()
        self._proc = subprocess.Popen(self._args, stdout=self._file)
        time.sleep(0.3)  # MONITOR is on before the work starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self.elapsed_s = time.monotonic() - self._started
        self._file.close()

    def count(self) -> MonitorCount:
        sent = lua = 0
        path = Path(self._file.name)
        with path.open("rb") as lines:
            for line in lines:
                match = _LINE.match(line)
                if match is None or int(match.group(1)) != self.db:
                    continue
                if match.group(2) == b"lua":
                    lua += 1
                else:
                    sent += 1
        path.unlink(missing_ok=True)
        return MonitorCount(sent, lua)
