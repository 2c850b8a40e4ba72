"""The chaos verdict can fail: each breach is found from evidence alone."""

from __future__ import annotations

import pytest

from scf_relay.chaos.plan import Kind, PlannedTask, build_plan, task_of_payload
from scf_relay.chaos.verdict import Evidence, VendorJob, judge

OK = PlannedTask("t-ok", "u1", "promo_poster", Kind.OK, b"")
BLOCKED = PlannedTask("t-bl", "u1", "model_pose12", Kind.BLOCKED, b"")
DONE = {"taskId": "t-ok", "status": "done", "resultUrls": ["cos://output/u1/t-ok/poster_01.png"]}
BLOCK_FAIL = {"taskId": "t-bl", "status": "failed", "errorReason": "内容违规"}


def clean() -> Evidence:
    return Evidence(
        reports={"t-ok": [DONE], "t-bl": [BLOCK_FAIL]},
        submissions={"t-ok": 1, "t-bl": 1},
        outputs={"t-ok": {"poster_01.png": False}},
    )


def test_a_clean_run_passes_and_counts_statuses():
    verdict = judge([OK, BLOCKED], clean())
    assert verdict.ok, verdict.as_dict()
    assert verdict.reports_by_status == {"done": 1, "failed 内容违规": 1}


@pytest.mark.parametrize(
    ("breach", "spoil"),
    [
        ("lost", lambda e: e.reports.pop("t-bl")),
        ("conflicting", lambda e: e.reports["t-bl"].append({**BLOCK_FAIL, "errorReason": "生成超时"})),
        ("double_submitted", lambda e: e.submissions.__setitem__("t-ok", 2)),
        ("blocked_published", lambda e: e.outputs.__setitem__("t-bl", {"frame_12.jpg": True})),
        ("failed_with_files", lambda e: e.outputs.__setitem__("t-bl", {"frame_01.jpg": False})),
        ("done_mismatch", lambda e: e.outputs.__setitem__("t-ok", {"poster_01.png": False, "x.png": False})),
        ("impossible_done", lambda e: e.reports.__setitem__("t-bl", [{"taskId": "t-bl", "status": "done"}])),
        ("staging_left", lambda e: e.staging.append("staging/u1/t-ok/poster_01.png")),
        ("unread_vendor_job", lambda e: e.vendor_jobs.__setitem__("t-ok", [VendorJob("v1", True, asked=False)])),
    ],
)
def test_every_breach_is_found(breach, spoil):
    evidence = clean()
    spoil(evidence)
    verdict = judge([OK, BLOCKED], evidence)
    assert not verdict.ok and verdict.breaches[breach], verdict.as_dict()


def test_a_dead_lettered_task_is_accounted_for_and_a_repeat_is_not_a_conflict():
    evidence = clean()
    evidence.reports.pop("t-bl")
    evidence.dead_letters["t-bl"] = ["submit: submit ambiguous: the vendor may have started..."]
    evidence.reports["t-ok"].append(dict(DONE))
    verdict = judge([OK, BLOCKED], evidence)
    assert verdict.ok and verdict.repeated_reports == 1
    assert verdict.dead_letters_by_reason == {"submit ambiguous": 1}


def test_plans_are_reproducible_and_payloads_name_their_task():
    first, second = build_plan(40, seed=3, run_id="r"), build_plan(40, seed=3, run_id="r")
    assert [t.kind for t in first] == [t.kind for t in second]
    assert {t.kind for t in first} >= {Kind.OK, Kind.BLOCKED}
    assert all(task_of_payload(t.payload) == t.task_id for t in first)


def test_ambiguous_dead_letters_are_split_by_what_the_vendor_knew():
    evidence = clean()
    evidence.reports.pop("t-bl")
    evidence.dead_letters["t-bl"] = ["submit: submit ambiguous: ... no webhook named a job before the deadline"]
    verdict = judge([OK, BLOCKED], evidence)
    assert verdict.ok and verdict.ambiguous == {"job_called_back": 0, "job_never_called_back": 0, "no_job": 1}
    evidence.vendor_jobs["t-bl"] = [VendorJob("v2", called_back=False, asked=False)]
    assert judge([OK, BLOCKED], evidence).ambiguous["job_never_called_back"] == 1
    evidence.vendor_jobs["t-bl"] = [VendorJob("v2", called_back=True, asked=False)]
    verdict = judge([OK, BLOCKED], evidence)
    assert not verdict.ok and verdict.breaches["ambiguous_despite_webhook"] == ["t-bl"]
