"""COLLECT and AUDIT against a second runner of the same hop: a blocked result must never be published ``done``.

The red team's breach: a download that outlived the hop's lease let a second worker run COLLECT again; its
download replaced the staged file after moderation had judged the first bytes, and publish copied the new
bytes to ``output/``. Here the second runner, the slow host and the swap are real (threads, loopback HTTP, the
local store); the auditor is the local marker auditor, which a stale runner races while it judges.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from consumer.decisions import Continue, Finish
from consumer.dispatch import handle
from consumer.effects import forward
from consumer.fetch import FetchFailed, ResultFetcher
from consumer.steps import collect
from jobqueue.message import JobMessage, Stage
from moderation.base import AuditResult
from moderation.local import LocalMarkerAuditor
from relay_core.domain import ErrorReason, Status
from relay_core.filetypes import BLOCK_MARKER
from relay_core.ids import output_prefix, staging_key
from tests.raw_http import RawHttpServer
from tests.unit.step_harness import BUCKET, ScriptedVendor, make_services, message
from vendors.base import VendorOutput, VendorState, VendorStatus
from vendors.emulator.media import make_mp4, make_png

GOOD = make_png(8, 8, seed=1)
BLOCKED = make_png(8, 8, seed=2, marker=BLOCK_MARKER)
STAGED = staging_key("u1", "t1", "poster_01.png")


class Results(BaseHTTPRequestHandler):
    """Serves ``owner.files[path]``; a path in ``owner.held`` waits for that event before sending its body."""

    def do_GET(self) -> None:  # noqa: N802
        owner = self.server.app  # type: ignore[attr-defined]
        owner.requests.append(self.path)
        data = owner.files[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in owner.held:
            self.wfile.write(data[:16])  # enough to pass the type sniff; the rest waits
            self.wfile.flush()
            owner.held[self.path].wait(30)
            data = data[16:]
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


class ResultServer(RawHttpServer):
    def __init__(self) -> None:
        super().__init__(Results, name="vendor-results")
        self.files: dict[str, bytes] = {}
        self.held: dict[str, threading.Event] = {}
        self.requests: list[str] = []

    def stop(self) -> None:
        for event in self.held.values():
            event.set()
        super().stop()


class RacedAuditor(LocalMarkerAuditor):
    """The local auditor; the first time it judges, a stale runner replaces the staged file meanwhile."""

    def __init__(self, store, swap: Callable[[], None]) -> None:
        super().__init__(store)
        self._swap: Callable[[], None] | None = swap

    def _race(self) -> None:
        swap, self._swap = self._swap, None
        if swap is not None:
            swap()

    def audit_image(self, data: bytes, data_id: str) -> AuditResult:
        result = super().audit_image(data, data_id)
        self._race()
        return result

    def start_video(self, bucket: str, key: str, data_id: str) -> str:
        job = super().start_video(bucket, key, data_id)
        self._race()
        return job


@pytest.fixture
def server():
    with ResultServer() as results:
        yield results


@pytest.fixture
def vendor():
    return ScriptedVendor()


@pytest.fixture
def svc(tmp_path, vendor, relay_home):
    services = make_services(tmp_path, vendor)
    yield services
    services.close()


def succeeded(*urls: str) -> VendorStatus:
    return VendorStatus(VendorState.SUCCEEDED, tuple(VendorOutput(url) for url in urls))


def run(svc, msg: JobMessage):
    parsed, decision = handle(msg.dumps(), svc)
    forward(svc, parsed, decision)
    return decision


def outputs(svc) -> dict[str, bytes]:
    return {i.key: svc.store.get_bytes(BUCKET, i.key) for i in svc.store.list(BUCKET, output_prefix("u1", "t1"))}


# -- a second COLLECT never replaces what is staged ---------------------------------------
def test_a_second_collect_keeps_the_staged_result_and_downloads_nothing(svc, vendor, server):
    server.files = {"/a.png": GOOD, "/b.png": BLOCKED}
    vendor.statuses.extend([succeeded(f"{server.base_url}/a.png"), succeeded(f"{server.base_url}/b.png")])
    msg = message(Stage.COLLECT, vendor_task_id="v1")
    first = collect.run(msg, svc)
    again = collect.run(msg, svc)  # a redelivered copy of the hop, whose vendor answer now names other bytes
    assert isinstance(first, Continue) and isinstance(again, Continue) and again.message.stage is Stage.AUDIT
    assert svc.store.get_bytes(BUCKET, STAGED) == GOOD
    assert server.requests == ["/a.png"]


def test_racing_collects_keep_the_first_staged_result(svc, vendor, server):
    """Runner B starts downloading first but finishes last: its write must not replace A's staged result."""
    released = threading.Event()
    server.files = {"/a.png": GOOD, "/b.png": BLOCKED}
    server.held = {"/b.png": released}
    vendor_b = ScriptedVendor()
    vendor_b.statuses.append(succeeded(f"{server.base_url}/b.png"))
    vendor.statuses.append(succeeded(f"{server.base_url}/a.png"))
    msg = message(Stage.COLLECT, vendor_task_id="v1")
    runner_b: dict[str, object] = {}
    b = threading.Thread(
        target=lambda: runner_b.update(
            decision=collect.run(msg, dataclasses.replace(svc, vendors={"runninghub": vendor_b}))
        )
    )
    b.start()
    deadline = time.monotonic() + 10
    while "/b.png" not in server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(collect.run(msg, svc), Continue)  # runner A stages its result while B still downloads
    released.set()
    b.join(timeout=30)
    assert isinstance(runner_b.get("decision"), Continue)  # B kept A's result and handed on
    assert svc.store.get_bytes(BUCKET, STAGED) == GOOD
    done = run(svc, msg.next(Stage.AUDIT, audit_job_id=None))
    assert isinstance(done, Finish) and done.outcome.status is Status.DONE
    assert list(outputs(svc).values()) == [GOOD]


