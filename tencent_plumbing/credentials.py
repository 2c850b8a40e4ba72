"""Tencent Cloud credentials for the adapters (COS, CMQ, API 3.0).

SCF injects a role's temporary credentials as ``TENCENTCLOUD_SECRETID``, ``TENCENTCLOUD_SECRETKEY`` and
``TENCENTCLOUD_SESSIONTOKEN`` (docs/platform.md §1); the SDKs' own environment providers read other names and no
token, so credentials are built here explicitly. Role credentials expire and SCF refreshes the variables, so
adapters take a *provider* (:func:`env_credentials`) and call it per request or per client build instead of
caching the values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from relay_core import logs
from relay_core.errors import ConfigError


class CredentialsMissing(ConfigError):
    """No Tencent Cloud credentials in the environment; the message says which variables to set."""



@dataclass(frozen=True)
class TencentCredentials:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


CredentialsProvider = Callable[[], TencentCredentials]


def env_credentials(env: Mapping[str, str] | None = None) -> TencentCredentials:
    """Read the SCF role variables (or explicit keys under the same names) from ``env`` (default: os.environ)."""
    env = os.environ if env is None else env
    secret_id = env.get("TENCENTCLOUD_SECRETID", "")
    secret_key = env.get("TENCENTCLOUD_SECRETKEY", "")
    if not secret_id or not secret_key:
        raise CredentialsMissing(
            "TENCENTCLOUD_SECRETID/TENCENTCLOUD_SECRETKEY are not set: give the function a role "
            "(SCF injects them) or export explicit keys"
        )
    token = env.get("TENCENTCLOUD_SESSIONTOKEN") or None
    for secret in (secret_key, token):
        logs.register_secret(secret)
    return TencentCredentials(secret_id, secret_key, token)


def static_credentials(secret_id: str, secret_key: str, token: str | None = None) -> CredentialsProvider:
    """A provider that always returns the given keys (tests, explicit configuration)."""
    creds = TencentCredentials(secret_id, secret_key, token)
    logs.register_secret(secret_key)
    logs.register_secret(token)
    return lambda: creds
