"""SCF checks: both functions exist as deploy/*/serverless.yml creates them (handler, runtime, timeout, memory);
the consumer has its timer trigger and the shim a COS trigger on ``input/`` (never ``output/``: the relay's own
results would trigger it). Names: RELAY_NUDGE_FUNCTION (consumer) and RELAY_SHIM_FUNCTION, both in
RELAY_NUDGE_REGION / RELAY_NUDGE_NAMESPACE (RELAY_NUDGE_ENDPOINT for a private endpoint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

SCF_CLIENT = "tencentcloud.scf.v20180416.scf_client.ScfClient"
DEPLOY_FIX = "run `scf deploy` in deploy/{folder} (serverless.yml is the reference)"


@dataclass(frozen=True)
class Expected:
    """What deploy/<folder>/serverless.yml gives a function (a test keeps the two in step)."""

    role: str
    folder: str
    handler: str
    runtime: str
    timeout: int
    memory: int


CONSUMER = Expected("consumer", "consumer", "index.main_handler", "Python3.10", 300, 512)
SHIM = Expected("shim", "producer_shim", "index.main_handler", "Python3.10", 10, 128)


def function_rows(settings: RelaySettings) -> list[Row]:
    """One configuration row and one trigger row per function; ``unknown`` when a name or the region is unset."""
    names = (
        (CONSUMER, settings.nudge_function, "RELAY_NUDGE_FUNCTION"),
        (SHIM, settings.shim_function, "RELAY_SHIM_FUNCTION"),
    )
    if not settings.nudge_region:
        why = "RELAY_NUDGE_REGION is not set: the SCF region is not configured"
        return [unknown(f"scf: {e.role} function as deployed", why) for e, _, _ in names]
    from tencent_plumbing.api3 import ApiTarget, make_client

    client = make_client(SCF_CLIENT, ApiTarget(settings.nudge_region, endpoint=settings.nudge_endpoint or None))
    rows: list[Row] = []
    for expected, name, variable in names:
        if not name:
            rows.append(unknown(f"scf: {expected.role} function as deployed", f"{variable} is not set"))
        else:
            rows += _rows_of(client, expected, name, settings.nudge_namespace)
    return rows


def _rows_of(client: Any, expected: Expected, name: str, namespace: str) -> list[Row]:
    check = f"scf: {expected.role} function as deployed"
    fix = DEPLOY_FIX.format(folder=expected.folder)
    found = _call(client, "GetFunction", {"FunctionName": name, "Namespace": namespace})
    if found is None:
        return [failed(check, f"function {name} not found in namespace {namespace}: {fix}")]
    wanted = {
        "Handler": expected.handler,
        "Runtime": expected.runtime,
        "Timeout": expected.timeout,
        "MemorySize": expected.memory,
    }
    wrong = [
        f"{key} {found.get(key)!r} (expected {value!r})" for key, value in wanted.items() if found.get(key) != value
    ]
    row = failed(check, f"{name}: " + "; ".join(wrong) + f": {fix}") if wrong else passed(check, f"{name}: {wanted}")
    listed = _call(client, "ListTriggers", {"FunctionName": name, "Namespace": namespace, "Limit": 100})
    triggers = (listed or {}).get("Triggers") or []
    return [row, (_timer_row if expected is CONSUMER else _cos_row)(name, triggers, fix)]


def _timer_row(name: str, triggers: list[dict[str, Any]], fix: str) -> Row:
    check = "scf: consumer timer trigger"
    timers = [t for t in triggers if t.get("Type") == "timer" and t.get("Enable") in (1, True)]
    if not timers:
        return failed(check, f"{name} has no enabled timer trigger: {fix}")
    return passed(check, f"{timers[0].get('TriggerName')}: {timers[0].get('TriggerDesc')}")


def _cos_row(name: str, triggers: list[dict[str, Any]], fix: str) -> Row:
    check = "scf: shim COS trigger on input/"
    prefixes = []
    for trigger in (t for t in triggers if t.get("Type") == "cos"):
        try:
            desc = json.loads(trigger.get("TriggerDesc") or "{}")
        except ValueError:
            desc = {}
        prefix = str(((desc.get("filter") or {}) if isinstance(desc, dict) else {}).get("Prefix") or "")
        prefixes.append(prefix)
        if prefix == "" or "output/".startswith(prefix) or prefix.startswith("output/"):
            return failed(check, f"{name}: a COS trigger on prefix {prefix!r} also fires on output/ (a loop): {fix}")
    if not any(p.startswith("input/") for p in prefixes):
        return failed(check, f"{name} has no COS trigger on prefix input/ (found {prefixes or 'none'}): {fix}")
    return passed(check, f"COS trigger prefixes {prefixes}")


def _call(client: Any, action: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The action's response as a dict; ``None`` when the function does not exist; other errors raise."""
    from tencent_plumbing.api3 import Fault, call, fault_of, sdk_errors

    try:
        response = call(client, action, params)
    except sdk_errors() as exc:
        if fault_of(exc) is Fault.NOT_FOUND:
            return None
        raise
    return dict(json.loads(response.to_json_string()))
