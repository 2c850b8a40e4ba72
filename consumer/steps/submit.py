"""SUBMIT: input from our store -> vendor; record the vendor task id; then poll.

At most one vendor submission per task (invariant 2): the ledger's submit claim guards it. A submission that
may have reached the vendor without giving us an id (its answer lost, or the runner killed mid-request) is
marked ambiguous and never resubmitted blindly: that can start and bill the same job twice. With webhooks on
(``RELAY_WEBHOOK_BASE_URL``), every submit names our task in its ``webhookUrl``, so an ambiguous task waits
for the vendor's webhook — as a delayed SUBMIT message that re-reads the claim, no function held — and goes on
with a status query as soon as the webhook names the job (the ledger adopts it). Only a task whose deadline
passes without one (the request never created a job, or the vendor lost its webhook) is dead-lettered for an
operator; without webhooks that happens at once.
"""

from __future__ import annotations

import tempfile
import uuid
from typing import BinaryIO, cast

from consumer.decisions import Continue, Decision
from consumer.delays import retry_delay, until_deadline
from consumer.services import Services
from consumer.steps.common import timed_out
from consumer.steps.poll import first_poll_s
from jobqueue.ledger.base import Claim, ClaimState, Submission, SubmitState, TaskRecord
from jobqueue.message import JobMessage, Stage
from objectstore.base import ObjectStore, iter_file
from objectstore.errors import ObjectNotFound, StoreUnsupported
from relay_core import logs
from relay_core.domain import ErrorReason
from relay_core.errors import OurFault, TaskFailed, Transient
from relay_core.filetypes import HEAD_BYTES, sniff
from relay_core.pipelines import Pipeline
from relay_core.settings import require
from relay_core.webhooks import webhook_url
from vendors.base import NodeInput, SubmitRequest, Vendor
from vendors.errors import AmbiguousSubmit, VendorError

log = logs.get("consumer.submit")
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
#: an ambiguous submit re-reads its claim about this many times before its deadline, waiting for a webhook
AMBIGUOUS_CHECKS = 10


def run(msg: JobMessage, svc: Services, record: TaskRecord | None = None, claim: Claim | None = None) -> Decision:
    """``claim``: the submit claim as taken with the hop's lease (``None``: not taken yet, the step takes it)."""
    now = svc.clock()
    if now >= msg.deadline_at and not _may_have_a_job(msg, svc, record):
        return timed_out(msg, svc, cancel=False)
    pipeline = svc.pipelines.get(msg.pipeline)
    if claim is None:
        # The claim lives as long as the hop's own lease: a runner killed while preparing the input blocks the task
        # no longer than its message stays invisible.
        lease_s = svc.settings.visibility_timeout_s
        claim = svc.ledger.claim_submit(
            msg.task_id, uuid.uuid4().hex, lease_s, msg.deadline_at, now, user_id=msg.user_id
        )
    if claim.state is ClaimState.SUBMITTED:
        log.info("already submitted; polling", extra={"vendor_task_id": claim.vendor_task_id})
        poll_msg = msg.next(Stage.POLL, vendor_task_id=claim.vendor_task_id, polls=0)
        return Continue(poll_msg, until_deadline(first_poll_s(svc, pipeline), now, msg.deadline_at, floor_s=0))
    if claim.state is ClaimState.HELD:  # wait for the holder, briefly: it usually settles within seconds
        delay = min(claim.retry_after_s, retry_delay(msg.attempt, svc.rng, cap_s=30))
        raise Transient("another worker holds the submit claim", delay_s=until_deadline(delay, now, msg.deadline_at))
    if claim.state is ClaimState.AMBIGUOUS:
        return _await_webhook(msg, svc, pipeline)
    token = claim.token or ""  # an acquired claim always names its token
    if now >= msg.deadline_at:  # acquired past the deadline: nothing was sent, and nothing will be
        svc.ledger.release_submit(msg.task_id, token, now)
        return timed_out(msg, svc, cancel=False)

    vendor = svc.vendor_for(pipeline)
    hook = _webhook_url(msg, svc)
    try:
        reference = _input_reference(msg, pipeline, vendor, svc)
    except BaseException:
        svc.ledger.release_submit(msg.task_id, token, svc.clock())  # nothing was sent: a retry may claim
        raise
    template = msg.next(Stage.POLL, polls=0).dumps()  # what a webhook naming the job resumes from
    first_s = first_poll_s(svc, pipeline, webhook=hook is not None)  # read now: nothing waits after the answer
    if not svc.ledger.mark_sending(msg.task_id, token, svc.clock(), poll_message=template):
        raise Transient("submit claim lapsed while preparing the input")  # another worker took over
    try:
        vendor_task_id = vendor.submit(_request(pipeline, reference, hook))
    except AmbiguousSubmit as exc:
        svc.ledger.mark_ambiguous(msg.task_id, token, svc.clock())
        log.error("submit is ambiguous", extra={"detail": str(exc), "webhook": hook is not None})
        if hook is None:
            raise OurFault(f"{_AMBIGUOUS_HELP} ({exc})") from None
        return _await_webhook(msg, svc, pipeline)
    except VendorError:
        svc.ledger.release_submit(msg.task_id, token, svc.clock())  # a definite refusal: nothing was created
        raise
    # Any other exception leaves the claim "sending": when its lease lapses the task turns ambiguous (fail safe).
    # The submission is recorded with the end of this hop, in the same write as the successor's send: as soon after
    # the answer as a separate write would be. A crash before it leaves the claim "sending", as one mid-request.
    poll_msg = msg.next(Stage.POLL, vendor_task_id=vendor_task_id, polls=0)
    submission = Submission(token, vendor_task_id, poll_msg.dumps())
    log.info("submitted to vendor", extra={"vendor_task_id": vendor_task_id, "vendor": vendor.name})
    return Continue(poll_msg, until_deadline(first_s, svc.clock(), msg.deadline_at, floor_s=0), submission)


