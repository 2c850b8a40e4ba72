"""scf-relay's Redis worker against Dramatiq and Celery on the same chain (issue 11): ``python -m bench.peers``.

    python -m bench.peers [--tasks 200,1000] [--runs 3] [--idle-s 30] [--systems scf-relay,dramatiq,celery]
    python -m bench.peers --smoke      # 5 tasks, 1 run, 2 s idle; peers that are not installed are skipped

Every system runs 2 worker processes × 4 threads against the same RunningHub emulator (``model_pose12``: 4 s jobs,
12 result files), the same signed-callback receiver (:class:`scf_relay.demo.receiver.ReportReceiver`) and the same
Redis (a private ``redis-server`` the benchmark starts, DB 11 flushed before every run; ``--redis URL`` uses another
server). The chain per task: submit (input upload + create) → polls on the ``model_pose12`` policy as delayed
messages → 12 result downloads streamed to files (temp + rename, md5) → one signed callback. scf-relay does it
through its own stages and guarantees; the peers run :mod:`bench.peers.chain` from two tasks.

Runs rotate (scf-relay, Dramatiq, Celery, scf-relay, ...) over the scenarios: each ``--tasks`` size with 4 s jobs,
and an instant vendor (0 s jobs) at the largest size; the first scenario's runs first hold the started workers idle
for ``--idle-s``. Per run: tasks/s (first enqueue → last callback), worker CPU ms per task (user + sys of every
process of the system from ``/proc``, over the same window), Redis commands per task (``INFO commandstats``, those
inside Lua scripts included), peak RSS of each worker process (``VmHWM``), idle commands/s of the fleet. One
MONITOR pass (``--monitor-tasks``) splits client-sent commands from those inside Lua. A run where some task did
not get exactly one verified ``done`` callback is reported as failed (exit 1) and left out of the medians.

Writes ``bench/results/peers.json`` (machine, every run, medians, ratios scf-relay / peer) and ``peers.png``.
"""
