"""Errors of vendor clients, classified so the consumer knows what to do next.

::

    VendorError                                   base; ``.code`` is the vendor's code when it gave one
    ├── TransientError       network fault, 5xx, garbage on a read-only call       retry with backoff
    ├── CapacityError        the key's concurrency limit or the vendor queue is full  retry later, nothing was created
    ├── AmbiguousSubmit      a submit may or may not have created a job          never resubmit blindly
    ├── TaskFailed           the vendor says this task failed / does not exist   report ``failed`` (task-side)
    ├── InputRejected        the vendor refuses this input (too large, bad file)  report ``failed`` 输入文件无效
    └── OurSideError         our key, balance, workflow id or node mapping is wrong  dead-letter, no report
        ├── AuthError        key unauthorized / invalid / free user
        └── BalanceError     insufficient balance

``retryable`` says whether the same call may succeed later; ``ours`` says a fix of our configuration is needed.
Messages never include the api key; vendor detail is for logs, never for users.
"""

from __future__ import annotations


class VendorError(Exception):
    retryable = False
    ours = False

    def __init__(self, message: str, *, code: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(VendorError):
    retryable = True


class CapacityError(VendorError):
    retryable = True


class AmbiguousSubmit(VendorError):
    """The request reached (or may have reached) the vendor but we have no task id."""


class TaskFailed(VendorError):
    pass


class InputRejected(VendorError):
    pass


class OurSideError(VendorError):
    ours = True


class AuthError(OurSideError):
    pass


class BalanceError(OurSideError):
    pass
