"""COS trigger events shaped exactly like docs/platform.md §1, for the demo and the tests."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote


def cos_event(
    bucket: str,
    key: str,
    size: int,
    *,
    meta: dict[str, str] | None = None,
    event_name: str = "cos:ObjectCreated:Put",
    region: str = "gz",
    cos_region: str = "ap-guangzhou",
) -> dict:
    """One-record COS event for ``bucket`` (``name-appid``) and object ``key``."""
    name, _, appid = bucket.rpartition("-")
    etag = hashlib.md5(key.encode()).hexdigest()  # noqa: S324 - a stand-in ETag, not security
    return {
        "Records": [
            {
                "cos": {
                    "cosSchemaVersion": "1.0",
                    "cosObject": {
                        "url": f"http://{bucket}.cos.{cos_region}.myqcloud.com/{quote(key)}",
                        "meta": {
                            "Content-Type": "image/jpeg",
                            "ETag": f'"{etag}"',
                            "x-cos-request-id": "demo",
                            **(meta or {}),
                        },
                        "vid": "",
                        "key": f"/{appid}/{name}/{key}",
                        "size": size,
                    },
                    "cosBucket": {
                        "region": region,
                        "name": name,
                        "appid": appid,
                        "cosRegion": cos_region,
                        "s3Region": cos_region,
                    },
                    "cosNotificationId": "demo",
                },
                "event": {
                    "eventName": event_name,
                    "eventVersion": "1.0",
                    "eventTime": int(time.time()),
                    "eventSource": "qcs::cos",
                    "eventQueue": "",
                    "reservedInfo": "",
                    "reqid": 0,
                    "requestParameters": {"requestSourceIP": "127.0.0.1", "requestHeaders": {"Authorization": "x"}},
                },
            }
        ]
    }