# -- publish copies exactly the judged bytes ------------------------------------------------
def test_publish_refuses_an_image_replaced_after_moderation(svc):
    svc.store.put_bytes(BUCKET, STAGED, GOOD)
    svc.auditor = RacedAuditor(svc.store, lambda: svc.store.put_bytes(BUCKET, STAGED, BLOCKED))
    audit = message(Stage.AUDIT, vendor_task_id="v1", seq=3)
    retry = run(svc, audit)
    assert isinstance(retry, Continue) and retry.message.stage is Stage.AUDIT and retry.message.attempt == 1
    assert outputs(svc) == {}  # the judged version is gone: nothing was published
    blocked = run(svc, retry.message)  # judged again: the bytes now staged are blocked
    assert isinstance(blocked, Finish) and blocked.outcome.error_reason == ErrorReason.BLOCKED
    assert outputs(svc) == {}


def test_publish_refuses_a_video_replaced_while_its_job_ran(svc):
    video = staging_key("u1", "t1", "video_01.mp4")
    svc.store.put_bytes(BUCKET, video, make_mp4(1))
    svc.auditor = RacedAuditor(svc.store, lambda: svc.store.put_bytes(BUCKET, video, make_mp4(2, BLOCK_MARKER)))
    start = run(svc, message(Stage.AUDIT, pipeline="video_tryon", vendor_task_id="v1", seq=3))
    assert isinstance(start, Continue) and start.message.audit_job_id
    restart = run(svc, start.message)  # the job passed the old bytes; the new ones were never judged
    assert isinstance(restart, Continue) and restart.message.audit_job_id is None
    assert outputs(svc) == {}
    judged = run(svc, restart.message)
    blocked = run(svc, judged.message)
    assert isinstance(blocked, Finish) and blocked.outcome.error_reason == ErrorReason.BLOCKED
    assert outputs(svc) == {}


def test_publish_copies_the_judged_video(svc):
    video = staging_key("u1", "t1", "video_01.mp4")
    svc.store.put_bytes(BUCKET, video, make_mp4(1))
    start = run(svc, message(Stage.AUDIT, pipeline="video_tryon", vendor_task_id="v1", seq=3))
    done = run(svc, start.message)
    assert isinstance(done, Finish) and done.outcome.status is Status.DONE
    assert list(outputs(svc).values()) == [make_mp4(1)]


