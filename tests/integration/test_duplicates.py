"""Duplicate and redelivered messages of every kind are absorbed by the ledger (docs/invariants.md 1, 2)."""

from __future__ import annotations

from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack
from tests.integration.faults import CrashBeforeDeleteQueue, DuplicatingQueue
from tests.integration.flow_helpers import assert_one_verified_report, files_under
from vendors.emulator.media import make_jpeg


def test_every_message_sent_twice_still_gives_one_submission_and_one_report(tmp_path, relay_home):
    with LocalStack(tmp_path / "home", clock=VirtualClock()) as stack:
        stack.svc.queue = DuplicatingQueue(stack.svc.queue)
        tasks = {"d-pose": "model_pose12", "d-video": "video_tryon", "d-fail": "promo_poster"}
        for task_id, pipeline in tasks.items():
            marker = b"emulate:fail" if task_id == "d-fail" else b""
            stack.deliver(stack.upload(task_id, "u1", pipeline, make_jpeg(1, marker=marker)), times=2)
        assert stack.run_until_terminal(timeout_s=60)
        for task_id in tasks:
            assert_one_verified_report(stack, task_id)
        assert len(stack.emulator.tasks) == len(tasks)
        assert len(files_under(stack.bucket_dir, "output/u1/d-pose")) == 12
        assert files_under(stack.bucket_dir, "output/u1/d-fail") == []


def test_redelivery_after_a_crash_before_delete_is_dropped_as_stale(tmp_path, relay_home):
    env = {"RELAY_VISIBILITY_TIMEOUT_S": "5"}
    with LocalStack(tmp_path / "home", clock=VirtualClock(), env=env) as stack:
        crashy = CrashBeforeDeleteQueue(stack.svc.queue)
        stack.svc.queue = crashy
        stack.deliver(stack.upload("r-poster", "u2", "promo_poster", make_jpeg(2)))
        assert stack.run_until_terminal(timeout_s=60)
        assert crashy.lost_deletes >= 2  # submit, poll (COLLECT, AUDIT and REPORT join its hop): each came back
        assert assert_one_verified_report(stack, "r-poster")["status"] == "done"
        assert len(stack.emulator.tasks) == 1
        # the copies whose delete was lost come back after their visibility timeout and are dropped as stale
        for _ in range(200):  # virtual seconds: several visibility timeouts
            if not crashy.stats().pending:
                break
            stack.tick()
            stack.clock.advance(1.0)
        assert crashy.stats().pending == 0 and crashy.stats().dead == 0
        assert len(stack.receiver.by_task()["r-poster"]) == 1
