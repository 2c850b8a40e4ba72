"""The RunningHub endpoints the emulator speaks, as functions of (request) -> :class:`Reply`.

Faults are applied in this order: ``http_5xx_next`` and ``http_5xx_rate`` (502 before anything),
``force_codes`` (that code, before anything), the api key, the work itself, then ``garbage_rate`` (the work
is done but the answer is a non-JSON 200) and ``delay_s`` (applied by the WSGI app after the work).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.headers import Headers

from relay_core.filetypes import CONTENT_TYPES
from vendors.emulator.config import EmulatorConfig
from vendors.emulator.media import BLOCK_MARKER, SUPPORTED_TYPES, make_file
from vendors.emulator.tasks import EmulatedTask, Outcome, TaskBook, TaskState, forced_outcome
from vendors.emulator.wire import Reply, envelope, json_reply, parse_multipart

GARBAGE = Reply(200, b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html")
BAD_GATEWAY = Reply(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
UPLOAD_PATH = "/task/openapi/upload"
V2_QUERY_PATH = "/openapi/v2/query"
_FILE_NAME = re.compile(r"^(\d{19})-(\d{2})\.(jpg|png|mp4)$")
_EXTENSION_TYPES = {ext: file_type for file_type, ext in SUPPORTED_TYPES.items()}


class EmulatorApi:
    """Endpoint logic over a :class:`TaskBook`; ``base_url`` is where result files are served from."""

    def __init__(self, config: EmulatorConfig, book: TaskBook, base_url: str) -> None:
        self.config = config
        self.book = book
        self.base_url = base_url
        self._counters_lock = threading.Lock()
        self._json_routes: dict[str, Callable[[dict[str, Any]], Reply]] = {
            "/task/openapi/create": functools.partial(self._create, kind="workflow"),
            "/task/openapi/ai-app/run": functools.partial(self._create, kind="ai-app"),
            "/task/openapi/outputs": self._outputs,
            "/task/openapi/status": self._status,
            "/task/openapi/cancel": self._cancel,
            "/uc/openapi/accountStatus": self._account,
            "/api/openapi/getJsonApiFormat": self._workflow_json,
        }

    # -- dispatch ---------------------------------------------------------------------------------

    def post(self, path: str, headers: Headers, body: bytes) -> Reply:
        """The answer to ``POST path`` (``headers`` looked up case-insensitively); never raises."""
        if self._bad_gateway():
            return BAD_GATEWAY
        if path in self.config.force_codes:
            code = self.config.force_codes[path]
            return envelope(code, f"FORCED_{code}")
        if path == UPLOAD_PATH:
            reply = self._upload(headers.get("Content-Type", ""), body)
        elif path in self._json_routes or path == V2_QUERY_PATH:
            payload = _json_object(body)
            if payload is None:
                return envelope(301, "PARAMS_INVALID")
            if path == V2_QUERY_PATH:
                reply = self._v2_query(payload, headers.get("Authorization") or "")
            else:
                reply = self._json_routes[path](payload)
        else:
            return json_reply({"code": 404, "msg": "NOT_FOUND"}, status=404)
        return GARBAGE if self.book.chance(self.config.garbage_rate) else reply

    def get(self, path: str) -> Reply:
        """The answer to ``GET path`` (result files under ``/files/``); never raises."""
        if self._bad_gateway():
            return BAD_GATEWAY
        if path.startswith("/files/"):
            return self._file(path[len("/files/") :])
        return json_reply({"code": 404, "msg": "NOT_FOUND"}, status=404)

    def _bad_gateway(self) -> bool:
        with self._counters_lock:
            if self.config.http_5xx_next > 0:
                self.config.http_5xx_next -= 1
                return True
        return self.book.chance(self.config.http_5xx_rate)

    def _drop_create_response(self) -> bool:
        with self._counters_lock:
            if self.config.drop_create_response_next > 0:
                self.config.drop_create_response_next -= 1
                return True
        return self.book.chance(self.config.drop_create_response_rate)

    def outputs_answer(self, task: EmulatedTask) -> dict[str, Any]:
        """The ``/task/openapi/outputs`` envelope of ``task`` now (what a webhook's ``eventData`` carries)."""
        return json.loads(self._outputs_of(task).body)

    def _authorized(self, key: Any) -> bool:
        return isinstance(key, str) and key == self.config.api_key

    def _now(self) -> float:
        return self.config.clock()

    # -- legacy task endpoints --------------------------------------------------------------------

    def _create(self, body: dict, kind: str) -> Reply:
        target_id = str(body.get("workflowId" if kind == "workflow" else "webappId") or "")
        nodes = body.get("nodeInfoList") or []
        refusal = self._refusal(body, kind, target_id, nodes)
        if refusal is not None:
            return refusal
        spec = self.config.targets[target_id]
        task = EmulatedTask(
            task_id=self.book.new_task_id(),
            kind=kind,
            target_id=target_id,
            nodes=tuple(nodes),
            outcome=forced_outcome(self._input_texts(nodes)) or self._draw_outcome(),
            created_at=self._now(),
            queue_s=self.config.queue_s,
            job_s=self.config.job_s,
            output_count=spec.count,
            file_type=spec.file_type,
            instance_type=body.get("instanceType"),
            webhook_url=_webhook_url(body.get("webhookUrl")),
        )
        self.book.add(task)
        node_errors = {}
        if task.outcome is Outcome.NODE_ERROR:
            error = {"type": "value_not_valid", "message": "emulate:node-error"}
            node_errors = {str(nodes[0]["nodeId"]) if nodes else "0": {"errors": [error]}}
        tips: dict[str, Any] = {
            "result": not node_errors,
            "error": None,
            "outputs_to_execute": [],
            "node_errors": node_errors,
        }
        if self._drop_create_response():
            return BAD_GATEWAY  # the job exists and runs: only the answer is lost
        task_id: int | str = int(task.task_id) if self.config.task_id_as_number else task.task_id
        data = {
            "netWssUrl": None,
            "taskId": task_id,
            "clientId": hashlib.md5(task.task_id.encode()).hexdigest(),
            "taskStatus": "QUEUED",
            "promptTips": json.dumps(tips),
        }
        return envelope(0, "success", data)

    def _refusal(self, body: dict, kind: str, target_id: str, nodes: Any) -> Reply | None:
        """Why a submit creates no task, if it does not; otherwise charge one coin and return ``None``."""
        if not self._authorized(body.get("apiKey")):
            return envelope(802, "APIKEY_UNAUTHORIZED")
        if not isinstance(nodes, list) or not all(_is_node(n) for n in nodes):
            return envelope(803, "APIKEY_INVALID_NODE_INFO")
        if target_id not in self.config.targets:
            missing = (380, "WORKFLOW_NOT_EXISTS") if kind == "workflow" else (901, "WEBAPP_NOT_EXISTS")
            return envelope(*missing)
        if self.book.unfinished(self._now()) >= self.config.concurrency:
            return envelope(421, "TASK_QUEUE_MAXED")
        with self._counters_lock:
            if self.config.balance <= 0:
                return envelope(812, "APIKEY_USER_BALANCE_INSUFFICIENT")
            self.config.balance -= 1
        return None

    def _input_texts(self, nodes: list[dict[str, Any]]) -> Iterator[bytes]:
        """Every text that can force an outcome: field values, and names and bytes of uploads they name."""
        for node in nodes:
            value = str(node.get("fieldValue", ""))
            yield value.encode()
            upload = self.book.upload(value)
            if upload is not None:
                yield upload[0].encode()
                yield upload[1]

    def _draw_outcome(self) -> Outcome:
        if self.book.chance(self.config.fail_rate):
            return Outcome.FAIL
        if self.book.chance(self.config.never_finish_rate):
            return Outcome.NEVER
        if self.book.chance(self.config.block_rate):
            return Outcome.BLOCK
        return Outcome.SUCCEED

    def _task_of(self, body: dict) -> EmulatedTask | Reply:
        if not self._authorized(body.get("apiKey")):
            return envelope(802, "APIKEY_UNAUTHORIZED")
        task = self.book.get(str(body.get("taskId", "")))
        if task is None:
            return envelope(807, "APIKEY_TASK_NOT_FOUND")
        self.book.note_asked(task.task_id)
        return task

    def _outputs(self, body: dict) -> Reply:
        task = self._task_of(body)
        return task if isinstance(task, Reply) else self._outputs_of(task)

    def _outputs_of(self, task: EmulatedTask) -> Reply:
        state = task.state_at(self._now())
        if state is TaskState.QUEUED:
            return envelope(813, "APIKEY_TASK_IS_QUEUED")
        if state is TaskState.RUNNING:
            return envelope(804, "APIKEY_TASK_IS_RUNNING")
        if state in (TaskState.FAILED, TaskState.CANCELLED):
            return envelope(805, "APIKEY_TASK_STATUS_ERROR", {"failedReason": _failed_reason(task, state)})
        common = {
            "fileType": SUPPORTED_TYPES[task.file_type],
            "taskCostTime": str(round(task.job_s)),
            "nodeId": "9",
            "consumeCoins": "1",
        }
        return envelope(0, "success", [{"fileUrl": url, **common} for url in self._file_urls(task)])

    def _status(self, body: dict) -> Reply:
        task = self._task_of(body)
        if isinstance(task, Reply):
            return task
        state = task.state_at(self._now())
        return envelope(0, "success", "FAILED" if state is TaskState.CANCELLED else state.value)

    def _cancel(self, body: dict) -> Reply:
        task = self._task_of(body)
        if isinstance(task, Reply):
            return task
        self.book.cancel(task.task_id, self._now())
        return envelope(0, "success")

    def _account(self, body: dict) -> Reply:
        if not self._authorized(body.get("apikey")):
            return envelope(802, "APIKEY_UNAUTHORIZED")
        data = {
            "remainCoins": str(self.config.balance),
            "currentTaskCounts": str(self.book.unfinished(self._now())),
            "remainMoney": None,
            "currency": None,
            "apiType": "NORMAL",
        }
        return envelope(0, "success", data)

    def _workflow_json(self, body: dict) -> Reply:
        """``data.prompt``: the target's API-format JSON as a string, one node per input of its spec plus a
        save node; an unknown id answers 380 (workflow missing)."""
        if not self._authorized(body.get("apiKey")):
            return envelope(802, "APIKEY_UNAUTHORIZED")
        spec = self.config.targets.get(str(body.get("workflowId") or ""))
        if spec is None:
            return envelope(380, "WORKFLOW_NOT_EXISTS")
        return envelope(0, "success", {"prompt": json.dumps(workflow_prompt(spec.inputs))})

    def _upload(self, content_type: str, body: bytes) -> Reply:
        try:
            form = parse_multipart(content_type, body)
        except ValueError:
            return envelope(301, "PARAMS_INVALID")
        key = form.get("apiKey")
        if key is None or not self._authorized(key.content.decode("utf-8", "replace")):
            return envelope(802, "APIKEY_UNAUTHORIZED")
        file = form.get("file")
        if file is None:
            return envelope(301, "PARAMS_INVALID")
        if len(file.content) > self.config.max_upload_bytes:
            return envelope(809, "APIKEY_FILE_SIZE_EXCEEDED")
        original = file.filename or "upload"
        suffix = re.sub(r"[^a-z0-9]", "", original.rpartition(".")[2].lower())[:8] if "." in original else ""
        file_name = f"api/{hashlib.sha256(file.content).hexdigest()}.{suffix or 'bin'}"
        self.book.store_upload(file_name, original, file.content)
        file_type = form["fileType"].content.decode() if "fileType" in form else "input"
        return envelope(0, "success", {"fileName": file_name, "fileType": file_type})

    # -- v2 and files -----------------------------------------------------------------------------

    def _v2_query(self, body: dict, authorization: str) -> Reply:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not self._authorized(key.strip()):
            return json_reply({"code": 802, "msg": "APIKEY_UNAUTHORIZED"}, status=401, code=802)
        task = self.book.get(str(body.get("taskId", "")))
        if task is None:
            return json_reply({"code": 807, "msg": "APIKEY_TASK_NOT_FOUND"}, code=807)
        state = task.state_at(self._now())
        answer: dict[str, Any] = {
            "taskId": task.task_id,
            "status": state.value,
            "errorCode": "",
            "errorMessage": "",
            "results": [],
        }
        if state in (TaskState.FAILED, TaskState.CANCELLED):
            reason = _failed_reason(task, state)
            answer.update(errorCode="805", errorMessage=reason["exception_message"], failedReason=reason)
        elif state is TaskState.SUCCESS:
            answer["results"] = [
                {"url": url, "outputType": SUPPORTED_TYPES[task.file_type]} for url in self._file_urls(task)
            ]
            answer["usage"] = {"consumeCoins": "1", "taskCostTime": str(round(task.job_s))}
        return json_reply(answer)

    def _file_urls(self, task: EmulatedTask) -> list[str]:
        ext = SUPPORTED_TYPES[task.file_type]
        return [f"{self.base_url}/files/{task.task_id}-{n:02}.{ext}" for n in range(1, task.output_count + 1)]

    def _file(self, name: str) -> Reply:
        match = _FILE_NAME.fullmatch(name)
        task = self.book.get(match.group(1)) if match else None
        if match is None or task is None or task.state_at(self._now()) is not TaskState.SUCCESS:
            return json_reply({"code": 404, "msg": "FILE_NOT_FOUND"}, status=404)
        n, file_type = int(match.group(2)), _EXTENSION_TYPES[match.group(3)]
        if not 1 <= n <= task.output_count or file_type != task.file_type:
            return json_reply({"code": 404, "msg": "FILE_NOT_FOUND"}, status=404)
        blocked = task.outcome is Outcome.BLOCK and n == task.output_count
        content = make_file(
            file_type, seed=int(task.task_id) % 10**9 * 100 + n, marker=BLOCK_MARKER if blocked else b""
        )
        return Reply(200, content, CONTENT_TYPES[file_type])


_CLASS_BY_FIELD = {"image": "LoadImage", "video": "VHS_LoadVideo", "text": "CLIPTextEncode"}


def workflow_prompt(inputs: tuple[tuple[str, str], ...]) -> dict[str, dict[str, Any]]:
    """A ComfyUI API-format prompt with the given (node id, field) inputs and a ``SaveImage`` node."""
    prompt: dict[str, dict[str, Any]] = {}
    for node_id, field_name in inputs:
        node = prompt.setdefault(
            node_id, {"class_type": _CLASS_BY_FIELD.get(field_name, "PrimitiveNode"), "inputs": {}, "_meta": {}}
        )
        node["inputs"][field_name] = ""
        node["_meta"]["title"] = node["class_type"]
    save_id = str(max((int(n) for n in prompt if n.isdigit()), default=0) + 1)
    first = next(iter(prompt), save_id)
    prompt[save_id] = {
        "class_type": "SaveImage",
        "inputs": {"filename_prefix": "ComfyUI", "images": [first, 0]},
        "_meta": {"title": "Save Image"},
    }
    return prompt


def _webhook_url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _json_object(body: bytes) -> dict | None:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _is_node(node: Any) -> bool:
    return isinstance(node, dict) and all(k in node for k in ("nodeId", "fieldName", "fieldValue"))


def _failed_reason(task: EmulatedTask, state: TaskState) -> dict[str, Any]:
    if state is TaskState.CANCELLED:
        kind, message = "TaskCancelled", "the task was cancelled"
    elif task.outcome is Outcome.NODE_ERROR:
        kind, message = "PromptValidationError", "Prompt outputs failed validation"
    else:
        kind, message = "torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB (emulated)"
    return {
        "node_id": "9",
        "node_name": "KSampler",
        "exception_type": kind,
        "exception_message": message,
        "traceback": [
            "Traceback (most recent call last):\n",
            '  File "execution.py", line 151, in execute\n',
            f"{kind}: {message}\n",
        ],
    }
