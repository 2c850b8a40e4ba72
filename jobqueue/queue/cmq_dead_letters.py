"""The TDMQ-for-CMQ queue, operator plane: the dead-letter queue read over the data plane, and statistics from
the control plane when the ``cmq://`` URL names it (``api_region=``).

How the operator-plane contract of :mod:`jobqueue.queue.base` maps onto CMQ, and where CMQ differs:

* **Inspecting the DLQ changes it.** CMQ can only look at a message by receiving it: ``dead_letters``,
  ``dead_letter_by_id``, ``redrive`` and ``remove_dead`` increment the ``dequeueCount`` of every DLQ message
  they look at and HIDE it for the DLQ's visibility timeout. Create the DLQ with a short
  ``VisibilityTimeout`` (a few seconds) and no dead-letter policy of its own. A listing right after another
  one sees only what is visible again; ``redrive(ids)``, ``remove_dead`` and ``dead_letter_by_id`` keep
  looking for up to ``dead_letter_search_s`` seconds (``dlq_search_s=`` on the URL; set it a little above
  the DLQ's visibility timeout) for named messages that a recent look hid.
* **Redrive makes a new message**: CMQ cannot move a message between queues, so the original body is sent to
  the work queue again (it gets a new ``msgId``), then the dead letter is deleted: not atomic; a crash in
  between leaves the task both queued and dead (at-least-once).
* **Dead letters by policy** carry the original body only; they are reported with
  :func:`~jobqueue.queue.base.exceeded_reason` and ``receive_count = max_receive_count``, assuming the queue's
  MaxReceiveCount equals ``max_receive_count``.
* **A DLQ forgets.** Messages expire after the DLQ's ``MsgRetentionSeconds`` (at most 12 h) unless rewind
  is enabled on it (:func:`jobqueue.queue.cmq_admin.rewind_queue`).
* **No statistics on the data plane.** ``stats_source()`` is the control plane's ``DescribeCmqQueueDetail``
  (:class:`jobqueue.queue.cmq_admin.ControlPlaneStats`) when the URL has ``api_region=``, else None.
"""

from __future__ import annotations

from typing import Any

import httpx

from jobqueue.errors import QueueConfigError
from jobqueue.queue.base import DeadLetter, QueueAdmin, StatsSource
from jobqueue.queue.cmq_actions import CmqActions, dead_letter_of
from jobqueue.queue.cmq_config import check_queue_name, parse_cmq_url
from jobqueue.queue.cmq_http import CmqClient
from jobqueue.queue.cmq_signing import SignatureMethod
from relay_core import logs
from tencent_plumbing.credentials import CredentialsProvider, env_credentials

log = logs.get("jobqueue.cmq")


class CmqDeadLetters(QueueAdmin):
    """The operator plane of a CMQ work queue: its dead-letter queue, and ``stats`` (a StatsSource) if given.

    ``credentials`` is called per request. ``client`` is an injected ``httpx.Client`` (not closed here).
    """

    def __init__(
        self,
        queue_name: str,
        dlq_name: str,
        *,
        endpoint: str,
        credentials: CredentialsProvider = env_credentials,
        client: httpx.Client | None = None,
        max_receive_count: int = 5,
        dead_letter_search_s: float = 0.0,
        stats: StatsSource | None = None,
        sign_method: SignatureMethod = SignatureMethod.HMAC_SHA256,
        request_timeout_s: float = 10.0,
    ) -> None:
        self.queue_name = check_queue_name(queue_name)
        self.dlq_name = check_queue_name(dlq_name, "dead-letter queue")
        if dlq_name == queue_name:
            raise QueueConfigError("RELAY_QUEUE: the CMQ dead-letter queue must differ from the work queue")
        self.max_receive_count = max_receive_count
        self.dead_letter_search_s = dead_letter_search_s
        self._stats = stats
        api = CmqClient(
            endpoint, credentials=credentials, http=client, sign_method=sign_method, timeout_s=request_timeout_s
        )
        self._actions = CmqActions(api)

    @classmethod
    def from_url(cls, url: str, *, max_receive_count: int = 5, **options: Any) -> CmqDeadLetters:
        """Build from ``cmq://<queue>?region=..&dlq=..[&dlq_search_s=..][&api_region=..]``; ``options`` go to the
        constructor (credentials=..., client=..., stats=...). With ``api_region`` and no ``stats`` given,
        statistics come from the control plane."""
        where = parse_cmq_url(url)
        options.setdefault("dead_letter_search_s", where.dead_letter_search_s)
        if where.api_region and options.get("stats") is None:
            from jobqueue.queue.cmq_admin import ControlPlaneStats
            from tencent_plumbing.api3 import ApiTarget

            target = ApiTarget(where.api_region, options.get("credentials", env_credentials), where.api_endpoint)
            options["stats"] = ControlPlaneStats(target, where.queue_name, where.dlq_name)
        return cls(
            where.queue_name, where.dlq_name, endpoint=where.endpoint, max_receive_count=max_receive_count, **options
        )

    def __repr__(self) -> str:
        return f"CmqDeadLetters({self.queue_name!r}, dlq={self.dlq_name!r}, host={self._actions.api.host!r})"

    def stats_source(self) -> StatsSource | None:
        return self._stats

    def _list_dead(self, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` dead letters visible now, oldest first.

        This RECEIVES them: each one's dequeueCount goes up and it is hidden for the DLQ's visibility timeout.
        """
        return [self._dead_letter_of(item) for item in self._actions.scan(self.dlq_name, max_items=limit)]

    def dead_letter_by_id(self, message_id: str) -> DeadLetter | None:
        """Looks up to ``dead_letter_search_s`` for it; hides what it receives on the way."""
        item = self._find(message_id)
        return None if item is None else self._dead_letter_of(item)

    def _redrive_ids(self, message_ids: list[str]) -> list[str]:
        """Looks up to ``dead_letter_search_s`` for the named letters; hides what it receives on the way."""
        wanted = set(message_ids)
        moved: list[str] = []
        for item in self._actions.scan(self.dlq_name, search_s=self.dead_letter_search_s):
            if self._dead_letter_of(item).message_id in wanted:
                moved.append(self._redrive_one(item))
                wanted.discard(moved[-1])
                if not wanted:
                    break
        return moved

    def _redrive_oldest(self, limit: int | None) -> list[str]:
        return [self._redrive_one(item) for item in self._actions.scan(self.dlq_name, max_items=limit)]

    def remove_dead(self, message_id: str) -> bool:
        """Looks up to ``dead_letter_search_s`` for it, then deletes it from the DLQ."""
        item = self._find(message_id)
        return item is not None and self._actions.delete(self.dlq_name, str(item["receiptHandle"]))

    def close(self) -> None:
        self._actions.close()

    def _redrive_one(self, item: dict[str, Any]) -> str:
        """Send the letter's original body to the work queue (ready now, new msgId), then delete the letter."""
        dead = self._dead_letter_of(item)
        self._actions.send(self.queue_name, [dead.body], 0)
        if not self._actions.delete(self.dlq_name, str(item["receiptHandle"])):
            log.warning("cmq dead letter %s redriven, but its DLQ receipt was stale: still dead", dead.message_id)
        return dead.message_id

    def _find(self, message_id: str) -> dict[str, Any] | None:
        for item in self._actions.scan(self.dlq_name, search_s=self.dead_letter_search_s):
            if self._dead_letter_of(item).message_id == message_id:
                return item
        return None

    def _dead_letter_of(self, item: dict[str, Any]) -> DeadLetter:
        return dead_letter_of(item, self.max_receive_count)
