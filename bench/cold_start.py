"""Cold start of the two SCF entry points: import time and peak memory, in fresh interpreters.

    python -m bench.cold_start [--runs 5] [--json]

Entries: ``producer_shim.index`` (import), its first event (one COS upload, tests/fixtures/cos_events/real_put.json,
sent to the embedded queue: the whole cold start of the shim, so work moved from the import to the first call
still shows), ``consumer.index`` (import), and ``consumer.index.services()`` (the consumer handler's first-call
setup) on the embedded configuration (SQLite queue and ledger, local store and
auditor, a fresh ``RELAY_HOME`` per run) and on the cloud one (COS, CMQ, Redis ledger, Tencent auditor: built
without connecting anywhere). Each is run as ``python -c "<code>"`` ``--runs`` times; the
median wall time and peak RSS (``ru_maxrss`` of the child, from ``os.wait4``) are reported as measured and
over the same script's baseline, ``python -c pass``. The time over the baseline is the median of paired runs
(a baseline run right before each run of the entry, their difference), so that a slow spell of a shared machine
does not fall on one side only; the baseline's own row is the median of separate runs.

Two modes:

* ``pyc``: the source tree with its ``__pycache__`` (written by an uncounted warm-up run);
* ``no_pyc``: what SCF does with a package shipped without ``.pyc`` in its read-only code directory
  (docs/platform.md §1): a fresh copy of our packages *and of the third-party packages they load*, without
  ``__pycache__``, run with ``PYTHONDONTWRITEBYTECODE=1``, so every run compiles them again. The standard
  library keeps its ``.pyc``, as the runtime's does.

Probe runs (the entry's code between two clock reads, ``--runs`` of them) give the in-process times of the
import and of the setup (medians) and which heavy modules were loaded (``qcloud_cos``, ``tencentcloud``,
``redis``, ``httpx``, ``pydantic``; every third-party package in the JSON). Results go to
``bench/results/cold_start.json``; ``--json`` prints that JSON instead of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = RESULTS_DIR / "cold_start.json"
OUR_PACKAGES = (
    "relay_core", "tencent_plumbing", "jobqueue", "objectstore", "vendors", "moderation", "consumer", "producer_shim"
)
HEAVY = ("qcloud_cos", "tencentcloud", "redis", "httpx", "pydantic")
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"]).resolve()


@dataclass(frozen=True)
class Entry:
    name: str
    imports: str  # the code timed as the import
    setup: str = ""  # the code timed after it (first-call setup)
    env: tuple[tuple[str, str], ...] = ()  # configuration on top of the embedded one

    @property
    def code(self) -> str:
        return "\n".join(filter(None, [self.imports, self.setup]))


# The cloud configuration (docs/deploy.md); building the services opens no connection (port 9 answers nothing).
CLOUD = (
    ("RELAY_STORE", "cos://relay-1250000000?region=ap-guangzhou"),
    ("RELAY_QUEUE", "cmq://relay_jobs?region=gz&dlq=relay_dead"),
    ("RELAY_LEDGER", "redis://127.0.0.1:9/0?prefix=relay-bench"),
    ("RELAY_AUDITOR", "tencent?region=ap-guangzhou&biz_type=bench_policy"),
    ("TENCENTCLOUD_SECRETID", "AKIDbenchonly"),
    ("TENCENTCLOUD_SECRETKEY", "bench-only"),
)
BASELINE = Entry("python -c pass", "pass")
COS_EVENT = json.loads((ROOT / "tests" / "fixtures" / "cos_events" / "real_put.json").read_text(encoding="utf-8"))
ENTRIES = (
    Entry("producer_shim.index", "import producer_shim.index"),
    Entry(
        "producer_shim first event",
        "import producer_shim.index",
        f"assert len(producer_shim.index.main_handler({COS_EVENT!r}, {{}})['enqueued']) == 1",
    ),
    Entry("consumer.index", "import consumer.index"),
    Entry("consumer.index.services()", "import consumer.index", "consumer.index.services()"),
    Entry("consumer.index.services() cloud", "import consumer.index", "consumer.index.services()", CLOUD),
)

# What one run loaded. Only ``sys`` and ``time`` (built in) are imported before the entry; json after it.
PROBE = """\
import sys, time
_t0 = time.perf_counter()
{imports}
_t1 = time.perf_counter()
{setup}
_t2 = time.perf_counter()
_site = {site!r}
_third = sorted({{n.partition(".")[0] for n, m in list(sys.modules.items())
                 if (getattr(m, "__file__", None) or "").startswith(_site)}})
