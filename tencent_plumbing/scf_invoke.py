"""Nudge the consumer: an asynchronous SCF ``Invoke`` so queued work starts now instead of at the next tick.

A nudge is only an optimisation (the timer trigger drains the queue anyway), so every failure is logged and
swallowed; :func:`nudge_consumer` returns whether the invocation was accepted. The event is small JSON,
``{"Type": "Nudge", "Time": "<UTC ISO>", ...payload}`` (async events are limited to 128 KB, docs/platform.md §1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from relay_core import logs
from tencent_plumbing.api3 import ApiTarget, call, describe, make_client, sdk_errors
from tencent_plumbing.credentials import CredentialsProvider, env_credentials

log = logs.get("tencent_plumbing.scf_invoke")

SCF_CLIENT = "tencentcloud.scf.v20180416.scf_client.ScfClient"
MAX_EVENT_BYTES = 128 * 1024
NUDGE_TIMEOUT_S = 5


def nudge_event(payload: Mapping[str, Any] | None = None, *, now_s: float | None = None) -> dict[str, Any]:
    """The event the consumer receives; ``Type`` and ``Time`` cannot be overridden by ``payload``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now_s is None else now_s))
    return {**(payload or {}), "Type": "Nudge", "Time": stamp}


def nudge_consumer(
    function_name: str,
    *,
    region: str,
    namespace: str = "default",
    credentials: CredentialsProvider = env_credentials,
    endpoint: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> bool:
    """Invoke ``function_name`` asynchronously (InvocationType ``Event``); True when SCF accepted it."""
    try:
        event = json.dumps(nudge_event(payload), ensure_ascii=False, separators=(",", ":"))
        if len(event.encode()) > MAX_EVENT_BYTES:
            log.warning("nudge skipped: event over 128 KB", extra={"event_bytes": len(event.encode())})
            return False
        client = make_client(SCF_CLIENT, ApiTarget(region, credentials, endpoint, NUDGE_TIMEOUT_S))
        params = {
            "FunctionName": function_name,
            "Namespace": namespace,
            "InvocationType": "Event",
            "ClientContext": event,
        }
        response = call(client, "Invoke", params)
    except sdk_errors() as exc:
        log.warning(
            "nudge failed (%s); the timer will drain the queue",
            describe(exc),
            extra={"function": function_name},
        )
        return False
    except (TypeError, ValueError) as exc:  # a payload that is not JSON, a malformed endpoint
        log.warning("nudge failed: %s", exc, extra={"function": function_name})
        return False
    request_id = getattr(getattr(response, "Result", None), "FunctionRequestId", None)
    log.info("consumer nudged", extra={"function": function_name, "function_request_id": request_id})
    return True
