"""The foundation layer: settings, structured logs, ids, value checks, file types, pipelines, domain values, the
error tree.

Everything else in scf-relay imports from here and nothing here imports anything of ours above it. Kept
import-light on purpose: both SCF entry points import it on every cold start.
"""

__version__ = "0.1.0"
