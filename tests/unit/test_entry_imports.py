"""What the SCF entries load, pinned structurally (cold start, issue 11): each check runs in a fresh interpreter.

The shim loads no validation or settings framework (pydantic, pydantic-settings) nor asyncio, at import or on
its first event, nor modules of ours it has no use for (the store protocol, task outcomes); the consumer loads no
pydantic either, its import no HTTP, Redis, COS or Tencent SDK, and its embedded services only the HTTP stack
they use. A watched name is a top-level package (``httpx``) or one module (``relay_core.domain``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EVENT = REPO / "tests" / "fixtures" / "cos_events" / "real_put.json"

SDKS = ("httpx", "httpcore", "anyio", "h11", "redis", "qcloud_cos", "tencentcloud", "backoff")
# the validation framework the core no longer uses (its import and first model cost ~100 ms: bench/README.md)
VALIDATION = ("pydantic", "pydantic_core")
# pydantic-settings and what it drags in (asyncio for its CLI source, dotenv); difflib only explains a typo
SETTINGS_EXTRAS = ("pydantic_settings", "asyncio", "dotenv", "difflib")
# ours, but not the shim's: it checks each upload's key without the store protocol (objectstore.keys), and
# raises our errors without loading the outcomes (relay_core.reasons); each costs its cold start ~1-2 ms
NOT_THE_SHIMS = ("objectstore.base", "relay_core.domain")

_PROBE = """
import json, sys
watched = set(json.loads(sys.argv[1]))
loaded = lambda: sorted(({{m.split(".")[0] for m in sys.modules}} | set(sys.modules)) & watched)
{first}
after_import = loaded()
{then}
print(json.dumps({{"after_import": after_import, "after_call": loaded()}}))
"""


def _loaded(tmp_path: Path, first: str, then: str, watched: tuple[str, ...], **env: str) -> dict[str, list[str]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "RUNNINGHUB_", "TENCENTCLOUD_"))}
    environ.update(RELAY_HOME=str(tmp_path / "relay"), RELAY_LOG_LEVEL="WARNING", **env)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(first=first, then=then), json.dumps(watched)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_shim_loads_no_validation_framework_sdk_or_unneeded_module_at_import_or_on_its_first_event(tmp_path):
    call = f"summary = main_handler(json.load(open({str(EVENT)!r})), {{}}); assert len(summary['enqueued']) == 1"
    watched = SDKS + VALIDATION + SETTINGS_EXTRAS + NOT_THE_SHIMS
    result = _loaded(tmp_path, "from producer_shim.index import main_handler", call, watched)
    assert result == {"after_import": [], "after_call": []}


def test_the_consumer_loads_no_pydantic_its_import_no_sdk_and_its_embedded_services_only_http(tmp_path):
    result = _loaded(
        tmp_path,
        "import consumer.index",
        "consumer.index.services()",
        SDKS + VALIDATION + SETTINGS_EXTRAS,
        RELAY_BACKEND_URL="http://127.0.0.1:9",
        RELAY_CALLBACK_SECRET="entry-imports-secret",
        RUNNINGHUB_API_KEY="entry-imports-key",
    )
    assert result["after_import"] == []
    # the vendor client, the reporter and the fetcher speak HTTP (httpx, with backoff in the vendor client);
    # the embedded queue, ledger, store and auditor need no SDK
    assert {"httpx", "backoff"} <= set(result["after_call"])
    assert not {"redis", "qcloud_cos", "tencentcloud", "pydantic_settings", "dotenv"} & set(result["after_call"])
    assert not {*VALIDATION} & set(result["after_call"])
