"""Crash injection for chaos runs: a worker kills itself (SIGKILL, no cleanup) at a boundary between effects."""

from __future__ import annotations

import os
import random
import signal

from consumer import effects


def install_boundary_crashes(rate: float, rng: random.Random | None = None) -> None:
    """At every effect boundary, with probability ``rate``, die as a SIGKILLed process would."""
    chance = rng or random.Random()

    def maybe_die(boundary: str) -> None:
        if chance.random() < rate:
            os.kill(os.getpid(), signal.SIGKILL)

    effects.boundary_observers.append(maybe_die)
