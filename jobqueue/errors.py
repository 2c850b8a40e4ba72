"""Errors of the queue and ledger layer, each a place in the error tree of :mod:`relay_core.errors`.

::

    QueueError                                family root; never raised bare
    ├── BackendUnavailable   (Transient)      a backend call failed or could not be made: retry
    └── QueueConfigError     (ConfigError)    bad URL or settings
    PoisonMessage            (Poison)         a body that is no valid message: dead-letter at once

The consumer never retries a queue or ledger error inside a step: the message stays in the queue and comes
back after its visibility timeout.
"""

from __future__ import annotations

from relay_core.errors import ConfigError, Poison, RelayError, Transient


class QueueError(RelayError):
    """Family root of queue and ledger errors."""


class BackendUnavailable(QueueError, Transient):
    pass


class QueueConfigError(QueueError, ConfigError):
    pass


class PoisonMessage(Poison):
    """The body cannot be processed by any worker of this version; the message says why."""
