"""A RunningHub-compatible emulator: a real HTTP server on loopback with knobs for every failure.

``RunningHubEmulator(EmulatorConfig(...)).start()`` serves the legacy ``/task/openapi/*`` endpoints, the v2
query, uploads, ``accountStatus`` and ``GET /files/<name>`` (result files made by :mod:`.media`). A task's
outcome can be forced by its input (``emulate:fail``, ``emulate:block``, ``emulate:never``,
``emulate:node-error``: see :mod:`.tasks`). Run one by hand with ``scf-relay emulator runninghub``.

:mod:`.serving` is the loopback WSGI server every local server of the project shares (the demo's report
receiver and the test servers import it from here).
"""

from __future__ import annotations

from vendors.emulator.config import DEFAULT_API_KEY, EmulatorConfig, TargetSpec
from vendors.emulator.media import BLOCK_MARKER
from vendors.emulator.server import RunningHubEmulator, serve_forever
from vendors.emulator.serving import PortInUse
from vendors.emulator.tasks import EmulatedTask, Outcome, TaskState

__all__ = [
    "BLOCK_MARKER",
    "DEFAULT_API_KEY",
    "EmulatedTask",
    "EmulatorConfig",
    "Outcome",
    "PortInUse",
    "RunningHubEmulator",
    "TargetSpec",
    "TaskState",
    "serve_forever",
]
