"""``scf-relay infra``: provision the cloud side. ``create-queues`` creates or aligns the CMQ work queue and
its dead-letter queue through the TDMQ control plane (:func:`jobqueue.queue.cmq_admin.ensure_queues`).

Queue names default to the ones in ``RELAY_QUEUE`` when it is a ``cmq://`` URL, and the visibility timeout
and receive limit to ``RELAY_VISIBILITY_TIMEOUT_S`` / ``RELAY_MAX_RECEIVE_COUNT``, so the queues match what
the functions are configured with (``deploy/relay.env.example``). Credentials come from
``TENCENTCLOUD_SECRETID`` / ``TENCENTCLOUD_SECRETKEY`` (+ ``TENCENTCLOUD_SESSIONTOKEN`` for temporary keys).
Exit codes: 0 done, 1 the service refused or failed, 2 bad options or configuration.
"""

from __future__ import annotations

import os

import typer

from relay_core.settings import RelaySettings
from scf_relay.cli.output import console, emit_json, fail, table

app = typer.Typer(no_args_is_help=True, help="Provision cloud resources (CMQ queues).")
JSON = typer.Option(False, "--json", help="print JSON instead of tables")

# Defaults stated once: the consumer's own settings, and the CMQ maxima where longer is safer.
DEFAULT_VISIBILITY_TIMEOUT_S = RelaySettings().visibility_timeout_s
DEFAULT_MAX_RECEIVE_COUNT = RelaySettings().max_receive_count
DEFAULT_RETENTION_S = 43_200  # the CMQ maximum: delayed messages must expire later than their delay
DEFAULT_DLQ_REWIND_S = 1_296_000  # 15 days: dead letters can be rewound and redriven long after 12 h
MISSING_CREDENTIALS = (
    "TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY are not set "
    "(export an operator's API keys; add TENCENTCLOUD_SESSIONTOKEN for temporary keys)"
)


@app.command("create-queues")
def create_queues(
    region: str = typer.Option(..., envvar="DEPLOY_REGION", help="API region of the queues, e.g. ap-guangzhou"),
    queue: str = typer.Option(None, help="work queue name (default: from RELAY_QUEUE=cmq://...)"),
    dlq: str = typer.Option(None, help="dead-letter queue name (default: from RELAY_QUEUE's dlq=)"),
    endpoint: str = typer.Option(None, help="API 3.0 host[:port] or URL (a local test server); default: public"),
    visibility_timeout_s: int = typer.Option(
        DEFAULT_VISIBILITY_TIMEOUT_S, envvar="RELAY_VISIBILITY_TIMEOUT_S", help="work queue VisibilityTimeout"
    ),
    retention_s: int = typer.Option(DEFAULT_RETENTION_S, help="MsgRetentionSeconds of both queues (30..43200)"),
    max_receive_count: int = typer.Option(
        DEFAULT_MAX_RECEIVE_COUNT, envvar="RELAY_MAX_RECEIVE_COUNT", help="receives before dead-lettering"
    ),
    dlq_rewind_s: int = typer.Option(DEFAULT_DLQ_REWIND_S, help="RewindSeconds of the dead-letter queue"),
    as_json: bool = JSON,
) -> None:
    """Create the CMQ dead-letter queue and work queue, or align existing ones (idempotent)."""
    from jobqueue.errors import QueueConfigError, QueueError
    from jobqueue.queue.cmq_admin import ensure_queues
    from tencent_plumbing.api3 import ApiTarget

    queue, dlq = _queue_names(queue, dlq, as_json)
    _require_credentials(as_json)
    try:
        target = ApiTarget(region, endpoint=endpoint or None)
        changes = ensure_queues(
            target,
            queue,
            dlq,
            visibility_timeout_s=visibility_timeout_s,
            retention_s=retention_s,
            max_receive_count=max_receive_count,
            dlq_rewind_s=dlq_rewind_s,
        )
    except (QueueConfigError, ValueError) as exc:
        fail(str(exc), as_json=as_json, code=2)
    except QueueError as exc:
        fail(str(exc), as_json=as_json, code=1)
    rows = [
        {"queue": name, "role": "dead-letter" if name == dlq else "work", "change": change.value}
        for name, change in changes.items()
    ]
    if as_json:
        emit_json({"ok": True, "region": region, "queues": rows})
        return
    table(f"CMQ queues in {region}", ["queue", "role", "change"], [list(r.values()) for r in rows])
    console.print(f"RELAY_QUEUE=cmq://{queue}?region=<short region, e.g. gz>&dlq={dlq}&vpc=1")


def _queue_names(queue: str | None, dlq: str | None, as_json: bool) -> tuple[str, str]:
    """The names given, else those of a ``cmq://`` RELAY_QUEUE; one clear error when neither says."""
    if queue and dlq:
        return queue, dlq
    configured = os.environ.get("RELAY_QUEUE", "").strip()
    if not configured.startswith("cmq://"):
        fail("give --queue and --dlq (or set RELAY_QUEUE=cmq://<queue>?region=gz&dlq=<dlq>)", as_json=as_json)
    from jobqueue.errors import QueueConfigError
    from jobqueue.queue.cmq_config import parse_cmq_url

    try:
        location = parse_cmq_url(configured)
    except QueueConfigError as exc:
        fail(str(exc), as_json=as_json)
    return queue or location.queue_name, dlq or location.dlq_name


def _require_credentials(as_json: bool) -> None:
    from tencent_plumbing.credentials import CredentialsMissing, env_credentials

    try:
        env_credentials()
    except CredentialsMissing:
        fail(MISSING_CREDENTIALS, as_json=as_json)
