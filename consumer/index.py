"""SCF function 2, the consumer: ``main_handler(event, context)``.

Events:

* timer trigger (``{"Type": "Timer", ...}``) or a nudge from the shim (``{"Type": "Nudge"}``): drain the queue
  until idle or until ``context["time_limit_in_ms"]`` minus ``RELAY_STEP_MARGIN_S`` is spent;
* ``{"Type": "Message", "body": "<job message JSON>"}``: run that one message (tests, replays); its successor is
  sent to the queue as usual, a dead-letter move is returned instead of stored.

Backends are opened once per warm container. Returns a summary dict (counts, why it stopped).
"""

from __future__ import annotations

from typing import Any

from consumer.decisions import ToDeadLetter
from consumer.drain import Budget, DrainStats, drain
from consumer.effects import forward
from consumer.housekeeping import Housekeeping
from consumer.services import Services, build_services
from relay_core import logs
from relay_core.settings import load

_services: Services | None = None
_housekeeping: Housekeeping | None = None
log = logs.get("consumer.index")


def services() -> Services:
    global _services
    if _services is None:
        settings = load()
        logs.setup(settings.log_level)
        _services = build_services(settings)
    return _services


def housekeeping(svc: Services) -> Housekeeping:
    global _housekeeping
    if _housekeeping is None:
        _housekeeping = Housekeeping(svc.settings.housekeeping_interval_s)
    return _housekeeping


def reset() -> None:
    """Forget the cached backends (tests; a new configuration)."""
    global _services, _housekeeping
    if _services is not None:
        _services.close()
    _services = _housekeeping = None


def main_handler(event: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
    svc = services()
    kind = event.get("Type") if isinstance(event, dict) else None
    if kind == "Message":
        return _one_message(svc, event.get("body"))
    budget = Budget.from_context(context, svc.settings.step_margin_s)
    stats: DrainStats = drain(svc, budget)
    summary: dict[str, Any] = {"trigger": kind or "unknown", **stats.as_dict()}
    if kind == "Timer":
        summary["housekeeping"] = housekeeping(svc).run_if_due(svc)
    log.info("drain finished", extra=summary)
    return summary


def _one_message(svc: Services, body: object) -> dict[str, Any]:
    from consumer.dispatch import handle

    if not isinstance(body, str):
        return {"error": "event.body must be a job message JSON string"}
    msg, decision = handle(body, svc)
    if isinstance(decision, ToDeadLetter) or msg is None:
        return {"decision": "to_dead_letter", "reason": getattr(decision, "reason", "")}
    forward(svc, msg, decision)
    return {"decision": type(decision).__name__.lower()}
