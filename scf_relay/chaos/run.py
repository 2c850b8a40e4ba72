"""Drive a chaos run: uploads through the shim, a fleet of worker processes SIGKILLed at random, faults around.

Faults, all at once: worker SIGKILLs every ``kill_every_s`` (uniform), self-inflicted SIGKILLs at effect
boundaries (``crash_rate``), vendor 5xx, non-JSON answers, creates whose answer is lost after the job was made
(``drop_create_rate``) and a small concurrency limit (421), vendor-failed, never-finishing and blocked jobs,
inputs that are not images, every COS event delivered twice and some a third time later (a duplicate SUBMIT
message), moderation outages and a backend that refuses (503) for a while.
The run ends when every task is reported or dead-lettered and the queue holds nothing pending, or at
``timeout_s``; then the workers are stopped and :func:`scf_relay.chaos.verdict.judge` reads the evidence.

The vendor calls the webhook route (served by the driver, as the webhook entry would be) when a job ends, unless
``webhooks`` is off: that is what resolves ambiguous submits. Every pipeline's deadline is ``deadline_s``
(the never-finishing kind's is shorter), so tasks that wait in vain for a webhook settle within the run.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scf_relay.chaos.fleet import Fleet
from scf_relay.chaos.plan import QUICK_PIPELINE, PlannedTask, build_plan, task_of_payload
from scf_relay.chaos.verdict import Evidence, VendorJob, judge
from scf_relay.demo.stack import LocalStack

FAST_POLL = "poll = { first_s = 0.3, base_s = 0.3, factor = 1.5, max_s = 1.0, queued_factor = 1.0 }"
QUICK_DEADLINE_S = 20


@dataclass
class ChaosOptions:
    tasks: int = 100
    seed: int = 1
    backend: str = "sqlite"  # sqlite | redis
    redis_url: str = "redis://127.0.0.1:6379/15"
    workers: int = 2
    concurrency: int = 4
    kill_every_s: tuple[float, float] = (0.3, 2.5)
    min_uptime_s: float = 2.0  # a worker is killed only once it has been up this long (it must start to work)
    crash_rate: float = 0.01
    vendor_concurrency: int = 12  # unfinished vendor jobs at once; submits past it get 421
    uploads_per_s: float = 25.0
    timeout_s: float = 600.0
    home: Path = Path(".relay/chaos")
    backend_outage_every_s: float = 15.0
    backend_outage_s: float = 3.0
    moderation_outage_every_s: float = 20.0
    moderation_outage_s: float = 3.0
    webhooks: bool = True
    drop_create_rate: float = 0.05  # creates that make the job and lose the answer (an ambiguous submit)
    deadline_s: int = 180


@dataclass
class Faults:
    """What was injected (counted by the driver; the vendor's and the backend's own counts come from them)."""

    sigkills: int = 0
    boundary_crashes: int = 0
    worker_starts: int = 0
    other_worker_exits: dict[str, int] = field(default_factory=dict)
    backend_outages: int = 0
    backend_refusals: int = 0
    moderation_outages: int = 0
    duplicate_cos_events: int = 0
    late_duplicate_submits: int = 0
    vendor: dict[str, float] = field(default_factory=dict)


def chaos_pipelines(folder: Path, deadline_s: int) -> Path:
    """The packaged pipelines with fast polls and ``deadline_s``, plus ``quick_timeout`` (deadline of seconds) for
    never-ending jobs."""
    from relay_core.pipelines import PACKAGED

    text = re.sub(r"^poll = \{[^}]*\}$", FAST_POLL, PACKAGED.read_text(encoding="utf-8"), flags=re.MULTILINE)
    text = re.sub(r"^deadline_s = \d+$", f"deadline_s = {deadline_s}", text, flags=re.MULTILINE)
    start, end = text.index("[pipelines.promo_poster]"), text.index("[pipelines.video_tryon]")
    quick = text[start:end].replace("[pipelines.promo_poster]", f"[pipelines.{QUICK_PIPELINE}]")
    quick = re.sub(r"^deadline_s = \d+$", f"deadline_s = {QUICK_DEADLINE_S}", quick, flags=re.MULTILINE)
    path = folder / "pipelines-chaos.toml"
    path.write_text(text + "\n" + quick, encoding="utf-8")
    return path


def run_chaos(opts: ChaosOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _line: None)
    run_id = secrets.token_hex(3)
    plan = build_plan(opts.tasks, opts.seed, run_id)
    home = opts.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    pipelines = chaos_pipelines(home, opts.deadline_s)
    outage_file = home / "moderation-down"
    prefix = f"chaos-{uuid.uuid4().hex[:10]}"
    env = {
        "RELAY_PIPELINES": str(pipelines),
        "RELAY_VISIBILITY_TIMEOUT_S": "5",
        "RELAY_MAX_RECEIVE_COUNT": "12",
        "RELAY_AUDITOR": f"local?outage_file={outage_file}",
        "RELAY_LOG_LEVEL": "INFO",
        "RELAY_HOUSEKEEPING_INTERVAL_S": "5",
    }
    if opts.backend == "redis":
        env["RELAY_QUEUE"] = f"{opts.redis_url}?prefix={prefix}"
        env["RELAY_LEDGER"] = f"{opts.redis_url}?prefix={prefix}"
    vendor = {
        "job_s": 0.6,
        "queue_s": 0.2,
        "concurrency": opts.vendor_concurrency,
        "http_5xx_rate": 0.03,
        "garbage_rate": 0.02,
        "drop_create_response_rate": opts.drop_create_rate,
    }
    faults = Faults(vendor={k: float(v) for k, v in vendor.items()})
    rng = random.Random(opts.seed)
    started = time.monotonic()
    try:
        emulator = {**vendor, "seed": opts.seed}
        with LocalStack(home / "stack", emulator=emulator, env=env, webhooks=opts.webhooks) as stack:
            fleet = Fleet(opts.workers, opts.concurrency, opts.crash_rate, home / "logs", dict(os.environ))
            try:
                fleet.start()
                settled = _drive(stack, fleet, plan, opts, faults, rng, outage_file, started, say)
            finally:  # also when interrupted: no worker outlives its run
                say("stopping the workers")
                fleet.stop()
            faults.sigkills = fleet.counts.sigkilled
            faults.boundary_crashes = fleet.counts.crashed_at_boundary
            faults.worker_starts = fleet.counts.started
            faults.other_worker_exits = fleet.counts.other_exits
            faults.backend_refusals = stack.receiver.refused if stack.receiver else 0
            evidence = collect_evidence(stack)
            verdict = judge(plan, evidence)
    finally:
        if opts.backend == "redis":
            drop_redis_keys(opts.redis_url, prefix)
    return {
        "ok": settled and verdict.ok,
        "settled": settled,
        "elapsed_s": round(time.monotonic() - started, 1),
        "tasks": opts.tasks,
        "backend": opts.backend,
        "seed": opts.seed,
        "webhooks": opts.webhooks,
        "kinds": _count(t.kind.value for t in plan),
        "faults": asdict(faults),
        **verdict.as_dict(),
        "home": str(home),
    }


def _drive(
    stack: LocalStack,
    fleet: Fleet,
    plan: list[PlannedTask],
    opts: ChaosOptions,
    faults: Faults,
    rng: random.Random,
    outage_file: Path,
    started: float,
    say: Callable[[str], None],
) -> bool:
    """Upload the plan under fire, until it settles; then give stragglers a calm moment. Returns settled."""
    stop = threading.Event()
    chaos = threading.Thread(target=_inflict, args=(stack, fleet, opts, faults, rng, stop, outage_file))
    chaos.start()
    try:
        late = _upload(stack, plan, opts, faults, rng, say)
        _deliver_late(stack, late, faults)
        settled = _wait_until_settled(stack, plan, opts, started, say)
    finally:
        stop.set()
        chaos.join()
        outage_file.unlink(missing_ok=True)
        if stack.receiver is not None:
            stack.receiver.down_until = 0.0
    if settled:  # the faults are over: give stragglers (reports waiting out an outage) a moment
        settled = _wait_until_settled(stack, plan, opts, started, say)
    return settled


def _upload(
    stack: LocalStack,
    plan: list[PlannedTask],
    opts: ChaosOptions,
    faults: Faults,
    rng: random.Random,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Upload every task (each event delivered twice); returns the events to deliver once more, later."""
    late = []
    for n, task in enumerate(plan, start=1):
        event = stack.upload(task.task_id, task.user_id, task.pipeline, task.payload)
        stack.deliver(event, times=2)
        faults.duplicate_cos_events += 1
        if rng.random() < 0.2:
            late.append(event)
        if n % 50 == 0:
            say(f"uploaded {n}/{len(plan)}")
        time.sleep(1.0 / opts.uploads_per_s)
    return late


