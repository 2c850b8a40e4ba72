"""The one error tree. Every error of ours says, by its class, how a task step ends when it is raised.

::

    RelayError                      root; ``str(exc)`` is safe to log (no secret, no vendor URL)
    ├── TaskFailed                  the task itself failed: record ``failed`` with ``.reason``, report it
    ├── OurFault                    our side is wrong: dead-letter with what to fix, no report, so fixing the
    │   │                           configuration and redriving saves the user's task
    │   ├── ConfigError             a setting is unusable (the message names the variable)
    │   └── Poison                  a message no worker of this version can read: dead-letter at once
    └── Transient                   may succeed later: run the stage again (bounded), after ``.delay_s``
                                    if given; when the attempts run out, ``.gives_up_as`` says whether the
                                    task fails (a reason) or dead-letters (``None``)

Each adapter has its family (``VendorError``, ``StoreError``, ``QueueError``, ``AuditError``, fetch errors)
whose members also subclass one of the three endings, and translates library errors at its edge; the
consumer's dispatch catches by these classes and nothing else.
"""

from __future__ import annotations

from relay_core.reasons import ErrorReason


class RelayError(Exception):
    """Root of every error raised on purpose by scf-relay. ``code``: a vendor's or service's code, if any."""

    def __init__(self, message: str = "", *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TaskFailed(RelayError):
    """The task cannot succeed: it is reported ``failed`` with :attr:`reason` (user-facing, fixed set)."""

    reason: ErrorReason = ErrorReason.FAILED

    def __init__(self, detail: str = "", *, reason: ErrorReason | None = None, code: int | str | None = None) -> None:
        super().__init__(detail, code=code)
        if reason is not None:
            self.reason = reason
        self.detail = detail


class OurFault(RelayError):
    """Our configuration, credentials or code are wrong: dead-letter the task with what to fix."""


class ConfigError(OurFault):
    """The configuration is unusable; the message names the variable and the fix."""


class Poison(OurFault):
    """A message body that no worker of this version can process; the message says why."""


class Transient(RelayError):
    """A fault that may pass: the stage runs again later, a bounded number of times."""

    #: what the task becomes when the stage's attempts run out: a failure with this reason, or (None) a dead letter
    gives_up_as: ErrorReason | None = None

    def __init__(self, message: str = "", *, delay_s: float | None = None, code: int | str | None = None) -> None:
        super().__init__(message, code=code)
        self.delay_s = delay_s
