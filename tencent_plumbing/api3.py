"""Build Tencent Cloud API 3.0 SDK clients (ims, vm, tdmq, scf) and classify their errors.

``ApiTarget`` names where calls go: a region, a :data:`~tencent_plumbing.credentials.CredentialsProvider` and an
optional endpoint (a local server in tests, a VPC/private domain in production). Credentials are read from the provider
on *every request* (SCF refreshes role credentials in the environment), so a client may live for a whole run.

The SDK is imported only inside :func:`make_client` and :func:`call`, so importing this module stays cheap.
Error codes follow Tencent's ``Group.Detail`` convention; :func:`classify` sorts them into :class:`Fault`
so each adapter can translate them into its own package's error tree.
"""

from __future__ import annotations

import enum
import importlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relay_core import logs
from tencent_plumbing.credentials import CredentialsMissing, CredentialsProvider, env_credentials


@dataclass(frozen=True)
class ApiTarget:
    """Where API 3.0 calls go. ``endpoint``: ``host[:port]`` or ``http(s)://host[:port]``; None: public."""

    region: str
    credentials: CredentialsProvider = env_credentials
    endpoint: str | None = None
    timeout_s: int = 15

    def __post_init__(self) -> None:
        """Refuse a malformed endpoint or region now (``ValueError``), not at the first call."""
        if not self.region:
            raise ValueError("an API 3.0 target needs a region (e.g. ap-guangzhou)")
        if self.endpoint:
            split_endpoint(self.endpoint)


class Fault(str, enum.Enum):
    """What an API error means for the caller."""

    OURS = "ours"  # credentials, permissions, service not enabled, package used up: fix the configuration
    REJECTED = "rejected"  # the request's content is refused (invalid parameter value): retrying will not help
    NOT_FOUND = "not_found"  # the named resource does not exist
    CONFLICT = "conflict"  # the resource exists already / is in use
    TRANSIENT = "transient"  # network, 5xx, throttling, internal errors: try again later


# Prefix match on the error code; the first match wins, anything else is TRANSIENT.
_FAULT_PREFIXES: tuple[tuple[str, Fault], ...] = (
    ("AuthFailure", Fault.OURS),
    ("UnauthorizedOperation", Fault.OURS),
    ("OperationDenied", Fault.OURS),
    ("ResourcesSoldOut", Fault.OURS),
    ("InvalidCredential", Fault.OURS),  # the SDK's own check of an empty/space-padded key
    ("CredentialsMissing", Fault.OURS),  # our CredentialsMissing, wrapped by the SDK's client methods
    ("InvalidAction", Fault.OURS),
    ("NoSuchVersion", Fault.OURS),
    ("UnknownParameter", Fault.OURS),
    ("MissingParameter", Fault.OURS),
    ("UnsupportedOperation", Fault.OURS),
    ("FailedOperation.AuthFailure", Fault.OURS),
    ("InvalidParameter", Fault.REJECTED),  # also InvalidParameterValue.*
    ("ResourceUnavailable.InvalidImageContent", Fault.REJECTED),
    ("ResourceNotFound", Fault.NOT_FOUND),
    ("ResourceInUse", Fault.CONFLICT),
)


def classify(code: str | None) -> Fault:
    code = code or ""
    for prefix, fault in _FAULT_PREFIXES:
        if code.startswith(prefix):
            return fault
    return Fault.TRANSIENT


class _ProviderCredential:
    """Duck-types ``tencentcloud.common.credential.Credential``: the SDK asks it for keys on every request."""

    def __init__(self, provider: CredentialsProvider) -> None:
        self._provider = provider

    def get_credential_info(self) -> tuple[str, str, str | None]:
        creds = self._provider()
        return creds.secret_id, creds.secret_key, creds.token

    def __repr__(self) -> str:
        return "<credentials from provider>"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``(protocol, host[:port])``: an explicit scheme wins; bare loopback hosts are http, others https."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"API endpoint {endpoint!r} is not http(s)://host[:port]")
        return parts.scheme, parts.netloc
    host = urlsplit(f"//{endpoint}").hostname or ""
    return ("http" if _is_loopback(host) else "https"), endpoint


def make_client(client_path: str, target: ApiTarget) -> Any:
    """An SDK client, e.g. ``make_client("tencentcloud.ims.v20201229.ims_client.ImsClient", target)``."""
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    module_name, _, class_name = client_path.rpartition(".")
    client_cls = getattr(importlib.import_module(module_name), class_name)
    protocol, endpoint = split_endpoint(target.endpoint) if target.endpoint else (None, None)
    http = HttpProfile(protocol=protocol, endpoint=endpoint, reqTimeout=target.timeout_s)
    return client_cls(_ProviderCredential(target.credentials), target.region, ClientProfile(httpProfile=http))


def call(client: Any, action: str, params: dict[str, Any]) -> Any:
    """Run ``action`` with ``params`` through the client's typed request/response models.

    Returns the SDK response model (attributes named like the API's fields). Raises the SDK's
    ``TencentCloudSDKException`` (network faults come as code ``ClientNetworkError``/``ServerNetworkError``).
    """
    models = importlib.import_module(client.__module__.rpartition(".")[0] + ".models")
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(params))
    return getattr(client, action)(request)


def sdk_errors() -> tuple[type[BaseException], ...]:
    """The exceptions an SDK call raises that adapters translate (the SDK's, plus missing credentials)."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    return (TencentCloudSDKException, CredentialsMissing)


def fault_of(exc: BaseException) -> Fault:
    if isinstance(exc, CredentialsMissing):
        return Fault.OURS
    return classify(getattr(exc, "code", None))


def describe(exc: BaseException) -> str:
    """``"<code>: <message>"`` for logs and error messages, with secrets and signed URL queries masked."""
    if isinstance(exc, CredentialsMissing):
        return f"CredentialsMissing: {exc}"
    code = getattr(exc, "code", None) or type(exc).__name__
    message = getattr(exc, "message", None) or str(exc)
    return logs.redact(f"{code}: {message}")[:500]