def _deliver_late(stack: LocalStack, late: list[dict[str, Any]], faults: Faults) -> None:
    for event in late:
        stack.deliver(event)
        faults.late_duplicate_submits += 1


def _inflict(
    stack: LocalStack,
    fleet: Fleet,
    opts: ChaosOptions,
    faults: Faults,
    rng: random.Random,
    stop: threading.Event,
    outage_file: Path,
) -> None:
    """The chaos thread: kill workers, restart them, take the backend and moderation down now and then."""
    now = time.monotonic()
    next_kill = now + rng.uniform(*opts.kill_every_s)
    next_backend = now + rng.uniform(0.5, 1.5) * opts.backend_outage_every_s
    next_moderation = now + rng.uniform(0.5, 1.5) * opts.moderation_outage_every_s
    moderation_back_at = 0.0
    while not stop.wait(0.05):
        now = time.monotonic()
        fleet.supervise()
        if now >= next_kill and fleet.kill_one(rng, opts.min_uptime_s):
            next_kill = now + rng.uniform(*opts.kill_every_s)
        if stack.receiver is not None and now >= next_backend:
            stack.receiver.down_until = time.time() + opts.backend_outage_s
            faults.backend_outages += 1
            next_backend = now + rng.uniform(0.5, 1.5) * opts.backend_outage_every_s
        if now >= next_moderation:
            outage_file.touch()
            moderation_back_at = now + opts.moderation_outage_s
            faults.moderation_outages += 1
            next_moderation = now + rng.uniform(0.5, 1.5) * opts.moderation_outage_every_s
        if moderation_back_at and now >= moderation_back_at:
            outage_file.unlink(missing_ok=True)
            moderation_back_at = 0.0
    fleet.supervise()


