"""Checks of decoded values (a JSON body, a TOML table, a setting): the one place their rules and wording live.

Each check returns the value it accepts (converted only where its docstring says so) or raises
:class:`FieldError`, whose problem is worded like ``input should be greater than or equal to 0`` everywhere
(job messages, COS events, pipelines files, settings). A :class:`FieldError` carries the path of the field
(``("input", "key")``, shown ``input.key``; list items as ``[1]``); :class:`FieldErrors` is several of them,
for documents that report more than their first problem.

:class:`Fields` reads the fields of one object of such a document, recording each problem under its path instead
of stopping at the first: ``finish()`` raises them all, in field order.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, cast

T = TypeVar("T")
#: a check: returns the value it accepts (or its documented conversion), raises :class:`FieldError`
Check = Callable[[object], T]
PathPart = str | int
FieldPath = tuple[PathPart, ...]

MISSING: Final = "field required"
UNKNOWN: Final = "unknown field"


class FieldError(ValueError):
    """A value breaks a rule: ``problem`` says which, ``path`` names the field (``()`` for the value itself)."""

    def __init__(self, problem: str, path: FieldPath = ()) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path

    def under(self, *outer: PathPart) -> FieldError:
        """The same problem seen from an enclosing object: ``outer`` prefixed to the path."""
        return FieldError(self.problem, (*outer, *self.path))

    @property
    def where(self) -> str:
        """The path as text: ``cos.cosObject.key``, ``nodes[0].value``; ``""`` for the value itself."""
        return dotted(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}" if self.path else self.problem


class FieldErrors(ValueError):
    """Every problem found in one document, in field order (never empty)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors

    def under(self, *outer: PathPart) -> FieldErrors:
        return FieldErrors([error.under(*outer) for error in self.errors])


def dotted(path: Iterable[PathPart]) -> str:
    """``("Records", 1, "cos")`` → ``Records[1].cos``."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text[1:] if text.startswith(".") else text


# -- checks: each factory returns a check, a function of the value; build them once, call them often -----------


def text(*, min_length: int = 0, max_length: int | None = None, pattern: re.Pattern[str] | None = None) -> Check[str]:
    """A ``str`` of ``min_length``..``max_length`` characters that ``pattern`` matches in full, if given; a
    ``str`` subclass (an enum member) is taken as its plain value."""
    longest = math.inf if max_length is None else max_length

    def check(value: object) -> str:
        if type(value) is not str:
            if not isinstance(value, str):
                raise FieldError("input should be a valid string")
            value = str.__str__(value)
        if not min_length <= len(value) <= longest:
            if len(value) < min_length:
                raise FieldError(f"string should have at least {min_length} character{_s(min_length)}")
            raise FieldError(f"string should have at most {max_length} character{_s(longest)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise FieldError(f"string should match pattern '{pattern.pattern}'")
        return value

    return check


def integer(*, ge: int | None = None, gt: int | None = None, le: int | None = None) -> Check[int]:
    """An ``int`` within the bounds; a boolean or a float (even ``2.0``) is not an integer."""
    low, high = _range(ge, gt, le)

    def check(value: object) -> int:
        if type(value) is not int:
            raise FieldError("input should be a valid integer")
        if not low <= value <= high:
            raise FieldError(_out_of_bounds(value, ge, gt, le))
        return value

    return check


def number(*, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Check[float]:
    """A finite ``int`` or ``float`` within the bounds, returned as a ``float``; NaN and infinities are refused
    (a NaN deadline would never pass, an infinite delay never end), and so is a boolean."""
    low, high = _range(ge, gt, le, unbounded=sys.float_info.max)  # ±inf fail the range too

    def check(value: object) -> float:
        if type(value) is not float:
            if type(value) is not int:
                raise FieldError("input should be a valid number")
            value = float(value)
        if not low <= value <= high:  # false for NaN too
            if not math.isfinite(value):
                raise FieldError("input should be a finite number")
            raise FieldError(_out_of_bounds(value, ge, gt, le))
        return value

    return check


def flag() -> Check[bool]:
    """A ``bool``."""

    def check(value: object) -> bool:
        if type(value) is not bool:
            raise FieldError("input should be a valid boolean")
        return value

    return check


def one_of(*options: str) -> Check[str]:
    """One of ``options`` (a ``str`` equal to one of them)."""
    quoted = [f"'{option}'" for option in options]
    problem = "input should be " + (quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}")

    def check(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise FieldError(problem)
        return value

    return check


def optional(inner: Check[T]) -> Check[T | None]:
    """``None``, or what ``inner`` accepts."""

    def check(value: object) -> T | None:
        return None if value is None else inner(value)

    return check


def items(inner: Check[T], *, min_length: int = 0) -> Check[tuple[T, ...]]:
    """A list (or tuple) of at least ``min_length`` items, each passed through ``inner``, as a tuple; every
    item's problems are reported, under its index."""

    def check(value: object) -> tuple[T, ...]:
        if not isinstance(value, list | tuple):
            raise FieldError("input should be a valid list")
        if len(value) < min_length:
            raise FieldError(f"list should have at least {min_length} item{_s(min_length)}, not {len(value)}")
        return tuple(_each(enumerate(value), inner).values())

    return check


