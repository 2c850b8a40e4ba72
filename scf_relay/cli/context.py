"""What every operator command shares: the backends it acts on (named in a header line and in JSON), one-line
errors with documented exit codes, confirmation, and the audit trail.

Exit codes: 0 ok; 1 nothing matched, an unknown or ambiguous id, not confirmed, or partly failed;
2 configuration (the line names the variable); 3 a backend unreachable (the line names it and its variable).
No traceback reaches the operator (``SCF_RELAY_TRACEBACK=1`` shows one, for bug reports).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import typer

from scf_relay.cli.output import console, emit_json, err_console

if TYPE_CHECKING:
    from jobqueue.ledger.base import Ledger
    from jobqueue.queue.base import Queue, QueueAdmin
    from relay_core.settings import RelaySettings
    from scf_relay.operations.audit import AuditTrail

T = TypeVar("T")
OK, NOTHING, CONFIG, UNREACHABLE = 0, 1, 2, 3

#: what looking at CMQ's dead letters costs: printed under the header, and ``look_cost`` in JSON (CMQ only)
CMQ_LOOK_COST = (
    "on CMQ a look at the dead letters receives each one: it is hidden for the dead-letter queue's visibility "
    "timeout (a listing right after this one may miss it) and its receive count rises; redrive sends a new "
    "message (new id) then deletes the letter"
)


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Unreachable(Exception):
    """A backend call failed: ``what`` (the queue, the ledger), the ``variable`` that names it, and why."""

    def __init__(self, what: str, variable: str, url: str, detail: str) -> None:
        super().__init__(f"{what} unreachable ({variable}={mask(url)}): {detail}")


class _Guarded:
    """Calls through to ``target``; a backend failure becomes :class:`Unreachable` naming the variable."""

    def __init__(self, target: object, what: str, variable: str, url: str) -> None:
        self._target, self._what, self._variable, self._url = target, what, variable, url

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._call(attr, *args, **kwargs)
            if type(result).__name__.endswith("Stats") and hasattr(result, "stats"):
                return _Guarded(result, self._what, self._variable, self._url)
            return result

        return call

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return guarded_call(self._what, self._variable, self._url, fn, *args, **kwargs)


def guarded_call(what: str, variable: str, url: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``; configuration errors pass, backend failures become :class:`Unreachable`."""
    from relay_core.errors import ConfigError, RelayError

    try:
        return fn(*args, **kwargs)
    except ConfigError:
        raise
    except (RelayError, OSError, sqlite3.Error) as exc:
        raise Unreachable(what, variable, url, str(exc).splitlines()[0][:300]) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("redis", "httpx", "httpcore"):
            raise Unreachable(what, variable, url, f"{type(exc).__name__}: {exc}"[:300]) from exc
        raise


