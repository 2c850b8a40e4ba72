"""The ``scf-relay`` command as a user runs it: demo (own receiver and ours), dlq, tasks, emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from relay_core.domain import Outcome, Status
from scf_relay.cli.app import app
from scf_relay.demo.receiver import ReportReceiver

CLI = [sys.executable, "-m", "scf_relay.cli.app"]


def _env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "RUNNINGHUB_"))}
    return {**env, "RELAY_HOME": str(tmp_path / "relay")}


def test_demo_json_reports_every_task_terminal_with_files_and_verified_reports(tmp_path):
    done = subprocess.run(
        [*CLI, "demo", "--tasks", "12", "--json", "--virtual-time", "--home", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["ok"] and len(data["tasks"]) == 12
    assert data["shim"] == {"events": 24, "enqueued": 24, "skipped": 0}  # duplicates enqueued, then dropped
    for task in data["tasks"]:
        assert task["status"] == "done" and task["reports"] == 1 and task["signature_ok"] is True
        assert task["report_body"]["resultUrls"] == [f"cos://{o['key']}" for o in task["outputs"]]
        assert all(
            o["bytes"] and o["key"].startswith(f"output/{task['user_id']}/{task['task_id']}/") for o in task["outputs"]
        )
        assert (tmp_path / "demo" / "store" / "relay-1250000000" / task["outputs"][0]["key"]).is_file()


def test_demo_reports_to_a_backend_we_run_ourselves(tmp_path):
    with ReportReceiver("our-own-secret") as rx:
        done = subprocess.run(
            [
                *CLI,
                "demo",
                "--tasks",
                "3",
                "--json",
                "--home",
                str(tmp_path / "demo"),
                "--backend-url",
                rx.base_url,
                "--callback-secret",
                "our-own-secret",
                "--scenario",
                "mixed",
                "--virtual-time",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(tmp_path),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        data = json.loads(done.stdout)
        assert data["backend_url"] == rx.base_url
        got = rx.by_task()
        assert sorted(got) == sorted(t["task_id"] for t in data["tasks"])
        assert all(len(reports) == 1 and reports[0].verified for reports in got.values())


def test_dlq_and_tasks_commands_speak_json(tmp_path, monkeypatch, relay_home):
    from jobqueue import open_ledger, open_queue
    from relay_core.settings import load

    settings = load()
    queue, ledger = open_queue(settings.queue_url()), open_ledger(settings.ledger_url())
    queue.send("not a job message")
    [received] = queue.receive(1, 30)
    queue.dead_letter(received, "poison: body is not JSON")
    ledger.claim_submit("t-late", "tok", 60, deadline_at=time.time() - 100, now=time.time())
    ledger.record_outcome("t-done", Outcome(Status.DONE, ("output/u/t-done/frame_01.jpg",)), time.time() - 3600)
    ledger.record_outcome("t-fresh", Outcome(Status.DONE), time.time())  # its report may still be on its way
    runner = CliRunner()

    listed = json.loads(runner.invoke(app, ["dlq", "list", "--json"]).stdout)["letters"]
    assert [d["reason"] for d in listed] == ["poison: body is not JSON"]
    dry = json.loads(runner.invoke(app, ["dlq", "redrive", "--all", "--dry-run", "--json"]).stdout)
    assert dry["dry_run"] and dry["count"] == 1
    assert queue.stats().dead == 1
    failed = runner.invoke(app, ["dlq", "fail", listed[0]["message_id"], "--json", "--yes"])
    assert json.loads(failed.stdout)["results"][0]["action"] == "removed_poison"  # nothing to report
    assert queue.stats().dead == 0

    stuck = json.loads(runner.invoke(app, ["tasks", "stuck", "--json"]).stdout)["tasks"]
    assert [(r["task_id"], r["stuck_because"]) for r in stuck] == [
        ("t-late", "past deadline, no outcome"),
        ("t-done", "outcome not reported"),
    ]
    shown = json.loads(runner.invoke(app, ["tasks", "show", "t-done", "--json"]).stdout)
    assert shown["task"]["outcome"]["status"] == "done"
    missing = runner.invoke(app, ["tasks", "show", "nope", "--json"])
    assert missing.exit_code == 1 and json.loads(missing.stdout)["ok"] is False


def test_a_bad_setting_fails_with_one_line_naming_the_variable(tmp_path):
    env = {**_env(tmp_path), "RELAY_VISIBILITY_TIMEOUT_S": "soon", "RELAY_QUEUE": "sqlite:///x.db"}
    done = subprocess.run([*CLI, "dlq", "list"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert "RELAY_VISIBILITY_TIMEOUT_S" in done.stderr and "Traceback" not in done.stderr


def test_emulator_command_serves_the_runninghub_api(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*CLI, "emulator", "runninghub", "--port", str(port)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/task/openapi/outputs", json={"apiKey": "wrong", "taskId": "1"}, timeout=1
                ).json()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert answer["code"] == 802
    finally:
        proc.terminate()
        proc.wait(10)
