"""Times for operators: UTC ISO stamps, short ages (``3h12m``) and typed durations/instants."""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def utc(ts: float | None) -> str | None:
    """``2024-05-01T03:12:09Z`` for unix seconds; None stays None."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age(seconds: float) -> str:
    """``45s``, ``12m``, ``3h12m``, ``2d4h``; a negative age (in the future) gets a ``-``."""
    sign, s = ("-", -seconds) if seconds < 0 else ("", seconds)
    s = int(s)
    if s < 60:
        text = f"{s}s"
    elif s < 3600:
        text = f"{s // 60}m"
    elif s < 86400:
        text = f"{s // 3600}h{s % 3600 // 60:02d}m"
    else:
        text = f"{s // 86400}d{s % 86400 // 3600}h"
    return sign + text


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h30m``, ``1d``, ``1w`` or plain seconds → seconds. Raises ValueError."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 2h30m, 1d")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def parse_instant(text: str, now: float) -> float:
    """An ISO time (UTC unless it says otherwise, ``2024-05-01T03:00``) or a duration meaning that long ago."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO time (2024-05-01T03:00Z) nor a duration (2h)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
