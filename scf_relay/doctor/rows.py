"""A doctor row and the guard that turns any exception of a check into a ``fail`` row."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Row:
    """One check's result; ``detail`` is what was found (pass), the fix (fail) or why not (unknown)."""

    check: str
    verdict: Verdict
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "result": self.verdict.value, "detail": self.detail}


def passed(check: str, detail: str) -> Row:
    return Row(check, Verdict.PASS, detail)


def failed(check: str, fix: str) -> Row:
    return Row(check, Verdict.FAIL, fix)


def unknown(check: str, why: str) -> Row:
    return Row(check, Verdict.UNKNOWN, why)


def guarded(check: str, run: Callable[[], list[Row]]) -> list[Row]:
    """``run()``'s rows; an exception becomes one ``fail`` row carrying its first line (never a traceback)."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - a doctor reports every fault as a row
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [failed(check, f"{type(exc).__name__}: {first}"[:300])]
