"""Delay math, pure: full jitter with a floor, capped by a maximum and by the task's deadline."""

from __future__ import annotations

import random

from relay_core.pipelines import PollPolicy


def jittered(base_s: float, factor: float, attempt: int, cap_s: float, rng: random.Random) -> float:
    """A delay in ``[base_s, min(cap_s, base_s * factor**attempt)]``, uniformly (full jitter above the floor).

    The floor keeps a burst of retries from hammering a vendor with near-zero delays.
    """
    ceiling = min(cap_s, base_s * factor ** min(attempt, 64))
    return base_s if ceiling <= base_s else rng.uniform(base_s, ceiling)


def poll_delay(policy: PollPolicy, polls: int, queued: bool, rng: random.Random) -> float:
    """Delay before the next status query; slower (``queued_factor``) while the vendor has not started."""
    delay = jittered(policy.base_s, policy.factor, polls, policy.max_s, rng)
    return min(delay * policy.queued_factor, policy.max_s * policy.queued_factor) if queued else delay


def until_deadline(delay_s: float, now: float, deadline_at: float, floor_s: float = 1.0) -> float:
    """``delay_s`` shortened so the next hop runs no later than the deadline (but at least ``floor_s``)."""
    return max(floor_s, min(delay_s, deadline_at - now))


def retry_delay(attempt: int, rng: random.Random, base_s: float = 2.0, cap_s: float = 300.0) -> float:
    """Delay before retrying a stage after a transient fault (attempt 0 = first retry)."""
    return jittered(base_s, 2.0, attempt, cap_s, rng)
