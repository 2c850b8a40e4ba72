"""Local store cost per task: files created for a 12-result task, and write/head operations per second.

    python -m bench.store_ops [--tasks 200] [--ops 3000] [--kib 64] [--rounds 3] [--dir /dev/shm] [--json]

* **Per task**: the store calls a 12-result task makes in the consumer (collect: ``head`` then
  ``write(overwrite=False)`` of each result into ``staging/``; audit: ``head``, ``get_bytes``, ``head`` and
  ``copy(if_etag)`` to ``output/``; report: ``delete_prefix`` of ``staging/``) on ``--kib`` KiB results, counted
  with an audit hook (``sys.addaudithook``): files created (``open`` with ``O_CREAT``), renames, hard links,
  directories made, unlinks, xattrs set; and timed as tasks/s.
* **Operations**: ``write`` (overwriting one of 12 keys in turn) and ``head`` of a written object, per second.

The baseline, run in the same script on the same directory, is what plain files cost without any of the
store's guarantees: ``open(path, "wb").write`` for a write (no atomic commit, no etag), ``os.stat`` for a head,
``shutil.copyfile`` for a copy, ``os.unlink`` for a delete. Store and baseline alternate (``--rounds``, medians).
``--dir`` defaults to ``/dev/shm`` (tmpfs) where it exists. Results go to ``bench/results/store_ops.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR

RESULTS_PATH = RESULTS_DIR / "store_ops.json"
RESULTS_PER_TASK = 12
BUCKET = "relay-bench"
_JPEG_HEAD = b"\xff\xd8\xff\xe0"

_counting = False
_events: Counter[str] = Counter()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Counts the filesystem effects while ``_counting`` (an audit hook cannot be removed once added)."""
    if not _counting:
        return
    if event == "open":
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        if flags & os.O_CREAT and not isinstance(args[0], int):  # os.fdopen(fd) wraps a file, creates none
            _events["files created"] += 1
    elif event in ("os.rename", "os.link", "os.mkdir", "os.remove", "os.setxattr", "os.rmdir"):
        _events[event] += 1


def _store_task(store: Any, task: int, data: bytes) -> None:
    """The store calls of one 12-result task, in the consumer's order."""
    staging = f"staging/u1/t{task}/"
    for n in range(1, RESULTS_PER_TASK + 1):
        key = f"{staging}frame_{n:02}.jpg"
        if store.head(BUCKET, key) is None:
            store.write(BUCKET, key, [data], size=len(data), content_type="image/jpeg", overwrite=False)
    for n in range(1, RESULTS_PER_TASK + 1):
        key = f"{staging}frame_{n:02}.jpg"
        etag = store.head(BUCKET, key).etag
        store.get_bytes(BUCKET, key, limit=len(data) + 1)
        store.head(BUCKET, key)
        store.copy(BUCKET, key, f"output/u1/t{task}/frame_{n:02}.jpg", if_etag=etag)
    store.delete_prefix(BUCKET, staging)


def _plain_task(root: Path, task: int, data: bytes) -> None:
    """The same effects with plain files and no guarantees (the baseline)."""
    staging = root / BUCKET / "staging/u1" / f"t{task}"
    output = root / BUCKET / "output/u1" / f"t{task}"
    staging.mkdir(parents=True)
    output.mkdir(parents=True)
    for n in range(1, RESULTS_PER_TASK + 1):
        with open(staging / f"frame_{n:02}.jpg", "wb") as out:
            out.write(data)
    for n in range(1, RESULTS_PER_TASK + 1):
        source = staging / f"frame_{n:02}.jpg"
        os.stat(source)
        with open(source, "rb") as stream:
            stream.read(len(data) + 1)
        shutil.copyfile(source, output / f"frame_{n:02}.jpg")
    for n in range(1, RESULTS_PER_TASK + 1):
        os.unlink(staging / f"frame_{n:02}.jpg")
    staging.rmdir()


def _per_second(count: int, body: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(count):
        body(n)
    return count / (time.perf_counter() - started)


def _counted(body: Callable[[], object]) -> dict[str, int]:
    global _counting
    _events.clear()
    _counting = True
    try:
        body()
    finally:
        _counting = False
    return dict(sorted(_events.items()))


def run(tasks: int, ops: int, kib: int, rounds: int, parent: Path) -> dict[str, Any]:
    from objectstore.local import LocalStore

    sys.addaudithook(_audit)
    data = _JPEG_HEAD + os.urandom(kib * 1024 - len(_JPEG_HEAD))
    work = Path(tempfile.mkdtemp(prefix="store-ops-", dir=parent))
    rates: dict[str, list[float]] = {name: [] for name in ("task", "write", "head")}
    plain_rates: dict[str, list[float]] = {name: [] for name in ("task", "write", "head")}
    try:
        store = LocalStore(work / "store", BUCKET)
        plain_root = work / "plain"
        effects = _counted(lambda: _store_task(store, -1, data))
        plain_effects = _counted(lambda: _plain_task(plain_root, -1, data))
        keys = [f"output/u1/w/frame_{n:02}.jpg" for n in range(RESULTS_PER_TASK)]
        plain_dir = plain_root / BUCKET / "output/u1/w"
        plain_dir.mkdir(parents=True)
        plain_paths = [plain_dir / f"frame_{n:02}.jpg" for n in range(RESULTS_PER_TASK)]
        for r in range(rounds):
            base = r * tasks
            rates["task"].append(_per_second(tasks, lambda n, base=base: _store_task(store, base + n, data)))
            plain_rates["task"].append(_per_second(tasks, lambda n, base=base: _plain_task(plain_root, base + n, data)))
            rates["write"].append(
                _per_second(ops, lambda n: store.write(BUCKET, keys[n % RESULTS_PER_TASK], [data], size=len(data)))
            )
            plain_rates["write"].append(_per_second(ops, lambda n: plain_paths[n % RESULTS_PER_TASK].write_bytes(data)))
            rates["head"].append(_per_second(ops, lambda n: store.head(BUCKET, keys[n % RESULTS_PER_TASK])))
            plain_rates["head"].append(_per_second(ops, lambda n: os.stat(plain_paths[n % RESULTS_PER_TASK])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = {}
    for name in rates:
        store_rate, plain_rate = statistics.median(rates[name]), statistics.median(plain_rates[name])
        rows[name] = {
            "store_per_s": round(store_rate, 1),
            "plain_per_s": round(plain_rate, 1),
            "store_over_plain": round(store_rate / plain_rate, 3),
        }
    return {
        "command": (
            f"python -m bench.store_ops --tasks {tasks} --ops {ops} --kib {kib} --rounds {rounds} --dir {parent}"
        ),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "object_kib": kib,
        "effects_per_task": {"store": effects, "plain": plain_effects},
        "rates": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks per round")
    parser.add_argument("--ops", type=int, default=3000, help="writes and heads per round")
    parser.add_argument("--kib", type=int, default=64, help="object size")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the store lives (default: /dev/shm)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    shm = Path("/dev/shm")
    parent = args.dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir()))
    result = run(args.tasks, args.ops, args.kib, args.rounds, parent)
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for who, effects in result["effects_per_task"].items():
        print(f"per 12-result task, {who:5}: {', '.join(f'{k} {v}' for k, v in effects.items())}")
    for name, row in result["rates"].items():
        print(
            f"{name:5}: store {row['store_per_s']}/s, plain files {row['plain_per_s']}/s "
            f"(store / plain = {row['store_over_plain']})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
