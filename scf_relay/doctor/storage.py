"""COS checks: the bucket answers HEAD with our credentials; a lifecycle rule cleans ``staging/``."""

from __future__ import annotations

from typing import Any

from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

LIFECYCLE_FIX = (
    "add a lifecycle rule on prefix staging/ (expire objects after 1-2 days, abort incomplete multipart uploads)"
)


def bucket_rows(settings: RelaySettings) -> list[Row]:
    from objectstore import open_store
    from objectstore.cos import CosStore

    store = open_store(settings.store_url())
    try:
        if not isinstance(store, CosStore):
            why = "RELAY_STORE is not cos://: no bucket to check"
            return [unknown("cos: bucket reachable", why), unknown("cos: lifecycle rule on staging/", why)]
        client = store._client()  # the store's own signed SDK client (credentials, endpoint, region)
        client.head_bucket(Bucket=store.default_bucket)
        rows = [passed("cos: bucket reachable", f"HEAD {store.default_bucket} answered")]
        return [*rows, _lifecycle(client, store.default_bucket)]
    finally:
        store.close()


def _lifecycle(client: Any, bucket: str) -> Row:
    from qcloud_cos.cos_exception import CosServiceError

    name = "cos: lifecycle rule on staging/"
    try:
        rules = client.get_bucket_lifecycle(Bucket=bucket).get("Rule") or []
    except CosServiceError as exc:
        code = exc.get_error_code()
        if code == "NoSuchLifecycleConfiguration":
            return failed(name, f"the bucket has no lifecycle configuration: {LIFECYCLE_FIX}")
        if exc.get_status_code() in (404, 405, 501) or code in ("NotImplemented", "MethodNotAllowed"):
            return unknown(name, f"this COS endpoint does not serve GetBucketLifecycle ({code})")
        raise
    rules = rules if isinstance(rules, list) else [rules]
    for rule in rules:
        prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix", ""))
        if rule.get("Status") == "Enabled" and "staging/".startswith(prefix or "") and prefix != "":
            return passed(name, f"rule {rule.get('ID', '?')} on {prefix!r}")
    return failed(name, f"no enabled rule covers staging/: {LIFECYCLE_FIX}")
