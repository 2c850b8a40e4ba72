"""Configuration from the environment (``RELAY_*``, plus the vendors' own ``RUNNINGHUB_*``).

Resources are named by URL. With nothing set, everything is embedded under ``./.relay/``:
``sqlite:///.relay/queue.db``, ``sqlite:///.relay/ledger.db``, ``file:///<abs>/.relay/store``.
:func:`load` turns any bad value into :class:`ConfigError`, one line that names the variable.
Secrets are ``SecretStr`` and registered with the log redactor as soon as they are read.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_core import logs
from relay_core.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import AnyHttpUrl, TypeAdapter

#: bucket of the embedded default; COS names buckets ``<name>-<appid>`` and the shim checks that shape
EMBEDDED_BUCKET = "relay-1250000000"


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore", populate_by_name=True)

    home: Path = Field(Path(".relay"), description="where embedded backends keep their files")
    queue: str = Field("", description="sqlite:///path | redis://host:port/db | cmq://queue?region=gz&dlq=q")
    ledger: str = Field("", description="sqlite:///path | redis://host:port/db")
    store: str = Field("", description="file:///root?bucket=b | cos://bucket-appid?region=ap-guangzhou")
    output_bucket: str = Field("", description="bucket for staging/ and output/ (default: the store's bucket)")
    auditor: str = Field("local", description="local | tencent?region=ap-guangzhou")
    review_passes: bool = Field(False, description="treat a moderation REVIEW as a pass (default: block)")
    backend_url: str = Field(
        "", description="http(s) base URL of the backend (normalised); reports go to /internal/task/update"
    )
    callback_secret: SecretStr = Field(SecretStr(""), description="HMAC key for X-Relay-Signature")
    pipelines: Path | None = Field(None, description="pipelines.toml to use instead of the packaged one")
    routes: str = Field("", description="key-prefix routes: 'input/vid=video_tryon,input/poster=promo_poster'")
    default_pipeline: str = "model_pose12"
    allow_private_hosts: bool = Field(False, description="let result downloads reach loopback/private hosts")
    result_hosts: str = Field(
        "runninghub.cn,.runninghub.cn,runninghub.ai,.runninghub.ai,.myqcloud.com",
        description="hosts results may be downloaded from; a leading '.' allows subdomains",
    )
    visibility_timeout_s: int = Field(120, ge=5, le=43200)
    max_receive_count: int = Field(5, ge=1, le=1000)
    receive_batch: int = Field(8, ge=1, le=16)
    step_margin_s: float = Field(5.0, ge=0.5, description="budget kept back at the end of a function run")
    report_retry_s: float = Field(8.0, ge=0, description="in-step retries of a report before a delayed resend")
    report_max_attempts: int = Field(30, ge=1, description="delayed report retries before dead-lettering")
    log_level: str = "INFO"
    nudge_function: str = Field("", description="consumer function the shim invokes async after enqueuing (off: '')")
    nudge_region: str = Field("", description="region of the nudged function, e.g. ap-guangzhou")
    nudge_namespace: str = Field("default", description="SCF namespace of the nudged function")
    nudge_endpoint: str = Field("", description="SCF API host[:port] or URL (default: the public endpoint)")

    runninghub_base_url: str = Field(
        "https://www.runninghub.cn", validation_alias=AliasChoices("RUNNINGHUB_BASE_URL", "runninghub_base_url")
    )
    runninghub_api_key: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("RUNNINGHUB_API_KEY", "runninghub_api_key")
    )

    @field_validator("queue", "ledger", "store", "backend_url", "runninghub_base_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("backend_url")
    @classmethod
    def _http_base_url(cls, value: str) -> str:
        """Unset stays ""; else an http(s) URL with a host and no query or fragment, as pydantic normalises it
        (scheme and host lower-cased), without a trailing '/' (reports append their path)."""
        if not value.strip():
            return ""
        try:
            url = _http_url().validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise PydanticCustomError("http_url", "not an http(s) URL: {problem}", {"problem": problem}) from None
        if url.query or url.fragment:
            raise PydanticCustomError("http_url", "a base URL takes no query or fragment")
        return str(url).rstrip("/")

    # -- derived ---------------------------------------------------------------------------
    def queue_url(self) -> str:
        return self.queue or f"sqlite:///{(self.home / 'queue.db').resolve()}"

    def ledger_url(self) -> str:
        return self.ledger or f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    def store_url(self) -> str:
        return self.store or f"file://{(self.home / 'store').resolve()}?bucket={EMBEDDED_BUCKET}"

    def route_table(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in self.routes.split(","))):
            prefix, sep, pipeline = part.partition("=")
            if not sep or not prefix or not pipeline:
                raise ConfigError(f"RELAY_ROUTES: {part!r} is not 'prefix=pipeline'")
            table[prefix.strip()] = pipeline.strip()
        return table

    def result_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.result_hosts.split(",") if h.strip()]


@cache
def _http_url() -> TypeAdapter[AnyHttpUrl]:
    # built on first use: only the consumer sets RELAY_BACKEND_URL, the shim's cold start skips pydantic.networks
    from pydantic import AnyHttpUrl, TypeAdapter

    return TypeAdapter(AnyHttpUrl)


def load(**overrides: object) -> RelaySettings:
    """Read the environment (``overrides`` win) or raise :class:`ConfigError` naming the variable."""
    try:
        settings = RelaySettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        var = field.upper() if field.upper().startswith("RUNNINGHUB_") else f"RELAY_{field.upper()}"
        raise ConfigError(f"{var}: {err['msg']}") from None
    logs.register_secret(settings.callback_secret.get_secret_value())
    logs.register_secret(settings.runninghub_api_key.get_secret_value())
    return settings


def require(value: str, variable: str, why: str) -> str:
    """Return ``value`` or raise ``ConfigError("<variable> is not set: <why>")``."""
    if not value:
        raise ConfigError(f"{variable} is not set: {why}")
    return value
