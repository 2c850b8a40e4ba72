"""``scf-relay chaos``: a crashing fleet and a hostile world, then a verdict from independent evidence.

:mod:`.plan` decides the tasks and what each must end as; :mod:`.run` drives them through the shim, the queue and
several worker processes that are SIGKILLed at random moments, amid vendor, moderation and backend faults;
:mod:`.verdict` recomputes every invariant from what the world saw (the backend's received reports, the vendor's
submissions, the bucket, the dead-letter queue), never from our own ledger.
"""
