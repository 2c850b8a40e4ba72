"""Moderation (API 3.0 credentials, IMS and VM in the region, BizType), backend and callback-secret checks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from relay_core.errors import ConfigError
from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

IMS_CLIENT = "tencentcloud.ims.v20201229.ims_client.ImsClient"
VM_CLIENT = "tencentcloud.vm.v20210922.vm_client.VmClient"
#: harmless probes: parameters the service must refuse, so nothing is moderated or billed
PROBES = (
    ("IMS", IMS_CLIENT, "ims", "ImageModeration", {"DataId": "scf-relay-doctor"}),
    ("VM", VM_CLIENT, "vm", "DescribeTaskDetail", {"TaskId": "scf-relay-doctor-probe"}),
)


def moderation_rows(settings: RelaySettings) -> list[Row]:
    """The auditor's configuration (BizType when a pipeline moderates video), then one harmless call to each of
    IMS and VM: any answer but a credential/permission/service error passes."""
    from moderation import open_auditor

    if urlsplit(settings.auditor.strip()).path != "tencent":
        why = "RELAY_AUDITOR is not tencent: no Tencent moderation to check"
        return [unknown("moderation: configuration", why), unknown("moderation: IMS and VM answer", why)]
    try:
        open_auditor(settings.auditor, store=None, settings=settings).close()
    except ConfigError as exc:
        return [failed("moderation: configuration", str(exc))]
    options = dict(parse_qsl(urlsplit(settings.auditor.strip()).query))
    rows = [passed("moderation: configuration", f"biz_type={options.get('biz_type') or '(none: images only)'}")]
    region = options.get("region") or ""
    if not region:
        return [*rows, unknown("moderation: IMS and VM answer", "no region= in RELAY_AUDITOR")]
    rows += [
        _probe(label, client, service, action, params, region, options.get("endpoint"))
        for label, client, service, action, params in PROBES
    ]
    rows.append(
        unknown(
            "moderation: BizType exists",
            "no read-only API 3.0 call to look a policy up was found; a wrong BizType fails the first video task "
            "(CreateVideoModerationTask)",
        )
    )
    return rows


def _probe(
    label: str, client_path: str, service: str, action: str, params: dict[str, Any], region: str, endpoint: str | None
) -> Row:
    from tencent_plumbing.api3 import ApiTarget, Fault, call, describe, fault_of, make_client, sdk_errors

    name = f"moderation: {label} answers in {region}"
    try:
        call(make_client(client_path, ApiTarget(region, endpoint=endpoint)), action, params)
    except sdk_errors() as exc:
        fault = fault_of(exc)
        if fault is Fault.OURS:
            return failed(
                name,
                f"{describe(exc)}: allow {service}:{action} in the consumer role's CAM policy "
                "(deploy/cam/consumer.json) and enable the service in this region",
            )
        if fault is Fault.TRANSIENT:
            return failed(name, f"{describe(exc)}: the API is unreachable or failing from here")
    return passed(name, f"{action} answered (credentials accepted)")


def backend_rows(settings: RelaySettings, timeout_s: float = 5.0) -> list[Row]:
    """The backend URL resolves and answers (TLS verified for https); the callback secret is set."""
    rows = []
    secret = settings.callback_secret.reveal()
    if not secret:
        rows.append(failed("backend: callback secret", "set RELAY_CALLBACK_SECRET (the HMAC key the backend shares)"))
    elif len(secret) < 32:
        rows.append(failed("backend: callback secret", "RELAY_CALLBACK_SECRET is shorter than 32 characters"))
    else:
        rows.append(passed("backend: callback secret", "set"))
    name = "backend: RELAY_BACKEND_URL answers"
    if not settings.backend_url:
        return [*rows, failed(name, "set RELAY_BACKEND_URL (reports go to {url}/internal/task/update)")]
    try:
        response = httpx.head(settings.backend_url, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        return [*rows, failed(name, f"{type(exc).__name__}: {exc} (DNS, network path or TLS certificate)")]
    return [*rows, passed(name, f"HTTP {response.status_code} from {settings.backend_url}")]
