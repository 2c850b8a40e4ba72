"""Client-side counts of what a process sends to Redis: commands and round trips (redis-py, patched in place).

A command is one ``send_command`` or one entry of a pipeline; a round trip is one write of packed commands to a
socket (a pipeline is one). Commands run inside Lua scripts are not visible here (the server counts those: see
:mod:`bench.private_redis`). :func:`install` patches redis-py's connection class once per process.

In a subprocess (the worker), :func:`install_with_dump` also writes the counts to a JSON file whenever the
process gets SIGUSR1, so a benchmark can read them at the edges of its windows: :func:`read_counts`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_counts = {"commands": 0, "round_trips": 0}
_installed = False


def install() -> None:
    """Count every command and round trip of this process from now on (idempotent)."""
    global _installed
    from redis.connection import AbstractConnection

    if _installed:
        return
    _installed = True
    send_packed = AbstractConnection.send_packed_command
    send_command = AbstractConnection.send_command
    pack_commands = AbstractConnection.pack_commands

    def counted_send_packed(self: Any, command: Any, check_health: bool = True) -> Any:
        with _lock:
            _counts["round_trips"] += 1
        return send_packed(self, command, check_health)

    def counted_send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            _counts["commands"] += 1
        return send_command(self, *args, **kwargs)

    def counted_pack_commands(self: Any, commands: Any) -> Any:
        commands = list(commands)
        with _lock:
            _counts["commands"] += len(commands)
        return pack_commands(self, commands)

    AbstractConnection.send_packed_command = counted_send_packed  # type: ignore[method-assign]
    AbstractConnection.send_command = counted_send_command  # type: ignore[method-assign]
    AbstractConnection.pack_commands = counted_pack_commands  # type: ignore[method-assign]


def counts() -> dict[str, int]:
    """The counts so far."""
    with _lock:
        return dict(_counts)


def install_with_dump(path: Path) -> None:
    """:func:`install`, and write ``{"commands", "round_trips", "seq"}`` to ``path`` on every SIGUSR1."""
    install()
    seq = 0

    def dump(_signum: int, _frame: object) -> None:
        nonlocal seq
        seq += 1
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**counts(), "seq": seq}), encoding="utf-8")
        os.replace(tmp, path)

    signal.signal(signal.SIGUSR1, dump)


def read_counts(pid: int, path: Path, timeout_s: float = 5.0) -> dict[str, int]:
    """Ask the process ``pid`` (set up by :func:`install_with_dump`) for its counts and wait for them."""
    before = json.loads(path.read_text(encoding="utf-8"))["seq"] if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {"seq": before}
        if data["seq"] > before:
            return {k: int(v) for k, v in data.items() if k != "seq"}
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} wrote no counts to {path}")


def counted_cli_command(dump_path: Path, *args: str) -> list[str]:
    """``scf-relay <args>`` in this interpreter with the counts installed (see :func:`install_with_dump`)."""
    code = (
        "import sys, pathlib; from bench import redis_counting as c; "
        f"c.install_with_dump(pathlib.Path({str(dump_path)!r})); "
        "from scf_relay.cli.app import main; sys.argv[0] = 'scf-relay'; main()"
    )
    return [sys.executable, "-c", code, *args]
