"""Configuration from the environment (``RELAY_*``, plus the vendors' own ``RUNNINGHUB_*``).

:func:`load` is the one way to read it: every field ``x`` of :class:`RelaySettings` is read from ``RELAY_X``
(names matched case-insensitively) or from its alias (``RUNNINGHUB_*``), ``load``'s overrides win, and the
whole model is validated at once, defaults included. The model is a plain pydantic model fed by
:func:`environment_values` rather than a pydantic-settings one: that package (and the asyncio it imports)
cost the producer shim's cold start more than all its own work (bench/README.md).

Resources are named by URL. With nothing set, everything is embedded under ``./.relay/``:
``sqlite:///.relay/queue.db``, ``sqlite:///.relay/ledger.db``, ``file:///<abs>/.relay/store``.
:func:`load` turns any bad value into :class:`ConfigError`, one line that names the variable.
Secrets are ``SecretStr`` and registered with the log redactor as soon as they are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from relay_core import logs
from relay_core.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import AnyHttpUrl, TypeAdapter

#: bucket of the embedded default; COS names buckets ``<name>-<appid>`` and the shim checks that shape
EMBEDDED_BUCKET = "relay-1250000000"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: RELAY_* variables read by something other than these settings (tests, benchmarks), not typos
EXTERNAL_RELAY_VARIABLES = frozenset({"RELAY_TEST_REDIS", "RELAY_BENCH_REDIS", "RELAY_OPERATOR"})
_HOST_PATTERN = re.compile(r"\.?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_ROUTE_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,199}")
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_log = logs.get("settings")


class RelaySettings(BaseModel):
    """Every setting; build it with :func:`load` (constructing the model directly reads no environment)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

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
    receive_wait_s: float = Field(
        3.0,
        ge=0,
        le=30,
        description="long-poll of each receive (CMQ pollingWaitSeconds, whole seconds); 0 = return at once",
    )
    idle_receives: int = Field(
        2, ge=1, le=20, description="consecutive empty receives before a drain calls the queue idle"
    )
    step_margin_s: float = Field(5.0, ge=0.5, description="budget kept back at the end of a function run")
    report_retry_s: float = Field(8.0, ge=0, description="in-step retries of a report before a delayed resend")
    report_max_attempts: int = Field(30, ge=1, description="delayed report retries before dead-lettering")
    housekeeping_interval_s: float = Field(
        600, ge=1, description="how often a worker or the timer consumer prunes the ledger and sweeps reports"
    )
    report_sweep_after_s: float = Field(
        3 * 3600, ge=60, description="an outcome unreported this long (and not dead-lettered) gets its REPORT re-sent"
    )
    log_level: str = "INFO"
    nudge_function: str = Field("", description="consumer function the shim invokes async after enqueuing (off: '')")
    shim_function: str = Field(
        "", description="the producer shim's function, for `scf-relay doctor` (same region/namespace as the nudge)"
    )
    nudge_region: str = Field("", description="region of the nudged function, e.g. ap-guangzhou")
    nudge_namespace: str = Field("default", description="SCF namespace of the nudged function")
    nudge_endpoint: str = Field("", description="SCF API host[:port] or URL (default: the public endpoint)")
    webhook_base_url: str = Field(
        "", description="public base URL of the webhook entry; set: every submit sends a webhookUrl under it"
    )
    webhook_secret: SecretStr = Field(SecretStr(""), description="HMAC key of the webhook URLs (names the task)")
    webhook_rate_per_s: float = Field(50.0, gt=0, description="webhooks a process accepts per second (burst: 2x)")
    poll_from_estimate: bool = Field(
        True, description="first status query near the pipeline's observed runtime (else the policy's first_s)"
    )

    runninghub_base_url: str = Field(
        "https://www.runninghub.cn", validation_alias=AliasChoices("RUNNINGHUB_BASE_URL", "runninghub_base_url")
    )
    runninghub_api_key: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("RUNNINGHUB_API_KEY", "runninghub_api_key")
    )

    @field_validator("queue", "ledger", "store", "backend_url", "runninghub_base_url", "webhook_base_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("result_hosts")
    @classmethod
    def _host_list(cls, value: str) -> str:
        hosts = [h.strip().lower() for h in value.split(",") if h.strip()]
        if not hosts:
            raise ValueError("is empty: no result could ever be downloaded (list the vendor's hosts)")
        bad = [h for h in hosts if not _HOST_PATTERN.fullmatch(h)]
        if bad:
            raise ValueError(f"{bad} are not host names or '.domain' suffixes (wildcards like '*' are not allowed)")
        return ",".join(hosts)

    @field_validator("routes")
    @classmethod
    def _route_syntax(cls, value: str) -> str:
        parse_routes(value)
        return value

    @field_validator("backend_url", "webhook_base_url")
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
        return parse_routes(self.routes)

    def result_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.result_hosts.split(",") if h.strip()]


