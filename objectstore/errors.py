"""Errors of the object stores, each a place in the error tree of :mod:`relay_core.errors`.

::

    StoreError                            family root; never raised bare
    ├── StoreUnavailable  (Transient)     a store call failed (network, 5xx): retry
    ├── ObjectChanged     (Transient)     the object is not the version the caller named (its etag differs)
    ├── ObjectNotFound    (OurFault)      no such bucket/key (callers that expect it translate it)
    ├── ObjectExists      (OurFault)      a write that must not overwrite found an object (callers that ask
    │                                     for that handle it)
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


class ObjectChanged(StoreError, Transient):
    """A conditional read or copy found another version of the object than the etag it was given."""


class ObjectNotFound(StoreError, OurFault):
    pass


class ObjectExists(StoreError, OurFault):
    """A write with ``overwrite=False`` found an object under its key; the object there is left as it was."""


class InvalidKey(StoreError, OurFault, ValueError):
    pass


class AccessDenied(StoreError, OurFault):
    pass


class StoreUnsupported(StoreError, OurFault):
    pass