import json
print(json.dumps({{
    "import_ms": (_t1 - _t0) * 1000, "setup_ms": (_t2 - _t1) * 1000,
    "heavy": sorted(h for h in {heavy!r} if h in sys.modules),
    "third_party": _third, "modules": len(sys.modules),
    "our_code_from": getattr(sys.modules.get("{first}"), "__file__", None),
}}))
"""


# -- one child process --------------------------------------------------------------------------
def _environment(source_root: Path, home: Path, compiled: bool) -> dict[str, str]:
    """A clean environment: no RELAY_*/RUNNINGHUB_*/TENCENTCLOUD_*/PYTHON* from the shell; the embedded setup."""
    inherited = ("RELAY_", "RUNNINGHUB_", "TENCENTCLOUD_", "PYTHON")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(
        PYTHONPATH=str(source_root),
        RELAY_HOME=str(home),
        RELAY_BACKEND_URL="http://127.0.0.1:9",  # never contacted: the setup opens no connection to it
        RELAY_CALLBACK_SECRET="bench-secret",
        RUNNINGHUB_API_KEY="bench-key",
        RELAY_LOG_LEVEL="WARNING",
    )
    if not compiled:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(entry: Entry, code: str, source_root: Path, compiled: bool) -> tuple[float, float, str]:
    """(wall ms, peak RSS MiB, stdout) of ``python -c code`` from ``source_root``, with a fresh RELAY_HOME."""
    with tempfile.TemporaryDirectory(prefix="relay-cold-") as scratch:
        home, out_path, err_path = Path(scratch) / "home", Path(scratch) / "out", Path(scratch) / "err"
        env = {**_environment(source_root, home, compiled), **dict(entry.env)}
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = time.perf_counter()
            child = subprocess.Popen([sys.executable, "-c", code], cwd=source_root, env=env, stdout=out, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)  # the rusage of this child alone
            wall_ms = (time.perf_counter() - started) * 1000
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"`python -c {code!r}` failed:\n{err_path.read_text(errors='replace')[-2000:]}")
        return wall_ms, usage.ru_maxrss / 1024, out_path.read_text()


def measure(entry: Entry, source_root: Path, compiled: bool, runs: int, *, paired: bool = False) -> dict[str, float]:
    """Median wall time and peak RSS of ``python -c <entry>`` itself (nothing added to its code). ``paired``: each
    run comes right after a run of the baseline, and ``wall_ms_over_baseline`` is the median of the pairs'
    differences, so a slow spell of a shared machine weighs on both sides of a pair instead of on one side only."""
    walls, rss, over = [], [], []
    for _ in range(runs):
        base_ms = run_once(BASELINE, BASELINE.code, source_root, compiled)[0] if paired else 0.0
        wall_ms, peak_mb, _ = run_once(entry, entry.code, source_root, compiled)
        walls.append(wall_ms)
        rss.append(peak_mb)
        over.append(wall_ms - base_ms)
    result = {"wall_ms": round(statistics.median(walls), 1), "peak_rss_mb": round(statistics.median(rss), 1)}
    if paired:
        result["wall_ms_over_baseline"] = round(statistics.median(over), 1)
    return result


def probe(entry: Entry, source_root: Path, compiled: bool, runs: int) -> dict[str, Any]:
    """In-process import and setup times (medians of ``runs``) and what the entry loaded (from the last run)."""
    first = entry.imports.split()[-1]
    code = PROBE.format(imports=entry.imports, setup=entry.setup, site=str(SITE_PACKAGES), heavy=HEAVY, first=first)
    found = [json.loads(run_once(entry, code, source_root, compiled)[2]) for _ in range(runs)]
    return {
        **found[-1],
        "import_ms": round(statistics.median(f["import_ms"] for f in found), 1),
        "setup_ms": round(statistics.median(f["setup_ms"] for f in found), 1),
    }


# -- the two modes ------------------------------------------------------------------------------
def fresh_copy(target: Path, third_party: set[str]) -> Path:
    """Our packages and ``third_party`` top-level packages/modules copied into ``target``, no __pycache__."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    sources = [ROOT / name for name in OUR_PACKAGES]
    for name in sorted(third_party):
        package, module = SITE_PACKAGES / name, SITE_PACKAGES / f"{name}.py"
        sources.append(package if package.is_dir() else module)
    for source in sources:
        if source.is_dir():
            shutil.copytree(source, target / source.name, ignore=skip)
        elif source.exists():
            shutil.copy2(source, target / source.name)
    return target


