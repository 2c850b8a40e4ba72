"""Real backends around a scripted vendor, for testing the consumer's steps one decision at a time.

``ScriptedVendor`` is a small implementation of the Vendor protocol (not a mock): it answers from a script the
test writes, and records every call.
"""

from __future__ import annotations

import random
import time
from collections import deque
from typing import BinaryIO

from consumer.callback import BackendReporter
from consumer.fetch import ResultFetcher
from consumer.services import Services
from jobqueue.ledger.sqlite import SqliteLedger
from jobqueue.message import InputObject, JobMessage, Stage
from jobqueue.queue.sqlite import SqliteQueue
from moderation.local import LocalMarkerAuditor
from objectstore.local import LocalStore
from relay_core.pipelines import load_pipelines
from relay_core.settings import load
from vendors.base import SubmitRequest, Vendor, VendorStatus

BUCKET = "relay-1250000000"


class ScriptedVendor(Vendor):
    name = "scripted"

    def __init__(self) -> None:
        self.submits: deque[object] = deque()  # each: a task id to return, or an exception to raise
        self.statuses: deque[object] = deque()  # each: a VendorStatus, or an exception
        self.calls: list[tuple[str, object]] = []

    def upload(self, stream: BinaryIO, filename: str, size: int) -> str:
        self.calls.append(("upload", filename))
        return f"api/{filename}"

    def submit(self, request: SubmitRequest) -> str:
        self.calls.append(("submit", request))
        return self._next(self.submits)

    def status(self, vendor_task_id: str) -> VendorStatus:
        self.calls.append(("status", vendor_task_id))
        return self._next(self.statuses)

    def cancel(self, vendor_task_id: str) -> None:
        self.calls.append(("cancel", vendor_task_id))

    @staticmethod
    def _next(script: deque):
        item = script.popleft()
        if isinstance(item, BaseException):
            raise item
        return item

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)


def make_services(tmp_path, vendor: Vendor, *, backend_url: str = "http://127.0.0.1:9", clock=time.time) -> Services:
    settings = load(home=tmp_path, report_retry_s=0, allow_private_hosts=True)
    store = LocalStore(tmp_path / "store", BUCKET)
    return Services(
        settings=settings,
        queue=SqliteQueue(tmp_path / "queue.db"),
        ledger=SqliteLedger(tmp_path / "ledger.db"),
        store=store,
        vendors={"runninghub": vendor},
        auditor=LocalMarkerAuditor(store),
        reporter=BackendReporter(backend_url, "s3cret-callback", timeout_s=2),
        fetcher=ResultFetcher([], allow_private=True),
        pipelines=load_pipelines(),
        clock=clock,
        rng=random.Random(7),
    )


def message(stage: Stage = Stage.SUBMIT, *, deadline_in_s: float = 600, **changes) -> JobMessage:
    now = time.time()
    fields = dict(
        task_id="t1",
        user_id="u1",
        pipeline="promo_poster",
        stage=stage,
        input=InputObject(bucket=BUCKET, key="input/u1/t1/original.jpg", size=10),
        created_at=now,
        deadline_at=now + deadline_in_s,
    )
    fields.update(changes)
    return JobMessage(**fields)
