"""The operator commands (dlq, tasks, queue, audit) on SQLite and real Redis, through the typer app."""

from __future__ import annotations

import json
import threading
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

from jobqueue import open_ledger, open_queue
from jobqueue.message import InputObject, JobMessage, Stage, parse
from relay_core.domain import Outcome, Status
from scf_relay.cli.app import app
from scf_relay.cli.dlq_common import letters_table
from scf_relay.operations.letters import LetterView

runner = CliRunner()


@pytest.fixture(params=["sqlite", "redis"])
def backends(request, relay_home, monkeypatch):
    """(queue, ledger) opened from the same settings the CLI reads."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        monkeypatch.setenv("RELAY_QUEUE", url)
        monkeypatch.setenv("RELAY_LEDGER", url)
    monkeypatch.setenv("RELAY_OPERATOR", "night-op")
    from relay_core.settings import load

    settings = load()
    queue, ledger = open_queue(settings.queue_url()), open_ledger(settings.ledger_url())
    yield queue, ledger
    queue.close()
    ledger.close()


def message(
    task: str, stage: Stage = Stage.POLL, *, user: str = "u1", pipeline: str = "promo_poster", **kw
) -> JobMessage:
    now = time.time()
    fields = {"created_at": now - 600, "deadline_at": now + 3600, "vendor_task_id": "v-1", "seq": 2, **kw}
    if stage is Stage.SUBMIT:
        fields.pop("vendor_task_id")
    return JobMessage(
        task_id=task, user_id=user, pipeline=pipeline, stage=stage,
        input=InputObject(bucket="b", key=f"input/{user}/{task}/in.jpg", size=10), **fields,
    )  # fmt: skip


def bury(queue, body: str, reason: str) -> str:
    queue.send(body)
    [got] = [r for r in queue.receive(16, 30) if r.body == body]
    assert queue.dead_letter(got, reason)
    return got.message_id


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def run_json(*args: str, code: int = 0) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_list_filters_prefixes_and_names_its_backends(backends):
    queue, _ = backends
    a = bury(queue, message("t-alpha").dumps(), "poll: runninghub status: 802 wrong key")
    b = bury(queue, message("t-beta", Stage.SUBMIT, pipeline="video_tryon").dumps(), "submit ambiguous: vendor ...")
    c = bury(queue, "not json", "poison: body is not JSON")
    listed = run_json("dlq", "list")
    assert listed["command"] == "dlq list" and listed["ok"] and listed["queue"] and listed["ledger"]
    assert [d["message_id"] for d in listed["letters"]] == [a, b, c]
    assert [d["reason_class"] for d in listed["letters"]] == [
        "vendor rejected our configuration", "ambiguous submit", "poison",
    ]  # fmt: skip
    assert listed["letters"][0]["dead_at_utc"].endswith("Z") and listed["letters"][0]["age_s"] >= 0
    assert [d["message_id"] for d in run_json("dlq", "list", "--stage", "submit")["letters"]] == [b]
    assert [d["message_id"] for d in run_json("dlq", "list", "--reason", "POISON")["letters"]] == [c]
    assert [d["message_id"] for d in run_json("dlq", "list", "--pipeline", "video_tryon")["letters"]] == [b]
    assert [d["message_id"] for d in run_json("dlq", "list", "--task", "t-al")["letters"]] == [a]
    assert run_json("dlq", "list", "--user", "nobody")["count"] == 0
    assert run_json("dlq", "list", "--older-than", "1h")["count"] == 0
    assert run_json("dlq", "list", "--since", "1h")["count"] == 3
    assert run("dlq", "list", "--older-than", "soon").exit_code == 2

    shown = run_json("dlq", "show", a[:10])  # a unique prefix
    assert shown["letter"]["message_id"] == a and shown["message"]["task_id"] == "t-alpha"
    assert any("dlq fail" in c for c in shown["next_commands"])
    missing = run_json("dlq", "show", "zz-no-such", code=1)
    assert missing["ok"] is False and "no dead letter zz-no-such" in missing["error"]
    human = run("dlq", "show", a)
    assert human.exit_code == 0 and "802 wrong key" in human.stdout and "{'" not in human.stdout


def test_an_ambiguous_prefix_is_an_error(backends):
    queue, _ = backends
    ids = [bury(queue, message(f"t-{n}").dumps(), "poll: x") for n in range(20)]  # more than 16: a shared start
    common = next(i[0] for i in ids if sum(j.startswith(i[0]) for j in ids) > 1)
    result = run_json("dlq", "redrive", common, code=1)
    assert "ambiguous" in result["error"]
    unknown = run_json("dlq", "redrive", "nope-nope", code=1)
    assert "no dead letter nope-nope" in unknown["error"]
    assert queue.stats().dead == 20  # nothing moved


def test_redrive_dry_run_predicts_each_letter(backends):
    queue, ledger = backends
    now = time.time()
    late = bury(queue, message("t-late", deadline_at=now - 7200).dumps(), "poll: gave up after 200 attempts: x")
    ledger.claim_submit("t-amb", "tok", 60, now + 3600, now, user_id="u1")
    ledger.mark_ambiguous("t-amb", "tok", now)
    amb = bury(queue, message("t-amb", Stage.SUBMIT).dumps(), "submit ambiguous: the vendor may have started")
    ledger.record_outcome("t-done", Outcome(Status.DONE, ("output/u1/t-done/a.png",)), now, user_id="u1")
    ledger.mark_reported("t-done", now)
    done = bury(queue, message("t-done", Stage.COLLECT).dumps(), "collect: gave up after 6 attempts")
    plan = run_json("dlq", "redrive", "--all", "--dry-run")
    verdicts = {d["message_id"]: (d["verdict"], d["prediction"]) for d in plan["letters"]}
    assert verdicts[late][0] == "times_out" and "生成超时" in verdicts[late][1]
    assert verdicts[amb][0] == "bounces" and "--resubmit" in verdicts[amb][1]
    assert verdicts[done][0] == "dropped"
    assert queue.stats().dead == 3
    again = run_json("dlq", "redrive", "--all", "--dry-run", "--resubmit")
    assert {d["message_id"]: d["verdict"] for d in again["letters"]}[amb] == "resubmits"

    moved = run_json("dlq", "redrive", done, amb, "--resubmit", "--yes")
    assert moved["counts"]["moved"] == 2 and moved["resubmitted_tasks"] == ["t-amb"]
    assert ledger.get("t-amb").submit_state.value == ""
    assert queue.stats().dead == 1
    trail = run_json("audit")["entries"]
    assert trail[0]["command"] == "dlq redrive" and trail[0]["operator"] == "night-op"
    assert sorted(trail[0]["ids"]) == sorted([done, amb]) and trail[0]["result"] == "ok"


def test_redrive_needs_confirmation_for_bulk(backends):
    queue, _ = backends
    bury(queue, message("t-1").dumps(), "poll: x")
    refused = run_json("dlq", "redrive", "--all", code=1)
    assert "--yes" in refused["error"]
    assert run("dlq", "redrive", "--all", input="n\n").exit_code == 1
    assert queue.stats().dead == 1
    assert run("dlq", "redrive", "--all", input="y\n").exit_code == 0
    assert queue.stats().dead == 0


def test_fail_records_the_outcome_with_its_report_and_sends_it(backends):
    queue, ledger = backends
    letter = bury(queue, message("t-give-up").dumps(), "poll: runninghub 802")
    result = run_json("dlq", "fail", letter, "--reason", "生成失败", "--yes")
    assert [r["action"] for r in result["results"]] == ["reported"]
    record = ledger.get("t-give-up")
    assert record.outcome.status is Status.FAILED and record.outcome.error_reason == "生成失败"
    report = parse(record.report_message)
    assert report.stage is Stage.REPORT and report.user_id == "u1" and report.seq == 3
    [sent] = queue.receive(16, 30)
    assert parse(sent.body) == report  # the REPORT hop went out on the normal path
    assert queue.stats().dead == 0
    [entry] = run_json("audit")["entries"]
    assert entry["command"] == "dlq fail" and entry["ids"] == [letter] and entry["counts"]["reported"] == 1


def test_fail_says_when_the_task_already_had_an_outcome(backends):
    queue, ledger = backends
    ledger.record_outcome("t-had", Outcome(Status.DONE, ("output/u1/t-had/a.png",)), time.time(), user_id="u1")
    letter = bury(queue, message("t-had", Stage.REPORT).dumps(), "report: backend rejected the report: 401")
    result = run_json("dlq", "fail", letter, "--yes")
    [row] = result["results"]
    assert row["action"] == "kept_outcome" and row["status"] == "done" and "that outcome is what" in row["text"]
    assert ledger.get("t-had").outcome.status is Status.DONE


def test_fail_refuses_a_running_task_unless_forced(backends):
    queue, ledger = backends
    now = time.time()
    ledger.begin_hop("t-busy", 5, 600, now, "u1")  # a worker holds hop 5 for ten minutes
    letter = bury(queue, message("t-busy", seq=4).dumps(), "poll: duplicate stuck")
    refused = run_json("dlq", "fail", letter, "--yes", code=1)
    assert refused["results"][0]["action"] == "refused" and "--force" in refused["results"][0]["text"]
    assert ledger.get("t-busy").outcome is None and queue.stats().dead == 1
    forced = run_json("dlq", "fail", letter, "--yes", "--force")
    assert forced["results"][0]["action"] == "reported" and ledger.get("t-busy").outcome is not None
    assert parse(ledger.get("t-busy").report_message).seq == 6  # after every hop seen: never stale


def test_tasks_fail_without_a_dead_letter(backends):
    queue, ledger = backends
    now = time.time()
    ledger.claim_submit("t-lost", "tok", 60, now - 10, now - 100, user_id="u7")
    ledger.record_submission("t-lost", "tok", "v-77", now - 90)
    ledger.claim_submit("t-anon", "tok", 60, now - 10, now - 100)
    dry = run_json("tasks", "fail", "t-lost", "--dry-run")
    assert dry["results"][0]["action"] == "reported" and ledger.get("t-lost").outcome is None
    out = run_json("tasks", "fail", "t-lost", "t-anon", "t-none", "--reason", "生成超时", "--yes", code=1)
    actions = {r["target"]: r["action"] for r in out["results"]}
    assert actions == {"t-lost": "reported", "t-anon": "unknown_user", "t-none": "no_task"}
    [sent] = queue.receive(16, 30)
    report = parse(sent.body)
    assert (report.task_id, report.user_id, report.stage) == ("t-lost", "u7", Stage.REPORT)
    assert ledger.get("t-lost").outcome.error_reason == "生成超时"
    assert run_json("tasks", "fail", "t-lost", "--reason", "oops", code=2)["ok"] is False
    shown = run_json("tasks", "show", "t-lost")
    assert shown["task"]["vendor_task_id"] == "v-77" and shown["task"]["outcome"]["status"] == "failed"
    human = run("tasks", "show", "t-lost")
    assert "v-77" in human.stdout and "{'" not in human.stdout


def test_tasks_show_tells_what_finds_the_job_in_the_vendor_console(backends):
    queue, ledger = backends
    now = time.time()
    ledger.claim_submit("t-vj", "tok", 60, now + 3600, now - 100, user_id="u1")
    poll = message("t-vj", pipeline="promo_poster", vendor_task_id="v-9").dumps()
    ledger.record_submission("t-vj", "tok", "v-9", now - 90, poll_message=poll)
    job = run_json("tasks", "show", "t-vj")["vendor_job"]
    assert (job["pipeline"], job["kind"], job["target_id"]) == ("promo_poster", "ai-app", "1912000000000000101")
    assert job["submitted_at_utc"] and job["vendor_task_id"] == "v-9" and job["input_file"] == "in.jpg"
    human = run("tasks", "show", "t-vj").stdout
    assert "app id" in human and "1912000000000000101" in human and "in.jpg" in human
    ledger.claim_submit("t-bare", "tok", 60, now + 3600, now - 100)  # no message known: says so
    bare = run_json("tasks", "show", "t-bare")["vendor_job"]
    assert bare["target_id"] is None and "unknown" in bare["note"]
    bury(queue, message("t-dead", pipeline="model_pose12").dumps(), "poll: runninghub 802")  # no ledger record
    assert run_json("tasks", "show", "t-dead")["vendor_job"]["kind"] == "workflow"


def test_tasks_show_lists_a_tasks_second_vendor_job_and_what_became_of_it(backends):
    _, ledger = backends
    now = time.time()
    ledger.claim_submit("t-two", "a", 60, now + 3600, now - 100, user_id="u1")
    ledger.mark_sending("t-two", "a", now - 99)
    ledger.mark_ambiguous("t-two", "a", now - 98)
    ledger.reset_submit("t-two", now - 50)  # the operator resubmitted: job v-2 ...
    ledger.claim_submit("t-two", "b", 60, now + 3600, now - 49)
    poll = message("t-two", pipeline="promo_poster", vendor_task_id="v-2").dumps()
    ledger.record_submission("t-two", "b", "v-2", now - 48, poll_message=poll)
    ledger.note_webhook("t-two", "v-1", now - 10)  # ... and the first job, v-1, finished first after all
    ledger.mark_vendor_done("t-two", "v-1", now - 9)
    job = run_json("tasks", "show", "t-two")["vendor_job"]
    assert job["vendor_task_id"] == "v-1"
    assert job["other_jobs"] == [{"vendor_task_id": "v-2", "state": "cancelled"}]
    human = run("tasks", "show", "t-two").stdout
    assert "v-2 (cancelled: v-1 finished first)" in " ".join(human.split())


def test_purge_only_with_yes_or_typed_confirmation(backends):
    queue, _ = backends
    bury(queue, "garbage", "poison: body is not JSON")
    keep = bury(queue, message("t-keep").dumps(), "poll: x")
    assert run_json("dlq", "purge", "--reason", "poison", code=1)["ok"] is False
    assert run("dlq", "purge", "--reason", "poison", input="yes\n").exit_code == 1
    assert queue.stats().dead == 2
    assert run("dlq", "purge", "--reason", "poison", input="purge\n").exit_code == 0
    assert [d.message_id for d in queue.dead_letters()] == [keep]
    assert run_json("audit")["entries"][0]["command"] == "dlq purge"


def test_summary_stats_peek_and_stuck(backends):
    queue, ledger = backends
    bury(queue, message("t-1").dumps(), "poll: runninghub 802")
    bury(queue, "x", "poison: body is not JSON")
    queue.send(message("t-ready", Stage.COLLECT).dumps())
    summary = run_json("dlq", "summary")
    classes = {g["group"]: g for g in summary["groups"]["reason_class"]}
    assert classes["poison"]["count"] == 1 and "purge" in classes["poison"]["command"]
    stats = run_json("queue", "stats")
    assert (stats["ready"], stats["dead"]) == (1, 2) and stats["oldest_dead_age"]
    assert stats["oldest_waiting_utc"] and stats["oldest_waiting_age"] != "unknown"
    assert "oldest waiting" in run("queue", "stats").output
    peeked = run_json("queue", "peek")
    assert [m["task_id"] for m in peeked["messages"]] == ["t-ready"] and not peeked["side_effects"]
    assert peeked["messages"][0]["state"] == "ready" and peeked["messages"][0]["receive_count"] == 0
    assert queue.stats().ready == 1  # untouched
    [again] = queue.receive(1, 30)
    assert again.receive_count == 1
    assert run_json("queue", "peek")["count"] == 0  # in flight: not shown, and not taken from its worker
    assert queue.delete(again.receipt)
    ledger.claim_submit("t-late", "tok", 60, deadline_at=time.time() - 7200, now=time.time())
    stuck = run_json("tasks", "stuck", "--older-than", "1h")
    assert [t["task_id"] for t in stuck["tasks"]] == ["t-late"]
    assert run_json("tasks", "stuck", "--older-than", "3h")["count"] == 0


def test_the_list_fits_80_columns_with_long_values():
    now = time.time()
    from jobqueue.queue.base import DeadLetter

    views = [
        LetterView.of(DeadLetter(f"{n:02d}" + "f" * 40, message(f"t-{'x' * 50}-{n}").dumps(), "poll: " + "long " * 60,
                                 now - 3600 * n - 720, 5))
        for n in range(3)
    ]  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(letters_table("dead letters: 3", views, now))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    body = "\n".join(lines)
    assert "01ffffff" in body and "1h12m" in body and "poll: long" in body and "…" in body


def test_concurrent_redrive_and_consume_moves_each_letter_once(redis_url, relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_QUEUE", redis_url)
    monkeypatch.setenv("RELAY_LEDGER", redis_url)
    queue = open_queue(redis_url)
    bodies = [message(f"t-{n}").dumps() for n in range(120)]
    queue.send_batch(bodies)
    for got in iter(lambda: queue.receive(16, 30), []):
        for r in got:
            queue.dead_letter(r, "poll: x")
    assert queue.stats().dead == 120
    consumed: list[str] = []
    stop = threading.Event()

    def consume() -> None:
        worker = open_queue(redis_url)
        while not stop.is_set():
            for r in worker.receive(16, 30):
                consumed.append(r.body)
                worker.delete(r.receipt)

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    results = []
    redrivers = [threading.Thread(target=lambda: results.append(run("dlq", "redrive", "--all", "--yes", "--json")))]
    for t in redrivers:
        t.start()
    for t in redrivers:
        t.join(60)
    deadline = time.time() + 30
    while len(consumed) < 120 and time.time() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    assert sorted(consumed) == sorted(bodies)  # each exactly once
    assert queue.stats().dead == 0 and queue.stats().pending == 0
    assert json.loads(results[0].stdout)["counts"]["moved"] == 120


def test_an_unreachable_backend_is_one_line_and_exit_3(relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_QUEUE", "redis://:s3cret@127.0.0.1:1/0?socket_connect_timeout=1")
    human = run("dlq", "list")
    assert human.exit_code == 3 and "Traceback" not in human.output
    assert "queue unreachable (RELAY_QUEUE=redis://:***@127.0.0.1:1/0" in human.output.replace("\n", "")
    assert "s3cret" not in human.output
    data = run_json("dlq", "summary", code=3)
    assert data["ok"] is False and data["exit_code"] == 3 and "***" in data["queue"]
    monkeypatch.setenv("RELAY_QUEUE", "redis://127.0.0.1:6379/db7")
    assert run("dlq", "list").exit_code == 2
