"""A local Tencent Cloud for the end-to-end flow, and what the cloud test asserts with.

:func:`local_cloud` starts the three signature-checking servers of ``tests/servers`` on loopback, all
holding the same temporary credentials (SecretId, SecretKey, session token, as an SCF role injects them):

* COS (``LocalCosServer``, moto behind the COS dialect) with the stack's bucket ``relay-1250000000``;
* the CMQ data plane (``LocalCmqServer``) with the work queue and its dead-letter queue (policy 0), more
  with :meth:`LocalCloud.add_queues`;
* API 3.0 (``LocalApi3Server``): IMS ``ImageModeration`` and VM video tasks, which block files carrying
  ``RELAY-EMULATOR-BLOCK``; the VM reads staged videos from the COS server through the SDK.

:meth:`LocalCloud.env` is the ``env=`` of a :class:`~scf_relay.demo.stack.LocalStack`: ``RELAY_STORE=cos://``,
``RELAY_QUEUE=cmq://``, ``RELAY_AUDITOR=tencent``, the ledger on SQLite and ``TENCENTCLOUD_*``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relay_core.filetypes import sniff
from scf_relay.demo.stack import BUCKET
from tests.servers.api3_server import LocalApi3Server
from tests.servers.cmq_server import LocalCmqServer
from tests.servers.cos_server import LocalCosServer

SECRET_ID = "AKIDcloudflowtest"
SECRET_KEY = "cloud-flow-secret-key"
TOKEN = "cloud-flow-session-token"
COS_REGION = "ap-guangzhou"
QUEUE = "relay_jobs"
DLQ = "relay_dead"
QUEUE_VISIBILITY_S = 5  # longer than any one step here; a crashed step's message is back within seconds
DLQ_VISIBILITY_S = 1  # listing a CMQ DLQ hides what it lists (docs/platform.md §2): keep that short
MAX_RECEIVE_COUNT = 5  # the work queue's MaxReceiveCount: equal to RELAY_MAX_RECEIVE_COUNT (default 5)
VIDEO_TRY_IN_S = 1  # the VM's TryInSeconds hint while a video task is PENDING / RUNNING
BIZ_TYPE = "relay_video"  # the moderation policy id (VM requires one)

REPORT_KEYS_DONE = {"taskId", "status", "resultUrls", "vendorTaskId"}
REPORT_KEYS_FAILED = {"taskId", "status", "errorReason", "vendorTaskId"}


@dataclass
class LocalCloud:
    cos: LocalCosServer
    cmq: LocalCmqServer
    api3: LocalApi3Server

    def add_queues(self, queue: str, dlq: str) -> None:
        """A work queue with a short visibility timeout, dead-lettering to ``dlq`` after MAX_RECEIVE_COUNT."""
        self.cmq.create_queue(dlq, visibility_timeout_s=DLQ_VISIBILITY_S)
        self.cmq.create_queue(
            queue, visibility_timeout_s=QUEUE_VISIBILITY_S, dlq=dlq, max_receive_count=MAX_RECEIVE_COUNT
        )

    def env(self, home: Path, queue: str = QUEUE, dlq: str = DLQ, queue_params: str = "") -> dict[str, str]:
        """``RELAY_*`` and ``TENCENTCLOUD_*`` pointing a LocalStack at these servers (ledger: SQLite in ``home``).

        ``queue_params`` is appended to the ``cmq://`` URL (e.g. ``&dlq_search_s=2``)."""
        return {
            "RELAY_STORE": f"cos://{BUCKET}?region={COS_REGION}&endpoint={self.cos.endpoint}",
            "RELAY_QUEUE": f"cmq://{queue}?region=gz&dlq={dlq}&endpoint={self.cmq.endpoint}{queue_params}",
            "RELAY_AUDITOR": f"tencent?region={COS_REGION}&biz_type={BIZ_TYPE}&endpoint={self.api3.endpoint}",
            "RELAY_LEDGER": f"sqlite:///{home.resolve() / 'ledger.db'}",
            "RELAY_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            "TENCENTCLOUD_SECRETID": SECRET_ID,
            "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
        }

    # -- reading the bucket through the SDK, independently of the store under test ----------------
    def keys(self, prefix: str) -> list[str]:
        listing = self.cos.sdk_client().list_objects(Bucket=BUCKET, Prefix=prefix, MaxKeys=1000)
        return sorted(item["Key"] for item in listing.get("Contents") or [])

    def read(self, key: str) -> bytes:
        return read_object(self.cos, BUCKET, key)


@contextlib.contextmanager
def local_cloud() -> Iterator[LocalCloud]:
    """The three servers, started and provisioned; stopped on exit."""
    with contextlib.ExitStack() as stack:
        cos = stack.enter_context(LocalCosServer(SECRET_ID, SECRET_KEY, TOKEN, region=COS_REGION))
        cos.create_bucket(BUCKET)  # each server is its own process with its own buckets: the name is free
        cmq = stack.enter_context(LocalCmqServer(SECRET_ID, SECRET_KEY, TOKEN))
        api3 = stack.enter_context(LocalApi3Server(SECRET_ID, SECRET_KEY, TOKEN))
        api3.vm.try_in_s = VIDEO_TRY_IN_S
        api3.vm.object_reader = lambda bucket, key: read_object(cos, bucket, key)
        cloud = LocalCloud(cos, cmq, api3)
        cloud.add_queues(QUEUE, DLQ)
        yield cloud


def read_object(cos: LocalCosServer, bucket: str, key: str) -> bytes:
    body = cos.sdk_client().get_object(Bucket=bucket, Key=key)["Body"]
    return body.get_raw_stream().read()


# -- assertions -------------------------------------------------------------------------------------
def one_verified_report(stack: Any, task_id: str) -> dict:
    """The single signed report of ``task_id``, with only the backend's fields."""
    reports = stack.receiver.by_task().get(task_id, [])
    assert len(reports) == 1, f"{task_id}: {len(reports)} reports"
    assert reports[0].verified
    body = reports[0].body
    allowed = REPORT_KEYS_DONE if body["status"] == "done" else REPORT_KEYS_FAILED
    assert {"taskId", "status"} <= set(body) <= allowed, body
    return body


def assert_published(cloud: LocalCloud, user_id: str, task_id: str, names: list[str], kind: str) -> None:
    """Exactly ``names`` under ``output/{user}/{task}/`` in the bucket, each of file type ``kind``."""
    prefix = f"output/{user_id}/{task_id}/"
    keys = cloud.keys(prefix)
    assert keys == [prefix + name for name in names]
    for key in keys:
        assert sniff(cloud.read(key)[:16]) == kind, key
