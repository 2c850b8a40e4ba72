"""``scf-relay doctor``: read-only (or self-cleaning) checks of the configured environment, one row each.

Every row is ``pass``, ``fail`` (with the fix) or ``unknown`` (with why it cannot be told from here). Checks
never pretend: what the configured backends or the local test servers cannot answer is ``unknown``.
:func:`scf_relay.doctor.run.run_checks` runs them all; :func:`scf_relay.doctor.vendor.pipeline_rows` is
``scf-relay pipelines check`` on its own.
"""
