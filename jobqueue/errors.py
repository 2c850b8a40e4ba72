"""Errors of the queue and ledger layer.

::

    QueueError                  a backend call failed            retryable
    ├── BackendUnavailable      cannot reach the backend           retryable
    └── QueueConfigError        bad URL or settings              not retryable
    PoisonMessage               a body that is no valid message  not retryable: dead-letter at once
"""

from __future__ import annotations


class QueueError(Exception):
    retryable = True


class BackendUnavailable(QueueError):
    retryable = True


class QueueConfigError(QueueError):
    retryable = False


class PoisonMessage(Exception):
    """The body cannot be processed by any worker of this version; the message says why."""

    retryable = False
