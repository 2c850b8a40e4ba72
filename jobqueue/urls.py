"""The ``sqlite://`` and ``redis://`` URLs of ``RELAY_QUEUE`` and ``RELAY_LEDGER``, checked whole.

Every mistake is a :class:`~jobqueue.errors.QueueConfigError` naming the variable: a path under a file, a Redis
database index that is not a number (redis-py would quietly use database 0), an option nobody reads (a typo
would quietly mean the default).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobqueue.errors import QueueConfigError

_REDIS_DB_PATH = re.compile(r"/?[0-9]{0,5}")
#: query options redis-py itself reads from a URL (redis.connection.URL_QUERY_ARGUMENT_PARSERS), plus ``ssl_*``
_REDIS_CLIENT_OPTIONS = frozenset(
    {
        "db",
        "health_check_interval",
        "max_connections",
        "protocol",
        "retry_on_error",
        "retry_on_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_read_size",
        "socket_timeout",
        "timeout",
    }
)


def sqlite_path(url: str, variable: str, options: frozenset[str] = frozenset()) -> tuple[Path, dict[str, str]]:
    """``sqlite:///rel.db`` → ``rel.db``, ``sqlite:////abs.db`` → ``/abs.db``; plus the (known) query options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc or len(parts.path) < 2 or parts.fragment:
        raise QueueConfigError(f"{variable}: {url!r} is not sqlite:///relative.db or sqlite:////absolute.db")
    path = Path(parts.path[1:])
    for folder in path.parents:
        if folder.exists() and not folder.is_dir():
            raise QueueConfigError(f"{variable}: {folder} is a file, so {path} cannot be created under it")
    if path.is_dir():
        raise QueueConfigError(f"{variable}: {path} is a folder; name a database file in it")
    return path, _known(parts.query, options, variable)


def redis_url(url: str, variable: str, options: frozenset[str]) -> tuple[str, dict[str, str]]:
    """``(URL for redis-py, our options)``: the database index must be a number and every option known to us
    (``options``) or to redis-py."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise QueueConfigError(f"{variable}: expected a redis:// or rediss:// URL, got scheme {parts.scheme!r}")
    if not parts.hostname and not parts.path.strip("/").isdigit() and parts.path not in ("", "/"):
        raise QueueConfigError(f"{variable}: {_no_password(url)} has no host")
    if not _REDIS_DB_PATH.fullmatch(parts.path):
        raise QueueConfigError(f"{variable}: database {parts.path.lstrip('/')!r} is not a number (redis://host:6379/0)")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    names = {k for k, _ in pairs}
    unknown = sorted(names - options - _REDIS_CLIENT_OPTIONS - {k for k in names if k.startswith("ssl_")})
    if unknown:
        raise QueueConfigError(f"{variable}: unknown option(s) {unknown}; ours: {sorted(options)}")
    ours = {k: v for k, v in pairs if k in options}
    client = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in pairs if k not in options])))
    return client, ours


def _known(query: str, options: frozenset[str], variable: str) -> dict[str, str]:
    pairs = parse_qsl(query, keep_blank_values=True)
    unknown = sorted({k for k, _ in pairs} - options)
    if unknown:
        raise QueueConfigError(f"{variable}: unknown option(s) {unknown} (known: {sorted(options) or 'none'})")
    return dict(pairs)


def _no_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname or "")) if parts.password else url