def mapping(inner: Check[T], *, not_an_object: str = "input should be an object") -> Check[dict[str, T]]:
    """An object (a ``dict``) whose every value passes ``inner``, reported under its key."""

    def check(value: object) -> dict[str, T]:
        if not isinstance(value, dict):
            raise FieldError(not_an_object)
        return _each(value.items(), inner)

    return check


def _each(pairs: Iterable[tuple[Any, object]], inner: Check[T]) -> dict[Any, T]:
    checked: dict[Any, T] = {}
    errors: list[FieldError] = []
    for key, item in pairs:
        try:
            checked[key] = inner(item)
        except FieldError as exc:
            errors.append(exc.under(key))
        except FieldErrors as exc:
            errors.extend(exc.under(key).errors)
    if errors:
        raise errors[0] if len(errors) == 1 else FieldErrors(errors)
    return checked


def _s(count: float) -> str:
    return "" if count == 1 else "s"


def _range(ge: float | None, gt: float | None, le: float | None, *, unbounded: float = math.inf) -> tuple[float, float]:
    """Bounds for one chained comparison (``gt`` as the next float up); :func:`_out_of_bounds` words a miss."""
    low = max(-unbounded if ge is None else ge, -unbounded if gt is None else math.nextafter(gt, math.inf))
    return low, unbounded if le is None else le


def _out_of_bounds(value: float, ge: float | None, gt: float | None, le: float | None) -> str:
    if ge is not None and value < ge:
        return f"input should be greater than or equal to {ge}"
    if gt is not None and value <= gt:
        return f"input should be greater than {gt}"
    return f"input should be less than or equal to {le}"


# -- objects ---------------------------------------------------------------------------------------------------

_REQUIRED: Any = object()


class Fields:
    """The fields of one object, read one by one; a problem is recorded under the field's name, not raised.

    ``Fields(data)`` records ``not_an_object`` when ``data`` is not a ``dict``; :meth:`take` then reads nothing.
    Use the values only after :meth:`finish` returned: a field with a problem reads as ``None``.
    """

    def __init__(self, data: object, *, not_an_object: str = "input should be an object") -> None:
        self.errors: list[FieldError] = []
        self.data: Mapping[str, object] = data if isinstance(data, dict) else {}
        self._is_object = isinstance(data, dict)
        if not self._is_object:
            self.errors.append(FieldError(not_an_object))
        self._taken: set[str] = set()

    def take(self, name: str, check: Callable[[object], T], default: Any = _REQUIRED, *, alias: str = "") -> T:
        """``check(data[alias or name])``, or ``default`` when the key is absent (a problem if it has none).
        With an ``alias`` (the wire name), ``name`` is read too when the alias is absent; problems name the
        alias."""
        if not self._is_object:
            return cast(T, None)
        key = alias or name
        self._taken.update((key, name))
        if key in self.data:
            value = self.data[key]
        elif alias and name in self.data:
            key, value = name, self.data[name]
        elif default is not _REQUIRED:
            return cast(T, default)
        else:
            self.errors.append(FieldError(MISSING, (key,)))
            return cast(T, None)
        try:
            return check(value)
        except FieldError as exc:
            self.errors.append(exc.under(key))
        except FieldErrors as exc:
            self.errors += exc.under(key).errors
        return cast(T, None)

    def finish(self, *, forbid_unknown: bool = False) -> None:
        """Raise every recorded problem (:class:`FieldError` for one, else :class:`FieldErrors`); with
        ``forbid_unknown``, a key no :meth:`take` read is a problem too."""
        if forbid_unknown:
            self.errors += [FieldError(UNKNOWN, (key,)) for key in self.data if key not in self._taken]
        if self.errors:
            raise self.errors[0] if len(self.errors) == 1 else FieldErrors(self.errors)
