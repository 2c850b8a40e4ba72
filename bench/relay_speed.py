"""Relay speed: a result download through the consumer's path against a plain httpx loop, same file, same server.

    python -m bench.relay_speed [--mb 1024] [--runs 3] [--dir /dev/shm] [--json]

A loopback server in its own process (:mod:`bench.result_server`) serves a ``--mb`` MiB JPEG-headed file. Two
paths download it to a file under ``--dir`` (default ``/dev/shm`` where it exists: tmpfs, so the disk does not
set the pace), each in a fresh interpreter per run, in rotated order (plain, relay, then relay, plain, ...):

* ``plain`` (the baseline): ``httpx.Client().stream("GET")``, ``iter_bytes(1 MiB)``, each chunk written to an
  open file: no checks, no checksum;
* ``relay``: ``ResultFetcher.copy_to_store`` into a ``LocalStore``, as the collect step does: URL and address
  checks, pinned connection, deadline, size limit, type sniffing, md5 etag, atomic commit.

Reported: MB/s of each run (the transfer only; interpreter start and imports are outside the clock), the
medians, ``relay / plain`` (target of issue 11: ≥ 0.8), the CPU seconds per GiB (all threads: the relay's md5
runs in a helper thread, so it needs the second core to be free to keep up), the child's peak RSS and its growth
during the transfer (``ru_maxrss``), and the ``tracemalloc`` peak of one extra traced run of each path (tracing
slows a run down, so those runs are not timed). Results go to ``bench/results/relay_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR
from bench.result_server import CHUNK, served_elsewhere

RESULTS_PATH = RESULTS_DIR / "relay_speed.json"
PATHS = ("plain", "relay")
TARGET_RATIO = 0.8
_BUCKET = "relay-bench"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    """CPU time of this process, every thread, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _plain(url: str, directory: Path) -> tuple[float, int]:
    """The baseline loop; returns (seconds, bytes written)."""
    import httpx

    target = directory / "plain.bin"
    with httpx.Client(timeout=60) as client:
        started = time.perf_counter()
        with client.stream("GET", url) as response, open(target, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
        elapsed = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return elapsed, size


def _relay(url: str, directory: Path) -> tuple[float, int]:
    """The consumer's download path into the local store; returns (seconds, bytes stored)."""
    from consumer.fetch import ResultFetcher
    from objectstore.local import LocalStore

    store = LocalStore(directory / "store", _BUCKET)
    fetcher = ResultFetcher([], allow_private=True)
    size = int(url.rsplit("/", 1)[-1])
    started = time.perf_counter()
    info, _ = fetcher.copy_to_store(url, store, _BUCKET, "staging/u/t/result.jpg", max_bytes=size, types=("jpeg",))
    elapsed = time.perf_counter() - started
    store.delete(_BUCKET, info.key)
    return elapsed, info.size


def run_one(path: str, url: str, directory: Path, trace: bool) -> dict[str, Any]:
    """One download in this process (the child's side)."""
    import consumer.fetch  # noqa: F401 - imports before the RSS baseline, for both paths alike
    import objectstore.local  # noqa: F401

    before = _rss_mib()
    if trace:
        tracemalloc.start()
    cpu_before = _cpu_s()
    elapsed, size = (_plain if path == "plain" else _relay)(url, directory)
    cpu = _cpu_s() - cpu_before
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    tracemalloc.stop()
    after = _rss_mib()
    return {
        "path": path,
        "bytes": size,
        "seconds": round(elapsed, 4),
        "mb_per_s": round(size / CHUNK / elapsed, 1),
        "cpu_s_per_gib": round(cpu / (size / CHUNK / 1024), 2),
        "peak_rss_mib": round(after, 1),
        "rss_growth_mib": round(after - before, 1),
        "tracemalloc_peak_mib": None if traced_peak is None else round(traced_peak / CHUNK, 2),
    }


def _child(path: str, url: str, directory: Path, trace: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.relay_speed", "--one", path, "--url", url, "--dir", str(directory)]
    done = subprocess.run(command + (["--trace"] if trace else []), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{path} run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _default_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def run(mb: int, runs: int, parent_dir: Path) -> dict[str, Any]:
    size = mb * CHUNK
    directory = Path(tempfile.mkdtemp(prefix="relay-speed-", dir=parent_dir))
    try:
        with served_elsewhere() as base_url:
            url = f"{base_url}/{size}"
            timed: list[dict[str, Any]] = []
            for n in range(runs):
                for path in PATHS if n % 2 == 0 else reversed(PATHS):
                    timed.append(_child(path, url, directory))
            traced = {path: _child(path, url, directory, trace=True) for path in PATHS}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    sound = all(row["bytes"] == size for row in [*timed, *traced.values()])
    summary: dict[str, Any] = {}
    for path in PATHS:
        rows = [row for row in timed if row["path"] == path]
        summary[path] = {
            "median_mb_per_s": round(statistics.median(r["mb_per_s"] for r in rows), 1),
            "median_cpu_s_per_gib": round(statistics.median(r["cpu_s_per_gib"] for r in rows), 2),
            "runs_mb_per_s": [r["mb_per_s"] for r in rows],
            "max_peak_rss_mib": max(r["peak_rss_mib"] for r in rows),
            "max_rss_growth_mib": max(r["rss_growth_mib"] for r in rows),
            "tracemalloc_peak_mib": traced[path]["tracemalloc_peak_mib"],
        }
    ratio = summary["relay"]["median_mb_per_s"] / summary["plain"]["median_mb_per_s"]
    return {
        "command": f"python -m bench.relay_speed --mb {mb} --runs {runs} --dir {parent_dir}",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "mb": mb,
        "sound": sound,
        "runs": timed,
        "traced_runs": list(traced.values()),
        "summary": summary,
        "ratio_relay_over_plain": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each path (rotated order)")
    parser.add_argument("--dir", type=Path, default=None, help="where the files are written")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", choices=PATHS, help=argparse.SUPPRESS)  # a child's single run
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.url, args.dir, args.trace)))
        return 0
    result = run(args.mb, args.runs, args.dir or _default_dir())
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for path in PATHS:
            row = result["summary"][path]
            print(
                f"{path:5}: median {row['median_mb_per_s']} MB/s (runs {row['runs_mb_per_s']}), "
                f"{row['median_cpu_s_per_gib']} CPU s/GiB, peak RSS "
                f"{row['max_peak_rss_mib']} MiB (+{row['max_rss_growth_mib']} during the transfer), "
                f"tracemalloc peak {row['tracemalloc_peak_mib']} MiB"
            )
        verdict = "met" if result["target_met"] else "NOT met"
        print(f"relay / plain = {result['ratio_relay_over_plain']} (target >= {TARGET_RATIO}: {verdict})")
    return 0 if result["sound"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
