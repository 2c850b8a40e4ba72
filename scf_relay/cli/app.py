"""``scf-relay``: demo, emulator, receiver, worker, dlq, tasks, queue, audit, infra, package, chaos."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from scf_relay.cli import audit_cmd, chaos, dlq, doctor, infra, package, queue_cmd, tasks
from scf_relay.cli.output import console, emit_json, err_console, fail, table

if TYPE_CHECKING:
    from relay_core.settings import RelaySettings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="scf-relay: COS uploads -> AI vendor -> COS -> backend."
)
emulator_app = typer.Typer(no_args_is_help=True, help="Local emulators of the vendors.")
app.add_typer(emulator_app, name="emulator")
app.add_typer(dlq.app, name="dlq")
app.add_typer(tasks.app, name="tasks")
app.add_typer(queue_cmd.app, name="queue")
app.command("audit")(audit_cmd.audit)
app.add_typer(infra.app, name="infra")
app.command("package")(package.package)
app.command("chaos")(chaos.chaos)
app.command("doctor")(doctor.doctor)
app.add_typer(doctor.pipelines_app, name="pipelines")

JSON = typer.Option(False, "--json", help="print JSON instead of tables")


@app.command()
def demo(
    n_tasks: int = typer.Option(12, "--tasks", min=1, max=500, help="how many uploads to run"),
    backend_url: str = typer.Option("", help="report to this backend instead of a local receiver"),
    callback_secret: str = typer.Option("", help="HMAC secret for reports (default: random per run)"),
    scenario: str = typer.Option("happy", help="happy: all succeed; mixed: some vendor failures and blocks"),
    home: Path = typer.Option(Path(".relay/demo"), help="where the demo keeps its queue, ledger and bucket"),
    timeout_s: float = typer.Option(120.0, help="give up after this many seconds"),
    virtual_time: bool = typer.Option(
        False, "--virtual-time", help="waits (vendor jobs, polls, retries) take no wall time: the flow in a blink"
    ),
    as_json: bool = JSON,
) -> None:
    """Run the whole flow on this machine: emulator, shim, queue, consumer, moderation, signed reports."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from relay_core.errors import ConfigError
    from scf_relay.demo.runner import DemoOptions, run_demo

    if scenario not in ("happy", "mixed"):
        fail("--scenario must be 'happy' or 'mixed'", as_json=as_json)
    opts = DemoOptions(
        n_tasks, backend_url or None, callback_secret or None, home, timeout_s, scenario, virtual_time=virtual_time
    )
    columns = (TextColumn("[bold]tasks finished"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        job = bar.add_task("tasks", total=n_tasks)
        try:
            result = run_demo(opts, progress=lambda done, total: bar.update(job, completed=done))
        except ConfigError as exc:
            fail(str(exc), as_json=as_json)
    data = result
    if as_json:
        emit_json(data)
    else:
        _print_demo(data)
    if not data["ok"]:
        raise typer.Exit(1)


def _short(text: str | None, limit: int = 60) -> str:
    return "" if not text else text if len(text) <= limit else text[: limit - 1] + "…"


def _print_demo(data: dict) -> None:
    rows = [
        (
            t["task_id"],
            t["pipeline"],
            t["status"] + (f" {t['error_reason']}" if t["error_reason"] else ""),
            len(t["outputs"]),
            t["polls"],
            f"{t['billed_ms']:.0f}",
            t["reports"],
            {True: "ok", False: "BAD", None: "-"}[t["signature_ok"]],
            _short(t["dead_letter"]),
        )
        for t in data["tasks"]
    ]
    table(
        "scf-relay demo",
        ["task", "pipeline", "outcome", "files", "polls", "billed ms", "reports", "signature", "dead letter"],
        rows,
    )
    console.print(f"finished in {data['elapsed_s']} s; shim: {data['shim']}")
    console.print(f"results under [bold]{data['bucket_dir']}/output/[/]; state under {data['home']}")


@emulator_app.command("runninghub")
def emulator_runninghub(
    port: int = typer.Option(8765, help="port to bind (0: any free port)"),
    host: str = typer.Option("127.0.0.1", help="address to bind"),
    api_key: str = typer.Option("relay-demo-key", help="the only key accepted (others get 802)"),
    job_s: float = typer.Option(2.0, help="seconds a job runs"),
    queue_s: float = typer.Option(0.5, help="seconds a job waits QUEUED first"),
    concurrency: int = typer.Option(8, help="unfinished jobs per key before 421"),
    fail_rate: float = typer.Option(0.0, help="share of jobs that fail (805)"),
    http_5xx_rate: float = typer.Option(0.0, help="share of requests answered 502"),
    never_finish_rate: float = typer.Option(0.0, help="share of jobs that never finish"),
    block_rate: float = typer.Option(0.0, help="share of jobs whose last output carries the moderation marker"),
    garbage_rate: float = typer.Option(0.0, help="share of answers that are not JSON"),
    balance: int = typer.Option(10_000, help="coins; each job costs one (0: 812 on submit)"),
    seed: int = typer.Option(None, help="seed of ids, outcomes and files"),
    delay_s: float = typer.Option(0.0, help="seconds every answer waits after the work (a hung vendor)"),
    max_upload_bytes: int = typer.Option(30 * 1024 * 1024, help="largest upload accepted (more: 809)"),
) -> None:
    """Serve a RunningHub-compatible API in the foreground (Ctrl-C stops); logs one JSON line per request."""
    from vendors.emulator import EmulatorConfig, PortInUse, serve_forever

    try:
        config = EmulatorConfig(
            api_key=api_key,
            job_s=job_s,
            queue_s=queue_s,
            concurrency=concurrency,
            fail_rate=fail_rate,
            http_5xx_rate=http_5xx_rate,
            never_finish_rate=never_finish_rate,
            block_rate=block_rate,
            garbage_rate=garbage_rate,
            balance=balance,
            seed=seed,
            delay_s=delay_s,
            max_upload_bytes=max_upload_bytes,
            host=host,
            port=port,
        )
    except ValueError as exc:  # a rate outside [0, 1]
        fail(str(exc))
    try:
        serve_forever(config)
    except PortInUse as exc:
        fail(str(exc), code=1)


@app.command()
def receiver(
    port: int = typer.Option(8766, help="port on 127.0.0.1"),
    secret: str = typer.Option(..., envvar="RELAY_CALLBACK_SECRET", help="HMAC secret the reports are signed with"),
    as_json: bool = JSON,
) -> None:
    """A stand-in backend: verifies and prints every report it receives (Ctrl-C stops)."""
    from scf_relay.demo.receiver import ReportReceiver
    from vendors.emulator import PortInUse

    rx = ReportReceiver(secret, port=port)
    try:
        rx.start()
    except PortInUse as exc:
        fail(str(exc), as_json=as_json, code=1)
    with rx:
        err_console.print(f"receiving on {rx.base_url}/internal/task/update")
        seen = 0
        try:
            while True:
                time.sleep(0.2)
                for report in rx.reports[seen:]:
                    record = {"delivery": report.delivery, "verified": report.verified, "body": report.body}
                    emit_json(record) if as_json else console.print(record)
                seen = len(rx.reports)
        except KeyboardInterrupt:
            pass


@app.command()
def upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="the file a user would upload"),
    user: str = typer.Option("seller-1", help="userId of the key input/{userId}/{taskId}/{file}"),
    task: str = typer.Option(None, help="taskId (default: a new one)"),
    pipeline: str = typer.Option(None, help="x-cos-meta-pipeline (default: routes / RELAY_DEFAULT_PIPELINE)"),
    as_json: bool = JSON,
) -> None:
    """Simulate a user upload: put the file into the configured store and hand its COS event to the shim."""
    import uuid

    from objectstore import open_store
    from producer_shim import index as shim
    from relay_core.errors import ConfigError
    from relay_core.settings import load
    from scf_relay.demo.events import cos_event

    try:
        store = open_store(load().store_url())
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)
    key = f"input/{user}/{task or uuid.uuid4().hex[:16]}/{path.name}"
    with path.open("rb") as stream:
        from objectstore.base import iter_file

        store.write(store.default_bucket, key, iter_file(stream), size=path.stat().st_size)
    meta = {"x-cos-meta-pipeline": pipeline} if pipeline else None
    summary = shim.main_handler(cos_event(store.default_bucket, key, path.stat().st_size, meta=meta), {})
    if as_json:
        emit_json(summary)
    else:
        console.print(summary)
    if summary["skipped"]:
        raise typer.Exit(1)


