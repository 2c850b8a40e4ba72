"""Memory does not grow with file size: peak Python heap while results stream from HTTP into the store.

    python -m bench.memory [--sizes-mb 8,64,256] [--json]

A loopback HTTP server (:mod:`bench.result_server`) generates each result on the fly (a JPEG header, then
zeros), and the consumer's ``ResultFetcher`` streams it into the local store with the same size and type checks
collect uses; then the stored object is streamed back the way the submit step spools an input. ``tracemalloc``
measures the peak of each run; the ratio of the largest file's peak to the smallest's shows whether memory follows
file size (1.0 = flat). Results go to ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import RESULTS_DIR
from bench.result_server import CHUNK, result_app
from vendors.emulator.serving import LoopbackWsgiServer

RESULTS_PATH = RESULTS_DIR / "memory.json"


def measure(size_bytes: int, base_url: str, root: Path) -> dict:
    from consumer.fetch import ResultFetcher
    from objectstore.base import iter_file
    from objectstore.local import LocalStore

    store = LocalStore(root, "relay-1250000000")
    fetcher = ResultFetcher([], allow_private=True)
    tracemalloc.start()
    started = time.perf_counter()
    info, _ = fetcher.copy_to_store(
        f"{base_url}/{size_bytes}",
        store,
        store.default_bucket,
        "staging/u/t/x.jpg",
        max_bytes=size_bytes,
        types=("jpeg",),
    )
    download_s = time.perf_counter() - started
    _, download_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool, store.open_read(store.default_bucket, info.key) as src:
        for chunk in iter_file(src):
            spool.write(chunk)
    _, spool_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    fetcher.close()
    store.delete(store.default_bucket, info.key)
    return {
        "size_mb": size_bytes // CHUNK,
        "download_peak_mb": round(download_peak / CHUNK, 2),
        "spool_peak_mb": round(spool_peak / CHUNK, 2),
        "download_mb_per_s": round(size_bytes / CHUNK / download_s, 1),
    }


def run(sizes_mb: list[int]) -> dict:
    with LoopbackWsgiServer(result_app, name="bench-memory") as server, tempfile.TemporaryDirectory() as tmp:
        rows = [measure(mb * CHUNK, server.base_url, Path(tmp)) for mb in sizes_mb]
    small, large = rows[0], rows[-1]
    return {
        "command": f"python -m bench.memory --sizes-mb {','.join(map(str, sizes_mb))}",
        "rows": rows,
        "download_peak_ratio_largest_over_smallest": round(large["download_peak_mb"] / small["download_peak_mb"], 2),
        "size_ratio_largest_over_smallest": round(large["size_mb"] / small["size_mb"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", default="8,64,256")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run([int(s) for s in args.sizes_mb.split(",")])
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for row in result["rows"]:
            print(
                f"{row['size_mb']:6} MB: download peak {row['download_peak_mb']} MB, spool peak "
                f"{row['spool_peak_mb']} MB, {row['download_mb_per_s']} MB/s"
            )
        print(
            f"peak ratio largest/smallest: {result['download_peak_ratio_largest_over_smallest']} "
            f"for a size ratio of {result['size_ratio_largest_over_smallest']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
