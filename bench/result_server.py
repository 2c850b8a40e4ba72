"""A loopback HTTP server of generated vendor results, for the download benchmarks.

``GET /<size>`` answers ``size`` bytes with a ``Content-Length``: a JPEG head, then zeros, written a MiB at a
time (no copy per MiB), so the server costs little next to the client it feeds.

In-process: ``LoopbackWsgiServer(result_app)``. In its own process (so that it takes neither the client's GIL
nor its memory): ``with served_elsewhere() as base_url: ...``, which runs ``python -m bench.result_server`` and
stops it when the block ends.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from vendors.emulator.serving import LoopbackWsgiServer

CHUNK = 1024 * 1024
JPEG_HEAD = b"\xff\xd8\xff\xe0" + b"\0" * 12
_ZEROS = b"\0" * CHUNK


def result_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """``GET /<size>``: a JPEG head, then zeros, streamed a MiB at a time."""
    size = int(environ["PATH_INFO"].rsplit("/", 1)[-1])
    start_response("200 OK", [("content-length", str(size)), ("content-type", "image/jpeg")])
    yield JPEG_HEAD[:size]
    left = size - len(JPEG_HEAD)
    while left > 0:
        yield _ZEROS if left >= CHUNK else _ZEROS[:left]
        left -= CHUNK


@contextlib.contextmanager
def served_elsewhere() -> Iterator[str]:
    """The base URL of a result server running in a child process, for the duration of the block."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.result_server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"the result server did not start (said {base_url!r})")
        yield base_url
    finally:
        if child.stdin is not None:
            child.stdin.close()  # end of stdin: the server stops
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> int:
    """Serve until stdin closes; the first line on stdout is the base URL."""
    with LoopbackWsgiServer(result_app, name="bench-results") as server:
        print(server.base_url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
