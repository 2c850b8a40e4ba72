"""SCF function 1: COS upload event → validated first-hop job messages on the queue. Nothing more.

The shim never downloads the object and never calls a vendor: it parses the event, picks each upload's
pipeline, checks its size, and sends every accepted message with one ``send_batch``. It returns
``{"enqueued": [{"taskId", "userId", "pipeline", "key", "messageId"}], "skipped": [{"key", "reason"}]}``.

Failure policy: a record we refuse is logged and skipped (retrying would refuse it again). When the queue
cannot take the messages the handler raises, so SCF retries the whole async event (COS triggers invoke
asynchronously, and SCF retries a failed async invocation); the messages of a partly sent batch may then arrive
twice, which the consumer's ledger drops as duplicates.

Settings, pipelines and the queue are created on the first call and kept for the warm container
(:func:`reset` forgets them, for tests). Only the queue backend named by ``RELAY_QUEUE`` is imported, lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from producer_shim import events
from producer_shim.enqueue import PipelineRouter, plan
from relay_core import logs
from relay_core import settings as settings_mod

if TYPE_CHECKING:
    from jobqueue.message import JobMessage
    from jobqueue.queue.base import Queue
    from producer_shim.events import ParsedRecord, Rejected
    from relay_core.settings import RelaySettings

log = logs.get("producer")


class _Runtime:
    """What a warm container keeps: the settings, the pipeline router, the queue once opened."""

    def __init__(self, settings: RelaySettings, router: PipelineRouter) -> None:
        self.settings = settings
        self.router = router
        self.queue: Queue | None = None

    def open_queue(self) -> Queue:
        if self.queue is None:
            from jobqueue import open_queue

            self.queue = open_queue(
                self.settings.queue_url(), max_receive_count=self.settings.max_receive_count, clock=clock
            )
        return self.queue

    def drop_queue(self) -> None:
        queue, self.queue = self.queue, None
        if queue is not None:
            try:
                queue.close()
            except Exception:  # a broken connection may fail to close too; it is dropped either way
                log.debug("closing the queue failed", exc_info=True)


_runtime: _Runtime | None = None
#: the shim's time source (created and deadline times of new tasks, the queue's enqueue times); tests that run
#: in virtual time replace it through :func:`reset`
clock: Callable[[], float] = time.time


def _get_runtime() -> _Runtime:
    global _runtime
    if _runtime is None:
        loaded = settings_mod.load()
        logs.setup(loaded.log_level)
        _runtime = _Runtime(loaded, PipelineRouter.from_settings(loaded))
    return _runtime


def reset(time_source: Callable[[], float] = time.time) -> None:
    """Forget the warm-container cache (settings, pipelines, queue); the next call reads them again, and keeps
    time by ``time_source``."""
    global _runtime, clock
    if _runtime is not None:
        _runtime.drop_queue()
    _runtime = None
    clock = time_source


def main_handler(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    """SCF entry for COS triggers: enqueue every acceptable upload of ``event``; see the module docstring."""
    runtime = _get_runtime()
    request_id = context.get("request_id") if isinstance(context, dict) else None
    with logs.bind(request_id=request_id):
        accepted, rejected = plan(events.parse_records(event), runtime.router, clock())
        for rejection in rejected:
            _log_rejection(rejection)
        message_ids = _send(runtime, [message for _, message in accepted])
        summary = {
            "enqueued": [
                _enqueued(record, message, message_id)
                for (record, message), message_id in zip(accepted, message_ids, strict=True)
            ],
            "skipped": [{"key": r.key, "reason": r.reason} for r in rejected],
        }
        if summary["enqueued"]:
            _nudge_safely(summary, runtime.settings)
        return summary


def _send(runtime: _Runtime, messages: list[JobMessage]) -> list[str]:
    """Send all messages in one batch, or log and raise so SCF retries the event."""
    if not messages:
        return []
    try:
        return runtime.open_queue().send_batch([message.dumps() for message in messages])
    except Exception:
        log.error(
            "could not enqueue %d upload(s); raising so SCF retries the event",
            len(messages),
            extra={"task_ids": [m.task_id for m in messages]},
            exc_info=True,
        )
        runtime.drop_queue()  # reconnect on the retry rather than reuse a broken client
        raise


def _enqueued(record: ParsedRecord, message: JobMessage, message_id: str) -> dict[str, str]:
    """Log one sent message and return its summary entry."""
    with logs.bind(task_id=message.task_id):
        log.info("enqueued", extra={"pipeline": message.pipeline, "key": record.key, "message_id": message_id})
    return {
        "taskId": message.task_id,
        "userId": message.user_id,
        "pipeline": message.pipeline,
        "key": record.key,
        "messageId": message_id,
    }


def _log_rejection(rejection: Rejected) -> None:
    with logs.bind(task_id=rejection.task_id):
        log.warning("skipped upload: %s", rejection.reason, extra={"key": rejection.key, "record": rejection.index})


def _nudge_safely(summary: dict[str, Any], settings: RelaySettings) -> None:
    """The messages are already queued and the timer drains them anyway: a failed nudge is only logged."""
    try:
        _nudge(summary, settings)
    except Exception:
        log.warning("nudging the consumer failed; the timer will pick the messages up", exc_info=True)


def _nudge(summary: dict[str, Any], settings: RelaySettings) -> None:
    """Start the consumer at once (async SCF ``Invoke``) when ``RELAY_NUDGE_FUNCTION`` names it and something
    was enqueued. ``nudge_consumer`` logs and swallows its own failures; the SDK is imported only here, so a
    shim without a nudge never loads ``tencentcloud``."""
    if not settings.nudge_function or not summary.get("enqueued"):
        return
    if not settings.nudge_region:
        log.warning("RELAY_NUDGE_FUNCTION is set but RELAY_NUDGE_REGION is not: not nudging")
        return
    from tencent_plumbing.scf_invoke import nudge_consumer

    nudge_consumer(
        settings.nudge_function,
        region=settings.nudge_region,
        namespace=settings.nudge_namespace or "default",
        endpoint=settings.nudge_endpoint or None,
        payload={"Enqueued": len(summary["enqueued"])},
    )
