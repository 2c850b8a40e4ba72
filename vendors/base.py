"""The Vendor protocol: submit a job, ask its state, list its outputs, cancel it.

A vendor client raises only :mod:`vendors.errors` exceptions, each one a place in the error tree of
:mod:`relay_core.errors`. ``submit`` is never retried by the client after the request may have been sent (a
vendor job costs money and RunningHub has no idempotency key, docs/platform.md §5): a timeout after sending raises
:class:`~vendors.errors.AmbiguousSubmit` and the consumer reconciles.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import BinaryIO


class VendorState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class VendorOutput:
    url: str
    file_type: str = ""  # the vendor's word for it ("png", "mp4"); the bytes decide
    node_id: str | None = None


@dataclass(frozen=True)
class VendorStatus:
    state: VendorState
    outputs: tuple[VendorOutput, ...] = ()
    detail: str = ""  # failure reason from the vendor: logs only
    raw_code: int | str | None = None


@dataclass(frozen=True)
class NodeInput:
    """One entry of RunningHub's ``nodeInfoList``."""

    node_id: str
    field_name: str
    field_value: str


@dataclass(frozen=True)
class SubmitRequest:
    """What to run: a workflow or an AI app, with its node inputs already resolved."""

    kind: str  # "workflow" | "ai-app"
    target_id: str  # workflowId or webappId
    nodes: tuple[NodeInput, ...] = field(default_factory=tuple)
    instance_type: str | None = None
    webhook_url: str | None = None  # where the vendor POSTs when the job ends (a hint: the status query decides)


class Vendor(abc.ABC):
    """A vendor client. Every method may raise ``VendorUnavailable`` (retry) or ``VendorConfigError`` (our key,
    balance or workflow is wrong); each docstring names what else it raises."""

    name: str = "vendor"
    #: largest input ``upload`` accepts; larger inputs are passed by URL
    max_upload_bytes: int = 30 * 1024 * 1024

    @abc.abstractmethod
    def upload(self, stream: BinaryIO, filename: str, size: int) -> str:
        """Upload an input file of ``size`` bytes; returns the reference to use as a node ``fieldValue``.

        Raises ``InputRejected`` when the vendor refuses the file (too large, unreadable)."""

    @abc.abstractmethod
    def submit(self, request: SubmitRequest) -> str:
        """Start a job; returns the vendor task id (a string, even when the vendor's is a number).

        Never retried once the request may have left: raises ``AmbiguousSubmit`` when it may have created a job
        without telling us its id, ``VendorBusy`` when the vendor refused for capacity (nothing was created),
        ``InputRejected`` when it refused this input."""

    @abc.abstractmethod
    def status(self, vendor_task_id: str) -> VendorStatus:
        """The job's current state; on ``SUCCEEDED`` with its outputs (empty outputs are reported ``FAILED``).

        Raises ``VendorTaskFailed`` when the vendor no longer knows the job."""

    @abc.abstractmethod
    def cancel(self, vendor_task_id: str) -> None:
        """Best effort: ask the vendor to stop (and stop billing) a job. Callers log a ``VendorError`` and go on."""

    def close(self) -> None:
        """Release connections."""
