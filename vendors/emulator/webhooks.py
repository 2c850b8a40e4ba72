"""The emulator's webhook calls: ``POST {"event": "TASK_END", "taskId", "eventData"}`` to a task's ``webhookUrl``.

A task created with a ``webhookUrl`` is called ``config.webhook_delay_s`` after it ends (on the config's clock),
successful or failed, retried ``config.webhook_attempts`` times ``config.webhook_retry_s`` apart while the
receiver answers non-2xx or cannot be reached (RunningHub retries too, docs/platform.md §5). ``eventData`` is a
JSON string shaped like the ``/task/openapi/outputs`` answer. :meth:`WebhookCaller.fire_due` sends whatever is
due now; the emulator runs it from a thread every few milliseconds, and a test in virtual time may call it
itself right after moving the clock.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import httpx

from relay_core import logs
from vendors.emulator.api import EmulatorApi
from vendors.emulator.tasks import EmulatedTask, TaskState

log = logs.get("vendor.emulator")
TIMEOUT_S = 5.0
_ENDED = (TaskState.SUCCESS, TaskState.FAILED)


@dataclass(frozen=True)
class WebhookCall:
    """One webhook request: the task, the URL, the HTTP status (0: unreachable) and when (on the clock)."""

    task_id: str
    url: str
    status: int
    at: float


class WebhookCaller:
    """Sends due webhooks; thread-safe (each attempt is claimed under a lock, so it is sent once)."""

    def __init__(self, api: EmulatorApi) -> None:
        self.api = api
        self.calls: list[WebhookCall] = []
        self._attempts: dict[str, int] = {}  # task id -> attempts made
        self._next_at: dict[str, float] = {}  # task id -> when its next retry is due
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=TIMEOUT_S)

    def close(self) -> None:
        self._http.close()

    def fire_due(self) -> int:
        """Send every webhook due now; returns how many requests were made."""
        due = self._claim_due()
        for task in due:
            self._send(task)
        return len(due)

    def _claim_due(self) -> list[EmulatedTask]:
        config = self.api.config
        if config.webhook_delay_s is None:
            return []
        now = config.clock()
        due = []
        with self._lock:
            for task in self.api.book.webhooks_pending():
                task = self.api.book.get(task.task_id) or task  # a cancel replaces the snapshot
                attempts = self._attempts.get(task.task_id, 0)
                if attempts >= config.webhook_attempts or task.cancelled:
                    self.api.book.webhook_settled(task.task_id)
                    continue
                if task.state_at(now) not in _ENDED or now < task.ends_at + config.webhook_delay_s:
                    continue
                if now < self._next_at.get(task.task_id, 0.0):
                    continue
                self._attempts[task.task_id] = attempts + 1
                self._next_at[task.task_id] = now + config.webhook_retry_s
                due.append(task)
        return due

    def _send(self, task: EmulatedTask) -> None:
        assert task.webhook_url is not None
        body = {
            "event": "TASK_END",
            "taskId": task.task_id,
            "eventData": json.dumps(self.api.outputs_answer(task), ensure_ascii=False),
        }
        try:
            status = self._http.post(task.webhook_url, json=body).status_code
        except httpx.HTTPError as exc:
            log.info("webhook unreachable", extra={"vendor_task_id": task.task_id, "error": type(exc).__name__})
            status = 0
        with self._lock:
            self.calls.append(WebhookCall(task.task_id, task.webhook_url, status, self.api.config.clock()))
            if 200 <= status < 300 or self._attempts[task.task_id] >= self.api.config.webhook_attempts:
                self.api.book.webhook_settled(task.task_id)  # delivered, or out of attempts
