"""A redis-server of our own on a free loopback port, for measurements that read server-wide counters.

``INFO commandstats`` counts every client of a server, so a benchmark or test that divides its deltas by its
own work needs a server nobody else talks to (the shared one on 6379 serves every test run). The server keeps
nothing on disk and is stopped (by its pid) when the context ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: commands a measurement sends itself; left out of every count
MEASURING_COMMANDS = frozenset({"info", "ping", "client", "hello", "config"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis(binary: str = "redis-server", start_timeout_s: float = 10.0) -> Iterator[str]:
    """Start a redis-server on a free port; yields its URL (``redis://127.0.0.1:<port>/0``)."""
    import redis

    path = shutil.which(binary)
    if path is None:
        raise RuntimeError(f"{binary} is not on PATH: a private server is needed for exact command counts")
    port = _free_port()
    proc = subprocess.Popen(
        [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"redis-server on port {port} did not start: {err[-500:]}") from None
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def command_calls(client: object) -> dict[str, int]:
    """Calls per command name since the server started (``INFO commandstats``; commands run inside Lua scripts
    included, the measuring commands of :data:`MEASURING_COMMANDS` left out)."""
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    calls = {}
    for name, row in stats.items():
        command = name.removeprefix("cmdstat_")
        if command.split("|")[0] not in MEASURING_COMMANDS:
            calls[command] = int(row["calls"])
    return calls


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-name difference of two counter snapshots, names that did not change left out."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
