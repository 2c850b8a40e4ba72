"""Charts of the recorded results (matplotlib, Agg): ``python -m bench.charts``.

* ``peers.png`` from ``peers.json``: tasks/s of each system per scenario, and every metric as a ratio
  scf-relay / peer (1.0 = even; for tasks/s higher is better for scf-relay, for the others lower).
* ``webhook_latency.png`` from ``webhook_latency.json``: detection latency (p50, p95) against status queries per
  task for polling, the learned estimate and the webhook.

Missing JSONs are skipped; without matplotlib (the ``bench`` extra) it says so and exits 0.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from bench import RESULTS_DIR


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_peers(report: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    medians: dict[str, dict[str, float]] = report["medians"]
    systems = list(medians)
    throughput = sorted({m for values in medians.values() for m in values if m.startswith("tasks_per_s ")})
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [1, 1.6]})
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        xs = [j + i * width for j in range(len(throughput))]
        left.bar(xs, [medians[system].get(m, 0) for m in throughput], width, label=system)
    left.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(throughput))])
    left.set_xticklabels([m.removeprefix("tasks_per_s ") for m in throughput])
    left.set_ylabel("tasks/s (median)")
    left.set_title("throughput, 2 processes × 4 threads")
    left.legend()

    ratios: dict[str, dict[str, float]] = report["ratios"]
    metrics = sorted({m for values in ratios.values() for m in values})
    height = 0.8 / max(1, len(ratios))
    for i, (name, values) in enumerate(ratios.items()):
        ys = [j + i * height for j in range(len(metrics))]
        right.barh(ys, [values.get(m, 0) for m in metrics], height, label=name)
    right.set_xscale("log")  # ratios span 0.5x to 50x
    right.axvline(1.0, color="black", linewidth=0.8)
    right.set_yticks([j + height * (len(ratios) - 1) / 2 for j in range(len(metrics))])
    right.set_yticklabels(metrics, fontsize=8)
    right.set_xlabel("ratio, log scale (1.0 = even)")
    right.set_title("scf-relay / peer, every metric")
    right.legend()
    when = report.get("machine", {}).get("date", "")
    fig.suptitle(f"scf-relay vs Dramatiq vs Celery — {report.get('machine', {}).get('cores')} cores, {when}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_webhook(result: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for row in result["modes"]:
        x = row["queries_per_task"]
        ax.plot([x, x], [row["latency_p50_s"], row["latency_p95_s"]], marker="o", label=row["mode"])
        ax.annotate(row["mode"], (x, row["latency_p95_s"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("status queries per task")
    ax.set_ylabel("detection latency, vendor done → report (s): p50 to p95")
    ax.set_title(f"webhook vs polling, {result.get('job_s')} s jobs")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    if importlib.util.find_spec("matplotlib") is None:
        print("no charts: matplotlib is not installed (pip install -e '.[bench]')")
        return 0
    for name, draw in (("peers", draw_peers), ("webhook_latency", draw_webhook)):
        source = RESULTS_DIR / f"{name}.json"
        if not source.exists():
            print(f"no {source.name}: skipped")
            continue
        draw(json.loads(source.read_text(encoding="utf-8")), RESULTS_DIR / f"{name}.png")
        print(f"chart: {RESULTS_DIR / f'{name}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
