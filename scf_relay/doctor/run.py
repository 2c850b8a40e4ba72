"""Every doctor check, in order, as rows; and what cannot be checked from here, said as ``unknown``."""

from __future__ import annotations

from relay_core.settings import RelaySettings
from scf_relay.doctor import functions, queues, services, storage, vendor
from scf_relay.doctor.rows import Row, Verdict, guarded, unknown

NOT_CHECKED = (
    (
        "scf: environment, invoke permission",
        "not checked: compare each function's environment with deploy/relay.env.example (`scf info`); the shim's "
        "right to invoke the consumer shows as a failed nudge in its log",
    ),
    (
        "cam: every action allowed",
        "CAM cannot be simulated from here; a probe above that fails with AuthFailure/UnauthorizedOperation names "
        "its action, and shim-only actions (SendMessage, InvokeFunction) are not probed",
    ),
)


def run_checks(settings: RelaySettings) -> list[Row]:
    """All rows; a check that raises becomes a ``fail`` row (see :func:`guarded`)."""
    rows: list[Row] = []
    rows += guarded("queue: data plane accepts our credentials", lambda: queues.data_plane_rows(settings))
    rows += guarded("queue: attributes as infra creates them", lambda: queues.attribute_rows(settings))
    rows += guarded("cos: bucket reachable", lambda: storage.bucket_rows(settings))
    rows += guarded("moderation", lambda: services.moderation_rows(settings))
    rows += guarded("runninghub", lambda: vendor.pipeline_rows(settings))
    rows += guarded("backend", lambda: services.backend_rows(settings))
    rows += guarded("scf: functions as deployed", lambda: functions.function_rows(settings))
    rows += [unknown(name, why) for name, why in NOT_CHECKED]
    return rows


def exit_code(rows: list[Row]) -> int:
    """1 when any row failed, else 0 (``unknown`` rows do not fail the run)."""
    return 1 if any(row.verdict is Verdict.FAIL for row in rows) else 0
