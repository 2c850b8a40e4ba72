"""The emulator's knobs. Handlers read them live, so a test may change a knob on a running emulator.

Time is injectable: ``clock`` decides where every task is on its timeline and ``sleep`` performs the
``delay_s`` wait, so one virtual clock can drive the emulator and its client in a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vendors.emulator.media import SUPPORTED_TYPES

DEFAULT_API_KEY = "relay-demo-key"


@dataclass(frozen=True)
class TargetSpec:
    """What a workflow / AI app produces: ``count`` files of ``file_type`` (``jpeg``, ``png``, ``mp4``).

    ``count=0`` makes a task that finishes without output (outputs code 0 with an empty list).
    """

    count: int
    file_type: str
    #: (node id, input field name) pairs the workflow's API-format JSON has (``getJsonApiFormat``)
    inputs: tuple[tuple[str, str], ...] = ()


def packaged_targets() -> dict[str, TargetSpec]:
    """target_id -> outputs of every pipeline in the packaged ``pipelines.toml``.

    A type the emulator cannot make (webp, gif) is served as PNG.
    """
    from relay_core.pipelines import load_pipelines

    targets = {}
    for pipeline in load_pipelines().pipelines.values():
        wanted = pipeline.outputs.types[0]
        file_type = wanted if wanted in SUPPORTED_TYPES else "png"
        inputs = tuple((node.node_id, node.field_name) for node in pipeline.nodes)
        targets[pipeline.target_id] = TargetSpec(count=pipeline.outputs.count, file_type=file_type, inputs=inputs)
    return targets


@dataclass
class EmulatorConfig:
    """Behaviour of a :class:`~vendors.emulator.server.RunningHubEmulator`; rates are probabilities."""

    api_key: str = DEFAULT_API_KEY  # any other key: code 802 (v2: HTTP 401)
    job_s: float = 2.0  # RUNNING time of a task
    queue_s: float = 0.5  # QUEUED time before it runs
    concurrency: int = 8  # unfinished tasks allowed at once; submits past it get 421
    fail_rate: float = 0.0  # tasks that end 805 with a failedReason
    http_5xx_rate: float = 0.0  # requests answered 502 before anything is done
    http_5xx_next: int = 0  # the next N requests are answered 502 (counts down)
    never_finish_rate: float = 0.0  # tasks that stay RUNNING forever
    block_rate: float = 0.0  # successful tasks whose last output carries BLOCK_MARKER
    garbage_rate: float = 0.0  # requests whose work is done but whose answer is a non-JSON 200
    balance: int = 10_000  # coins; each created task costs one; 0 -> 812 on submit
    seed: int | None = None  # seeds task ids, random outcomes and file contents
    host: str = "127.0.0.1"
    port: int = 0
    #: workflow / AI app id -> outputs; by default those of the packaged pipelines
    targets: dict[str, TargetSpec] = field(default_factory=packaged_targets)
    max_upload_bytes: int = 30 * 1024 * 1024  # larger uploads: code 809
    delay_s: float = 0.0  # every answer waits this long after the work is done (a hung vendor)
    #: endpoint path -> legacy code to answer with, before doing anything ("/task/openapi/create": 1505)
    force_codes: dict[str, int] = field(default_factory=dict)
    task_id_as_number: bool = False  # send data.taskId as a JSON number instead of a string
    #: a task created with a ``webhookUrl`` gets ``POST {"event": "TASK_END", ...}`` this long after it ends (on
    #: ``clock``); ``None``: never (a vendor whose webhook is lost)
    webhook_delay_s: float | None = 0.0
    webhook_attempts: int = 3  # tries of a webhook answered non-2xx or unreachable, ``webhook_retry_s`` apart
    webhook_retry_s: float = 5.0
    #: creates that make the job and then answer 502, as a response lost on the way (an ambiguous submit)
    drop_create_response_rate: float = 0.0
    drop_create_response_next: int = 0  # the next N creates do so (counts down)
    #: the time source of task timelines (QUEUED -> RUNNING -> done): seconds from any origin, by default
    #: ``time.monotonic``; give a virtual clock to move jobs on without waiting
    clock: Callable[[], float] = time.monotonic
    #: how an answer waits ``delay_s``: ``None`` waits in real time (cut short when the emulator stops);
    #: under a virtual clock give its ``sleep`` (it advances virtual time) or ``lambda s: None`` (no wait)
    sleep: Callable[[float], None] | None = None

    def __post_init__(self) -> None:
        rates = ("fail_rate", "http_5xx_rate", "never_finish_rate", "block_rate", "garbage_rate")
        for name in (*rates, "drop_create_response_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}={rate} is not a probability in [0, 1]")
        for target_id, spec in self.targets.items():
            if spec.file_type not in SUPPORTED_TYPES:
                raise ValueError(f"target {target_id}: cannot make {spec.file_type!r} files")
