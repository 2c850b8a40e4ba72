"""``scf-relay doctor`` against the local COS, CMQ and API 3.0 servers, the RunningHub emulator and a report
receiver, configured as deployed: every check passes (or says unknown with why); each injected fault fails
its row, naming the fix."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jobqueue.queue.cmq_admin import ensure_queues
from relay_core.settings import load
from scf_relay.cli.app import app
from scf_relay.demo.receiver import ReportReceiver
from scf_relay.demo.stack import BUCKET
from scf_relay.doctor.functions import CONSUMER, SHIM
from scf_relay.doctor.rows import Verdict
from scf_relay.doctor.run import exit_code, run_checks
from tencent_plumbing.api3 import ApiTarget
from tencent_plumbing.credentials import static_credentials
from tests.integration.cloud_stack import COS_REGION, DLQ, QUEUE, SECRET_ID, SECRET_KEY, TOKEN, local_cloud
from tests.servers.api3_handlers import ScfFunctions, scf_function, scf_trigger
from vendors.emulator import RunningHubEmulator

pytestmark = pytest.mark.timeout(120)
SECRET = "s" * 40
CONSUMER_FN, SHIM_FN = "scf-relay-consumer", "scf-relay-producer"
COS_DESC = {"event": "cos:ObjectCreated:*", "filter": {"Prefix": "input/", "Suffix": ""}}
LIFECYCLE = {
    "Rule": [
        {"ID": "staging", "Status": "Enabled", "Filter": {"Prefix": "staging/"}, "Expiration": {"Days": 2}},
    ]
}


@pytest.fixture(scope="module")
def deployed():
    with local_cloud() as cloud, RunningHubEmulator() as emulator, ReportReceiver(SECRET) as receiver:
        target = ApiTarget(COS_REGION, static_credentials(SECRET_ID, SECRET_KEY, TOKEN), cloud.api3.endpoint)
        ensure_queues(
            target, QUEUE, DLQ, visibility_timeout_s=120, retention_s=43_200, max_receive_count=5, dlq_rewind_s=86_400
        )
        cloud.cos.sdk_client().put_bucket_lifecycle(Bucket=BUCKET, LifecycleConfiguration=LIFECYCLE)
        deploy_functions(cloud.api3.scf)
        yield cloud, emulator, receiver


def deploy_functions(scf: ScfFunctions) -> None:
    """The two functions and their triggers as deploy/*/serverless.yml create them."""
    for expected, name in ((CONSUMER, CONSUMER_FN), (SHIM, SHIM_FN)):
        scf.functions[name] = scf_function(name, expected.handler, expected.runtime, expected.timeout, expected.memory)
    scf.triggers[CONSUMER_FN] = [scf_trigger("timer", "tick", "*/10 * * * * * *")]
    scf.triggers[SHIM_FN] = [scf_trigger("cos", f"{BUCKET}.cos", json.dumps(COS_DESC))]


@pytest.fixture
def env(deployed, tmp_path, monkeypatch):
    cloud, emulator, receiver = deployed
    values = {
        **cloud.env(tmp_path),
        "RELAY_BACKEND_URL": receiver.base_url,
        "RELAY_CALLBACK_SECRET": SECRET,
        "RUNNINGHUB_BASE_URL": emulator.base_url,
        "RUNNINGHUB_API_KEY": emulator.config.api_key,
        "RELAY_NUDGE_FUNCTION": CONSUMER_FN,
        "RELAY_SHIM_FUNCTION": SHIM_FN,
        "RELAY_NUDGE_REGION": COS_REGION,
        "RELAY_NUDGE_ENDPOINT": cloud.api3.endpoint,
    }
    values["RELAY_QUEUE"] += f"&api_region={COS_REGION}&api_endpoint={cloud.api3.endpoint}"
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def rows_by_check(**overrides: object) -> dict[str, tuple[Verdict, str]]:
    return {row.check: (row.verdict, row.detail) for row in run_checks(load(**overrides))}


