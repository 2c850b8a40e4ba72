"""Auditors chosen by ``RELAY_AUDITOR``: ``local[?outage_file=PATH]`` (marker auditor) or
``tencent[?region=..&endpoint=..]``.

``outage_file`` (demo, chaos runs): while that file exists the local auditor answers like an unavailable service.

Query parameters of ``tencent``: ``region`` (default: the store's region), ``endpoint`` (``host[:port]`` or a
URL; a local API server in tests), ``biz_type`` (the moderation policy id from the console: 3-32 letters, digits,
``_``; VM ``CreateVideoModerationTask`` requires it, so it is refused at start when missing and any pipeline
moderates video; docs/platform.md §4), ``bucket_region``
(the COS region of staged videos, default: the store's region, else ``region``). Credentials come from the
SCF role variables. Backends are imported lazily.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from moderation.base import Auditor
    from objectstore.base import ObjectStore
    from relay_core.settings import RelaySettings

_TENCENT_OPTIONS = {"region", "endpoint", "biz_type", "bucket_region"}
_LOCAL_OPTIONS = {"outage_file"}
BIZ_TYPE = re.compile(r"[A-Za-z0-9_]{3,32}")


def open_auditor(name: str, *, store: ObjectStore | None, settings: RelaySettings | None = None) -> Auditor:
    """The auditor named by ``name``; ``ConfigError`` naming RELAY_AUDITOR for anything else."""
    parts = urlsplit(name.strip())
    kind = parts.path or parts.scheme
    if kind == "local":
        from moderation.local import LocalMarkerAuditor

        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(options) - _LOCAL_OPTIONS
        if unknown:
            _config_error(f"unknown option(s) {sorted(unknown)} (known: {sorted(_LOCAL_OPTIONS)})")
        if store is None:
            _config_error("the local auditor needs the object store to scan staged videos")
        return LocalMarkerAuditor(store, outage_file=options.get("outage_file") or None)
    if kind == "tencent":
        return _tencent(parts.query, store, settings)
    _config_error(f"unknown auditor {name!r} (use local or tencent?region=ap-guangzhou)")


def _tencent(query: str, store: ObjectStore | None, settings: RelaySettings | None) -> Auditor:
    from moderation.tencent import TencentAuditor

    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - _TENCENT_OPTIONS
    if unknown:
        _config_error(f"unknown option(s) {sorted(unknown)} (known: {sorted(_TENCENT_OPTIONS)})")
    region = options.get("region") or getattr(store, "region", None)
    if not region:
        _config_error("tencent needs a region (tencent?region=ap-guangzhou)")
    biz_type = options.get("biz_type") or None
    _check_biz_type(biz_type, settings)
    try:
        return TencentAuditor(
            region,
            endpoint=options.get("endpoint") or None,
            biz_type=biz_type,
            store=store,
            review_passes=settings.review_passes if settings is not None else False,
            bucket_region=options.get("bucket_region") or None,
        )
    except ValueError as exc:
        _config_error(str(exc))


def _check_biz_type(biz_type: str | None, settings: RelaySettings | None) -> None:
    """A malformed ``biz_type`` is refused; a missing one too when a pipeline moderates video (VM requires it)."""
    if biz_type is not None:
        if not BIZ_TYPE.fullmatch(biz_type):
            _config_error(f"biz_type={biz_type!r} is not 3-32 letters, digits or _ (the console's policy id)")
        return
    if settings is None:
        return
    from relay_core.pipelines import load_pipelines

    videos = sorted(n for n, p in load_pipelines(settings.pipelines).pipelines.items() if p.moderation == "video")
    if videos:
        _config_error(
            f"biz_type is missing and pipeline(s) {videos} moderate video, which requires it "
            "(add &biz_type=<policy id from the moderation console>)"
        )


def _config_error(problem: str) -> NoReturn:
    from relay_core.errors import ConfigError

    raise ConfigError(f"RELAY_AUDITOR: {problem}") from None
