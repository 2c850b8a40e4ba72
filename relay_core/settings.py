"""Configuration from the environment (``RELAY_*``, plus the vendors' own ``RUNNINGHUB_*``).

:func:`load` is the one way to read it: every field ``x`` of :class:`RelaySettings` is read from ``RELAY_X``
(names matched case-insensitively) or from its vendor name (``RUNNINGHUB_*``, which wins), ``load``'s overrides
win over both, and every field is checked at once, defaults included. Values from the environment are strings,
converted by each field's rule (``" 3 "`` → ``3``, ``"yes"`` → ``True``); overrides may also be of the field's type.
The model is a frozen dataclass checked with :mod:`relay_core.field_checks`: no settings framework, whose import
alone cost the producer shim's cold start more than all its own work (bench/README.md).

Resources are named by URL. With nothing set, everything is embedded under ``./.relay/``:
``sqlite:///.relay/queue.db``, ``sqlite:///.relay/ledger.db``, ``file:///<abs>/.relay/store``.
:func:`load` turns any bad value into :class:`ConfigError`, one line that names the variable.
Secrets are :class:`Secret` (``**********`` in ``str``/``repr``) and registered with the log redactor as soon as
they are read.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from relay_core import logs
from relay_core.errors import ConfigError
from relay_core.field_checks import FieldError, flag, integer, number, text

#: bucket of the embedded default; COS names buckets ``<name>-<appid>`` and the shim checks that shape
EMBEDDED_BUCKET = "relay-1250000000"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: RELAY_* variables read by something other than these settings (tests, benchmarks), not typos
EXTERNAL_RELAY_VARIABLES = frozenset({"RELAY_TEST_REDIS", "RELAY_BENCH_REDIS", "RELAY_OPERATOR"})
_HOST_PATTERN = re.compile(r"\.?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_ROUTE_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]{0,199}")
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_log = logs.get("settings")


@dataclass(frozen=True, repr=False)  # its own __repr__ below
class Secret:
    """A secret string that ``str``, ``repr`` and so logs and tracebacks show as ``**********``."""

    _value: str = dataclasses.field(repr=False)

    def reveal(self) -> str:
        """The secret itself: only for the call that needs it (a signature, an API key header)."""
        return self._value

    def __str__(self) -> str:
        return "**********" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret('{self}')"


# -- rules: each takes what the environment gives (a str) or an override (also the field's type) -----------------

Rule = Callable[[object], Any]
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_WHOLE = re.compile(r"[+-]?[0-9]+")
_as_text = _plain = text()
_as_flag = flag()


def _stripped(value: object) -> str:
    return _as_text(value).strip()


def _boolean(value: object) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise FieldError("input should be a valid boolean, unable to interpret input")
    return _as_flag(value)


def _whole(*, ge: int | None = None, le: int | None = None) -> Rule:
    check = integer(ge=ge, le=le)

    def rule(value: object) -> int:
        if isinstance(value, str):
            if not _WHOLE.fullmatch(value.strip()):
                raise FieldError("input should be a valid integer, unable to parse string as an integer")
            value = int(value.strip())
        return check(value)

    return rule


def _real(*, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Rule:
    check = number(ge=ge, gt=gt, le=le)

    def rule(value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise FieldError("input should be a valid number, unable to parse string as a number") from None
        return check(value)

    return rule


def _path(value: object) -> Path:
    return value if isinstance(value, Path) else Path(_as_text(value))


def _optional_path(value: object) -> Path | None:
    """Unset (``None`` or ``""``) is ``None``."""
    return None if value is None or value == "" else _path(value)


def _secret(value: object) -> Secret:
    return value if isinstance(value, Secret) else Secret(_as_text(value))


def _log_level(value: object) -> str:
    level = _as_text(value).strip().upper()
    if level not in LOG_LEVELS:
        raise FieldError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def _host_list(value: object) -> str:
    hosts = [h.strip().lower() for h in _as_text(value).split(",") if h.strip()]
    if not hosts:
        raise FieldError("is empty: no result could ever be downloaded (list the vendor's hosts)")
    bad = [h for h in hosts if not _HOST_PATTERN.fullmatch(h)]
    if bad:
        raise FieldError(f"{bad} are not host names or '.domain' suffixes (wildcards like '*' are not allowed)")
    return ",".join(hosts)


def _routes(value: object) -> str:
    routes = _as_text(value)
    try:
        parse_routes(routes)
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    return routes


_URL_SAFE_PATH = "/%!$&'()*+,;=:@-._~"
_FORBIDDEN_IN_HOST = frozenset(" #%/:<>?@[\\]^|")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _http_base_url(value: object) -> str:
    """Unset stays ""; else an http(s) URL with a host and no query or fragment, normalised (scheme and host
    lower-cased, a default port dropped, the path percent-encoded where it must be) and without a trailing '/'
    (reports append their path)."""
    url = _as_text(value).strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        problem = "invalid port number" if "port" in str(exc).lower() else str(exc)[:1].lower() + str(exc)[1:]
        raise FieldError(f"not an http(s) URL: {problem}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise FieldError("not an http(s) URL: relative URL without a base")
    if scheme not in _DEFAULT_PORTS:
        raise FieldError("not an http(s) URL: URL scheme should be 'http' or 'https'")
    host = parts.hostname or ""
    if not host:
        raise FieldError("not an http(s) URL: empty host")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise FieldError("a base URL takes no query or fragment")
    user_info, at, _ = parts.netloc.rpartition("@")
    if ":" in host:  # an IPv6 address, which urlsplit checked
        host = f"[{host}]"
    else:
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise FieldError("not an http(s) URL: invalid international domain name") from None
        if any(c in _FORBIDDEN_IN_HOST or not c.isprintable() for c in host):
            raise FieldError("not an http(s) URL: invalid domain character")
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    path = quote(parts.path, safe=_URL_SAFE_PATH)
    return f"{scheme}://{user_info}{at}{host}{shown_port}{path}".rstrip("/")


def setting(default: Any, rule: Rule, *, env: tuple[str, ...] = (), doc: str = "") -> Any:
    """A field of :class:`RelaySettings`: its default, the rule that checks and converts its value, the
    environment names read before ``RELAY_<FIELD>`` (first present wins), what it is for."""
    return dataclasses.field(default=default, metadata={"rule": rule, "env": env, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class RelaySettings:
    """Every setting; build it with :func:`load` (the constructor reads no environment) or change one with
    :meth:`replace`. A bad value raises :class:`~relay_core.field_checks.FieldError` naming the field."""

    home: Path = setting(Path(".relay"), _path, doc="where embedded backends keep their files")
    queue: str = setting("", _stripped, doc="sqlite:///path | redis://host:port/db | cmq://queue?region=gz&dlq=q")
    ledger: str = setting("", _stripped, doc="sqlite:///path | redis://host:port/db")
    store: str = setting("", _stripped, doc="file:///root?bucket=b | cos://bucket-appid?region=ap-guangzhou")
    output_bucket: str = setting("", _plain, doc="bucket for staging/ and output/ (default: the store's bucket)")
    auditor: str = setting("local", _plain, doc="local | tencent?region=ap-guangzhou")
    review_passes: bool = setting(False, _boolean, doc="treat a moderation REVIEW as a pass (default: block)")
    backend_url: str = setting(
        "", _http_base_url, doc="http(s) base URL of the backend (normalised); reports go to /internal/task/update"
    )
    callback_secret: Secret = setting(Secret(""), _secret, doc="HMAC key for X-Relay-Signature")
    pipelines: Path | None = setting(None, _optional_path, doc="pipelines.toml to use instead of the packaged one")
    routes: str = setting("", _routes, doc="key-prefix routes: 'input/vid=video_tryon,input/poster=promo_poster'")
    default_pipeline: str = setting("model_pose12", _plain)
    allow_private_hosts: bool = setting(False, _boolean, doc="let result downloads reach loopback/private hosts")
    result_hosts: str = setting(
        "runninghub.cn,.runninghub.cn,runninghub.ai,.runninghub.ai,.myqcloud.com",
        _host_list,
        doc="hosts results may be downloaded from; a leading '.' allows subdomains",
    )
    visibility_timeout_s: int = setting(120, _whole(ge=5, le=43200))
    max_receive_count: int = setting(5, _whole(ge=1, le=1000))
    receive_batch: int = setting(8, _whole(ge=1, le=16))
    receive_wait_s: float = setting(
        3.0,
        _real(ge=0, le=30),
        doc="long-poll of each receive (CMQ pollingWaitSeconds, whole seconds); 0 = return at once",
    )
    idle_receives: int = setting(
        2, _whole(ge=1, le=20), doc="consecutive empty receives before a drain calls the queue idle"
    )
    step_margin_s: float = setting(5.0, _real(ge=0.5), doc="budget kept back at the end of a function run")
    report_retry_s: float = setting(8.0, _real(ge=0), doc="in-step retries of a report before a delayed resend")
    report_max_attempts: int = setting(30, _whole(ge=1), doc="delayed report retries before dead-lettering")
    housekeeping_interval_s: float = setting(
        600.0, _real(ge=1), doc="how often a worker or the timer consumer prunes the ledger and sweeps reports"
    )
    report_sweep_after_s: float = setting(
        3 * 3600.0,
        _real(ge=60),
        doc="an outcome unreported this long (and not dead-lettered) gets its REPORT re-sent",
    )
    log_level: str = setting("INFO", _log_level)
    nudge_function: str = setting("", _plain, doc="consumer function the shim invokes async after enqueuing (off: '')")
    shim_function: str = setting(
        "", _plain, doc="the producer shim's function, for `scf-relay doctor` (same region/namespace as the nudge)"
    )
    nudge_region: str = setting("", _plain, doc="region of the nudged function, e.g. ap-guangzhou")
    nudge_namespace: str = setting("default", _plain, doc="SCF namespace of the nudged function")
    nudge_endpoint: str = setting("", _plain, doc="SCF API host[:port] or URL (default: the public endpoint)")
    webhook_base_url: str = setting(
        "", _http_base_url, doc="public base URL of the webhook entry; set: every submit sends a webhookUrl under it"
    )
    webhook_secret: Secret = setting(Secret(""), _secret, doc="HMAC key of the webhook URLs (names the task)")
    webhook_rate_per_s: float = setting(50.0, _real(gt=0), doc="webhooks a process accepts per second (burst: 2x)")
    poll_from_estimate: bool = setting(
        True, _boolean, doc="first status query near the pipeline's observed runtime (else the policy's first_s)"
    )

    runninghub_base_url: str = setting("https://www.runninghub.cn", _stripped, env=("RUNNINGHUB_BASE_URL",))
    runninghub_api_key: Secret = setting(Secret(""), _secret, env=("RUNNINGHUB_API_KEY",))

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            try:
                value = field.metadata["rule"](getattr(self, field.name))
            except FieldError as exc:
                raise exc.under(field.name) from None
            object.__setattr__(self, field.name, value)  # the frozen dataclass's way to set its own field

    def replace(self, **changes: Any) -> RelaySettings:
        """These settings with ``changes``, checked like any others."""
        return dataclasses.replace(self, **changes)

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


#: every setting's field, by name
SETTINGS: dict[str, dataclasses.Field[Any]] = {field.name: field for field in dataclasses.fields(RelaySettings)}


def variables(name: str) -> tuple[str, ...]:
    """The environment names setting ``name`` is read from, the first present winning: its vendor names
    (``RUNNINGHUB_API_KEY``), then ``RELAY_<NAME>``."""
    return (*SETTINGS[name].metadata["env"], f"RELAY_{name.upper()}")


def is_secret(name: str) -> bool:
    """Whether setting ``name`` holds a secret (never echoed, redacted in logs)."""
    return isinstance(SETTINGS[name].default, Secret)


def _shown(variable: str, value: object) -> str:
    """The offending value for an error line; secrets are never echoed."""
    if "SECRET" in variable or "KEY" in variable or isinstance(value, Secret):
        return "a value (hidden)"
    text_ = repr(value)
    return text_ if len(text_) <= 80 else text_[:77] + "..."


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
    known = {f"RELAY_{name.upper()}" for name in SETTINGS} | EXTERNAL_RELAY_VARIABLES
    return sorted(name for name in environ if name.startswith("RELAY_") and name not in known)


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The raw value of each setting found in ``environ``, by field name: the first of :func:`variables`
    present; variable names match in any case."""
    lowered = {name.lower(): value for name, value in environ.items()}
    found: dict[str, str] = {}
    for name in SETTINGS:
        value = next((lowered[v.lower()] for v in variables(name) if v.lower() in lowered), None)
        if value is not None:
            found[name] = value
    return found