@app.command()
def worker(
    concurrency: int = typer.Option(1, min=1, max=64, help="consumer threads"),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="exit once every task's outcome is reported (ledger) and the queue holds nothing"
    ),
    idle_sleep_s: float = typer.Option(0.5, help="pause between empty receives"),
    health_file: Path = typer.Option(None, help="write a JSON heartbeat here every few seconds"),
    give_up_after_s: float = typer.Option(300.0, help="exit 1 when the queue backend has failed this long"),
    crash_rate: float = typer.Option(0.0, hidden=True, min=0.0, max=1.0, help="chaos runs: SIGKILL self at boundaries"),
    webhook_port: int = typer.Option(
        None, min=0, max=65535, help="also serve the vendor webhook route on this port (needs RELAY_WEBHOOK_SECRET)"
    ),
    webhook_host: str = typer.Option("127.0.0.1", help="address the webhook route binds (behind your TLS proxy)"),
    as_json: bool = JSON,
) -> None:
    """Run the consumer as a long-lived process on the configured queue.

    SIGTERM/SIGINT: finish the steps in flight, receive nothing more, exit 0; a second signal exits at once
    (130/143; cut-short steps are redelivered). Exit 1: the queue backend failed for --give-up-after-s.
    Exit 2: a configuration error (one line naming the variable).
    """
    from relay_core.errors import ConfigError
    from scf_relay.worker import Worker

    if crash_rate > 0:
        from scf_relay.chaos.crash import install_boundary_crashes

        install_boundary_crashes(crash_rate)
    try:
        worker_ = Worker.from_env(
            concurrency, idle_sleep_s=idle_sleep_s, health_file=health_file, give_up_after_s=give_up_after_s
        )
        with contextlib.ExitStack() as webhook:
            if webhook_port is not None:
                webhook.enter_context(_webhook_server(worker_.svc.settings, webhook_host, webhook_port))
            summary = worker_.run(until_idle=until_idle)
    except ConfigError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(summary)
    else:
        table("worker", list(summary), [list(summary.values())])
    if summary.get("exit_code"):
        raise typer.Exit(summary["exit_code"])


@contextlib.contextmanager
def _webhook_server(settings: RelaySettings, host: str, port: int) -> Iterator[None]:
    """Serve the webhook route (scf_relay/webhook_server.py) for as long as the worker runs."""
    from relay_core.errors import ConfigError
    from scf_relay.webhook_server import WebhookServer
    from vendors.emulator.serving import PortInUse
    from webhook_entry.index import build_gate

    gate = build_gate(settings)
    try:
        server = WebhookServer(gate, host=host, port=port).start()
    except PortInUse as exc:
        raise ConfigError(f"--webhook-port: {exc}") from None
    try:
        yield
    finally:
        server.stop()
        gate.queue.close()
        gate.ledger.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
