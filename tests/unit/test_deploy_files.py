"""deploy/: the serverless.yml files and CAM policies agree with the code they deploy.

* each ``serverless.yml`` parses, deploys a tree ``scf-relay package`` builds and names its root handler;
* function environment names are known settings, secrets are ``${env:...}`` placeholders, and every
  placeholder is listed in ``deploy/relay.env.example``;
* triggers: COS ``cos:ObjectCreated:*`` under ``input/``; a 7-field timer cron;
* CAM policies name exactly the actions the adapters call (read from the code with ``ast``), on ``qcs::``
  resources (``*`` only for moderation, which has no resource-level authorisation).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml  # PyYAML: in the dev environment through moto's dependencies

from relay_core.settings import SETTINGS, is_secret, variables
from scf_relay import function_zips as packaging

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PLACEHOLDER = re.compile(r"\$\{env:([A-Z][A-Z0-9_]*)\}")
ENV_EXAMPLE = DEPLOY / "relay.env.example"
LITERAL_OK = {"RELAY_HOME", "RELAY_NUDGE_FUNCTION", "RELAY_NUDGE_NAMESPACE"}  # fixed, non-secret values
REQUIRED_ENV = {
    "producer_shim": {"RELAY_QUEUE"},
    "consumer": {"RELAY_QUEUE", "RELAY_LEDGER", "RELAY_STORE", "RELAY_BACKEND_URL", "RELAY_CALLBACK_SECRET"}
    | {"RUNNINGHUB_API_KEY", "RELAY_AUDITOR"},
    "webhook": {"RELAY_QUEUE", "RELAY_LEDGER", "RELAY_WEBHOOK_SECRET"},
}
# cos-python-sdk-v5 method -> the COS CAM actions it needs (copy reads its source and writes its target)
COS_SDK_ACTIONS = {
    "get_object": {"GetObject"},
    "get_presigned_url": {"GetObject"},
    "head_object": {"HeadObject"},
    "list_objects": {"GetBucket"},
    "put_object": {"PutObject"},
    "delete_object": {"DeleteObject"},
    "copy_object": {"GetObject", "PutObject"},
    "create_multipart_upload": {"InitiateMultipartUpload"},
    "upload_part": {"UploadPart"},
    "complete_multipart_upload": {"CompleteMultipartUpload"},
    "abort_multipart_upload": {"AbortMultipartUpload"},
}
CAM_NAMES = {"scf:Invoke": "scf:InvokeFunction"}  # API action -> its CAM action where they differ
# Actions CAM authorises only with resource "*" (a statement naming a resource is judged "no permission"):
# IMS and VM have no resource-level authorisation at all; TDMQ-CMQ lists CreateCmqQueue among its APIs without
# resource-level authorisation (its CAM doc). The TDMQ-CMQ CAM doc lists RewindCmqQueue, ModifyCmqQueueAttribute
# and BatchReceiveMessage as resource-level; the other queue actions we use are unverified (docs/deploy.md).
RESOURCE_LEVEL_LESS = ("ims:", "vm:", "tdmq:CreateCmqQueue")


def serverless(function: str) -> dict:
    return yaml.safe_load((DEPLOY / function / "serverless.yml").read_text(encoding="utf-8"))


def _strings(value: object) -> list[str]:
    """Every string in a parsed YAML document (comments are not in it)."""
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def setting_names() -> dict[str, bool]:
    """Every environment name a setting is deployed under -> whether it holds a secret."""
    names = {}
    for field_name in SETTINGS:
        for name in variables(field_name)[:1]:  # the name deploy files use: the vendor's own, else RELAY_*
            names[name] = is_secret(field_name)
    return names


# -- serverless.yml ---------------------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(packaging.FUNCTIONS))
def test_serverless_file_deploys_the_packaged_tree_and_its_handler(function, tmp_path):
    config = serverless(function)
    inputs = config["inputs"]
    assert config["component"] == "scf" and config["name"] == inputs["name"]
    assert inputs["runtime"] == "Python3.10" and inputs["handler"] == "index.main_handler"
    source = (DEPLOY / function / inputs["src"]["src"]).resolve()
    assert source == (REPO / packaging.BuildOptions().out_dir / function).resolve()
    module_name, _, handler = inputs["handler"].partition(".")
    packaging.write_entry(tmp_path, packaging.FUNCTIONS[function])
    entry = (tmp_path / f"{module_name}.py").read_text(encoding="utf-8")
    assert f"import {handler}" in entry
    assert callable(getattr(importlib.import_module(packaging.FUNCTIONS[function].handler_module), handler))
    memory, timeout = inputs["memorySize"], inputs["timeout"]
    assert (memory == 64 or (memory % 128 == 0 and 128 <= memory <= 3072)) and 1 <= timeout <= 900
    assert set(inputs["vpcConfig"]) == {"vpcId", "subnetId"} and inputs["role"].startswith("${env:DEPLOY_")


@pytest.mark.parametrize("function", sorted(packaging.FUNCTIONS))
def test_environment_names_are_settings_and_secrets_are_placeholders(function):
    variables = serverless(function)["inputs"]["environment"]["variables"]
    known = setting_names()
    assert set(variables) <= set(known), set(variables) - set(known)
    assert REQUIRED_ENV[function] <= set(variables)
    for name, value in variables.items():
        match = PLACEHOLDER.fullmatch(str(value))
        if match is None:
            assert name in LITERAL_OK and not known[name], f"{name} must be a ${{env:...}} placeholder"
        elif known[name]:
            assert match.group(1) == name, f"secret {name} must come from ${{env:{name}}}"
        else:
            assert match.group(1) in (name, "DEPLOY_REGION")


def test_every_placeholder_is_in_the_env_example_and_the_example_holds_no_secret():
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.M))
    used = {name for f in packaging.FUNCTIONS for text in _strings(serverless(f)) for name in PLACEHOLDER.findall(text)}
    for policy in (DEPLOY / "cam").glob("*.json"):
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", policy.read_text()))
    assert used <= defined, used - defined
    secrets = [name for name, secret in setting_names().items() if secret]
    for name in secrets:
        assert re.search(rf"^{name}=CHANGE_ME$", example, flags=re.M), name


def test_the_shim_is_small_fast_and_triggered_by_uploads_under_input():
    inputs = serverless("producer_shim")["inputs"]
    assert inputs["memorySize"] == 128 and inputs["timeout"] <= 30
    [event] = inputs["events"]
    cos = event["cos"]["parameters"]
    assert cos["events"] == "cos:ObjectCreated:*" and cos["filter"]["prefix"] == "input/" and cos["enable"]
    assert cos["bucket"] == "${env:DEPLOY_BUCKET}.cos.${env:DEPLOY_REGION}.myqcloud.com"
    nudged = inputs["environment"]["variables"]["RELAY_NUDGE_FUNCTION"]
    assert nudged == serverless("consumer")["inputs"]["name"]


def test_the_consumer_ticks_every_10_s_with_a_7_field_cron():
    inputs = serverless("consumer")["inputs"]
    [event] = inputs["events"]
    timer = event["timer"]["parameters"]
    fields = timer["cronExpression"].split()
    assert len(fields) == 7 and fields[0] == "*/10" and timer["enable"]
    assert inputs["memorySize"] >= 256 and inputs["timeout"] >= 60


# -- CAM policies -----------------------------------------------------------------------------------


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Call)]


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _api_actions(path: Path) -> list[tuple[str, str]]:
    """(first Name argument or '', action) of every ``call``/``_call`` with a constant action name."""
    found = []
    for node in _calls(path):
        if _name(node.func) in ("call", "_call"):
            strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            names = [a.id for a in node.args if isinstance(a, ast.Name)]
            if strings:
                found.append((names[0] if names else "", strings[0]))
    return found


def actions_in_code() -> dict[str, set[str]]:
    data_plane = {f"tdmq:{a}" for _, a in _api_actions(REPO / "jobqueue/queue/cmq_actions.py")}
    control_plane = {f"tdmq:{a}" for _, a in _api_actions(REPO / "jobqueue/queue/cmq_admin.py")}
    moderation = {
        f"{'ims' if client == 'IMS_CLIENT' else 'vm'}:{a}" for client, a in _api_actions(REPO / "moderation/tencent.py")
    }
    nudge = {CAM_NAMES.get(f"scf:{a}", f"scf:{a}") for _, a in _api_actions(REPO / "tencent_plumbing/scf_invoke.py")}
    sdk_methods = {_name(n.func) for n in _calls(REPO / "objectstore/cos.py")} & set(COS_SDK_ACTIONS)
    cos = {f"name/cos:{a}" for method in sdk_methods for a in COS_SDK_ACTIONS[method]}
    return {
        "data_plane": data_plane,
        "control_plane": control_plane,
        "moderation": moderation,
        "nudge": nudge,
        "cos": cos,
    }


def policy_actions(name: str) -> tuple[set[str], list[dict]]:
    policy = json.loads((DEPLOY / "cam" / f"{name}.json").read_text(encoding="utf-8"))
    assert policy["version"] == "2.0"
    statements = policy["statement"]
    return {a for s in statements for a in s["action"]}, statements


def test_code_scan_finds_the_adapters_actions():
    code = actions_in_code()
    assert {"tdmq:SendMessage", "tdmq:BatchReceiveMessage", "tdmq:DeleteMessage"} <= code["data_plane"]
    assert {"tdmq:CreateCmqQueue", "tdmq:DescribeCmqQueueDetail"} <= code["control_plane"]
    assert code["moderation"] == {"ims:ImageModeration", "vm:CreateVideoModerationTask", "vm:DescribeTaskDetail"}
    assert code["nudge"] == {"scf:InvokeFunction"}
    assert {"name/cos:GetObject", "name/cos:PutObject", "name/cos:UploadPart", "name/cos:GetBucket"} <= code["cos"]


def test_each_role_gets_exactly_the_actions_its_code_uses():
    code = actions_in_code()
    shim_sends = {"tdmq:SendMessage", "tdmq:BatchSendMessage"}  # send_batch: one message or a batch
    assert shim_sends <= code["data_plane"]
    expected = {
        "producer_shim": shim_sends | code["nudge"],
        "consumer": code["cos"] | code["data_plane"] | code["moderation"],
        "operator": code["control_plane"] | code["data_plane"],  # infra create-queues, dlq list/redrive/fail
        "webhook": {"tdmq:SendMessage"},  # one POLL hint per webhook
    }
    for name, wanted in expected.items():
        assert policy_actions(name)[0] == wanted, name


@pytest.mark.parametrize("name", ["producer_shim", "consumer", "operator", "webhook"])
def test_resource_less_actions_have_their_own_statement_on_star(name):
    """A resource-less action in a statement scoped to resources is refused by CAM (infra create-queues would be)."""
    _, statements = policy_actions(name)
    for statement in statements:
        resource_less = [a for a in statement["action"] if a.startswith(RESOURCE_LEVEL_LESS)]
        if resource_less:
            assert statement["resource"] == ["*"], (resource_less, statement["resource"])


@pytest.mark.parametrize("name", ["producer_shim", "consumer", "operator", "webhook"])
def test_resources_are_scoped_to_our_bucket_queues_and_function(name):
    _, statements = policy_actions(name)
    for statement in statements:
        assert statement["effect"] == "allow" and "condition" not in statement
        services = {a.split(":")[0].removeprefix("name/") for a in statement["action"]}
        if statement["resource"] == ["*"]:
            assert all(a.startswith(RESOURCE_LEVEL_LESS) for a in statement["action"]), statement
            continue
        assert len(services) == 1, statement
        [service] = services
        for resource in statement["resource"]:
            assert resource.startswith(f"qcs::{service}:${{DEPLOY_REGION}}:"), resource
            assert "*" not in resource.split(":")[-1].split("/")[0], resource  # no wildcard bucket/queue name
            if service == "tdmq":
                assert resource.split(":queue/")[1] in ("${DEPLOY_QUEUE}", "${DEPLOY_DLQ}")
            if service == "scf":
                assert resource.endswith("/function/scf-relay-consumer")
            if service == "cos":
                assert ":${DEPLOY_BUCKET}/" in resource


def test_the_webhook_entry_is_small_and_answers_the_gateway_itself():
    inputs = serverless("webhook")["inputs"]
    assert inputs["memorySize"] == 128 and inputs["timeout"] <= 30
    [event] = inputs["events"]
    [endpoint] = event["apigw"]["parameters"]["endpoints"]
    assert endpoint["method"] == "POST" and endpoint["function"]["isIntegratedResponse"]
    assert event["apigw"]["parameters"]["protocols"] == ["https"]
