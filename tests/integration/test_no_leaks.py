"""Invariant 6: api keys, the callback secret and vendor result URLs never reach logs, reports or dead letters."""

from __future__ import annotations

import logging

from relay_core.logs import JsonFormatter
from scf_relay.demo.clock import VirtualClock
from scf_relay.demo.stack import LocalStack
from vendors.emulator.media import make_jpeg


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("relay.vendor.emulator"):  # the vendor's own log, not ours
            self.lines.append(self.format(record))


def test_secrets_and_vendor_urls_stay_inside(tmp_path, relay_home):
    handler = _Lines()
    relay = logging.getLogger("relay")
    relay.addHandler(handler)
    old_level = relay.level
    relay.setLevel(logging.DEBUG)
    try:
        env = {"RELAY_LOG_LEVEL": "DEBUG", "RUNNINGHUB_API_KEY": "relay-demo-key"}
        with LocalStack(tmp_path / "home", clock=VirtualClock(), env=env, secret="callback-secret-xyz") as stack:
            stack.deliver(stack.upload("leak-ok", "u1", "model_pose12", make_jpeg(1)))
            stack.deliver(stack.upload("leak-block", "u1", "promo_poster", make_jpeg(2, marker=b"emulate:block")))
            stack.deliver(stack.upload("leak-fail", "u1", "video_tryon", make_jpeg(3, marker=b"emulate:fail")))
            assert stack.run_until_terminal(timeout_s=60)
            vendor_base = stack.emulator.base_url
            reports = [r.raw.decode() for rs in stack.receiver.by_task().values() for r in rs]
            letters = [d.reason + d.body for d in stack.svc.queue.dead_letters()]
    finally:
        relay.removeHandler(handler)
        relay.setLevel(old_level)
    assert len(reports) == 3 and any('"status":"done"' in r for r in reports)
    assert any("result staged" in line for line in handler.lines)  # the logs were captured at all
    for text in handler.lines + reports + letters:
        assert "relay-demo-key" not in text
        assert "callback-secret-xyz" not in text
        assert "/files/" not in text, text  # the emulator's result URLs
    for text in reports:
        assert vendor_base not in text and "http" not in text
