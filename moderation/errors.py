"""Errors of the auditors, each a place in the error tree of :mod:`relay_core.errors`. None of them ever means
"pass": moderation fails closed.

::

    AuditError                            family root; never raised bare
    ├── AuditUnavailable  (Transient)     cannot decide now (network, 5xx, throttling): retry
    │   └── AuditJobFailed                an asynchronous (video) job ended ERROR/CANCELLED: the retry starts
    │                                     a new job
    ├── AuditConfigError  (OurFault)      credentials, permission, service not enabled, package used up, a job
    │                                     id from another auditor: dead-letter
    └── AuditRejected     (OurFault)      the service refuses the content or the request (unreadable image, too
                                          small, invalid parameter, unknown task id): dead-letter, an operator
                                          decides (a wrong BizType looks the same as bad content)

Messages carry the service's error code and its redacted message, never keys or signed URLs.
"""

from __future__ import annotations

from relay_core.errors import OurFault, RelayError, Transient


class AuditError(RelayError):
    """Family root of auditor errors."""


class AuditUnavailable(AuditError, Transient):
    pass


class AuditJobFailed(AuditUnavailable):
    """Polling the same job again gets the same answer: the caller must start a new job."""


class AuditConfigError(AuditError, OurFault):
    pass


class AuditRejected(AuditError, OurFault):
    pass
