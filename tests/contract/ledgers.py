"""Every Ledger backend the contract suite runs against: name → factory(tmp_path, redis_url).

Calling a factory twice with the same arguments opens the same stored state (the suite checks that state
survives closing and reopening). ``fakeredis`` is listed only when it can run the Lua scripts (it needs
``lupa``); the real ``redis`` entry always runs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from jobqueue.ledger.base import Ledger

LedgerFactory = Callable[[Path, "str | None"], Ledger]


def _sqlite(tmp_path: Path, redis_url: str | None) -> Ledger:
    from jobqueue.ledger.sqlite import SqliteLedger

    return SqliteLedger.from_url(f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}")


def _redis(tmp_path: Path, redis_url: str | None) -> Ledger:
    from jobqueue.ledger.redis import RedisLedger

    assert redis_url, "the redis ledger needs the redis_url fixture"
    return RedisLedger.from_url(redis_url)


_fake_servers: dict[Path, object] = {}


def _fakeredis(tmp_path: Path, redis_url: str | None) -> Ledger:
    import fakeredis

    from jobqueue.ledger.redis import RedisLedger

    server = _fake_servers.setdefault(tmp_path, fakeredis.FakeServer())
    return RedisLedger(fakeredis.FakeRedis(server=server, decode_responses=True), prefix="fake")


LEDGERS: dict[str, LedgerFactory] = {"sqlite": _sqlite, "redis": _redis}
if importlib.util.find_spec("fakeredis") and importlib.util.find_spec("lupa"):
    LEDGERS["fakeredis"] = _fakeredis

NEEDS_REDIS = frozenset({"redis"})
