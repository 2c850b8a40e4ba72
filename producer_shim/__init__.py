"""SCF function 1 (the producer shim): COS upload event → job message on the queue.

Entry point: ``producer_shim.index.main_handler``. Event parsing lives in :mod:`producer_shim.events`,
pipeline choice and message building in :mod:`producer_shim.enqueue`. Import-light: no vendor, consumer,
COS or Redis code is imported here.
"""