def _shown(variable: str, value: object) -> str:
    """The offending value for an error line; secrets are never echoed."""
    if "SECRET" in variable or "KEY" in variable:
        return "a value (hidden)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_routes(text: str) -> dict[str, str]:
    """``"input/vid=video_tryon,input/poster=promo_poster"`` → ``{prefix: pipeline}``; ValueError if malformed."""
    table: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        prefix, sep, pipeline = (s.strip() for s in part.partition("="))
        if not sep or not _ROUTE_PREFIX.fullmatch(prefix) or not _PIPELINE_NAME.fullmatch(pipeline):
            raise ValueError(f"{part!r} is not 'input/<prefix>=<pipeline name>'")
        table[prefix] = pipeline
    return table


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``RELAY_*`` names in ``environ`` that no setting reads (a typo would silently mean the default)."""
    known = {f"RELAY_{name.upper()}" for name in RelaySettings.model_fields} | EXTERNAL_RELAY_VARIABLES
    return sorted(name for name in environ if name.startswith("RELAY_") and name not in known)


@cache
def _http_url() -> TypeAdapter[AnyHttpUrl]:
    # built on first use: only the consumer sets RELAY_BACKEND_URL, the shim's cold start skips pydantic.networks
    from pydantic import AnyHttpUrl, TypeAdapter

    return TypeAdapter(AnyHttpUrl)


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The raw value of each setting found in ``environ``, by field name: for a field with aliases the first
    alias present (``RUNNINGHUB_API_KEY``), else ``RELAY_<FIELD>``; variable names match in any case."""
    lowered = {name.lower(): value for name, value in environ.items()}
    found: dict[str, str] = {}
    for field_name, info in RelaySettings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        names = [*(str(choice).lower() for choice in choices or ()), f"relay_{field_name}"]
        value = next((lowered[name] for name in names if name in lowered), None)
        if value is not None:
            found[field_name] = value
    return found


def load(**overrides: object) -> RelaySettings:
    """Read the environment (``overrides`` win) or raise :class:`ConfigError` naming the variable."""
    try:
        settings = RelaySettings.model_validate({**environment_values(os.environ), **overrides})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        var = field.upper() if field.upper().startswith("RUNNINGHUB_") else f"RELAY_{field.upper()}"
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{var}: {message} (got {_shown(var, err.get('input'))})") from None
    logs.register_secret(settings.callback_secret.get_secret_value())
    logs.register_secret(settings.runninghub_api_key.get_secret_value())
    logs.register_secret(settings.webhook_secret.get_secret_value())
    for name in unknown_variables(os.environ):
        import difflib  # only to explain a typo

        close = difflib.get_close_matches(name, [f"RELAY_{f.upper()}" for f in RelaySettings.model_fields], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        _log.warning(f"{name} is not a scf-relay setting and is ignored{hint}", extra={"variable": name})
    return settings


def require(value: str, variable: str, why: str) -> str:
    """Return ``value`` or raise ``ConfigError("<variable> is not set: <why>")``."""
    if not value:
        raise ConfigError(f"{variable} is not set: {why}")
    return value