_AMBIGUOUS_HELP = (
    "submit ambiguous: the vendor may have started (and billed) a job but returned no task id; "
    "check the vendor console, then `scf-relay dlq redrive --resubmit <id>` or `scf-relay dlq fail <id>`"
)


def _may_have_a_job(msg: JobMessage, svc: Services, record: TaskRecord | None) -> bool:
    """Past the deadline: whether a submit of the task may have reached the vendor (then the claim decides:
    poll a recorded or adopted job, which cancels or collects it, or dead-letter an ambiguous one)."""
    if record is None:
        record = svc.ledger.get(msg.task_id)
    if record is None:
        return False
    return record.submit_state not in (SubmitState.NONE, SubmitState.LEASED) or bool(record.webhook_vendor_ids)


def _await_webhook(msg: JobMessage, svc: Services, pipeline: Pipeline) -> Decision:
    """The submit is ambiguous: with webhooks on, run this hop again later (a webhook naming the job makes that
    run find it adopted, and its POLL hint usually overtakes it); at the deadline, or without webhooks, hand
    the task to an operator."""
    now = svc.clock()
    if not svc.settings.webhook_base_url:
        raise OurFault(_AMBIGUOUS_HELP)
    if now >= msg.deadline_at:
        raise OurFault(f"{_AMBIGUOUS_HELP}; no webhook named a job before the deadline")
    # the webhook's POLL hint is what resumes the task; this re-read only catches a hint that was never sent
    every = max(first_poll_s(svc, pipeline, webhook=True), pipeline.deadline_s / AMBIGUOUS_CHECKS)
    wait = until_deadline(every, now, msg.deadline_at)
    log.info("submit ambiguous: waiting for the vendor's webhook", extra={"wait_s": round(wait, 1)})
    return Continue(msg.next(), wait)


def _webhook_url(msg: JobMessage, svc: Services) -> str | None:
    """The task's ``webhookUrl`` when ``RELAY_WEBHOOK_BASE_URL`` is set (it then needs the secret)."""
    base = svc.settings.webhook_base_url
    if not base:
        return None
    secret = require(svc.settings.webhook_secret.reveal(), "RELAY_WEBHOOK_SECRET", "webhook URLs are signed with it")
    return webhook_url(base, secret, msg.task_id)


def _request(pipeline: Pipeline, reference: str, hook: str | None) -> SubmitRequest:
    nodes = tuple(NodeInput(n.node_id, n.field_name, n.value.replace("{input}", reference)) for n in pipeline.nodes)
    return SubmitRequest(pipeline.kind, pipeline.target_id, nodes, pipeline.instance_type, webhook_url=hook)


def _input_reference(msg: JobMessage, pipeline: Pipeline, vendor: Vendor, svc: Services) -> str:
    """Check the input (exists, size, type by magic bytes) and hand it to the vendor: upload or URL."""
    bucket, key = msg.input.bucket, msg.input.key
    info = svc.store.head(bucket, key)
    if info is None:
        raise TaskFailed(f"input {key} no longer exists", reason=ErrorReason.INVALID_INPUT)
    if info.size == 0 or info.size > pipeline.max_input_bytes:
        raise TaskFailed(
            f"input is {info.size} bytes (limit {pipeline.max_input_bytes})", reason=ErrorReason.INVALID_INPUT
        )
    if info.size > vendor.max_upload_bytes:
        _check_type(svc.store.get_bytes(bucket, key, limit=HEAD_BYTES), pipeline)
        try:
            return svc.store.vendor_url(bucket, key, expires_s=int(pipeline.deadline_s))
        except StoreUnsupported as exc:
            raise OurFault(f"input over the vendor's upload limit and {exc}") from None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spooled:
        spool = cast(BinaryIO, spooled)  # a file object in every way the vendor's upload uses
        size = _spool(svc.store, bucket, key, spool, pipeline)
        spool.seek(0)
        return vendor.upload(spool, key.rsplit("/", 1)[-1], size)


def _spool(store: ObjectStore, bucket: str, key: str, spool: BinaryIO, pipeline: Pipeline) -> int:
    """Copy the input into ``spool`` (memory up to 1 MiB, then /tmp), checking its type on the first bytes."""
    try:
        with store.open_read(bucket, key) as stream:
            size = 0
            for chunk in iter_file(stream):
                if size == 0:
                    _check_type(chunk, pipeline)
                size += len(chunk)
                if size > pipeline.max_input_bytes:
                    raise TaskFailed("input grew past the size limit", reason=ErrorReason.INVALID_INPUT)
                spool.write(chunk)
    except ObjectNotFound:
        raise TaskFailed(f"input {key} no longer exists", reason=ErrorReason.INVALID_INPUT) from None
    return size


def _check_type(head: bytes, pipeline: Pipeline) -> None:
    kind = sniff(head)
    if kind not in pipeline.input_types:
        raise TaskFailed(
            f"input is {kind or 'not a known file type'}, expected {list(pipeline.input_types)}",
            reason=ErrorReason.INVALID_INPUT,
        )