def load(**overrides: object) -> RelaySettings:
    """Read the environment (``overrides``, by field name, win) or raise :class:`ConfigError` naming the
    variable."""
    unknown = sorted(set(overrides) - SETTINGS.keys())
    if unknown:
        raise TypeError(f"load(): no setting named {', '.join(unknown)}")
    values: dict[str, Any] = {**environment_values(os.environ), **overrides}
    try:
        settings = RelaySettings(**values)
    except FieldError as exc:
        name = str(exc.path[0])
        variable = variables(name)[0]
        raise ConfigError(f"{variable}: {exc.problem} (got {_shown(variable, values.get(name))})") from None
    logs.register_secret(settings.callback_secret.reveal())
    logs.register_secret(settings.runninghub_api_key.reveal())
    logs.register_secret(settings.webhook_secret.reveal())
    for name in unknown_variables(os.environ):
        import difflib  # only to explain a typo

        close = difflib.get_close_matches(name, [f"RELAY_{f.upper()}" for f in SETTINGS], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        _log.warning(f"{name} is not a scf-relay setting and is ignored{hint}", extra={"variable": name})
    return settings


def require(value: str, variable: str, why: str) -> str:
    """Return ``value`` or raise ``ConfigError("<variable> is not set: <why>")``."""
    if not value:
        raise ConfigError(f"{variable} is not set: {why}")
    return value
