"""Errors of the object stores.

::

    StoreError                a store call failed (network, 5xx)             retryable
    ├── ObjectNotFound        no such bucket/key                           not retryable
    ├── InvalidKey            a key that could escape its prefix           not retryable
    ├── AccessDenied          our credentials or policy are wrong          not retryable (dead-letter, fix config)
    └── StoreUnsupported      the backend cannot do this (presign locally) not retryable
"""

from __future__ import annotations


class StoreError(Exception):
    retryable = True


class ObjectNotFound(StoreError):
    retryable = False


class InvalidKey(StoreError, ValueError):
    retryable = False


class AccessDenied(StoreError):
    retryable = False


class StoreUnsupported(StoreError):
    retryable = False
