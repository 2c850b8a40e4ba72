"""RunningHub checks: the key is valid (account status); the pipelines file loads; node ids (unknown)."""

from __future__ import annotations

from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

NODE_IDS_WHY = (
    "no RunningHub endpoint returning a workflow's JSON or an app's node list is documented in "
    "docs/platform.md §5: compare node_id/field_name with the workflow editor"
)


def pipeline_rows(settings: RelaySettings) -> list[Row]:
    """``scf-relay pipelines check``: the file loads, the key is valid, and per pipeline what can be told."""
    from relay_core.pipelines import load_pipelines

    try:
        pipelines = load_pipelines(settings.pipelines)
    except Exception as exc:  # noqa: BLE001 - a config error is a row
        return [failed("pipelines: file loads", str(exc).splitlines()[0])]
    source = str(settings.pipelines) if settings.pipelines else "the packaged pipelines.toml"
    rows = [passed("pipelines: file loads", f"{len(pipelines.pipelines)} pipelines from {source}")]
    rows.append(key_row(settings))
    for name, pipeline in sorted(pipelines.pipelines.items()):
        nodes = ", ".join(f"{n.node_id}.{n.field_name}" for n in pipeline.nodes)
        rows.append(unknown(f"pipelines: {name} {pipeline.kind} {pipeline.target_id} nodes {nodes}", NODE_IDS_WHY))
    return rows


def key_row(settings: RelaySettings) -> Row:
    from vendors.errors import VendorError
    from vendors.runninghub import RunningHubClient

    name = "runninghub: key valid"
    key = settings.runninghub_api_key.get_secret_value()
    if not key:
        return failed(name, "set RUNNINGHUB_API_KEY")
    client = RunningHubClient(settings.runninghub_base_url, key)
    try:
        status = client.account_status()
    except VendorError as exc:
        return failed(name, f"{exc}: check RUNNINGHUB_API_KEY and RUNNINGHUB_BASE_URL")
    finally:
        client.close()
    return passed(name, f"remainCoins={status.get('remainCoins', '?')} running={status.get('currentTaskCounts', '?')}")
