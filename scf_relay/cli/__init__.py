"""The ``scf-relay`` command (typer + rich). Every command takes ``--json``."""