def failures(**overrides: object) -> dict[str, str]:
    return {check: detail for check, (verdict, detail) in rows_by_check(**overrides).items() if verdict is Verdict.FAIL}


def test_everything_passes_as_deployed(env):
    rows = run_checks(load())
    assert exit_code(rows) == 0, [r for r in rows if r.verdict is Verdict.FAIL]
    verdicts = {row.check: row.verdict for row in rows}
    for check in (
        "queue: data plane accepts our credentials",
        "queue: both queues exist",
        "queue: attributes as infra creates them",
        "cos: bucket reachable",
        "cos: lifecycle rule on staging/",
        "moderation: configuration",
        f"moderation: IMS answers in {COS_REGION}",
        f"moderation: VM answers in {COS_REGION}",
        "runninghub: key valid",
        "pipelines: file loads",
        "pipelines: model_pose12 workflow 1912000000000000012 nodes",
        "pipelines: video_tryon workflow 1912000000000000203 nodes",
        "backend: callback secret",
        "backend: RELAY_BACKEND_URL answers",
        "scf: consumer function as deployed",
        "scf: shim function as deployed",
        "scf: consumer timer trigger",
        "scf: shim COS trigger on input/",
    ):
        assert verdicts[check] is Verdict.PASS, check
    assert verdicts["moderation: BizType exists"] is Verdict.UNKNOWN
    assert verdicts["pipelines: promo_poster ai-app 1912000000000000101 nodes"] is Verdict.UNKNOWN
    assert all(row.detail for row in rows if row.verdict is not Verdict.PASS)


def test_cli_json_and_exit_codes(env, monkeypatch):
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["ok"] is True and {c["result"] for c in body["checks"]} <= {"pass", "unknown"}
    monkeypatch.setenv("RUNNINGHUB_API_KEY", "wrong-key")
    result = CliRunner().invoke(app, ["pipelines", "check", "--json"])
    assert result.exit_code == 1
    failed = [c for c in json.loads(result.output)["checks"] if c["result"] == "fail"]
    assert [c["check"] for c in failed] == ["runninghub: key valid"] and "RUNNINGHUB_API_KEY" in failed[0]["detail"]


def test_missing_biz_type_fails(env):
    auditor = env["RELAY_AUDITOR"].replace("&biz_type=relay_video", "")
    assert "biz_type is missing" in failures(auditor=auditor)["moderation: configuration"]


def test_denied_moderation_action_is_named(env, deployed):
    deployed[0].api3.fail_next("vm", "DescribeTaskDetail", code="UnauthorizedOperation")
    detail = failures()[f"moderation: VM answers in {COS_REGION}"]
    assert "vm:DescribeTaskDetail" in detail and "deploy/cam/consumer.json" in detail


def test_wrong_visibility_timeout_and_dead_letter_policy_fail(env, deployed):
    state = deployed[0].api3.cmq.queues[QUEUE.lower()]
    saved_attributes, saved_policy = dict(state.attributes), dict(state.dead_letter or {})
    state.attributes["VisibilityTimeout"] = 30
    state.dead_letter = {**saved_policy, "MaxReceiveCount": 50}
    try:
        detail = failures()["queue: attributes as infra creates them"]
    finally:
        state.attributes, state.dead_letter = saved_attributes, saved_policy
    assert "VisibilityTimeout 30 s is shorter than RELAY_VISIBILITY_TIMEOUT_S 120 s" in detail
    assert "RELAY_MAX_RECEIVE_COUNT 5" in detail and "infra create-queues" in detail


def test_missing_queue_fails(env):
    queue = env["RELAY_QUEUE"].replace(f"dlq={DLQ}", "dlq=relay_nowhere")
    assert "relay_nowhere" in failures(queue=queue)["queue: both queues exist"]


def test_refused_credentials_fail_the_data_plane(env, monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "not-the-key")
    found = failures()
    assert "queue: data plane accepts our credentials" in found
    assert "cos: bucket reachable" in found


