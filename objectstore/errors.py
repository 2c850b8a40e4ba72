"""Errors of the object stores, each a place in the error tree of :mod:`relay_core.errors`.

::

    StoreError                            family root; never raised bare
    ├── StoreUnavailable  (Transient)     a store call failed (network, 5xx): retry
    ├── ObjectNotFound    (OurFault)      no such bucket/key (callers that expect it translate it)
    ├── InvalidKey        (OurFault)      a key that could escape its prefix
    ├── AccessDenied      (OurFault)      our credentials or policy are wrong: dead-letter, fix config
    └── StoreUnsupported  (OurFault)      the backend cannot do this (presign on local files)
"""

from __future__ import annotations

from relay_core.errors import OurFault, RelayError, Transient


class StoreError(RelayError):
    """Family root of store errors."""


class StoreUnavailable(StoreError, Transient):
    pass


class ObjectNotFound(StoreError, OurFault):
    pass


class InvalidKey(StoreError, OurFault, ValueError):
    pass


class AccessDenied(StoreError, OurFault):
    pass


class StoreUnsupported(StoreError, OurFault):
    pass
