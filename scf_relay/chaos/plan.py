"""What a chaos run uploads, and what each task must end as.

Every input carries ``chaos:<task id>`` in its bytes, so the vendor's record of an upload names the task it
belongs to without trusting anything of ours. Kinds are drawn with a seeded RNG from :data:`MIX`.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from vendors.emulator.media import make_jpeg

#: pipelines of the "ok" kinds, in turn
OK_PIPELINES = ("model_pose12", "promo_poster", "video_tryon")
#: the pipeline whose deadline is short enough for a never-finishing vendor job to time out within a run
QUICK_PIPELINE = "quick_timeout"


class Kind(str, enum.Enum):
    OK = "ok"  # must be reported done, with exactly its files under output/
    VENDOR_FAILS = "vendor_fails"  # the vendor fails the job: failed 生成失败
    BLOCKED = "blocked"  # a result carries the moderation marker: failed 内容违规, nothing under output/
    NEVER_FINISHES = "never_finishes"  # the vendor job runs forever: failed 生成超时 at the deadline
    NOT_AN_IMAGE = "not_an_image"  # the upload is text: failed 输入文件无效, the vendor never sees it


#: kind -> weight of a draw
MIX = {
    Kind.OK: 10,
    Kind.VENDOR_FAILS: 2,
    Kind.BLOCKED: 2,
    Kind.NEVER_FINISHES: 1,
    Kind.NOT_AN_IMAGE: 1,
}
#: the report each kind must end with: (status, errorReason or None)
EXPECTED = {
    Kind.OK: ("done", None),
    Kind.VENDOR_FAILS: ("failed", "生成失败"),
    Kind.BLOCKED: ("failed", "内容违规"),
    Kind.NEVER_FINISHES: ("failed", "生成超时"),
    Kind.NOT_AN_IMAGE: ("failed", "输入文件无效"),
}
_MARKERS = {
    Kind.VENDOR_FAILS: b"emulate:fail",
    Kind.BLOCKED: b"emulate:block",
    Kind.NEVER_FINISHES: b"emulate:never",
}


@dataclass(frozen=True)
class PlannedTask:
    task_id: str
    user_id: str
    pipeline: str
    kind: Kind
    payload: bytes

    @property
    def expected(self) -> tuple[str, str | None]:
        return EXPECTED[self.kind]


def tag(task_id: str) -> bytes:
    return f"chaos:{task_id};".encode()


def build_plan(tasks: int, seed: int, run_id: str) -> list[PlannedTask]:
    """``tasks`` planned uploads; the same ``seed`` gives the same kinds and pipelines."""
    rng = random.Random(seed)
    kinds, weights = zip(*MIX.items(), strict=True)
    plan = []
    for i in range(tasks):
        kind = rng.choices(kinds, weights)[0]
        task_id = f"chaos-{run_id}-{i:04d}"
        if kind is Kind.NEVER_FINISHES:
            pipeline = QUICK_PIPELINE
        else:
            pipeline = OK_PIPELINES[i % len(OK_PIPELINES)]
        if kind is Kind.NOT_AN_IMAGE:
            payload = b"this upload is text, not an image " + tag(task_id)
        else:
            payload = make_jpeg(seed=i, marker=tag(task_id) + _MARKERS.get(kind, b""))
        plan.append(PlannedTask(task_id, f"seller-{i % 7 + 1}", pipeline, kind, payload))
    return plan


def task_of_payload(content: bytes) -> str | None:
    """The task id an uploaded input names, from its ``chaos:<id>;`` tag."""
    start = content.find(b"chaos:")
    if start < 0:
        return None
    end = content.find(b";", start)
    return content[start + 6 : end].decode("ascii", "replace") if end > start else None
