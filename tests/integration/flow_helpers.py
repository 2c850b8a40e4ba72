"""Helpers for the end-to-end tests on the embedded default (SQLite, local bucket, emulator, receiver)."""

from __future__ import annotations

from pathlib import Path

from relay_core.filetypes import sniff
from relay_core.pipelines import PACKAGED

REPORT_KEYS_DONE = {"taskId", "status", "resultUrls", "vendorTaskId"}
REPORT_KEYS_FAILED = {"taskId", "status", "errorReason", "vendorTaskId"}


def pipelines_with_quick_timeout(tmp_path: Path, deadline_s: int = 4) -> Path:
    """The packaged pipelines plus ``quick_timeout``: promo_poster's vendor app with a deadline of seconds."""
    text = PACKAGED.read_text(encoding="utf-8")
    start = text.index("[pipelines.promo_poster]")
    end = text.index("[pipelines.video_tryon]")
    quick = text[start:end].replace("[pipelines.promo_poster]", "[pipelines.quick_timeout]")
    quick = quick.replace("deadline_s = 900", f"deadline_s = {deadline_s}")
    quick = quick.replace("first_s = 3, base_s = 2", "first_s = 1, base_s = 1")
    path = tmp_path / "pipelines.toml"
    path.write_text(text + "\n" + quick, encoding="utf-8")
    return path


def files_under(root: Path, prefix: str) -> list[Path]:
    base = root / prefix
    return sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")) if base.exists() else []


def assert_one_verified_report(stack, task_id: str) -> dict:
    reports = stack.receiver.by_task().get(task_id, [])
    assert len(reports) == 1, f"{task_id}: {len(reports)} reports"
    assert reports[0].verified
    body = reports[0].body
    expected = REPORT_KEYS_DONE if body["status"] == "done" else REPORT_KEYS_FAILED
    assert set(body) <= expected and {"taskId", "status"} <= set(body)
    return body


def assert_outputs(stack, user_id: str, task_id: str, names: list[str], kind: str) -> None:
    files = files_under(stack.bucket_dir, f"output/{user_id}/{task_id}")
    assert [f.name for f in files] == names
    for f in files:
        assert sniff(f.read_bytes()[:16]) == kind
