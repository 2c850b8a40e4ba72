"""scf-relay foundation: settings, structured logs, id validation and pipelines.

Kept import-light on purpose: SCF entry points import from here on every cold start.
The operator CLI lives in :mod:`scf_relay.cli` and is never imported by a function.
"""

__version__ = "0.1.0"
