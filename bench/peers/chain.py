"""The task chain the peers run, written the way a user of Dramatiq or Celery would: plain functions a task body
calls, no ledger, no framework in here.

Per task: submit the input to the vendor (upload + create) → poll with the pipeline's policy (the first poll
``first_s`` after the submit, then :func:`consumer.delays.poll_delay`) → stream every result to a file (temp +
rename, md5 while writing) → one signed callback (:class:`consumer.callback.BackendReporter`, the one scf-relay
uses). The same vendor client and pipeline file as scf-relay; the delays are the caller's (a delayed message).

Workers read their configuration from the environment (:meth:`ChainConfig.from_env`), set by the benchmark.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from consumer.callback import BackendReporter, Delivery
from consumer.delays import poll_delay
from relay_core.domain import ErrorReason, Outcome, Status
from relay_core.pipelines import Pipeline, load_pipelines
from vendors.base import NodeInput, SubmitRequest, VendorState
from vendors.runninghub import RunningHubClient

PIPELINE = "model_pose12"
CHUNK_BYTES = 1024 * 1024
ENV_PREFIX = "BENCH_PEERS_"


@dataclass(frozen=True)
class ChainConfig:
    """Where the chain's ends are: the vendor, the report receiver, the local files, the Redis broker."""

    redis_url: str
    vendor_url: str
    api_key: str
    backend_url: str
    secret: str
    home: Path

    def env(self) -> dict[str, str]:
        """The ``BENCH_PEERS_*`` variables :meth:`from_env` reads."""
        return {
            f"{ENV_PREFIX}REDIS": self.redis_url,
            f"{ENV_PREFIX}VENDOR_URL": self.vendor_url,
            f"{ENV_PREFIX}API_KEY": self.api_key,
            f"{ENV_PREFIX}BACKEND_URL": self.backend_url,
            f"{ENV_PREFIX}SECRET": self.secret,
            f"{ENV_PREFIX}HOME": str(self.home),
        }

    @classmethod
    def from_env(cls) -> ChainConfig:
        env = os.environ
        return cls(
            redis_url=env[f"{ENV_PREFIX}REDIS"],
            vendor_url=env[f"{ENV_PREFIX}VENDOR_URL"],
            api_key=env[f"{ENV_PREFIX}API_KEY"],
            backend_url=env[f"{ENV_PREFIX}BACKEND_URL"],
            secret=env[f"{ENV_PREFIX}SECRET"],
            home=Path(env[f"{ENV_PREFIX}HOME"]),
        )

    def input_path(self, task_id: str) -> Path:
        return self.home / "inputs" / f"{task_id}.jpg"

    def ready_dir(self) -> Path:
        """Each peer worker process touches ``<pid>`` here once it consumes (the benchmark waits for them)."""
        return self.home / "ready"


@dataclass(frozen=True)
class PollOutcome:
    """What one status query found: ``urls`` when the job succeeded, ``failed`` when it ended without, else the
    delay before the next query."""

    urls: tuple[str, ...] = ()
    failed: str = ""
    delay_s: float = 0.0


class Chain:
    """One per worker process; thread-safe (httpx clients are, the rng is guarded)."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
        self.pipeline: Pipeline = load_pipelines().get(PIPELINE)
        self.vendor = RunningHubClient(config.vendor_url, config.api_key)
        self.reporter = BackendReporter(config.backend_url, config.secret)
        self.http = httpx.Client(timeout=30)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    @property
    def first_poll_s(self) -> float:
        return self.pipeline.poll.first_s

    def submit(self, task_id: str) -> str:
        """Upload the task's input and start the job; returns the vendor task id."""
        path = self.config.input_path(task_id)
        with path.open("rb") as stream:
            reference = self.vendor.upload(stream, path.name, path.stat().st_size)
        nodes = tuple(
            NodeInput(n.node_id, n.field_name, n.value.replace("{input}", reference)) for n in self.pipeline.nodes
        )
        return self.vendor.submit(SubmitRequest(self.pipeline.kind, self.pipeline.target_id, nodes))

    def poll(self, vendor_task_id: str, polls: int) -> PollOutcome:
        """One status query; ``polls`` is how many came before it."""
        status = self.vendor.status(vendor_task_id)
        if status.state is VendorState.SUCCEEDED:
            return PollOutcome(urls=tuple(o.url for o in status.outputs[: self.pipeline.outputs.count]))
        if status.state is VendorState.FAILED:
            return PollOutcome(failed=status.detail or "vendor failed")
        with self._rng_lock:
            delay = poll_delay(self.pipeline.poll, polls, status.state is VendorState.QUEUED, self._rng)
        return PollOutcome(delay_s=delay)

    def collect(self, task_id: str, urls: tuple[str, ...]) -> tuple[str, ...]:
        """Stream each result to ``output/<task>/<name>`` (a temp file renamed into place); returns the keys."""
        folder = self.config.home / "store" / "output" / task_id
        folder.mkdir(parents=True, exist_ok=True)
        keys = []
        for n, url in enumerate(urls, start=1):
            name = self.pipeline.outputs.file_name(n)
            self._download(url, folder / name)
            keys.append(f"output/{task_id}/{name}")
        return tuple(keys)

    def _download(self, url: str, target: Path) -> str:
        digest = hashlib.md5()
        temp = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        with self.http.stream("GET", url) as response:
            response.raise_for_status()
            with temp.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
        os.replace(temp, target)
        return digest.hexdigest()

    def report(self, task_id: str, vendor_task_id: str, keys: tuple[str, ...] = (), failed: str = "") -> None:
        """The signed callback; raises on anything but a delivery (the framework's retry takes over)."""
        if failed:
            outcome = Outcome.failed(ErrorReason.FAILED, failed, vendor_task_id=vendor_task_id)
        else:
            outcome = Outcome(Status.DONE, result_keys=keys, vendor_task_id=vendor_task_id)
        result = self.reporter.post(task_id, outcome)
        if result.delivery is not Delivery.DELIVERED:
            raise RuntimeError(f"report of {task_id} not delivered: {result.detail}")

    def finish(self, task_id: str, vendor_task_id: str, found: PollOutcome) -> None:
        """After a poll that found the job ended: collect (on success) and report."""
        if found.failed:
            self.report(task_id, vendor_task_id, failed=found.failed)
        else:
            self.report(task_id, vendor_task_id, self.collect(task_id, found.urls))


_chain: Chain | None = None
_chain_lock = threading.Lock()


def chain() -> Chain:
    """This process's :class:`Chain`, built from the environment on first use."""
    global _chain
    with _chain_lock:
        if _chain is None:
            _chain = Chain(ChainConfig.from_env())
        return _chain


def mark_ready(config: ChainConfig) -> None:
    """Tell the benchmark this worker process consumes now."""
    folder = config.ready_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
