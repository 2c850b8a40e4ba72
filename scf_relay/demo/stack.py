"""``LocalStack``: everything of the flow on one machine, for the demo and the end-to-end tests.

It starts the RunningHub emulator and (unless a backend URL is given) a report receiver on loopback, points
the ``RELAY_*`` environment at an embedded home (SQLite queue and ledger, a local bucket), and drives the real
entry points: ``producer_shim.index.main_handler`` for COS events and the consumer's drain loop for ticks.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from relay_core.settings import EMBEDDED_BUCKET
from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.events import cos_event

if TYPE_CHECKING:
    from consumer.decisions import Decision
    from consumer.drain import DrainStats
    from jobqueue.message import JobMessage
    from jobqueue.queue.base import QueueAdmin
    from jobqueue.queue.base import Received as QueueMessage
    from scf_relay.demo.receiver import Received, ReportReceiver
    from vendors.emulator import RunningHubEmulator

BUCKET = EMBEDDED_BUCKET
#: how far virtual time moves when nothing is ready (smaller than every delay the flow waits on)
IDLE_STEP_S = 0.5


@dataclass
class TaskView:
    """What happened to one task, as the demo prints it and the tests assert it."""

    task_id: str
    user_id: str
    pipeline: str
    expected: str = "done"
    status: str = "pending"
    error_reason: str | None = None
    outputs: list[dict] = field(default_factory=list)
    polls: int = 0
    steps: int = 0
    billed_ms: float = 0.0
    reports: int = 0
    signature_ok: bool | None = None
    report_body: dict | None = None
    dead_letter: str | None = None

    def terminal(self) -> bool:
        return self.status in ("done", "failed") or self.dead_letter is not None


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class LocalStack:
    def __init__(
        self,
        home: Path,
        *,
        emulator: dict | None = None,
        backend_url: str | None = None,
        secret: str | None = None,
        env: dict[str, str] | None = None,
        receiver_down_for_s: float = 0.0,
        clock: VirtualClock | None = None,
        webhooks: bool = False,
    ) -> None:
        """``clock``: run in virtual time (see :mod:`scf_relay.demo.clock`); None: the wall clock. ``webhooks``:
        serve the webhook route (:mod:`scf_relay.webhook_server`) and send its URL with every submit."""
        self.home = home.resolve()
        self.clock = clock
        self.emulator_knobs = emulator or {}
        self.backend_url = backend_url
        self.secret = secret or secrets.token_hex(16)
        self.extra_env = env or {}
        self.receiver_down_for_s = receiver_down_for_s
        self.webhooks = webhooks
        self.views: dict[str, TaskView] = {}
        self.emulator: RunningHubEmulator | None = None
        self.receiver: ReportReceiver | None = None
        self._admin: QueueAdmin | None = None
        self._stack = contextlib.ExitStack()

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        from consumer import index as consumer
        from producer_shim import index as shim
        from scf_relay.demo.receiver import ReportReceiver
        from vendors.emulator import EmulatorConfig, RunningHubEmulator

        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        try:
            knobs = dict(self.emulator_knobs)
            if self.clock is not None:
                knobs.update(clock=self.clock, sleep=self.clock.sleep)
            emulator = self._stack.enter_context(RunningHubEmulator(EmulatorConfig(**knobs)))
            self.emulator = emulator
            if not self.backend_url:
                receiver = ReportReceiver(
                    self.secret, down_for_s=self.receiver_down_for_s, clock=self.clock or time.time
                )
                self.receiver = self._stack.enter_context(receiver)
                self.backend_url = receiver.base_url
            env = {
                "RELAY_HOME": str(self.home),
                "RELAY_STORE": f"file://{self.home / 'store'}?bucket={BUCKET}",
                "RELAY_BACKEND_URL": self.backend_url,
                "RELAY_CALLBACK_SECRET": self.secret,
                "RELAY_ALLOW_PRIVATE_HOSTS": "1",
                "RELAY_REPORT_RETRY_S": "1",
                "RELAY_STEP_MARGIN_S": "0.5",
                # a tick is one short drain: no long-poll (the bench measures it against the CMQ server)
                "RELAY_RECEIVE_WAIT_S": "0",
                "RUNNINGHUB_BASE_URL": emulator.base_url,
                "RUNNINGHUB_API_KEY": emulator.config.api_key,
                # in virtual time a report is retried by delayed messages only, never by waiting in the step
                **({"RELAY_REPORT_RETRY_S": "0"} if self.clock is not None else {}),
                **self.extra_env,
            }
            self._stack.enter_context(_environ(env))
            if self.webhooks:
                self._serve_webhooks()
            shim.reset(self.clock or time.time)
            consumer.reset()
            self._stack.callback(shim.reset)
            self._stack.callback(consumer.reset)
            if self.clock is None:
                self.svc = consumer.services()
            else:
                from consumer.services import build_services
                from relay_core.settings import load

                self.svc = build_services(load(), clock=self.clock)
                self._stack.callback(self.svc.close)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _serve_webhooks(self) -> None:
        from relay_core.settings import load
        from scf_relay.webhook_server import WebhookServer
        from webhook_entry.index import build_gate

        secret = secrets.token_hex(16)  # the consumer signs its webhook URLs with the same one
        gate = build_gate(load(webhook_secret=secret), clock=self.clock or time.time)
        self._stack.callback(gate.ledger.close)
        self._stack.callback(gate.queue.close)
        server = self._stack.enter_context(WebhookServer(gate))
        self._stack.enter_context(_environ({"RELAY_WEBHOOK_BASE_URL": server.base_url, "RELAY_WEBHOOK_SECRET": secret}))

    @property
    def queue_admin(self) -> QueueAdmin:
        """The operator plane of the stack's queue (dead letters; statistics where the backend has them), opened
        on first use from the consumer's settings and closed with the stack."""
        if self._admin is None:
            from jobqueue import open_queue_admin

            settings = self.svc.settings
            self._admin = open_queue_admin(
                settings.queue_url(), max_receive_count=settings.max_receive_count, clock=self.svc.clock
            )
            self._stack.callback(self._close_admin)
        return self._admin

    def _close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None

    @property
    def bucket_dir(self) -> Path:
        return self.home / "store" / BUCKET

    # -- driving the flow --------------------------------------------------------------------
    def upload(
        self,
        task_id: str,
        user_id: str,
        pipeline: str,
        data: bytes,
        *,
        meta: bool = True,
        name: str = "original.jpg",
        expected: str = "done",
    ) -> dict:
        """Put an input into the local bucket; returns the COS event announcing it."""
        key = f"input/{user_id}/{task_id}/{name}"
        self.svc.store.put_bytes(BUCKET, key, data)
        self.views[task_id] = TaskView(task_id, user_id, pipeline, expected)
        return cos_event(BUCKET, key, len(data), meta={"x-cos-meta-pipeline": pipeline} if meta else None)

    def deliver(self, event: dict, times: int = 1) -> list[dict]:
        """Hand an event to the producer shim ``times`` times (COS delivers at least once)."""
        from producer_shim import index as shim

        return [shim.main_handler(event, {}) for _ in range(times)]

    def tick(self, budget_s: float = 5.0) -> DrainStats:
        """One consumer run, like a timer trigger: drain until idle or out of budget."""
        from consumer.drain import Budget, Hooks, drain

        if self.webhooks and self.emulator is not None:
            self.emulator.webhooks.fire_due()  # in virtual time: the webhooks due at this instant go out first
        return drain(self.svc, Budget(budget_s), hooks=Hooks(on_step=self._on_step, on_receive=self._on_receive))

    def run_until_terminal(
        self,
        timeout_s: float = 60.0,
        progress: Callable[[int, int], None] | None = None,
        tick: Callable[[], object] | None = None,
    ) -> bool:
        """Tick until every uploaded task is reported or dead-lettered; False after ``timeout_s`` (of virtual time
        when the stack runs in virtual time, which then moves on by :data:`IDLE_STEP_S` whenever nothing is
        ready — and of wall time too, as a guard)."""
        wall_deadline = time.monotonic() + timeout_s
        virtual_deadline = self.clock() + timeout_s if self.clock is not None else None
        while time.monotonic() < wall_deadline:
            stats = (tick or self.tick)()
            self.refresh()
            finished = sum(v.terminal() for v in self.views.values())
            if progress:
                progress(finished, len(self.views))
            if finished == len(self.views):
                return True
            if getattr(stats, "stopped_by", "idle") != "idle":
                continue
            if self.clock is None:
                time.sleep(0.1)
            elif virtual_deadline is not None and self.clock() >= virtual_deadline:
                return False
            else:
                self.clock.advance(IDLE_STEP_S)
        return False

    def _on_step(self, msg: JobMessage | None, decision: Decision, elapsed_ms: float) -> None:
        from consumer.decisions import ToDeadLetter

        view = self.views.get(msg.task_id) if msg else None
        if msg is not None and view is not None:
            if isinstance(decision, ToDeadLetter):
                view.dead_letter = decision.reason
            view.steps += 1
            view.billed_ms += elapsed_ms

    def _on_receive(self, received: QueueMessage) -> None:
        """Count the POLL messages a task's runners received (a poll that goes on with COLLECT, AUDIT and REPORT
        in its hop is reported as the last of them, so its step does not say POLL)."""
        from jobqueue.errors import PoisonMessage
        from jobqueue.message import Stage, parse

        try:
            msg = parse(received.body)
        except PoisonMessage:
            return
        view = self.views.get(msg.task_id)
        if view is not None and msg.stage is Stage.POLL:
            view.polls += 1

    def refresh(self) -> None:
        """Update every view from the ledger, the bucket and the receiver (dead letters are seen as they happen:
        listing a CMQ dead-letter queue would hide its messages from the operator)."""
        svc = self.svc
        reports: dict[str, list[Received]] = self.receiver.by_task() if self.receiver else {}
        for view in self.views.values():
            got = reports.get(view.task_id, [])
            view.reports = len(got)
            if got:
                view.report_body = got[-1].body
                view.signature_ok = all(r.verified for r in got)
            record = svc.ledger.get(view.task_id)
            if record is None or record.outcome is None or record.reported_at is None:
                continue
            view.status = record.outcome.status.value
            view.error_reason = record.outcome.error_reason
            view.outputs = [
                {"key": key, "bytes": info.size if (info := svc.store.head(svc.output_bucket, key)) else None}
                for key in record.outcome.result_keys
            ]