# -- COLLECT's downloads end inside the hop's lease; bad URLs fail at once -------------------
def test_collect_downloads_end_inside_the_lease(svc, vendor, server):
    svc.settings = svc.settings.replace(visibility_timeout_s=6)  # 1 s left for downloads
    server.files = {"/slow.png": GOOD}
    server.held = {"/slow.png": threading.Event()}  # never released: the host stalls mid-body
    vendor.statuses.append(succeeded(f"{server.base_url}/slow.png"))
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="longer than 1 s"):
        collect.run(message(Stage.COLLECT, vendor_task_id="v1"), svc)
    assert time.monotonic() - started < 3.0
    assert svc.store.head(BUCKET, STAGED) is None
    assert collect.download_budget_s(6) == 1.0 and collect.download_budget_s(120) == 96.0


def test_a_collect_retry_downloads_only_what_is_not_staged_yet(svc, vendor, server):
    svc.pipelines = dataclasses.replace(
        svc.pipelines, pipelines={**svc.pipelines.pipelines, "promo_poster": _two_outputs(svc)}
    )
    server.files = {"/1.png": GOOD, "/2.png": GOOD}
    svc.store.put_bytes(BUCKET, STAGED, GOOD)  # the first attempt staged output 1, then failed on output 2
    vendor.statuses.append(succeeded(f"{server.base_url}/1.png", f"{server.base_url}/2.png"))
    assert isinstance(collect.run(message(Stage.COLLECT, vendor_task_id="v1"), svc), Continue)
    assert server.requests == ["/2.png"]


def _two_outputs(svc):
    poster = svc.pipelines.get("promo_poster")
    return dataclasses.replace(poster, outputs=dataclasses.replace(poster.outputs, count=2))


@pytest.mark.parametrize("url", ["https://h.vendor.test:99999/x.png", "https://[::1/x.png", "https://h/x\n.png"])
def test_a_malformed_result_url_fails_the_task_at_once(svc, vendor, url):
    svc.fetcher = ResultFetcher(["h.vendor.test", "h", "::1"])
    vendor.statuses.append(succeeded(url))
    decision = run(svc, message(Stage.COLLECT, vendor_task_id="v1"))
    assert isinstance(decision, Finish)
    assert (decision.outcome.status, decision.outcome.error_reason) == (Status.FAILED, ErrorReason.FAILED)


# -- the poll's answer serves the COLLECT that follows, once ---------------------------------
def test_a_collect_after_its_poll_in_the_same_process_asks_the_vendor_nothing(svc, vendor, server):
    server.files = {"/a.png": GOOD}
    vendor.statuses.extend([succeeded(f"{server.base_url}/a.png"), succeeded(f"{server.base_url}/a.png")])
    poll = run(svc, message(Stage.POLL, vendor_task_id="v1", seq=1))
    assert isinstance(poll, Continue) and poll.message.stage is Stage.COLLECT
    assert isinstance(run(svc, poll.message), Continue)
    assert vendor.count("status") == 1  # the poll's answer, taken from memory
    assert isinstance(collect.run(poll.message, svc), Continue)  # a redelivered COLLECT: the answer was used up
    assert vendor.count("status") == 2


def test_kept_answers_are_taken_once_within_their_time_and_bounded_in_number():
    from consumer.seen_finished import SeenFinished

    kept = SeenFinished(keep_s=60, max_kept=2)
    for vendor_task_id in ("v1", "v2", "v3"):
        kept.put("runninghub", vendor_task_id, succeeded(f"https://x.test/{vendor_task_id}"))
    assert kept.take("runninghub", "v1") is None  # the oldest went first
    assert kept.take("other", "v2") is None  # another vendor's job of the same id
    assert kept.take("runninghub", "v2") == succeeded("https://x.test/v2")
    assert kept.take("runninghub", "v2") is None
    expired = SeenFinished(keep_s=0)
    expired.put("runninghub", "v1", succeeded("https://x.test/v1"))
    time.sleep(0.01)
    assert expired.take("runninghub", "v1") is None