def test_missing_lifecycle_rule_fails(env, deployed):
    client = deployed[0].cos.sdk_client()
    client.delete_bucket_lifecycle(Bucket=BUCKET)
    try:
        detail = failures()["cos: lifecycle rule on staging/"]
    finally:
        client.put_bucket_lifecycle(Bucket=BUCKET, LifecycleConfiguration=LIFECYCLE)
    assert "staging/" in detail


def test_backend_down_and_secret_unset_fail(env):
    found = failures(backend_url="http://127.0.0.1:9", callback_secret="")
    assert "RELAY_CALLBACK_SECRET" in found["backend: callback secret"]
    assert "ConnectError" in found["backend: RELAY_BACKEND_URL answers"]


def test_unknown_workflow_node_id_and_field_are_named(env, tmp_path):
    text = files("relay_core").joinpath("pipelines.toml").read_text(encoding="utf-8")
    text = text.replace('node_id = "31", field_name = "text"', 'node_id = "33", field_name = "text"')
    text = text.replace('node_id = "12", field_name = "image"', 'node_id = "12", field_name = "picture"')
    text = text.replace('target_id = "1912000000000000203"', 'target_id = "1912000000000000999"')
    path = tmp_path / "pipelines.toml"
    path.write_text(text, encoding="utf-8")
    found = failures(pipelines=path)
    pose = found["pipelines: model_pose12 workflow 1912000000000000012 nodes"]
    assert "node 12 (LoadImage) has no field 'picture' (image)" in pose
    assert "node 33 is not in the workflow (its nodes: 12, 31, 32)" in pose and "pipelines.toml" in pose
    assert "code 380" in found["pipelines: video_tryon workflow 1912000000000000999 nodes"]


def test_functions_match_serverless_yml():
    for expected in (CONSUMER, SHIM):
        path = Path(__file__).parents[2] / "deploy" / expected.folder / "serverless.yml"
        inputs = yaml.safe_load(path.read_text(encoding="utf-8"))["inputs"]
        found = (inputs["handler"], inputs["runtime"], inputs["timeout"], inputs["memorySize"])
        assert found == (expected.handler, expected.runtime, expected.timeout, expected.memory), path


def test_wrong_function_configuration_and_missing_function_fail(env, deployed):
    scf = deployed[0].api3.scf
    saved = dict(scf.functions[CONSUMER_FN])
    scf.functions[CONSUMER_FN].update(Runtime="Python3.9", Timeout=60)
    try:
        found = failures()
    finally:
        scf.functions[CONSUMER_FN] = saved
    detail = found["scf: consumer function as deployed"]
    assert "Runtime 'Python3.9' (expected 'Python3.10')" in detail and "Timeout 60 (expected 300)" in detail
    assert "deploy/consumer" in detail
    assert "not found" in failures(shim_function="nowhere")["scf: shim function as deployed"]


@pytest.mark.parametrize("prefix", ["output/", "", None])
def test_shim_cos_trigger_must_be_on_input_only(env, deployed, prefix):
    scf = deployed[0].api3.scf
    saved = list(scf.triggers[SHIM_FN])
    desc = {**COS_DESC, "filter": {"Prefix": prefix}} if prefix is not None else COS_DESC
    scf.triggers[SHIM_FN] = [] if prefix is None else [scf_trigger("cos", "t", json.dumps(desc))]
    scf.triggers[CONSUMER_FN], saved_timer = [], scf.triggers[CONSUMER_FN]
    try:
        found = failures()
    finally:
        scf.triggers[SHIM_FN], scf.triggers[CONSUMER_FN] = saved, saved_timer
    assert "no enabled timer trigger" in found["scf: consumer timer trigger"]
    detail = found["scf: shim COS trigger on input/"]
    assert ("no COS trigger on prefix input/" if prefix is None else "also fires on output/") in detail
