"""Operator actions on dead letters and tasks, one module per job, used by the ``scf-relay`` CLI.

``timefmt``  UTC times, ages (``3h12m``) and the durations operators type (``90s``, ``2h``, ``1d``)
``letters``  dead letters decoded, classified by reason, filtered, found by unique id prefix
``redrive``  predict and carry out sending dead letters back (rate, progress, a summary when interrupted)
``failing``  give a task up: record the outcome with the REPORT it owes, then send that REPORT
``audit``    the append-only trail of state-changing commands, beside the ledger (SQLite table, Redis stream)
"""
