"""Process trees from ``/proc`` (Linux): a system's worker processes, their CPU time and peak RSS."""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree(roots: list[int]) -> list[int]:
    """``roots`` and every live descendant."""
    children = _children()
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def leaves(roots: list[int]) -> list[int]:
    """The processes of the trees under ``roots`` that have no children: those that run the tasks (a Dramatiq
    master only supervises its worker processes)."""
    children = _children()
    return [pid for pid in tree(roots) if not children.get(pid)]


def cpu_s(pids: list[int]) -> float:
    """User + system seconds of ``pids`` (with their reaped children), as far as they are still alive."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:  # utime stime cutime cstime are fields 14-17
            total += sum(int(v) for v in fields[11:15])
    return total / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """``VmHWM``: the process's peak resident set, MiB (0 when it is gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
