"""A local COS-compatible server for tests, and store factories built on it.

``LocalCosServer(secret_id, secret_key, token=None)`` starts :mod:`servers.cos_app` (moto's S3 backend behind
a COS dialect layer that verifies COS signatures) in a child process bound to 127.0.0.1 on an OS-chosen port::

    with LocalCosServer("AKIDtest", "secret") as server:
        bucket = server.create_bucket()                  # unique name; the server serves only its own buckets
        store = server.store(bucket)                     # a CosStore through the real SDK over HTTP
        server.fail_upload_part(nth=2)                   # the 2nd UploadPart request answers 500
        server.operations()                              # [(operation, bucket, key, status), ...]

The child process (not a thread) keeps moto's memory out of the tracemalloc measurements of the code under
test and gives every server its own moto state; it exits when :meth:`stop` closes its stdin, or when this
process dies. Startup takes about a second, so share a server per module and use a bucket per test.

For the shared store contract: ``make_cos_store(tmp_path)`` returns a :class:`CosStore` on a fresh bucket of a
process-wide server started on first use and stopped at interpreter exit; ``cos_leftovers(store)`` lists the
incomplete multipart uploads a failed write left in the store's bucket.
"""

from __future__ import annotations

import atexit
import os
import select
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from objectstore.cos import MIB, CosStore
from tencent_plumbing.credentials import CredentialsProvider, static_credentials

TESTS_DIR = Path(__file__).resolve().parents[1]
APPID = "1250000000"
REGION = "ap-guangzhou"
STARTUP_TIMEOUT_S = 30.0


class LocalCosServer:
    def __init__(
        self,
        secret_id: str = "AKIDlocaltest",
        secret_key: str = "local-test-secret-key",
        token: str | None = None,
        region: str = REGION,
    ) -> None:
        self.secret_id, self.secret_key, self.token, self.region = secret_id, secret_key, token, region
        self.endpoint = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"LocalCosServer(endpoint={self.endpoint!r})"

    # -- lifetime ----------------------------------------------------------------------------
    def start(self) -> LocalCosServer:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])),
            "COS_SERVER_SECRET_ID": self.secret_id,
            "COS_SERVER_SECRET_KEY": self.secret_key,
            "COS_SERVER_TOKEN": self.token or "",
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "servers.cos_app"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], STARTUP_TIMEOUT_S)
        line = self._process.stdout.readline().decode() if ready else ""
        if not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"the local COS server did not start (said {line!r})")
        self.endpoint = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin:
            process.stdin.close()  # the child exits at EOF on stdin
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()

    def __enter__(self) -> LocalCosServer:
        return self.start() if self._process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------
    def create_bucket(self, name: str | None = None) -> str:
        """Create ``name`` (default: a unique ``relaytest-<hex>-<appid>``) and return it."""
        name = name or f"relaytest-{uuid.uuid4().hex[:12]}-{APPID}"
        self._control("POST", f"buckets/{name}")
        return name

    def fail_operation(self, operation: str, nth: int = 1, times: int = 1, status: int = 500) -> None:
        """Answer ``status`` to requests ``nth`` .. ``nth + times - 1`` of ``operation``, counted from now
        (``"UploadPart"``, ``"PutObject"``, ``"CompleteMultipartUpload"``, ...: see ``cos_app.classify``)."""
        self._control("POST", "faults", json={"operation": operation, "nth": nth, "times": times, "status": status})

    def fail_upload_part(self, nth: int, times: int = 1) -> None:
        """Answer 500 to the ``nth`` UploadPart request from now (and the ``times - 1`` after it)."""
        self.fail_operation("UploadPart", nth, times)

    def operations(self, bucket: str | None = None) -> list[tuple[str, str, str, int]]:
        """``(operation, bucket, key, http_status)`` of every request so far, oldest first."""
        rows = [tuple(row) for row in self._control("GET", "operations")]
        return [row for row in rows if bucket is None or row[1] == bucket]  # type: ignore[misc]

    def _control(self, method: str, command: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.endpoint}/_local/{command}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    # -- clients -----------------------------------------------------------------------------
    def credentials(self) -> CredentialsProvider:
        return static_credentials(self.secret_id, self.secret_key, self.token)

    def store(self, bucket: str, credentials: CredentialsProvider | None = None, **options: Any) -> CosStore:
        """A :class:`CosStore` on ``bucket`` through this server (``options`` go to the constructor)."""
        return CosStore(
            bucket,
            region=self.region,
            endpoint=self.endpoint,
            credentials=credentials or self.credentials(),
            **options,
        )

    def store_url(self, bucket: str, **params: Any) -> str:
        extra = "".join(f"&{name}={value}" for name, value in params.items())
        return f"cos://{bucket}?region={self.region}&endpoint={self.endpoint}{extra}"

    def sdk_client(self) -> Any:
        """A raw ``CosS3Client`` for assertions the store does not offer (e.g. ``list_multipart_uploads``)."""
        from qcloud_cos import CosConfig, CosS3Client

        port = int(self.endpoint.rsplit(":", 1)[1])
        config = CosConfig(
            Region=self.region,
            SecretId=self.secret_id,
            SecretKey=self.secret_key,
            Token=self.token,
            Scheme="http",
            IP="127.0.0.1",
            Port=port,
        )
        return CosS3Client(config, retry=0)

    def incomplete_uploads(self, bucket: str) -> list[str]:
        """Keys of the multipart uploads started and neither completed nor aborted in ``bucket``."""
        listing = self.sdk_client().list_multipart_uploads(Bucket=bucket)
        return sorted(upload["Key"] for upload in listing.get("Upload") or [])


# -- the shared server behind the contract-suite factory -----------------------------------------
_shared: LocalCosServer | None = None


def shared_cos_server() -> LocalCosServer:
    """One server per test process, started on first use and stopped at interpreter exit."""
    global _shared
    if _shared is None:
        _shared = LocalCosServer().start()
        atexit.register(_shared.stop)
    return _shared


def make_cos_store(tmp_path: Path) -> CosStore:
    """A CosStore on a new empty bucket of the shared server (``tmp_path`` is unused; the factory signature).

    Parts are 1 MiB with 2 in flight, so a write holds about 3 MiB of parts whatever the object size.
    """
    server = shared_cos_server()
    return server.store(server.create_bucket(), part_size_bytes=1 * MIB, parallel_parts=2)


def cos_leftovers(store: Any) -> list[str]:
    """What a failed write left behind in the store's bucket: incomplete multipart uploads, by key."""
    return shared_cos_server().incomplete_uploads(store.default_bucket)
