"""Errors of the auditors. None of them ever means "pass": moderation fails closed.

::

    AuditError              cannot decide now (network, 5xx, throttling)                    retryable
    ├── AuditJobFailed      an asynchronous (video) job ended ERROR/CANCELLED: start a new job   retryable
    ├── AuditConfigError    our side is wrong: credentials, permission, service not enabled,
    │                       package used up, a job id from another auditor       not retryable: dead-letter
    └── AuditRejected       the service refuses the content or the request (unreadable image, too
                            small, invalid parameter, unknown task id)           not retryable: dead-letter,
                            an operator decides (a wrong BizType looks the same as bad content)

Messages carry the service's error code and its redacted message, never keys or signed URLs.
"""

from __future__ import annotations


class AuditError(Exception):
    retryable = True


class AuditJobFailed(AuditError):
    """Polling the same job again gets the same answer: the caller must start a new job."""


class AuditConfigError(AuditError):
    retryable = False


class AuditRejected(AuditError):
    retryable = False