def _wait_until_settled(
    stack: LocalStack, plan: list[PlannedTask], opts: ChaosOptions, started: float, say: Callable[[str], None]
) -> bool:
    """Until every task is reported or dead-lettered and nothing is pending in the queue; False at the timeout."""
    last_said = 0.0
    while time.monotonic() - started < opts.timeout_s:
        evidence = collect_evidence(stack, with_files=False)
        open_tasks = [t for t in plan if not (evidence.reports.get(t.task_id) or evidence.dead_letters.get(t.task_id))]
        stats = stack.queue_admin.stats_source()
        pending = stats.stats().pending if stats is not None else 0
        if not open_tasks and pending == 0:
            return True
        if time.monotonic() - last_said > 5:
            say(f"{len(plan) - len(open_tasks)}/{len(plan)} tasks accounted for, {pending} messages pending")
            last_said = time.monotonic()
        time.sleep(0.3)
    return False


def collect_evidence(stack: LocalStack, *, with_files: bool = True) -> Evidence:
    """What the backend, the vendor, the bucket and the dead-letter queue saw."""
    from jobqueue.message import task_of
    from relay_core.filetypes import BLOCK_MARKER

    evidence = Evidence()
    if stack.receiver is not None:
        evidence.reports = {task: [r.body for r in got] for task, got in stack.receiver.by_task().items()}
    for letter in stack.queue_admin.dead_letters(limit=100_000):
        evidence.dead_letters.setdefault(task_of(letter.body), []).append(letter.reason)
    if not with_files:
        return evidence
    assert stack.emulator is not None
    from vendors.emulator.tasks import Outcome as JobOutcome

    called_back = {call.task_id for call in stack.emulator.webhook_calls if 200 <= call.status < 300}
    for vendor_task in stack.emulator.tasks:
        named = {
            task_of_payload(upload[1])
            for node in vendor_task.nodes
            if (upload := stack.emulator.book.upload(str(node.get("fieldValue", "")))) is not None
        } - {None}
        job = VendorJob(
            vendor_task.task_id,
            called_back=vendor_task.task_id in called_back,
            asked=stack.emulator.book.asked(vendor_task.task_id),
            refused_at_create=vendor_task.outcome is JobOutcome.NODE_ERROR,
        )
        for task_id in named:
            assert task_id is not None
            evidence.submissions[task_id] = evidence.submissions.get(task_id, 0) + 1
            evidence.vendor_jobs.setdefault(task_id, []).append(job)
    bucket = stack.bucket_dir
    for path in sorted((bucket / "output").rglob("*")) if (bucket / "output").exists() else []:
        if path.is_file() and not path.name.startswith("."):
            task_id = path.parent.name
            evidence.outputs.setdefault(task_id, {})[path.name] = BLOCK_MARKER in path.read_bytes()
    dead = set(evidence.dead_letters)
    for path in sorted((bucket / "staging").rglob("*")) if (bucket / "staging").exists() else []:
        if path.is_file() and path.parent.name not in dead:  # a dead-lettered task keeps its staging for a redrive
            evidence.staging.append(str(path.relative_to(bucket)))
    return evidence


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def drop_redis_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (a run's own queue and ledger) on the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
