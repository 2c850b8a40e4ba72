"""The consumer's I/O ports, built once per warm container from the settings.

Steps receive a :class:`Services` and never build clients themselves, so tests can hand in real backends
pointed at local servers, and the SCF entry builds everything once per container rather than per message.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from consumer.callback import BackendReporter
from consumer.seen_finished import SeenFinished
from jobqueue.hop_commit import HopCommit
from jobqueue.ledger.base import Ledger
from jobqueue.queue.base import Queue
from moderation.base import Auditor
from objectstore.base import ObjectStore
from relay_core.errors import ConfigError
from relay_core.pipelines import Pipeline, PipelineFile, load_pipelines
from relay_core.settings import RelaySettings, require
from vendors.base import Vendor

if TYPE_CHECKING:  # imported by build_services: the fetcher's HTTP stack is not part of the import
    from consumer.fetch import ResultFetcher


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class Services:
    settings: RelaySettings
    queue: Queue
    ledger: Ledger
    store: ObjectStore
    vendors: dict[str, Vendor]
    auditor: Auditor
    reporter: BackendReporter
    fetcher: ResultFetcher
    pipelines: PipelineFile
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    #: the ``Continue`` effect in one atomic step, where the queue and the ledger share a store (else ``None``)
    hop_commit: HopCommit | None = None
    #: the vendor's answers polls saw succeed, for the COLLECT that follows in this process
    seen_finished: SeenFinished = field(default_factory=SeenFinished)

    @property
    def output_bucket(self) -> str:
        return self.settings.output_bucket or self.store.default_bucket

    def vendor_for(self, pipeline: Pipeline) -> Vendor:
        try:
            return self.vendors[pipeline.vendor]
        except KeyError:
            raise ConfigError(f"no client configured for vendor {pipeline.vendor!r}") from None

    def close(self) -> None:
        closables: tuple[Closable, ...] = (
            self.queue,
            self.ledger,
            self.store,
            self.auditor,
            self.reporter,
            self.fetcher,
            *self.vendors.values(),
        )
        for closable in closables:
            closable.close()


def build_services(settings: RelaySettings, *, clock: Callable[[], float] = time.time) -> Services:
    """Open every backend named by the settings; raises ``ConfigError`` naming the variable at fault. ``clock``
    is the consumer's and the queue's time source (tests run whole flows in virtual time through it)."""
    from consumer.fetch import ResultFetcher
    from jobqueue import open_ledger, open_queue
    from jobqueue.hop_commit import open_hop_commit
    from moderation import open_auditor
    from objectstore import open_store
    from vendors.runninghub import RunningHubClient

    backend_url = require(settings.backend_url, "RELAY_BACKEND_URL", "reports have nowhere to go")
    secret = require(settings.callback_secret.reveal(), "RELAY_CALLBACK_SECRET", "reports must be signed")
    api_key = require(settings.runninghub_api_key.reveal(), "RUNNINGHUB_API_KEY", "vendor calls need it")
    if settings.webhook_base_url:  # at start, not at the first submit (which would dead-letter the task)
        require(settings.webhook_secret.reveal(), "RELAY_WEBHOOK_SECRET", "RELAY_WEBHOOK_BASE_URL is set")
    pipelines = load_pipelines(settings.pipelines)
    store = open_store(settings.store_url())
    queue = open_queue(settings.queue_url(), max_receive_count=settings.max_receive_count, clock=clock)
    ledger = open_ledger(settings.ledger_url())
    return Services(
        settings=settings,
        queue=queue,
        ledger=ledger,
        hop_commit=open_hop_commit(queue, ledger),
        store=store,
        vendors={"runninghub": RunningHubClient(settings.runninghub_base_url, api_key)},
        auditor=open_auditor(settings.auditor, store=store, settings=settings),
        reporter=BackendReporter(backend_url, secret),
        fetcher=ResultFetcher(settings.result_host_list(), allow_private=settings.allow_private_hosts),
        pipelines=pipelines,
        clock=clock,
    )