def run_mode(source_root: Path, compiled: bool, runs: int) -> dict[str, Any]:
    baseline = {**measure(BASELINE, source_root, compiled, runs), **probe(BASELINE, source_root, compiled, 1)}
    entries = {}
    for entry in ENTRIES:
        if compiled:
            run_once(entry, entry.code, source_root, compiled)  # warm-up: writes the .pyc files
        found = probe(entry, source_root, compiled, runs)
        timed = measure(entry, source_root, compiled, runs, paired=True)
        entries[entry.name] = {
            **timed,
            "rss_mb_over_baseline": round(timed["peak_rss_mb"] - baseline["peak_rss_mb"], 1),
            **found,
        }
    return {"source": str(source_root), "baseline": baseline, "entries": entries}


def compare(pyc: dict[str, Any], no_pyc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """How many times the cost over the baseline grows without .pyc."""
    ratios = {}
    for name, with_pyc in pyc["entries"].items():
        without = no_pyc["entries"][name]
        ratios[name] = {
            key: round(without[key] / with_pyc[key], 2) if with_pyc[key] > 0 else None
            for key in ("wall_ms_over_baseline", "rss_mb_over_baseline")
        }
    return ratios


def table(report: dict[str, Any]) -> str:
    lines = [f"cold start, median of {report['runs']} fresh interpreters (python {report['python']})"]
    for mode in ("pyc", "no_pyc"):
        data = report["modes"][mode]
        base = data["baseline"]
        lines.append(f"\n[{mode}] baseline `python -c pass`: {base['wall_ms']:.0f} ms, {base['peak_rss_mb']:.1f} MiB")
        lines.append(
            f"{'entry':<34}{'wall ms':>8}{'+base':>7}{'RSS MiB':>8}{'+base':>7}{'import':>7}{'setup':>6}  heavy"
        )
        for name, row in data["entries"].items():
            lines.append(
                f"{name:<34}{row['wall_ms']:>8.0f}{row['wall_ms_over_baseline']:>7.0f}{row['peak_rss_mb']:>8.1f}"
                f"{row['rss_mb_over_baseline']:>7.1f}{row['import_ms']:>7.0f}{row['setup_ms']:>6.0f}  "
                f"{', '.join(row['heavy']) or '-'}"
            )
    lines.append("\nno_pyc / pyc (cost over the baseline):")
    for name, ratio in report["no_pyc_vs_pyc"].items():
        lines.append(f"  {name:<34} wall x{ratio['wall_ms_over_baseline']}  RSS x{ratio['rss_mb_over_baseline']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description="cold start of the entries")
    parser.add_argument("--runs", type=int, default=5, help="fresh interpreters per entry and mode (default 5)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    args = parser.parse_args(argv)

    pyc = run_mode(ROOT, compiled=True, runs=args.runs)
    # what the entries load from site-packages, minus what every interpreter loads there at startup (.pth hooks)
    third_party = {name for row in pyc["entries"].values() for name in row["third_party"]}
    third_party -= set(pyc["baseline"]["third_party"])
    with tempfile.TemporaryDirectory(prefix="relay-nopyc-") as folder:
        no_pyc = run_mode(fresh_copy(Path(folder), third_party), compiled=False, runs=args.runs)
        leaked = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("__pycache__"))
    if leaked:
        raise RuntimeError(f"the no-pyc copy grew __pycache__ folders: {leaked[:5]}")
    report = {
        "benchmark": "cold_start",
        "runs": args.runs,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "modes": {"pyc": pyc, "no_pyc": no_pyc},
        "no_pyc_vs_pyc": compare(pyc, no_pyc),
    }
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else table(report))
    return report


if __name__ == "__main__":
    main()
