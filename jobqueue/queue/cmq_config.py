"""Where a CMQ queue lives: ``cmq://`` URLs, queue names and data-plane endpoints.

``cmq://<queue>?region=gz&dlq=<dead-letter queue>[&endpoint=http://host:port][&vpc=1][&dlq_search_s=2]
[&api_region=ap-guangzhou][&api_endpoint=host:port]``

``region``/``endpoint``/``vpc`` say where the data plane is (both planes use it). The rest is read by the
operator plane only (:mod:`jobqueue.queue.cmq_dead_letters`): ``dlq_search_s`` is how long a lookup of a named
dead letter keeps looking; ``api_region`` turns on queue statistics through the API 3.0 control plane
(``DescribeCmqQueueDetail``), which names regions the long way; ``api_endpoint`` points it at another API host
(tests). Every parameter is checked whichever plane opens the URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from jobqueue.errors import QueueConfigError

_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_REGION = re.compile(r"[a-z][a-z0-9-]{0,19}")
_URL_PARAMS = frozenset({"region", "dlq", "endpoint", "vpc", "dlq_search_s", "api_region", "api_endpoint"})


@dataclass(frozen=True)
class CmqLocation:
    queue_name: str
    dlq_name: str
    endpoint: str
    dead_letter_search_s: float = 0.0
    api_region: str | None = None  # control plane (statistics), e.g. "ap-guangzhou"
    api_endpoint: str | None = None


def check_queue_name(name: str, what: str = "queue") -> str:
    """``name`` if CMQ accepts it: letters, digits, ``-``, ``_``; starts with a letter; at most 64 characters;
    not ending in ``-retry`` or ``-dlq``. Raises QueueConfigError otherwise."""
    if not _QUEUE_NAME.fullmatch(name or "") or name.endswith(("-retry", "-dlq")):
        raise QueueConfigError(
            f"RELAY_QUEUE: CMQ {what} name {name!r} is invalid: use letters, digits, '-' and '_', start "
            "with a letter, at most 64 characters, not ending in '-retry' or '-dlq' (e.g. 'relay_dead')"
        )
    return name


def default_endpoint(region: str, vpc: bool = False) -> str:
    """The data-plane endpoint of a short region code (``gz``, ``sh``, ``bj``...), public or in the VPC."""
    if not _REGION.fullmatch(region) or region.startswith("ap-"):
        raise QueueConfigError(
            f"RELAY_QUEUE: CMQ region {region!r} must be the short code (gz, sh, bj, cd, ...), not 'ap-...'"
        )
    if vpc:
        return f"http://{region}.mqadapter.cmq.tencentyun.com"
    return f"https://cmq-{region}.public.tencenttdmq.com"


def parse_cmq_url(url: str) -> CmqLocation:
    """Read a ``cmq://`` URL; every mistake is a QueueConfigError naming RELAY_QUEUE."""
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _URL_PARAMS)
    if unknown:
        raise QueueConfigError(f"RELAY_QUEUE: unknown cmq:// parameter(s) {unknown}; known: {sorted(_URL_PARAMS)}")
    if not query.get("dlq"):
        raise QueueConfigError("RELAY_QUEUE: cmq:// needs dlq=<dead-letter queue name>")
    endpoint = query.get("endpoint")
    if not endpoint:
        if not query.get("region"):
            raise QueueConfigError("RELAY_QUEUE: cmq:// needs region=<short code, e.g. gz> or endpoint=")
        endpoint = default_endpoint(query["region"], vpc=query.get("vpc", "0").lower() in ("1", "true", "yes"))
    try:
        search_s = float(query.get("dlq_search_s", 0))
    except ValueError:
        raise QueueConfigError("RELAY_QUEUE: cmq:// dlq_search_s must be a number of seconds") from None
    queue_name = check_queue_name(parts.netloc)
    dlq_name = check_queue_name(query["dlq"], "dead-letter queue")
    api_region = query.get("api_region") or None
    if api_region is not None and not api_region.startswith("ap-"):
        raise QueueConfigError(f"RELAY_QUEUE: api_region={api_region!r} must be the long form (ap-guangzhou, ...)")
    return CmqLocation(queue_name, dlq_name, endpoint, search_s, api_region, query.get("api_endpoint") or None)
