"""SCF function 1 (the producer shim): COS upload event → job message on the queue.

Entry point: ``producer_shim.index.main_handler``. The event's shape is modelled in
:mod:`producer_shim.cos_event`, what we accept of it is decided in :mod:`producer_shim.events`, pipeline choice
and message building live in :mod:`producer_shim.enqueue`. Import-light: no vendor, consumer, COS or Redis code
is imported here.
"""
