"""Shared fixtures.

``redis_url``: the real redis-server on 127.0.0.1:6379 (DB 15) under a key prefix unique to the test, removed
afterwards, so parallel runs never see each other's keys. A Redis that does not answer fails the test
(it is a required service here, never a silent skip).
"""

from __future__ import annotations

import os
import uuid

import pytest

REDIS_BASE = os.environ.get("RELAY_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url():
    redis = pytest.importorskip("redis")
    prefix = f"relaytest-{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_BASE)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:  # pragma: no cover - CI starts redis
        pytest.fail(f"redis-server is not answering at {REDIS_BASE}: {exc} (start it: see .ci/run)")
    yield f"{REDIS_BASE}?prefix={prefix}"
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def relay_home(tmp_path, monkeypatch):
    """An empty embedded home: RELAY_HOME points at a temp dir; no other RELAY_* leaks in from the shell."""
    for name in list(os.environ):
        if name.startswith(("RELAY_", "RUNNINGHUB_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELAY_HOME", str(tmp_path / "relay"))
    return tmp_path / "relay"


@pytest.fixture(autouse=True)
def relay_logs_reach_caplog():
    """``relay_core.logs.setup`` (run by every entry on first use) stops the ``relay`` loggers at their own JSON
    handler. Set up here first (a later call leaves the handlers alone), they also propagate within a test, so
    ``caplog`` sees them whichever test ran first in the process."""
    import logging

    from relay_core import logs

    logs.setup()
    relay = logging.getLogger("relay")
    relay.propagate = True
    yield
    relay.propagate = False