class Ops:
    """One operator command: ``with Ops("dlq list", as_json) as ops:`` opens backends on first use and turns
    every error into one line and an exit code."""

    def __init__(self, command: str, as_json: bool, *, header: bool = True) -> None:
        self.command, self.as_json, self._header = command, as_json, header
        self.now = time.time()

    # -- settings and backends -------------------------------------------------------------------
    @cached_property
    def settings(self) -> RelaySettings:
        from relay_core.settings import load

        return load()

    @cached_property
    def queue_url(self) -> str:
        return self.settings.queue_url()

    @cached_property
    def ledger_url(self) -> str:
        return self.settings.ledger_url()

    def where(self) -> dict[str, str]:
        return {"queue": mask(self.queue_url), "ledger": mask(self.ledger_url)}

    @property
    def look_cost(self) -> str | None:
        """What reading the dead letters costs on this queue; None where a look changes nothing."""
        return CMQ_LOOK_COST if self.queue_url.startswith("cmq:") else None

    def _open(self, what: str, variable: str, url: str, opener: Callable[[], T]) -> T:
        target = guarded_call(what, variable, url, opener)
        return cast(T, _Guarded(target, what, variable, url))

    @cached_property
    def admin(self) -> QueueAdmin:
        """The queue's operator plane (dead letters, statistics)."""
        from jobqueue import open_queue_admin

        n = self.settings.max_receive_count
        return self._open(
            "queue", "RELAY_QUEUE", self.queue_url, lambda: open_queue_admin(self.queue_url, max_receive_count=n)
        )

    @cached_property
    def queue(self) -> Queue:
        """The queue's data plane (to send REPORT hops on)."""
        from jobqueue import open_queue

        n = self.settings.max_receive_count
        return self._open(
            "queue", "RELAY_QUEUE", self.queue_url, lambda: open_queue(self.queue_url, max_receive_count=n)
        )

    @cached_property
    def ledger(self) -> Ledger:
        from jobqueue import open_ledger

        return self._open("ledger", "RELAY_LEDGER", self.ledger_url, lambda: open_ledger(self.ledger_url))

    @cached_property
    def trail(self) -> AuditTrail:
        from scf_relay.operations.audit import open_audit

        return self._open("audit trail", "RELAY_LEDGER", self.ledger_url, lambda: open_audit(self.ledger_url))

    # -- output ----------------------------------------------------------------------------------
    def emit(self, payload: dict[str, Any], *, ok: bool = True) -> None:
        """Print ``payload`` as JSON with the command, the backends and ``ok`` (the stable envelope)."""
        cost = {"look_cost": self.look_cost} if self.look_cost else {}
        emit_json({"command": self.command, **self.where(), **cost, "ok": ok, **payload})

    def fail(self, message: str, code: int = NOTHING) -> NoReturn:
        """End the command with one line (a JSON error object with ``--json``) and ``code``."""
        if self.as_json:
            try:
                where = self.where()
            except Exception:  # noqa: BLE001 - the settings themselves may be what failed
                where = {}
            emit_json({"command": self.command, **where, "ok": False, "error": message, "exit_code": code})
        else:
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(code)

    def confirm(self, question: str, yes: bool, *, typed: str | None = None) -> None:
        """Go on only with ``--yes`` or the operator's answer (``typed``: they must type that word)."""
        if yes:
            return
        if self.as_json:
            self.fail(f"{question}: pass --yes (nothing changed)", NOTHING)
        try:
            if typed is not None:
                answer = typer.prompt(f"{question}. Type {typed!r} to go on", err=True, default="")
                if answer.strip() != typed:
                    self.fail("not confirmed; nothing changed", NOTHING)
            elif not typer.confirm(question + "?", err=True):
                self.fail("not confirmed; nothing changed", NOTHING)
        except typer.Abort:
            self.fail("not confirmed; nothing changed", NOTHING)

    def record(self, ids: Sequence[str], counts: dict[str, int], result: str, detail: str = "") -> None:
        """Append this command to the audit trail (after it acted)."""
        from scf_relay.operations.audit import AuditEntry, operator_name

        entry = AuditEntry(time.time(), operator_name(), self.command, list(ids), counts, result, detail)
        self.trail.append(entry)

    # -- the guard -------------------------------------------------------------------------------
    def __enter__(self) -> Ops:
        try:
            where = self.where()
        except BaseException as exc:  # noqa: BLE001 - a configuration error: reported by __exit__
            self.__exit__(type(exc), exc, None)
            raise
        if self._header and not self.as_json:
            console.print(f"[dim]queue {where['queue']} · ledger {where['ledger']}[/]", highlight=False)
            if self.look_cost and self.command.startswith(("dlq", "tasks")):
                console.print(f"[dim]note: {self.look_cost}[/]", highlight=False, soft_wrap=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        from relay_core.errors import ConfigError
        from scf_relay.operations.letters import IdProblem

        if exc is None or isinstance(exc, (typer.Exit, typer.Abort, SystemExit)):
            return
        if os.environ.get("SCF_RELAY_TRACEBACK") == "1":
            return
        if isinstance(exc, ConfigError):
            self.fail(str(exc), CONFIG)
        if isinstance(exc, Unreachable):
            self.fail(str(exc), UNREACHABLE)
        if isinstance(exc, IdProblem):
            self.fail(str(exc), NOTHING)
        if isinstance(exc, KeyboardInterrupt):
            self.fail("interrupted", 130)
        if isinstance(exc, Exception):
            self.fail(f"unexpected {type(exc).__name__}: {exc} (SCF_RELAY_TRACEBACK=1 shows where)", NOTHING)
