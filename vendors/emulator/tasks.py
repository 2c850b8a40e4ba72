"""Emulated tasks: in memory, their state computed from creation time, their fate fixed at creation.

A task's outcome is forced by its input when a node ``fieldValue`` — or the name or content of an uploaded
file it refers to — contains one of these words; otherwise it is drawn from the configured rates:

=====================  =================================================================================
``emulate:fail``       ends FAILED (outputs code 805 with a ``failedReason``)
``emulate:block``      succeeds, and its last output file carries ``BLOCK_MARKER``
``emulate:never``      stays RUNNING forever
``emulate:node-error`` submit answers code 0 with ``promptTips.node_errors`` (first node); the task fails
=====================  =================================================================================
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace


class Outcome(str, enum.Enum):
    SUCCEED = "succeed"
    FAIL = "fail"
    BLOCK = "block"
    NEVER = "never"
    NODE_ERROR = "node-error"


class TaskState(str, enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCEL"


MARKERS = {f"emulate:{o.value}".encode(): o for o in Outcome if o is not Outcome.SUCCEED}


def forced_outcome(texts: Iterable[bytes]) -> Outcome | None:
    """The outcome named by an ``emulate:*`` word in any of ``texts``, if one is."""
    for text in texts:
        for word, outcome in MARKERS.items():
            if word in text:
                return outcome
    return None


@dataclass(frozen=True)
class EmulatedTask:
    """One task as the emulator sees it. ``nodes`` is the nodeInfoList exactly as received."""

    task_id: str
    kind: str  # "workflow" | "ai-app"
    target_id: str
    nodes: tuple[dict, ...]
    outcome: Outcome
    created_at: float
    queue_s: float
    job_s: float
    output_count: int
    file_type: str
    instance_type: str | None = None
    cancelled_at: float | None = None
    webhook_url: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    def state_at(self, now: float) -> TaskState:
        if self.cancelled_at is not None:
            return TaskState.CANCELLED
        if now < self.created_at + self.queue_s:
            return TaskState.QUEUED
        if now < self.ends_at or self.outcome is Outcome.NEVER:
            return TaskState.RUNNING
        return TaskState.FAILED if self.outcome in (Outcome.FAIL, Outcome.NODE_ERROR) else TaskState.SUCCESS

    @property
    def ends_at(self) -> float:
        return self.created_at + self.queue_s + self.job_s


@dataclass
class TaskBook:
    """Thread-safe store of tasks and uploads, and the one seeded random source of the emulator."""

    seed: int | None = None
    _tasks: dict[str, EmulatedTask] = field(default_factory=dict)
    _uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # fileName -> (original name, bytes)
    _webhooks_pending: set[str] = field(default_factory=set)  # ids of tasks with a webhook not yet settled
    _asked: set[str] = field(default_factory=set)  # ids of tasks a client asked about (status, outputs, cancel)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def chance(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def new_task_id(self) -> str:
        """A fresh 19-digit decimal id (RunningHub's are 64-bit integers)."""
        with self._lock:
            while True:
                task_id = str(self._rng.randrange(10**18, 10**19))
                if task_id not in self._tasks:
                    return task_id

    def add(self, task: EmulatedTask) -> None:
        with self._lock:
            self._tasks[task.task_id] = task
            if task.webhook_url is not None:
                self._webhooks_pending.add(task.task_id)

    def webhooks_pending(self) -> list[EmulatedTask]:
        """Tasks with a ``webhookUrl`` whose webhook is not settled (delivered or out of attempts)."""
        with self._lock:
            return [self._tasks[task_id] for task_id in sorted(self._webhooks_pending)]

    def webhook_settled(self, task_id: str) -> None:
        with self._lock:
            self._webhooks_pending.discard(task_id)

    def get(self, task_id: str) -> EmulatedTask | None:
        with self._lock:
            return self._tasks.get(task_id)

    def note_asked(self, task_id: str) -> None:
        """A client asked about the task (its status, outputs, or to cancel it): the job was not left unread."""
        with self._lock:
            self._asked.add(task_id)

    def asked(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._asked

    def all(self) -> list[EmulatedTask]:
        with self._lock:
            return sorted(self._tasks.values(), key=lambda t: t.created_at)

    def unfinished(self, now: float) -> int:
        with self._lock:
            tasks = list(self._tasks.values())
        return sum(t.state_at(now) in (TaskState.QUEUED, TaskState.RUNNING) for t in tasks)

    def cancel(self, task_id: str, now: float) -> EmulatedTask | None:
        """Cancel an unfinished task (a finished one keeps its result); ``None`` if there is no such task."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.state_at(now) in (TaskState.QUEUED, TaskState.RUNNING):
                task = self._tasks[task_id] = replace(task, cancelled_at=now)
            return task

    def store_upload(self, file_name: str, original_name: str, content: bytes) -> None:
        with self._lock:
            self._uploads[file_name] = (original_name, content)

    def upload(self, file_name: str) -> tuple[str, bytes] | None:
        with self._lock:
            return self._uploads.get(file_name)
