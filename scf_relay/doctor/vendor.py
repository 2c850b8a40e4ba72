"""RunningHub checks: the key is valid (account status); the pipelines file loads; each workflow exists with
the node ids and field names pipelines.toml maps (``getJsonApiFormat``); AI apps: unknown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay_core.settings import RelaySettings
from scf_relay.doctor.rows import Row, failed, passed, unknown

if TYPE_CHECKING:
    from relay_core.pipelines import Pipeline
    from vendors.runninghub import RunningHubClient

APP_NODES_WHY = (
    "no RunningHub endpoint returning an AI app's node list is confirmed (docs/platform.md §5): compare "
    "node_id/field_name with the sample nodeInfoList on the app's API page"
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
    key = key_row(settings)
    rows.append(key)
    client = _client(settings)
    try:
        for name, pipeline in sorted(pipelines.pipelines.items()):
            check = f"pipelines: {name} {pipeline.kind} {pipeline.target_id} nodes"
            if pipeline.kind != "workflow":
                rows.append(unknown(check, APP_NODES_WHY))
            elif key.verdict.value != "pass":
                rows.append(unknown(check, "the RunningHub key is not valid: the workflow cannot be read"))
            else:
                rows.append(node_row(client, check, pipeline))
    finally:
        client.close()
    return rows


def node_row(client: RunningHubClient, check: str, pipeline: Pipeline) -> Row:
    """The workflow exists and has every (node id, field name) the pipeline maps; a fail names the first
    unknown node id or field and what the workflow has instead."""
    from vendors.errors import VendorConfigError, VendorError

    try:
        nodes = client.workflow_nodes(pipeline.target_id)
    except VendorConfigError as exc:
        return failed(check, f"{exc}: workflow {pipeline.target_id} not found; fix target_id in pipelines.toml")
    except VendorError as exc:
        return failed(check, f"{exc}: the workflow's JSON could not be read")
    problems = []
    for mapped in pipeline.nodes:
        node = nodes.get(mapped.node_id)
        if node is None:
            problems.append(f"node {mapped.node_id} is not in the workflow (its nodes: {', '.join(sorted(nodes))})")
        elif mapped.field_name not in node.fields:
            have = ", ".join(sorted(node.fields))
            problems.append(f"node {mapped.node_id} ({node.class_type}) has no field {mapped.field_name!r} ({have})")
    if problems:
        return failed(check, "; ".join(problems) + ": fix node_id/field_name in pipelines.toml")
    mapped_ids = ", ".join(f"{n.node_id}.{n.field_name}" for n in pipeline.nodes)
    return passed(check, f"{mapped_ids} found in the workflow's JSON")


def _client(settings: RelaySettings) -> RunningHubClient:
    from vendors.runninghub import RunningHubClient

    return RunningHubClient(settings.runninghub_base_url, settings.runninghub_api_key.reveal())


def key_row(settings: RelaySettings) -> Row:
    from vendors.errors import VendorError
    from vendors.runninghub import RunningHubClient

    name = "runninghub: key valid"
    key = settings.runninghub_api_key.reveal()
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
