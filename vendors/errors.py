"""Errors of vendor clients: each one is a place in the error tree of :mod:`relay_core.errors`.

::

    VendorError                                   family root; ``.code`` is the vendor's code when it gave one
    ├── VendorUnavailable    (Transient)   network fault, 5xx, garbage on a read-only call: retry with backoff
    │   └── VendorBusy                     the key's concurrency limit or the vendor queue is full: nothing
    │                                      was created, retry later
    ├── VendorTaskFailed     (TaskFailed)  the vendor says this task failed / does not exist: ``failed`` 生成失败
    ├── InputRejected        (TaskFailed)  the vendor refuses this input (too large, bad file): 输入文件无效
    ├── AmbiguousSubmit      (OurFault)    a submit may or may not have created a (billed) job: never resubmit
    │                                      blindly; an operator checks the vendor console
    └── VendorConfigError    (OurFault)    our key, balance, workflow id or node mapping is wrong: dead-letter
        ├── AuthError                      key unauthorized / invalid / free user
        └── BalanceError                   insufficient balance

Messages never include the api key; vendor detail is for logs, never for users.
"""

from __future__ import annotations

from relay_core.domain import ErrorReason
from relay_core.errors import OurFault, RelayError, TaskFailed, Transient


class VendorError(RelayError):
    """Family root of vendor errors; never raised bare."""


class VendorUnavailable(VendorError, Transient):
    pass


class VendorBusy(VendorUnavailable):
    pass


class VendorTaskFailed(VendorError, TaskFailed):
    reason = ErrorReason.FAILED


class InputRejected(VendorError, TaskFailed):
    reason = ErrorReason.INVALID_INPUT


class AmbiguousSubmit(VendorError, OurFault):
    """The request reached (or may have reached) the vendor but we have no task id."""


class VendorConfigError(VendorError, OurFault):
    pass


class AuthError(VendorConfigError):
    pass


class BalanceError(VendorConfigError):
    pass
